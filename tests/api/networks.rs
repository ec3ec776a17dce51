//! Tokens bound to networks, from the client's side: `/v1/auth`, `/v1/verify`,
//! `/v1/introspect` and the management API refuse a bound token used from outside its networks
//! (the client address from the peer, or from `X-Forwarded-For` only when a trusted proxy wrote
//! it), and an update narrows the networks of a token string already handed out.
//!
//! In process, every request comes from 127.0.0.1, as over loopback.

#![cfg(feature = "server")]

use crate::support::app::App;
use crate::support::DEPLOY_PROD;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const FORM: &str = "application/x-www-form-urlencoded";

/// A token named `name` that may deploy to prod from `cidrs`: the token and its record.
async fn bound(app: &App, name: &str, permissions: &str, cidrs: &[&str]) -> (String, Value) {
    let body = json!({"name": name, "expires": "30d", "allowed_cidrs": cidrs,
                      "permissions": serde_json::from_str::<Value>(permissions).unwrap()});
    let (status, _, value) = app
        .call(Method::POST, "/v1/tokens", Some(&app.admin), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{value}");
    (
        value["token"].as_str().unwrap().to_owned(),
        value["record"].clone(),
    )
}

/// `/v1/auth` with `token`, and `X-Forwarded-For` when given: the status and `X-Tessera-Error`.
async fn auth_from(app: &App, token: &str, forwarded: Option<&str>) -> (StatusCode, String) {
    let mut request = app.get("/v1/auth").bearer_auth(token);
    if let Some(forwarded) = forwarded {
        request = request.header("X-Forwarded-For", forwarded);
    }
    let answer = request.send().await;
    let code = answer
        .headers
        .get("x-tessera-error")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (answer.status, code)
}

fn refused() -> (StatusCode, String) {
    (StatusCode::FORBIDDEN, "address_not_allowed".to_owned())
}

fn ok() -> (StatusCode, String) {
    (StatusCode::OK, String::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_checks_the_peer_address_and_answers_403_not_401() {
    let app = App::start().await;
    let (inside, record) = bound(&app, "inside", DEPLOY_PROD, &["127.0.0.0/8"]).await;
    assert_eq!(record["allowed_cidrs"], json!(["127.0.0.0/8"]));
    let (outside, _) = bound(
        &app,
        "outside",
        DEPLOY_PROD,
        &["10.0.0.0/8", "2001:db8::/32"],
    )
    .await;
    let (anywhere, record) = app.create("anywhere", DEPLOY_PROD).await;
    assert_eq!(record["allowed_cidrs"], json!([]));

    assert_eq!(auth_from(&app, &inside, None).await, ok());
    assert_eq!(auth_from(&app, &anywhere, None).await, ok());
    let answer = app.get("/v1/auth").bearer_auth(&outside).send().await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "never 401: gateways pass 403 on"
    );
    assert_eq!(answer.headers["x-tessera-error"], "address_not_allowed");
    assert_eq!(
        answer.headers["www-authenticate"],
        "Bearer error=\"insufficient_scope\""
    );
    assert!(answer.text.is_empty());
    // Counted apart, for an alert: a bound token used from elsewhere is likely a leaked one.
    let metrics = app.get("/metrics").send().await.text;
    assert!(
        metrics.contains("tessera_verifications_total{outcome=\"address_not_allowed\"} 1\n"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_address_decides() {
    let app = App::start_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let (token, _) = bound(&app, "proxied", DEPLOY_PROD, &["203.0.113.0/24"]).await;
    assert_eq!(auth_from(&app, &token, Some("203.0.113.7")).await, ok());
    assert_eq!(
        auth_from(&app, &token, Some("203.0.113.7, 198.51.100.1")).await,
        refused(),
        "the nearest address that is not a trusted proxy is the client"
    );
    assert_eq!(
        auth_from(&app, &token, Some("198.51.100.1")).await,
        refused()
    );
    assert_eq!(
        auth_from(&app, &token, Some("::ffff:203.0.113.9")).await,
        ok(),
        "an IPv4-mapped address matches its IPv4 network"
    );
    assert_eq!(
        auth_from(&app, &token, None).await,
        refused(),
        "the proxy itself is not in the networks"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_address_from_an_untrusted_peer_lets_nobody_in() {
    let app = App::start().await;
    let (token, _) = bound(&app, "spoofed", DEPLOY_PROD, &["203.0.113.0/24"]).await;
    assert_eq!(
        auth_from(&app, &token, Some("203.0.113.7")).await,
        refused()
    );
    assert_eq!(
        auth_from(&app, &token, Some("127.0.0.1, 203.0.113.7")).await,
        refused()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_client_ip_or_else_the_callers_own_address() {
    let app = App::start().await;
    let (token, _) = bound(&app, "verified", DEPLOY_PROD, &["10.1.2.3/8"]).await;
    let verify = |body: Value| {
        let app = &app;
        async move {
            let (status, _, value) = app.call(Method::POST, "/v1/verify", None, Some(body)).await;
            (status, value)
        }
    };
    let (status, inside) = verify(json!({"token": token, "client_ip": "10.9.9.9"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (inside["valid"].clone(), inside["code"].clone()),
        (json!(true), json!("ok"))
    );
    assert_eq!(inside["token"]["allowed_cidrs"], json!(["10.0.0.0/8"]));

    let (_, outside) = verify(json!({"token": token, "client_ip": "192.0.2.1"})).await;
    assert_eq!(
        outside,
        json!({"valid": false, "code": "address_not_allowed"})
    );
    let (_, absent) = verify(json!({"token": token})).await;
    assert_eq!(
        absent,
        json!({"valid": false, "code": "address_not_allowed"}),
        "without client_ip, the caller (127.0.0.1) is the client: fail closed"
    );
    let (status, bad) = verify(json!({"token": token, "client_ip": "10.0.0.0/8"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert!(bad["error"]["message"]
        .as_str()
        .unwrap()
        .contains("client_ip"));

    let (anywhere, _) = app.create("anywhere", DEPLOY_PROD).await;
    let (_, free) = verify(json!({"token": anywhere, "client_ip": "192.0.2.1"})).await;
    assert_eq!(free["valid"], true);
    assert!(free["token"].get("allowed_cidrs").is_none(), "{free}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_of_a_token_used_from_outside_is_inactive() {
    let app = App::start().await;
    let (token, _) = bound(&app, "introspected", DEPLOY_PROD, &["10.0.0.0/8"]).await;
    let introspect = |extra: &str| {
        let (app, body) = (&app, format!("token={token}{extra}"));
        async move {
            let answer = app
                .post("/v1/introspect")
                .bearer_auth(&app.admin)
                .header("content-type", FORM)
                .body(body.into_bytes())
                .send()
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
            answer.text
        }
    };
    let inside: Value = serde_json::from_str(&introspect("&client_ip=10.0.0.1").await).unwrap();
    assert_eq!(inside["active"], true);
    assert_eq!(inside["tessera_allowed_cidrs"], json!(["10.0.0.0/8"]));
    assert_eq!(
        introspect("&client_ip=192.0.2.1").await,
        r#"{"active":false}"#
    );
    assert_eq!(introspect("").await, r#"{"active":false}"#, "fail closed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_super_admin_token_cannot_manage_from_outside() {
    let app = App::start().await;
    let super_admin = r#"{"super_admin": true}"#;
    let (outside, _) = bound(&app, "far-admin", super_admin, &["10.0.0.0/8"]).await;
    let (inside, _) = bound(&app, "near-admin", super_admin, &["127.0.0.1"]).await;
    let (status, _, value) = app
        .call(Method::GET, "/v1/tokens", Some(&outside), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(value["error"]["code"], "address_not_allowed");
    let body = json!({"name": "made-from-outside", "expires": "7d",
                      "permissions": {"super_admin": true}});
    let (status, _, _) = app
        .call(Method::POST, "/v1/tokens", Some(&outside), Some(body))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app
        .call(Method::GET, "/v1/tokens", Some(&inside), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_narrows_the_networks_of_the_same_token_string() {
    let app = App::start().await;
    let (token, record) = app.create("narrowed", DEPLOY_PROD).await;
    let path = format!("/v1/tokens/{}", record["id"].as_str().unwrap());
    assert_eq!(auth_from(&app, &token, None).await, ok());

    let patch = |cidrs: Value| {
        let (app, path) = (&app, &path);
        async move {
            app.call(
                Method::PATCH,
                path,
                Some(&app.admin),
                Some(json!({ "allowed_cidrs": cidrs })),
            )
            .await
        }
    };
    let (status, _, changed) = patch(json!(["10.0.0.0/8", "10.1.0.0/16", "10.0.0.0/8"])).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        changed["allowed_cidrs"],
        json!(["10.0.0.0/8", "10.1.0.0/16"])
    );
    assert_eq!(changed["version"], 1, "no new token");
    app.auth_becomes(&token, "", StatusCode::FORBIDDEN).await;
    assert_eq!(auth_from(&app, &token, None).await, refused());

    // A later change of the permissions alone keeps the narrowed networks.
    let (status, _, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.admin),
            Some(json!({"permissions": {"super_admin": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Once the verifier applies the new permissions, the networks are still the narrowed ones.
    let started = std::time::Instant::now();
    loop {
        let body = json!({"token": token, "client_ip": "10.0.0.1"});
        let (_, _, seen) = app.call(Method::POST, "/v1/verify", None, Some(body)).await;
        if seen["token"]["permissions"] == json!({"super_admin": true}) {
            assert_eq!(
                seen["token"]["allowed_cidrs"],
                json!(["10.0.0.0/8", "10.1.0.0/16"])
            );
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{seen}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(auth_from(&app, &token, None).await, refused());

    let (status, _, widened) = patch(json!(["127.0.0.0/8"])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(widened["allowed_cidrs"], json!(["127.0.0.0/8"]));
    app.auth_becomes(&token, "", StatusCode::OK).await;
    let (_, _, lifted) = patch(json!([])).await;
    assert_eq!(lifted["allowed_cidrs"], json!([]));
    let body = json!({"token": token, "client_ip": "203.0.113.1"});
    let started = std::time::Instant::now();
    loop {
        let (_, _, seen) = app
            .call(Method::POST, "/v1/verify", None, Some(body.clone()))
            .await;
        if seen["valid"] == true {
            assert!(seen["token"].get("allowed_cidrs").is_none(), "{seen}");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{seen}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerate_signs_new_networks_into_the_new_token() {
    let app = App::start().await;
    let (old, record) = bound(&app, "rotated", DEPLOY_PROD, &["10.0.0.0/8"]).await;
    let path = format!("/v1/tokens/{}/regenerate", record["id"].as_str().unwrap());
    let (status, _, made) = app
        .call(
            Method::POST,
            &path,
            Some(&app.admin),
            Some(json!({"expires": "7d", "allowed_cidrs": ["127.0.0.1"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    assert_eq!(made["record"]["allowed_cidrs"], json!(["127.0.0.1/32"]));
    let new = made["token"].as_str().unwrap();
    assert_eq!(auth_from(&app, new, None).await, ok());
    app.auth_becomes(&old, "", StatusCode::UNAUTHORIZED).await;
    // Left out, the networks stay.
    let (_, _, again) = app
        .call(
            Method::POST,
            &path,
            Some(&app.admin),
            Some(json!({"expires": "7d"})),
        )
        .await;
    assert_eq!(again["record"]["allowed_cidrs"], json!(["127.0.0.1/32"]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_networks_are_a_422_naming_the_entry() {
    let app = App::start().await;
    let many: Vec<String> = (0..33).map(|i| format!("10.0.0.{i}")).collect();
    let cases = [
        (json!(["10.0.0.0/8", "10.0.0.0/33"]), "10.0.0.0/33"),
        (json!(["nonsense"]), "nonsense"),
        (json!(["2001:db8::/129"]), "2001:db8::/129"),
        (json!(many), "at most 32"),
    ];
    for (cidrs, named) in cases {
        let body = json!({"name": "refused", "expires": "7d", "allowed_cidrs": cidrs,
                          "permissions": {"super_admin": true}});
        let (status, _, value) = app
            .call(Method::POST, "/v1/tokens", Some(&app.admin), Some(body))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{value}");
        assert_eq!(value["error"]["code"], "invalid_request");
        let message = value["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{message}");
    }
    let (_, record) = app.create("kept", DEPLOY_PROD).await;
    let path = format!("/v1/tokens/{}", record["id"].as_str().unwrap());
    let (status, _, value) = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.admin),
            Some(json!({"allowed_cidrs": ["10.0.0.0/8/8"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{value}");
    app.stop().await;
}
