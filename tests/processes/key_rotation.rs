//! A key rotation under load, as docs/operations.md gives it: two issuers on one Redis sharing
//! a key folder, and a verify-only edge with a copy of its public half, while tokens issued by
//! both are verified without pause through all three. Rotate (staged), copy, SIGHUP everyone,
//! activate, SIGHUP, issue, regenerate or delete the old key's tokens, retire (refused while
//! some live, then forced), SIGHUP: no token that should be valid is ever refused, and the
//! retired key's tokens are refused everywhere afterwards.

#![cfg(feature = "cli")]

use crate::support::binary::{tessera, Serve};
use crate::support::key_statuses;
use crate::support::redis_server::RedisServer;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A token the loop verifies while `valid` says it should pass.
struct Tracked {
    token: String,
    valid: AtomicBool,
}

#[derive(Default)]
struct Tally {
    checks: AtomicU64,
    failures: Mutex<Vec<String>>,
}

/// Verify every tracked token through every server, round after round, until `stop`. A refusal
/// counts as a failure only when the token was valid before the request and still is after it
/// (the test withdraws a token before regenerating or deleting it).
async fn verify_loop(
    bases: Vec<String>,
    tracked: Arc<Mutex<Vec<Arc<Tracked>>>>,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    let client = Client::new();
    while !stop.load(Ordering::Relaxed) {
        let round: Vec<Arc<Tracked>> = tracked.lock().unwrap().clone();
        for entry in round {
            for base in &bases {
                if !entry.valid.load(Ordering::SeqCst) {
                    continue;
                }
                let answer = client
                    .get(format!("{base}/v1/auth"))
                    .bearer_auth(&entry.token)
                    .send()
                    .await;
                let status = answer.as_ref().map(|a| a.status()).ok();
                tally.checks.fetch_add(1, Ordering::Relaxed);
                if status != Some(StatusCode::OK) && entry.valid.load(Ordering::SeqCst) {
                    let body = match answer {
                        Ok(a) => a.text().await.unwrap_or_default(),
                        Err(e) => e.to_string(),
                    };
                    tally
                        .failures
                        .lock()
                        .unwrap()
                        .push(format!("{base}: {status:?} {body}"));
                }
            }
        }
    }
}

/// `tessera ARGS` in `dir`: its exit code, stdout and stderr.
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = tessera(dir).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Copy the public half of `from` (public key files and the status file) over `to`, as an
/// operator copies the folder to an edge: each file replaced by a rename.
fn copy_public(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".k4.public") || name == tessera::keys::STATUS_FILE {
            let partial = to.join(format!(".{name}.copy"));
            std::fs::copy(&path, &partial).unwrap();
            std::fs::rename(&partial, to.join(&name)).unwrap();
        }
    }
}

