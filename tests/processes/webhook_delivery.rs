//! Webhook events from real `tessera serve` processes: an issuer killed with SIGKILL while its
//! receiver refuses every delivery loses no event, the next issuer on the store delivers each
//! one, once; and two issuers on one Redis deliver each event once between them.

#![cfg(feature = "cli")]

use crate::support::binary::{tessera, Serve};
use crate::support::redis_server::RedisServer;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Client;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A receiver that refuses (503) until told to accept; it notes each request's id and type,
/// and whether it took it.
struct Receiver {
    url: String,
    accepting: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(String, String, bool)>>>,
}

impl Receiver {
    async fn start() -> Self {
        let accepting = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<(String, String, bool)>>> = Arc::default();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post({
                let (accepting, seen) = (accepting.clone(), seen.clone());
                move |headers: HeaderMap, body: axum::body::Bytes| async move {
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let kind = body["type"].as_str().unwrap_or_default().to_owned();
                    let took = accepting.load(Ordering::SeqCst);
                    seen.lock().unwrap().push((id, kind, took));
                    if took {
                        StatusCode::NO_CONTENT
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url,
            accepting,
            seen,
        }
    }

    fn seen(&self) -> Vec<(String, String, bool)> {
        self.seen.lock().unwrap().clone()
    }
}

/// A token named `name` made through `server` with the admin token; its id.
async fn create(client: &Client, server: &Serve, admin: &str, name: &str) -> String {
    let created: serde_json::Value = client
        .post(format!("{}/v1/tokens", server.base))
        .bearer_auth(admin)
        .json(&json!({"name": name, "description": "", "expires": "30d",
                      "permissions": {"grants": [{"resource": "devtron-app",
                          "role": "trigger", "project": "payments",
                          "environments": ["prod"], "apps": ["*"]}]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["record"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_killed_with_no_event_delivered_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
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
        ids.push(create(&client, &first, admin, name).await);
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
            receiver.seen().into_iter().map(|(id, _, _)| id).collect();
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
    assert!(receiver.seen().iter().all(|(_, _, took)| !took));

    receiver.accepting.store(true, Ordering::SeqCst);
    let second = Serve::start(dir.path(), &args, &env);
    second.ready(&client).await;
    // Five changes: the bootstrap token, three creates, one delete. An event the first issuer
    // had leased when it died waits for its lease (60 s) to end.
    let started = Instant::now();
    let taken = loop {
        let taken: Vec<(String, String)> = receiver
            .seen()
            .into_iter()
            .filter(|(_, _, took)| *took)
            .map(|(id, kind, _)| (id, kind))
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
    for (id, _, _) in receiver.seen() {
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
    let receiver = Receiver::start().await;
    receiver.accepting.store(true, Ordering::SeqCst);
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
        create(&client, server, admin, &format!("shared-{i}")).await;
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
    for (id, _, _) in receiver.seen() {
        *per_id.entry(id).or_default() += 1;
    }
    assert_eq!(per_id.len(), 11, "{per_id:?}");
    assert!(per_id.values().all(|&n| n == 1), "{per_id:?}");
}
