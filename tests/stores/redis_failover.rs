//! Redis high availability on real processes: writes that wait for replicas
//! (`--redis-min-replicas`), and a primary found through Sentinel that is killed and replaced.
//!
//! Without `redis-server` on PATH a plain `cargo test` skips these with a message naming the
//! binary; with `CI=true` they fail instead.

#![cfg(feature = "redis")]

use crate::support::binary::Sandbox;
use crate::support::redis_sentinel::{replication, start_replica, wait_until, SentinelSetup};
use crate::support::redis_server::RedisServer;
use crate::support::writes::{audit, create, delete, prefix, record};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tessera::model::{Action, FeedPage};
use tessera::store::{AnyStore, RedisStore, StoreError, StoreOptions, TokenStore};
use uuid::Uuid;

fn waiting_for(replicas: u32, timeout_ms: u64) -> StoreOptions {
    StoreOptions {
        redis_min_replicas: replicas,
        redis_wait_timeout: Duration::from_millis(timeout_ms),
    }
}

/// Whether the Redis on `port` holds the record of `id` under `prefix`.
fn holds(port: u16, prefix: &str, id: Uuid) -> bool {
    crate::support::redis_sentinel::query::<bool>(
        port,
        &["HEXISTS", &format!("{{{prefix}}}:records"), &id.to_string()],
    )
    .unwrap_or(false)
}

