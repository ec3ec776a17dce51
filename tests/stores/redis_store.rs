//! The Redis store on a real `redis-server` (each test starts its own): what is particular to
//! Redis. The lifecycle rules every store keeps are in `store_conformance.rs`.
//!
//! Without `redis-server` on PATH a plain `cargo test` skips these with a message naming the
//! binary; with `CI=true` they fail instead.

#![cfg(feature = "redis")]

use crate::support::backend::position;
use crate::support::free_port;
use crate::support::redis_server::{Options, RedisServer, TlsFiles};
use crate::support::writes::*;
use chrono::Duration as ChronoDuration;
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::model::{Action, FeedPage, FeedPosition, StateChange, StateRecord, TokenRecord};
use tessera::store::{RedisStore, StoreError, TokenStore, FEED_RETENTION};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Helpers (the records and writes themselves are in `support::writes`)

async fn raw(server: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Every key of the store under `prefix`.
fn store_keys(prefix: &str) -> Vec<String> {
    [
        "records",
        "names",
        "state",
        "drops",
        "rev",
        "feed",
        "audit",
        "outbox",
        "outbox_due",
    ]
    .iter()
    .map(|k| format!("{{{prefix}}}:{k}"))
    .collect()
}

/// `DUMP` of every key of the store: equal dumps, equal data.
async fn dump(conn: &mut MultiplexedConnection, prefix: &str) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for key in store_keys(prefix) {
        let value: Option<Vec<u8>> = redis::cmd("DUMP")
            .arg(&key)
            .query_async(conn)
            .await
            .unwrap();
        out.insert(key, value);
    }
    out
}

/// Every change in the feed after `from`, following pages, asserting there is no gap.
async fn whole_feed(store: &RedisStore, from: u64) -> Vec<StateChange> {
    whole_feed_from(store, position(store, from).await).await
}

/// Every change in the feed after `at`, following pages, asserting there is no gap.
async fn whole_feed_from(store: &RedisStore, mut at: FeedPosition) -> Vec<StateChange> {
    let mut out: Vec<StateChange> = Vec::new();
    loop {
        match store.changes_since(at, Duration::ZERO).await.unwrap() {
            FeedPage::Changes(changes) if changes.is_empty() => return out,
            FeedPage::Changes(changes) => {
                for c in changes {
                    assert_eq!(c.revision, at.revision + 1, "the feed has a gap");
                    at = c.position();
                    out.push(c);
                }
            }
            FeedPage::Reload => panic!("unexpected Reload after {at:?}"),
        }
    }
}

/// The state map the feed describes up to `revision`.
fn replay(feed: &[StateChange], revision: u64) -> HashMap<Uuid, StateRecord> {
    let mut map = HashMap::new();
    for c in feed.iter().take_while(|c| c.revision <= revision) {
        match &c.entry {
            Some(e) => map.insert(c.id, e.clone()),
            None => map.remove(&c.id),
        };
    }
    map
}

async fn started() -> Option<(RedisServer, RedisStore, String)> {
    let server = RedisServer::start_or_skip()?;
    let prefix = prefix();
    let store = RedisStore::open_with_prefix(&server.url(), &prefix)
        .await
        .unwrap();
    Some((server, store, prefix))
}

// ---------------------------------------------------------------------------------------------
// Opening

#[tokio::test]
async fn a_password_in_the_url_works_and_a_wrong_one_is_refused_without_showing_it() {
    let Some(server) = RedisServer::start_with_or_skip(Options {
        password: Some("s3cret-Pa55".into()),
        ..Options::default()
    }) else {
        return;
    };
    let url = server.url();
    assert!(url.contains(":s3cret-Pa55@"));
    let store = RedisStore::open(&url).await.unwrap();
    let token = record("with-password");
    store.commit(create(&token)).await.unwrap();
    assert_eq!(store.get(token.id).await.unwrap(), Some(token.clone()));
    let debug = format!("{store:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(
        debug.contains(&format!("127.0.0.1:{}", server.port())),
        "{debug}"
    );

    let wrong = url.replace("s3cret-Pa55", "Wr0ng-Guess");
    let err = RedisStore::open(&wrong).await.unwrap_err();
    let message = err.to_string();
    eprintln!("wrong password: {message}");
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    assert!(!message.contains("Wr0ng-Guess"), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", server.port())),
        "{message}"
    );
    assert!(message.contains("password"), "{message}");

    let none = format!("redis://127.0.0.1:{}/0", server.port());
    let err = RedisStore::open(&none).await.unwrap_err();
    eprintln!("no password: {err}");
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("requires a password"), "{err}");
}

