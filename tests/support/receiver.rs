//! A webhook receiver on a free loopback port: it notes every request (its `webhook-*`
//! headers, its body, whether it took it) and refuses (503) its first `refusals` requests, or
//! until told to take them all.

use axum::http::{HeaderMap, StatusCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A signing secret for tests, as `TESSERA_WEBHOOK_SECRET` takes it.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Vec<u8>,
    /// Whether it answered 2xx.
    pub took: bool,
}

impl Seen {
    /// The body's `type`.
    pub fn kind(&self) -> String {
        let body: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        body["type"].as_str().unwrap_or_default().to_owned()
    }
}

/// The receiver; it stops when dropped.
pub struct Receiver {
    /// Where to post: `http://127.0.0.1:PORT/hook`.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    refusals: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// A receiver that refuses its first `refusals` requests (`usize::MAX`: until
    /// [`Receiver::take_all`]).
    pub async fn start(refusals: usize) -> Self {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let refusals = Arc::new(AtomicUsize::new(refusals));
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post({
                let (seen, refusals) = (seen.clone(), refusals.clone());
                move |headers: HeaderMap, body: axum::body::Bytes| async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let refuse = refusals
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    seen.lock().unwrap().push(Seen {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp").parse().unwrap_or(0),
                        signature: header("webhook-signature"),
                        body: body.to_vec(),
                        took: !refuse,
                    });
                    if refuse {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url,
            seen,
            refusals,
            server,
        }
    }

    /// From now on, take every request.
    pub fn take_all(&self) {
        self.refusals.store(0, Ordering::SeqCst);
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
