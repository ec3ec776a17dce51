//! Creates through the token service beside the same store's plain write with the same
//! durability, in one run on one machine:
//! - embedded: `TokenService::create` on the redb store against one redb write transaction
//!   inserting a record-sized value, committed with the same durability (fsync on commit);
//! - Redis: `TokenService::create` on the Redis store against `SET` of a record-sized value
//!   over one connection, on the same `redis-server` (append-only file, `appendfsync always`).
//!
//! One create is: validate, sign (Ed25519), one atomic write (record, name, audit). Calls run
//! one after another, as an operator or a management API under light load issues them.
//!
//! Besides criterion's own timings, the `paired` lines time the service and the baseline in
//! alternating batches and print the throughput ratio over all of them, so the machine's drift
//! hits both sides alike.
//!
//! Run: `cargo bench --bench store`.

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use redb::{ReadableDatabase as _, TableDefinition};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::lifecycle::{Caller, Expiry, NewToken, TokenService};
use tessera::model::Actor;
use tessera::store::AnyStore;
use tessera::{keys, Issuer, KeyRing, Permissions};

/// The example of docs/permissions.md: four grants, one per resource kind (about 1 KiB as a token).
const FOUR_GRANTS: &str = include_str!("four_grants.json");

const BASELINE: TableDefinition<u64, &[u8]> = TableDefinition::new("baseline");

/// How long each side of a paired measurement runs in all, and its batch size.
const PAIRED_TIME: Duration = Duration::from_secs(6);
const PAIRED_BATCH: u64 = 25;

struct Creator {
    service: TokenService<AnyStore>,
    caller: Caller,
    permissions: Permissions,
    next: AtomicU64,
}

impl Creator {
    fn new(store: AnyStore, ring: Arc<KeyRing>) -> Self {
        Self {
            service: TokenService::new(Arc::new(store), Issuer::new(ring).unwrap()),
            caller: Caller {
                actor: Actor::local("bench"),
                from: None,
            },
            permissions: serde_json::from_str(FOUR_GRANTS).unwrap(),
            next: AtomicU64::new(0),
        }
    }

    async fn create(&self) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let new = NewToken {
            name: format!("bench-token-{n}"),
            description: "created by the store benchmark".into(),
            expires: Expiry::Days(30),
            permissions: self.permissions.clone(),
            allowed_cidrs: Default::default(),
        };
        self.service.create(&self.caller, new).await.unwrap();
    }
}

/// A value the size of a stored record of the four-grants token.
fn record_sized_value() -> Vec<u8> {
    vec![b'x'; 900]
}

/// Time `a` and `b` in alternating batches; print and return the throughput of `a` over `b`.
fn paired(label: &str, rt: &tokio::runtime::Runtime, a: impl AsyncOp, b: impl AsyncOp) -> f64 {
    let (mut time_a, mut time_b, mut calls) = (Duration::ZERO, Duration::ZERO, 0u64);
    while time_a + time_b < PAIRED_TIME * 2 {
        let started = Instant::now();
        for _ in 0..PAIRED_BATCH {
            rt.block_on(a.call());
        }
        time_a += started.elapsed();
        let started = Instant::now();
        for _ in 0..PAIRED_BATCH {
            rt.block_on(b.call());
        }
        time_b += started.elapsed();
        calls += PAIRED_BATCH;
    }
    let per_sec = |t: Duration| calls as f64 / t.as_secs_f64();
    let ratio = per_sec(time_a) / per_sec(time_b);
    println!(
        "paired {label}: service {:.0} creates/s, baseline {:.0} writes/s over {calls} calls each: \
         {ratio:.2} of the baseline's throughput",
        per_sec(time_a),
        per_sec(time_b),
    );
    ratio
}

/// One call of an operation under measurement.
trait AsyncOp {
    fn call(&self) -> impl std::future::Future<Output = ()>;
}

impl<F: Fn() -> Fut, Fut: std::future::Future<Output = ()>> AsyncOp for F {
    fn call(&self) -> impl std::future::Future<Output = ()> {
        self()
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    keys::generate_into(&dir.path().join("keys"), chrono::Utc::now()).unwrap();
    let ring = Arc::new(KeyRing::load_dir(&dir.path().join("keys")).unwrap());
    let value = record_sized_value();

    // Embedded.
    let store_path = dir.path().join("tessera.redb");
    let embedded = Creator::new(
        rt.block_on(AnyStore::open(&format!("file:{}", store_path.display())))
            .unwrap(),
        ring.clone(),
    );
    let baseline_db = redb::Database::create(dir.path().join("baseline.redb")).unwrap();
    let next_key = AtomicU64::new(0);
    let redb_write = || {
        let txn = baseline_db.begin_write().unwrap();
        {
            let mut table = txn.open_table(BASELINE).unwrap();
            let key = next_key.fetch_add(1, Ordering::Relaxed);
            table.insert(key, value.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    };
    let mut group = c.benchmark_group("create");
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    group.bench_function("embedded/service", |b| {
        b.iter(|| rt.block_on(embedded.create()))
    });
    group.bench_function("embedded/redb_commit", |b| b.iter(redb_write));
    // Sanity: the baseline really wrote.
    assert!(baseline_db
        .begin_read()
        .unwrap()
        .open_table(BASELINE)
        .is_ok());

    // Redis.
    let server = support::redis_server::RedisServer::start_or_skip();
    let redis = server.as_ref().map(|server| {
        let creator = Creator::new(
            rt.block_on(AnyStore::open(&server.url())).unwrap(),
            ring.clone(),
        );
        let client = redis::Client::open(server.url()).unwrap();
        let conn = rt
            .block_on(client.get_multiplexed_async_connection())
            .unwrap();
        (creator, conn)
    });
    if let Some((creator, conn)) = &redis {
        group.bench_function("redis/service", |b| {
            b.iter(|| rt.block_on(creator.create()))
        });
        group.bench_function("redis/set", |b| {
            b.iter(|| rt.block_on(redis_set(conn.clone(), &next_key, &value)))
        });
    }
    group.finish();

    paired(
        "embedded",
        &rt,
        || embedded.create(),
        || async { redb_write() },
    );
    if let Some((creator, conn)) = &redis {
        paired(
            "redis",
            &rt,
            || creator.create(),
            || redis_set(conn.clone(), &next_key, &value),
        );
    }
}

async fn redis_set(
    mut conn: redis::aio::MultiplexedConnection,
    next_key: &AtomicU64,
    value: &[u8],
) {
    let key = format!("baseline:{}", next_key.fetch_add(1, Ordering::Relaxed));
    let () = redis::AsyncCommands::set(&mut conn, key, value)
        .await
        .unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
