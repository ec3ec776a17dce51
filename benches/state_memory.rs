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
//!   example of docs/permissions.md with a per-token project), the worst case, which no representation that
//!   keeps the permissions can fit in 200 bytes an entry.
//!
//! - `mixed-via-redis`: the `mixed` entries written into a Redis store's state map (by a Lua
//!   script inside `redis-server`, in the store's own format), and a verifier process that
//!   starts a [`StateMirror`] on that store: the whole path, the reply buffers of the snapshot
//!   and its decoding included.
//!
//! Run: `cargo bench --bench state_memory` (target: under 200 MB).

#[path = "../tests/support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tessera::model::StateRecord;
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

/// A scenario's entry `i`. Permission sets are parsed once per distinct set and shared, as a
/// store's snapshot decoder does; `parsed` holds them.
fn entry(
    i: u128,
    scenario: &str,
    parsed: &mut HashMap<(bool, u128), Arc<Permissions>>,
) -> StateRecord {
    let drop_after = Some(chrono::Utc::now() + chrono::Duration::days(30));
    let mut update = |json: &str, project: u128| StateRecord {
        deleted: false,
        min_ver: 0,
        perm: Some(
            parsed
                .entry((json == FOUR_GRANTS, project))
                .or_insert_with(|| {
                    let json = json.replace("PROJECT", &format!("p{project}"));
                    Arc::new(serde_json::from_str::<Permissions>(&json).unwrap())
                })
                .clone(),
        ),
        cidr: None,
        drop_after,
    };
    let deleted = StateRecord {
        deleted: true,
        min_ver: 0,
        perm: None,
        cidr: None,
        drop_after,
    };
    let regenerated = StateRecord {
        deleted: false,
        min_ver: 2,
        perm: None,
        cidr: None,
        drop_after,
    };
    match (scenario, i % 10) {
        ("distinct-updates", _) => update(FOUR_GRANTS, i),
        ("revocations", n) if n < 5 => deleted,
        ("revocations", _) => regenerated,
        (_, 0..4) => deleted,
        (_, 4..8) => regenerated,
        _ => update(ONE_GRANT, (i / 10) % 1000),
    }
}

fn measure(scenario: &str) {
    let rss_before = status_kib("VmRSS:");
    let hwm_before = status_kib("VmHWM:");
    let heap_before = IN_USE.load(Ordering::Relaxed);
    let mut parsed = HashMap::new();
    let snapshot: Vec<(Uuid, StateRecord)> = (0..ENTRIES)
        .map(|i| {
            let id = Uuid::from_u128(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            (id, entry(i, scenario, &mut parsed))
        })
        .collect();
    drop(parsed);
    let state = MemoryState::new();
    state.load_snapshot(
        ENTRIES as u64,
        snapshot
            .into_iter()
            .map(|(id, record)| (id, record.to_entry())),
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

/// Fill the state map of the Redis store at `url` with the `mixed` entries, inside Redis.
fn populate_redis(url: &str) {
    // Lua builds the same JSON the store writes: 40% deleted, 40% regenerated, 20% permission
    // updates from 1,000 distinct sets, ids as UUID strings.
    const FILL: &str = r#"
        local n = tonumber(ARGV[1])
        local drop = ARGV[2]
        for i = 0, n - 1 do
            local id = string.format('%08x-0000-4000-8000-%012x', i % 4294967296, i)
            local kind = i % 10
            local entry
            if kind < 4 then
                entry = '{"deleted":true,"drop_after":"' .. drop .. '"}'
            elseif kind < 8 then
                entry = '{"min_ver":2,"drop_after":"' .. drop .. '"}'
            else
                entry = '{"perm":{"grants":[{"resource":"devtron-app","role":"trigger",' ..
                    '"project":"p' .. (math.floor(i / 10) % 1000) .. '","environments":["prod"],' ..
                    '"apps":["*"]}]},"drop_after":"' .. drop .. '"}'
            end
            redis.call('HSET', KEYS[1], id, entry)
        end
        redis.call('SET', KEYS[2], n)
        return n
    "#;
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_connection().unwrap();
    let drop_after = (chrono::Utc::now() + chrono::Duration::days(30))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let filled: u64 = redis::Script::new(FILL)
        .key("{tessera}:state")
        .key("{tessera}:rev")
        .arg(ENTRIES as u64)
        .arg(drop_after)
        .invoke(&mut conn)
        .unwrap();
    assert_eq!(filled, ENTRIES as u64);
}

/// As a verifier: start a state mirror on the Redis store at `url` and report its memory.
fn measure_mirror(url: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(
        runtime
            .block_on(tessera::store::AnyStore::open(url))
            .unwrap(),
    );
    let rss_before = status_kib("VmRSS:");
    let hwm_before = status_kib("VmHWM:");
    let heap_before = IN_USE.load(Ordering::Relaxed);
    let started = std::time::Instant::now();
    let mirror = runtime
        .block_on(tessera::mirror::StateMirror::start(
            store,
            Default::default(),
        ))
        .unwrap();
    let load_time = started.elapsed();
    let state = mirror.state();
    assert_eq!(state.len(), ENTRIES as usize);
    let mib = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);
    let heap_mib = mib(IN_USE.load(Ordering::Relaxed).saturating_sub(heap_before));
    let held_mib = (status_kib("VmRSS:").saturating_sub(rss_before)) as f64 / 1024.0;
    let peak_mib = (status_kib("VmHWM:").saturating_sub(hwm_before)) as f64 / 1024.0;
    println!(
        "state memory mixed-via-redis: {} entries, {} distinct permission sets, loaded in \
         {load_time:.2?}: heap {heap_mib:.1} MiB, resident growth {held_mib:.1} MiB, peak during \
         the load {peak_mib:.1} MiB; whole verifier process resident {:.1} MiB",
        state.len(),
        state.distinct_permissions(),
        status_kib("VmRSS:") as f64 / 1024.0,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if let Some(url) = args.iter().find_map(|a| a.strip_prefix("--mirror=")) {
        measure_mirror(url);
        return;
    }
    if let Some(scenario) = args.iter().find_map(|a| a.strip_prefix("--scenario=")) {
        measure(scenario);
        return;
    }
    let child = |arg: String| {
        let status = Command::new(std::env::current_exe().unwrap())
            .arg(&arg)
            .status()
            .unwrap();
        assert!(status.success(), "{arg} failed");
    };
    for scenario in ["mixed", "revocations", "distinct-updates"] {
        child(format!("--scenario={scenario}"));
    }
    match support::redis_server::RedisServer::start_or_skip() {
        Some(server) => {
            populate_redis(&server.url());
            child(format!("--mirror={}", server.url()));
        }
        None => println!(
            "state memory mixed-via-redis: skipped ({})",
            support::redis_server::MISSING
        ),
    }
}
