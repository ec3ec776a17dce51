//! Who the page is signed in as (A and B of the page's guards): the token it signed in with is
//! marked "you" as `POST /v1/verify` identifies it; deleting or regenerating it warns first;
//! regenerating it carries the session on with the new token; deleting it returns cleanly to
//! signing in; the server's refusal to lose the last live super-admin is said in plain words;
//! and a banner announces the signed-in token's expiry within 14 days.

use crate::page::with_page;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const LAST_DELETE: &str = "This is the last live super-admin token, so it cannot be deleted: \
     nobody could manage tokens afterwards. Make another super-admin token first, or \
     regenerate this one instead.";
const LAST_UPDATE: &str = "This is the last live super-admin token, so it must keep \
     super-admin permission: otherwise nobody could manage tokens. Make another super-admin \
     token first.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_marks_its_own_token_and_guards_regenerating_and_deleting_it() {
    with_page(1280, 1000, |page| async move {
        let me = page
            .create(json!({"name": "ops-admin", "expires": "90d",
                "permissions": {"super_admin": true}}))
            .await;
        page.open().await;
        page.sign_in(&me).await;
        let mine = r#"tr[data-name="ops-admin"]"#;
        page.visible(mine).await;

        // "you" marks the signed-in token, and only it.
        let marked = page
            .js(
                "return [...document.querySelectorAll('#tokens-body tr[data-self]')]\
                 .map(r => r.dataset.name);",
            )
            .await;
        assert_eq!(marked, json!(["ops-admin"]));
        page.text_with(&format!("{mine} .badge.you"), "you").await;
        assert!(!page.shown("#self-banner").await, "90 days away: no banner");

        // Deleting another token warns of nothing about yourself.
        page.click(r#"tr[data-name="admin"] .row-actions button.danger"#)
            .await;
        page.visible("#delete-dialog[open]").await;
        assert!(!page.shown("#delete-self").await);
        page.click("#delete-confirm").await;
        page.text_with("#notice", "was deleted").await;
        page.gone(r#"tr[data-name="admin"]"#).await;

        // Now ops-admin is the last live super-admin: deleting it is refused, in plain words,
        // and the session carries on.
        page.click(&format!("{mine} .row-actions button.danger"))
            .await;
        page.visible("#delete-dialog[open]").await;
        page.text_with("#delete-self", "This is the token you are signed in with")
            .await;
        page.click("#delete-confirm").await;
        let refused = page.text_with("#delete-error", "last live").await;
        assert_eq!(refused, LAST_DELETE);
        page.click("#delete-cancel").await;
        assert_eq!(page.storage().await["session"], me.as_str());

        // So is taking its super-admin permission away, next to the permissions, once.
        page.click(&format!("{mine} a.name")).await;
        page.visible("#form-regenerate").await;
        page.click("#f-specific").await;
        page.click(r#"fieldset[data-resource="chart-group"] .add"#)
            .await;
        page.click("#form-submit").await;
        let refused = page.text_with("#f-permissions-error", "last live").await;
        assert_eq!(refused, LAST_UPDATE);
        assert!(!page.shown("#form-error").await);
        let record = page.record(&me, "ops-admin").await;
        assert_eq!(record["permissions"], json!({"super_admin": true}));

        // Regenerating it: warned first (the edit above is discarded, not lost silently); the
        // new token is shown once and the session switches to it.
        page.click("#form-regenerate").await;
        page.answer("discard").await;
        page.visible("#regenerate-dialog[open]").await;
        page.text_with(
            "#regenerate-self",
            "This page carries on with the new token",
        )
        .await;
        page.choose("#r-expires", "7d").await;
        page.click("#regenerate-confirm").await;
        page.visible("#token-dialog[open]").await;
        page.text_with("#token-dialog-what", "This page now uses the new token")
            .await;
        let renewed = page.value("#token-value").await;
        assert!(renewed.starts_with("v4.public.") && renewed != me);
        assert_eq!(page.storage().await["session"], renewed.as_str());
        page.click("#copy-token").await;
        page.click("#token-done").await;
        let (old, _) = page.call(&me, Method::GET, "/v1/tokens", None).await;
        assert_eq!(
            old,
            StatusCode::UNAUTHORIZED,
            "the old token stopped working"
        );
        // The page carries on: the list reloads with the new token, still marked.
        page.visible(&format!("{mine}[data-self]")).await;
        page.text_with(mine, "Expires soon").await;
        // B: it now expires within 14 days, and the banner says when.
        let banner = page.text_with("#self-banner", "expires on").await;
        assert!(
            banner.contains("(ops-admin)") && banner.contains("in 7 days"),
            "{banner}"
        );

        // With another super-admin, deleting it signs out, cleanly.
        let (made, _) = page
            .call(
                &renewed,
                Method::POST,
                "/v1/tokens",
                Some(json!({"name": "second-admin", "expires": "30d",
                    "permissions": {"super_admin": true}})),
            )
            .await;
        assert_eq!(made, StatusCode::CREATED);
        page.client().refresh().await.unwrap();
        page.visible(r#"tr[data-name="second-admin"]"#).await;
        page.click(&format!("{mine} .row-actions button.danger"))
            .await;
        page.visible("#delete-self").await;
        page.click("#delete-confirm").await;
        page.visible("#view-sign-in").await;
        page.text_with(
            "#sign-in-error",
            "You deleted the token you were signed in with (ops-admin)",
        )
        .await;
        assert_eq!(page.storage().await["session"], Value::Null);
        assert!(!page.shown("#notice").await, "no success notice");
        assert!(!page.shown("#self-banner").await);
        assert!(!page.shown("#view-tokens").await);
        assert!(!page.shown("#nav").await);
        let rows = page
            .js("return document.querySelectorAll('#tokens-body tr').length;")
            .await;
        assert_eq!(rows, 0, "no table left behind");
        let (gone, _) = page.call(&renewed, Method::GET, "/v1/tokens", None).await;
        assert_eq!(gone, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banner_says_when_the_signed_in_token_expires_within_14_days() {
    with_page(1280, 1000, |page| async move {
        let soon = page
            .create(json!({"name": "soon-admin", "expires": "7d",
                "permissions": {"super_admin": true}}))
            .await;
        let expires = page.record(&page.serve.admin, "soon-admin").await["expires_at"]
            .as_str()
            .unwrap()
            .to_owned();
        page.open().await;
        page.sign_in(&soon).await;
        let banner = page.text_with("#self-banner", "expires on").await;
        assert!(
            banner.contains("The token you are signed in with (soon-admin)"),
            "{banner}"
        );
        assert!(banner.contains("in 7 days"), "{banner}");
        // The day, as the browser writes it.
        let day = page
            .js(&format!(
                "return new Intl.DateTimeFormat(undefined, {{dateStyle: 'medium'}})\
                 .format(new Date('{expires}'));"
            ))
            .await;
        assert!(banner.contains(day.as_str().unwrap()), "{banner} / {day}");
        page.screenshot("expiry-banner").await;

        // It stays on a reload, and goes with signing out.
        page.client().refresh().await.unwrap();
        page.text_with("#self-banner", "(soon-admin)").await;
        page.click("#sign-out").await;
        page.visible("#view-sign-in").await;
        assert!(!page.shown("#self-banner").await);

        // 90 days away (the bootstrap token): no banner.
        page.sign_in(&page.serve.admin).await;
        page.visible(r#"tr[data-name="admin"][data-self]"#).await;
        assert!(!page.shown("#self-banner").await);
    })
    .await;
}
