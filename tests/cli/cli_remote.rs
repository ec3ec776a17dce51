//! `tessera token ... --server URL`, black box: a real server on port 0 in this process (its
//! own thread and runtime), the first super-admin token made with the binary on the store
//! before the server starts (as an operator bootstraps), then the binary run with `--server`
//! and `TESSERA_TOKEN` for every subcommand. The remote mode must print what the local mode
//! prints and exit as it exits; its own failures (no token, a refused token, no server) are
//! configuration errors that name the URL and never the token.

#![cfg(feature = "cli")]

use crate::support::app::{self, ServerThread};
use crate::support::binary::{Run, Sandbox};
use crate::support::redis_server::TlsFiles;
use crate::support::{free_port, DEPLOY_PROD};
use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::Duration;

/// `deployer`, with a description, an expiry and specific permissions.
const CREATE_DEPLOYER: [&str; 9] = [
    "create",
    "--name",
    "deployer",
    "--description",
    "deploys payments",
    "--expires",
    "90d",
    "--permissions",
    DEPLOY_PROD,
];

/// A server on the sandbox's store and keys, stopped (and its store released) on drop.
fn server(s: &Sandbox) -> ServerThread {
    let mut config = app::config(s.dir.path());
    // Last use stays in memory for the test's length, so records read the same before and
    // while the server runs.
    config.usage_flush = Duration::from_secs(3600);
    ServerThread::start(config)
}

/// The binary in the sandbox with `env` (and, as always, nothing of the remote mode from
/// outside).
fn run_env(s: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Run {
    s.run_with(args, None, env)
}

/// `tessera token ARGS` on the sandbox's store.
fn local(s: &Sandbox, args: &[&str]) -> Run {
    let mut all = vec!["token"];
    all.extend_from_slice(args);
    run_env(s, &all, &[])
}

/// `tessera token ARGS --server URL` with `token` in `TESSERA_TOKEN`.
fn remote(s: &Sandbox, base: &str, token: &str, args: &[&str]) -> Run {
    let mut all = vec!["token"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--server", base]);
    run_env(s, &all, &[("TESSERA_TOKEN", token)])
}

/// The token a create or regenerate printed: alone on stdout.
fn token_of(run: &Run) -> String {
    let token = run.stdout.trim();
    assert!(
        token.starts_with("v4.public.") && !token.contains('\n'),
        "stdout holds the token alone: {:?}",
        run.stdout
    );
    token.to_owned()
}

/// A sandbox with keys and a super-admin token named `admin`, made on the store.
fn bootstrapped() -> (Sandbox, String) {
    let s = Sandbox::new();
    s.keys();
    let admin = token_of(&local(&s, &["create", "--name", "admin", "--super-admin"]).expect(0));
    (s, admin)
}

/// A bootstrapped sandbox with a server running on its store.
struct Fixture {
    // Dropped first: the server lets go of the store before the folder goes.
    server: ServerThread,
    s: Sandbox,
    admin: String,
}

impl Fixture {
    fn start() -> Self {
        let (s, admin) = bootstrapped();
        Self {
            server: server(&s),
            s,
            admin,
        }
    }

    /// `tessera token ARGS --server` as the super-admin.
    fn admin(&self, args: &[&str]) -> Run {
        self.with(&self.admin, args)
    }

    /// `tessera token ARGS --server` with `token`.
    fn with(&self, token: &str, args: &[&str]) -> Run {
        remote(&self.s, &self.server.base, token, args)
    }

    /// Create `deployer` (deploys to payments/prod) through the server; its token.
    fn deployer(&self) -> String {
        let args = ["create", "--name", "deployer", "--permissions", DEPLOY_PROD];
        token_of(&self.admin(&args).expect(0))
    }
}

/// `text` contains each of `parts`; a failure shows the text.
#[track_caller]
fn has(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
}

/// Texts must be equal; a failure shows the first line that differs, not pages of output.
#[track_caller]
fn same_text(remote: &str, local: &str, args: &[&str]) {
    let mismatch = remote
        .lines()
        .zip(local.lines())
        .enumerate()
        .find(|(_, (r, l))| r != l);
    if let Some((n, (r, l))) = mismatch {
        panic!("{args:?}, line {}:\nremote: {r}\nlocal:  {l}", n + 1);
    }
    assert_eq!(
        remote.lines().count(),
        local.lines().count(),
        "{args:?}: remote and local give different numbers of lines"
    );
    assert_eq!(remote, local, "{args:?}");
}

#[track_caller]
fn assert_secret_kept(run: &Run, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "a secret was printed\n--- stdout\n{}\n--- stderr\n{}",
            run.stdout,
            run.stderr
        );
    }
}

