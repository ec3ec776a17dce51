//! Asking `/v1/auth` from a test, and waiting for its answer to change: a verifier applies a
//! change from its token state's feed within moments, not within the request that made it.

use reqwest::{Client, StatusCode};
use std::time::{Duration, Instant};

/// `/v1/auth`'s status at `base` for `token` and the question in `query`.
pub async fn auth(client: &Client, base: &str, token: &str, query: &str) -> StatusCode {
    client
        .get(format!("{base}/v1/auth?{query}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// Wait until `/v1/auth` at `base` answers `want`; fail after `patience`.
pub async fn auth_becomes(
    client: &Client,
    base: &str,
    token: &str,
    query: &str,
    want: StatusCode,
    patience: Duration,
) {
    let started = Instant::now();
    loop {
        let got = auth(client, base, token, query).await;
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < patience,
            "{base}/v1/auth?{query} still answers {got}, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
