//! The HTTP service (feature `server`): the management API, the gateway forward-auth endpoint,
//! introspection, the public keys and health, on axum.
//!
//! | module | owns |
//! |---|---|
//! | `admission` | how many signature checks run and wait at once, so cached tokens never wait |
//! | `auth` | the token a request carries, its verification, the permission gates |
//! | `error` | [`ApiError`]: the JSON error shape and the status of every code |
//! | `budget` | each client's budget of bad signatures |
//! | `census` | the token counts `/metrics` gives: active, expired, expiring, live super-admins |
//! | `handlers` | the management endpoints and health |
//! | `metrics` | Prometheus counters and `/metrics` |
//! | `oauth` | RFC 7009 revocation, RFC 7662 introspection, RFC 8414 metadata, leak reports |
//! | `openapi` | `/openapi.json`: what the handlers' annotations do not say |
//! | `routes` | what each route needs of its caller, in one table |
//! | `state_feed` | `GET /v1/state`, for verify-only instances |
//! | `tarpit` | how long a client past its bad-signature budget waits for each refusal |
//! | `ui` | the API tokens web page at `/`, a client of the `/v1` API like any other |
//! | `usage` | last use of each token, noted in memory and written in batches |
//! | `verify` | forward authentication, introspection and the public keys |
//!
//! [`router`] is a plain function of an [`AppState`], so most tests drive it in process;
//! [`serve`] takes the listener and the shutdown signal from its caller, so tests bind port 0.
//! The state holds the token service (reachable only through the super-admin extractor), a
//! verifier whose token state is a [`StateMirror`] following the store's feed, and the keys.

mod admission;
mod auth;
pub mod budget;
mod census;
mod deliveries;
mod error;
mod handlers;
mod metrics;
mod oauth;
mod openapi;
mod routes;
pub(crate) mod state_feed;
mod tarpit;
mod ui;
mod usage;
mod verify;

pub use auth::{
    client_address, presented, Admin, Authenticated, ClientAddr, Introspector, Revoker, StateReader,
};
pub use error::ApiError;
pub use metrics::Track;
pub use routes::{table as route_table, Need, Route};

use crate::clock::SystemClock;
use crate::delivery::{Deliverer, DeliveryStats};
use crate::keys::{KeyError, KeyRing, LiveRing};
use crate::lifecycle::{NoticeThreshold, Upkeep};
use crate::mirror::StateMirror;
use crate::store::AnyStore;
use crate::verifier::{Lookup, Verifier};
use crate::{Reason, VerifiedToken, VerifyError};
pub use admission::Rationed;
pub(crate) use auth::Tokens;
use axum::extract::Request;
use axum::{Router, ServiceExt};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// How often the server drops state entries that can no longer matter.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How often the server looks at when the last super-admin expires.
const SUPER_ADMIN_CHECK_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// Warn when every live super-admin expires within this many days.
pub const SUPER_ADMIN_WARN_DAYS: i64 = 14;

