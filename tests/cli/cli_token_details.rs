//! `tessera token ...` details, black box, on the embedded store and through a server: a plain
//! date for `--expires`, and "not found" for an unknown token.

#![cfg(feature = "cli")]

use crate::support::app::{self, ServerThread};
use crate::support::binary::{Run, Sandbox};
use chrono::{Duration, Utc};

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