#[tokio::test]
async fn a_bad_url_or_prefix_is_a_config_error_that_hides_the_password() {
    for url in [
        "http://:hunter22@127.0.0.1:6379/0",
        "redis://:hunter22@127.0.0.1:notaport/0",
        "redis://:hunter22@127.0.0.1:6379/notadb",
        "redis//:hunter22@127.0.0.1",
        "unix:///tmp/redis.sock",
        "",
    ] {
        let err = RedisStore::open(url).await.unwrap_err();
        let message = err.to_string();
        eprintln!("{url:?}: {message}");
        assert!(matches!(err, StoreError::Config(_)), "{url}: {err:?}");
        assert!(!message.contains("hunter22"), "{url}: {message}");
        assert!(
            message.contains("redis://"),
            "{url}: the message shows the form: {message}"
        );
    }
    for prefix in ["", "a{b}", "has space", &"x".repeat(65)] {
        let err = RedisStore::open_with_prefix("redis://127.0.0.1:1/0", prefix)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{prefix:?}: {err:?}");
    }
    let err = RedisStore::open_with_ca("redis://127.0.0.1:1/0", "p", b"")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_named() {
    let port = free_port();
    let started = Instant::now();
    let err = RedisStore::open(&format!("redis://:pw-unseen@127.0.0.1:{port}/0"))
        .await
        .unwrap_err();
    let message = err.to_string();
    eprintln!("unreachable: {message}");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("pw-unseen"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Layout and atomicity

#[tokio::test]
async fn every_key_shares_one_hash_tag() {
    let Some(server) = RedisServer::start_or_skip() else {
        return;
    };
    // The default prefix, on a server of its own, so every key there is the store's.
    let store = RedisStore::open(&server.url()).await.unwrap();
    let a = record("tag-a");
    let b = record("tag-b");
    store.commit(create(&a)).await.unwrap();
    store.commit(create(&b)).await.unwrap();
    let past = now() - ChronoDuration::days(1);
    let (w, _a2) = replace(&a, Some(Some(min_ver_entry(2, Some(past)))));
    store.commit(w).await.unwrap();
    store.commit(delete(&b)).await.unwrap();
    store.append_audit(audit(Action::Update, &a)).await.unwrap();
    assert_eq!(store.prune_state(now()).await.unwrap(), 1);
    store.snapshot().await.unwrap();
    store
        .changes_since(FeedPosition::default(), Duration::from_millis(10))
        .await
        .unwrap();
    store.get_by_name("tag-a").await.unwrap().unwrap();

    let mut conn = raw(&server).await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    let tags: BTreeSet<&str> = keys
        .iter()
        .map(|k| {
            let open = k.find('{').unwrap_or_else(|| panic!("{k} has no hash tag"));
            let close = k[open..]
                .find('}')
                .unwrap_or_else(|| panic!("{k} has no hash tag"));
            &k[open..=open + close]
        })
        .collect();
    assert_eq!(tags, BTreeSet::from(["{tessera}"]), "{keys:?}");
    let mut expected = store_keys("tessera");
    expected.sort();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn a_refused_write_changes_nothing() {
    let Some((server, store, prefix)) = started().await else {
        return;
    };
    let mut conn = raw(&server).await;
    let a = record("atomic-a");
    let b = record("atomic-b");
    store.commit(create(&a)).await.unwrap();
    store.commit(create(&b)).await.unwrap();
    let (w, a2) = replace(&a, Some(Some(min_ver_entry(2, None))));
    assert_eq!(store.commit(w).await.unwrap().state_revision, Some(1));
    let before = dump(&mut conn, &prefix).await;

    // A Replace with a stale revision.
    let (w, _) = replace(&a, Some(Some(min_ver_entry(3, None))));
    match store.commit(w).await.unwrap_err() {
        StoreError::Conflict {
            id,
            expected,
            actual,
        } => assert_eq!((id, expected, actual), (a.id, 1, 2)),
        e => panic!("{e:?}"),
    }
    // A Delete with a stale revision.
    match store.commit(delete(&a)).await.unwrap_err() {
        StoreError::Conflict {
            expected, actual, ..
        } => assert_eq!((expected, actual), (1, 2)),
        e => panic!("{e:?}"),
    }
    // Unknown ids.
    let ghost = record("atomic-ghost");
    assert!(matches!(
        store.commit(delete(&ghost)).await.unwrap_err(),
        StoreError::NotFound(id) if id == ghost.id
    ));
    let (w, _) = replace(&ghost, Some(None));
    assert!(matches!(
        store.commit(w).await.unwrap_err(),
        StoreError::NotFound(_)
    ));
    // A taken name; an existing id.
    assert!(matches!(
        store.commit(create(&record("atomic-b"))).await.unwrap_err(),
        StoreError::NameTaken(name) if name == "atomic-b"
    ));
    let mut same_id = record("atomic-c");
    same_id.id = b.id;
    match store.commit(create(&same_id)).await.unwrap_err() {
        StoreError::Conflict {
            expected, actual, ..
        } => assert_eq!((expected, actual), (0, 0)),
        e => panic!("{e:?}"),
    }
    assert_eq!(
        dump(&mut conn, &prefix).await,
        before,
        "a refused write changed something"
    );

    // And the right revision goes through.
    let (w, _) = replace(&a2, Some(None));
    assert_eq!(store.commit(w).await.unwrap().state_revision, Some(2));
}

#[tokio::test]
async fn a_write_that_could_fail_halfway_is_refused_before_it_starts() {
    let Some((server, store, prefix)) = started().await else {
        return;
    };
    let keys = store_keys(&prefix);
    let (records, audit_key, rev, feed) = (&keys[0], &keys[6], &keys[4], &keys[5]);
    let mut conn = raw(&server).await;
    let a = record("halfway-a");
    store.commit(create(&a)).await.unwrap();
    let (w, a2) = replace(&a, Some(Some(min_ver_entry(2, None))));
    store.commit(w).await.unwrap();

    // An unreadable record: Corrupt, and nothing else touched.
    let broken = Uuid::new_v4();
    let _: () = redis::cmd("HSET")
        .arg(records)
        .arg(broken.to_string())
        .arg("not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    let before = dump(&mut conn, &prefix).await;
    let mut victim = record("halfway-broken");
    victim.id = broken;
    let err = store.commit(delete(&victim)).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(matches!(
        store.get(broken).await.unwrap_err(),
        StoreError::Corrupt(_)
    ));
    assert_eq!(dump(&mut conn, &prefix).await, before);

    // The last key a write touches has the wrong type: refused before the record changes.
    let _: () = redis::cmd("RENAME")
        .arg(audit_key)
        .arg("elsewhere")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(audit_key)
        .arg("a string")
        .query_async(&mut conn)
        .await
        .unwrap();
    let before = dump(&mut conn, &prefix).await;
    let (w, _) = replace(&a2, Some(Some(min_ver_entry(3, None))));
    let err = store.commit(w).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("audit")),
        "{err:?}"
    );
    assert_eq!(dump(&mut conn, &prefix).await, before);
    let err = store
        .append_audit(audit(Action::Update, &a))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    let _: () = redis::cmd("RENAME")
        .arg("elsewhere")
        .arg(audit_key)
        .query_async(&mut conn)
        .await
        .unwrap();

    // A feed ahead of the counter (XADD would fail after the record was written).
    let _: String = redis::cmd("XADD")
        .arg(feed)
        .arg("100-0")
        .arg("change")
        .arg("{}")
        .query_async(&mut conn)
        .await
        .unwrap();
    let before = dump(&mut conn, &prefix).await;
    let (w, _) = replace(&a2, Some(None));
    let err = store.commit(w).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("revision")),
        "{err:?}"
    );
    assert_eq!(dump(&mut conn, &prefix).await, before);

    // A counter that is not a number.
    let _: () = redis::cmd("SET")
        .arg(rev)
        .arg("abc")
        .query_async(&mut conn)
        .await
        .unwrap();
    let before = dump(&mut conn, &prefix).await;
    let (w, _) = replace(&a2, Some(None));
    assert!(matches!(
        store.commit(w).await.unwrap_err(),
        StoreError::Corrupt(_)
    ));
    assert!(matches!(
        store.snapshot().await.unwrap_err(),
        StoreError::Corrupt(_)
    ));
    assert_eq!(dump(&mut conn, &prefix).await, before);
    // A write that does not touch the state map does not need the counter.
    let (w, _) = replace(&a2, None);
    assert_eq!(store.commit(w).await.unwrap().state_revision, None);
}

#[tokio::test]
async fn audit_positions_start_at_one_and_page() {
    let Some((_server, store, _)) = started().await else {
        return;
    };
    let a = record("audit-a");
    store.commit(create(&a)).await.unwrap();
    for n in 2..=5 {
        assert_eq!(
            store.append_audit(audit(Action::Update, &a)).await.unwrap(),
            n
        );
    }
    let all = store.audit(0, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(all[0].entry.action, Action::Create);
    let page = store.audit(2, 2).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4]);
    assert!(store.audit(0, 0).await.unwrap().is_empty());
    assert!(store.audit(5, 10).await.unwrap().is_empty());
    assert!(store.audit(u64::MAX, 10).await.unwrap().is_empty());
    assert_eq!(store.audit(4, usize::MAX).await.unwrap().len(), 1);
}