/// What a server's state is made of.
pub(crate) struct Parts {
    /// The token service, sealed; `None` on a verify-only instance.
    pub tokens: Option<Tokens>,
    /// The verifier, following `mirror`.
    pub verifier: Verifier,
    /// The token state.
    pub mirror: StateMirror,
    /// The keys, shared with the verifier and the issuer, for `/v1/keys` and reloads.
    pub ring: Arc<LiveRing>,
    /// The store's upkeep (last uses, readiness); `None` on a verify-only instance that
    /// follows an issuer over HTTP.
    pub upkeep: Option<Upkeep>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// How often the last use of tokens is written to the store.
    pub usage_flush: Duration,
    /// Each client's budget of bad signatures per window (0: none).
    pub bad_signature_budget: u32,
    /// Delivers the store's events to the webhooks, when any are configured.
    pub deliverer: Option<Deliverer<AnyStore>>,
    /// How long before expiry `token.expiring` notices go out.
    pub notify_expiring: Vec<NoticeThreshold>,
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` on a verify-only instance.
    tokens: Option<Arc<Tokens>>,
    metrics: metrics::Metrics,
    usage: usage::UsageRecorder,
    trusted_proxies: Vec<IpAddr>,
    usage_flush: Duration,
    /// Shared with the signature-check threads.
    verifier: Arc<Verifier>,
    mirror: StateMirror,
    ring: Arc<LiveRing>,
    /// `None` on a verify-only instance that follows an issuer over HTTP.
    upkeep: Option<Upkeep>,
    admission: admission::Admission,
    budget: budget::Budget,
    tarpit: tarpit::Tarpit,
    census: census::Taker,
    /// When the last budget WARN was logged (seconds since the epoch), to log one a second.
    budget_warned: AtomicI64,
    /// Delivers the store's events to the webhooks, when any are configured; taken by
    /// [`serve`], which runs it.
    deliverer: std::sync::Mutex<Option<Deliverer<AnyStore>>>,
    /// Its counts, for metrics.
    deliveries: Option<Arc<DeliveryStats>>,
    notify_expiring: Vec<NoticeThreshold>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("mirror", &self.inner.mirror)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// A server's state from its parts, which the composition root ([`crate::startup`]) makes.
    pub(crate) fn new(parts: Parts) -> Self {
        Self {
            inner: Arc::new(Inner {
                tokens: parts.tokens.map(Arc::new),
                metrics: metrics::Metrics::default(),
                usage: usage::UsageRecorder::default(),
                trusted_proxies: parts.trusted_proxies,
                usage_flush: parts.usage_flush,
                verifier: Arc::new(parts.verifier),
                mirror: parts.mirror,
                ring: parts.ring,
                upkeep: parts.upkeep,
                admission: admission::Admission::for_this_machine(),
                budget: budget::Budget::new(parts.bad_signature_budget, Arc::new(SystemClock)),
                tarpit: tarpit::Tarpit::default(),
                census: census::Taker::default(),
                budget_warned: AtomicI64::new(0),
                deliveries: parts.deliverer.as_ref().map(Deliverer::stats),
                deliverer: std::sync::Mutex::new(parts.deliverer),
                notify_expiring: parts.notify_expiring,
            }),
        }
    }

    /// The webhook delivery counts, when webhooks are configured.
    pub(crate) fn deliveries(&self) -> Option<&DeliveryStats> {
        self.inner.deliveries.as_deref()
    }

    /// Whether this instance only verifies (no management API).
    pub fn verify_only(&self) -> bool {
        self.inner.tokens.is_none()
    }

    /// The verifier, following the store's token state.
    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    /// Verify a token presented to the server by the client at `from`: count the outcome, and
    /// note the use of an accepted token (written to the store later, in a batch). Rationed
    /// like [`AppState::check_token`].
    pub async fn verify_from(
        &self,
        token: &str,
        from: Option<IpAddr>,
    ) -> Result<Result<VerifiedToken, VerifyError>, Rationed> {
        let result = self.check_token(token, from).await?;
        match &result {
            Ok(token) => {
                self.inner.metrics.verification("ok");
                self.inner.usage.note(token.id(), token.verified_at(), from);
            }
            Err(e) => self.inner.metrics.verification(e.code()),
        }
        Ok(result)
    }

    /// Verify `token` for the client at `from`, rationing signature checks: a token the
    /// verifier can answer without one (cached, or malformed) is answered at once; any other
    /// waits for a slot, and is refused when the queue is full, or (after a hold in the
    /// tarpit) when its client has spent its bad-signature budget.
    pub async fn check_token(
        &self,
        token: &str,
        from: Option<IpAddr>,
    ) -> Result<Result<VerifiedToken, VerifyError>, Rationed> {
        let inner = &self.inner;
        let unchecked = match inner.verifier.look_up(token) {
            Lookup::Answered(answer) => return Ok(answer),
            Lookup::NeedsSignature(unchecked) => unchecked,
        };
        if let Err(cooling) = inner.budget.allows(from) {
            inner.metrics.rationed(Rationed::CoolingDown(cooling));
            inner.tarpit.hold().await;
            return Err(Rationed::CoolingDown(cooling));
        }
        let unchecked = unchecked.into_owned();
        let verifier = inner.verifier.clone();
        let checked = inner
            .admission
            .check(move || verifier.verify_signature(unchecked))
            .await;
        let Ok(answer) = checked else {
            inner.metrics.rationed(Rationed::Overloaded);
            return Err(Rationed::Overloaded);
        };
        if let Err(e) = &answer {
            if e.reason() == Reason::BadSignature && inner.budget.bad_signature(from) {
                self.warn_budget_spent(from);
            }
        }
        Ok(answer)
    }

    /// Say, at most once a second, that a client spent its bad-signature budget.
    fn warn_budget_spent(&self, from: Option<IpAddr>) {
        let now = chrono::Utc::now().timestamp();
        let last = self.inner.budget_warned.swap(now, Ordering::Relaxed);
        if last != now {
            tracing::warn!(
                client = ?from,
                window_secs = budget::WINDOW_SECS,
                cool_down_secs = budget::COOL_DOWN_SECS,
                "a client sent more tokens with bad signatures than its budget allows; its \
                 signature checks are refused for the cool-down (if it is a proxy, list it \
                 with --trusted-proxy so its clients are told apart)"
            );
        }
    }

    /// The token census, for the metrics; `None` on a verify-only instance, which holds no
    /// store, or when the store never answered.
    async fn census(&self) -> Option<census::Census> {
        let tokens = self.tokens()?;
        self.inner.census.take(tokens.housekeeping()).await
    }

    /// The refusals held in the tarpit, for the metrics.
    fn tarpit(&self) -> &tarpit::Tarpit {
        &self.inner.tarpit
    }

    /// The signature-check gate, for the metrics.
    fn admission(&self) -> &admission::Admission {
        &self.inner.admission
    }

    /// The proxies trusted to name the client.
    pub fn trusted_proxies(&self) -> &[IpAddr] {
        &self.inner.trusted_proxies
    }

    /// Write the noted uses of tokens to the store now (an instance without a store keeps no
    /// record of use).
    pub async fn flush_usage(&self) {
        if let Some(upkeep) = &self.inner.upkeep {
            self.inner.usage.flush(upkeep, chrono::Utc::now()).await;
        }
    }

    fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// Count a valid token refused by a permission check.
    fn count_forbidden(&self) {
        self.inner.metrics.verification("forbidden");
    }

    /// The key ring now.
    pub fn keys(&self) -> Arc<KeyRing> {
        self.inner.ring.load()
    }

    /// Reload the key folder `dir` and swap the new ring in for the verifier, the issuer and
    /// `/v1/keys` at once. A folder that does not load, or (on an issuer) leaves no key to sign
    /// with, is refused and the ring in use stays. Returns the new ring.
    pub fn reload_keys(&self, dir: &std::path::Path) -> Result<Arc<KeyRing>, KeyError> {
        let ring = Arc::new(KeyRing::load_dir(dir)?);
        if !self.verify_only() && ring.signing().is_none() {
            return Err(KeyError::NoSigningKey);
        }
        self.inner.ring.replace(ring.clone());
        Ok(ring)
    }

    /// The state mirror.
    pub fn mirror(&self) -> &StateMirror {
        &self.inner.mirror
    }

    /// Whether the store answers; an instance without one has nothing to check.
    async fn store_answers(&self) -> Result<(), crate::lifecycle::LifecycleError> {
        match &self.inner.upkeep {
            Some(upkeep) => upkeep.ping().await,
            None => Ok(()),
        }
    }

    fn tokens(&self) -> Option<&Arc<Tokens>> {
        self.inner.tokens.as_ref()
    }
}

/// Every route of the API with its documentation: an issuer serves the management API and the
/// state feed, a verify-only instance only what verifies. `routes!` routes each handler for the
/// methods and path of its `#[utoipa::path]` and documents it there, so nothing is served
/// undocumented.
fn api(verify_only: bool) -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(verify::forward_auth))
        .routes(routes!(verify::forward_auth_slash))
        .routes(routes!(verify::forward_auth_prefixed))
        .routes(routes!(verify::verify))
        .routes(routes!(verify::keys))
        .routes(routes!(oauth::introspect))
        .routes(routes!(handlers::healthz))
        .routes(routes!(handlers::readyz))
        .routes(routes!(openapi::document))
        .routes(routes!(metrics::metrics));
    if !verify_only {
        api = api
            .routes(routes!(handlers::create, handlers::list))
            .routes(routes!(handlers::show, handlers::update, handlers::delete))
            .routes(routes!(handlers::regenerate))
            .routes(routes!(handlers::audit))
            .routes(routes!(deliveries::deliveries))
            .routes(routes!(state_feed::state))
            .routes(routes!(oauth::revoke))
            .routes(routes!(oauth::leaks))
            .routes(routes!(oauth::metadata));
    }
    api
}

