//! Webhook delivery: events leased from the store's outbox ([`crate::outbox`]) are posted,
//! signed as Standard Webhooks says ([`crate::webhook`]), to every configured endpoint, until
//! each took it (a 2xx answer) or the delivery window ends.
//!
//! Delivery is at least once. An attempt that fails is tried again after a backoff that starts
//! near 1 second and grows fourfold (the third attempt comes about 5 seconds after the first),
//! up to an hour between attempts, each with ±25% jitter so that a receiver coming back is not
//! met by every sender at once. Every attempt of an event carries the same `webhook-id`, and an
//! endpoint that took it is not sent it again. Several deliverers may share a store: each
//! event is leased to one at a time, and one that dies mid-delivery gives it back when its
//! lease ends.

use crate::clock::Clock;
use crate::outbox::{Delivery, OutboxEvent, DELIVERY_WINDOW};
use crate::store::{StoreError, TokenStore};
use crate::webhook::WebhookSecret;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How a deliverer works.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// How often the outbox is looked at when it had nothing due.
    pub poll: Duration,
    /// How long a leased event is this deliverer's alone.
    pub lease: Duration,
    /// Events leased at a time.
    pub batch: usize,
    /// How long one endpoint may take to answer.
    pub timeout: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            // Tried one after another: with one endpoint that times out on each, a batch still
            // ends within its lease.
            batch: 4,
            timeout: Duration::from_secs(10),
        }
    }
}

/// An endpoint: its URL, and the URL without credentials, which is all that is shown or kept.
#[derive(Debug, Clone)]
struct Endpoint {
    url: reqwest::Url,
    shown: String,
}

/// Why a deliverer cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// An endpoint URL that is not http(s) (shown without credentials).
    #[error("a webhook URL is http:// or https://, not {0:?}")]
    BadEndpoint(String),
    /// The HTTP client could not be built (no TLS roots, say).
    #[error("cannot make the HTTP client for webhooks: {0}")]
    Client(String),
}

/// Counts of attempts by outcome, for metrics.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    delivered: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
}

impl DeliveryStats {
    /// Events every endpoint took.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
    /// Attempts that left an endpoint to try again.
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }
    /// Events given up at the end of the window.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Delivers a store's events to its endpoints.
pub struct Deliverer<S> {
    store: Arc<S>,
    endpoints: Vec<Endpoint>,
    secret: Arc<WebhookSecret>,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    options: DeliveryOptions,
    stats: Arc<DeliveryStats>,
}

impl<S> std::fmt::Debug for Deliverer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<&str> = self.endpoints.iter().map(|e| e.shown.as_str()).collect();
        f.debug_struct("Deliverer")
            .field("endpoints", &shown)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<S: TokenStore> Deliverer<S> {
    /// A deliverer of `store`'s events to `urls`, signed with `secret`.
    pub fn new(
        store: Arc<S>,
        urls: &[String],
        secret: Arc<WebhookSecret>,
        clock: Arc<dyn Clock>,
        options: DeliveryOptions,
    ) -> Result<Self, SetupError> {
        let endpoints = urls
            .iter()
            .map(|text| {
                let url = reqwest::Url::parse(text)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| SetupError::BadEndpoint(crate::redact::url(text)))?;
                Ok(Endpoint {
                    shown: crate::redact::url(text),
                    url,
                })
            })
            .collect::<Result<_, _>>()?;
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SetupError::Client(e.to_string()))?;
        Ok(Self {
            store,
            endpoints,
            secret,
            clock,
            http,
            options,
            stats: Arc::default(),
        })
    }

    /// The counts so far.
    pub fn stats(&self) -> Arc<DeliveryStats> {
        self.stats.clone()
    }

    /// Lease the events due now and attempt each; returns how many were attempted.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let events = self
            .store
            .claim_events(now, self.options.lease, self.options.batch)
            .await?;
        let attempted = events.len();
        // One at a time: each endpoint's answer is bounded by the timeout, and an event's
        // outcome is written before the next is tried, so a crash loses at most one attempt.
        for event in events {
            let settled = self.attempt(event).await;
            self.store.settle_event(settled).await?;
        }
        Ok(attempted)
    }

    /// Deliver until dropped: look again at once after a busy round, after `poll` otherwise.
    pub async fn run(self) {
        loop {
            match self.run_once().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not deliver webhook events"),
            }
            tokio::time::sleep(self.options.poll).await;
        }
    }

    /// One attempt of `event` at every endpoint that has not taken it yet.
    async fn attempt(&self, mut event: OutboxEvent) -> OutboxEvent {
        let now = self.clock.now();
        let body = serde_json::to_vec(&event.body).unwrap_or_default();
        let timestamp = now.timestamp();
        let signature = self.secret.sign(&event.id, timestamp, &body);
        let mut errors = Vec::new();
        for endpoint in &self.endpoints {
            if event.delivered_to.contains(&endpoint.shown) {
                continue;
            }
            let sent = self
                .http
                .post(endpoint.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("webhook-id", &event.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", &signature)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(answer) if answer.status().is_success() => {
                    event.delivered_to.push(endpoint.shown.clone());
                }
                Ok(answer) => errors.push(format!("{}: {}", endpoint.shown, answer.status())),
                Err(e) => errors.push(format!("{}: {}", endpoint.shown, describe(&e))),
            }
        }
        event.attempts += 1;
        event.last_attempt_at = Some(now);
        if errors.is_empty() {
            event.delivery = Delivery::Delivered;
            event.next_attempt_at = None;
            event.last_error = None;
            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
            return event;
        }
        let last_error = errors.join("; ");
        tracing::warn!(event = %event.id, kind = %event.kind, attempt = event.attempts,
                       error = %last_error, "a webhook delivery failed");
        event.last_error = Some(last_error);
        let next = now + backoff(event.attempts, jitter());
        if next > event.created_at + DELIVERY_WINDOW {
            event.delivery = Delivery::Failed;
            event.next_attempt_at = None;
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
        } else {
            event.next_attempt_at = Some(next);
            self.stats.retried.fetch_add(1, Ordering::Relaxed);
        }
        event
    }
}

/// The wait before the attempt after `attempts` failed ones: 1 s, 4 s, 16 s, … at most an
/// hour, scaled by `jitter` in [0, 1) to between 75% and 125%.
pub fn backoff(attempts: u32, jitter: f64) -> chrono::Duration {
    let base_ms = 1000_f64 * 4_f64.powi(attempts.saturating_sub(1).min(10) as i32);
    let capped = base_ms.min(3_600_000.0);
    chrono::Duration::milliseconds((capped * (0.75 + 0.5 * jitter.clamp(0.0, 1.0))) as i64)
}

/// A number in [0, 1) from the operating system's randomness.
fn jitter() -> f64 {
    (uuid::Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64
}

/// What went wrong with a request, without the URL (shown beside it already).
fn describe(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}