#[test]
fn create_list_and_show_work_through_the_server() {
    let f = Fixture::start();
    let created = f.admin(&CREATE_DEPLOYER).expect(0);
    let deployer = token_of(&created);
    has(
        &created.stderr,
        &[
            "created token deployer (",
            "version 1, expires",
            "permissions: devtron-app:trigger project=payments envs=prod apps=*",
            "shown only this once",
        ],
    );
    assert_secret_kept(&created, &[&f.admin]);
    assert!(!created.stderr.contains(&deployer));

    let viewer = f
        .admin(&["create", "--name", "viewer", "--super-admin", "--json"])
        .expect(0)
        .json();
    assert!(viewer["token"].as_str().unwrap().starts_with("v4.public."));
    assert_eq!(viewer["record"]["name"], "viewer");
    assert_eq!(viewer["record"]["revision"], 1);
    assert_eq!(viewer["record"]["status"], "active");
    let viewer_id = viewer["record"]["id"].as_str().unwrap().to_owned();

    // The rules refuse as they do locally, with the server's message.
    let taken = f
        .admin(&["create", "--name", "deployer", "--super-admin"])
        .expect(1);
    has(
        &taken.stderr,
        &["refused: name_taken (a token named \"deployer\" already exists"],
    );
    assert!(taken.stdout.is_empty());
    let invalid = f
        .admin(&["create", "--name", "Bad Name", "--super-admin", "--json"])
        .expect(1)
        .json();
    assert_eq!(invalid["error"]["code"], "invalid_request");
    has(invalid["error"]["message"].as_str().unwrap(), &["name: "]);

    let list = f.admin(&["list"]).expect(0);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", list.stdout);
    assert!(lines[0].starts_with("NAME "), "{}", list.stdout);
    assert!(lines[1].starts_with("admin ") && lines[1].contains("super-admin"));
    assert!(lines[2].starts_with("deployer ") && lines[2].contains(" active "));
    assert!(lines[3].starts_with("viewer ") && lines[3].contains(&viewer_id));
    let listed = f
        .admin(&["list", "--json", "--status", "active"])
        .expect(0)
        .json();
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 3);
    let expired = f.admin(&["list", "--status", "expired"]).expect(0);
    assert!(expired.stdout.is_empty());
    has(&expired.stderr, &["no tokens"]);

    // By name and by id.
    let shown = f.admin(&["show", "deployer"]).expect(0);
    has(
        &shown.stdout,
        &[
            "name:         deployer",
            "description:  deploys payments",
            "status:       active",
            "version:      1",
            "revision:     1",
            " by token:",
        ],
    );
    let by_id = f.admin(&["show", &viewer_id, "--json"]).expect(0).json();
    assert_eq!(by_id, viewer["record"]);
    let missing = f.admin(&["show", "nobody"]).expect(1);
    has(
        &missing.stderr,
        &["refused: not_found (not found: no live token is named \"nobody\""],
    );
}

