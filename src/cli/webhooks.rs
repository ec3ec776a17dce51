//! `tessera webhooks test`: one signed test event to a receiver, to check that it verifies
//! Tessera's signatures (Standard Webhooks) before it relies on them.

use super::report::{eprint_line, Failure};
use crate::webhook::WebhookSecret;
use clap::{Args, Subcommand};
use std::process::ExitCode;
use std::time::Duration;

/// The variable that holds the signing secret: never a flag, which `ps` would show.
pub(crate) const SECRET_VAR: &str = "TESSERA_WEBHOOK_SECRET";

/// `tessera webhooks ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum WebhooksCommand {
    /// Send one signed `webhook.test` event to a receiver
    Test(TestArgs),
}

/// Options of `tessera webhooks test`.
#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// The receiver's URL
    #[arg(long, value_name = "URL")]
    url: String,
}

pub(crate) const AFTER_HELP: &str = "\
The secret (`whsec_` and base64, as Standard Webhooks libraries take it) comes from
TESSERA_WEBHOOK_SECRET. The event carries the headers webhook-id, webhook-timestamp and
webhook-signature; a receiver verifies them with its Standard Webhooks library and the same
secret. Exit status: 0 the receiver answered 2xx; 1 it answered otherwise; 2 no secret, a bad
one, or no receiver to reach.

Example:
  TESSERA_WEBHOOK_SECRET=whsec_... tessera webhooks test --url https://hooks.example.com/tessera";

/// Run `tessera webhooks ...`.
pub(crate) fn run(command: WebhooksCommand) -> Result<ExitCode, Failure> {
    let WebhooksCommand::Test(args) = command;
    let secret: WebhookSecret = std::env::var(SECRET_VAR)
        .map_err(|_| Failure::new(format_args!("{SECRET_VAR} is not set")))?
        .parse()
        .map_err(|e| Failure::new(format_args!("{SECRET_VAR}: {e}")))?;
    let url = reqwest::Url::parse(&args.url)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .ok_or_else(|| {
            Failure::new(format_args!(
                "--url {:?} is not an http(s):// URL",
                crate::redact::url(&args.url)
            ))
        })?;
    let now = chrono::Utc::now();
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let body = serde_json::json!({
        "type": "webhook.test",
        "timestamp": crate::claims::format_time(&now),
        "data": {"message": "a test event from tessera webhooks test"},
    })
    .to_string();
    let signature = secret.sign(&id, now.timestamp(), body.as_bytes());
    let shown = crate::redact::url(url.as_str());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format_args!("cannot start the async runtime: {e}")))?;
    let status = runtime
        .block_on(async {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()?
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("webhook-id", &id)
                .header("webhook-timestamp", now.timestamp().to_string())
                .header("webhook-signature", signature)
                .body(body)
                .send()
                .await
                .map(|response| response.status())
        })
        .map_err(|e| {
            Failure::new(format_args!(
                "cannot deliver to {shown}: {}",
                e.without_url()
            ))
        })?;
    if status.is_success() {
        eprint_line(format_args!(
            "delivered webhook.test {id} to {shown}: {status}"
        ));
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Failure::invalid(format_args!(
            "{shown} answered {status} to webhook.test {id}"
        ))
        .hint("a receiver that refuses the signature answers 4xx: check it holds the same secret"))
    }
}
