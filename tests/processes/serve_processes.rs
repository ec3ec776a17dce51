//! Three `tessera serve` processes: two issuers on one Redis, and a verify-only instance at the
//! edge with public keys only, following the first issuer's `/v1/state`. A change made through
//! one issuer is enforced by the other two.

#![cfg(feature = "cli")]

use crate::support::app::Base;
use crate::support::binary::{tessera, Serve};
use crate::support::free_port;
use crate::support::redis_server::RedisServer;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const DEPLOY: &str = "resource=devtron-app&role=trigger&project=payments&environment=prod&app=api";

async fn ready(client: &Client, server: &Serve) {
    server.ready(client).await;
}

/// Wait until every server in `servers` gives `want`.
async fn enforced(servers: &[&Serve], token: &str, query: &str, want: StatusCode) {
    for server in servers {
        let patience = Duration::from_secs(10);
        let base = Base::url(&server.base);
        base.auth_becomes(token, query, want, patience).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_instance_is_enforced_by_the_others() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = redis.url();
    generate_keys(dir.path());
    // The edge gets the public halves only.
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
    let out = tessera(dir.path())
        .args([
            "token",
            "create",
            "--name",
            "admin",
            "--super-admin",
            "--store",
            &store,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let a = Serve::start(dir.path(), &["--store", &store], &[]);
    let b = Serve::start(dir.path(), &["--store", &store], &[]);
    let client = Client::new();
    ready(&client, &a).await;
    ready(&client, &b).await;
    // The edge reads the state with the least it needs, not a super-admin token.
    let state_token: Value = client
        .post(format!("{}/v1/tokens", a.base))
        .bearer_auth(&admin)
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
    let edge = Serve::start(
        dir.path(),
        &["--verify-only", "--keys", "public", "--state-from", &a.base],
        &[(
            "TESSERA_STATE_TOKEN",
            state_token["token"].as_str().unwrap(),
        )],
    );
    ready(&client, &edge).await;

    // Created through A: accepted by B and the edge.
    let created: Value = client
        .post(format!("{}/v1/tokens", a.base))
        .bearer_auth(&admin)
        .json(
            &json!({"name": "deployer", "expires": "30d", "permissions": {"grants": [
            {"resource": "devtron-app", "role": "trigger", "project": "payments",
             "environments": ["prod"], "apps": ["*"]}]}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["record"]["id"].as_str().unwrap().to_owned();
    enforced(&[&b, &edge], &token, DEPLOY, StatusCode::OK).await;

    // Re-permissioned through B: A and the edge stop allowing it, with the same token string.
    let response = client
        .patch(format!("{}/v1/tokens/{id}", b.base))
        .bearer_auth(&admin)
        .json(
            &json!({"permissions": {"grants": [{"resource": "chart-group", "role": "view",
            "groups": ["*"]}]}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    enforced(&[&a, &edge], &token, DEPLOY, StatusCode::FORBIDDEN).await;

    // Deleted through A: B and the edge refuse it.
    let response = client
        .delete(format!("{}/v1/tokens/{id}", a.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    enforced(&[&b, &edge], &token, "", StatusCode::UNAUTHORIZED).await;

    // The edge serves no management API.
    let response = client
        .get(format!("{}/v1/tokens", edge.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_can_make_the_first_super_admin_token() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new();
    let first = Serve::start(dir.path(), &["--bootstrap-token", "admin.token"], &[]);
    ready(&client, &first).await;
    let path = dir.path().join("admin.token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let admin = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    let response = client
        .get(format!("{}/v1/tokens", first.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let listed: Value = response.json().await.unwrap();
    assert_eq!(listed["tokens"][0]["name"], "admin");
    drop(first);

    // Once there are tokens, a restart with the same option makes none.
    std::fs::remove_file(&path).unwrap();
    let second = Serve::start(dir.path(), &["--bootstrap-token", "admin.token"], &[]);
    ready(&client, &second).await;
    assert!(!path.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_sets_what_the_command_line_and_environment_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let (from_file, from_env) = (free_port(), free_port());
    std::fs::write(
        dir.path().join("tessera.toml"),
        format!(
            "listen = \"127.0.0.1:{from_file}\"\nbootstrap-token = \"first.token\"\n\
             trusted-proxy = [\"10.0.0.1\"]\nstaleness-bound = 10\n\
             bad-signature-budget = 0\n"
        ),
    )
    .unwrap();
    let client = Client::new();
    // The file's listen address, unless the environment names another.
    let listen = format!("127.0.0.1:{from_env}");
    let server = Serve::spawn(
        dir.path(),
        &["--config", "tessera.toml"],
        &[("TESSERA_LISTEN", &listen)],
        &listen,
    );
    ready(&client, &server).await;
    assert!(
        dir.path().join("first.token").exists(),
        "bootstrap-token came from the file"
    );
    drop(server);

    // A key the file may not have is refused with its name.
    std::fs::write(
        dir.path().join("bad.toml"),
        "listen = \"127.0.0.1:1\"\nport = 3\n",
    )
    .unwrap();
    let out = tessera(dir.path())
        .args(["serve", "--config", "bad.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown field `port`"), "{stderr}");
}

#[test]
fn redis_replica_options_come_from_flags_variables_and_the_file_and_the_embedded_store_refuses_them(
) {
    let dir = tempfile::tempdir().unwrap();
    let serve = |args: &[&str], env: &[(&str, &str)]| {
        let out = tessera(dir.path())
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let refused = |n: u32| format!("--redis-min-replicas {n} applies to a Redis store only");
    let stderr = serve(&["--redis-min-replicas", "1"], &[]);
    assert!(stderr.contains(&refused(1)), "{stderr}");
    let stderr = serve(&[], &[("TESSERA_REDIS_MIN_REPLICAS", "3")]);
    assert!(stderr.contains(&refused(3)), "{stderr}");
    std::fs::write(
        dir.path().join("replicas.toml"),
        "redis-min-replicas = 2\nredis-wait-timeout = 500\n",
    )
    .unwrap();
    let stderr = serve(&["--config", "replicas.toml"], &[]);
    assert!(stderr.contains(&refused(2)), "{stderr}");
    // The command line wins over the file.
    let stderr = serve(
        &["--config", "replicas.toml", "--redis-min-replicas", "4"],
        &[],
    );
    assert!(stderr.contains(&refused(4)), "{stderr}");
    // Nothing was made for the refused store.
    assert!(!dir.path().join("data").exists());
    // Out of range, from the file and from the command line.
    std::fs::write(dir.path().join("zero.toml"), "redis-wait-timeout = 0\n").unwrap();
    let stderr = serve(&["--config", "zero.toml"], &[]);
    assert!(
        stderr.contains("redis-wait-timeout must be in 1..=4000"),
        "{stderr}"
    );
    let stderr = serve(&["--redis-wait-timeout", "5000"], &[]);
    assert!(stderr.contains("--redis-wait-timeout"), "{stderr}");
}

#[test]
fn redis_min_replicas_reaches_the_redis_store_and_a_write_without_replicas_fails() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    generate_keys(dir.path());
    // The first super-admin is a write; no replica can confirm it.
    let out = tessera(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--store", &redis.url()])
        .args(["--bootstrap-token", "admin.token"])
        .args(["--redis-wait-timeout", "200"])
        .env("TESSERA_REDIS_MIN_REPLICAS", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("only 0 of the 1 replicas required (--redis-min-replicas)"),
        "{stderr}"
    );
    assert!(stderr.contains("within 200 ms"), "{stderr}");
    assert!(stderr.contains("may have been applied"), "{stderr}");
    assert!(!dir.path().join("admin.token").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tessera_serve_runs_on_redis_under_sentinel_and_never_logs_the_password() {
    use crate::support::redis_sentinel::SentinelSetup;
    let password = "serve-secret-unseen";
    let Some(setup) = SentinelSetup::start_as_or_skip(1, Some(password)) else {
        return;
    };
    let store = setup.url_with_password(password);
    let dir = tempfile::tempdir().unwrap();
    generate_keys(dir.path());
    // The first super-admin is a write that one replica must confirm.
    let server = Serve::start_logged(
        dir.path(),
        &["--store", &store, "--bootstrap-token", "admin.token"],
        &[("TESSERA_REDIS_MIN_REPLICAS", "1")],
    );
    ready(&Client::new(), &server).await;
    assert!(dir.path().join("admin.token").exists());
    let log = server.log();
    assert!(log.contains("redis+sentinel://:***@127.0.0.1:"), "{log}");
    assert!(!log.contains(password), "{log}");
}

/// `tessera keys generate` in `dir`, which must succeed.
fn generate_keys(dir: &std::path::Path) {
    assert!(tessera(dir)
        .args(["keys", "generate"])
        .output()
        .unwrap()
        .status
        .success());
}
