//! What a primary killed under Sentinel takes with it, with and without
//! `--redis-min-replicas`: a measurement, not a check. Run it with
//!
//! ```text
//! cargo bench --bench failover_loss
//! ```
//!
//! (`FAILOVER_LOSS_RUNS=N` sets the runs of each setting under each fault, 3 by default.) It
//! prints one line a run and then the table of docs/benchmarks.md ("Redis failover: what a
//! lost primary takes with it"). What must always hold, that with `--redis-min-replicas 1` no
//! acknowledged write is lost, is checked on every run of the tests by `redis_failover.rs`.
//!
//! Each run starts a primary, two replicas and three Sentinels of its own
//! ([`SentinelSetup`]) and a store with `redis_min_replicas` 0 or 1. Four writers create tokens
//! and delete tokens they created earlier (every third write a deletion of the oldest token the
//! writer still holds), one write after another each. After a second of this, replication is
//! made to lag: both replicas are frozen (SIGSTOP) for 400 ms, and under the fault `cut` the
//! primary also closes its links to them (`CLIENT KILL TYPE replica`) at the start of those
//! 400 ms. Then the primary gets SIGKILL, the replicas are let go (SIGCONT), and the writers go
//! on until 20 writes begun after the kill were acknowledged. Last, a store of its own reads
//! every acknowledged write back from the new primary. Both settings meet the same faults.
//!
//! Freezing the replicas alone loses nothing even without `--redis-min-replicas`: what the
//! primary sends them waits in the kernel's socket buffers and is applied when they run again.
//! The fault `cut` is what loses writes: their bytes never reach a replica.

#[path = "../tests/support/mod.rs"]
mod support;

use crate::support::redis_sentinel::{query, SentinelSetup};
use crate::support::writes::{create, delete, prefix, record};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera::model::TokenRecord;
use tessera::store::{RedisStore, StoreError, StoreOptions, TokenStore};
use uuid::Uuid;

const WRITERS: usize = 4;
const WARM_UP: Duration = Duration::from_secs(1);
/// How long the replicas are frozen before the primary is killed.
const LAG: Duration = Duration::from_millis(400);
/// Writes acknowledged after the kill (each begun after it) before the writers stop.
const AFTER: usize = 20;
const RECOVERY_BOUND: Duration = Duration::from_secs(20);

/// How replication is made to lag at the moment of the kill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// The replicas are frozen: what the primary sends them waits in their sockets.
    Stalled,
    /// The replicas are frozen and their links to the primary are closed: what the primary
    /// acknowledges from then on reaches no replica.
    Cut,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Stalled => "replicas frozen 400 ms",
            Fault::Cut => "replicas frozen 400 ms, links closed",
        }
    }
}

/// One acknowledged write.
struct Acked {
    id: Uuid,
    deletion: bool,
    started: Instant,
    ended: Instant,
}

#[derive(Default)]
struct Log {
    acked: Vec<Acked>,
    /// Writes that failed as unavailable (they may or may not have been applied).
    unsure: usize,
    /// Writes refused for another reason (a deletion of a token whose creation was lost).
    refused: Vec<String>,
}

/// What one run counted.
struct Run {
    acked: usize,
    /// Acknowledged between the fault and the kill.
    acked_lagging: usize,
    lost_records: usize,
    undone_deletions: usize,
    unsure: usize,
    refused: usize,
    /// From the kill to the first acknowledged write begun after it.
    recovery: Option<Duration>,
}

impl Run {
    fn lost(&self) -> usize {
        self.lost_records + self.undone_deletions
    }
}

async fn writer(store: RedisStore, n: usize, log: Arc<Mutex<Log>>, stop: Arc<AtomicBool>) {
    let mut held: VecDeque<TokenRecord> = VecDeque::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let (write, id, created) = match held.front() {
            Some(_) if i.is_multiple_of(3) => {
                let token = held.pop_front().unwrap();
                (delete(&token), token.id, None)
            }
            _ => {
                let token = record(&format!("w{n}-{i}"));
                (create(&token), token.id, Some(token))
            }
        };
        let started = Instant::now();
        let result = store.commit(write).await;
        let ended = Instant::now();
        match result {
            Ok(_) => {
                log.lock().unwrap().acked.push(Acked {
                    id,
                    deletion: created.is_none(),
                    started,
                    ended,
                });
                held.extend(created);
            }
            Err(StoreError::Unavailable(_)) => {
                log.lock().unwrap().unsure += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => log.lock().unwrap().refused.push(other.to_string()),
        }
    }
}

