//! Nothing is lost without asking (E of the page's guards): Regenerate with unsaved edits asks
//! to save or discard them first; Cancel, the browser's Back and leaving the page ask before a
//! changed form is discarded; the one-time token pop-up asks before it closes (Escape or Done)
//! if Copy was not pressed. Every question is the page's own dialog, not `window.confirm`.

use crate::page::{with_page, Page};
use fantoccini::key::Key;
use serde_json::{json, Value};

/// Whether leaving the page now would be stopped to ask (the `beforeunload` answer).
async fn leaving_asks(page: &Page) -> Value {
    page.js("const e = new Event('beforeunload', {cancelable: true}); \
             window.dispatchEvent(e); return e.defaultPrevented;")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsaved_edits_are_saved_or_discarded_never_silently_lost() {
    with_page(1280, 1000, |page| async move {
        page.create(
            json!({"name": "ci-runner", "description": "Runs CI", "expires": "30d",
            "permissions": {"grants": [{"resource": "chart-group", "role": "view",
            "groups": ["*"]}]}}),
        )
        .await;
        page.open().await;
        page.sign_in(&page.serve.admin).await;
        let row = r#"tr[data-name="ci-runner"]"#;
        page.click(&format!("{row} a.name")).await;
        page.visible("#form-regenerate").await;
        assert_eq!(leaving_asks(&page).await, false, "nothing changed yet");

        // Regenerate with an unsaved edit: asked; "Keep editing" keeps it.
        page.fill("#f-description", "Runs CI and releases").await;
        assert_eq!(leaving_asks(&page).await, true, "beforeunload asks");
        page.click("#form-regenerate").await;
        let question = page.answer("stay").await;
        assert!(
            question.contains("save them first, or discard them"),
            "{question}"
        );
        assert!(!page.shown("#regenerate-dialog").await);
        assert_eq!(page.value("#f-description").await, "Runs CI and releases");

        // "Save changes": saved, then the regenerate dialog.
        page.click("#form-regenerate").await;
        page.answer("save").await;
        page.visible("#regenerate-dialog[open]").await;
        let record = page.record(&page.serve.admin, "ci-runner").await;
        assert_eq!(record["description"], "Runs CI and releases");
        page.click("#regenerate-cancel").await;
        assert_eq!(leaving_asks(&page).await, false, "saved: nothing to lose");

        // "Discard changes": the form goes back to what is saved, then the dialog.
        page.fill("#f-description", "Something else").await;
        page.click("#form-regenerate").await;
        page.answer("discard").await;
        page.visible("#regenerate-dialog[open]").await;
        assert_eq!(page.value("#f-description").await, "Runs CI and releases");
        page.click("#regenerate-cancel").await;

        // Cancel with a change asks; "Keep editing" stays on the form.
        page.fill("#f-description", "Edited again").await;
        page.click("#form-cancel").await;
        page.visible("#ask-dialog[open]").await;
        page.screenshot("discard-question").await;
        let question = page.answer("stay").await;
        assert!(question.contains("Discard your changes?"), "{question}");
        assert!(page.shown("#view-form").await);
        assert_eq!(page.value("#f-description").await, "Edited again");

        // So does the browser's Back; the address stays on the form until it is answered.
        page.client().back().await.unwrap();
        page.answer("stay").await;
        assert!(page.shown("#view-form").await);
        assert!(page.hash().await.starts_with("#/tokens/"));
        assert_eq!(page.value("#f-description").await, "Edited again");
        page.client().back().await.unwrap();
        page.answer("discard").await;
        page.visible("#view-tokens").await;
        page.hash_becomes("#/tokens").await;
        let record = page.record(&page.serve.admin, "ci-runner").await;
        assert_eq!(record["description"], "Runs CI and releases", "discarded");
        assert_eq!(leaving_asks(&page).await, false);

        // An unchanged form leaves without a question.
        page.click(&format!("{row} a.name")).await;
        page.visible("#form-regenerate").await;
        page.click("#form-cancel").await;
        page.visible("#view-tokens").await;
        assert!(!page.shown("#ask-dialog").await);

        // A new form with something typed asks too.
        page.click("#generate").await;
        page.fill("#f-name", "half-done").await;
        page.click("#form-back").await;
        page.answer("discard").await;
        page.visible("#view-tokens").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_time_pop_up_asks_before_closing_when_the_token_was_not_copied() {
    with_page(1280, 1000, |page| async move {
        page.open().await;
        page.sign_in(&page.serve.admin).await;
        page.click("#generate").await;
        page.fill("#f-name", "uncopied").await;
        page.click("#f-super").await;
        page.click("#form-submit").await;
        page.visible("#token-dialog[open]").await;
        let token = page.value("#token-value").await;
        assert_eq!(leaving_asks(&page).await, true, "leaving the page asks too");

        // Escape: asked; going back keeps the pop-up and the token.
        page.client()
            .active_element()
            .await
            .unwrap()
            .send_keys(&Key::Escape.to_string())
            .await
            .unwrap();
        let question = page.answer("back").await;
        assert!(question.contains("will not be shown again"), "{question}");
        assert!(page.shown("#token-dialog").await);
        assert_eq!(page.value("#token-value").await, token);

        // Done: asked the same.
        page.click("#token-done").await;
        page.answer("back").await;
        assert_eq!(page.value("#token-value").await, token);

        // After Copy, Done closes at once.
        page.click("#copy-token").await;
        page.click("#token-done").await;
        page.gone("#token-dialog[open]").await;
        assert!(!page.shown("#ask-dialog").await);
        page.visible(r#"tr[data-name="uncopied"]"#).await;

        // And closing without copying, when chosen, closes it and forgets the token.
        page.click(r#"tr[data-name="uncopied"] a.name"#).await;
        page.click("#form-regenerate").await;
        page.click("#regenerate-confirm").await;
        page.visible("#token-dialog[open]").await;
        page.click("#token-done").await;
        page.answer("close").await;
        page.gone("#token-dialog[open]").await;
        assert_eq!(page.value("#token-value").await, "");
        page.visible("#view-tokens").await;
    })
    .await;
}
