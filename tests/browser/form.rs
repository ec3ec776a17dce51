//! The form (C, D and F of the page's guards): the `tessera` resource kind, custom expiry
//! dates that mean the end of the day in UTC whatever the browser's time zone, and errors in
//! plain words, shown once, next to their field, for what the form checks and for what only
//! the server refuses.

use crate::page::{with_page, with_page_in, Page};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Sign in with the bootstrap token and open the generate form.
async fn generate_form(page: &Page) {
    page.open().await;
    page.sign_in(&page.serve.admin).await;
    page.visible(r#"tr[data-name="admin"]"#).await;
    page.click("#generate").await;
    page.visible("#view-form").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_offers_the_tessera_kind_with_roles_and_no_scope() {
    with_page(1280, 1000, |page| async move {
        generate_form(&page).await;
        page.fill("#f-name", "edge-state").await;
        page.click(r#"fieldset[data-resource="tessera"] .add"#)
            .await;
        let row = r#"fieldset.grant[data-resource="tessera"]"#;
        let roles = page
            .js(&format!(
                "return [...document.querySelectorAll('{row} select.role option')]\
                 .map(o => o.value);"
            ))
            .await;
        assert_eq!(roles, json!(["introspect", "read-state"]), "low to high");
        let scope = page
            .js(&format!(
                "return document.querySelectorAll('{row} input').length;"
            ))
            .await;
        assert_eq!(scope, 0, "no scope fields");
        page.text_with(&format!("{row} legend"), "Tessera permission 1")
            .await;
        page.choose(&format!("{row} select.role"), "read-state")
            .await;
        page.click("#form-submit").await;
        page.visible("#token-dialog[open]").await;
        let token = page.value("#token-value").await;
        page.click("#copy-token").await;
        page.click("#token-done").await;
        page.text_with(r#"tr[data-name="edge-state"]"#, "tessera:read-state")
            .await;

        // What the API holds, and what the token may do.
        let record = page.record(&page.serve.admin, "edge-state").await;
        assert_eq!(
            record["permissions"],
            json!({"grants": [{"resource": "tessera", "role": "read-state"}]})
        );
        let introspect = "resource=tessera&role=introspect";
        assert_eq!(page.auth(&token, introspect).await, StatusCode::OK);
        let (state, _) = page.call(&token, Method::GET, "/v1/state", None).await;
        assert_eq!(state, StatusCode::OK, "read-state reads the token state");
        let (manage, _) = page.call(&token, Method::GET, "/v1/tokens", None).await;
        assert_eq!(manage, StatusCode::FORBIDDEN);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_expiry_date_is_the_end_of_that_day_in_utc_in_any_time_zone() {
    // 14 hours ahead of UTC: the end of a day here is 09:59:59 UTC of the same day.
    with_page_in(1280, 1000, Some("Pacific/Kiritimati"), |page| async move {
        let zone = page
            .js("return Intl.DateTimeFormat().resolvedOptions().timeZone;")
            .await;
        assert_eq!(zone, "Pacific/Kiritimati", "the browser's time zone");
        let day = |days: u32| {
            format!("return new Date(Date.now() + {days} * 864e5).toISOString().slice(0, 10);")
        };
        let date = page.js(&day(10)).await.as_str().unwrap().to_owned();

        generate_form(&page).await;
        page.fill("#f-name", "dated-token").await;
        page.click("#f-super").await;
        page.choose("#f-expires", "custom").await;
        page.set_value("#f-custom-date", &date).await;
        page.text_with("#f-expires-note", &format!("at the end of {date} UTC"))
            .await;
        page.click("#form-submit").await;
        page.visible("#token-dialog[open]").await;
        page.click("#copy-token").await;
        page.click("#token-done").await;
        page.visible(r#"tr[data-name="dated-token"]"#).await;
        let record = page.record(&page.serve.admin, "dated-token").await;
        assert_eq!(record["expires_at"], format!("{date}T23:59:59Z"));

        // Regenerating with a custom date: the same.
        let later = page.js(&day(20)).await.as_str().unwrap().to_owned();
        page.click(r#"tr[data-name="dated-token"] a.name"#).await;
        page.click("#form-regenerate").await;
        page.visible("#regenerate-dialog[open]").await;
        page.choose("#r-expires", "custom").await;
        page.set_value("#r-custom-date", &later).await;
        page.click("#regenerate-confirm").await;
        page.visible("#token-dialog[open]").await;
        page.click("#copy-token").await;
        page.click("#token-done").await;
        page.gone("#token-dialog[open]").await;
        let record = page.record(&page.serve.admin, "dated-token").await;
        assert_eq!(record["expires_at"], format!("{later}T23:59:59Z"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_plain_words_next_to_their_field_and_said_once() {
    with_page(1280, 1000, |page| async move {
        generate_form(&page).await;
        page.fill("#f-name", "plain-words").await;

        // No permission at all.
        page.click("#form-submit").await;
        let none = page.text_with("#f-permissions-error", "at least one").await;
        assert_eq!(
            none,
            "Add at least one permission, or choose Super admin permission."
        );

        // The second of two Devtron Apps grants has no project: named as the page names it.
        let add = r#"fieldset[data-resource="devtron-app"] .add"#;
        page.click(add).await;
        page.click(add).await;
        let devtron = r#"fieldset.grant[data-resource="devtron-app"]"#;
        page.fill(&format!("{devtron} input[data-key=project]"), "payments")
            .await;
        page.click("#form-submit").await;
        let second = format!("{devtron}:nth-child(2) .grant-error");
        let missing = page.text_with(&second, "Project").await;
        assert_eq!(missing, "Devtron Apps permission 2: Project is required");
        assert_eq!(page.text_with("#f-permissions-error", "").await, "");
        assert!(!page.shown("#form-error").await, "said once");
        let errors = page
            .js(
                "return [...document.querySelectorAll('#token-form .error')]\
                 .filter(e => e.textContent !== '').length;",
            )
            .await;
        assert_eq!(errors, 1, "one message for one problem");

        // Removing the first renumbers the second, and its message follows.
        page.click(&format!("{devtron}:nth-child(1) .remove")).await;
        page.click("#form-submit").await;
        let renumbered = page
            .text_with(&format!("{devtron} .grant-error"), "Project")
            .await;
        assert_eq!(renumbered, "Devtron Apps permission 1: Project is required");

        // An empty list.
        page.fill(&format!("{devtron} input[data-key=project]"), "payments")
            .await;
        page.fill(&format!("{devtron} input[data-key=apps]"), " , ")
            .await;
        page.click("#form-submit").await;
        let empty = page
            .text_with(&format!("{devtron} .grant-error"), "Applications")
            .await;
        assert_eq!(
            empty,
            "Devtron Apps permission 1: Applications needs at least one pattern (* for all)"
        );
        page.fill(&format!("{devtron} input[data-key=apps]"), "api")
            .await;

        // What only the server refuses, by its field path, is put in the same words next to
        // the grant it names. (The form checks everything the API would here, so the
        // refusal is given to the page as the API words it, by replacing its fetch once.)
        page.click(r#"fieldset[data-resource="kubernetes"] .add"#)
            .await;
        let kubernetes = r#"fieldset.grant[data-resource="kubernetes"]"#;
        page.fill(&format!("{kubernetes} input[data-key=cluster]"), "prod")
            .await;
        page.fill(&format!("{kubernetes} input[data-key=kinds]"), "Pod, Job")
            .await;
        let refuse = |message: &str| {
            format!(
                "const real = window.fetch; window.fetch = (path, init) => {{ \
                   window.fetch = real; \
                   return Promise.resolve(new Response(JSON.stringify({{error: \
                     {{code: 'invalid_request', message: {message}}}}}), \
                     {{status: 422, headers: {{'Content-Type': 'application/json'}}}})); }};",
                message = json!(message)
            )
        };
        page.js(&refuse(
            r#"permissions: grants[1]: invalid pattern "Job": "*" may only end a pattern"#,
        ))
        .await;
        page.click("#form-submit").await;
        let mapped = page
            .text_with(&format!("{kubernetes} .grant-error"), "Kinds")
            .await;
        assert_eq!(
            mapped,
            "Kubernetes Resources permission 1: Kinds: \"Job\" is not a valid pattern: * may \
             only end a pattern"
        );
        assert!(!page.shown("#form-error").await, "said once");
        page.js(&refuse(
            r#"permissions: grants[0]: "environments" must list at least one pattern"#,
        ))
        .await;
        page.click("#form-submit").await;
        let mapped = page
            .text_with(&format!("{devtron} .grant-error"), "Environments")
            .await;
        assert_eq!(
            mapped,
            "Devtron Apps permission 1: Environments needs at least one pattern (* for all)"
        );
        assert_eq!(
            page.text_with(&format!("{kubernetes} .grant-error"), "")
                .await,
            ""
        );

        // With nothing wrong, the token is made.
        page.click("#form-submit").await;
        page.visible("#token-dialog[open]").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_networks_are_set_shown_refused_in_words_and_regenerated() {
    with_page(1280, 1000, |page| async move {
        generate_form(&page).await;
        page.fill("#f-name", "office-bot").await;
        page.click("#f-super").await;

        // A bad entry: the server names it, next to the field.
        page.fill("#f-cidrs", "10.0.0.0/8, 10.0.0.0/33").await;
        page.click("#form-submit").await;
        let refused = page.text_with("#f-cidrs-error", "10.0.0.0/33").await;
        assert!(refused.starts_with("Allowed networks: "), "{refused}");
        assert!(!page.shown("#form-error").await, "said once");

        page.fill("#f-cidrs", "10.1.2.3/8 2001:db8::1/32").await;
        page.click("#form-submit").await;
        page.visible("#token-dialog[open]").await;
        page.click("#copy-token").await;
        page.click("#token-done").await;
        let record = page.record(&page.serve.admin, "office-bot").await;
        assert_eq!(
            record["allowed_cidrs"],
            json!(["10.0.0.0/8", "2001:db8::/32"])
        );

        // The edit form shows them as stored, and saves a change.
        page.click(r#"tr[data-name="office-bot"] a.name"#).await;
        page.visible("#view-form").await;
        assert_eq!(page.value("#f-cidrs").await, "10.0.0.0/8, 2001:db8::/32");
        page.fill("#f-cidrs", "192.0.2.0/24").await;
        page.click("#form-submit").await;
        page.visible(r#"tr[data-name="office-bot"]"#).await;
        let record = page.record(&page.serve.admin, "office-bot").await;
        assert_eq!(record["allowed_cidrs"], json!(["192.0.2.0/24"]));

        // Regenerating offers the current ones, and signs what the dialog holds.
        page.click(r#"tr[data-name="office-bot"] a.name"#).await;
        page.click("#form-regenerate").await;
        page.visible("#regenerate-dialog[open]").await;
        assert_eq!(page.value("#r-cidrs").await, "192.0.2.0/24");
        page.fill("#r-cidrs", "").await;
        page.click("#regenerate-confirm").await;
        page.visible("#token-dialog[open]").await;
        page.click("#copy-token").await;
        page.click("#token-done").await;
        page.gone("#token-dialog[open]").await;
        let record = page.record(&page.serve.admin, "office-bot").await;
        assert_eq!(record["allowed_cidrs"], json!([]));
    })
    .await;
}
