//! The HTTP service (feature `server`): the management API, the gateway forward-auth endpoint,
//! introspection, the public keys and health, on axum.
//!
//! | module | owns |
//! |---|---|
//! | `auth` | the token a request carries, its verification, the super-admin gate |
//! | `error` | [`ApiError`]: the JSON error shape and the status of every code |
//! | `handlers` | the management endpoints and health |
//! | `metrics` | Prometheus counters and `/metrics` |
//! | `openapi` | `/openapi.json`: what the handlers' annotations do not say |
//! | `state_feed` | `GET /v1/state` and the HTTP state source of verify-only instances |
//! | `ui` | the API tokens web page at `/`, a client of the `/v1` API like any other |
//! | `usage` | last use of each token, noted in memory and written in batches |
//! | `verify` | forward authentication, introspection and the public keys |
//!
//! [`router`] is a plain function of an [`AppState`], so most tests drive it in process;
//! [`serve`] takes the listener and the shutdown signal from its caller, so tests bind port 0.
//! The state holds the token service (reachable only through the super-admin extractor), a
//! verifier whose token state is a [`StateMirror`] following the store's feed, and the keys.

mod auth;
mod error;
mod handlers;
mod metrics;
mod openapi;
mod state_feed;
mod ui;
mod usage;
mod verify;

pub use auth::{client_address, presented, Admin, Authenticated, ClientAddr};
pub use error::ApiError;
pub use metrics::Track;
pub use state_feed::HttpStateSource;

use crate::issuer::Issuer;
use crate::keys::{self, KeyError, KeyRing};
use crate::lifecycle::{Caller, Expiry, LifecycleError, Minted, NewToken, Policy, TokenService};
use crate::mirror::{MirrorOptions, StateMirror};
use crate::store::{AnyStore, StoreError, TokenStore};
use crate::verifier::{Verifier, DEFAULT_ISSUER, DEFAULT_LEEWAY_SECS};
use crate::{VerifiedToken, VerifyError};
use auth::Tokens;
use axum::extract::Request;
use axum::{Router, ServiceExt};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// How often the server drops state entries that can no longer matter.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What a server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The key folder.
    pub keys_dir: PathBuf,
    /// The store URL.
    pub store_url: String,
    /// The issuer written into and required of tokens.
    pub issuer: String,
    /// Clock skew tolerated on token times.
    pub leeway: chrono::Duration,
    /// How long the token state may go unheard before verification fails closed.
    pub staleness_bound: Duration,
    /// Keep verifying from the last known state past the bound (logged loudly).
    pub fail_open: bool,
    /// Lifetime rules for new and regenerated tokens.
    pub policy: Policy,
    /// Proxies whose `X-Forwarded-For` names the client (their own address never counts as
    /// the client's).
    pub trusted_proxies: Vec<IpAddr>,
    /// How often the last use of tokens is written to the store.
    pub usage_flush: Duration,
    /// Verify only: no secret key, no management API; the token state comes from
    /// [`ServerConfig::state_from`] or, when that is `None`, from a shared store.
    pub verify_only: bool,
    /// For a verify-only instance: an issuer's base URL whose `/v1/state` to follow, with a
    /// super-admin token to read it.
    pub state_from: Option<(String, String)>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            keys_dir: PathBuf::from("keys"),
            store_url: crate::store::DEFAULT_STORE_URL.to_owned(),
            issuer: DEFAULT_ISSUER.to_owned(),
            leeway: chrono::Duration::seconds(DEFAULT_LEEWAY_SECS),
            staleness_bound: Duration::from_secs(30),
            fail_open: false,
            policy: Policy::default(),
            trusted_proxies: Vec::new(),
            usage_flush: Duration::from_secs(5),
            verify_only: false,
            state_from: None,
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The keys could not be loaded or made.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The key folder has no secret key, so nothing can sign.
    #[error("{0}")]
    NoSigningKey(String),
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The options do not fit together.
    #[error("{0}")]
    Config(String),
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
    verifier: Verifier,
    mirror: StateMirror,
    ring: Arc<KeyRing>,
    /// `None` on a verify-only instance that follows an issuer over HTTP.
    store: Option<Arc<AnyStore>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("mirror", &self.inner.mirror)
            .finish_non_exhaustive()
    }
}

