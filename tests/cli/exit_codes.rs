//! The exit-code rule, black box, one row per kind of outcome: 0 success; 1 refused by the
//! rules or invalid input of any kind (a name, permissions JSON, a role, an expiry, a token not
//! found); 2 usage (clap), configuration, or an unreachable store or server. The rows of
//! invalid input and refusals run twice: on the embedded store, and through a server with
//! `--server`, where they must exit as they do locally.

#![cfg(feature = "cli")]

use crate::support::app::{self, ServerThread};
use crate::support::binary::{Run, Sandbox};
use crate::support::{free_port, DEPLOY_PROD};

/// One command and what it must give.
struct Case {
    /// What the row covers.
    what: &'static str,
    /// The arguments after `tessera`.
    args: Vec<String>,
    /// The exit code.
    code: i32,
    /// A part of stderr that says why.
    says: &'static str,
}

fn case(what: &'static str, args: &[&str], code: i32, says: &'static str) -> Case {
    Case {
        what,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        code,
        says,
    }
}

/// Run every row, in order, in `s` with `env` and, when given, `--server URL`; a row that exits
/// otherwise fails with what it covers and what the binary printed.
fn check(s: &Sandbox, cases: &[Case], server: Option<&str>, env: &[(&str, &str)]) {
    for case in cases {
        let mut args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        if let Some(url) = server {
            args.extend_from_slice(&["--server", url]);
        }
        let run: Run = s.run_with(&args, None, env);
        assert_eq!(
            run.code, case.code,
            "{} ({args:?}) exit code\n--- stdout\n{}\n--- stderr\n{}",
            case.what, run.stdout, run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(
            run.stderr.contains(case.says),
            "{} ({args:?}): stderr does not say {:?}:\n{}",
            case.what,
            case.says,
            run.stderr
        );
    }
}

/// The rows that must exit the same on a store and through a server: input the rules refuse,
/// refusals, and clap's usage errors. None changes anything.
fn refusals() -> Vec<Case> {
    let unknown_role =
        r#"{"grants": [{"resource": "chart-group", "role": "boss", "groups": ["*"]}]}"#;
    vec![
        case(
            "bad name",
            &["token", "create", "--name", "Bad Name", "--super-admin"],
            1,
            "3 to 50 lowercase letters",
        ),
        case(
            "bad permissions JSON",
            &[
                "token",
                "create",
                "--name",
                "perm",
                "--permissions",
                "{nope",
            ],
            1,
            "--permissions",
        ),
        case(
            "unknown role",
            &[
                "token",
                "create",
                "--name",
                "perm",
                "--permissions",
                unknown_role,
            ],
            1,
            "unknown role \"boss\"",
        ),
        case(
            "expiry not offered",
            &[
                "token",
                "create",
                "--name",
                "late",
                "--expires",
                "45d",
                "--super-admin",
            ],
            1,
            "\"45d\" is not an expiry",
        ),
        case(
            "a date not on the calendar",
            &[
                "token",
                "create",
                "--name",
                "late",
                "--expires",
                "2027-02-30",
                "--super-admin",
            ],
            1,
            "2027-02-30 is not a date of the calendar",
        ),
        case(
            "a plain date in the past",
            &[
                "token",
                "create",
                "--name",
                "late",
                "--expires",
                "2020-01-01",
                "--super-admin",
            ],
            1,
            "2020-01-01T23:59:59Z is not in the future",
        ),
        case(
            "regenerate with a bad expiry",
            &["token", "regenerate", "admin", "--expires", "45d"],
            1,
            "\"45d\" is not an expiry",
        ),
        case(
            "not found by name",
            &["token", "show", "nope"],
            1,
            "refused: not_found (not found: no live token is named \"nope\"",
        ),
        case(
            "not found by id",
            &["token", "show", "00000000-0000-4000-8000-000000000000"],
            1,
            "refused: not_found",
        ),
        case(
            "the rules refuse: the last super-admin",
            &["token", "delete", "admin"],
            1,
            "refused: last_super_admin",
        ),
        case(
            "clap: a required flag missing",
            &["token", "create", "--super-admin"],
            2,
            "--name <NAME>",
        ),
        case(
            "clap: an unknown flag",
            &["token", "list", "--bogus"],
            2,
            "unexpected argument '--bogus'",
        ),
    ]
}

#[test]
fn every_outcome_has_the_exit_code_of_its_kind() {
    let s = Sandbox::new();
    s.keys();
    let admin = s
        .run(&["token", "create", "--name", "admin", "--super-admin"])
        .expect(0)
        .stdout
        .trim()
        .to_owned();
    let closed = format!("http://127.0.0.1:{}", free_port());
    let local = [
        case(
            "success: create",
            &[
                "token",
                "create",
                "--name",
                "deployer",
                "--permissions",
                DEPLOY_PROD,
            ],
            0,
            "created token deployer",
        ),
        case(
            "success: a plain date",
            &[
                "token",
                "create",
                "--name",
                "dated",
                "--expires",
                "2999-12-31",
                "--super-admin",
            ],
            0,
            "expires 2999-12-31T23:59:59Z",
        ),
        case("success: list", &["token", "list"], 0, ""),
        case(
            "configuration: an unknown store URL",
            &["token", "list", "--store", "postgres://db/tokens"],
            2,
            "unknown store URL",
        ),
        case(
            "configuration: no key folder",
            &["verify", "--keys", "nowhere", admin.as_str()],
            2,
            "key folder nowhere does not exist",
        ),
        case(
            "an unreachable server",
            &["token", "list", "--server", closed.as_str()],
            2,
            "cannot connect to the server at",
        ),
        case(
            "verify: an unknown role in --require",
            &[
                "verify",
                "--require",
                "resource=chart-group,role=boss,group=x",
                admin.as_str(),
            ],
            1,
            "error: --require: unknown role \"boss\"",
        ),
        case(
            "success: verify",
            &["verify", admin.as_str()],
            0,
            "no token state was consulted",
        ),
    ];
    let env = [("TESSERA_TOKEN", admin.as_str())];
    check(&s, &local, None, &env);
    let hook = format!("{closed}/hook");
    check(
        &s,
        &[
            case(
                "configuration: no webhook secret",
                &["webhooks", "test", "--url", hook.as_str()],
                2,
                "TESSERA_WEBHOOK_SECRET is not set",
            ),
            case(
                "usage: revoke without a server",
                &["revoke", admin.as_str()],
                2,
                "--server <URL>",
            ),
            case(
                "an unreachable server to revoke at",
                &["revoke", admin.as_str(), "--server", closed.as_str()],
                2,
                "cannot connect to the server at",
            ),
        ],
        None,
        &[],
    );
    check(
        &s,
        &[case(
            "configuration: a webhook secret that is not one",
            &["webhooks", "test", "--url", hook.as_str()],
            2,
            "TESSERA_WEBHOOK_SECRET: a webhook secret starts with `whsec_`",
        )],
        None,
        &[("TESSERA_WEBHOOK_SECRET", "hunter2")],
    );
    check(
        &s,
        &[case(
            "an unreachable webhook receiver",
            &["webhooks", "test", "--url", hook.as_str()],
            2,
            "cannot deliver to",
        )],
        None,
        &[(
            "TESSERA_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )],
    );
    // `dated` is another super-admin, so the last-super-admin row needs it gone.
    s.run(&["token", "delete", "dated"]).expect(0);
    check(&s, &refusals(), None, &[]);

    // The same rows through a server that holds the store.
    let server = ServerThread::start(app::config(s.dir.path()));
    check(&s, &refusals(), Some(&server.base), &env);
}