#[test]
fn update_regenerate_delete_and_audit_work_through_the_server() {
    let f = Fixture::start();
    let deployer = f.deployer();

    // Update with If-Match: the revision it names must be the record's.
    let billing = DEPLOY_PROD.replace("payments", "billing");
    let updated = f
        .admin(&[
            "update",
            "deployer",
            "--permissions",
            &billing,
            "--description",
            "now billing",
            "--if-revision",
            "1",
        ])
        .expect(0);
    has(&updated.stderr, &["updated deployer (revision 2)"]);
    has(&updated.stdout, &["revision:     2", "project=billing"]);
    let stale = f
        .admin(&[
            "update",
            "deployer",
            "--description",
            "x",
            "--if-revision",
            "1",
        ])
        .expect(1);
    has(
        &stale.stderr,
        &[
            "refused: conflict (token ",
            "is at revision 2, not 1",
            "hint: read the token again",
        ],
    );
    let nothing = f.admin(&["update", "deployer"]).expect(2);
    has(&nothing.stderr, &["nothing to update"]);

    // Regenerate: a new string, version 2; the old one is refused by the server.
    let regenerated = f
        .admin(&[
            "regenerate",
            "deployer",
            "--expires",
            "60d",
            "--if-revision",
            "2",
            "--json",
        ])
        .expect(0);
    let doc = regenerated.json();
    let fresh = doc["token"].as_str().unwrap().to_owned();
    assert_ne!(fresh, deployer);
    assert_eq!(doc["record"]["version"], 2);
    assert_eq!(doc["record"]["revision"], 3);
    has(&regenerated.stderr, &["the previous token no longer works"]);
    let superseded = f.with(&deployer, &["list"]).expect(2);
    has(
        &superseded.stderr,
        &["refused the token in TESSERA_TOKEN: superseded"],
    );
    assert_secret_kept(&superseded, &[&deployer]);

    // Delete by name, then by id with --json; a deleted token is gone.
    let id = doc["record"]["id"].as_str().unwrap().to_owned();
    let deleted = f
        .admin(&["delete", "deployer", "--if-revision", "3"])
        .expect(0);
    has(
        &deleted.stderr,
        &[&format!(
            "deleted deployer ({id}): it is refused by every verifier"
        )],
    );
    assert!(deleted.stdout.is_empty());
    let gone = f.admin(&["show", &id, "--json"]).expect(1).json();
    assert_eq!(gone["error"]["code"], "not_found");
    assert_eq!(gone["error"]["message"], format!("no token has id {id}"));
    f.admin(&["create", "--name", "temp", "--super-admin"])
        .expect(0);
    let temp = f.admin(&["show", "temp", "--json"]).expect(0).json();
    let temp_id = temp["id"].as_str().unwrap();
    let by_id = f.admin(&["delete", temp_id, "--json"]).expect(0).json();
    assert_eq!(by_id, serde_json::json!({"deleted": temp_id}));

    // The audit trail: who (the admin token), what, and from where.
    let admin = f.admin(&["show", "admin", "--json"]).expect(0).json();
    let by_admin = format!("by token:{} from 127.0.0.1", admin["id"].as_str().unwrap());
    let audit = f.admin(&["audit"]).expect(0).stdout;
    for action in ["create ", "update ", "regenerate ", "delete "] {
        assert!(
            audit
                .lines()
                .any(|l| l.contains(action) && l.contains(" ok ") && l.ends_with(&by_admin)),
            "{action}\n{audit}"
        );
    }
    assert!(
        audit
            .lines()
            .any(|l| l.contains("update ") && l.contains(" conflict ")),
        "{audit}"
    );
    let all = f.admin(&["audit", "--json"]).expect(0).json();
    let entries = all["entries"].as_array().unwrap();
    let page = f
        .admin(&["audit", "--json", "--after", "2", "--limit", "3"])
        .expect(0)
        .json();
    assert_eq!(page["entries"].as_array().unwrap()[..], entries[2..5]);
}

#[test]
fn local_and_remote_modes_print_the_same() {
    let (s, admin) = bootstrapped();
    local(&s, &CREATE_DEPLOYER).expect(0);
    local(
        &s,
        &["update", "deployer", "--description", "line one\nline two"],
    )
    .expect(0);
    // More audit entries than the server gives in one answer, so the remote mode must page.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        use tessera::model::{Action, Actor, AuditEntry};
        use tessera::store::TokenStore as _;
        let url = format!("file:{}", s.path("data/tessera.redb").display());
        let store = tessera::store::AnyStore::open(&url).await.unwrap();
        for i in 0..1001 {
            let entry = AuditEntry {
                at: chrono::Utc::now(),
                actor: Actor::local("tester"),
                action: Action::Create,
                target: None,
                target_name: Some(format!("refused-{i}")),
                outcome: "invalid_request".into(),
                from: Some("203.0.113.7".into()),
                note: None,
            };
            store.append_audit(entry).await.unwrap();
        }
    });
    drop(runtime);
    // Only reads: a refused change would add an audit entry on one side.
    let commands: [&[&str]; 8] = [
        &["show", "deployer"],
        &["show", "deployer", "--json"],
        &["list"],
        &["list", "--json"],
        &["list", "--json", "--status", "active"],
        &["audit", "--limit", "5000"],
        &["audit", "--json", "--after", "2", "--limit", "1001"],
        &["show", "nobody", "--json"],
    ];
    // Read on the store first: the server holds the embedded store's file while it runs.
    let here: Vec<Run> = commands.iter().map(|args| local(&s, args)).collect();
    assert_eq!(here[5].stdout.lines().count(), 1004);
    assert_eq!(here[6].json()["entries"].as_array().unwrap().len(), 1001);

    let server = server(&s);
    for (args, here) in commands.iter().zip(&here) {
        let there = remote(&s, &server.base, &admin, args);
        assert_eq!(there.code, here.code, "{args:?}: {}", there.stderr);
        same_text(&there.stdout, &here.stdout, args);
        if here.code != 0 {
            same_text(&there.stderr, &here.stderr, args);
        }
    }
}