/// What happened while opening the state, for the operator.
#[derive(Debug, Default)]
pub struct Startup {
    /// The key id generated on a first start, if one was.
    pub generated_key: Option<String>,
}

impl AppState {
    /// Open the store and keys named by `config`, start following the token state.
    ///
    /// On a first start with the embedded store and a key folder that is missing or empty, a
    /// key pair is generated (and reported in [`Startup`]). With Redis, where several instances
    /// must share keys, a missing key is an error that says how to make and distribute one.
    pub async fn open(config: &ServerConfig) -> Result<(Self, Startup), StartError> {
        if config.verify_only {
            return Ok((Self::open_verify_only(config).await?, Startup::default()));
        }
        if config.state_from.is_some() {
            return Err(StartError::Config(
                "--state-from is for a verify-only instance (--verify-only); an issuer follows \
                 its own store"
                    .into(),
            ));
        }
        let store = Arc::new(AnyStore::open(&config.store_url).await?);
        let mut startup = Startup::default();
        let ring = match KeyRing::load_dir(&config.keys_dir) {
            Err(KeyError::NoFolder(_) | KeyError::Empty(_))
                if matches!(*store, AnyStore::Embedded(_)) =>
            {
                let made = keys::generate_into(&config.keys_dir, chrono::Utc::now())?;
                startup.generated_key = Some(made.id.to_string());
                KeyRing::load_dir(&config.keys_dir)?
            }
            Err(e @ (KeyError::NoFolder(_) | KeyError::Empty(_))) => {
                return Err(StartError::NoSigningKey(format!(
                    "{e}; with a shared store every instance needs the same keys: generate them \
                     once and copy the key folder to each instance"
                )))
            }
            other => other?,
        };
        let ring = Arc::new(ring);
        let issuer = Issuer::new(ring.clone())
            .map_err(|_| {
                StartError::NoSigningKey(format!(
                    "no secret key in {}, so no token can be signed; create one with `tessera \
                     keys generate --keys {}`, or run a verifier with --verify-only",
                    config.keys_dir.display(),
                    config.keys_dir.display()
                ))
            })?
            .with_issuer(config.issuer.clone());
        let service = TokenService::new(store.clone(), issuer).with_policy(config.policy);
        let mirror = StateMirror::start(store.clone(), mirror_options(config)).await?;
        let state = Self::assemble(
            config,
            Some(Tokens::new(service)),
            mirror,
            ring,
            Some(store),
        );
        Ok((state, startup))
    }

    /// A verifier at the edge: public keys suffice, the token state comes from an issuer's
    /// `/v1/state` or from a shared (Redis) store.
    async fn open_verify_only(config: &ServerConfig) -> Result<Self, StartError> {
        let ring = Arc::new(KeyRing::load_dir(&config.keys_dir)?);
        match &config.state_from {
            Some((url, token)) => {
                let source = Arc::new(HttpStateSource::new(url, token)?);
                let mirror = StateMirror::start(source, mirror_options(config)).await?;
                Ok(Self::assemble(config, None, mirror, ring, None))
            }
            None => {
                let store = Arc::new(AnyStore::open(&config.store_url).await?);
                if matches!(*store, AnyStore::Embedded(_)) {
                    return Err(StartError::Config(
                        "a verify-only instance follows a shared store (--store redis://...) or \
                         an issuer (--state-from URL); the embedded store belongs to the one \
                         process that issues"
                            .into(),
                    ));
                }
                let mirror = StateMirror::start(store.clone(), mirror_options(config)).await?;
                Ok(Self::assemble(config, None, mirror, ring, Some(store)))
            }
        }
    }