#[tokio::test]
async fn prune_drops_entries_due_by_the_second_each_with_its_revision_in_batches() {
    let Some((server, store, prefix)) = started().await else {
        return;
    };
    let at = now();
    let mut records = Vec::new();
    for (i, drop_after) in [
        Some(at - ChronoDuration::seconds(1)),
        Some(at),
        Some(at + ChronoDuration::seconds(1)),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let r = record(&format!("prune-{i}"));
        store.commit(create(&r)).await.unwrap();
        let (w, _) = replace(&r, Some(Some(min_ver_entry(2, drop_after))));
        store.commit(w).await.unwrap();
        records.push(r);
    }
    assert_eq!(store.prune_state(at).await.unwrap(), 1);
    let snap = store.snapshot().await.unwrap();
    assert_eq!(snap.revision, 5);
    assert_eq!(snap.entries.len(), 3);
    assert!(!snap.entries.iter().any(|(id, _)| *id == records[0].id));
    let feed = whole_feed(&store, 4).await;
    assert_eq!(feed.len(), 1);
    assert_eq!((feed[0].id, feed[0].entry.clone()), (records[0].id, None));
    assert_eq!(store.prune_state(at).await.unwrap(), 0);

    // More due entries than one script drops: written straight into Redis, then pruned.
    let keys = store_keys(&prefix);
    let mut conn = raw(&server).await;
    let mut pipe = redis::pipe();
    let old = deleted_entry(Some(at - ChronoDuration::days(1)));
    let ids: Vec<Uuid> = (0..2500).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        pipe.cmd("HSET")
            .arg(&keys[2])
            .arg(id.to_string())
            .arg(serde_json::to_string(&old).unwrap())
            .ignore();
        pipe.cmd("ZADD")
            .arg(&keys[3])
            .arg(old.drop_after.unwrap().timestamp())
            .arg(id.to_string())
            .ignore();
    }
    let _: () = pipe.query_async(&mut conn).await.unwrap();
    assert_eq!(store.prune_state(at).await.unwrap(), 2500);
    let feed = whole_feed(&store, 5).await;
    assert_eq!(feed.len(), 2500);
    assert_eq!(
        feed.iter().map(|c| c.id).collect::<BTreeSet<_>>(),
        ids.iter().copied().collect::<BTreeSet<_>>()
    );
    assert!(feed.iter().all(|c| c.entry.is_none()));
    let snap = store.snapshot().await.unwrap();
    assert_eq!((snap.revision, snap.entries.len()), (2505, 3));
}

