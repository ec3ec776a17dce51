//! Propagation: the time from a delete or a permission update being acknowledged to a verifier
//! that follows the state feed refusing the token or applying its new permissions.
//!
//! For Redis, the issuer and the verifier use separate connections to a `redis-server` of their
//! own (append-only, `appendfsync always`), as two machines would; the verifier's mirror follows
//! the feed with `XREAD BLOCK`. The embedded store's mirror is fed in process. Each change is
//! timed on its own: acknowledge, then verify the token every 20 µs until the verdict changes.
//! Half the changes are deletions, half permission updates, each on a token the verifier has
//! already verified (so it sits in the signature cache, the hardest case for a revocation).
//!
//! Run: `cargo bench --bench propagation` (prints percentiles; target p99 under 50 ms).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::lifecycle::{Caller, Expiry, NewToken, TokenService, TokenUpdate};
use tessera::mirror::{MirrorOptions, StateMirror};
use tessera::model::Actor;
use tessera::store::AnyStore;
use tessera::{keys, Issuer, KeyRing, Permissions, Verifier};

const CHANGES: usize = 1_000;
const POLL: Duration = Duration::from_micros(20);
const GIVE_UP: Duration = Duration::from_secs(5);

fn trigger(project: &str) -> Permissions {
    serde_json::from_str(&format!(
        r#"{{"grants": [{{"resource": "devtron-app", "role": "trigger", "project": "{project}",
            "environments": ["*"], "apps": ["*"]}}]}}"#
    ))
    .unwrap()
}

fn run(
    label: &str,
    rt: &tokio::runtime::Runtime,
    issuer_store: AnyStore,
    verifier_store: AnyStore,
    ring: Arc<KeyRing>,
) {
    let service = TokenService::new(Arc::new(issuer_store), Issuer::new(ring.clone()).unwrap());
    let caller = Caller {
        actor: Actor::local("bench"),
        from: None,
    };
    let mirror = rt
        .block_on(StateMirror::start(
            Arc::new(verifier_store),
            MirrorOptions::default(),
        ))
        .unwrap();
    let verifier = Verifier::new(ring).with_state(mirror.state());

    let minted: Vec<_> = (0..CHANGES)
        .map(|i| {
            let new = NewToken {
                name: format!("{label}-{i}"),
                description: String::new(),
                expires: Expiry::Days(30),
                permissions: trigger("payments"),
                allowed_cidrs: Default::default(),
            };
            rt.block_on(service.create(&caller, new)).unwrap()
        })
        .collect();
    for m in &minted {
        // Twice: the second sighting admits the token to the signature cache.
        verifier.verify(m.token.expose()).unwrap();
        verifier.verify(m.token.expose()).unwrap();
    }

    let mut latencies = Vec::with_capacity(CHANGES);
    for (i, m) in minted.iter().enumerate() {
        let id = m.record.id;
        let delete = i % 2 == 0;
        if delete {
            rt.block_on(service.delete(&caller, id, None)).unwrap();
        } else {
            let update = TokenUpdate {
                description: None,
                permissions: Some(trigger("billing")),
                allowed_cidrs: None,
            };
            rt.block_on(service.update(&caller, id, update, None))
                .unwrap();
        }
        let acknowledged = Instant::now();
        loop {
            let seen = match verifier.verify(m.token.expose()) {
                Err(e) => delete && e.code() == "revoked",
                Ok(v) => !delete && v.permissions_updated(),
            };
            if seen {
                latencies.push(acknowledged.elapsed());
                break;
            }
            assert!(
                acknowledged.elapsed() < GIVE_UP,
                "change {i} never reached the verifier"
            );
            std::thread::sleep(POLL);
        }
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "propagation {label}: {} changes ({} deletes, {} permission updates): p50 {:.3} ms, \
         p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms; mirror reloads {}, errors {}",
        latencies.len(),
        CHANGES.div_ceil(2),
        CHANGES / 2,
        ms(at(0.50)),
        ms(at(0.90)),
        ms(at(0.99)),
        ms(at(1.0)),
        mirror.stats().reloads(),
        mirror.stats().errors(),
    );
}

fn main() {
    // `cargo test --benches` runs bench targets with `--test`-ish flags; a quick pass is not
    // this tool's job.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    keys::generate_into(&dir.path().join("keys"), chrono::Utc::now()).unwrap();
    let ring = Arc::new(KeyRing::load_dir(&dir.path().join("keys")).unwrap());

    match support::redis_server::RedisServer::start_or_skip() {
        Some(server) => {
            let issuer_store = rt.block_on(AnyStore::open(&server.url())).unwrap();
            let verifier_store = rt.block_on(AnyStore::open(&server.url())).unwrap();
            run("redis", &rt, issuer_store, verifier_store, ring.clone());
        }
        None => println!(
            "propagation redis: skipped ({})",
            support::redis_server::MISSING
        ),
    }

    let url = format!("file:{}", dir.path().join("tessera.redb").display());
    let store = rt.block_on(AnyStore::open(&url)).unwrap();
    run("embedded", &rt, store.clone(), store, ring);
}