#[test]
fn a_token_that_is_not_super_admin_is_refused_with_exit_1() {
    let f = Fixture::start();
    let deployer = f.deployer();
    let refused = f.with(&deployer, &["list"]).expect(1);
    has(
        &refused.stderr,
        &[
            "refused: forbidden (managing tokens needs a super-admin token)",
            "hint: managing tokens needs a super-admin token in TESSERA_TOKEN",
        ],
    );
    assert!(refused.stdout.is_empty());
    assert_secret_kept(&refused, &[&deployer, &f.admin]);
    let json = f.with(&deployer, &["show", "admin", "--json"]).expect(1);
    assert_eq!(json.json()["error"]["code"], "forbidden");
    assert_secret_kept(&json, &[&deployer]);
}

#[test]
fn a_token_the_server_refuses_is_a_configuration_error() {
    let f = Fixture::start();
    let forged = "v4.public.bm90LWEtcmVhbC10b2tlbg";
    let refused = f.with(forged, &["list", "--json"]).expect(2);
    has(
        &refused.stderr,
        &[
            &format!(
                "error: the server at {} refused the token in TESSERA_TOKEN: malformed",
                f.server.base
            ),
            "hint: set TESSERA_TOKEN to a valid super-admin token",
        ],
    );
    assert!(refused.stdout.is_empty());
    assert_secret_kept(&refused, &[forged, "bm90LWEtcmVhbC10b2tlbg"]);
}

#[test]
fn without_tessera_token_the_command_exits_2() {
    let f = Fixture::start();
    let base = f.server.base.as_str();
    let create = [
        "token",
        "create",
        "--name",
        "x-bot",
        "--super-admin",
        "--server",
        base,
    ];
    for args in [&["token", "list", "--server", base][..], &create] {
        let run = run_env(&f.s, args, &[]).expect(2);
        has(
            &run.stderr,
            &[
                "error: --server needs the caller's token in TESSERA_TOKEN, which is not set",
                "hint: export TESSERA_TOKEN",
            ],
        );
        assert!(run.stdout.is_empty());
    }
    // TESSERA_SERVER works as --server does.
    let env = [
        ("TESSERA_SERVER", base),
        ("TESSERA_TOKEN", f.admin.as_str()),
    ];
    let listed = run_env(&f.s, &["token", "list", "--json"], &env).expect(0);
    assert_eq!(listed.json()["tokens"][0]["name"], "admin");
}

#[test]
fn an_unreachable_server_exits_2_naming_the_url_and_never_the_token() {
    let (s, admin) = bootstrapped();
    // A port that was just free: nothing listens there.
    let base = format!("http://127.0.0.1:{}", free_port());
    for args in [
        &["list"][..],
        &["show", "admin", "--json"],
        &["delete", "admin"],
    ] {
        let run = remote(&s, &base, &admin, args).expect(2);
        has(
            &run.stderr,
            &[
                &format!("error: cannot connect to the server at {base}: "),
                "hint: check --server (or TESSERA_SERVER)",
            ],
        );
        assert!(run.stdout.is_empty());
        assert_secret_kept(&run, &[&admin]);
    }
    // Credentials in the URL are refused without being shown.
    let with_password = "https://ops:hunter2@tessera.example.com";
    let run = remote(&s, with_password, &admin, &["list"]).expect(2);
    has(&run.stderr, &["holds credentials"]);
    assert_secret_kept(&run, &["hunter2", &admin]);
}

