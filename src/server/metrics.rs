//! Prometheus metrics: requests by route and status, verification outcomes by reason, the token
//! state's revision and staleness, and the signature cache's hits.
//!
//! Counters are fixed arrays of atomics indexed by route and status, so counting a request
//! takes no lock and allocates nothing: `/v1/auth` is on a gateway's hot path. The routes are
//! the router's own, matched here by their shape, so a client cannot create new series.

use super::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};
use tower::Service;

/// Route labels, in the order of the counters.
const ROUTES: [&str; 18] = [
    "/v1/tokens",
    "/v1/tokens/{id}",
    "/v1/tokens/{id}/regenerate",
    "/v1/audit",
    "/v1/webhooks/deliveries",
    "/v1/auth",
    "/v1/verify",
    "/v1/keys",
    "/v1/state",
    "/v1/introspect",
    "/v1/revoke",
    "/v1/leaks",
    "/.well-known/oauth-authorization-server",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "other",
];

/// Verification outcomes: `ok`, then every refusal code.
const OUTCOMES: [&str; 12] = [
    "ok",
    "malformed",
    "unknown_key",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "revoked",
    "superseded",
    "stale_state",
    "forbidden",
    "address_not_allowed",
];

/// Tokens whose signature check was refused, by reason.
const RATIONED: [&str; 2] = ["overloaded", "too_many_bad_signatures"];

const STATUSES: usize = 600;

/// The server's counters.
pub struct Metrics {
    /// `ROUTES.len()` rows of `STATUSES` counters.
    requests: Box<[AtomicU64]>,
    outcomes: [AtomicU64; OUTCOMES.len()],
    rationed: [AtomicU64; RATIONED.len()],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: (0..ROUTES.len() * STATUSES)
                .map(|_| AtomicU64::new(0))
                .collect(),
            outcomes: Default::default(),
            rationed: Default::default(),
        }
    }
}

/// The route label of a path.
fn route_of(path: &str) -> usize {
    let index = |label: &str| ROUTES.iter().position(|r| *r == label);
    if path.starts_with("/v1/auth/") {
        return ROUTES
            .iter()
            .position(|r| *r == "/v1/auth")
            .unwrap_or(ROUTES.len() - 1);
    }
    let found = match path.strip_prefix("/v1/tokens/") {
        Some(rest) if !rest.is_empty() => match rest.split_once('/') {
            None => index("/v1/tokens/{id}"),
            Some((_, "regenerate")) => index("/v1/tokens/{id}/regenerate"),
            Some(_) => None,
        },
        _ => index(path).filter(|&i| ROUTES[i] != "other" && !ROUTES[i].contains('{')),
    };
    found.unwrap_or(ROUTES.len() - 1)
}