fn assert_unsure_and_short(err: &StoreError, acked: u32, wanted: u32) {
    match err {
        StoreError::Unavailable(message) => {
            assert!(
                message.contains(&format!("only {acked} of the {wanted} replicas")),
                "{message}"
            );
            assert!(message.contains("may have been applied"), "{message}");
            assert!(message.contains("--redis-min-replicas"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_for_its_replicas_and_fails_unavailable_when_too_few_acknowledge() {
    let Some(primary) = RedisServer::start_or_skip() else {
        return;
    };
    let mut replica = start_replica(&primary);
    let prefix = prefix();
    let store = RedisStore::open_with_options(&primary.url(), &prefix, waiting_for(1, 1000))
        .await
        .unwrap();

    // One replica is asked for and one answers: the write succeeds, and the replica has it
    // already when the store says so.
    let a = record("a");
    store.commit(create(&a)).await.unwrap();
    assert!(holds(replica.port(), &prefix, a.id));
    store.append_audit(audit(Action::Create, &a)).await.unwrap();

    // Two are asked for, one exists: the write fails after the wait, and says it may have been
    // applied, which it was (on the primary and its replica).
    let strict = RedisStore::open_with_options(&primary.url(), &prefix, waiting_for(2, 300))
        .await
        .unwrap();
    let b = record("b");
    let started = Instant::now();
    let err = strict.commit(create(&b)).await.unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_unsure_and_short(&err, 1, 2);
    assert!(store.get(b.id).await.unwrap().is_some());
    // A write the store refuses changed nothing, so it has no replicas to wait for.
    let clash = record("a");
    match strict.commit(create(&clash)).await {
        Err(StoreError::NameTaken(name)) => assert_eq!(name, "a"),
        other => panic!("expected NameTaken, got {other:?}"),
    }

    // The replica goes away: every kind of write fails as unavailable, maybe applied.
    replica.kill();
    wait_until(
        "the primary sees no replica",
        Duration::from_secs(10),
        || {
            replication(primary.port())
                .get("connected_slaves")
                .map(String::as_str)
                == Some("0")
        },
    );
    let c = record("c");
    let err = store.commit(create(&c)).await.unwrap_err();
    assert_unsure_and_short(&err, 0, 1);
    assert!(
        store.get(c.id).await.unwrap().is_some(),
        "applied on the primary"
    );
    let err = store
        .append_audit(audit(Action::Create, &c))
        .await
        .unwrap_err();
    assert_unsure_and_short(&err, 0, 1);
    let err = store.commit(delete(&c)).await.unwrap_err();
    assert_unsure_and_short(&err, 0, 1);
    // While a write waits in vain, reads are not held up behind it.
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.commit(create(&record("e"))).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let read = Instant::now();
    assert!(store.get(a.id).await.unwrap().is_some());
    assert!(
        read.elapsed() < Duration::from_millis(500),
        "{:?}",
        read.elapsed()
    );
    assert_unsure_and_short(&waiting.await.unwrap().unwrap_err(), 0, 1);

    // A store that does not wait still writes.
    let relaxed = RedisStore::open_with_prefix(&primary.url(), &prefix)
        .await
        .unwrap();
    relaxed.commit(create(&record("d"))).await.unwrap();
}

/// What a failover does to a follower when the promoted replica had not received the last
/// writes: the follower saw revision 3 on the old primary; the new primary gives revision 3 to
/// another change. Told by its tag, the follower reloads instead of taking itself to be up to
/// date (which it did before changes were tagged, and so missed the new change for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_saw_writes_a_promoted_replica_lost_reloads() {
    let Some(primary) = RedisServer::start_or_skip() else {
        return;
    };
    let replica = start_replica(&primary);
    let prefix = prefix();
    let old = RedisStore::open_with_prefix(&primary.url(), &prefix)
        .await
        .unwrap();
    let tokens: Vec<_> = ["a", "b", "c", "d"].map(record).into();
    for token in &tokens {
        old.commit(create(token)).await.unwrap();
    }
    old.commit(delete(&tokens[0])).await.unwrap();
    old.commit(delete(&tokens[1])).await.unwrap();
    let rev = format!("{{{prefix}}}:rev");
    wait_until(
        "the replica has revision 2",
        Duration::from_secs(10),
        || {
            crate::support::redis_sentinel::query::<Option<String>>(replica.port(), &["GET", &rev])
                .ok()
                .flatten()
                .as_deref()
                == Some("2")
        },
    );
    // The replica is cut off and promoted, as Sentinel does; the old primary takes one more
    // write first, which the follower sees and the new primary never gets.
    crate::support::redis_sentinel::query::<String>(replica.port(), &["REPLICAOF", "NO", "ONE"])
        .unwrap();
    old.commit(delete(&tokens[2])).await.unwrap();
    let seen = match old.changes_since(Default::default(), Duration::ZERO).await {
        Ok(FeedPage::Changes(changes)) if changes.len() == 3 => changes[2].position(),
        other => panic!("expected three changes on the old primary, got {other:?}"),
    };
    let new = RedisStore::open_with_prefix(&replica.url(), &prefix)
        .await
        .unwrap();
    new.commit(delete(&tokens[3])).await.unwrap();
    assert_eq!(new.snapshot().await.unwrap().revision, seen.revision);

    assert_eq!(
        new.changes_since(seen, Duration::ZERO).await.unwrap(),
        FeedPage::Reload,
        "revision 3 on the new primary is another change"
    );
    // A follower of the new primary's own history is served as usual.
    let own = new.snapshot().await.unwrap().position();
    assert_ne!(own, seen);
    assert_eq!(
        new.changes_since(own, Duration::ZERO).await.unwrap(),
        FeedPage::Changes(Vec::new())
    );
    // And the reloaded snapshot is the new primary's: `d` deleted, `c` not.
    let snapshot = new.snapshot().await.unwrap();
    let deleted: HashSet<Uuid> = snapshot.entries.iter().map(|(id, _)| *id).collect();
    assert!(deleted.contains(&tokens[3].id) && !deleted.contains(&tokens[2].id));
}

/// `tessera token` writing to Redis itself waits for replicas as `tessera serve` does: an
/// operator who asks for it gets no acknowledgement that one failover could take back.
#[test]
fn token_commands_that_write_wait_for_replicas_too() {
    let Some(primary) = RedisServer::start_or_skip() else {
        return;
    };
    let sandbox = Sandbox::new();
    let keys = sandbox.keys();
    let (url, keys) = (primary.url(), keys.display().to_string());
    let create = |name: &str, replicas: &str| {
        sandbox.run(&[
            "token",
            "create",
            "--store",
            &url,
            "--keys",
            &keys,
            "--name",
            name,
            "--expires",
            "7d",
            "--super-admin",
            "--redis-min-replicas",
            replicas,
            "--redis-wait-timeout",
            "300",
        ])
    };
    // No replica: the write fails after the wait, and says it may have been applied.
    let refused = create("waits", "1").expect(2);
    assert!(
        refused.stdout.is_empty(),
        "no token is shown: {}",
        refused.stdout
    );
    for part in ["only 0 of the 1 replicas", "may have been applied"] {
        assert!(refused.stderr.contains(part), "{}", refused.stderr);
    }
    create("does-not-wait", "0").expect(0);
    let _replica = start_replica(&primary);
    wait_until("the replica is in sync", Duration::from_secs(10), || {
        replication(primary.port())
            .get("connected_slaves")
            .map(String::as_str)
            == Some("1")
    });
    let created = create("waited-for", "1").expect(0);
    assert!(
        created.stdout.starts_with("v4.public."),
        "{}",
        created.stdout
    );
}

#[tokio::test]
async fn replica_options_are_refused_where_they_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file:{}", dir.path().join("t.redb").display());
    match AnyStore::open_with(&url, waiting_for(1, 1000)).await {
        Err(StoreError::Config(message)) => {
            assert!(message.contains("--redis-min-replicas 1"), "{message}");
            assert!(message.contains("embedded store"), "{message}");
        }
        other => panic!("expected a Config error, got {other:?}"),
    }
    assert!(AnyStore::open_with(&url, waiting_for(0, 1000))
        .await
        .is_ok());
    for bad in [0, 4001] {
        match AnyStore::open_with(&url, waiting_for(0, bad)).await {
            Err(StoreError::Config(message)) => {
                assert!(message.contains("wait timeout"), "{message}")
            }
            other => panic!("timeout {bad} ms: expected a Config error, got {other:?}"),
        }
    }
}

/// How long after the primary is killed the store must write again: the Sentinels take it as
/// down after 1 s, agree, elect a leader and promote a replica, and the other replica must
/// follow the new primary before a write waiting for one replica can succeed.
const RECOVERY_BOUND: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_sentinel_a_killed_primary_is_replaced_and_no_acknowledged_write_is_lost() {
    let Some(mut setup) = SentinelSetup::start_or_skip(2) else {
        return;
    };
    let prefix = prefix();
    let url = setup.url();
    let store = RedisStore::open_with_options(&url, &prefix, waiting_for(1, 1000))
        .await
        .unwrap();
    assert!(
        store.server().contains("tessera via Sentinel 127.0.0.1:"),
        "{}",
        store.server()
    );
    // A verifier: a store of its own that reads snapshots and follows the feed.
    let follower = RedisStore::open_with_prefix(&url, &prefix).await.unwrap();

    let mut live = Vec::new();
    let mut deleted = Vec::new();
    for i in 0..20 {
        let token = record(&format!("before-{i}"));
        store.commit(create(&token)).await.unwrap();
        if i % 4 == 0 {
            store.commit(delete(&token)).await.unwrap();
            deleted.push(token.id);
        } else {
            live.push(token.id);
        }
    }
    let seen = follower.snapshot().await.unwrap().position();
    assert_eq!(seen.revision, 5, "one revision per deletion");

    // SIGKILL the primary, then keep writing until writes succeed again.
    let old_port = setup.primary.port();
    setup.primary.kill();
    let killed = Instant::now();
    let mut unsure = Vec::new();
    let mut recovered = None;
    let mut after = Vec::new();
    let mut refusals = Vec::new();
    let mut n = 0;
    while after.len() < 6 {
        assert!(
            killed.elapsed() < RECOVERY_BOUND,
            "no write succeeded within {RECOVERY_BOUND:?} of the kill; refusals: {refusals:?}"
        );
        n += 1;
        let token = record(&format!("after-{n}"));
        match store.commit(create(&token)).await {
            Ok(_) => {
                recovered.get_or_insert(killed.elapsed());
                after.push(token);
            }
            Err(StoreError::Unavailable(why)) => {
                refusals.push(why);
                unsure.push(token.id);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("a write during the failover failed with {other:?}"),
        }
    }
    let recovered = recovered.unwrap();
    let new_port = setup.primary_port().expect("the Sentinels name a primary");
    assert_ne!(new_port, old_port, "a replica was promoted");
    for (i, token) in after.iter().enumerate() {
        if i % 2 == 0 {
            store.commit(delete(token)).await.unwrap();
            deleted.push(token.id);
        } else {
            live.push(token.id);
        }
    }

    // Every acknowledged write is there; no deleted token came back.
    for id in &live {
        assert!(
            store.get(*id).await.unwrap().is_some(),
            "live token {id} lost"
        );
    }
    for id in &deleted {
        assert!(
            store.get(*id).await.unwrap().is_none(),
            "deleted token {id} revived"
        );
    }
    // The verifier's feed goes on from where it was, on the new primary, without a restart.
    let started = Instant::now();
    let changes = loop {
        match follower.changes_since(seen, Duration::ZERO).await {
            Ok(FeedPage::Changes(changes)) => break changes,
            // Also when the new primary lacked the change the follower stood on.
            Ok(FeedPage::Reload) => panic!("the feed was lost in the failover"),
            Err(e) => {
                assert!(started.elapsed() < Duration::from_secs(10), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let fed: HashSet<Uuid> = changes.iter().map(|c| c.id).collect();
    for token in after.iter().step_by(2) {
        assert!(
            fed.contains(&token.id),
            "the feed lacks the deletion of {}",
            token.id
        );
    }
    let snapshot = follower.snapshot().await.unwrap();
    let gone: HashSet<Uuid> = snapshot
        .entries
        .iter()
        .filter(|(_, entry)| entry.deleted)
        .map(|(id, _)| *id)
        .collect();
    for id in &deleted {
        assert!(gone.contains(id), "the snapshot lacks the deletion of {id}");
    }
    let kept_unsure = {
        let mut kept = 0;
        for id in &unsure {
            kept += usize::from(store.get(*id).await.unwrap().is_some());
        }
        kept
    };
    eprintln!(
        "sentinel failover: first write acknowledged {recovered:?} after SIGKILL of the primary \
         (bound {RECOVERY_BOUND:?}); {} writes refused meanwhile, {kept_unsure} of them applied \
         after all; primary {old_port} -> {new_port}; refusals: {refusals:?}",
        unsure.len()
    );
}

#[tokio::test]
async fn a_sentinel_url_is_checked_and_its_password_never_shown() {
    for bad in [
        "redis+sentinel://",
        "redis+sentinel://h1:1",
        "redis+sentinel://:pw@h1:1,,h2:2/m/0",
        "redis+sentinel://:pw@h1:1/m/x",
        "redis+sentinel://:pw@h1:1/m/0/extra",
        "redis+sentinel://:pw@h1:1/m?x=1",
        "redis+sentinel://:pw@h1:1/bad name/0",
    ] {
        match RedisStore::open(bad).await {
            Err(StoreError::Config(message)) => {
                assert!(!message.contains("pw"), "{message}");
                assert!(message.contains("redis+sentinel://"), "{message}");
            }
            other => panic!("{bad}: expected a Config error, got {other:?}"),
        }
    }
    // No Sentinel answers: unavailable, naming the Sentinels and not the password.
    let port = crate::support::free_port();
    match RedisStore::open(&format!("redis+sentinel://:pw-unseen@127.0.0.1:{port}/m/0")).await {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(!message.contains("pw-unseen"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_write_waits_for_the_replicas_of_its_shard() {
    use crate::support::redis_cluster::{Options, RedisCluster};
    let Some(cluster) = RedisCluster::start_with_or_skip(Options {
        replicas: true,
        ..Options::default()
    }) else {
        return;
    };
    let prefix = prefix();
    let store = RedisStore::open_with_options(&cluster.url(), &prefix, waiting_for(1, 1000))
        .await
        .unwrap();
    let a = record("a");
    store.commit(create(&a)).await.unwrap();
    let strict = RedisStore::open_with_options(&cluster.url(), &prefix, waiting_for(2, 200))
        .await
        .unwrap();
    let err = strict.commit(create(&record("b"))).await.unwrap_err();
    assert_unsure_and_short(&err, 1, 2);
    assert!(store.get(a.id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_sentinel_the_password_in_the_url_reaches_the_nodes_and_is_never_shown() {
    let password = "s3cret/p@ss";
    let Some(setup) = SentinelSetup::start_as_or_skip(1, Some(password)) else {
        return;
    };
    let url = setup.url_with_password(password);
    let store = RedisStore::open_with_options(&url, &prefix(), waiting_for(1, 1000))
        .await
        .unwrap();
    let token = record("a");
    store.commit(create(&token)).await.unwrap();
    assert!(store.get(token.id).await.unwrap().is_some());

    let wrong = setup.url_with_password("wrong-unseen");
    match RedisStore::open(&wrong).await {
        Err(StoreError::Config(message)) => {
            assert!(
                message.contains("refused the user or password"),
                "{message}"
            );
            assert!(!message.contains("wrong-unseen"), "{message}");
        }
        other => panic!("expected a Config error, got {other:?}"),
    }
    match RedisStore::open(&setup.url()).await {
        Err(StoreError::Config(message)) => {
            assert!(message.contains("requires a password"), "{message}")
        }
        other => panic!("expected a Config error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_sentinel_a_verifier_follows_the_new_primary_without_a_restart() {
    use crate::support::backend::{caller, new_token};
    use std::sync::Arc;
    use tessera::lifecycle::{LifecycleError, TokenService};
    use tessera::mirror::{MirrorOptions, StateMirror};
    use tessera::{keys, Issuer, KeyRing, Verifier};

    let Some(mut setup) = SentinelSetup::start_or_skip(2) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    keys::generate_into(&dir.path().join("keys"), chrono::Utc::now()).unwrap();
    let ring = Arc::new(KeyRing::load_dir(&dir.path().join("keys")).unwrap());
    let store = AnyStore::open_with(&setup.url(), waiting_for(1, 1000))
        .await
        .unwrap();
    let service = TokenService::new(Arc::new(store), Issuer::new(ring.clone()).unwrap());
    // The verifier, with a store of its own, as on another machine.
    let bound = Duration::from_secs(30);
    let mirror = StateMirror::start(
        Arc::new(AnyStore::open(&setup.url()).await.unwrap()),
        MirrorOptions {
            bound,
            poll_wait: Duration::from_millis(200),
            ..MirrorOptions::default()
        },
    )
    .await
    .unwrap();
    let verifier = Verifier::new(ring.clone()).with_state(mirror.state());
    let code = |token: &str| verifier.verify(token).map_or_else(|e| e.code(), |_| "ok");
    let becomes = async |token: &str, want: &str, limit: Duration| {
        let started = Instant::now();
        while code(token) != want {
            assert!(started.elapsed() < limit, "{} after {limit:?}", code(token));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };

    let kept = service.create(&caller(), new_token("kept")).await.unwrap();
    let early = service.create(&caller(), new_token("early")).await.unwrap();
    let late = service.create(&caller(), new_token("late")).await.unwrap();
    service
        .delete(&caller(), early.record.id, None)
        .await
        .unwrap();
    becomes(early.token.expose(), "revoked", Duration::from_secs(5)).await;
    assert_eq!(code(late.token.expose()), "ok");

    setup.primary.kill();
    let killed = Instant::now();
    // An administrator deletes a token during the failover, trying until the store answers.
    loop {
        match service.delete(&caller(), late.record.id, None).await {
            // An earlier try that said it may have been applied was.
            Ok(_) | Err(LifecycleError::NotFound(_)) => break,
            Err(e) => {
                assert!(killed.elapsed() < RECOVERY_BOUND, "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let deleted = killed.elapsed();
    becomes(late.token.expose(), "revoked", Duration::from_secs(10)).await;
    let seen = killed.elapsed();
    assert_eq!(code(kept.token.expose()), "ok");
    assert_eq!(code(early.token.expose()), "revoked");
    assert!(seen < bound, "the verifier never went stale");
    eprintln!(
        "sentinel failover: a deletion was acknowledged {deleted:?} after SIGKILL of the primary \
         and enforced by the verifier {seen:?} after it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_sentinel_a_failover_of_a_live_primary_moves_writes_to_the_new_one_before_demotion() {
    use crate::support::redis_sentinel::query;
    let Some(setup) = SentinelSetup::start_or_skip(2) else {
        return;
    };
    let prefix = prefix();
    let store = RedisStore::open_with_options(&setup.url(), &prefix, waiting_for(1, 1000))
        .await
        .unwrap();
    let before = record("before");
    store.commit(create(&before)).await.unwrap();

    // The old primary stays up and is demoted: Sentinel makes it a replica of the new one.
    let old_port = setup.primary.port();
    let sentinel_port: u16 = setup
        .url()
        .trim_start_matches("redis+sentinel://127.0.0.1:")
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let _: String = query(sentinel_port, &["SENTINEL", "FAILOVER", "tessera"]).unwrap();
    let started = Instant::now();
    wait_until("a replica is promoted", RECOVERY_BOUND, || {
        setup.primary_port().is_some_and(|p| p != old_port)
    });
    let promoted = started.elapsed();
    // Writes the old primary takes before the store notices the promotion can be lost, even
    // confirmed by a replica (one that then follows the new primary): the store asks the
    // Sentinels every second, so give it three.
    tokio::time::sleep(3 * Duration::from_secs(1)).await;
    let mut refusals = Vec::new();
    let mut attempts = 0;

    // Writes reach the new primary, and a read right after a write sees it.
    let mut written = Vec::new();
    while written.len() < 5 {
        assert!(started.elapsed() < RECOVERY_BOUND, "no write succeeded");
        attempts += 1;
        let token = record(&format!("after-{attempts}"));
        match store.commit(create(&token)).await {
            Ok(_) => {
                assert!(store.get(token.id).await.unwrap().is_some());
                written.push(token.id);
            }
            Err(StoreError::Unavailable(why)) => {
                refusals.push((started.elapsed(), why));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    let written_after = started.elapsed();
    // The store went to the new primary before the Sentinels demoted the old one (they do so
    // only about 10 s after the promotion), as it asks them every second.
    assert_eq!(
        replication(old_port).get("role").map(String::as_str),
        Some("master"),
        "the old primary was demoted before the writes: the test shows nothing"
    );
    wait_until("the old primary is demoted", RECOVERY_BOUND, || {
        replication(old_port).get("role").map(String::as_str) == Some("slave")
    });
    let demoted = started.elapsed();
    let new_port = setup.primary_port().unwrap();
    for id in written.iter().chain([&before.id]) {
        assert!(holds(new_port, &prefix, *id), "{id} not on the new primary");
    }
    eprintln!(
        "sentinel manual failover: promoted after {promoted:?}, 5 writes done after \
         {written_after:?}, old primary demoted after {demoted:?}; refusals: {refusals:?}"
    );
}