#[test]
fn server_conflicts_with_the_options_of_a_local_store() {
    let s = Sandbox::new();
    let url = "http://127.0.0.1:9";
    let create = [
        "token",
        "create",
        "--name",
        "abc",
        "--super-admin",
        "--server",
        url,
    ];
    let with = |extra: &[&'static str]| [&create[..], extra].concat();
    let cases = [
        (
            vec!["token", "list", "--server", url, "--store", "file:x.redb"],
            "--store",
        ),
        (with(&["--keys", "k"]), "--keys"),
        (with(&["--max-lifetime-days", "9"]), "--max-lifetime-days"),
        (
            vec![
                "token",
                "regenerate",
                "abc",
                "--expires",
                "7d",
                "--server",
                url,
                "--keys",
                "k",
            ],
            "--keys",
        ),
        (
            vec![
                "token",
                "update",
                "abc",
                "--super-admin",
                "--server",
                url,
                "--keys",
                "k",
            ],
            "--keys",
        ),
    ];
    let token = [("TESSERA_TOKEN", "v4.public.x")];
    for (args, other) in cases {
        let run = run_env(&s, &args, &token).expect(2);
        has(&run.stderr, &["cannot be used with", other]);
    }
    // A store named in the environment counts: where a command goes is never ambiguous.
    let env = [("TESSERA_STORE", "file:x.redb"), token[0]];
    let run = run_env(&s, &["token", "list", "--server", url], &env).expect(2);
    has(&run.stderr, &["cannot be used with '--store <URL>'"]);
}

/// An HTTPS listener with a certificate from a private CA that answers one request with an
/// empty listing and gives back the request's head; connections that end before a whole
/// request (a client that rejected the certificate) are passed over.
fn https_listing(
    dir: &std::path::Path,
) -> (String, std::path::PathBuf, std::thread::JoinHandle<String>) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (files, _) = TlsFiles::generate(dir);
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let thread = std::thread::spawn(move || {
        for stream in listener.incoming() {
            let stream = stream.unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let connection = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, stream);
            let mut head = Vec::new();
            let mut byte = [0_u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match tls.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            if !head.ends_with(b"\r\n\r\n") {
                continue;
            }
            let body = r#"{"tokens": []}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            tls.write_all(answer.as_bytes()).unwrap();
            tls.conn.send_close_notify();
            let _ = tls.flush();
            return String::from_utf8_lossy(&head).into_owned();
        }
        String::new()
    });
    (base, files.ca, thread)
}

#[test]
fn https_works_and_a_private_ca_is_trusted_only_when_given() {
    let s = Sandbox::new();
    let (base, ca, listener) = https_listing(s.dir.path());
    let token = "v4.public.c2VjcmV0LWZvci10bHM";

    let untrusted = remote(&s, &base, token, &["list", "--json"]).expect(2);
    has(
        &untrusted.stderr,
        &[
            &format!("error: cannot connect to the server at {base}: "),
            "certificate",
        ],
    );
    assert_secret_kept(&untrusted, &[token]);

    let ca = ca.display().to_string();
    let listed = remote(&s, &base, token, &["list", "--json", "--server-ca", &ca]).expect(0);
    assert_eq!(listed.json(), serde_json::json!({"tokens": []}));
    let head = listener.join().unwrap().to_ascii_lowercase();
    assert!(head.starts_with("get /v1/tokens http/1.1\r\n"), "{head}");
    let bearer = format!(
        "\r\nauthorization: bearer {}\r\n",
        token.to_ascii_lowercase()
    );
    has(&head, &[&bearer]);
}

#[test]
fn the_holder_revokes_its_token_and_the_answer_tells_nothing_about_it() {
    let f = Fixture::start();
    let deployer = f.deployer();
    let base = f.server.base.clone();
    let revoke = |token: &str| {
        f.s.run_with(
            &["revoke", "-", "--server", &base],
            Some(&format!("{token}\n")),
            &[],
        )
    };
    let first = revoke(&deployer).expect(0);
    assert!(!first.stderr.contains("v4.public."), "{}", first.stderr);
    // Gone from the live list, so no longer usable.
    f.admin(&["show", "deployer"]).expect(1);
    let audit = f.admin(&["audit", "--json"]).expect(0);
    has(&audit.stdout, &["\"revoked\""]);

    // Dead, forged or garbage: the same answer, as RFC 7009 wants.
    for other in [deployer.as_str(), "v4.public.garbage", "not-a-token"] {
        let run = revoke(other).expect(0);
        assert_eq!(run.stderr, first.stderr, "{other}");
    }

    // No server to ask: a configuration problem, exit 2.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let run =
        f.s.run_with(&["revoke", "-", "--server", &closed], Some(&deployer), &[]);
    let run = run.expect(2);
    assert!(!run.stderr.contains("v4.public."), "{}", run.stderr);
}
