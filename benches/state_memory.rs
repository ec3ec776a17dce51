//! Verifier memory with one million token-state entries.
//!
//! Each scenario runs in a child process of its own, builds a snapshot of 1,000,000 entries as
//! a store hands it over, loads it into a [`MemoryState`] as the state mirror does, drops the
//! snapshot, and reports the heap the map holds (exact, from a counting allocator), the
//! process's resident memory growth (`VmRSS`, which also keeps freed pages the allocator did not
//! return) and the peak during the load (`VmHWM`, snapshot included).
//!
//! Scenarios:
//! - `mixed`: 40% deletions, 40% regenerations, 20% permission updates drawn from 1,000
//!   distinct permission sets (updates tend to give many tokens the same permissions);
//! - `revocations`: every entry a deletion or a regeneration;
//! - `distinct-updates`: every entry a permission update with its own four-grant set (the
//!   DESIGN.md example with a per-token project), the worst case, which no representation that
//!   keeps the permissions can fit in 200 bytes an entry.
//!
//! Run: `cargo bench --bench state_memory` (target: under 200 MB).

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tessera::store::StateRecord;
use tessera::{MemoryState, Permissions, TokenState as _};
use uuid::Uuid;

const ENTRIES: u128 = 1_000_000;

const ONE_GRANT: &str = r#"{"grants": [{"resource": "devtron-app", "role": "trigger",
  "project": "PROJECT", "environments": ["prod"], "apps": ["*"]}]}"#;

const FOUR_GRANTS: &str = r#"{"grants": [
  {"resource": "devtron-app", "role": "trigger", "project": "PROJECT",
   "environments": ["prod", "staging"], "apps": ["*"]},
  {"resource": "helm-app", "role": "edit", "project": "infra",
   "environments": ["prod-cluster__monitoring"], "apps": ["grafana"]},
  {"resource": "kubernetes", "role": "view", "cluster": "prod",
   "namespaces": ["*"], "groups": ["", "apps"], "kinds": ["Deployment", "Pod"], "names": ["*"]},
  {"resource": "chart-group", "role": "view", "groups": ["*"]}
]}"#;

/// The system allocator, counting the bytes in use.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a side
// effect only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        IN_USE.fetch_add(new_size, Ordering::Relaxed);
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn entry(i: u128, scenario: &str) -> StateRecord {
    let drop_after = Some(chrono::Utc::now() + chrono::Duration::days(30));
    let update = |json: &str, project: u128| StateRecord {
        deleted: false,
        min_ver: 0,
        // Parsed per entry, as a snapshot decoded from a store is.
        perm: Some(Arc::new(
            serde_json::from_str::<Permissions>(&json.replace("PROJECT", &format!("p{project}")))
                .unwrap(),
        )),
        drop_after,
    };
    let deleted = StateRecord {
        deleted: true,
        min_ver: 0,
        perm: None,
        drop_after,
    };
    let regenerated = StateRecord {
        deleted: false,
        min_ver: 2,
        perm: None,
        drop_after,
    };
    match (scenario, i % 10) {
        ("distinct-updates", _) => update(FOUR_GRANTS, i),
        ("revocations", n) if n < 5 => deleted,
        ("revocations", _) => regenerated,
        (_, 0..4) => deleted,
        (_, 4..8) => regenerated,
        _ => update(ONE_GRANT, i % 1000),
    }
}

fn measure(scenario: &str) {
    let rss_before = status_kib("VmRSS:");
    let hwm_before = status_kib("VmHWM:");
    let heap_before = IN_USE.load(Ordering::Relaxed);
    let snapshot: Vec<(Uuid, StateRecord)> = (0..ENTRIES)
        .map(|i| (Uuid::from_u128(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)), entry(i, scenario)))
        .collect();
    let state = MemoryState::new();
    state.load_snapshot(
        ENTRIES as u64,
        snapshot.into_iter().map(|(id, record)| (id, record.to_entry())),
    );
    let mib = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);
    let heap_mib = mib(IN_USE.load(Ordering::Relaxed).saturating_sub(heap_before));
    let held_mib = (status_kib("VmRSS:").saturating_sub(rss_before)) as f64 / 1024.0;
    let peak_mib = (status_kib("VmHWM:").saturating_sub(hwm_before)) as f64 / 1024.0;
    assert_eq!(state.len(), ENTRIES as usize);
    assert!(state.lookup(&Uuid::from_u128(0)).unwrap().is_some());
    println!(
        "state memory {scenario}: {} entries, {} distinct permission sets: heap {heap_mib:.1} MiB \
         ({:.0} bytes per entry), resident growth {held_mib:.1} MiB, peak during the load \
         {peak_mib:.1} MiB",
        state.len(),
        state.distinct_permissions(),
        heap_mib * 1024.0 * 1024.0 / ENTRIES as f64,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if let Some(scenario) = args.iter().find_map(|a| a.strip_prefix("--scenario=")) {
        measure(scenario);
        return;
    }
    for scenario in ["mixed", "revocations", "distinct-updates"] {
        let status = Command::new(std::env::current_exe().unwrap())
            .arg(format!("--scenario={scenario}"))
            .status()
            .unwrap();
        assert!(status.success(), "scenario {scenario} failed");
    }
}
