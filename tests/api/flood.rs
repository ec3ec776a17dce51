//! A flood of forged tokens: the client sending it loses its signature checks for a cool-down,
//! and waits for each refusal, while its cached tokens and every other client carry on.

use crate::support::app::App;
use crate::support::DEPLOY_PROD;
use axum::http::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};
use tessera::paseto::{self, decode_b64, encode_b64};

const ATTACKER: &str = "203.0.113.7";
const BYSTANDER: &str = "198.51.100.1";
const BUDGET: u32 = 3;

/// `token` with byte `i` of its signature flipped: well formed, signed by nobody.
fn forged(token: &str, i: usize) -> String {
    let split = paseto::split(token).unwrap();
    let mut body = decode_b64(split.body).unwrap();
    let at = body.len() - 64 + i;
    body[at] ^= 0x01;
    format!("v4.public.{}.{}", encode_b64(&body), split.footer)
}

async fn auth_from(app: &App, client: &str, token: &str) -> (StatusCode, Option<String>) {
    let answer = app
        .get("/v1/auth")
        .bearer_auth(token)
        .header("X-Forwarded-For", client)
        .send()
        .await;
    let retry = answer
        .headers
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (answer.status, retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forger_spends_its_budget_and_waits_while_others_carry_on() {
    let app = App::start_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        config.bad_signature_budget = BUDGET;
    })
    .await;
    let (cached, _) = app.create("cached", DEPLOY_PROD).await;
    let (fresh, _) = app.create("fresh", DEPLOY_PROD).await;
    let (other, _) = app.create("other", DEPLOY_PROD).await;
    assert_eq!(auth_from(&app, ATTACKER, &cached).await.0, StatusCode::OK);

    // Up to and including the forgery that spends the budget, each is checked and refused.
    for i in 0..=BUDGET as usize {
        let (status, retry) = auth_from(&app, ATTACKER, &forged(&fresh, i)).await;
        assert_eq!(
            (status, retry),
            (StatusCode::UNAUTHORIZED, None),
            "forgery {i}"
        );
    }
    // Then the source's signature checks are refused, with a time to come back, after a hold
    // that slows a client waiting for its answers.
    let started = Instant::now();
    let (status, retry) = auth_from(&app, ATTACKER, &forged(&fresh, 10)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // A token it never sent before needs a check: refused too.
    assert_eq!(
        auth_from(&app, ATTACKER, &fresh).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A token already checked needs none: still accepted.
    assert_eq!(auth_from(&app, ATTACKER, &cached).await.0, StatusCode::OK);
    // Another client is not touched, with a token that needs a check.
    assert_eq!(auth_from(&app, BYSTANDER, &other).await.0, StatusCode::OK);

    // The same gate stands before `POST /v1/verify`, with the JSON error shape.
    let answer = app
        .post("/v1/verify")
        .header("X-Forwarded-For", ATTACKER)
        .json(&json!({"token": forged(&other, 20)}))
        .send()
        .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.headers.contains_key("retry-after"));
    assert_eq!(answer.json()["error"]["code"], "too_many_bad_signatures");

    let metrics = app.get("/metrics").send().await.text;
    assert!(
        metrics.contains(
            "tessera_signature_checks_refused_total{reason=\"too_many_bad_signatures\"} 3"
        ),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_of_zero_checks_every_forgery() {
    let app = App::start_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        config.bad_signature_budget = 0;
    })
    .await;
    let (token, _) = app.create("token", DEPLOY_PROD).await;
    for i in 0..20 {
        let (status, _) = auth_from(&app, ATTACKER, &forged(&token, i)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "forgery {i}");
    }
    assert_eq!(auth_from(&app, ATTACKER, &token).await.0, StatusCode::OK);
    app.stop().await;
}