async fn measure(min_replicas: u32, fault: Fault) -> Option<Run> {
    let mut setup = SentinelSetup::start_or_skip(2)?;
    let prefix = prefix();
    let options = StoreOptions {
        redis_min_replicas: min_replicas,
        redis_wait_timeout: Duration::from_millis(1000),
    };
    let store = RedisStore::open_with_options(&setup.url(), &prefix, options)
        .await
        .unwrap();
    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| tokio::spawn(writer(store.clone(), n, log.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(WARM_UP).await;

    let lagging = Instant::now();
    for replica in &setup.replicas {
        replica.pause();
    }
    if fault == Fault::Cut {
        let closed: i64 =
            query(setup.primary.port(), &["CLIENT", "KILL", "TYPE", "replica"]).unwrap();
        assert_eq!(closed, 2, "the primary had two replica links");
    }
    tokio::time::sleep(LAG).await;
    setup.primary.kill();
    let killed = Instant::now();
    for replica in &setup.replicas {
        replica.resume();
    }
    loop {
        let after = {
            let log = log.lock().unwrap();
            log.acked.iter().filter(|a| a.started >= killed).count()
        };
        if after >= AFTER || killed.elapsed() > RECOVERY_BOUND {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let log = Arc::try_unwrap(log).ok().unwrap().into_inner().unwrap();

    // Read every acknowledged write back, through a store of its own.
    let reader = RedisStore::open_with_prefix(&setup.url(), &prefix)
        .await
        .unwrap();
    let snapshot = reader.snapshot().await.unwrap();
    let deleted: HashSet<Uuid> = snapshot
        .entries
        .iter()
        .filter(|(_, entry)| entry.deleted)
        .map(|(id, _)| *id)
        .collect();
    let deletions: HashSet<Uuid> = log
        .acked
        .iter()
        .filter(|a| a.deletion)
        .map(|a| a.id)
        .collect();
    let mut lost_records = 0;
    for created in log.acked.iter().filter(|a| !a.deletion) {
        // A token without its record and without a deletion entry was lost; one with a deletion
        // entry was deleted by a deletion that failed as unavailable and was applied after all.
        if !deletions.contains(&created.id)
            && !deleted.contains(&created.id)
            && reader.get(created.id).await.unwrap().is_none()
        {
            lost_records += 1;
        }
    }
    // A deletion is undone when the token has no deletion entry: it verifies again.
    let undone_deletions = deletions.iter().filter(|id| !deleted.contains(id)).count();
    let recovery = log
        .acked
        .iter()
        .filter(|a| a.started >= killed)
        .map(|a| a.ended - killed)
        .min();
    let run = Run {
        acked: log.acked.len(),
        acked_lagging: log
            .acked
            .iter()
            .filter(|a| a.ended >= lagging && a.ended <= killed)
            .count(),
        lost_records,
        undone_deletions,
        unsure: log.unsure,
        refused: log.refused.len(),
        recovery,
    };
    eprintln!(
        "failover_loss: {}, --redis-min-replicas {min_replicas}: {} writes acknowledged ({} while \
         the replicas lagged), {} lost ({} records, {} deletions undone), {} unavailable, {} \
         refused {:?}, first write {:?} after the kill",
        fault.name(),
        run.acked,
        run.acked_lagging,
        run.lost(),
        run.lost_records,
        run.undone_deletions,
        run.unsure,
        run.refused,
        log.refused.first(),
        run.recovery,
    );
    Some(run)
}

/// `min / median / max` of `values` (the lower median for an even count).
fn spread<T: Ord + Copy>(
    values: impl IntoIterator<Item = T>,
    show: impl Fn(T) -> String,
) -> String {
    let mut values: Vec<T> = values.into_iter().collect();
    values.sort();
    if values.is_empty() {
        return "-".into();
    }
    format!(
        "{} / {} / {}",
        show(values[0]),
        show(values[(values.len() - 1) / 2]),
        show(values[values.len() - 1])
    )
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(measure_all());
}

/// Every case, `FAILOVER_LOSS_RUNS` times (3 by default), in turns; then the table.
async fn measure_all() {
    let runs: usize = std::env::var("FAILOVER_LOSS_RUNS")
        .ok()
        .map(|n| n.parse().expect("FAILOVER_LOSS_RUNS is a number"))
        .unwrap_or(3);
    let cases = [
        (Fault::Cut, 0),
        (Fault::Cut, 1),
        (Fault::Stalled, 0),
        (Fault::Stalled, 1),
    ];
    let mut results: Vec<Vec<Run>> = cases.iter().map(|_| Vec::new()).collect();
    // The settings take turns, so drift on the machine hits both alike.
    for _ in 0..runs {
        for (case, (fault, min_replicas)) in cases.iter().enumerate() {
            let Some(run) = measure(*min_replicas, *fault).await else {
                return;
            };
            results[case].push(run);
        }
    }
    let count = |v: usize| v.to_string();
    let ms = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!(
        "\n| fault | --redis-min-replicas | runs | writes acknowledged | acknowledged while \
         the replicas lagged | lost (records + deletions undone) | records lost | deletions \
         undone | writes failed as unavailable | first write after the kill |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for ((fault, min_replicas), runs) in cases.iter().zip(&results) {
        println!(
            "| {} | {min_replicas} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fault.name(),
            runs.len(),
            spread(runs.iter().map(|r| r.acked), count),
            spread(runs.iter().map(|r| r.acked_lagging), count),
            spread(runs.iter().map(Run::lost), count),
            spread(runs.iter().map(|r| r.lost_records), count),
            spread(runs.iter().map(|r| r.undone_deletions), count),
            spread(runs.iter().map(|r| r.unsure), count),
            spread(runs.iter().filter_map(|r| r.recovery), ms),
        );
    }
    println!("\n(each cell: min / median / max over the runs)");
}