// ---------------------------------------------------------------------------------------------
// The feed

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_since_wakes_on_a_change_and_returns_after_the_wait_when_none() {
    let Some((_server, store, _)) = started().await else {
        return;
    };
    let a = record("feed-a");
    store.commit(create(&a)).await.unwrap();

    // Nothing happens: empty after about the wait.
    let t = Instant::now();
    let page = store
        .changes_since(FeedPosition::default(), Duration::from_millis(300))
        .await
        .unwrap();
    let waited = t.elapsed();
    assert_eq!(page, FeedPage::Changes(Vec::new()));
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_millis(1000),
        "{waited:?}"
    );
    // No wait: at once.
    let t = Instant::now();
    assert_eq!(
        store
            .changes_since(FeedPosition::default(), Duration::ZERO)
            .await
            .unwrap(),
        FeedPage::Changes(Vec::new())
    );
    assert!(t.elapsed() < Duration::from_millis(200));

    // Two followers wait; a change lands 200 ms later; both wake at once, and the shared
    // connection keeps serving other commands while they wait.
    let followers: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let page = store
                    .changes_since(FeedPosition::default(), Duration::from_secs(10))
                    .await
                    .unwrap();
                (page, t.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    assert!(store.get(a.id).await.unwrap().is_some());
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (w, _) = replace(&a, Some(Some(min_ver_entry(2, None))));
    store.commit(w).await.unwrap();
    for follower in followers {
        let (page, waited) = follower.await.unwrap();
        let FeedPage::Changes(changes) = page else {
            panic!("{page:?}")
        };
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].revision, changes[0].id), (1, a.id));
        assert_eq!(changes[0].entry, Some(min_ver_entry(2, None)));
        assert!(
            waited >= Duration::from_millis(150) && waited < Duration::from_millis(1000),
            "{waited:?}"
        );
    }
}