/// Each server's `/v1/keys`, as (kid, status) pairs.
async fn published(client: &Client, base: &str) -> Vec<(String, String)> {
    let keys: Value = client
        .get(format!("{base}/v1/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    key_statuses(&keys)
}

/// SIGHUP every server, then wait until each publishes `want`.
async fn reload_all(client: &Client, servers: &[&Serve], want: &[(String, String)]) {
    for server in servers {
        server.hangup();
    }
    for server in servers {
        let started = Instant::now();
        loop {
            let got = published(client, &server.base).await;
            if got == want {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{} publishes {got:?}, wanted {want:?}\n{}",
                server.base,
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(server.log().contains("SIGHUP: reloaded the key folder"));
    }
}

fn track(tracked: &Mutex<Vec<Arc<Tracked>>>, token: &str) -> Arc<Tracked> {
    let entry = Arc::new(Tracked {
        token: token.to_owned(),
        valid: AtomicBool::new(true),
    });
    tracked.lock().unwrap().push(entry.clone());
    entry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_under_load_refuses_no_valid_token_and_ends_the_retired_key() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = redis.url();
    let keys = root.join("keys");
    let public = root.join("public");
    let (code, _, err) = run(root, &["keys", "generate"]);
    assert_eq!(code, 0, "{err}");
    std::fs::create_dir(&public).unwrap();
    copy_public(&keys, &public);
    let (code, admin, err) = run(
        root,
        &[
            "token",
            "create",
            "--name",
            "admin",
            "--super-admin",
            "--store",
            &store,
        ],
    );
    assert_eq!(code, 0, "{err}");

    let a = Serve::start_logged(root, &["--store", &store], &[]);
    let b = Serve::start_logged(root, &["--store", &store], &[]);
    let edge = Serve::start_logged(
        root,
        &["--verify-only", "--keys", "public", "--store", &store],
        &[],
    );
    let client = Client::new();
    for server in [&a, &b, &edge] {
        server.ready(&client).await;
    }
    let all = [&a, &b, &edge];
    let old = published(&client, &a.base).await[0].0.clone();

    // Old-key tokens from both issuers, each with its record id.
    let tracked = Arc::new(Mutex::new(Vec::new()));
    let mut old_tokens = Vec::new();
    for i in 0..12 {
        let issuer = if i % 2 == 0 { &a } else { &b };
        let made = issuer
            .create_token(&client, &admin, &format!("old-{i}"))
            .await;
        assert_eq!(made["record"]["kid"], old.as_str());
        let entry = track(&tracked, made["token"].as_str().unwrap());
        old_tokens.push((made["record"]["id"].as_str().unwrap().to_owned(), entry));
    }
    let admin_entry = track(&tracked, &admin);

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let looping = tokio::spawn(verify_loop(
        all.iter().map(|s| s.base.clone()).collect(),
        tracked.clone(),
        tally.clone(),
        stop.clone(),
    ));

    // 1. Stage a new key; every instance (the edge from its copy) loads it.
    let (code, new, err) = run(root, &["keys", "rotate"]);
    assert_eq!(code, 0, "{err}");
    copy_public(&keys, &public);
    let staged = vec![
        (old.clone(), "signing".to_owned()),
        (new.clone(), "staged".to_owned()),
    ];
    reload_all(&client, &all, &staged).await;
    let made = b.create_token(&client, &admin, "staged-era").await;
    assert_eq!(
        made["record"]["kid"],
        old.as_str(),
        "a staged key does not sign"
    );
    let staged_era = track(&tracked, made["token"].as_str().unwrap());

    // 2. Activate it; every instance reloads; both issuers sign with it.
    let (code, _, err) = run(root, &["keys", "activate", &new]);
    assert_eq!(code, 0, "{err}");
    copy_public(&keys, &public);
    let activated = vec![
        (old.clone(), "active".to_owned()),
        (new.clone(), "signing".to_owned()),
    ];
    reload_all(&client, &all, &activated).await;
    for i in 0..12 {
        let issuer = if i % 2 == 0 { &a } else { &b };
        let made = issuer
            .create_token(&client, &admin, &format!("new-{i}"))
            .await;
        assert_eq!(made["record"]["kid"], new.as_str());
        track(&tracked, made["token"].as_str().unwrap());
    }

    // 3. Retiring the old key is refused while its tokens live: the admin, the staged-era
    // token and the twelve old ones.
    let (code, _, err) = run(root, &["keys", "retire", &old, "--store", &store]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("may have signed 14 live tokens"), "{err}");
    assert!(err.contains("the last expires at 20"), "{err}");

    // Regenerate half (the new versions are signed by the new key), delete a quarter, through
    // both issuers; each token leaves the valid set before its change.
    let mut admin = admin;
    admin_entry.valid.store(false, Ordering::SeqCst);
    let regenerated: Value = client
        .post(format!(
            "{}/v1/tokens/{}/regenerate",
            a.base,
            admin_id(&client, &a.base, &admin).await
        ))
        .bearer_auth(&admin)
        .json(&json!({"expires": "30d"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(regenerated["record"]["kid"], new.as_str());
    admin = regenerated["token"].as_str().unwrap().to_owned();
    track(&tracked, &admin);
    let mut doomed = Vec::new();
    for (i, (id, entry)) in old_tokens.into_iter().enumerate() {
        let issuer = if i % 2 == 0 { &a } else { &b };
        match i % 4 {
            0 | 1 => {
                entry.valid.store(false, Ordering::SeqCst);
                let regenerated: Value = client
                    .post(format!("{}/v1/tokens/{id}/regenerate", issuer.base))
                    .bearer_auth(&admin)
                    .json(&json!({"expires": "30d"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(regenerated["record"]["kid"], new.as_str());
                track(&tracked, regenerated["token"].as_str().unwrap());
            }
            2 => {
                entry.valid.store(false, Ordering::SeqCst);
                let response = client
                    .delete(format!("{}/v1/tokens/{id}", issuer.base))
                    .bearer_auth(&admin)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::NO_CONTENT);
            }
            _ => doomed.push(entry),
        }
    }
    let (code, _, err) = run(root, &["keys", "retire", &old, "--store", &store]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("may have signed 4 live tokens"), "{err}");

    // 4. Forced: the three old tokens left and the staged-era one stop working once every
    // instance has reloaded.
    for entry in &doomed {
        entry.valid.store(false, Ordering::SeqCst);
    }
    staged_era.valid.store(false, Ordering::SeqCst);
    let (code, _, err) = run(
        root,
        &["keys", "retire", &old, "--force", "--store", &store],
    );
    assert_eq!(code, 0, "{err}");
    copy_public(&keys, &public);
    reload_all(&client, &all, &[(new.clone(), "signing".to_owned())]).await;

    // Let the loop run a little longer on the new ring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    looping.await.unwrap();

    for server in all {
        for entry in doomed.iter().chain([&staged_era]) {
            let response = client
                .post(format!("{}/v1/verify", server.base))
                .json(&json!({"token": entry.token}))
                .send()
                .await
                .unwrap();
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["valid"], false, "{}: {answer}", server.base);
            assert_eq!(answer["code"], "unknown_key", "{}: {answer}", server.base);
        }
    }
    let failures = tally.failures.lock().unwrap().clone();
    let checks = tally.checks.load(Ordering::Relaxed);
    eprintln!(
        "verifications during the rotation: {checks}, failed: {}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {checks} failed: {failures:#?}",
        failures.len()
    );
    assert!(checks > 500, "the loop ran only {checks} verifications");
}

/// The id of the token `admin` itself, from the records.
async fn admin_id(client: &Client, base: &str, admin: &str) -> String {
    let listed: Value = client
        .get(format!("{base}/v1/tokens"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_with_a_broken_key_folder_keeps_the_keys_in_use_and_says_why() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let server = Serve::start_logged(root, &["--bootstrap-token", "admin.token"], &[]);
    let client = Client::new();
    server.ready(&client).await;
    let admin = std::fs::read_to_string(root.join("admin.token")).unwrap();
    let old = published(&client, &server.base).await;
    assert_eq!(old.len(), 1);

    let (code, new, err) = run(root, &["keys", "rotate"]);
    assert_eq!(code, 0, "{err}");
    let status = root.join("keys").join(tessera::keys::STATUS_FILE);
    std::fs::set_permissions(&status, std::fs::Permissions::from_mode(0o666)).unwrap();
    server.hangup();
    let started = Instant::now();
    while !server.log().contains("did not reload") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        server.log().contains("written by group or others"),
        "{}",
        server.log()
    );
    assert_eq!(
        published(&client, &server.base).await,
        old,
        "the keys in use stay"
    );
    let response = client
        .get(format!("{}/v1/auth", server.base))
        .bearer_auth(admin.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    std::fs::set_permissions(&status, std::fs::Permissions::from_mode(0o644)).unwrap();
    let staged = vec![
        (old[0].0.clone(), "signing".to_owned()),
        (new, "staged".to_owned()),
    ];
    reload_all(&client, &[&server], &staged).await;
}
