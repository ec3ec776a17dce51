//! The Redis store on a real three-primary Redis Cluster (each test starts its own): the token
//! lifecycle through `AnyStore` with a `redis+cluster://` URL, a seed node that does not own the
//! store's slot, a slot moved under a running store and its followers (`MOVED`, `ASK`), a seed
//! list whose first node is down, concurrent creates, and the errors of opening.
//!
//! Without `redis-server` or `redis-cli` on PATH a plain `cargo test` skips these with a message
//! naming them; with `CI=true` they fail instead.

#![cfg(feature = "redis")]

use crate::support::backend::{caller, new_token, start_time, trigger, Backend, Kind};
use crate::support::free_port;
use crate::support::redis_cluster::{Options, RedisCluster, TlsFiles};
use crate::support::redis_server::RedisServer;
use chrono::Utc;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::lifecycle::{Expiry, LifecycleError, TokenService, TokenUpdate};
use tessera::model::{Action, Actor, AuditEntry, FeedPage, FeedPosition};
use tessera::store::{AnyStore, RedisStore, StoreError, TokenStore};
use tessera::{keys, Access, DevtronRole, Issuer, KeyRing, ManualClock};

/// A lifecycle backend on the store a URL names, opened as the service opens it: by
/// `AnyStore::open`.
async fn backend(url: &str) -> Backend {
    let dir = tempfile::tempdir().unwrap();
    keys::generate_into(&dir.path().join("keys"), Utc::now()).unwrap();
    let ring = Arc::new(KeyRing::load_dir(&dir.path().join("keys")).unwrap());
    let store = AnyStore::open(url)
        .await
        .unwrap_or_else(|e| panic!("AnyStore::open({url:?}): {e}"));
    assert!(matches!(store, AnyStore::Redis(_)), "{store:?}");
    Backend {
        kind: Kind::Redis,
        store: Arc::new(store),
        ring,
        clock: Arc::new(ManualClock::new(start_time())),
        dir,
        redis: None,
    }
}

/// The slot of the store's keys (default prefix).
fn store_slot(cluster: &RedisCluster) -> u16 {
    let slot = cluster.slot_of("{tessera}:rev");
    assert_eq!(slot, cluster.slot_of("{tessera}:feed"));
    slot
}

/// How many keys each node holds.
fn keys_per_node(cluster: &RedisCluster) -> BTreeMap<u16, usize> {
    cluster
        .ports()
        .into_iter()
        .map(|port| (port, cluster.cli(port, &["DBSIZE"]).parse().unwrap()))
        .collect()
}

/// Run a blocking harness call (a `redis-cli` round) without stalling the runtime's other
/// tasks (the mirrors).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// An audit entry of the test's own, told apart by its outcome.
fn note(outcome: &str) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        actor: Actor::local("cluster-test"),
        action: Action::Update,
        target: None,
        target_name: None,
        outcome: outcome.to_owned(),
        from: None,
        note: None,
    }
}

fn payments() -> Access<'static> {
    Access::DevtronApp {
        role: DevtronRole::Trigger,
        project: "payments",
        environment: "prod",
        app: "api",
    }
}

