//! RFC 7009 revocation, RFC 7662 introspection, RFC 8414 metadata and leak reports, from the
//! caller's side: what each answers, and that revocation and leak reports are no oracle.

#![cfg(feature = "server")]

use crate::support::app::App;
use crate::support::DEPLOY_PROD;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const INTROSPECT: &str = r#"{"grants": [{"resource": "tessera", "role": "introspect"}]}"#;
const FORM: &str = "application/x-www-form-urlencoded";

async fn form(app: &App, path: &str, bearer: Option<&str>, body: &str) -> (StatusCode, String) {
    let mut request = app
        .post(path)
        .header("content-type", FORM)
        .body(body.as_bytes().to_vec());
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let answer = request.send().await;
    (answer.status, answer.text)
}

/// The newest webhook event.
async fn newest_event(app: &App) -> Value {
    let (_, _, body) = app
        .call(
            Method::GET,
            "/v1/webhooks/deliveries?limit=1",
            Some(&app.admin),
            None,
        )
        .await;
    body["deliveries"][0].clone()
}

async fn audit(app: &App) -> Vec<Value> {
    let (_, _, page) = app
        .call(Method::GET, "/v1/audit", Some(&app.admin), None)
        .await;
    page["entries"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_revokes_a_token_and_the_answer_tells_nothing() {
    let app = App::start().await;
    let (token, record) = app.create("leaky", DEPLOY_PROD).await;
    let id = record["id"].as_str().unwrap();
    assert_eq!(app.auth(&token, "").await, StatusCode::OK);

    let garbage = form(&app, "/v1/revoke", None, "token=v4.public.nonsense").await;
    let revoked = form(&app, "/v1/revoke", None, &format!("token={token}")).await;
    let again = form(
        &app,
        "/v1/revoke",
        None,
        &format!("token={token}&token_type_hint=access_token"),
    )
    .await;
    assert_eq!(revoked, (StatusCode::OK, String::new()));
    assert_eq!(garbage, revoked, "an invalid token gets the same answer");
    assert_eq!(again, revoked, "a dead token gets the same answer");
    app.auth_becomes(&token, "", StatusCode::UNAUTHORIZED).await;

    let entry = audit(&app)
        .await
        .into_iter()
        .find(|e| e["action"] == "revoked")
        .expect("audited");
    assert_eq!(entry["actor"], format!("token:{id}"));
    assert_eq!(entry["target"], id);
    let (_, _, list) = app
        .call(Method::GET, "/v1/tokens", Some(&app.admin), None)
        .await;
    assert!(!list.to_string().contains(id), "the record left the list");
    let event = newest_event(&app).await;
    assert_eq!(event["type"], "token.revoked");
    assert_eq!(event["body"]["data"]["actor"], format!("token:{id}"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_version_revokes_nothing_and_bad_forms_are_refused() {
    let app = App::start().await;
    let (old, record) = app.create("rotated", DEPLOY_PROD).await;
    let id = record["id"].as_str().unwrap();
    let (status, _, value) = app
        .call(
            Method::POST,
            &format!("/v1/tokens/{id}/regenerate"),
            Some(&app.admin),
            Some(json!({"expires": "7d"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let new = value["token"].as_str().unwrap();
    // The superseded string is no authority over the new one.
    let (status, _) = form(&app, "/v1/revoke", None, &format!("token={old}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.auth(new, "").await, StatusCode::OK);

    let twice = format!("token={new}&token=x");
    assert_eq!(
        form(&app, "/v1/revoke", None, &twice).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        form(&app, "/v1/revoke", None, "token_type_hint=x").await.0,
        StatusCode::BAD_REQUEST
    );
    let json = app
        .post("/v1/revoke")
        .json(&json!({"token": new}))
        .send()
        .await;
    assert_eq!(json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.auth(new, "").await, StatusCode::OK, "still alive");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_needs_the_role_and_says_exactly_inactive() {
    let app = App::start().await;
    let (introspector, _) = app.create("introspector", INTROSPECT).await;
    let (deployer, record) = app.create("deployer", DEPLOY_PROD).await;
    let body = format!("token={deployer}");

    assert_eq!(
        form(&app, "/v1/introspect", None, &body).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        form(&app, "/v1/introspect", Some(&deployer), &body).await.0,
        StatusCode::FORBIDDEN
    );

    let (status, text) = form(&app, "/v1/introspect", Some(&introspector), &body).await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "tessera-api-token");
    assert_eq!(answer["jti"], record["id"]);
    assert_eq!(answer["username"], "deployer");
    assert_eq!(answer["sub"], "api-token:deployer");
    assert_eq!(answer["iss"], "tessera");
    assert_eq!(answer["scope"], "devtron-app:trigger");
    assert_eq!(answer["tessera_version"], 1);
    assert_eq!(
        answer["tessera_permissions"],
        serde_json::from_str::<Value>(DEPLOY_PROD).unwrap()
    );
    let exp = answer["exp"].as_i64().unwrap();
    let iat = answer["iat"].as_i64().unwrap();
    assert_eq!(exp - iat, 30 * 86_400);
    assert_eq!(answer["nbf"], answer["iat"]);

    let inactive = json!({"active": false});
    for token in ["v4.public.nonsense", "", &deployer[..deployer.len() - 2]] {
        let (status, text) = form(
            &app,
            "/v1/introspect",
            Some(&introspector),
            &format!("token={token}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), inactive);
    }
    // A deleted token is inactive too.
    let id = record["id"].as_str().unwrap();
    app.call(
        Method::DELETE,
        &format!("/v1/tokens/{id}"),
        Some(&app.admin),
        None,
    )
    .await;
    // (The server's own verifier hears of the deletion through the state feed, at once.)
    let started = std::time::Instant::now();
    loop {
        let (_, text) = form(&app, "/v1/introspect", Some(&app.admin), &body).await;
        if serde_json::from_str::<Value>(&text).unwrap() == inactive {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leak_report_revokes_what_it_holds_and_says_only_how_many() {
    let app = App::start().await;
    let (leaked, record) = app.create("pasted", DEPLOY_PROD).await;
    let report = json!({"tokens": [leaked, "v4.public.nonsense", "hello"],
                        "source": "https://gist.example/abc"});
    let (status, _, answer) = app
        .call(Method::POST, "/v1/leaks", None, Some(report))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({"received": 3}));
    app.auth_becomes(&leaked, "", StatusCode::UNAUTHORIZED)
        .await;
    let entry = audit(&app)
        .await
        .into_iter()
        .find(|e| e["action"] == "leaked")
        .expect("audited");
    assert_eq!(entry["target"], record["id"]);
    assert_eq!(entry["note"], "https://gist.example/abc");
    assert_eq!(entry["actor"], "leak-report");
    let event = newest_event(&app).await;
    assert_eq!(event["type"], "token.leaked");
    assert_eq!(event["body"]["data"]["actor"], "leak-report");
    assert_eq!(event["body"]["data"]["record"]["id"], record["id"]);

    let too_many = json!({"tokens": vec!["x"; 101], "source": "s"});
    let (status, _, _) = app
        .call(Method::POST, "/v1/leaks", None, Some(too_many))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_names_the_endpoints_on_the_callers_host() {
    let app = App::start().await;
    let answer = app
        .get("/.well-known/oauth-authorization-server")
        .header("host", "tessera.example:8443")
        .send()
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({
            "issuer": "http://tessera.example:8443",
            "introspection_endpoint": "http://tessera.example:8443/v1/introspect",
            "revocation_endpoint": "http://tessera.example:8443/v1/revoke",
            "introspection_endpoint_auth_methods_supported": ["bearer"],
            "revocation_endpoint_auth_methods_supported": ["none"],
        })
    );
    app.stop().await;
}
