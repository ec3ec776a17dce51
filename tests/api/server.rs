//! The HTTP service, black box: each test starts an issuer of the harness (`support::app::App`:
//! the embedded store and a key in a folder of its own, its first super-admin token) and sends
//! it requests. In process (the router called with `oneshot`, each request from 127.0.0.1, as
//! over loopback), except the seed flow, which runs over a real socket on port 0: the client
//! address taken from the peer, and a graceful stop.

#![cfg(feature = "server")]

use crate::support::app::App;
use crate::support::DEPLOY_PROD;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tessera::server;
use tessera::startup::{self, ServerConfig};

const DEPLOY: &str = "resource=devtron-app&role=trigger&project=payments&environment=prod&app=api";
const DEPLOY_BILLING: &str =
    "resource=devtron-app&role=trigger&project=billing&environment=prod&app=api";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_flow_works_over_http() {
    let app = App::listen().await;
    // The first super-admin token creates a token with specific permissions.
    let (token, record) = app.create("deployer", DEPLOY_PROD).await;
    let id = record["id"].as_str().unwrap().to_owned();
    assert_eq!(record["version"], 1);

    // The gateway asks: allowed, and not allowed.
    let response = app
        .get(&format!("/v1/auth?{DEPLOY}"))
        .bearer_auth(&token)
        .send()
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers["x-tessera-token-id"], id.as_str());
    assert_eq!(response.headers["x-tessera-token-name"], "deployer");
    assert_eq!(response.headers["x-tessera-super-admin"], "false");
    assert_eq!(
        app.auth(&token, DEPLOY_BILLING).await,
        StatusCode::FORBIDDEN
    );

    // Update its permissions: the decision changes without a new token.
    let billing: Value = serde_json::from_str(&DEPLOY_PROD.replace("payments", "billing")).unwrap();
    let response = app
        .patch(&format!("/v1/tokens/{id}"))
        .bearer_auth(&app.admin)
        .header("If-Match", "\"1\"")
        .json(&json!({"permissions": billing}))
        .send()
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers["etag"], "\"2\"");
    app.auth_becomes(&token, DEPLOY_BILLING, StatusCode::OK)
        .await;
    assert_eq!(app.auth(&token, DEPLOY).await, StatusCode::FORBIDDEN);

    // Regenerate: the old string is refused, the new one accepted.
    let (status, headers, value) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/tokens/{id}/regenerate"),
            Some(&app.admin),
            Some(json!({"expires": "60d"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(value["record"]["version"], 2);
    let fresh = value["token"].as_str().unwrap().to_owned();
    app.auth_becomes(&token, "", StatusCode::UNAUTHORIZED).await;
    assert_eq!(app.auth(&fresh, DEPLOY_BILLING).await, StatusCode::OK);
    let refused = app.get("/v1/auth").bearer_auth(&token).send().await;
    assert_eq!(
        refused.headers["www-authenticate"],
        "Bearer error=\"invalid_token\", error_description=\"superseded\""
    );

    // Delete: refused.
    let (status, _, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.auth_becomes(&fresh, "", StatusCode::UNAUTHORIZED).await;
    let (status, _, value) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/tokens/{id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(
        (status, value["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // The audit trail names the admin token and the client address.
    let (_, _, audit) = app
        .call(reqwest::Method::GET, "/v1/audit", Some(&app.admin), None)
        .await;
    let entries = audit["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["create", "create", "update", "regenerate", "delete"]
    );
    assert!(entries[0]["actor"].as_str().unwrap().starts_with("local:"));
    assert!(entries[1]["actor"].as_str().unwrap().starts_with("token:"));
    assert_eq!(entries[1]["from"], "127.0.0.1");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_needs_a_valid_super_admin_token() {
    let app = App::start().await;
    let (token, _) = app.create("limited", DEPLOY_PROD).await;

    let (status, headers, value) = app
        .call(reqwest::Method::GET, "/v1/tokens", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(value["error"]["code"], "missing_token");

    let (status, headers, value) = app
        .call(
            reqwest::Method::GET,
            "/v1/tokens",
            Some("v4.public.garbage"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(value["error"]["code"], "malformed");
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));

    for (method, path) in [
        (reqwest::Method::GET, "/v1/tokens"),
        (reqwest::Method::POST, "/v1/tokens"),
        (reqwest::Method::GET, "/v1/audit"),
        (
            reqwest::Method::DELETE,
            "/v1/tokens/00000000-0000-4000-8000-000000000000",
        ),
    ] {
        let (status, _, value) = app.call(method, path, Some(&token), Some(json!({}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {value}");
        assert_eq!(value["error"]["code"], "forbidden");
    }

    // The Devtron `token:` header works as well as Authorization: Bearer.
    let response = app
        .get("/v1/tokens")
        .header("token", &app.admin)
        .send()
        .await;
    assert_eq!(response.status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_mistakes_are_4xx_json_errors() {
    let app = App::start().await;
    let admin = Some(app.admin.as_str());
    let (_, record) = app.create("target", DEPLOY_PROD).await;
    let id = record["id"].as_str().unwrap();
    let cases = [
        (
            reqwest::Method::GET,
            "/v1/tokens/not-a-uuid".to_owned(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            reqwest::Method::GET,
            "/nowhere".to_owned(),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            reqwest::Method::PUT,
            "/v1/tokens".to_owned(),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            reqwest::Method::POST,
            "/v1/tokens".to_owned(),
            Some(
                json!({"name": "x", "expires": "30d", "permissions": {"super_admin": true}, "extra": 1}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            reqwest::Method::POST,
            "/v1/tokens".to_owned(),
            Some(
                json!({"name": "Bad Name", "expires": "30d", "permissions": {"super_admin": true}}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            reqwest::Method::POST,
            "/v1/tokens".to_owned(),
            Some(json!({"name": "target", "expires": "30d", "permissions": {"super_admin": true}})),
            StatusCode::CONFLICT,
            "name_taken",
        ),
        (
            reqwest::Method::POST,
            "/v1/tokens".to_owned(),
            Some(json!({"name": "later", "expires": "15d", "permissions": {"super_admin": true}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            reqwest::Method::POST,
            "/v1/tokens".to_owned(),
            Some(json!({"name": "empty", "expires": "30d", "permissions": {"grants": []}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            reqwest::Method::PATCH,
            format!("/v1/tokens/{id}"),
            Some(json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            reqwest::Method::GET,
            "/v1/tokens?status=sleeping".to_owned(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            reqwest::Method::GET,
            "/v1/audit?limit=0".to_owned(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            reqwest::Method::PATCH,
            format!("/v1/tokens/{id}"),
            Some(json!({"description": "x", "permissions": null})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            reqwest::Method::GET,
            "/v1/state?wait=5".to_owned(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got, _, value) = app.call(method.clone(), &path, admin, body.clone()).await;
        assert_eq!(
            (got, value["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path} {body:?}: {value}"
        );
        assert!(value["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }

    // A body serde refuses is explained in serde's words, naming the field, without axum's
    // preamble; a body that is not JSON says so.
    for (body, expected) in [
        (
            r#"{"name": "x1z", "expires": "30d", "permissions": {"grants": [{"resource": "helm-app", "role": "root"}]}}"#,
            "permissions",
        ),
        ("{not json", "the body is not valid JSON"),
    ] {
        let response = app
            .post("/v1/tokens")
            .bearer_auth(&app.admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let value: Value = response.json();
        let message = value["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(expected), "{message}");
        assert!(!message.contains("Failed to"), "{message}");
    }

    // A stale If-Match is a 412, a malformed one a 400.
    for (if_match, status) in [
        ("\"7\"", StatusCode::PRECONDITION_FAILED),
        ("seven", StatusCode::BAD_REQUEST),
    ] {
        let response = app
            .delete(&format!("/v1/tokens/{id}"))
            .bearer_auth(&app.admin)
            .header("If-Match", if_match)
            .send()
            .await;
        assert_eq!(response.status, status);
    }

    // A body over the limit, and one that is not JSON.
    let huge = "x".repeat(server::MAX_BODY + 1);
    let response = app
        .post("/v1/tokens")
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    let response = app
        .post("/v1/verify")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);

    // A gateway asking a malformed question gets a 400, never a 5xx.
    let status = app
        .auth(&app.admin, "resource=devtron-app&role=pilot")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let status = app
        .auth(&app.admin, "resource=devtron-app&role=view&colour=red")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_keys_and_health_answer() {
    let app = App::start().await;
    let (token, _) = app.create("inspected", DEPLOY_PROD).await;
    let (status, _, value) = app
        .call(
            reqwest::Method::POST,
            "/v1/verify",
            None,
            Some(
                json!({"token": token, "require": {"resource": "devtron-app", "role": "trigger",
                "project": "billing", "environment": "prod", "app": "api"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (value["valid"].as_bool(), value["code"].as_str()),
        (Some(true), Some("forbidden"))
    );
    assert_eq!(value["allowed"], false);
    assert_eq!(value["token"]["name"], "inspected");
    assert_eq!(
        value["token"]["permissions"]["grants"][0]["project"],
        "payments"
    );

    let (status, _, value) = app
        .call(
            reqwest::Method::POST,
            "/v1/verify",
            None,
            Some(json!({"token": "v4.public.x"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (value["valid"].as_bool(), value["code"].as_str()),
        (Some(false), Some("malformed"))
    );

    let (status, _, value) = app.call(reqwest::Method::GET, "/v1/keys", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let keys = value["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["status"], "signing");
    assert!(keys[0]["kid"].as_str().unwrap().starts_with("k4.pid."));
    assert!(keys[0]["public_key"]
        .as_str()
        .unwrap()
        .starts_with("k4.public."));
    assert!(!value.to_string().contains("k4.secret"));

    let (status, _, _) = app.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);

    // The calls above show up in the metrics.
    let metrics = app.get("/metrics").send().await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text;
    for line in [
        "tessera_http_requests_total{route=\"/v1/verify\",status=\"200\"} 2",
        "tessera_http_requests_total{route=\"/v1/keys\",status=\"200\"} 1",
        "tessera_http_requests_total{route=\"/v1/tokens\",status=\"201\"} 1",
        "tessera_verifications_total{outcome=\"forbidden\"} 1",
        "tessera_verifications_total{outcome=\"malformed\"} 1",
        "tessera_state_stale 0",
        "tessera_state_revision 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    assert!(text.contains("tessera_signature_cache_hits_total"));
    assert!(!text.contains("v4.public"), "no token in the metrics");
    let (status, _, value) = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (status, value["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_filter_by_status_and_expiry() {
    let app = App::start().await;
    app.create("soon", DEPLOY_PROD).await;
    let body = json!({"name": "later", "expires": "90d", "permissions": {"super_admin": true}});
    app.call(
        reqwest::Method::POST,
        "/v1/tokens",
        Some(&app.admin),
        Some(body),
    )
    .await;
    let names = |value: &Value| -> Vec<String> {
        let mut names: Vec<String> = value["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let (_, _, all) = app
        .call(reqwest::Method::GET, "/v1/tokens", Some(&app.admin), None)
        .await;
    assert_eq!(names(&all), ["admin", "later", "soon"]);
    assert!(
        !all.to_string().contains("v4.public"),
        "a listing never holds a token"
    );
    let (_, _, soon) = app
        .call(
            reqwest::Method::GET,
            "/v1/tokens?expiring_within=31d",
            Some(&app.admin),
            None,
        )
        .await;
    // The bootstrap token lives 90 days, like `later`.
    assert_eq!(names(&soon), ["soon"]);
    let (_, _, expired) = app
        .call(
            reqwest::Method::GET,
            "/v1/tokens?status=expired",
            Some(&app.admin),
            None,
        )
        .await;
    assert!(names(&expired).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_first_start_generates_a_key_but_a_shared_store_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        keys_dir: dir.path().join("keys"),
        store_url: format!("file:{}", dir.path().join("data/tessera.redb").display()),
        ..ServerConfig::default()
    };
    let (state, startup) = startup::open(&config).await.unwrap();
    let kid = startup.generated_key.expect("a key was generated");
    assert_eq!(state.keys().signing().unwrap().public.id().as_str(), kid);
    drop(state);
    // The state mirror's task lets go of the store file once the runtime has dropped it.
    let started = Instant::now();
    let startup = loop {
        match startup::open(&config).await {
            Ok((_, startup)) => break startup,
            Err(e) if started.elapsed() < Duration::from_secs(5) => {
                assert!(e.to_string().contains("in use"), "{e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(startup.generated_key.is_none(), "only on the first start");
}

/// The listing's `last_used_at`/`last_used_from` of token `name`, once they are written (in
/// process, by the flush a server would make on its timer).
async fn last_use(app: &App, name: &str) -> (String, String) {
    let started = Instant::now();
    loop {
        app.flush_usage().await;
        let (_, _, value) = app
            .call(reqwest::Method::GET, "/v1/tokens", Some(&app.admin), None)
            .await;
        let token = value["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone();
        if let (Some(at), Some(from)) = (
            token["last_used_at"].as_str(),
            token["last_used_from"].as_str(),
        ) {
            return (at.to_owned(), from.to_owned());
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no last use for {name}: {token}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_use_shows_in_listings_with_the_client_address() {
    let app = App::start().await;
    let (token, record) = app.create("used", DEPLOY_PROD).await;
    assert_eq!(record["last_used_at"], Value::Null);
    // A forwarded header from a peer that is not a trusted proxy is ignored.
    let response = app
        .get(&format!("/v1/auth?{DEPLOY}"))
        .bearer_auth(&token)
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let (at, from) = last_use(&app, "used").await;
    assert_eq!(from, "127.0.0.1");
    assert!(at.ends_with('Z'), "{at}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_client_is_recorded() {
    let app = App::start_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let (token, _) = app.create("proxied", DEPLOY_PROD).await;
    let response = app
        .get("/v1/auth")
        .bearer_auth(&token)
        .header("X-Forwarded-For", "198.51.100.1, 203.0.113.7, 127.0.0.1")
        .send()
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let (_, from) = last_use(&app, "proxied").await;
    assert_eq!(
        from, "203.0.113.7",
        "the nearest address that is not a trusted proxy"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_feed_serves_a_snapshot_and_long_polls_for_changes() {
    let app = App::start().await;
    let (_, record) = app.create("followed", DEPLOY_PROD).await;
    let id = record["id"].as_str().unwrap().to_owned();
    let (status, _, snapshot) = app
        .call(reqwest::Method::GET, "/v1/state", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            snapshot["revision"].as_u64(),
            snapshot["entries"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );

    // A long poll that a deletion ends early.
    let poll = {
        let call = app.get("/v1/state?since=0&wait=10").bearer_auth(&app.admin);
        tokio::spawn(async move {
            let started = Instant::now();
            let body = call.send().await.json();
            (body, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.call(
        reqwest::Method::DELETE,
        &format!("/v1/tokens/{id}"),
        Some(&app.admin),
        None,
    )
    .await;
    let (body, waited) = poll.await.unwrap();
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let changes = body["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0]["revision"].as_u64(), changes[0]["id"].as_str()),
        (Some(1), Some(id.as_str()))
    );
    assert_eq!(changes[0]["entry"]["deleted"], true);
    // A follower ahead of the store must reload.
    let (_, _, ahead) = app
        .call(
            reqwest::Method::GET,
            "/v1/state?since=9",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(ahead, json!({"reload": true}));
    // The change's tag names it: the snapshot carries it, and a follower passes it back. A
    // follower at revision 1 of another history (a wrong tag) must reload.
    let tag = changes[0]["tag"].as_u64().unwrap();
    assert_ne!(tag, 0);
    let (_, _, snapshot) = app
        .call(reqwest::Method::GET, "/v1/state", Some(&app.admin), None)
        .await;
    assert_eq!(
        (snapshot["revision"].as_u64(), snapshot["tag"].as_u64()),
        (Some(1), Some(tag))
    );
    let since = |tag: u64| format!("/v1/state?since=1&tag={tag}");
    let (_, _, here) = app
        .call(reqwest::Method::GET, &since(tag), Some(&app.admin), None)
        .await;
    assert_eq!(here, json!({"changes": []}));
    let (_, _, forked) = app
        .call(
            reqwest::Method::GET,
            &since(tag ^ 1),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(forked, json!({"reload": true}));
    let (_, _, untagged) = app
        .call(
            reqwest::Method::GET,
            "/v1/state?since=1",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(
        untagged,
        json!({"reload": true}),
        "tag 0 is not this change's"
    );
    let (status, _, _) = app
        .call(
            reqwest::Method::GET,
            "/v1/state?tag=1",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a snapshot takes no tag");
    let (status, _, _) = app
        .call(
            reqwest::Method::GET,
            "/v1/state?since=0&wait=31",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // It names deleted tokens and permissions: super-admins only.
    let (limited, _) = app.create("limited", DEPLOY_PROD).await;
    let (status, _, _) = app
        .call(reqwest::Method::GET, "/v1/state", Some(&limited), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_can_ask_in_a_header_and_append_the_client_path() {
    let app = App::start().await;
    let (token, _) = app.create("envoyed", DEPLOY_PROD).await;
    let ask = |path: &str, require: Option<&str>| {
        let mut request = app.get(path).bearer_auth(&token);
        if let Some(require) = require {
            request = request.header("X-Tessera-Require", require);
        }
        request.send()
    };
    let payments = "resource=devtron-app,role=trigger,project=payments,environment=prod,app=api";
    let billing = "resource=devtron-app,role=trigger,project=billing,environment=prod,app=api";
    // Envoy appends the client's path and query: they are ignored, the header decides.
    let path = "/v1/auth/deploy/now?resource=chart-group&role=view&group=x";
    assert_eq!(ask(path, Some(payments)).await.status, StatusCode::OK);
    assert_eq!(ask(path, Some(billing)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        ask(path, None).await.status,
        StatusCode::OK,
        "identity only"
    );
    assert_eq!(
        ask("/v1/auth", Some(billing)).await.status,
        StatusCode::FORBIDDEN
    );
    let bad = ask(path, Some("resource=devtron-app,role")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

/// The query is read as a gateway writes it: escapes are decoded, and a key given twice is
/// refused rather than letting either value win (a client must not be able to append a second
/// `project` to the gateway's question).
#[tokio::test]
async fn the_query_decodes_escapes_and_refuses_a_key_given_twice() {
    let app = App::start().await;
    let spaced = r#"{"grants": [{"resource": "devtron-app", "role": "trigger",
        "project": "team a", "environments": ["prod"], "apps": ["*"]}]}"#;
    let (token, _) = app.create("escaped", spaced).await;
    let ask = "resource=devtron-app&role=trigger&environment=prod&app=api";
    assert_eq!(
        app.auth(&token, &format!("{ask}&project=team%20a")).await,
        StatusCode::OK
    );
    assert_eq!(
        app.auth(&token, &format!("{ask}&project=team+a")).await,
        StatusCode::OK
    );
    assert_eq!(
        app.auth(&token, &format!("{ask}&project=team%2Ba")).await,
        StatusCode::FORBIDDEN,
        "%2B is a plus sign, not a space"
    );
    for twice in [
        format!("{ask}&project=team%20a&project=other"),
        format!("{ask}&project=team%20a&role=admin"),
    ] {
        let response = app
            .get(&format!("/v1/auth?{twice}"))
            .bearer_auth(&token)
            .send()
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{twice}");
        let body: Value = response.json();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("twice"), "{message}");
    }
    app.stop().await;
}

/// A client that reaches `/v1/auth` through a gateway controls its method, path, query, body
/// and headers other than the token. None of them may weaken, widen or break the gateway's
/// question, which comes in `X-Tessera-Require` when the gateway sets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_the_client_controls_changes_the_gateways_question() {
    let app = App::start().await;
    let (token, _) = app.create("deployer", DEPLOY_PROD).await;
    let view = DEPLOY_PROD.replace("trigger", "view");
    let (weak, _) = app.create("viewer", &view).await;
    let asked = "resource=devtron-app,role=trigger,project=payments,environment=prod,app=api";
    let weaker = "resource=devtron-app&role=view&project=payments&environment=prod&app=api";
    let ask = |method: reqwest::Method, path: &str, token: &str| {
        app.request(method, path)
            .bearer_auth(token)
            .header("X-Tessera-Require", asked)
    };
    let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    for path in [
        "/v1/auth".to_owned(),
        "/v1/auth/".to_owned(),
        format!("/v1/auth?{weaker}"),
        format!("/v1/auth/?{weaker}"),
        format!("/v1/auth/api/orders?{weaker}"),
        "/v1/auth?x=1".to_owned(),
        "/v1/auth?resource".to_owned(),
    ] {
        for method in methods {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            // A body is never read: this one is not even JSON.
            let body = vec![b'{'; 1024];
            let weak_answer = ask(method.clone(), &path, &weak).body(body).send().await;
            assert_eq!(weak_answer.status, StatusCode::FORBIDDEN, "{method} {path}");
            let allowed = ask(method.clone(), &path, &token).send().await;
            assert_eq!(allowed.status, StatusCode::OK, "{method} {path}");
        }
    }
    // TRACE is no gateway's: 405, as for any route.
    let trace = ask(reqwest::Method::TRACE, "/v1/auth", &token).send().await;
    assert_eq!(trace.status, StatusCode::METHOD_NOT_ALLOWED);

    // A second X-Tessera-Require, weaker one first, is refused rather than chosen from.
    let twice = app
        .get("/v1/auth")
        .bearer_auth(&weak)
        .header("X-Tessera-Require", weaker.replace('&', ","))
        .header("X-Tessera-Require", asked)
        .send()
        .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    let body: Value = twice.json();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than once"),
        "{body}"
    );
    app.stop().await;
}

/// The header's syntax: `key=value` pairs or `any-valid-token`; anything else is a 400 that
/// names the problem, for the operator who wrote the gateway's configuration.
#[tokio::test]
async fn a_malformed_question_header_is_a_400_that_names_the_problem() {
    let app = App::start().await;
    let (token, _) = app.create("deployer", DEPLOY_PROD).await;
    let ask = |require: &str| {
        app.get("/v1/auth")
            .bearer_auth(&token)
            .header("X-Tessera-Require", require)
            .send()
    };
    for (require, says) in [
        ("", "is empty"),
        (" , ", "is empty"),
        ("resource", "is not key=value"),
        ("resource=devtron-app", "needs both resource and role"),
        (
            "resource=devtron-app,role=trigger,colour=blue",
            "unknown parameter",
        ),
        ("resource=devtron-app,role=view,role=trigger", "twice"),
        ("resource=devtron-app,role=emperor", "role"),
    ] {
        let answer = ask(require).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{require:?}");
        let body: Value = answer.json();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{require:?}: {message}");
    }
    assert_eq!(ask("any-valid-token").await.status, StatusCode::OK);
    // `any-valid-token` still needs a valid token.
    let garbage = app
        .get("/v1/auth")
        .bearer_auth("v4.public.garbage")
        .header("X-Tessera-Require", "any-valid-token")
        .send()
        .await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// nginx's `auth_request` never reads a denial's body: 401 and 403 have none, and say why in
/// headers, so the gateway keeps its connection.
#[tokio::test]
async fn forward_auth_denials_have_no_body_and_say_why_in_headers() {
    let app = App::start().await;
    let (token, _) = app.create("deployer", DEPLOY_PROD).await;
    let cases = [
        (None, StatusCode::UNAUTHORIZED, "missing_token", "Bearer"),
        (
            Some("v4.public.garbage"),
            StatusCode::UNAUTHORIZED,
            "malformed",
            "Bearer error=\"invalid_token\", error_description=\"malformed\"",
        ),
        (
            Some(token.as_str()),
            StatusCode::FORBIDDEN,
            "forbidden",
            "Bearer error=\"insufficient_scope\"",
        ),
    ];
    for (token, status, code, challenge) in cases {
        let mut request = app.get(&format!("/v1/auth?{DEPLOY_BILLING}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await;
        assert_eq!(answer.status, status);
        assert_eq!(answer.headers["x-tessera-error"], code);
        assert_eq!(answer.headers["www-authenticate"], challenge);
        assert_eq!(answer.headers["content-length"], "0");
        assert!(answer.text.is_empty());
    }
    app.stop().await;
}

/// Envoy's HTTP `ext_authz`, as its documentation describes it: the client's method, the
/// client's path and query appended to `path_prefix`, no body with `Content-Length: 0`, the
/// headers `allowed_headers` lets through (the token, `X-Forwarded-For` as Envoy wrote it) and
/// the question from `headers_to_add`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoys_ext_authz_request_gets_the_recipes_decision() {
    let app = App::start_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let (token, id) = app.create("deployer", DEPLOY_PROD).await;
    let (weak, _) = app
        .create("viewer", &DEPLOY_PROD.replace("trigger", "view"))
        .await;
    let envoy = |method: &str, client_path: &str, token: &str| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        app.request(method, &format!("/v1/auth{client_path}"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-length", "0")
            .header("x-forwarded-for", "203.0.113.9, 198.51.100.20")
            .header(
                "x-tessera-require",
                "resource=devtron-app,role=trigger,project=payments,environment=prod,app=api",
            )
            .send()
    };
    for (method, path) in [
        ("GET", "/"),
        ("POST", "/api/orders"),
        ("DELETE", "/api/orders/7?resource=devtron-app&role=view"),
        ("OPTIONS", "/api/orders"),
        ("PUT", "/api/orders/7"),
    ] {
        let ok = envoy(method, path, &token).await;
        assert_eq!(ok.status, StatusCode::OK, "{method} {path}");
        assert_eq!(ok.headers["x-tessera-token-id"], id["id"].as_str().unwrap());
        let denied = envoy(method, path, &weak).await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    let (_, from) = last_use(&app, "deployer").await;
    assert_eq!(from, "198.51.100.20", "the address Envoy appended");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_events_are_listed_to_super_admins_only() {
    let app = App::start().await;
    let (limited, record) = app.create("listed", DEPLOY_PROD).await;
    let id = record["id"].as_str().unwrap().to_owned();
    app.call(
        reqwest::Method::DELETE,
        &format!("/v1/tokens/{id}"),
        Some(&app.admin),
        None,
    )
    .await;
    let (status, _, body) = app
        .call(
            reqwest::Method::GET,
            "/v1/webhooks/deliveries",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let deliveries = body["deliveries"].as_array().unwrap();
    let newest = &deliveries[0];
    assert_eq!(newest["type"], "token.deleted");
    assert_eq!(newest["body"]["data"]["record"]["name"], "listed");
    assert_eq!(
        newest["body"]["data"]["actor"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some("token")
    );
    // No --webhook here: events wait, undelivered, until they are dropped.
    assert_eq!(
        (newest["status"].as_str(), newest["attempts"].as_u64()),
        (Some("pending"), Some(0))
    );
    assert_eq!(deliveries[1]["type"], "token.created");
    assert!(newest["id"].as_str().unwrap().starts_with("msg_"));
    // No token string in what is listed.
    assert!(!body.to_string().contains(&limited[limited.len() - 40..]));
    let (status, _, _) = app
        .call(
            reqwest::Method::GET,
            "/v1/webhooks/deliveries",
            Some(&limited),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a deleted token");
    let (other, _) = app.create("not-admin", DEPLOY_PROD).await;
    let (status, _, _) = app
        .call(
            reqwest::Method::GET,
            "/v1/webhooks/deliveries",
            Some(&other),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app
        .call(reqwest::Method::GET, "/v1/webhooks/deliveries", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}
