//! `tessera token ...` and `tessera verify --store`, black box, on the embedded store: the
//! seed's whole flow on the command line, and the errors an operator meets.

#![cfg(feature = "cli")]

use crate::support::binary::{Run, Sandbox};
use crate::support::DEPLOY_PROD;

const STORE: &str = "file:data/tessera.redb";

impl Sandbox {
    /// `tessera token create ...` with the sandbox's keys and store; the token on stdout.
    fn create(&self, extra: &[&str]) -> Run {
        let mut args = vec!["token", "create"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `tessera verify --store` of `token`, with `--json`.
    fn verify_live(&self, token: &str) -> Run {
        self.run_with(&["verify", "--store", STORE, "--json"], Some(token), &[])
    }
}

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.keys();
    sandbox
}

fn token_of(run: &Run) -> String {
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout holds the token alone: {:?}",
        run.stdout
    );
    assert!(lines[0].starts_with("v4.public."), "{}", lines[0]);
    lines[0].to_owned()
}

#[test]
fn the_seed_flow_works_end_to_end() {
    let s = sandbox();
    // Bootstrap: the first super-admin token, before any server runs.
    let created = s
        .create(&[
            "--name",
            "ci-bot",
            "--description",
            "CI pipeline",
            "--expires",
            "30d",
            "--super-admin",
        ])
        .expect(0);
    let admin = token_of(&created);
    assert!(
        created.stderr.contains("created token ci-bot"),
        "{}",
        created.stderr
    );
    assert!(
        created.stderr.contains("shown only this once"),
        "{}",
        created.stderr
    );
    assert!(!created.stderr.contains(&admin));

    // A token with specific permissions.
    let deployer = token_of(
        &s.create(&[
            "--name",
            "deployer",
            "--expires",
            "90d",
            "--permissions",
            DEPLOY_PROD,
        ])
        .expect(0),
    );
    let require = "resource=devtron-app,role=trigger,project=payments,environment=prod,app=api";
    s.run_with(
        &["verify", "--store", STORE, "--require", require],
        Some(&deployer),
        &[],
    )
    .expect(0);

    let list = s.run(&["token", "list"]).expect(0);
    assert!(
        list.stdout.contains("ci-bot") && list.stdout.contains("deployer"),
        "{}",
        list.stdout
    );
    assert!(list.stdout.contains("super-admin"), "{}", list.stdout);
    assert!(!list.stdout.contains("v4.public"));

    // Update: same token string, new permissions at the verifier.
    let billing = DEPLOY_PROD.replace("payments", "billing");
    let updated = s
        .run(&[
            "token",
            "update",
            "deployer",
            "--permissions",
            &billing,
            "--json",
        ])
        .expect(0);
    assert_eq!(updated.json()["revision"], 2);
    assert_eq!(updated.json()["version"], 1);
    let seen = s.verify_live(&deployer).expect(0).json();
    assert_eq!(seen["token"]["permissions_updated"], true);
    assert_eq!(
        seen["token"]["permissions"]["grants"][0]["project"],
        "billing"
    );
    s.run_with(
        &["verify", "--store", STORE, "--require", require],
        Some(&deployer),
        &[],
    )
    .expect(1);

    // Regenerate: the old string is refused, the new one works.
    let regenerated = s
        .run(&[
            "token",
            "regenerate",
            "deployer",
            "--expires",
            "60d",
            "--if-revision",
            "2",
        ])
        .expect(0);
    let fresh = token_of(&regenerated);
    assert!(regenerated
        .stderr
        .contains("previous token no longer works"));
    let old = s.verify_live(&deployer).expect(1);
    assert_eq!(old.json()["code"], "superseded");
    let new = s.verify_live(&fresh).expect(0).json();
    assert_eq!(new["token"]["version"], 2);
    assert_eq!(new["token"]["permissions_updated"], false);

    // Delete: refused everywhere the state reaches.
    let deleted = s.run(&["token", "delete", "deployer"]).expect(0);
    assert!(
        deleted.stderr.contains("deleted deployer"),
        "{}",
        deleted.stderr
    );
    assert_eq!(s.verify_live(&fresh).expect(1).json()["code"], "revoked");
    assert_eq!(s.verify_live(&deployer).expect(1).json()["code"], "revoked");
    // Offline, with no state, a deleted token still verifies until it expires: said plainly.
    let offline = s.run_with(&["verify"], Some(&fresh), &[]).expect(0);
    assert!(offline.stderr.contains("no token state was consulted"));
    s.verify_live(&admin).expect(0);

    let audit = s.run(&["token", "audit", "--json"]).expect(0).json();
    let actions: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["target_name"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("create", "ci-bot"),
        ("create", "deployer"),
        ("update", "deployer"),
        ("regenerate", "deployer"),
        ("delete", "deployer"),
    ];
    assert_eq!(actions, expected.map(|(a, n)| (a.to_owned(), n.to_owned())));
}

