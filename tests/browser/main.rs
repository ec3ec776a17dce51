//! The API tokens page in a real browser: a `tessera serve` process (the built binary, a
//! temporary store and keys, its first super-admin token from `--bootstrap-token`), driven in
//! headless Chromium through chromedriver, at 1280 and at 390 pixels wide.
//!
//! What the page does is checked where it takes effect: a token generated on the page is read
//! from its pop-up and sent to `/v1/auth`, whose answers must change after the page updates,
//! regenerates and deletes it. Inline validation must refuse what the API refuses, and say so
//! in plain words next to the field, once.
//!
//! The tests of the page's newer behaviour are in modules: `session` (the "you" marker, the
//! signed-in token's own regenerate and delete, the expiry banner), `form` (the `tessera`
//! kind, custom expiry dates, plain-word errors), `guards` (unsaved changes and the one-time
//! pop-up) and `routes` (hash routes with Back, Forward and reload).
//!
//! Screenshots of the list, the generate form, the pop-up, the expiry banner and a question
//! of the page are written to
//! `$TESSERA_SCREENSHOTS`, else `<target>/screenshots/`.
//!
//! Where Chromium or chromedriver is not installed the tests print why and pass; with
//! `CI=true` they fail instead, so CI cannot go green by skipping.

#![cfg(feature = "cli")]

#[path = "../support/mod.rs"]
mod support;

mod form;
mod guards;
mod page;
mod routes;
mod session;

