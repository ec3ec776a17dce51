//! A verifier's state mirror across a Redis crash: it keeps answering while Redis is away for
//! less than its staleness bound, fails closed (`stale_state`) past the bound, and once Redis is
//! back it reloads and carries the changes made meanwhile. With fail-open configured it keeps
//! answering past the bound instead.

#![cfg(feature = "redis")]

use crate::support::backend::{caller, new_token};
use crate::support::redis_server::RedisServer;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::lifecycle::TokenService;
use tessera::mirror::{MirrorOptions, StateMirror};
use tessera::store::AnyStore;
use tessera::{keys, Issuer, KeyRing, Verifier};

struct Setup {
    server: RedisServer,
    service: TokenService<AnyStore>,
    ring: Arc<KeyRing>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Option<Setup> {
    let server = RedisServer::start_or_skip()?;
    let dir = tempfile::tempdir().unwrap();
    keys::generate_into(&dir.path().join("keys"), chrono::Utc::now()).unwrap();
    let ring = Arc::new(KeyRing::load_dir(&dir.path().join("keys")).unwrap());
    let store = Arc::new(AnyStore::open(&server.url()).await.unwrap());
    let service = TokenService::new(store, Issuer::new(ring.clone()).unwrap());
    Some(Setup {
        server,
        service,
        ring,
        _dir: dir,
    })
}

async fn follower(setup: &Setup, bound: Duration, fail_open: bool) -> (StateMirror, Verifier) {
    // The verifier's own connection, as on another machine.
    let store = Arc::new(AnyStore::open(&setup.server.url()).await.unwrap());
    let mirror = StateMirror::start(
        store,
        MirrorOptions {
            bound,
            fail_open,
            poll_wait: Duration::from_millis(200),
            ..MirrorOptions::default()
        },
    )
    .await
    .unwrap();
    let verifier = Verifier::new(setup.ring.clone()).with_state(mirror.state());
    (mirror, verifier)
}

fn code(verifier: &Verifier, token: &str) -> &'static str {
    verifier.verify(token).map_or_else(|e| e.code(), |_| "ok")
}

/// Poll until `verifier` gives `want` for `token`, for at most `limit`.
async fn wait_for(verifier: &Verifier, token: &str, want: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if code(verifier, token) == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "still {:?} after {limit:?}, wanted {want}",
            code(verifier, token)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_survives_a_restart_and_fails_closed_only_past_its_bound() {
    let Some(mut setup) = setup().await else {
        return;
    };
    let bound = Duration::from_secs(3);
    let (mirror, verifier) = follower(&setup, bound, false).await;
    let kept = setup
        .service
        .create(&caller(), new_token("kept"))
        .await
        .unwrap();
    let doomed = setup
        .service
        .create(&caller(), new_token("doomed"))
        .await
        .unwrap();
    assert_eq!(code(&verifier, kept.token.expose()), "ok");

    setup.server.kill();
    let killed = Instant::now();
    // Within the bound the mirror still vouches for what it knows.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(code(&verifier, kept.token.expose()), "ok");
    // Past it, verification fails closed.
    wait_for(
        &verifier,
        kept.token.expose(),
        "stale_state",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        killed.elapsed() > bound,
        "failed closed after {:?}, before the {bound:?} bound",
        killed.elapsed()
    );
    assert!(mirror.stats().errors() > 0);

    // Redis comes back with its data (append-only file); a change made now reaches the mirror.
    setup.server.restart();
    let reloads = mirror.stats().reloads();
    wait_for(
        &verifier,
        kept.token.expose(),
        "ok",
        Duration::from_secs(15),
    )
    .await;
    assert!(mirror.stats().reloads() > reloads, "the mirror reloaded");
    setup
        .service
        .delete(&caller(), doomed.record.id, None)
        .await
        .unwrap();
    wait_for(
        &verifier,
        doomed.token.expose(),
        "revoked",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(code(&verifier, kept.token.expose()), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_configured_to_fail_open_keeps_answering_past_its_bound() {
    let Some(mut setup) = setup().await else {
        return;
    };
    let (mirror, verifier) = follower(&setup, Duration::from_secs(1), true).await;
    let minted = setup
        .service
        .create(&caller(), new_token("open"))
        .await
        .unwrap();
    setup.server.kill();
    let started = Instant::now();
    while !mirror.state().is_stale() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never went stale"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(code(&verifier, minted.token.expose()), "ok");
}