#[test]
fn create_with_json_prints_the_token_and_the_record() {
    let s = sandbox();
    let run = s
        .create(&[
            "--name",
            "scripted",
            "--expires",
            "never",
            "--super-admin",
            "--json",
        ])
        .expect(0);
    let value = run.json();
    assert!(value["token"].as_str().unwrap().starts_with("v4.public."));
    let record = &value["record"];
    assert_eq!(record["name"], "scripted");
    assert_eq!(record["expires_at"], serde_json::Value::Null);
    assert_eq!(record["status"], "active");
    assert_eq!(record["permissions"]["super_admin"], true);
    let keys: Vec<&str> = record
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "id",
        "name",
        "description",
        "permissions",
        "version",
        "revision",
        "created_at",
        "created_by",
        "updated_at",
        "expires_at",
        "status",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    let show = s
        .run(&["token", "show", "scripted", "--json"])
        .expect(0)
        .json();
    assert_eq!(&show, record);
    let id = record["id"].as_str().unwrap();
    let by_id = s.run(&["token", "show", id]).expect(0);
    assert!(
        by_id.stdout.contains("name:         scripted"),
        "{}",
        by_id.stdout
    );
}

#[test]
fn refusals_say_what_is_wrong_and_exit_1() {
    let s = sandbox();
    let bad = s.create(&["--name", "Bad Name", "--super-admin"]).expect(1);
    assert!(
        bad.stderr.contains("refused: invalid_request"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr.contains("3 to 50 lowercase letters"),
        "{}",
        bad.stderr
    );
    assert!(bad.stdout.is_empty());

    s.create(&["--name", "taken", "--super-admin"]).expect(0);
    let again = s
        .create(&["--name", "taken", "--super-admin", "--json"])
        .expect(1);
    assert_eq!(again.json()["error"]["code"], "name_taken");

    let stale = s
        .run(&[
            "token",
            "update",
            "taken",
            "--description",
            "x",
            "--if-revision",
            "7",
        ])
        .expect(1);
    assert!(
        stale.stderr.contains("refused: conflict"),
        "{}",
        stale.stderr
    );
    assert!(
        stale.stderr.contains("hint: read the token again"),
        "{}",
        stale.stderr
    );

    let missing = s.run(&["token", "delete", "nobody"]).expect(1);
    assert!(
        missing.stderr.contains("no live token is named \"nobody\""),
        "{}",
        missing.stderr
    );
    let unknown = s
        .run(&["token", "show", "00000000-0000-4000-8000-000000000000"])
        .expect(1);
    assert!(
        unknown.stderr.contains("refused: not_found"),
        "{}",
        unknown.stderr
    );

    let expiry = s
        .create(&["--name", "late", "--expires", "15d", "--super-admin"])
        .expect(1);
    assert!(
        expiry.stderr.contains("7d, 30d, 60d, 90d, never"),
        "{}",
        expiry.stderr
    );
    let past = s
        .create(&[
            "--name",
            "late",
            "--expires",
            "2020-01-01T00:00:00Z",
            "--super-admin",
        ])
        .expect(1);
    assert!(past.stderr.contains("not in the future"), "{}", past.stderr);

    let perms = s
        .create(&["--name", "perm", "--permissions", r#"{"grants": []}"#])
        .expect(1);
    assert!(perms.stderr.contains("--permissions"), "{}", perms.stderr);
    let neither = s.create(&["--name", "perm"]).expect(2);
    assert!(
        neither.stderr.contains("--super-admin"),
        "{}",
        neither.stderr
    );
    let nothing = s.run(&["token", "update", "taken"]).expect(2);
    assert!(
        nothing.stderr.contains("nothing to update"),
        "{}",
        nothing.stderr
    );
}

#[test]
fn a_maximum_lifetime_can_be_configured() {
    let s = sandbox();
    let run = s
        .create(&[
            "--name",
            "forever",
            "--expires",
            "never",
            "--super-admin",
            "--max-lifetime-days",
            "60",
        ])
        .expect(1);
    assert!(
        run.stderr.contains("longest lifetime allowed is 60 days"),
        "{}",
        run.stderr
    );
    let env = [("TESSERA_MAX_LIFETIME_DAYS", "60")];
    s.run_with(
        &[
            "token",
            "create",
            "--name",
            "bounded",
            "--expires",
            "90d",
            "--super-admin",
        ],
        None,
        &env,
    )
    .expect(1);
    s.run_with(
        &[
            "token",
            "create",
            "--name",
            "bounded",
            "--expires",
            "60d",
            "--super-admin",
        ],
        None,
        &env,
    )
    .expect(0);
    s.run_with(
        &["token", "regenerate", "bounded", "--expires", "never"],
        None,
        &env,
    )
    .expect(1);
}

#[test]
fn permissions_come_from_a_file_or_stdin() {
    let s = sandbox();
    std::fs::write(s.path("perms.json"), DEPLOY_PROD).unwrap();
    s.create(&["--name", "from-file", "--permissions", "@perms.json"])
        .expect(0);
    s.run_with(
        &[
            "token",
            "create",
            "--name",
            "from-stdin",
            "--permissions",
            "@-",
        ],
        Some(DEPLOY_PROD),
        &[],
    )
    .expect(0);
    let list = s.run(&["token", "list", "--json"]).expect(0).json();
    let tokens = list["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    for token in tokens {
        assert_eq!(token["permissions"]["grants"][0]["project"], "payments");
    }
    let missing = s
        .create(&["--name", "nofile", "--permissions", "@nope.json"])
        .expect(2);
    assert!(
        missing
            .stderr
            .contains("cannot read permissions from nope.json"),
        "{}",
        missing.stderr
    );
}

#[test]
fn the_first_use_of_the_embedded_store_makes_a_key() {
    let s = Sandbox::new();
    s.run(&["token", "list"]).expect(0);
    assert!(!s.path("keys").exists(), "reading makes no key");
    let run = s.create(&["--name", "first", "--super-admin"]).expect(0);
    assert!(
        run.stderr
            .contains("first use: generated the signing key k4.pid."),
        "{}",
        run.stderr
    );
    let again = s.create(&["--name", "second", "--super-admin"]).expect(0);
    assert!(!again.stderr.contains("generated"), "{}", again.stderr);
    let listed = s.run(&["keys", "list", "--json"]).expect(0).json();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1);
}

#[test]
fn a_key_folder_with_only_public_keys_cannot_sign() {
    let s = sandbox();
    for entry in std::fs::read_dir(s.path("keys")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".k4.secret") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let run = s.create(&["--name", "keyless", "--super-admin"]).expect(2);
    assert!(run.stderr.contains("no secret key"), "{}", run.stderr);
    assert!(
        run.stderr.contains("tessera keys generate"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_store_held_by_another_process_is_a_clear_error() {
    let s = sandbox();
    s.create(&["--name", "held", "--super-admin"]).expect(0);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _held = runtime
        .block_on(tessera::store::EmbeddedStore::open(
            s.path("data/tessera.redb"),
        ))
        .unwrap();
    let run = s.run(&["token", "list"]).expect(2);
    assert!(
        run.stderr.contains("in use by another process"),
        "{}",
        run.stderr
    );
    // The way round the lock, not a check of --store's syntax.
    assert!(run.stderr.contains("--server"), "{}", run.stderr);
}

#[test]
fn a_bad_store_url_is_a_usage_error() {
    let s = sandbox();
    let run = s
        .run(&["token", "list", "--store", "postgres://db/tokens"])
        .expect(2);
    assert!(run.stderr.contains("unknown store URL"), "{}", run.stderr);
}