fn billing() -> Access<'static> {
    Access::DevtronApp {
        role: DevtronRole::Trigger,
        project: "billing",
        environment: "prod",
        app: "api",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_lifecycle_runs_on_a_cluster_through_any_store() {
    let Some(cluster) = blocking(RedisCluster::start_or_skip) else {
        return;
    };
    let b = backend(&cluster.url()).await;
    let service = b.service();
    let follower = b.follower().await;

    // Create: a working token, seen by a verifier following the feed.
    let mut token = new_token("deployer");
    token.permissions = trigger("payments");
    let first = service.create(&caller(), token).await.unwrap();
    let id = first.record.id;
    assert_eq!(follower.code(first.token.expose()).await, "ok");
    let verified = follower.verifier.verify(first.token.expose()).unwrap();
    assert!(verified.allows(&payments()) && !verified.allows(&billing()));
    match service.create(&caller(), new_token("deployer")).await {
        Err(LifecycleError::NameTaken(name)) => assert_eq!(name, "deployer"),
        other => panic!("expected name_taken, got {other:?}"),
    }

    // Update: the same token, new permissions, everywhere.
    let update = TokenUpdate {
        description: Some("now billing".into()),
        permissions: Some(trigger("billing")),
        allowed_cidrs: None,
    };
    let record = service
        .update(&caller(), id, update, Some(1))
        .await
        .unwrap();
    assert_eq!((record.version, record.revision), (1, 2));
    assert_eq!(follower.code(first.token.expose()).await, "ok");
    let verified = follower.verifier.verify(first.token.expose()).unwrap();
    assert!(verified.permissions_updated());
    assert!(verified.allows(&billing()) && !verified.allows(&payments()));

    // Regenerate: a new version; the old one is superseded.
    let second = service
        .regenerate(&caller(), id, Expiry::Days(60), Some(2))
        .await
        .unwrap();
    assert_eq!((second.record.version, second.record.revision), (2, 3));
    assert_eq!(follower.code(first.token.expose()).await, "superseded");
    assert_eq!(follower.code(second.token.expose()).await, "ok");

    // A stale revision is a conflict.
    assert!(matches!(
        service.delete(&caller(), id, Some(2)).await,
        Err(LifecycleError::Conflict { .. })
    ));

    // Delete: every version revoked, the name free again.
    service.delete(&caller(), id, Some(3)).await.unwrap();
    for token in [&first.token, &second.token] {
        assert_eq!(follower.code(token.expose()).await, "revoked");
    }
    assert_eq!(service.get_by_name("deployer").await.unwrap(), None);
    let again = service
        .create(&caller(), new_token("deployer"))
        .await
        .unwrap();
    assert_ne!(again.record.id, id);
    assert_eq!(follower.code(again.token.expose()).await, "ok");
    assert_eq!(service.list().await.unwrap().len(), 1);

    let audit = service.audit(0, 100).await.unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|r| (r.entry.action.as_str(), r.entry.outcome.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("create", "ok"),
            ("create", "name_taken"),
            ("update", "ok"),
            ("regenerate", "ok"),
            ("delete", "conflict"),
            ("delete", "ok"),
            ("create", "ok"),
        ]
    );

    // Another machine's verifier starts from a snapshot and agrees.
    let other = backend(&cluster.url()).await;
    let late = Backend {
        ring: b.ring.clone(),
        clock: b.clock.clone(),
        ..other
    };
    let late_follower = late.follower().await;
    assert_eq!(late_follower.mirror.stats().reloads(), 1);
    assert_eq!(late_follower.code(first.token.expose()).await, "revoked");
    assert_eq!(late_follower.code(second.token.expose()).await, "revoked");
    assert_eq!(late_follower.code(again.token.expose()).await, "ok");

    // Every key of the store is in one slot, on the node that owns it, and nowhere else.
    let slot = store_slot(&cluster);
    let owner = blocking(|| cluster.owner_of(slot, cluster.ports()[0]));
    let per_node = blocking(|| keys_per_node(&cluster));
    let in_slot = blocking(|| cluster.keys_in_slot(owner, slot));
    // records, names, state, drops, rev, feed, audit (at least).
    assert!(in_slot >= 7, "{per_node:?}");
    for (port, count) in per_node {
        assert_eq!(
            count,
            if port == owner { in_slot } else { 0 },
            "node {port}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirections_are_followed_from_a_seed_without_the_slot_and_when_the_slot_moves() {
    let Some(cluster) = blocking(RedisCluster::start_or_skip) else {
        return;
    };
    let slot = store_slot(&cluster);
    let ports = cluster.ports();
    let owner = blocking(|| cluster.owner_of(slot, ports[0]));
    let others: Vec<u16> = ports.iter().copied().filter(|p| *p != owner).collect();
    let (seed, third) = (others[0], others[1]);

    // The only seed does not own the slot: the client must find the owner.
    let b = backend(&cluster.url_with(&[seed])).await;
    let service = b.service();
    let follower = b.follower().await;
    let mut token = new_token("mover");
    token.permissions = trigger("payments");
    let minted = service.create(&caller(), token).await.unwrap();
    let id = minted.record.id;
    assert_eq!(follower.code(minted.token.expose()).await, "ok");
    assert!(blocking(|| cluster.keys_in_slot(owner, slot)) > 0);
    let per_node = blocking(|| keys_per_node(&cluster));
    assert!(
        per_node.iter().all(|(port, n)| *port == owner || *n == 0),
        "{per_node:?}"
    );
    // A snapshot now, so a scan connection is kept, with the layout of now.
    let before = b.store.snapshot().await.unwrap();
    assert_eq!(before.entries.len(), 0);
    // A store that only writes (no follower shares its connection, so nothing else teaches it
    // the new layouts below: its own writes meet the redirections).
    let writer = AnyStore::open(&cluster.url_with(&[seed])).await.unwrap();
    assert_eq!(writer.append_audit(note("before")).await.unwrap(), 2);
    // And one that only reads pages of the feed (a MULTI/EXEC block).
    let reader = AnyStore::open(&cluster.url_with(&[seed])).await.unwrap();
    assert_eq!(
        reader
            .changes_since(FeedPosition::default(), Duration::ZERO)
            .await
            .unwrap(),
        FeedPage::Changes(Vec::new())
    );

    // The slot moves to the seed under the running store and its follower: every connection
    // they hold now points at the wrong node, and is answered MOVED.
    let started = Instant::now();
    let from = blocking(|| cluster.move_slot(slot, seed));
    assert_eq!(from, owner);
    eprintln!(
        "slot {slot} moved {owner} -> {seed} in {:?}",
        started.elapsed()
    );
    assert_eq!(blocking(|| cluster.keys_in_slot(owner, slot)), 0);
    // A write sent to the old owner is answered MOVED, and sent again to the new one, once.
    assert_eq!(writer.append_audit(note("after")).await.unwrap(), 3);
    // A MULTI/EXEC block sent to the old owner is aborted (its commands answered MOVED, which
    // the cluster client does not learn from): sent again once the client knows the new owner.
    assert_eq!(
        reader
            .changes_since(FeedPosition::default(), Duration::ZERO)
            .await
            .unwrap(),
        FeedPage::Changes(Vec::new())
    );

    let update = TokenUpdate {
        description: None,
        permissions: Some(trigger("billing")),
        allowed_cidrs: None,
    };
    service
        .update(&caller(), id, update, Some(1))
        .await
        .unwrap();
    assert_eq!(follower.code(minted.token.expose()).await, "ok");
    let verified = follower.verifier.verify(minted.token.expose()).unwrap();
    assert!(verified.permissions_updated() && verified.allows(&billing()));
    let second = service
        .regenerate(&caller(), id, Expiry::Days(7), None)
        .await
        .unwrap();
    assert_eq!(follower.code(minted.token.expose()).await, "superseded");
    assert_eq!(follower.code(second.token.expose()).await, "ok");
    // The kept scan connection is redirected: the scan starts over on the new owner.
    let after = b.store.snapshot().await.unwrap();
    assert_eq!(after.revision, 2);
    assert_eq!(after.entries.len(), 1);
    assert_eq!(after.entries[0].0, id);
    assert_eq!(after.entries[0].1.min_ver, 2);
    assert!(blocking(|| cluster.keys_in_slot(seed, slot)) > 0);

    // Now a move held halfway: the keys are on the target, but the source still says the slot
    // is migrating, so it answers ASK (and the target MOVED, to clients that do not ask). A
    // delete sent meanwhile is sent again until the move is over.
    let mut moving = blocking(|| cluster.begin_slot_move(slot, third));
    let moved = blocking(|| moving.migrate_keys(usize::MAX));
    assert!(moved >= 6, "{moved}");
    let delete = {
        let service = b.service();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = service.delete(&caller(), id, None).await;
            (result, started.elapsed())
        })
    };
    let audit = tokio::spawn(async move {
        let started = Instant::now();
        let result = writer.append_audit(note("during")).await;
        (result, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    blocking(|| moving.finish());
    let (result, took) = delete.await.unwrap();
    result.unwrap();
    eprintln!("the delete during the move took {took:?}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    let (result, took) = audit.await.unwrap();
    eprintln!("the audit append during the move took {took:?}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    // Appended once: sent again only while the cluster said it had not run it.
    let seq = result.unwrap();
    let trail = service.audit(0, 100).await.unwrap();
    let notes: Vec<(u64, &str)> = trail
        .iter()
        .filter(|r| r.entry.actor.as_str() == "local:cluster-test")
        .map(|r| (r.seq, r.entry.outcome.as_str()))
        .collect();
    assert_eq!(notes[..2], [(2, "before"), (3, "after")]);
    assert_eq!(notes[2..], [(seq, "during")]);
    for token in [&minted.token, &second.token] {
        assert_eq!(follower.code(token.expose()).await, "revoked");
    }
    assert_eq!(blocking(|| cluster.keys_in_slot(seed, slot)), 0);
    assert!(blocking(|| cluster.keys_in_slot(third, slot)) > 0);

    // A verifier that starts now, from the first seed (which no longer owns anything of the
    // store's), loads the snapshot from the new owner.
    let late = Backend {
        ring: b.ring.clone(),
        clock: b.clock.clone(),
        ..backend(&cluster.url_with(&[owner])).await
    };
    let late_follower = late.follower().await;
    assert_eq!(late_follower.code(second.token.expose()).await, "revoked");
    assert!(service.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_of_the_slots_primary_is_followed() {
    let Some(cluster) = blocking(|| {
        RedisCluster::start_with_or_skip(Options {
            replicas: true,
            ..Options::default()
        })
    }) else {
        return;
    };
    let slot = store_slot(&cluster);
    let primary = blocking(|| cluster.owner_of(slot, cluster.ports()[0]));
    let replica = blocking(|| cluster.replica_of(primary));
    let b = backend(&cluster.url()).await;
    let service = b.service();
    let follower = b.follower().await;
    let minted = service
        .create(&caller(), new_token("survivor"))
        .await
        .unwrap();
    assert_eq!(follower.code(minted.token.expose()).await, "ok");
    let writer = AnyStore::open(&cluster.url()).await.unwrap();
    assert_eq!(writer.append_audit(note("before")).await.unwrap(), 2);

    // The replica takes over; the old primary becomes its replica and answers MOVED.
    let started = Instant::now();
    blocking(|| cluster.failover(replica, slot));
    eprintln!("failover {primary} -> {replica} in {:?}", started.elapsed());
    assert_eq!(writer.append_audit(note("after")).await.unwrap(), 3);
    let second = service
        .regenerate(&caller(), minted.record.id, Expiry::Days(7), None)
        .await
        .unwrap();
    assert_eq!(follower.code(minted.token.expose()).await, "superseded");
    service
        .delete(&caller(), minted.record.id, None)
        .await
        .unwrap();
    assert_eq!(follower.code(second.token.expose()).await, "revoked");
    let snapshot = b.store.snapshot().await.unwrap();
    assert_eq!((snapshot.revision, snapshot.entries.len()), (2, 1));
    let late = Backend {
        ring: b.ring.clone(),
        clock: b.clock.clone(),
        ..backend(&cluster.url_with(&[primary])).await
    };
    let late_follower = late.follower().await;
    assert_eq!(late_follower.code(minted.token.expose()).await, "revoked");
    let role = blocking(|| cluster.cli(primary, &["ROLE"]));
    assert!(role.starts_with("slave"), "{role}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_seed_a_password_and_concurrent_creates_of_one_name() {
    let password = "s3cret-Pa55";
    let Some(cluster) = blocking(|| {
        RedisCluster::start_with_or_skip(Options {
            password: Some(password.into()),
            ..Options::default()
        })
    }) else {
        return;
    };
    let ports = cluster.ports();
    let dead = free_port();

    // The first seed is down: the next one answers.
    let url = cluster.url_with(&[dead, ports[1], ports[2]]);
    assert!(url.contains(password));
    let started = Instant::now();
    let b = backend(&url).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let debug = format!("{:?}", b.store);
    assert!(!debug.contains(password), "{debug}");
    assert!(debug.contains("cluster: true"), "{debug}");

    // Concurrent creates of one name, from two stores (as two issuers): one winner.
    let other = Arc::new(AnyStore::open(&cluster.url()).await.unwrap());
    let services = [
        Arc::new(b.service()),
        // On the backend's clock too: a token stamped with the wall clock would be "not yet
        // valid" to the follower below, whose clock stands at `start_time`.
        Arc::new(
            TokenService::new(other, Issuer::new(b.ring.clone()).unwrap())
                .with_clock(b.clock.clone()),
        ),
    ];
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let service = services[i % 2].clone();
            tokio::spawn(async move { service.create(&caller(), new_token("contested")).await })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(minted) => winners.push(minted),
            Err(LifecycleError::NameTaken(_)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let service = b.service();
    assert_eq!(service.list().await.unwrap().len(), 1);
    let live = service.get_by_name("contested").await.unwrap().unwrap();
    assert_eq!(live.id, winners[0].record.id);
    let refused = service
        .audit(0, 100)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.entry.outcome == "name_taken")
        .count();
    assert_eq!(refused, 23);
    let follower = b.follower().await;
    assert_eq!(follower.code(winners[0].token.expose()).await, "ok");

    // A wrong password: a configuration error that does not show it.
    let wrong = cluster.url().replace(password, "Wr0ng-Guess");
    let err = RedisStore::open(&wrong).await.unwrap_err();
    let message = err.to_string();
    eprintln!("wrong password: {message}");
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    assert!(!message.contains("Wr0ng-Guess"), "{message}");
    assert!(message.contains("password"), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", ports[0])),
        "{message}"
    );
    // No password, where one is needed.
    let none = format!("redis+cluster://127.0.0.1:{}", ports[0]);
    let err = RedisStore::open(&none).await.unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("requires a password"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_errors_name_the_seeds_and_never_the_password() {
    // No seed answers: unavailable, naming each seed, soon.
    let (a, b) = (free_port(), free_port());
    let started = Instant::now();
    let err = RedisStore::open(&format!(
        "redis+cluster://:pw-unseen@127.0.0.1:{a},127.0.0.1:{b}"
    ))
    .await
    .unwrap_err();
    let message = err.to_string();
    eprintln!("no seed: {message}");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    for port in [a, b] {
        assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    }
    assert!(!message.contains("pw-unseen"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Malformed cluster URLs: configuration errors that hide the password and show the form.
    for url in [
        "redis+cluster://:hunter22@",
        "redis+cluster://:hunter22@127.0.0.1:7000,,127.0.0.1:7001",
        "redis+cluster://:hunter22@127.0.0.1:7000,127.0.0.1:notaport",
        "redis+cluster://:hunter22@127.0.0.1:7000/3",
        "rediss+cluster://:hunter22@127.0.0.1:7000/x",
    ] {
        let err = RedisStore::open(url).await.unwrap_err();
        let message = err.to_string();
        eprintln!("{url:?}: {message}");
        assert!(matches!(err, StoreError::Config(_)), "{url}: {err:?}");
        assert!(!message.contains("hunter22"), "{url}: {message}");
    }
    let err = RedisStore::open_with_ca("redis+cluster://127.0.0.1:1", "p", b"")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");

    // A single Redis named as a cluster: said plainly.
    let Some(server) = blocking(RedisServer::start_or_skip) else {
        return;
    };
    let url = format!("redis+cluster://127.0.0.1:{}", server.port());
    let err = RedisStore::open(&url).await.unwrap_err();
    eprintln!("not a cluster: {err}");
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    assert!(
        err.to_string().contains("not a Redis Cluster node"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_cluster_with_a_private_ca_works_and_an_unknown_ca_is_refused() {
    if !RedisCluster::available() {
        // Says why, or fails under CI.
        assert!(RedisCluster::start_or_skip().is_none());
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let (files, ca_pem) = TlsFiles::generate(certs.path());
    let cluster = blocking(|| {
        RedisCluster::start_with(Options {
            password: Some("tls-Pa55".into()),
            tls: Some(files),
            ..Options::default()
        })
    });
    let url = cluster.url();
    assert!(url.starts_with("rediss+cluster://"), "{url}");
    let store = Arc::new(
        RedisStore::open_with_ca(&url, "tessera", ca_pem.as_bytes())
            .await
            .unwrap(),
    );
    let debug = format!("{store:?}");
    assert!(debug.contains("tls: true") && debug.contains("cluster: true"));
    assert!(!debug.contains("tls-Pa55"), "{debug}");

    let dir = tempfile::tempdir().unwrap();
    keys::generate_into(&dir.path().join("keys"), Utc::now()).unwrap();
    let ring = Arc::new(KeyRing::load_dir(&dir.path().join("keys")).unwrap());
    let service = TokenService::new(store.clone(), Issuer::new(ring).unwrap());
    let minted = service
        .create(&caller(), new_token("tls-bot"))
        .await
        .unwrap();
    // The blocking feed read runs on a cluster connection of its own, over TLS too.
    let follower = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .changes_since(FeedPosition::default(), Duration::from_secs(10))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    service
        .regenerate(&caller(), minted.record.id, Expiry::Days(7), None)
        .await
        .unwrap();
    let page = follower.await.unwrap().unwrap();
    assert!(
        matches!(&page, FeedPage::Changes(c) if c.len() == 1 && c[0].id == minted.record.id),
        "{page:?}"
    );
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!((snapshot.revision, snapshot.entries.len()), (1, 1));

    // The public web roots do not know this CA.
    let err = RedisStore::open(&url).await.unwrap_err();
    let message = err.to_string();
    eprintln!("unknown CA: {message}");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(message.contains("127.0.0.1:"), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    assert!(!message.contains("tls-Pa55"), "{message}");
}
