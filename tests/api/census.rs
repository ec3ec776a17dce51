//! The token counts `/metrics` gives for alerts: tokens by status, tokens about to expire, and
//! live super-admins.

use crate::support::app::App;
use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_count_tokens_for_expiry_alerts() {
    let app = App::start().await;
    let grants = json!({"grants": [{"resource": "chart-group", "role": "view", "groups": ["*"]}]});
    let soon = (Utc::now() + Duration::days(3))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for (name, expires) in [
        ("soon", soon.as_str()),
        ("later", "30d"),
        ("forever", "never"),
    ] {
        let body = json!({"name": name, "expires": expires, "permissions": grants});
        let (status, _, answer) = app
            .call(Method::POST, "/v1/tokens", Some(&app.admin), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let text = app.get("/metrics").send().await.text;
    for line in [
        // The bootstrap super-admin (90 days) and the three above.
        "tessera_tokens{status=\"active\"} 4",
        "tessera_tokens{status=\"expired\"} 0",
        "tessera_tokens_expiring{within=\"7d\"} 1",
        "tessera_super_admins_live 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    app.stop().await;
}
