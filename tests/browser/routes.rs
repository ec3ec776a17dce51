//! Hash routes (G of the page's guards): `#/tokens`, `#/tokens/<id>`, `#/new`, `#/audit`,
//! `#/webhooks` and `#/keys` each show their view, so the browser's Back and Forward, a reload and a link all
//! land where they say.

use crate::page::{with_page, Page};
use serde_json::json;

/// Wait until the page shows `view` (its section id without `view-`) and only it.
async fn on(page: &Page, hash: &str, view: &str) {
    page.hash_becomes(hash).await;
    page.visible(&format!("#view-{view}")).await;
    let shown = page
        .js("return [...document.querySelectorAll('main > section')]\
             .filter(s => !s.hidden).map(s => s.id);")
        .await;
    assert_eq!(shown, json!([format!("view-{view}")]), "at {hash}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_forward_reload_and_links_follow_the_hash_routes() {
    with_page(1280, 1000, |page| async move {
        page.create(json!({"name": "ci-runner", "expires": "30d", "permissions":
            {"grants": [{"resource": "chart-group", "role": "view", "groups": ["*"]}]}}))
            .await;
        let id = page.record(&page.serve.admin, "ci-runner").await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let edit = format!("#/tokens/{id}");

        page.open().await;
        page.sign_in(&page.serve.admin).await;
        on(&page, "#/tokens", "tokens").await;
        // The tab of the view on show shows it again, fresh.
        page.create(json!({"name": "late-comer", "expires": "7d",
            "permissions": {"super_admin": true}}))
            .await;
        page.click(r#"#nav .tab[data-view="tokens"]"#).await;
        page.visible(r#"tr[data-name="late-comer"]"#).await;
        on(&page, "#/tokens", "tokens").await;

        // Each way in changes the address.
        page.click("#generate").await;
        on(&page, "#/new", "form").await;
        page.text_with("#form-title", "Generate new token").await;
        page.click("#form-cancel").await;
        on(&page, "#/tokens", "tokens").await;
        page.click(r#"tr[data-name="ci-runner"] a.name"#).await;
        on(&page, &edit, "form").await;
        page.text_with("#form-title", "Edit token ci-runner").await;
        page.click(r#"#nav .tab[data-view="audit"]"#).await;
        on(&page, "#/audit", "audit").await;
        page.click(r#"#nav .tab[data-view="keys"]"#).await;
        on(&page, "#/keys", "keys").await;
        page.text_with("#keys-list", "k4.public.").await;
        let href = page.find(r#"#nav .tab[data-view="audit"]"#).await;
        assert_eq!(href.attr("href").await.unwrap().as_deref(), Some("#/audit"));

        // Back, and Forward.
        page.client().back().await.unwrap();
        on(&page, "#/audit", "audit").await;
        page.client().back().await.unwrap();
        on(&page, &edit, "form").await;
        page.text_with("#form-title", "Edit token ci-runner").await;
        assert_eq!(page.value("#f-name").await, "ci-runner");
        page.client().back().await.unwrap();
        on(&page, "#/tokens", "tokens").await;
        page.client().back().await.unwrap();
        on(&page, "#/new", "form").await;
        page.text_with("#form-title", "Generate new token").await;
        page.client().forward().await.unwrap();
        on(&page, "#/tokens", "tokens").await;
        page.client().forward().await.unwrap();
        on(&page, &edit, "form").await;
        page.client().forward().await.unwrap();
        on(&page, "#/audit", "audit").await;
        page.visible(r#"#audit-body tr[data-action="create"]"#)
            .await;

        // A reload stays where it was.
        page.client().refresh().await.unwrap();
        on(&page, "#/audit", "audit").await;
        page.client()
            .goto(&format!("{}/{edit}", page.serve.base))
            .await
            .unwrap();
        on(&page, &edit, "form").await;
        page.client().refresh().await.unwrap();
        on(&page, &edit, "form").await;
        page.text_with("#form-title", "Edit token ci-runner").await;

        // A link to a token that is gone lands on the list, saying so.
        page.client()
            .goto(&format!(
                "{}/#/tokens/00000000-0000-4000-8000-000000000000",
                page.serve.base
            ))
            .await
            .unwrap();
        on(&page, "#/tokens", "tokens").await;
        page.text_with("#notice", "No token has that id").await;

        // Signed out, a link waits for the sign-in, then shows what it names.
        page.click("#sign-out").await;
        page.client()
            .goto(&format!("{}/#/keys", page.serve.base))
            .await
            .unwrap();
        page.visible("#view-sign-in").await;
        page.sign_in(&page.serve.admin).await;
        on(&page, "#/keys", "keys").await;

        // The webhook deliveries. This server has no --webhook: the events wait, untried.
        page.click(r#"#nav .tab[data-view="webhooks"]"#).await;
        on(&page, "#/webhooks", "webhooks").await;
        page.visible(r#"#webhooks-body tr[data-type="token.created"][data-status="pending"]"#)
            .await;
        page.text_with("#webhooks-body", "late-comer").await;
        page.client().refresh().await.unwrap();
        on(&page, "#/webhooks", "webhooks").await;
        page.screenshot("webhooks").await;
    })
    .await;
}