/// The OpenAPI document of what [`router`] serves, on an issuer or a verify-only instance.
pub fn api_document(verify_only: bool) -> utoipa::openapi::OpenApi {
    openapi::finish(api(verify_only).into_openapi())
}

/// Every route of the service: the API, the web page on an issuer (a client of the API, not
/// part of it), and the fallbacks: 404 for any other path, 405 for any other method.
pub fn router(state: AppState) -> Router {
    let (mut router, _) = api(state.verify_only()).split_for_parts();
    if !state.verify_only() {
        router = router.merge(ui::routes());
    }
    router
        .fallback(handlers::no_route)
        .method_not_allowed_fallback(handlers::wrong_method)
        .with_state(state)
}

/// [`router`] with every request counted by route and status: what [`serve`] runs. The
/// counting wraps the whole router rather than each route, so a request pays for one wrapper
/// and no allocation (a `Router::layer` boxes each route's service and future again).
pub fn app(state: AppState) -> Track<Router> {
    Track::new(router(state.clone()), state)
}

/// Serve `state` on `listener` until `shutdown` completes, then finish the requests in flight.
/// Also, at start and then every minute, drops state entries that can no longer matter and
/// adds the expiry notices due; and delivers events to the webhooks, when any are configured.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let pruner = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PRUNE_EVERY);
            loop {
                every.tick().await;
                let Some(tokens) = state.tokens() else {
                    return;
                };
                match tokens.housekeeping().prune().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(dropped = n, "pruned token state entries"),
                    Err(e) => tracing::warn!(error = %e, "could not prune the token state"),
                }
                let thresholds = &state.inner.notify_expiring;
                match tokens.housekeeping().send_expiry_notices(thresholds).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(notices = n, "added expiry notices to the outbox"),
                    Err(e) => tracing::warn!(error = %e, "could not add expiry notices"),
                }
            }
        })
    };
    let outlook = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SUPER_ADMIN_CHECK_EVERY);
            loop {
                every.tick().await;
                let Some(tokens) = state.tokens() else {
                    return;
                };
                warn_if_super_admins_expire(tokens.housekeeping()).await;
            }
        })
    };
    let deliverer = state
        .inner
        .deliverer
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .map(|deliverer| tokio::spawn(deliverer.run()));
    let usage = {
        let state = state.clone();
        tokio::spawn(async move {
            // The first write is one period in: a tick at start would race the first requests
            // and write their use early.
            let period = state.inner.usage_flush;
            let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                every.tick().await;
                state.flush_usage().await;
            }
        })
    };
    let app = ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app(
        state.clone()
    ));
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    pruner.abort();
    outlook.abort();
    usage.abort();
    if let Some(deliverer) = deliverer {
        // An event mid-delivery is leased: another issuer, or this one when it starts
        // again, delivers it once the lease ends.
        deliverer.abort();
    }
    // The uses noted since the last write, so a clean stop loses none.
    state.flush_usage().await;
    result
}