use crate::page::{with_page, ADMIN_DEPLOY, CSP, DEPLOY};
use fantoccini::key::Key;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_generates_updates_regenerates_and_deletes_a_token_on_the_page() {
    with_page(1280, 1000, |page| async move {
        // Two more tokens, made over the API, so the list has something to sort and mark.
        page.create(json!({"name": "nightly-backup", "description": "Backs up Helm releases",
            "expires": "7d", "permissions": {"grants": [{"resource": "helm-app", "role": "view",
            "project": "infra", "environments": ["prod-cluster__backup"], "apps": ["velero"]}]}}))
            .await;
        page.create(json!({"name": "grafana-sync", "expires": "never", "permissions":
            {"grants": [{"resource": "kubernetes", "role": "view", "cluster": "prod",
            "namespaces": ["monitoring"], "groups": ["", "apps"], "kinds": ["Deployment", "Pod"],
            "names": ["grafana-*"]}]}}))
            .await;

        // Sign in: the token goes to session storage, nowhere else.
        page.open().await;
        page.sign_in(&page.serve.admin).await;
        page.visible("#view-tokens").await;
        page.visible(r#"tr[data-name="grafana-sync"]"#).await;
        let storage = page.storage().await;
        assert_eq!(storage["session"], page.serve.admin.as_str());
        assert_eq!(storage["local"], 0);
        assert_eq!(storage["cookies"], "");
        let soon = page.text_with(r#"tr[data-name="nightly-backup"]"#, "Expires soon").await;
        assert!(soon.contains("helm-app:view project=infra"), "{soon}");
        page.text_with(r#"tr[data-name="grafana-sync"]"#, "Never").await;
        page.text_with(
            r#"tr[data-name="grafana-sync"]"#,
            r#"groups="",apps kinds=Deployment,Pod names=grafana-*"#,
        )
        .await;

        // Generate: a bad name is refused inline, in plain words, as the API refuses it.
        page.click("#generate").await;
        page.visible("#view-form").await;
        page.fill("#f-name", "Ci Deployer").await;
        page.click("#form-submit").await;
        let inline = page.text_with("#f-name-error", "Name is not valid").await;
        assert_eq!(
            inline,
            "Name is not valid: use 3 to 50 lowercase letters, digits, '-' and '_', starting \
             and ending with a letter or digit."
        );
        let api = page
            .refusal(json!({"name": "Ci Deployer", "expires": "30d",
                "permissions": {"super_admin": true}}))
            .await;
        assert!(api.starts_with("name: \"Ci Deployer\" is not a valid name"), "{api}");
        assert!(!page.shown("#form-error").await, "said once, next to the field");
        assert_eq!(
            page.find("#f-name").await.attr("aria-invalid").await.unwrap().as_deref(),
            Some("true")
        );

        // Specific permissions: Devtron Apps (trigger) and Chart Groups (view). A grant with no
        // project is refused inline as the API refuses it, in the form's words.
        page.fill("#f-name", "ci-deployer").await;
        page.fill("#f-description", "Deploys payments from CI").await;
        page.click(r#"fieldset[data-resource="devtron-app"] .add"#).await;
        let devtron = r#"fieldset.grant[data-resource="devtron-app"]"#;
        page.choose(&format!("{devtron} select.role"), "trigger").await;
        page.fill(&format!("{devtron} input[data-key=environments]"), "prod")
            .await;
        page.click(r#"fieldset[data-resource="chart-group"] .add"#).await;
        page.click("#form-submit").await;
        let inline = page
            .text_with(&format!("{devtron} .grant-error"), "Project")
            .await;
        assert_eq!(inline, "Devtron Apps permission 1: Project is required");
        let api = page
            .refusal(json!({"name": "ci-deployer", "expires": "30d", "permissions": {"grants": [
                {"resource": "devtron-app", "role": "trigger", "project": "",
                 "environments": ["prod"], "apps": ["*"]},
                {"resource": "chart-group", "role": "view", "groups": ["*"]}]}}))
            .await;
        assert!(
            api.starts_with("permissions: grants[0]: invalid pattern \"\""),
            "{api}"
        );
        assert!(!page.shown("#form-error").await, "said once, next to the grant");
        assert_eq!(page.text_with("#f-name-error", "").await, "");
        page.fill(&format!("{devtron} input[data-key=project]"), "payments")
            .await;
        // The whole form in one picture: a taller window for a moment.
        page.client().set_window_size(1280, 1560).await.unwrap();
        page.js("window.scrollTo(0, 0);").await;
        page.screenshot("generate-form").await;
        page.client().set_window_size(1280, 1000).await.unwrap();

        // The pop-up: the token, once, with a copy button.
        page.click("#form-submit").await;
        page.visible("#token-dialog[open]").await;
        page.text_with("#token-dialog", "will not be shown again")
            .await;
        let token = page.value("#token-value").await;
        assert!(token.starts_with("v4.public."), "{token}");
        page.click("#copy-token").await;
        page.text_with("#copy-status", "Copied").await;
        page.screenshot("token-pop-up").await;

        // The copied token works where the permissions say, and nowhere else.
        assert_eq!(page.auth(&token, DEPLOY).await, StatusCode::OK);
        assert_eq!(page.auth(&token, ADMIN_DEPLOY).await, StatusCode::FORBIDDEN);
        let charts = "resource=chart-group&role=view&group=base";
        assert_eq!(page.auth(&token, charts).await, StatusCode::OK);

        page.click("#token-done").await;
        page.gone("#token-dialog[open]").await;
        assert_eq!(page.value("#token-value").await, "", "the token leaves the page");
        let row = r#"tr[data-name="ci-deployer"]"#;
        let shown = page
            .text_with(row, "devtron-app:trigger project=payments envs=prod apps=*")
            .await;
        assert!(shown.contains("chart-group:view groups=*"), "{shown}");
        assert!(shown.contains("Deploys payments from CI"), "{shown}");
        page.screenshot("token-list").await;

        // Search and sorting.
        page.fill("#search", "gra").await;
        page.gone(row).await;
        page.visible(r#"tr[data-name="grafana-sync"]"#).await;
        page.fill("#search", "").await;
        page.visible(row).await;
        page.click(r#"th[data-sort="name"] button"#).await;
        let names = page
            .js("return [...document.querySelectorAll('#tokens-body tr')].map(r => r.dataset.name);")
            .await;
        assert_eq!(
            names,
            json!(["nightly-backup", "grafana-sync", "ci-deployer", "admin"]),
            "sorted by name, Z to A"
        );
        assert_eq!(
            page.find(r#"th[data-sort="name"]"#).await.attr("aria-sort").await.unwrap().as_deref(),
            Some("descending")
        );

        // Update: the same token string, new permissions.
        page.click(&format!("{row} .row-actions button")).await;
        page.visible("#form-regenerate").await;
        assert_eq!(page.value("#f-name").await, "ci-deployer");
        page.choose(&format!("{devtron} select.role"), "admin").await;
        page.fill("#f-description", "Deploys and administers payments")
            .await;
        page.click("#form-submit").await;
        page.text_with("#notice", "was updated").await;
        page.text_with(row, "devtron-app:admin project=payments").await;
        page.auth_becomes(&token, ADMIN_DEPLOY, StatusCode::OK).await;

        // A refusal only the server can know (a taken name), in plain words by the name.
        page.click("#generate").await;
        page.fill("#f-name", "grafana-sync").await;
        page.click("#f-super").await;
        page.click("#form-submit").await;
        let taken = page.text_with("#f-name-error", "already named").await;
        assert_eq!(
            taken,
            "A live token is already named grafana-sync: choose another name."
        );
        assert!(!page.shown("#form-error").await, "said once, next to the field");
        page.click("#form-cancel").await;
        page.answer("discard").await;

        // Regenerate: a new token with a new expiry; the old one stops working.
        page.click(&format!("{row} a.name")).await;
        page.click("#form-regenerate").await;
        page.visible("#regenerate-dialog[open]").await;
        page.text_with(
            "#regenerate-dialog",
            "Scripts and tools that use the old token must be updated",
        )
        .await;
        page.choose("#r-expires", "7d").await;
        page.click("#regenerate-confirm").await;
        page.visible("#token-dialog[open]").await;
        page.text_with("#token-dialog-what", "was regenerated (version 2)")
            .await;
        let renewed = page.value("#token-value").await;
        assert!(renewed.starts_with("v4.public.") && renewed != token);
        page.click("#copy-token").await;
        page.text_with("#copy-status", "Copied").await;
        page.click("#token-done").await;
        page.auth_becomes(&token, DEPLOY, StatusCode::UNAUTHORIZED)
            .await;
        assert_eq!(page.auth(&renewed, ADMIN_DEPLOY).await, StatusCode::OK);
        page.text_with(row, "Expires soon").await;

        // Delete, after a confirmation that says what stops working.
        page.click(&format!("{row} .row-actions button.danger")).await;
        page.visible("#delete-dialog[open]").await;
        page.text_with("#delete-dialog", "Scripts and tools that use this token stop working")
            .await;
        page.text_with("#delete-what", "ci-deployer").await;
        page.click("#delete-confirm").await;
        page.text_with("#notice", "was deleted").await;
        page.gone(row).await;
        page.auth_becomes(&renewed, DEPLOY, StatusCode::UNAUTHORIZED)
            .await;

        // The audit trail has every step, newest first, with the acting token by name.
        page.click(r#"#nav .tab[data-view="audit"]"#).await;
        page.visible(r#"#audit-body tr[data-action="delete"]"#).await;
        let actions = page
            .js("return [...document.querySelectorAll('#audit-body tr')]\
                 .filter(r => r.textContent.includes('ci-deployer'))\
                 .map(r => r.dataset.action + ' ' + r.cells[5].textContent);")
            .await;
        assert_eq!(
            actions,
            json!(["delete ok", "regenerate ok", "update ok", "create ok"])
        );
        page.text_with("#audit-body", "admin (token)").await;
        page.screenshot("audit-trail").await;

        // The public keys, by key id.
        let keys: Value = page
            .http
            .get(format!("{}/v1/keys", page.serve.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kid = keys["keys"][0]["kid"].as_str().unwrap();
        page.click(r#"#nav .tab[data-view="keys"]"#).await;
        page.text_with("#keys-list .kid", kid).await;
        page.text_with("#keys-list .paserk", "k4.public.").await;

        // Signing out forgets the token.
        page.click("#sign-out").await;
        page.visible("#view-sign-in").await;
        assert_eq!(page.storage().await["session"], Value::Null);
        page.fits(1280).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_390_pixels_only_a_super_admin_token_signs_in_and_the_page_fits() {
    with_page(390, 844, |page| async move {
        // The page and its assets: types, caching and the security headers.
        let response = page
            .http
            .get(format!("{}/", page.serve.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers["content-security-policy"], CSP);
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let etag = headers["etag"].clone();
        let again = page
            .http
            .get(format!("{}/", page.serve.base))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let script = page
            .http
            .get(format!("{}/ui/app.js", page.serve.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            script.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(script.headers()["cache-control"], "no-cache");

        let viewer = page
            .create(
                json!({"name": "chart-viewer", "expires": "30d", "permissions":
                {"grants": [{"resource": "chart-group", "role": "view", "groups": ["*"]}]}}),
            )
            .await;
        page.open().await;
        page.visible("#view-sign-in").await;
        page.fits(390).await;

        // A valid token that is not super-admin: refused, and told why.
        page.sign_in(&viewer).await;
        let refused = page
            .text_with("#sign-in-error", "not a super-admin token")
            .await;
        assert!(refused.contains("managing API tokens needs a super-admin token"));
        assert_eq!(page.storage().await["session"], Value::Null);
        assert!(!page
            .find("#view-tokens")
            .await
            .is_displayed()
            .await
            .unwrap());

        // Not a token of this service at all: a different message.
        page.sign_in("v4.public.bm90IGEgdG9rZW4").await;
        let bad = page.text_with("#sign-in-error", "was refused").await;
        assert!(!bad.contains("super-admin"), "{bad}");
        assert_eq!(page.storage().await["session"], Value::Null);

        // The keyboard alone signs in: type, Tab to the button, Enter.
        let field = page.visible("#sign-in-token").await;
        field.clear().await.unwrap();
        field.send_keys(&page.serve.admin).await.unwrap();
        field.send_keys(&Key::Tab.to_string()).await.unwrap();
        let focused = page.js("return document.activeElement.textContent;").await;
        assert_eq!(focused, "Sign in");
        page.client()
            .active_element()
            .await
            .unwrap()
            .send_keys(&Key::Enter.to_string())
            .await
            .unwrap();
        page.visible(r#"tr[data-name="chart-viewer"]"#).await;
        assert_eq!(page.storage().await["session"], page.serve.admin.as_str());
        page.fits(390).await;
        page.screenshot("token-list-390").await;

        // The form fits too, and every field has a label.
        page.click("#generate").await;
        page.click(r#"fieldset[data-resource="kubernetes"] .add"#)
            .await;
        page.fits(390).await;
        let unlabelled = page
            .js(
                "return [...document.querySelectorAll('input, select, textarea')]\
                 .filter(f => f.type !== 'hidden' && f.labels.length === 0).map(f => f.id);",
            )
            .await;
        assert_eq!(unlabelled, json!([]));
        page.screenshot("generate-form-390").await;

        // More of the API's rules: what the API refuses, the form refuses first, in its words.
        let kubernetes = r#"fieldset.grant[data-resource="kubernetes"]"#;
        let grant = |namespaces: &str| {
            json!({"grants": [{"resource": "kubernetes", "role": "view", "cluster": "prod",
                "namespaces": [namespaces], "groups": ["", "apps"], "kinds": ["*"],
                "names": ["*"]}]})
        };
        page.fill("#f-name", "k8s-reader").await;
        page.fill(&format!("{kubernetes} input[data-key=cluster]"), "prod")
            .await;
        page.fill(
            &format!("{kubernetes} input[data-key=groups]"),
            r#""", apps"#,
        )
        .await;
        let long = "x".repeat(351);
        page.fill("#f-description", &long).await;
        page.click("#form-submit").await;
        let inline = page.text_with("#f-description-error", "too long").await;
        assert_eq!(
            inline,
            "Description is too long: 351 characters (at most 350)."
        );
        let api = page
            .refusal(
                json!({"name": "k8s-reader", "description": long, "expires": "30d",
                "permissions": grant("*")}),
            )
            .await;
        assert_eq!(api, "description: 351 characters is too long: at most 350");
        page.fill("#f-description", "Reads the cluster").await;
        let plain = [
            "Kubernetes Resources permission 1: Namespaces: a pattern may not be empty (use * \
             to match everything)",
            "Kubernetes Resources permission 1: Namespaces: \"team-*x\" is not a valid \
             pattern: * may only end a pattern",
        ];
        for (namespaces, plain) in [r#""""#, "team-*x"].into_iter().zip(plain) {
            page.fill(
                &format!("{kubernetes} input[data-key=namespaces]"),
                namespaces,
            )
            .await;
            page.click("#form-submit").await;
            let inline = page
                .text_with(&format!("{kubernetes} .grant-error"), "Namespaces")
                .await;
            assert_eq!(inline, plain);
            let pattern = if namespaces == r#""""# {
                ""
            } else {
                namespaces
            };
            let api = page
                .refusal(json!({"name": "k8s-reader", "expires": "30d",
                    "permissions": grant(pattern)}))
                .await;
            assert!(
                api.starts_with("permissions: grants[0]: invalid pattern"),
                "the API says {api:?}"
            );
        }
        assert_eq!(page.text_with("#f-description-error", "").await, "");
        page.fill(
            &format!("{kubernetes} input[data-key=namespaces]"),
            "team-*",
        )
        .await;
        page.click("#form-submit").await;
        page.visible("#token-dialog[open]").await;
        page.click("#token-done").await;
        // Not copied: the page asks first.
        page.answer("close").await;
        page.text_with(
            r#"tr[data-name="k8s-reader"]"#,
            r#"kubernetes:view cluster=prod namespaces=team-* groups="",apps"#,
        )
        .await;

        // A reload keeps the session (same tab); the token is still only in session storage.
        page.client().refresh().await.unwrap();
        page.visible(r#"tr[data-name="chart-viewer"]"#).await;
        assert_eq!(page.storage().await["cookies"], "");
    })
    .await;
}
