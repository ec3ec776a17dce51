//! Key rotation inside one server: a reload of the key folder swaps the ring for the verifier,
//! the issuer and `/v1/keys` at once; a retired key stops verifying even for tokens already in
//! the signature cache; a folder that does not load leaves the ring in use.

use crate::support::app::App;
use crate::support::key_statuses;
use reqwest::Method;
use std::os::unix::fs::PermissionsExt as _;
use tessera::keys::{self, KeyError};

const READ_STATE: &str = r#"{"grants": [{"resource": "tessera", "role": "read-state"}]}"#;

#[tokio::test]
async fn a_reload_stages_then_activates_then_retires_a_key() {
    let app = App::start().await;
    let dir = app.dir.path().join("keys");
    let state = &app.server.state;
    let old = state.keys().signing().unwrap().public.id().clone();
    let (before, _) = app.create("before", READ_STATE).await;
    // In the signature cache from here on.
    assert_eq!(
        state.verifier().verify(&before).unwrap().key_id(),
        old.as_str()
    );

    let staged = keys::rotate_into(&dir, chrono::Utc::now()).unwrap();
    state.reload_keys(&dir).unwrap();
    let (_, _, published) = app.call(Method::GET, "/v1/keys", None, None).await;
    assert_eq!(
        key_statuses(&published),
        vec![
            (old.to_string(), "signing".to_owned()),
            (staged.id.to_string(), "staged".to_owned())
        ]
    );
    let (staged_era, _) = app.create("staged-era", READ_STATE).await;
    assert_eq!(
        state.verifier().verify(&staged_era).unwrap().key_id(),
        old.as_str(),
        "a staged key does not sign"
    );

    keys::activate(&dir, staged.id.as_str()).unwrap();
    state.reload_keys(&dir).unwrap();
    let (after, record) = app.create("after", READ_STATE).await;
    assert_eq!(
        state.verifier().verify(&after).unwrap().key_id(),
        staged.id.as_str()
    );
    assert_eq!(
        record["kid"],
        staged.id.as_str(),
        "the record keeps its key id"
    );
    assert!(
        state.verifier().verify(&before).is_ok(),
        "the old key still verifies"
    );

    keys::retire(&dir, old.as_str()).unwrap();
    state.reload_keys(&dir).unwrap();
    for token in [&before, &staged_era, &app.admin] {
        let refused = state.verifier().verify(token).unwrap_err();
        assert_eq!(refused.code(), "unknown_key");
        assert!(
            refused.detail().contains("is retired"),
            "{}",
            refused.detail()
        );
    }
    assert!(state.verifier().verify(&after).is_ok());
    let (_, _, published) = app.call(Method::GET, "/v1/keys", None, None).await;
    assert_eq!(
        key_statuses(&published),
        vec![(staged.id.to_string(), "signing".to_owned())],
        "a retired key is not published"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_reload_of_a_folder_that_does_not_load_keeps_the_ring_in_use() {
    let app = App::start().await;
    let dir = app.dir.path().join("keys");
    let state = &app.server.state;
    let old = state.keys().signing().unwrap().public.id().clone();
    let staged = keys::rotate_into(&dir, chrono::Utc::now()).unwrap();
    keys::activate(&dir, staged.id.as_str()).unwrap();
    // Someone else could have written the status file: nothing of it is believed.
    let status = dir.join(keys::STATUS_FILE);
    std::fs::set_permissions(&status, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = state.reload_keys(&dir).unwrap_err().to_string();
    assert!(err.contains("written by group or others"), "{err}");
    assert_eq!(state.keys().signing().unwrap().public.id(), &old);
    assert!(state.keys().get(staged.id.as_str()).is_none());
    assert!(state.verifier().verify(&app.admin).is_ok());

    // An issuer is not left without a key to sign with.
    std::fs::set_permissions(&status, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::remove_file(&staged.secret_path).unwrap();
    let err = state.reload_keys(&dir).unwrap_err();
    assert!(matches!(err, KeyError::NoSigningKey), "{err}");
    assert_eq!(state.keys().signing().unwrap().public.id(), &old);
    let (token, _) = app.create("still-signs", READ_STATE).await;
    assert_eq!(
        state.verifier().verify(&token).unwrap().key_id(),
        old.as_str()
    );
    app.stop().await;
}
