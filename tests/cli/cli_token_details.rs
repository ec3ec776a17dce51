//! `tessera token ...` details, black box, on the embedded store and through a server: a plain
//! date for `--expires`, "not found" for an unknown token, the LAST USED column, and the way
//! round the lock each command gives when a running server holds the store's file.

#![cfg(feature = "cli")]

use crate::support::app::{self, ServerThread};
use crate::support::binary::{Run, Sandbox};
use chrono::{DateTime, Duration, Utc};

const STORE: &str = "file:data/tessera.redb";

/// A sandbox with keys and a super-admin token named `admin`; the token.
fn bootstrapped() -> (Sandbox, String) {
    let s = Sandbox::new();
    s.keys();
    let run = s
        .run(&["token", "create", "--name", "admin", "--super-admin"])
        .expect(0);
    (s, run.stdout.trim().to_owned())
}

/// `tessera token ARGS --server URL` with `admin` in `TESSERA_TOKEN`.
fn remote(s: &Sandbox, base: &str, admin: &str, args: &[&str]) -> Run {
    let mut all = vec!["token"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--server", base]);
    s.run_with(&all, None, &[("TESSERA_TOKEN", admin)])
}

/// A date `days` from today, as a date picker gives it.
fn date_in(days: i64) -> String {
    (Utc::now() + Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

#[test]
fn a_plain_date_expires_at_the_end_of_that_day_utc() {
    let (s, admin) = bootstrapped();
    let date = date_in(20);
    let end = format!("{date}T23:59:59Z");
    let created = s
        .run(&[
            "token",
            "create",
            "--name",
            "dated",
            "--expires",
            &date,
            "--super-admin",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(created["record"]["expires_at"], end.as_str());
    let shown = s.run(&["token", "show", "dated"]).expect(0);
    assert!(
        shown.stdout.contains(&format!("expires:      {end} (in ")),
        "{}",
        shown.stdout
    );

    let later = date_in(40);
    let regenerated = s
        .run(&[
            "token",
            "regenerate",
            "dated",
            "--expires",
            &later,
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(
        regenerated["record"]["expires_at"],
        format!("{later}T23:59:59Z").as_str()
    );

    // Today is still valid until its last second; a day gone is refused like any past time.
    let yesterday = date_in(-1);
    let past = s
        .run(&[
            "token",
            "regenerate",
            "dated",
            "--expires",
            &yesterday,
            "--json",
        ])
        .expect(1);
    assert_eq!(past.json()["error"]["code"], "invalid_request");
    assert!(
        past.stderr
            .contains(&format!("{yesterday}T23:59:59Z is not in the future")),
        "{}",
        past.stderr
    );

    // The lifetime rule counts to the end of the day.
    let too_far = s
        .run(&[
            "token",
            "create",
            "--name",
            "bounded",
            "--expires",
            &date_in(61),
            "--super-admin",
            "--max-lifetime-days",
            "60",
        ])
        .expect(1);
    assert!(
        too_far
            .stderr
            .contains("longest lifetime allowed is 60 days"),
        "{}",
        too_far.stderr
    );

    // Through a server: the same record.
    let server = ServerThread::start(app::config(s.dir.path()));
    let third = date_in(7);
    let there = remote(
        &s,
        &server.base,
        &admin,
        &[
            "create",
            "--name",
            "dated-there",
            "--expires",
            &third,
            "--super-admin",
            "--json",
        ],
    )
    .expect(0)
    .json();
    assert_eq!(
        there["record"]["expires_at"],
        format!("{third}T23:59:59Z").as_str()
    );
}

#[test]
fn an_unknown_token_is_not_found_on_a_store_and_through_a_server() {
    let (s, admin) = bootstrapped();
    let shown = s.run(&["token", "show", "nope", "--json"]).expect(1);
    assert_eq!(shown.json()["error"]["code"], "not_found");
    assert!(
        shown.stderr.contains(
            "refused: not_found (not found: no live token is named \"nope\" (give a name or an id"
        ),
        "{}",
        shown.stderr
    );
    for args in [
        &["update", "nope", "--description", "x"][..],
        &["delete", "nope"],
    ] {
        let mut all = vec!["token"];
        all.extend_from_slice(args);
        let run = s.run(&all).expect(1);
        assert!(run.stderr.contains("refused: not_found"), "{}", run.stderr);
    }

    let server = ServerThread::start(app::config(s.dir.path()));
    let there = remote(&s, &server.base, &admin, &["show", "nope"]).expect(1);
    assert_eq!(there.stderr, shown.stderr, "the same words both ways");
    let by_id = remote(
        &s,
        &server.base,
        &admin,
        &["show", "00000000-0000-4000-8000-000000000000", "--json"],
    )
    .expect(1);
    assert_eq!(by_id.json()["error"]["code"], "not_found");
}

/// Record on the store that `id` was used at `at` from `from`, as a server does.
fn record_use(s: &Sandbox, id: &str, at: DateTime<Utc>, from: &str) {
    use tessera::store::TokenStore as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = format!("file:{}", s.path("data/tessera.redb").display());
        let store = tessera::store::AnyStore::open(&url).await.unwrap();
        let usage = tessera::model::Usage {
            id: id.parse().unwrap(),
            at,
            from: Some(from.to_owned()),
        };
        store.record_usage(vec![usage]).await.unwrap();
    });
}

/// The cell of `column` in the row of `name`, from `token list`'s table.
fn cell(table: &str, name: &str, column: &str) -> String {
    let mut lines = table.lines();
    let header = lines.next().expect("a header");
    let start = header.find(column).expect("the column");
    let row = lines
        .find(|line| line.starts_with(&format!("{name} ")))
        .expect("the row");
    row[start..].split("  ").next().unwrap().trim().to_owned()
}

#[test]
fn the_list_shows_when_each_token_was_last_used() {
    let (s, admin) = bootstrapped();
    let idle = s
        .run(&[
            "token",
            "create",
            "--name",
            "idle",
            "--super-admin",
            "--json",
        ])
        .expect(0)
        .json();
    let admin_id = s
        .run(&["token", "show", "admin", "--json"])
        .expect(0)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = DateTime::parse_from_rfc3339("2026-11-30T08:15:00Z")
        .unwrap()
        .with_timezone(&Utc);
    record_use(&s, &admin_id, at, "203.0.113.7");

    let list = s.run(&["token", "list"]).expect(0);
    let header = list.stdout.lines().next().unwrap();
    assert!(
        header.contains("  EXPIRES ")
            && header.contains("  LAST USED ")
            && header.contains("  PERMISSIONS"),
        "{header}"
    );
    assert_eq!(
        cell(&list.stdout, "admin", "LAST USED"),
        "2026-11-30T08:15:00Z"
    );
    assert_eq!(cell(&list.stdout, "idle", "LAST USED"), "never");
    assert_eq!(cell(&list.stdout, "idle", "PERMISSIONS"), "super-admin");

    let json = s.run(&["token", "list", "--json"]).expect(0).json();
    let tokens = json["tokens"].as_array().unwrap();
    assert_eq!(tokens[0]["last_used_at"], "2026-11-30T08:15:00Z");
    assert_eq!(tokens[0]["last_used_from"], "203.0.113.7");
    assert_eq!(tokens[1]["id"], idle["record"]["id"]);
    assert!(tokens[1]["last_used_at"].is_null(), "{}", tokens[1]);

    let shown = s.run(&["token", "show", "admin"]).expect(0);
    assert!(
        shown
            .stdout
            .contains("last used:    2026-11-30T08:15:00Z (")
            && shown.stdout.contains(" ago) from 203.0.113.7"),
        "{}",
        shown.stdout
    );
    let never = s.run(&["token", "show", "idle"]).expect(0);
    assert!(
        never.stdout.contains("last used:    never\n"),
        "{}",
        never.stdout
    );

    // Through a server: the same column from the API's record.
    let server = ServerThread::start(app::config(s.dir.path()));
    let there = remote(&s, &server.base, &admin, &["list"]).expect(0);
    assert_eq!(
        cell(&there.stdout, "admin", "LAST USED"),
        "2026-11-30T08:15:00Z"
    );
    assert_eq!(cell(&there.stdout, "idle", "LAST USED"), "never");
}

#[test]
fn each_command_gives_its_way_round_a_server_holding_the_store() {
    let (s, admin) = bootstrapped();
    let server = ServerThread::start(app::config(s.dir.path()));

    let tokens = s.run(&["token", "list"]).expect(2);
    assert!(
        tokens.stderr.contains("in use by another process"),
        "{}",
        tokens.stderr
    );
    assert!(
        tokens.stderr.contains(
            "hint: while `tessera serve` holds the store, manage tokens through its management \
             API: the same command with --server http://127.0.0.1:8080 (or TESSERA_SERVER) and \
             a super-admin token in TESSERA_TOKEN"
        ),
        "{}",
        tokens.stderr
    );
    assert!(!tokens.stderr.contains("/v1/verify"), "{}", tokens.stderr);

    let verify = s
        .run_with(&["verify", "--store", STORE], Some(&admin), &[])
        .expect(2);
    assert!(
        verify.stderr.contains("in use by another process"),
        "{}",
        verify.stderr
    );
    assert!(
        verify.stderr.contains(
            "hint: while `tessera serve` holds the store, ask it instead: POST /v1/verify on \
             that server"
        ),
        "{}",
        verify.stderr
    );
    assert!(!verify.stderr.contains("--server"), "{}", verify.stderr);

    // The ways round work: the token commands through the server...
    let listed = remote(&s, &server.base, &admin, &["list"]).expect(0);
    assert!(listed.stdout.contains("admin "), "{}", listed.stdout);
    // ...and the server's introspection, which anyone may ask.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer: serde_json::Value = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/v1/verify", server.base))
            .json(&serde_json::json!({ "token": admin }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(answer["valid"], true, "{answer}");
}

#[test]
fn networks_are_set_shown_and_changed_locally_and_through_a_server() {
    let (s, admin) = bootstrapped();
    let created = s
        .run(&[
            "token",
            "create",
            "--name",
            "office",
            "--super-admin",
            "--allowed-cidrs",
            "10.1.2.3/8, 2001:db8::1/32,10.0.0.0/8",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(
        created["record"]["allowed_cidrs"],
        serde_json::json!(["10.0.0.0/8", "2001:db8::/32"])
    );
    let shown = s.run(&["token", "show", "office"]).expect(0);
    assert!(
        shown
            .stdout
            .contains("networks:     10.0.0.0/8, 2001:db8::/32"),
        "{}",
        shown.stdout
    );
    let listed = s.run(&["token", "list", "--json"]).expect(0).json();
    let office = listed
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "office"))
        .or_else(|| {
            listed["tokens"]
                .as_array()
                .and_then(|a| a.iter().find(|t| t["name"] == "office"))
        })
        .cloned()
        .expect("listed");
    assert_eq!(office["allowed_cidrs"][0], "10.0.0.0/8");

    // A bad entry is a usage error that names it.
    let bad = s
        .run(&[
            "token",
            "update",
            "office",
            "--allowed-cidrs",
            "10.0.0.0/8,10.0.0.0/33",
        ])
        .expect(2);
    assert!(bad.stderr.contains("10.0.0.0/33"), "{}", bad.stderr);

    let updated = s
        .run(&["token", "update", "office", "--allowed-cidrs", "", "--json"])
        .expect(0)
        .json();
    assert_eq!(updated["allowed_cidrs"], serde_json::json!([]));
    let shown = s.run(&["token", "show", "office"]).expect(0);
    assert!(
        shown.stdout.contains("networks:     anywhere"),
        "{}",
        shown.stdout
    );

    // Through a server: the same flags, the same records.
    let server = ServerThread::start(app::config(s.dir.path()));
    let there = remote(
        &s,
        &server.base,
        &admin,
        &["update", "office", "--allowed-cidrs", "192.0.2.7", "--json"],
    )
    .expect(0)
    .json();
    assert_eq!(there["allowed_cidrs"], serde_json::json!(["192.0.2.7/32"]));
    let regenerated = remote(
        &s,
        &server.base,
        &admin,
        &[
            "regenerate",
            "office",
            "--expires",
            "7d",
            "--allowed-cidrs",
            "198.51.100.0/24",
            "--json",
        ],
    )
    .expect(0)
    .json();
    assert_eq!(
        regenerated["record"]["allowed_cidrs"],
        serde_json::json!(["198.51.100.0/24"])
    );
    let shown = remote(&s, &server.base, &admin, &["show", "office", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        shown["allowed_cidrs"],
        serde_json::json!(["198.51.100.0/24"])
    );
}
