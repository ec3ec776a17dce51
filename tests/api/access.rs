//! Who may do what, from the attacker's side: every route against the one table of needs, the
//! `tessera` resource's least-privilege tokens, the last super-admin that cannot be removed, and
//! the bootstrap that makes a super-admin whenever none is live.

#![cfg(feature = "server")]

use crate::support::app::{config, App};
use crate::support::DEPLOY_PROD;
use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use tessera::lifecycle::{Caller, Expiry, NewToken, TokenService};
use tessera::server::{api_document, route_table, Need};
use tessera::startup;
use tessera::store::AnyStore;
use tessera::{keys, Issuer, KeyRing, ManualClock, Permissions, TesseraRole};

const INTROSPECT: &str = r#"{"grants": [{"resource": "tessera", "role": "introspect"}]}"#;
const READ_STATE: &str = r#"{"grants": [{"resource": "tessera", "role": "read-state"}]}"#;
/// A question no test token's grants answer yes.
const UNGRANTED: &str =
    "resource=devtron-app,role=manager,project=nobody,environment=none,app=nothing";

/// Every (method, path) the OpenAPI document of an issuer and of an edge lists.
fn documented(verify_only: bool) -> BTreeSet<(String, String)> {
    let document = serde_json::to_value(api_document(verify_only)).unwrap();
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if method != "parameters" {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// The path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{id}", "0b6f1c4e-2a57-4d0e-9a4c-3f1d2e5b7a90")
        .replace("{path}", "deploy/now")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_a_caller_short_of_its_need() {
    let table = route_table();
    // The table and what the router serves are the same routes (the page at `/` is no part of
    // the API document).
    let listed: BTreeSet<(String, String)> = table
        .iter()
        .filter(|r| r.path != "/")
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(listed, documented(false), "the table is every route");
    assert!(documented(true).is_subset(&listed));

    let app = App::start().await;
    let (introspect, _) = app.create("introspector", INTROSPECT).await;
    let (read_state, _) = app.create("state-reader", READ_STATE).await;
    let (deployer, _) = app.create("deployer", DEPLOY_PROD).await;
    let mut checked = 0;
    for route in &table {
        let method = Method::from_bytes(route.method.as_bytes()).unwrap();
        let path = concrete(route.path);
        let short: Vec<&str> = match route.need {
            Need::Nothing => {
                let answer = app.request(method.clone(), &path).send().await;
                let status = answer.status;
                assert!(
                    !status.is_server_error() && status != StatusCode::UNAUTHORIZED,
                    "{} {path}: {status}",
                    route.method
                );
                continue;
            }
            Need::ValidToken => vec![&deployer, &read_state],
            Need::Tessera(TesseraRole::ReadState) => vec![&introspect, &deployer],
            Need::Tessera(TesseraRole::Introspect) => vec![&deployer],
            Need::SuperAdmin => vec![&introspect, &read_state, &deployer],
        };
        let send = |token: Option<&str>| {
            let mut request = app
                .request(method.clone(), &path)
                .header("X-Tessera-Require", UNGRANTED)
                .json(&json!({"name": "x", "expires": "7d", "permissions": {"super_admin": true}}));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        let answer = send(None).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{} {path} without a token",
            route.method
        );
        for token in short {
            let answer = send(Some(token)).await;
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{} {path} with a token short of {}: {}",
                route.method,
                route.need,
                answer.text
            );
        }
        checked += 1;
    }
    assert!(checked >= 28, "only {checked} routes need a token");
    // Nothing above changed anything: the only tokens are the test's own.
    let (_, _, list) = app
        .call(Method::GET, "/v1/tokens", Some(&app.admin), None)
        .await;
    assert_eq!(list["tokens"].as_array().unwrap().len(), 4);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_state_token_reads_the_state_and_manages_nothing() {
    let app = App::start().await;
    let (read_state, record) = app.create("edge", READ_STATE).await;
    assert_eq!(
        record["permissions"],
        json!({"grants": [{"resource": "tessera", "role": "read-state"}]})
    );
    let (introspect, _) = app.create("introspector", INTROSPECT).await;
    let (status, _, snapshot) = app
        .call(Method::GET, "/v1/state", Some(&read_state), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{snapshot}");
    assert!(snapshot["revision"].is_u64());
    let (status, _, _) = app
        .call(Method::GET, "/v1/state?since=0", Some(&read_state), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // introspect is below read-state on the ladder.
    let (status, _, _) = app
        .call(Method::GET, "/v1/state", Some(&introspect), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A tessera token is no administrator.
    let create =
        json!({"name": "escalated", "expires": "7d", "permissions": {"super_admin": true}});
    let (status, _, value) = app
        .call(Method::POST, "/v1/tokens", Some(&read_state), Some(create))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{value}");
    // And it asks nothing of other resources: a gateway question about an app is refused.
    assert_eq!(
        app.auth(&read_state, "resource=tessera&role=read-state")
            .await,
        StatusCode::OK
    );
    assert_eq!(
        app.auth(&introspect, "resource=tessera&role=read-state")
            .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.auth(
            &read_state,
            "resource=devtron-app&role=trigger&project=payments&environment=prod&app=api"
        )
        .await,
        StatusCode::FORBIDDEN
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_live_super_admin_cannot_be_deleted_or_demoted_over_http() {
    let app = App::start().await;
    let (_, _, list) = app
        .call(Method::GET, "/v1/tokens", Some(&app.admin), None)
        .await;
    let id = list["tokens"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/tokens/{id}");

    let (status, _, value) = app
        .call(Method::DELETE, &path, Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{value}");
    assert_eq!(value["error"]["code"], "last_super_admin");
    let demote = json!({"permissions": serde_json::from_str::<Value>(DEPLOY_PROD).unwrap()});
    let (status, _, value) = app
        .call(Method::PATCH, &path, Some(&app.admin), Some(demote.clone()))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{value}");
    assert_eq!(value["error"]["code"], "last_super_admin");
    assert!(value["error"]["message"]
        .as_str()
        .unwrap()
        .contains("regenerate"));

    // Regenerating it is allowed: a live super-admin remains, the new version.
    let (status, _, value) = app
        .call(
            Method::POST,
            &format!("{path}/regenerate"),
            Some(&app.admin),
            Some(json!({"expires": "7d"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{value}");
    let admin = value["token"].as_str().unwrap().to_owned();

    // With a second super-admin, the first may go.
    let body =
        json!({"name": "second-admin", "expires": "30d", "permissions": {"super_admin": true}});
    let (status, _, _) = app
        .call(Method::POST, "/v1/tokens", Some(&admin), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, value) = app
        .call(Method::PATCH, &path, Some(&admin), Some(demote))
        .await;
    assert_eq!(status, StatusCode::OK, "{value}");
    app.stop().await;
}

/// A store and keys in `dir` with the tokens `make` creates, at a clock `days_ago` days back;
/// the store is closed again before the test starts a server on it.
async fn prepare(
    dir: &std::path::Path,
    days_ago: i64,
    make: &[(&str, Permissions, Expiry)],
) -> Vec<uuid::Uuid> {
    keys::generate_into(&dir.join("keys"), Utc::now()).unwrap();
    let ring = Arc::new(KeyRing::load_dir(&dir.join("keys")).unwrap());
    let url = format!("file:{}", dir.join("data/tessera.redb").display());
    let store = Arc::new(AnyStore::open(&url).await.unwrap());
    let clock = Arc::new(ManualClock::new(Utc::now() - Duration::days(days_ago)));
    let service = TokenService::new(store, Issuer::new(ring).unwrap()).with_clock(clock);
    let mut ids = Vec::new();
    for (name, permissions, expires) in make {
        let new = NewToken {
            name: (*name).to_owned(),
            description: String::new(),
            expires: *expires,
            permissions: permissions.clone(),
            allowed_cidrs: Default::default(),
        };
        ids.push(
            service
                .create(&Caller::local(), new)
                .await
                .unwrap()
                .record
                .id,
        );
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_makes_a_super_admin_whenever_none_is_live() {
    // The only super-admin expired 70 days ago; a token of another kind is live.
    let dir = tempfile::tempdir().unwrap();
    let grants: Permissions = serde_json::from_str(DEPLOY_PROD).unwrap();
    prepare(
        dir.path(),
        100,
        &[
            ("admin", Permissions::SuperAdmin, Expiry::Days(30)),
            ("deployer", grants, Expiry::Never),
        ],
    )
    .await;
    // The file still holds the dead token of the first bootstrap: it is replaced.
    let file = dir.path().join("admin.token");
    std::fs::write(&file, "v4.public.the-old-dead-token\n").unwrap();
    let mut config = config(dir.path());
    config.bootstrap_token = Some(file.clone());
    let (state, startup) = startup::open(&config).await.unwrap();
    let made = startup
        .bootstrapped
        .expect("no live super-admin: one is made");
    assert!(
        made.name.starts_with("admin-"),
        "admin is taken: {}",
        made.name
    );
    let days = (made.expires_at.unwrap() - Utc::now()).num_days();
    assert!((89..=90).contains(&days), "90 days by default, got {days}");
    let token = std::fs::read_to_string(&file).unwrap();
    let verified = state.verifier().verify(token.trim()).unwrap();
    assert!(verified.is_super_admin());
    assert_eq!(verified.id(), made.id);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!dir.path().join("admin.token.partial").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_makes_nothing_while_a_super_admin_is_live() {
    let dir = tempfile::tempdir().unwrap();
    prepare(
        dir.path(),
        0,
        &[("root", Permissions::SuperAdmin, Expiry::Days(7))],
    )
    .await;
    let file = dir.path().join("admin.token");
    let mut config = config(dir.path());
    config.bootstrap_token = Some(file.clone());
    config.bootstrap_expires = Expiry::Days(7);
    let (_, startup) = startup::open(&config).await.unwrap();
    assert!(startup.bootstrapped.is_none());
    assert!(!file.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_token_that_cannot_be_written_is_not_made() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.bootstrap_token = Some(dir.path().join("missing-folder/admin.token"));
    let error = startup::open(&config).await.unwrap_err().to_string();
    assert!(error.contains("missing-folder/admin.token"), "{error}");
    // The store holds no token that nobody has: a second start with a good path makes one.
    config.bootstrap_token = Some(dir.path().join("admin.token"));
    let (_, startup) = startup::open(&config).await.unwrap();
    let made = startup.bootstrapped.expect("made on the second start");
    assert_eq!(made.name, "admin");
}
