//! Webhook events from real `tessera serve` processes: an issuer killed with SIGKILL while its
//! receiver refuses every delivery loses no event, the next issuer on the store delivers each
//! one, once; and two issuers on one Redis deliver each event once between them.

#![cfg(feature = "cli")]

use crate::support::binary::{tessera, Serve};
use crate::support::receiver::{Receiver, Seen, SECRET};
use crate::support::redis_server::RedisServer;
use reqwest::Client;
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_killed_with_no_event_delivered_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(usize::MAX).await;
    let args = [
        "--bootstrap-token",
        "admin.token",
        "--webhook",
        receiver.url.as_str(),
    ];
    let env = [("TESSERA_WEBHOOK_SECRET", SECRET)];
    let client = Client::new();
    let mut first = Serve::start(dir.path(), &args, &env);
    first.ready(&client).await;
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let admin = admin.trim();
    let mut ids = Vec::new();
    for name in ["one", "two", "three"] {
        ids.push(
            first.create_token(&client, admin, name).await["record"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let deleted = client
        .delete(format!("{}/v1/tokens/{}", first.base, ids[0]))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    // The first issuer has tried every event once (and been refused) when it dies, between two
    // attempts: the next comes at least 0.75 s after the first. (An event it held leased when
    // killed waits for the lease to end: the store tests cover that with a manual clock.)
    let started = Instant::now();
    loop {
        let tried: std::collections::HashSet<String> =
            receiver.seen().into_iter().map(|seen| seen.id).collect();
        if tried.len() == 5 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "tried: {tried:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.kill();
    assert!(receiver.seen().iter().all(|seen| !seen.took));

    receiver.take_all();
    let second = Serve::start(dir.path(), &args, &env);
    second.ready(&client).await;
    // Five changes: the bootstrap token, three creates, one delete. An event the first issuer
    // had leased when it died waits for its lease (60 s) to end.
    let started = Instant::now();
    let taken = loop {
        let taken: Vec<(String, String)> = receiver
            .seen()
            .into_iter()
            .filter(|seen| seen.took)
            .map(|seen| (seen.id.clone(), seen.kind()))
            .collect();
        if taken.len() >= 5 {
            break taken;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "delivered after the restart: {taken:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    let mut kinds: Vec<String> = Vec::new();
    for (id, kind) in &taken {
        *per_id.entry(id.clone()).or_default() += 1;
        kinds.push(kind.clone());
    }
    assert_eq!(per_id.len(), 5, "{taken:?}");
    assert!(per_id.values().all(|&n| n == 1), "{taken:?}");
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "token.created",
            "token.created",
            "token.created",
            "token.created",
            "token.deleted"
        ]
    );
    // Every id the receiver refused before the crash is among those it took after.
    for Seen { id, .. } in receiver.seen() {
        assert!(per_id.contains_key(&id), "{id} was tried, then lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_issuers_on_one_redis_deliver_each_event_once() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    assert!(tessera(dir.path())
        .args(["keys", "generate"])
        .output()
        .unwrap()
        .status
        .success());
    let receiver = Receiver::start(0).await;
    let store = redis.url();
    let args = [
        "--store",
        store.as_str(),
        "--bootstrap-token",
        "admin.token",
        "--webhook",
        receiver.url.as_str(),
    ];
    let env = [("TESSERA_WEBHOOK_SECRET", SECRET)];
    let client = Client::new();
    let one = Serve::start(dir.path(), &args, &env);
    one.ready(&client).await;
    // The second issuer shares the store and the keys; one super-admin is live already.
    let two = Serve::start(
        dir.path(),
        &["--store", &store, "--webhook", &receiver.url],
        &env,
    );
    two.ready(&client).await;
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let admin = admin.trim();
    for i in 0..10 {
        let server = if i % 2 == 0 { &one } else { &two };
        server
            .create_token(&client, admin, &format!("shared-{i}"))
            .await;
    }
    // Eleven events: the bootstrap token and ten creates.
    let started = Instant::now();
    while receiver.seen().len() < 11 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            receiver.seen()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for Seen { id, .. } in receiver.seen() {
        *per_id.entry(id).or_default() += 1;
    }
    assert_eq!(per_id.len(), 11, "{per_id:?}");
    assert!(per_id.values().all(|&n| n == 1), "{per_id:?}");
}
