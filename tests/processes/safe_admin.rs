//! `tessera serve` warns an operator before nobody can manage tokens, and an edge that holds
//! more than it needs: read from the log of real processes.

#![cfg(feature = "cli")]

use crate::support::binary::{tessera, Serve};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const SOON: &str = "the last live super-admin expires soon";
const EDGE_TOO_STRONG: &str = "the state token (TESSERA_STATE_TOKEN) is a super-admin";

fn run(dir: &Path, args: &[&str]) -> String {
    let out = tessera(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A store in `dir` whose only super-admin expires as `expires` says.
fn store_with_super_admin(dir: &Path, expires: &str) {
    run(dir, &["keys", "generate"]);
    run(
        dir,
        &[
            "token",
            "create",
            "--name",
            "root",
            "--super-admin",
            "--expires",
            expires,
        ],
    );
}

/// Wait until the log holds `text`.
async fn logged(server: &Serve, text: &str) {
    let started = Instant::now();
    while !server.log().contains(text) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never logged {text:?}:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_warns_when_the_last_super_admin_expires_within_14_days() {
    let client = Client::new();
    let soon = tempfile::tempdir().unwrap();
    store_with_super_admin(soon.path(), "7d");
    let server = Serve::start_logged(soon.path(), &[], &[]);
    server.ready(&client).await;
    logged(&server, SOON).await;
    assert!(server.log().contains("WARN"));

    let later = tempfile::tempdir().unwrap();
    store_with_super_admin(later.path(), "30d");
    let server = Serve::start_logged(later.path(), &[], &[]);
    server.ready(&client).await;
    logged(&server, "tessera is listening").await;
    assert!(!server.log().contains(SOON), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_warns_when_its_state_token_is_a_super_admin() {
    let client = Client::new();
    let dir = tempfile::tempdir().unwrap();
    let issuer = Serve::start_logged(dir.path(), &["--bootstrap-token", "admin.token"], &[]);
    issuer.ready(&client).await;
    logged(&issuer, "no live super-admin: made one").await;
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let admin = admin.trim();
    std::fs::create_dir(dir.path().join("public")).unwrap();
    for entry in std::fs::read_dir(dir.path().join("keys")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".k4.public") {
            std::fs::copy(
                &path,
                dir.path().join("public").join(path.file_name().unwrap()),
            )
            .unwrap();
        }
    }
    let made: Value = client
        .post(format!("{}/v1/tokens", issuer.base))
        .bearer_auth(admin)
        .json(
            &json!({"name": "edge", "expires": "30d", "permissions": {"grants": [
            {"resource": "tessera", "role": "read-state"}]}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let read_state = made["token"].as_str().unwrap();
    let edge_args = [
        "--verify-only",
        "--keys",
        "public",
        "--state-from",
        &issuer.base,
    ];

    let strong = Serve::start_logged(dir.path(), &edge_args, &[("TESSERA_STATE_TOKEN", admin)]);
    strong.ready(&client).await;
    logged(&strong, EDGE_TOO_STRONG).await;

    let least = Serve::start_logged(
        dir.path(),
        &edge_args,
        &[("TESSERA_STATE_TOKEN", read_state)],
    );
    least.ready(&client).await;
    logged(&least, "tessera is listening").await;
    assert!(!least.log().contains(EDGE_TOO_STRONG), "{}", least.log());
    // The least-privileged edge verifies, following the issuer.
    let answer = client
        .get(format!("{}/v1/auth", least.base))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
}