/// Resolves on Ctrl-C or SIGTERM: the shutdown signal `tessera serve` passes to [`serve`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // No SIGTERM handler: Ctrl-C still works.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Reload the key folder `dir` on every SIGHUP, for as long as the runtime runs: the new ring
/// replaces the old one for the verifier, the issuer and `/v1/keys` at once. A reload that
/// fails is logged as an ERROR and keeps the ring in use. The handler is installed before this
/// returns, so a SIGHUP that comes after it can no longer end the process.
pub fn reload_keys_on_hangup(state: AppState, dir: std::path::PathBuf) -> std::io::Result<()> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let (state, dir) = (state.clone(), dir.clone());
            let reloaded = tokio::task::spawn_blocking(move || state.reload_keys(&dir)).await;
            match reloaded {
                Ok(Ok(ring)) => tracing::info!(
                    keys = ring.len(),
                    retired = ring.retired().count(),
                    signing = %ring
                        .signing()
                        .map_or_else(|| "none here".to_owned(), |k| k.public.id().to_string()),
                    staged = %ring
                        .iter()
                        .filter(|(_, s)| *s == crate::keys::KeyStatus::Staged)
                        .map(|(k, _)| k.public.id().to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    "SIGHUP: reloaded the key folder"
                ),
                Ok(Err(e)) => tracing::error!(
                    error = %e,
                    "SIGHUP: the key folder did not reload; still using the keys loaded before"
                ),
                Err(e) => tracing::error!(
                    error = %e,
                    "SIGHUP: the key folder did not reload; still using the keys loaded before"
                ),
            }
        }
    });
    Ok(())
}