    fn assemble(
        config: &ServerConfig,
        tokens: Option<Tokens>,
        mirror: StateMirror,
        ring: Arc<KeyRing>,
        store: Option<Arc<AnyStore>>,
    ) -> Self {
        let verifier = Verifier::new(ring.clone())
            .with_state(mirror.state())
            .with_issuer(config.issuer.clone())
            .with_leeway(config.leeway);
        Self {
            inner: Arc::new(Inner {
                tokens: tokens.map(Arc::new),
                metrics: metrics::Metrics::default(),
                usage: usage::UsageRecorder::default(),
                trusted_proxies: config.trusted_proxies.clone(),
                usage_flush: config.usage_flush,
                verifier,
                mirror,
                ring,
                store,
            }),
        }
    }

    /// Whether this instance only verifies (no management API).
    pub fn verify_only(&self) -> bool {
        self.inner.tokens.is_none()
    }

    /// On an issuer whose store holds no token at all, create the first super-admin token,
    /// named `admin`, expiring in 30 days, for `caller`; `None` when there are tokens already
    /// (or this instance only verifies). The caller hands the token over once.
    pub async fn bootstrap_admin(&self, caller: &Caller) -> Result<Option<Minted>, LifecycleError> {
        let Some(tokens) = self.tokens() else {
            return Ok(None);
        };
        let service = tokens.housekeeping();
        if !service.list().await?.is_empty() {
            return Ok(None);
        }
        let new = NewToken {
            name: "admin".into(),
            description: "the first super-admin token, made by `tessera serve --bootstrap-token`"
                .into(),
            expires: Expiry::Days(30),
            permissions: crate::Permissions::SuperAdmin,
        };
        service.create(caller, new).await.map(Some)
    }

    /// The verifier, following the store's token state.
    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    /// Verify a token presented to the server by the client at `from`: count the outcome, and
    /// note the use of an accepted token (written to the store later, in a batch).
    pub fn verify_from(
        &self,
        token: &str,
        from: Option<IpAddr>,
    ) -> Result<VerifiedToken, VerifyError> {
        let result = self.inner.verifier.verify(token);
        match &result {
            Ok(token) => {
                self.inner.metrics.verification("ok");
                self.inner.usage.note(token.id(), token.verified_at(), from);
            }
            Err(e) => self.inner.metrics.verification(e.code()),
        }
        result
    }

    /// The proxies trusted to name the client.
    pub fn trusted_proxies(&self) -> &[IpAddr] {
        &self.inner.trusted_proxies
    }

    /// Write the noted uses of tokens to the store now (an instance without a store keeps no
    /// record of use).
    pub async fn flush_usage(&self) {
        if let Some(store) = &self.inner.store {
            self.inner.usage.flush(store, chrono::Utc::now()).await;
        }
    }

    fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// Count a valid token refused by a permission check.
    fn count_forbidden(&self) {
        self.inner.metrics.verification("forbidden");
    }

    /// The key ring.
    pub fn keys(&self) -> &KeyRing {
        &self.inner.ring
    }

    /// The state mirror.
    pub fn mirror(&self) -> &StateMirror {
        &self.inner.mirror
    }

    /// The store, unless this instance follows an issuer over HTTP.
    pub fn store(&self) -> Option<&AnyStore> {
        self.inner.store.as_deref()
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
            .routes(routes!(state_feed::state));
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

fn mirror_options(config: &ServerConfig) -> MirrorOptions {
    MirrorOptions {
        bound: config.staleness_bound,
        fail_open: config.fail_open,
        ..MirrorOptions::default()
    }
}

/// Serve `state` on `listener` until `shutdown` completes, then finish the requests in flight.
/// Also drops state entries that can no longer matter, every minute.
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
            }
        })
    };
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
    usage.abort();
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

/// Whether the store answers (a cheap read); an instance without one has nothing to check.
async fn store_answers(store: Option<&AnyStore>) -> Result<(), StoreError> {
    match store {
        Some(store) => store.get(uuid::Uuid::nil()).await.map(drop),
        None => Ok(()),
    }
}