#[tokio::test]
async fn a_follower_ahead_of_the_store_or_behind_the_trimmed_feed_reloads() {
    let Some((server, store, prefix)) = started().await else {
        return;
    };
    let mut a = record("reload-a");
    store.commit(create(&a)).await.unwrap();
    for v in 2..=6 {
        let (w, next) = replace(&a, Some(Some(min_ver_entry(v, None))));
        store.commit(w).await.unwrap();
        a = next;
    }
    // Ahead: this store never gave revision 6.
    assert_eq!(
        store
            .changes_since(
                FeedPosition {
                    revision: 6,
                    tag: 1
                },
                Duration::from_millis(50)
            )
            .await
            .unwrap(),
        FeedPage::Reload
    );
    assert_eq!(whole_feed(&store, 0).await.len(), 5);

    let at3 = position(&store, 3).await;
    // Trimmed: the changes up to 2 are gone.
    let feed_key = &store_keys(&prefix)[5];
    let mut conn = raw(&server).await;
    let _: u64 = redis::cmd("XTRIM")
        .arg(feed_key)
        .arg("MINID")
        .arg("3-0")
        .query_async(&mut conn)
        .await
        .unwrap();
    // A follower whose own change was trimmed reloads too, even with the next one still
    // there: its change can no longer be told from another given the same revision.
    for behind in [0, 1, 2] {
        let at = FeedPosition {
            revision: behind,
            tag: 0,
        };
        assert_eq!(
            store.changes_since(at, Duration::ZERO).await.unwrap(),
            FeedPage::Reload
        );
    }
    let revisions: Vec<u64> = whole_feed_from(&store, at3)
        .await
        .iter()
        .map(|c| c.revision)
        .collect();
    assert_eq!(revisions, [4, 5]);
}