/// Log a WARN when no live super-admin exists, or when every one expires within
/// [`SUPER_ADMIN_WARN_DAYS`]: once they are gone, nobody can manage tokens until a restart
/// with `--bootstrap-token`.
async fn warn_if_super_admins_expire(service: &crate::lifecycle::Service) {
    let live = match service.live_super_admins().await {
        Ok(live) => live,
        Err(e) => {
            tracing::warn!(error = %e, "could not check when the super-admins expire");
            return;
        }
    };
    let now = service.now();
    match last_super_admin_expiry(&live) {
        LastExpiry::Never => {}
        LastExpiry::NoneLive => tracing::warn!(
            "no live super-admin: nobody can manage tokens; restart with --bootstrap-token FILE \
             to make one"
        ),
        LastExpiry::At(at) if at - now <= chrono::Duration::days(SUPER_ADMIN_WARN_DAYS) => {
            tracing::warn!(
                expires = %crate::claims::format_time(&at),
                days_left = (at - now).num_days(),
                "the last live super-admin expires soon: regenerate it or make another, or \
                 nobody can manage tokens after that"
            );
        }
        LastExpiry::At(_) => {}
    }
}

/// When the last of these super-admins expires.
enum LastExpiry {
    NoneLive,
    Never,
    At(chrono::DateTime<chrono::Utc>),
}

fn last_super_admin_expiry(live: &[crate::model::TokenRecord]) -> LastExpiry {
    let mut last = LastExpiry::NoneLive;
    for record in live {
        last = match (last, record.expires_at) {
            (LastExpiry::Never, _) | (_, None) => LastExpiry::Never,
            (LastExpiry::At(a), Some(b)) => LastExpiry::At(a.max(b)),
            (LastExpiry::NoneLive, Some(b)) => LastExpiry::At(b),
        };
    }
    last
}
