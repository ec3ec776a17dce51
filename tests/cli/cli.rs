//! The `tessera` binary, black box: each test runs the built binary in a fresh temporary
//! folder, with tokens issued by the library itself.

#![cfg(feature = "cli")]

use crate::support::binary::Sandbox;
use crate::support::DEPLOY_PROD;

use chrono::{Duration, Utc};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tessera::{Issuer, KeyRing, ManualClock, Permissions, TokenSpec};

fn perms(json: &str) -> Permissions {
    serde_json::from_str(json).expect("valid permissions")
}

/// A token signed by the key folder `dir`, through the library; `issued` moves the issuer's
/// clock.
fn issue(
    dir: &Path,
    name: &str,
    perms: &Permissions,
    issued: Option<chrono::DateTime<Utc>>,
    expires: Option<chrono::DateTime<Utc>>,
) -> String {
    let ring = Arc::new(KeyRing::load_dir(dir).expect("key folder loads"));
    let mut issuer = Issuer::new(ring).expect("a signing key");
    if let Some(at) = issued {
        issuer = issuer.with_clock(Arc::new(ManualClock::new(at)));
    }
    issuer
        .issue(&TokenSpec {
            id: uuid::Uuid::new_v4(),
            version: 1,
            name,
            expires_at: expires,
            permissions: perms,
            allowed_cidrs: &Default::default(),
        })
        .expect("issued")
        .expose()
        .to_owned()
}

fn ci_bot(dir: &Path) -> String {
    issue(
        dir,
        "ci-bot",
        &perms(DEPLOY_PROD),
        None,
        Some(Utc::now() + Duration::days(30)),
    )
}

fn public_key_of(sandbox: &Sandbox) -> String {
    let listed = sandbox.run(&["keys", "list", "--json"]).expect(0).json();
    listed["keys"][0]["public_key"]
        .as_str()
        .expect("a public key")
        .to_owned()
}

/// The secret key files of a folder.
fn secret_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".k4.secret"))
        .collect();
    files.sort();
    files
}