#[tokio::test]
async fn the_feed_is_trimmed_to_its_retention_and_pages_by_a_thousand() {
    let Some((server, store, prefix)) = started().await else {
        return;
    };
    // A long history written straight into Redis (as the store would have), then one commit,
    // whose XADD trims it.
    let keys = store_keys(&prefix);
    let (rev_key, feed_key) = (&keys[4], &keys[5]);
    let mut conn = raw(&server).await;
    let history = FEED_RETENTION + 500;
    let change = r#"{"id":"00000000-0000-0000-0000-000000000001","entry":null}"#;
    let t = Instant::now();
    for chunk in (1..=history).collect::<Vec<_>>().chunks(10_000) {
        let mut pipe = redis::pipe();
        for r in chunk {
            pipe.cmd("XADD")
                .arg(feed_key)
                .arg(format!("{r}-0"))
                .arg("change")
                .arg(change)
                .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg(rev_key)
        .arg(history)
        .query_async(&mut conn)
        .await
        .unwrap();
    eprintln!("wrote {history} feed entries in {:?}", t.elapsed());

    let a = record("retention-a");
    store.commit(create(&a)).await.unwrap();
    let (w, _) = replace(&a, Some(Some(min_ver_entry(2, None))));
    assert_eq!(
        store.commit(w).await.unwrap().state_revision,
        Some(history + 1)
    );
    let len: u64 = redis::cmd("XLEN")
        .arg(feed_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        (FEED_RETENTION..history).contains(&len),
        "the feed holds {len} entries"
    );
    let oldest = history + 1 - len + 1;
    // Entries written here have no tag (as before tags existed): a follower's tag is 0.
    let untagged = |revision| FeedPosition { revision, tag: 0 };
    for behind in [oldest - 2, oldest - 1] {
        assert_eq!(
            store
                .changes_since(untagged(behind), Duration::ZERO)
                .await
                .unwrap(),
            FeedPage::Reload
        );
    }
    assert_eq!(
        store
            .changes_since(FeedPosition::default(), Duration::ZERO)
            .await
            .unwrap(),
        FeedPage::Reload
    );
    match store
        .changes_since(untagged(oldest), Duration::ZERO)
        .await
        .unwrap()
    {
        FeedPage::Changes(changes) => {
            assert_eq!(changes.len(), 1000);
            assert_eq!(changes[0].revision, oldest + 1);
            assert_eq!(changes[999].revision, oldest + 1000);
        }
        page => panic!("{page:?}"),
    }
    match store
        .changes_since(untagged(history), Duration::ZERO)
        .await
        .unwrap()
    {
        FeedPage::Changes(changes) => {
            assert_eq!(changes.len(), 1);
            assert_eq!((changes[0].revision, changes[0].id), (history + 1, a.id));
        }
        page => panic!("{page:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_under_concurrent_writes_is_never_behind_and_the_feed_makes_it_exact() {
    let Some((_server, store, _)) = started().await else {
        return;
    };
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tokens = Vec::new();
                for i in 0..5 {
                    let r = record(&format!("snap-{w}-{i}"));
                    store.commit(create(&r)).await.unwrap();
                    tokens.push(r);
                }
                for n in 0..75u32 {
                    let i = (n as usize * 7 + w) % tokens.len();
                    let state = if n % 3 == 2 {
                        None
                    } else {
                        Some(min_ver_entry(n + 2, None))
                    };
                    let (write, next) = replace(&tokens[i], Some(state));
                    store.commit(write).await.unwrap();
                    tokens[i] = next;
                }
            })
        })
        .collect();
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut snapshots = Vec::new();
            for _ in 0..60 {
                snapshots.push(store.snapshot().await.unwrap());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            snapshots
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    let snapshots = reader.await.unwrap();
    let feed = whole_feed(&store, 0).await;
    assert_eq!(feed.len(), 300);
    let distinct: BTreeSet<u64> = snapshots.iter().map(|s| s.revision).collect();
    assert!(
        distinct.len() > 3,
        "the snapshots did not overlap the writes: {distinct:?}"
    );
    let last = feed.last().unwrap().revision;
    let states: Vec<HashMap<Uuid, StateRecord>> = (0..=last).map(|r| replay(&feed, r)).collect();
    for snap in snapshots {
        // Each id shows its value at some revision at or after the snapshot's (the scan may
        // meet later changes, never miss earlier ones).
        let map: HashMap<Uuid, StateRecord> = snap.entries.iter().cloned().collect();
        let ids: BTreeSet<Uuid> = map
            .keys()
            .chain(states[last as usize].keys())
            .copied()
            .collect();
        for id in ids {
            let seen = map.get(&id);
            assert!(
                (snap.revision..=last).any(|r| states[r as usize].get(&id) == seen),
                "snapshot at {}: {id} shows {seen:?}, which the map never held since",
                snap.revision
            );
        }
        // And the feed after its revision makes it exact.
        let mut healed = map;
        for c in feed.iter().filter(|c| c.revision > snap.revision) {
            match &c.entry {
                Some(e) => healed.insert(c.id, e.clone()),
                None => healed.remove(&c.id),
            };
        }
        assert_eq!(
            healed, states[last as usize],
            "snapshot at {}",
            snap.revision
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

#[derive(Debug)]
enum Op {
    Create(TokenRecord),
    Delete(TokenRecord),
}

/// Concurrent creates and deletes while redis-server is SIGKILLed and restarted twice: every
/// acknowledged write survives, every failure is a clear Unavailable, and the records, the name
/// index, the state map and the feed agree afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_and_the_data_stays_whole() {
    let Some(mut server) = RedisServer::start_or_skip() else {
        return;
    };
    let prefix = prefix();
    let store = RedisStore::open_with_prefix(&server.url(), &prefix)
        .await
        .unwrap();
    const TASKS: usize = 6;
    const OPS: usize = 150;
    let oks = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            let oks = oks.clone();
            tokio::spawn(async move {
                let mut outcomes: Vec<(Op, Result<(), StoreError>)> = Vec::new();
                let mut last_created: Option<TokenRecord> = None;
                for i in 0..OPS {
                    let op = match last_created.take() {
                        Some(r) if i % 3 == 2 => Op::Delete(r),
                        _ => Op::Create(record(&format!("fault-{t}-{i}"))),
                    };
                    let result = match &op {
                        Op::Create(r) => store.commit(create(r)).await.map(|_| ()),
                        Op::Delete(r) => store.commit(delete(r)).await.map(|_| ()),
                    };
                    match (&op, &result) {
                        (Op::Create(r), Ok(())) => {
                            last_created = Some(r.clone());
                            oks.fetch_add(1, Ordering::SeqCst);
                        }
                        (_, Ok(())) => {
                            oks.fetch_add(1, Ordering::SeqCst);
                        }
                        (_, Err(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                    outcomes.push((op, result));
                }
                outcomes
            })
        })
        .collect();

    // Kill mid-load, twice, with writes acknowledged before and after.
    let mut kills = Vec::new();
    // The first outage is shorter than the shared connection's reconnect attempts (the calls
    // waiting on it go through once Redis is back); the second outlasts them (they fail).
    for (threshold, outage) in [(150, 300), (400, 2500)] {
        while oks.load(Ordering::SeqCst) < threshold {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the load stalled"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let at_kill = oks.load(Ordering::SeqCst);
        server.kill();
        tokio::time::sleep(Duration::from_millis(outage)).await;
        let t = Instant::now();
        server.restart();
        kills.push((at_kill, t.elapsed()));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();

    let failures: Vec<&StoreError> = outcomes
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    eprintln!(
        "{} ops in {elapsed:?}: {} ok, {} failed; kills at {kills:?}",
        outcomes.len(),
        outcomes.len() - failures.len(),
        failures.len()
    );
    if let (Some(first), Some(last)) = (failures.first(), failures.last()) {
        eprintln!("the first failure reads: {first}\nthe last: {last}");
    }
    assert!(!failures.is_empty(), "the kills did not hit the load");
    for e in &failures {
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        assert!(
            e.to_string()
                .contains(&format!("127.0.0.1:{}", server.port())),
            "{e}"
        );
    }

    // Every acknowledged write is there.
    let snapshot = store.snapshot().await.unwrap();
    let state: HashMap<Uuid, StateRecord> = snapshot.entries.iter().cloned().collect();
    let deletes = |ok: bool| -> BTreeSet<Uuid> {
        outcomes
            .iter()
            .filter_map(|(op, r)| match op {
                Op::Delete(rec) if r.is_ok() == ok => Some(rec.id),
                _ => None,
            })
            .collect()
    };
    let (deleted_ok, delete_failed) = (deletes(true), deletes(false));
    let mut ambiguous_deletes_applied = 0;
    for (op, result) in &outcomes {
        match (op, result) {
            (Op::Create(r), Ok(())) if !deleted_ok.contains(&r.id) => {
                let found = store.get(r.id).await.unwrap();
                let by_name = store.get_by_name(&r.name).await.unwrap().map(|b| b.id);
                if found.is_none() && delete_failed.contains(&r.id) {
                    // Its delete failed on a broken connection after Redis had applied it.
                    assert_eq!(by_name, None, "{}", r.name);
                    assert!(state.get(&r.id).is_some_and(|e| e.deleted), "{}", r.name);
                    ambiguous_deletes_applied += 1;
                } else {
                    assert_eq!(found.as_ref(), Some(r), "an acknowledged create was lost");
                    assert_eq!(by_name, Some(r.id), "{}", r.name);
                }
            }
            (Op::Delete(r), Ok(())) => {
                assert_eq!(store.get(r.id).await.unwrap(), None);
                assert_eq!(store.get_by_name(&r.name).await.unwrap(), None);
                assert!(state.get(&r.id).is_some_and(|e| e.deleted), "{}", r.name);
            }
            _ => {}
        }
    }
    eprintln!("{ambiguous_deletes_applied} failed deletes had been applied");

    // The name index and the records agree, both ways.
    let keys = store_keys(&prefix);
    let mut conn = raw(&server).await;
    let names: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&keys[1])
        .query_async(&mut conn)
        .await
        .unwrap();
    let records = store.list().await.unwrap();
    let by_id: HashMap<String, &TokenRecord> =
        records.iter().map(|r| (r.id.to_string(), r)).collect();
    for (name, id) in &names {
        let r = by_id
            .get(id)
            .unwrap_or_else(|| panic!("the name {name} points at a missing record {id}"));
        assert_eq!(&r.name, name);
    }
    for r in &records {
        assert_eq!(
            names.get(&r.name),
            Some(&r.id.to_string()),
            "{} has no name",
            r.name
        );
    }
    // A deleted token (acknowledged or not) is gone from both and marked in the state map.
    for (id, entry) in &state {
        assert!(entry.deleted);
        assert!(!by_id.contains_key(&id.to_string()));
    }

    // The revision counter and the feed have no gap and describe the state map exactly.
    let feed = whole_feed(&store, 0).await;
    assert_eq!(feed.len() as u64, snapshot.revision);
    assert_eq!(replay(&feed, snapshot.revision), state);
    assert!(deleted_ok.len() as u64 <= snapshot.revision);
    // Each applied write left one audit entry.
    let audit_len: u64 = redis::cmd("LLEN")
        .arg(&keys[6])
        .query_async(&mut conn)
        .await
        .unwrap();
    let acknowledged = (outcomes.len() - failures.len()) as u64;
    assert!(
        (acknowledged..=outcomes.len() as u64).contains(&audit_len),
        "{audit_len} audit entries for {acknowledged} acknowledged writes"
    );
    assert_eq!(
        audit_len,
        records.len() as u64 + 2 * snapshot.revision,
        "every create and delete that applied left exactly one audit entry"
    );

    // And the store carries on.
    store.commit(create(&record("fault-after"))).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// TLS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_private_ca_works_and_an_unknown_ca_is_refused() {
    if !RedisServer::available() {
        // Says why, or fails under CI.
        assert!(RedisServer::start_or_skip().is_none());
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let (files, ca_pem) = TlsFiles::generate(certs.path());
    let server = RedisServer::start_with(Options {
        password: Some("tls-Pa55".into()),
        tls: Some(files),
        ..Options::default()
    });
    let url = server.tls_url().unwrap();
    let store = RedisStore::open_with_ca(&url, &prefix(), ca_pem.as_bytes())
        .await
        .unwrap();
    assert!(format!("{store:?}").contains("tls: true"));
    let a = record("tls-a");
    store.commit(create(&a)).await.unwrap();
    assert_eq!(store.get_by_name("tls-a").await.unwrap(), Some(a.clone()));
    // The blocking feed read runs on its own TLS connection.
    let follower = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .changes_since(FeedPosition::default(), Duration::from_secs(10))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (w, _) = replace(&a, Some(Some(min_ver_entry(2, None))));
    store.commit(w).await.unwrap();
    let page = follower.await.unwrap().unwrap();
    assert!(
        matches!(&page, FeedPage::Changes(c) if c.len() == 1),
        "{page:?}"
    );

    // The public web roots do not know this CA.
    let err = RedisStore::open(&url).await.unwrap_err();
    let message = err.to_string();
    eprintln!("unknown CA: {message}");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(message.contains("localhost:"), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    assert!(!message.contains("tls-Pa55"), "{message}");
}

/// Idle connections die with a restart of Redis: the next calls reconnect on their own, and a
/// follower waiting through an outage gets a prompt Unavailable, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_reconnects_after_redis_restarts() {
    let Some(mut server) = RedisServer::start_or_skip() else {
        return;
    };
    let store = RedisStore::open_with_prefix(&server.url(), &prefix())
        .await
        .unwrap();
    let a = record("restart-a");
    store.commit(create(&a)).await.unwrap();
    let (w, a) = replace(&a, Some(Some(min_ver_entry(2, None))));
    store.commit(w).await.unwrap();
    let at1 = position(&store, 1).await;
    // A kept blocking connection and an idle shared one.
    assert_eq!(
        store
            .changes_since(at1, Duration::from_millis(50))
            .await
            .unwrap(),
        FeedPage::Changes(Vec::new())
    );

    server.restart();
    let t = Instant::now();
    assert_eq!(store.get(a.id).await.unwrap().as_ref(), Some(&a));
    eprintln!("first read after the restart took {:?}", t.elapsed());
    let (w, a) = replace(&a, Some(Some(min_ver_entry(3, None))));
    assert_eq!(store.commit(w).await.unwrap().state_revision, Some(2));
    let at2 = position(&store, 2).await;
    let page = store
        .changes_since(at1, Duration::from_millis(50))
        .await
        .unwrap();
    assert!(
        matches!(&page, FeedPage::Changes(c) if c.len() == 1),
        "{page:?}"
    );

    // A follower waiting when Redis dies hears about it at once.
    let follower = {
        let store = store.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let page = store.changes_since(at2, Duration::from_secs(30)).await;
            (page, t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.kill();
    let (page, waited) = follower.await.unwrap();
    eprintln!("a follower waiting through a kill: {page:?} after {waited:?}");
    assert!(matches!(page, Err(StoreError::Unavailable(_))), "{page:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    // While Redis is down, calls fail promptly.
    let t = Instant::now();
    let err = store
        .changes_since(at2, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let t = Instant::now();
    let err = store
        .changes_since(at2, Duration::from_millis(100))
        .await
        .unwrap_err();
    eprintln!(
        "a feed read while Redis is down: {err} after {:?}",
        t.elapsed()
    );
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let err = store.get(a.id).await.unwrap_err();
    eprintln!("a read while Redis is down: {err} after {:?}", t.elapsed());
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    server.restart();
    // And the follower picks up again.
    let (w, _) = replace(&a, Some(None));
    store.commit(w).await.unwrap();
    let page = store
        .changes_since(at2, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        matches!(&page, FeedPage::Changes(c) if c.len() == 1),
        "{page:?}"
    );
}