impl Metrics {
    /// Count a verification outcome (`ok` or a reason code).
    pub fn verification(&self, outcome: &str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count a token whose signature check was refused.
    pub fn rationed(&self, why: super::Rationed) {
        if let Some(i) = RATIONED.iter().position(|r| *r == why.code()) {
            self.rationed[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn request(&self, route: usize, status: u16) {
        let status = usize::from(status).min(STATUSES - 1);
        self.requests[route * STATUSES + status].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of everything.
    fn render(&self, state: &AppState, census: Option<super::census::Census>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP tessera_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE tessera_http_requests_total counter");
        for (r, route) in ROUTES.iter().enumerate() {
            for status in 0..STATUSES {
                let n = self.requests[r * STATUSES + status].load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "tessera_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        let _ = writeln!(out, "# HELP tessera_verifications_total Token verifications by outcome: `ok` or the reason code; `forbidden` counts valid tokens a permission check refused, `address_not_allowed` valid tokens used from outside their networks.");
        let _ = writeln!(out, "# TYPE tessera_verifications_total counter");
        for (i, outcome) in OUTCOMES.iter().enumerate() {
            let n = self.outcomes[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "tessera_verifications_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP tessera_signature_checks_refused_total Tokens whose signature check was refused: `overloaded` (the queue was full) or `too_many_bad_signatures` (the client's budget was spent).");
        let _ = writeln!(out, "# TYPE tessera_signature_checks_refused_total counter");
        for (i, reason) in RATIONED.iter().enumerate() {
            let n = self.rationed[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "tessera_signature_checks_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let mirror = state.mirror();
        let map = mirror.state();
        let gauges = [
            (
                "tessera_state_revision",
                "The last token-state revision applied.",
                map.revision() as f64,
            ),
            (
                "tessera_state_age_seconds",
                "Seconds since the token state's source was last heard from.",
                map.age_secs() as f64,
            ),
            (
                "tessera_state_stale",
                "1 when the token state is past its staleness bound.",
                f64::from(u8::from(map.is_stale())),
            ),
            (
                "tessera_state_entries",
                "Entries in the token-state map.",
                map.len() as f64,
            ),
            (
                "tessera_signature_check_slots",
                "Signature checks that may run at once.",
                state.admission().slots() as f64,
            ),
            (
                "tessera_signature_checks_in_flight",
                "Signature checks running now.",
                state.admission().in_flight() as f64,
            ),
            (
                "tessera_signature_checks_queued",
                "Signature checks waiting for a slot now.",
                state.admission().queued() as f64,
            ),
            (
                "tessera_tarpit_held",
                "Refusals of clients past their bad-signature budget being held now.",
                state.tarpit().held() as f64,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        if let Some(census) = census {
            let days = super::census::EXPIRING_DAYS;
            let _ = writeln!(
                out,
                "# HELP tessera_tokens Tokens not deleted, by status (counted at most once a minute).\n\
                 # TYPE tessera_tokens gauge\n\
                 tessera_tokens{{status=\"active\"}} {}\n\
                 tessera_tokens{{status=\"expired\"}} {}\n\
                 # HELP tessera_tokens_expiring Active tokens that expire within the window.\n\
                 # TYPE tessera_tokens_expiring gauge\n\
                 tessera_tokens_expiring{{within=\"{days}d\"}} {}\n\
                 # HELP tessera_super_admins_live Active super-admin tokens: at 0, nobody can manage tokens.\n\
                 # TYPE tessera_super_admins_live gauge\n\
                 tessera_super_admins_live {}",
                census.active, census.expired, census.expiring, census.super_admins_live
            );
        }
        if let Some(deliveries) = state.deliveries() {
            let _ = writeln!(
                out,
                "# HELP tessera_webhook_deliveries_total Webhook delivery attempts by outcome: \
                 delivered (every receiver took the event), retried (one will be tried again), \
                 failed (given up at the end of the 24 h window).\n\
                 # TYPE tessera_webhook_deliveries_total counter\n\
                 tessera_webhook_deliveries_total{{outcome=\"delivered\"}} {}\n\
                 tessera_webhook_deliveries_total{{outcome=\"retried\"}} {}\n\
                 tessera_webhook_deliveries_total{{outcome=\"failed\"}} {}",
                deliveries.delivered(),
                deliveries.retried(),
                deliveries.failed()
            );
        }
        let counters = [
            (
                "tessera_state_reloads_total",
                "Token-state snapshots loaded.",
                mirror.stats().reloads(),
            ),
            (
                "tessera_state_errors_total",
                "Token-state polls that failed.",
                mirror.stats().errors(),
            ),
        ];
        let (hits, misses) = state.verifier().cache_stats();
        let cache = [
            (
                "tessera_signature_cache_hits_total",
                "Verifications that skipped the signature check.",
                hits,
            ),
            (
                "tessera_signature_cache_misses_total",
                "Verifications that checked the signature.",
                misses,
            ),
        ];
        for (name, help, value) in counters.into_iter().chain(cache) {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let ratio = if hits + misses == 0 {
            0.0
        } else {
            hits as f64 / (hits + misses) as f64
        };
        let _ = writeln!(
            out,
            "# HELP tessera_signature_cache_hit_ratio Hits over all lookups since start.\n\
             # TYPE tessera_signature_cache_hit_ratio gauge\ntessera_signature_cache_hit_ratio {ratio}"
        );
        out
    }
}

/// A service that counts every response of `inner` by route and status, allocating nothing
/// (unlike `axum::middleware::from_fn`, which boxes the inner service and its future).
#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    state: AppState,
}

impl<S> Track<S> {
    /// Count the responses of `inner` in `state`'s metrics.
    pub fn new(inner: S, state: AppState) -> Self {
        Self { inner, state }
    }
}

impl<S> std::fmt::Debug for Track<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Track").finish_non_exhaustive()
    }
}

impl<S> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        Tracked {
            route: route_of(request.uri().path()),
            state: self.state.clone(),
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// A response on its way, counted when it is ready.
    pub struct Tracked<F> {
        #[pin]
        inner: F,
        route: usize,
        state: AppState,
    }
}

impl<F, E> Future for Tracked<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        if let Ok(response) = &output {
            this.state
                .metrics()
                .request(*this.route, response.status().as_u16());
        }
        Poll::Ready(output)
    }
}

/// `GET /metrics`
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Prometheus metrics.",
    security(),
    responses(
        (status = OK, description = "The Prometheus text exposition format 0.0.4.",
         content_type = "text/plain", body = String)
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let census = state.census().await;
    let body = state.metrics().render(&state, census);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every documented route has its own series (the forward-auth paths share one), and
    /// every series but `other` is a documented route.
    #[test]
    fn the_labels_are_the_documented_routes() {
        let doc = super::super::api_document(false);
        let mut labelled = std::collections::BTreeSet::new();
        for path in doc.paths.paths.keys() {
            let concrete = path.replace("{id}", "0").replace("{path}", "a/b");
            let label = ROUTES[route_of(&concrete)];
            let expected = if path.starts_with("/v1/auth") {
                "/v1/auth"
            } else {
                path.as_str()
            };
            assert_eq!(label, expected, "{path}");
            labelled.insert(label);
        }
        labelled.insert("other");
        assert_eq!(labelled, ROUTES.into_iter().collect());
    }

    #[test]
    fn paths_map_to_their_route_and_nothing_else_makes_a_series() {
        let label = |path| ROUTES[route_of(path)];
        assert_eq!(label("/v1/tokens"), "/v1/tokens");
        assert_eq!(label("/v1/tokens/abc"), "/v1/tokens/{id}");
        assert_eq!(
            label("/v1/tokens/abc/regenerate"),
            "/v1/tokens/{id}/regenerate"
        );
        assert_eq!(label("/v1/tokens/abc/other"), "other");
        assert_eq!(label("/v1/tokens/"), "other");
        assert_eq!(label("/v1/auth"), "/v1/auth");
        assert_eq!(label("/v1/auth/api/deploy"), "/v1/auth");
        assert_eq!(label("/v1/tokens/{id}"), "/v1/tokens/{id}");
        assert_eq!(label("/anything/else"), "other");
        assert_eq!(label("/v1/state"), "/v1/state");
        assert_eq!(label("/openapi.json"), "/openapi.json");
        assert_eq!(label("other"), "other");
    }
}