#[test]
fn keys_generate_writes_a_private_secret_key_and_list_shows_it_as_signing() {
    let sandbox = Sandbox::new();
    let made = sandbox.run(&["keys", "generate"]).expect(0);
    let kid = made.stdout.trim();
    assert!(kid.starts_with("k4.pid."), "{kid}");
    assert_eq!(made.stdout.lines().count(), 1, "the key id alone on stdout");
    assert!(made.stderr.contains("0600"), "{}", made.stderr);
    assert!(made.stderr.contains("signing key"), "{}", made.stderr);

    let secrets = secret_files(&sandbox.path("keys"));
    assert_eq!(secrets.len(), 1);
    let mode = std::fs::metadata(&secrets[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let secret = std::fs::read_to_string(&secrets[0]).unwrap();
    assert!(!made.stdout.contains(secret.trim()) && !made.stderr.contains(secret.trim()));

    let listed = sandbox.run(&["keys", "list"]).expect(0);
    let row = listed
        .stdout
        .lines()
        .find(|line| line.contains(kid))
        .expect("the new key is listed");
    assert!(row.contains("signing"), "{row}");
    assert!(row.contains("k4.public."), "{row}");
    assert!(listed.stdout.starts_with("KEY ID"), "{}", listed.stdout);
    assert!(!listed.stdout.contains(secret.trim()));
}

#[test]
fn a_second_generate_makes_the_new_key_signing_and_the_old_one_active() {
    let sandbox = Sandbox::new();
    let old = sandbox.run(&["keys", "generate"]).expect(0).stdout;
    let new = sandbox.run(&["keys", "generate"]).expect(0).stdout;
    let (old, new) = (old.trim(), new.trim());
    assert_ne!(old, new);

    let listed = sandbox.run(&["keys", "list", "--json"]).expect(0).json();
    let keys = listed["keys"].as_array().expect("a list");
    assert_eq!(keys.len(), 2);
    let status = |kid: &str| {
        keys.iter()
            .find(|k| k["kid"] == kid)
            .map(|k| k["status"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(status(new).as_deref(), Some("signing"));
    assert_eq!(status(old).as_deref(), Some("active"));
    for key in keys {
        assert!(key["public_key"]
            .as_str()
            .unwrap()
            .starts_with("k4.public."));
        assert!(key["created_at"].as_str().unwrap().ends_with('Z'));
    }
}

#[test]
fn keys_list_on_a_missing_folder_exits_2_with_the_hint_to_generate() {
    let sandbox = Sandbox::new();
    let run = sandbox
        .run(&["keys", "list", "--keys", "nowhere"])
        .expect(2);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(
        run.stderr.contains("tessera keys generate"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn a_group_readable_secret_key_file_exits_2_with_the_chmod_hint() {
    let sandbox = Sandbox::new();
    let dir = sandbox.keys();
    let secret = &secret_files(&dir)[0];
    std::fs::set_permissions(secret, std::fs::Permissions::from_mode(0o640)).unwrap();
    let run = sandbox.run(&["keys", "list"]).expect(2);
    assert!(run.stderr.contains("chmod 600"), "{}", run.stderr);
    let token_check = sandbox
        .run_with(&["verify"], Some("v4.public.x"), &[])
        .expect(2);
    assert!(
        token_check.stderr.contains("chmod 600"),
        "{}",
        token_check.stderr
    );
}

#[test]
fn the_key_folder_can_come_from_tessera_keys() {
    let sandbox = Sandbox::new();
    let made = sandbox
        .run_with(
            &["keys", "generate"],
            None,
            &[("TESSERA_KEYS", "elsewhere")],
        )
        .expect(0);
    assert_eq!(secret_files(&sandbox.path("elsewhere")).len(), 1);
    let listed = sandbox
        .run_with(&["keys", "list"], None, &[("TESSERA_KEYS", "elsewhere")])
        .expect(0);
    assert!(listed.stdout.contains(made.stdout.trim()));
}

#[test]
fn verify_accepts_a_library_token_with_the_key_folder_and_prints_its_name_and_permissions() {
    let sandbox = Sandbox::new();
    let token = ci_bot(&sandbox.keys());
    let run = sandbox.run(&["verify", &token]).expect(0);
    assert!(run.stdout.starts_with("valid\n"), "{}", run.stdout);
    assert!(run.stdout.contains("ci-bot"), "{}", run.stdout);
    assert!(run.stdout.contains("devtron-app:trigger"), "{}", run.stdout);
    assert!(
        run.stdout.contains(r#""environments":["prod"]"#),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("no token state was consulted"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains(&token) && !run.stderr.contains(&token));
}

#[test]
fn verify_accepts_a_library_token_with_only_the_public_key() {
    let sandbox = Sandbox::new();
    let token = ci_bot(&sandbox.keys());
    let public = public_key_of(&sandbox);
    std::fs::remove_dir_all(sandbox.path("keys")).unwrap();
    let run = sandbox
        .run(&["verify", "--public-key", &public, &token])
        .expect(0);
    assert!(run.stdout.contains("ci-bot"), "{}", run.stdout);
    let from_env = sandbox
        .run_with(
            &["verify", &token],
            None,
            &[("TESSERA_PUBLIC_KEY", &public)],
        )
        .expect(0);
    assert!(from_env.stdout.contains("ci-bot"), "{}", from_env.stdout);
}

#[test]
fn verify_reads_the_token_from_stdin_or_tessera_token() {
    let sandbox = Sandbox::new();
    let token = ci_bot(&sandbox.keys());
    let piped = sandbox
        .run_with(&["verify"], Some(&format!("{token}\n")), &[])
        .expect(0);
    assert!(piped.stdout.contains("ci-bot"), "{}", piped.stdout);
    let dash = sandbox
        .run_with(&["verify", "-"], Some(&token), &[])
        .expect(0);
    assert!(dash.stdout.contains("ci-bot"), "{}", dash.stdout);
    let env = sandbox
        .run_with(&["verify"], None, &[("TESSERA_TOKEN", &token)])
        .expect(0);
    assert!(env.stdout.contains("ci-bot"), "{}", env.stdout);
    let nothing = sandbox.run_with(&["verify"], Some("\n"), &[]).expect(2);
    assert!(
        nothing.stderr.contains("no token given"),
        "{}",
        nothing.stderr
    );
}

#[test]
fn verify_json_has_the_documented_shape() {
    let sandbox = Sandbox::new();
    let token = ci_bot(&sandbox.keys());
    let value = sandbox
        .run_with(&["verify", "--json"], Some(&token), &[])
        .expect(0)
        .json();
    assert_eq!(value["valid"], true);
    assert_eq!(value["code"], "ok");
    assert!(value.get("detail").is_none());
    assert!(value.get("allowed").is_none());
    let t = &value["token"];
    assert_eq!(t["name"], "ci-bot");
    assert_eq!(t["version"], 1);
    assert!(uuid::Uuid::parse_str(t["id"].as_str().unwrap()).is_ok());
    assert!(t["key_id"].as_str().unwrap().starts_with("k4.pid."));
    assert!(t["issued_at"].as_str().unwrap().ends_with('Z'));
    assert!(t["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        serde_json::from_value::<Permissions>(t["permissions"].clone()).unwrap(),
        perms(DEPLOY_PROD)
    );

    let never = issue(
        &sandbox.path("keys"),
        "forever",
        &Permissions::SuperAdmin,
        None,
        None,
    );
    let value = sandbox
        .run_with(&["verify", "--json"], Some(&never), &[])
        .expect(0)
        .json();
    assert_eq!(value["token"]["expires_at"], serde_json::Value::Null);
    assert_eq!(value["token"]["permissions"]["super_admin"], true);

    let refused = sandbox
        .run_with(&["verify", "--json"], Some("garbage"), &[])
        .expect(1);
    let value = refused.json();
    assert_eq!(value["valid"], false);
    assert_eq!(value["code"], "malformed");
    assert!(value["detail"].is_string());
    assert!(value.get("token").is_none());
}

#[test]
fn a_tampered_token_is_refused_with_bad_signature() {
    let sandbox = Sandbox::new();
    let token = ci_bot(&sandbox.keys());
    // Change one character of the payload, well inside the body.
    let at = "v4.public.".len() + 20;
    let original = token.as_bytes()[at];
    let replacement = if original == b'A' { "B" } else { "A" };
    let tampered = format!("{}{replacement}{}", &token[..at], &token[at + 1..]);
    let run = sandbox
        .run_with(&["verify"], Some(&tampered), &[])
        .expect(1);
    assert!(
        run.stderr.contains("refused: bad_signature"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(!run.stderr.contains(&tampered));
}

#[test]
fn an_expired_token_is_refused_with_expired() {
    let sandbox = Sandbox::new();
    let dir = sandbox.keys();
    let issued = Utc::now() - Duration::days(3);
    let token = issue(
        &dir,
        "old-bot",
        &perms(DEPLOY_PROD),
        Some(issued),
        Some(issued + Duration::days(1)),
    );
    let run = sandbox.run_with(&["verify"], Some(&token), &[]).expect(1);
    assert!(run.stderr.contains("refused: expired"), "{}", run.stderr);
    assert!(
        run.stderr.contains("old-bot"),
        "the hint names the token: {}",
        run.stderr
    );
    let value = sandbox
        .run_with(&["verify", "--json"], Some(&token), &[])
        .expect(1)
        .json();
    assert_eq!(value["valid"], false);
    assert_eq!(value["code"], "expired");
    assert_eq!(
        value["token"]["name"], "old-bot",
        "the signature checked out"
    );
}

#[test]
fn a_token_from_another_key_is_refused_with_unknown_key() {
    let sandbox = Sandbox::new();
    sandbox.keys();
    let other = sandbox.path("other-keys");
    tessera::keys::generate_into(&other, Utc::now()).unwrap();
    let token = ci_bot(&other);
    let run = sandbox.run_with(&["verify"], Some(&token), &[]).expect(1);
    assert!(
        run.stderr.contains("refused: unknown_key"),
        "{}",
        run.stderr
    );
}

#[test]
fn garbage_is_refused_as_malformed() {
    let sandbox = Sandbox::new();
    sandbox.keys();
    for garbage in [
        "garbage",
        "v4.public.",
        "v4.public.!!!!",
        "v4.local.AAAA",
        "v4.public.AAAA.BBBB.CCCC",
        "\u{1b}[31m",
    ] {
        let run = sandbox.run_with(&["verify"], Some(garbage), &[]).expect(1);
        assert!(
            run.stderr.contains("refused: malformed"),
            "{garbage}: {}",
            run.stderr
        );
    }
    let binary = sandbox
        .run_with(&["verify", &"x".repeat(10_000)], None, &[])
        .expect(1);
    assert!(
        binary.stderr.contains("refused: malformed"),
        "{}",
        binary.stderr
    );
}

#[test]
fn require_prints_allowed_when_the_token_allows_the_access() {
    let sandbox = Sandbox::new();
    let token = ci_bot(&sandbox.keys());
    let spec = "resource=devtron-app,role=trigger,project=payments,environment=prod,app=api";
    let run = sandbox
        .run_with(&["verify", "--require", spec], Some(&token), &[])
        .expect(0);
    assert!(run.stdout.lines().any(|l| l == "allowed"), "{}", run.stdout);
    let value = sandbox
        .run_with(&["verify", "--json", "--require", spec], Some(&token), &[])
        .expect(0)
        .json();
    assert_eq!(value["allowed"], true);
    assert_eq!(value["code"], "ok");
}

#[test]
fn require_exits_1_with_forbidden_when_the_token_does_not_allow_the_access() {
    let sandbox = Sandbox::new();
    let token = ci_bot(&sandbox.keys());
    let spec = "resource=devtron-app,role=admin,project=payments,environment=prod,app=api";
    let run = sandbox
        .run_with(&["verify", "--require", spec], Some(&token), &[])
        .expect(1);
    assert!(run.stderr.contains("refused: forbidden"), "{}", run.stderr);
    assert!(
        !run.stdout.lines().any(|l| l == "allowed"),
        "{}",
        run.stdout
    );
    let value = sandbox
        .run_with(
            &["verify", "--json"],
            Some(&token),
            &[("TESSERA_REQUIRE", spec)],
        )
        .expect(1)
        .json();
    assert_eq!(value["code"], "forbidden");
    assert_eq!(value["allowed"], false);
}

#[test]
fn a_malformed_require_is_invalid_input_and_exits_1() {
    let sandbox = Sandbox::new();
    let token = ci_bot(&sandbox.keys());
    for spec in [
        "role=trigger",
        "resource=devtron-app,role=boss,project=a,environment=b,app=c",
        "resource=devtron-app,role=trigger,project=a",
        "resource=chart-group,role=view,group=x,app=y",
        "resource=chart-group,role=view,group=x,group=y",
        "nonsense",
    ] {
        let run = sandbox
            .run_with(&["verify", "--require", spec], Some(&token), &[])
            .expect(1);
        assert!(
            run.stderr.starts_with("error: --require"),
            "{spec}: {}",
            run.stderr
        );
    }
}

#[test]
fn keys_and_public_key_together_are_a_usage_error() {
    let sandbox = Sandbox::new();
    let token = ci_bot(&sandbox.keys());
    let public = public_key_of(&sandbox);
    let run = sandbox
        .run_with(
            &["verify", "--keys", "keys", "--public-key", &public],
            Some(&token),
            &[],
        )
        .expect(2);
    assert!(
        run.stderr.contains("cannot be used together"),
        "{}",
        run.stderr
    );
    // A flag on the command line beats the other one's environment variable.
    sandbox
        .run_with(
            &["verify", "--public-key", &public],
            Some(&token),
            &[("TESSERA_KEYS", "nowhere")],
        )
        .expect(0);
}

#[test]
fn a_secret_key_given_as_public_key_is_refused_without_echoing_it() {
    let sandbox = Sandbox::new();
    let dir = sandbox.keys();
    let secret = std::fs::read_to_string(&secret_files(&dir)[0]).unwrap();
    let run = sandbox
        .run_with(
            &["verify", "--public-key", secret.trim()],
            Some("v4.public.x"),
            &[],
        )
        .expect(2);
    assert!(run.stderr.contains("SECRET key"), "{}", run.stderr);
    assert!(!run.stderr.contains(secret.trim()), "{}", run.stderr);
}

#[test]
fn a_token_passed_where_none_is_expected_is_not_echoed() {
    let sandbox = Sandbox::new();
    let token = ci_bot(&sandbox.keys());
    let run = sandbox.run(&["keys", "list", &token]).expect(2);
    assert!(!run.stderr.contains(&token), "{}", run.stderr);
    assert!(run.stderr.contains("[REDACTED]"), "{}", run.stderr);
}

#[test]
fn inspect_says_not_verified_and_shows_the_claims() {
    let sandbox = Sandbox::new();
    let token = ci_bot(&sandbox.keys());
    let run = sandbox.run_with(&["inspect"], Some(&token), &[]).expect(0);
    assert_eq!(
        run.stdout.lines().next(),
        Some("NOT VERIFIED: decoded without checking the signature; do not trust these claims")
    );
    assert!(run.stdout.contains("k4.pid."), "{}", run.stdout);
    assert!(
        run.stdout.contains("\"sub\": \"api-token:ci-bot\""),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("parse as Tessera claims"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("(future: in 30 days)"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains(&token));

    let json = sandbox
        .run_with(&["inspect", "--json"], Some(&token), &[])
        .expect(0);
    assert!(json.stderr.starts_with("NOT VERIFIED"), "{}", json.stderr);
    let value = json.json();
    assert_eq!(value["verified"], false);
    assert_eq!(value["claims"]["ok"], true);
    assert_eq!(value["claims"]["name"], "ci-bot");
    assert_eq!(value["payload"]["sub"], "api-token:ci-bot");
    assert!(value["footer"]["kid"]
        .as_str()
        .unwrap()
        .starts_with("k4.pid."));
}

#[test]
fn inspect_shows_a_tampered_token_too_but_never_calls_it_verified() {
    let sandbox = Sandbox::new();
    let token = ci_bot(&sandbox.keys());
    let forged_payload = br#"{"iss":"tessera","sub":"api-token:evil","perm":{"super_admin":true}}"#;
    let mut body = forged_payload.to_vec();
    body.extend_from_slice(&[0u8; 64]);
    let footer = token.rsplit('.').next().unwrap();
    let forged = format!("v4.public.{}.{footer}", b64(&body));
    let run = sandbox.run_with(&["inspect"], Some(&forged), &[]).expect(0);
    assert!(run.stdout.starts_with("NOT VERIFIED"), "{}", run.stdout);
    assert!(run.stdout.contains("not Tessera claims"), "{}", run.stdout);
    assert!(run.stdout.contains("missing field"), "{}", run.stdout);
}

#[test]
fn inspect_handles_garbage_with_exit_1_and_no_panic() {
    let sandbox = Sandbox::new();
    for garbage in [
        "garbage",
        "v4.public.",
        "v4.public.AAAA",
        "v4.public.!!!",
        "v4.local.AAAA",
        "v4.public.AAAA.",
        "\u{1b}[2J\u{9b}",
    ] {
        let run = sandbox.run_with(&["inspect"], Some(garbage), &[]).expect(1);
        assert!(
            run.stderr.contains("cannot decode the token"),
            "{garbage:?}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
    }
    // Decodes, but the payload is not JSON and the footer is junk: shown, cleaned, exit 0.
    let mut body = b"\x1b]0;pwned\x07 not json \xc2\x9b".to_vec();
    body.extend_from_slice(&[7u8; 64]);
    let odd = format!(
        "v4.public.{}.{}",
        b64(&body),
        b64(b"{\"kid\":\"\x1b[31m\"}")
    );
    let run = sandbox.run_with(&["inspect"], Some(&odd), &[]).expect(0);
    assert!(run.stdout.contains("not JSON"), "{}", run.stdout);
    assert!(run.stdout.contains("key id:   none"), "{}", run.stdout);
    assert!(
        !run.stdout.contains('\u{1b}') && !run.stdout.contains('\u{9b}'),
        "{:?}",
        run.stdout
    );
    let value = sandbox
        .run_with(&["inspect", "--json"], Some("nope"), &[])
        .expect(1)
        .json();
    assert_eq!(value["decoded"], false);
}

#[test]
fn every_command_help_mentions_its_environment_variables() {
    let sandbox = Sandbox::new();
    let cases: [(&[&str], &[&str]); 4] = [
        (&["keys", "generate", "--help"], &["TESSERA_KEYS"]),
        (
            &["keys", "list", "--help"],
            &["TESSERA_KEYS", "TESSERA_JSON"],
        ),
        (
            &["verify", "--help"],
            &[
                "TESSERA_TOKEN",
                "TESSERA_KEYS",
                "TESSERA_PUBLIC_KEY",
                "TESSERA_ISSUER",
                "TESSERA_LEEWAY",
                "TESSERA_REQUIRE",
                "TESSERA_JSON",
                "stdin",
                "shell history",
            ],
        ),
        (
            &["inspect", "--help"],
            &["TESSERA_TOKEN", "TESSERA_JSON", "WITHOUT"],
        ),
    ];
    for (args, needles) in cases {
        let run = sandbox.run(args).expect(0);
        for needle in needles {
            assert!(
                run.stdout.contains(needle),
                "{args:?} lacks {needle}:\n{}",
                run.stdout
            );
        }
    }
    let token = "v4.public.c2VjcmV0LXRva2Vu";
    let run = sandbox
        .run_with(&["verify", "--help"], None, &[("TESSERA_TOKEN", token)])
        .expect(0);
    assert!(
        !run.stdout.contains(token),
        "the token's value is hidden in --help"
    );
    sandbox.run(&["--help"]).expect(0);
    sandbox.run(&[]).expect(2);
    sandbox.run(&["verify", "--leeway", "-5"]).expect(2);
}

fn b64(bytes: &[u8]) -> String {
    tessera::paseto::encode_b64(bytes)
}

#[test]
fn serve_refuses_webhooks_it_could_not_deliver_before_it_listens() {
    let s = Sandbox::new();
    let secret = (
        "TESSERA_WEBHOOK_SECRET",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    let listen = ["serve", "--listen", "127.0.0.1:0", "--webhook"];
    let with = |url: &str, env: &[(&str, &str)]| {
        let mut args = listen.to_vec();
        args.push(url);
        s.run_with(&args, None, env)
    };
    let no_secret = with("https://hooks.example.com/t", &[]).expect(2);
    assert!(
        no_secret.stderr.contains("TESSERA_WEBHOOK_SECRET"),
        "{}",
        no_secret.stderr
    );
    let bad_url = with("ftp://user:hunter2@hooks.example.com/t", &[secret]).expect(2);
    assert!(
        bad_url.stderr.contains("http:// or https://"),
        "{}",
        bad_url.stderr
    );
    assert!(!bad_url.stderr.contains("hunter2"), "{}", bad_url.stderr);
    let bad_secret = with(
        "https://hooks.example.com/t",
        &[("TESSERA_WEBHOOK_SECRET", "not-a-secret")],
    )
    .expect(2);
    assert!(
        bad_secret.stderr.contains("whsec_"),
        "{}",
        bad_secret.stderr
    );
    assert!(
        !bad_secret.stderr.contains("not-a-secret"),
        "{}",
        bad_secret.stderr
    );
    let edge = s
        .run_with(
            &["serve", "--verify-only", "--webhook", "https://h.example/t"],
            None,
            &[secret],
        )
        .expect(2);
    assert!(edge.stderr.contains("--webhook"), "{}", edge.stderr);
}
