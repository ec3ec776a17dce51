//! `tessera keys rotate|activate|retire`, black box, on the embedded store: a staged key does
//! not sign, an activated one does, and a key is not retired while tokens it signed are live
//! unless forced.

#![cfg(feature = "cli")]

use crate::support::binary::Sandbox;
use crate::support::key_statuses;

fn statuses(sandbox: &Sandbox) -> Vec<(String, String)> {
    key_statuses(&sandbox.run(&["keys", "list", "--json"]).expect(0).json())
}

fn verified_kid(sandbox: &Sandbox, token: &str) -> Result<String, String> {
    let run = sandbox.run_with(&["verify", "--json"], Some(token), &[]);
    let answer = run.json();
    match answer["token"]["key_id"].as_str() {
        Some(kid) if run.code == 0 => Ok(kid.to_owned()),
        _ => Err(answer["code"].as_str().unwrap_or_default().to_owned()),
    }
}

fn create(sandbox: &Sandbox, name: &str) -> String {
    let run = sandbox
        .run(&[
            "token",
            "create",
            "--name",
            name,
            "--expires",
            "30d",
            "--super-admin",
        ])
        .expect(0);
    run.stdout.trim().to_owned()
}

#[test]
fn rotate_activate_and_retire_move_signing_and_trust_from_key_to_key() {
    let s = Sandbox::new();
    s.keys();
    let old = statuses(&s)[0].0.clone();
    let before = create(&s, "before");

    let rotated = s.run(&["keys", "rotate"]).expect(0);
    let new = rotated.stdout.trim().to_owned();
    assert!(rotated.stderr.contains("SIGHUP"), "{}", rotated.stderr);
    assert_eq!(
        statuses(&s),
        vec![
            (old.clone(), "signing".into()),
            (new.clone(), "staged".into())
        ]
    );
    let staged_era = create(&s, "staged-era");
    assert_eq!(
        verified_kid(&s, &staged_era),
        Ok(old.clone()),
        "a staged key does not sign"
    );

    // A prefix of the id will do.
    s.run(&["keys", "activate", &new[7..19]]).expect(0);
    assert_eq!(
        statuses(&s),
        vec![
            (old.clone(), "active".into()),
            (new.clone(), "signing".into())
        ]
    );
    let after = create(&s, "after");
    assert_eq!(verified_kid(&s, &after), Ok(new.clone()));

    let refused = s.run(&["keys", "retire", &new]).expect(1);
    assert!(
        refused.stderr.contains("is the signing key"),
        "{}",
        refused.stderr
    );

    let refused = s.run(&["keys", "retire", &old]).expect(1);
    assert!(
        refused.stderr.contains("may have signed 2 live tokens"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("the last expires at 20"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(statuses(&s).len(), 2, "nothing changed");
    assert_eq!(verified_kid(&s, &before), Ok(old.clone()));

    s.run(&["keys", "retire", "--force", &old]).expect(0);
    assert_eq!(
        statuses(&s),
        vec![
            (new.clone(), "signing".into()),
            (old.clone(), "retired".into())
        ]
    );
    for token in [&before, &staged_era] {
        assert_eq!(verified_kid(&s, token), Err("unknown_key".into()));
    }
    assert_eq!(verified_kid(&s, &after), Ok(new));
}

#[test]
fn a_key_whose_tokens_were_regenerated_or_deleted_retires_without_force() {
    let s = Sandbox::new();
    s.keys();
    let old = statuses(&s)[0].0.clone();
    create(&s, "kept");
    create(&s, "dropped");
    let new = s
        .run(&["keys", "rotate"])
        .expect(0)
        .stdout
        .trim()
        .to_owned();
    s.run(&["keys", "activate", &new]).expect(0);
    let refused = s.run(&["keys", "retire", &old]).expect(1);
    assert!(
        refused.stderr.contains("2 live tokens"),
        "{}",
        refused.stderr
    );
    s.run(&["token", "regenerate", "kept", "--expires", "7d"])
        .expect(0);
    s.run(&["token", "delete", "dropped"]).expect(0);
    s.run(&["keys", "retire", &old]).expect(0);
    assert_eq!(statuses(&s).last().unwrap().1, "retired");
}

#[test]
fn activate_of_an_unknown_key_exits_1_and_changes_nothing() {
    let s = Sandbox::new();
    s.keys();
    let run = s
        .run(&[
            "keys",
            "activate",
            "k4.pid.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ])
        .expect(1);
    assert!(run.stderr.contains("no key k4.pid.AAAA"), "{}", run.stderr);
    assert!(!s.path("keys/keys.status").exists());
}
