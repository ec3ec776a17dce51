//! The composition root: configuration in, a running server's parts out. It loads (or, on a
//! first start with the embedded store, makes) the keys, opens the store, builds the issuer and
//! the token service, makes the first super-admin token when asked, starts the state mirror,
//! and assembles the [`AppState`] the HTTP service runs on. Nothing else wires these together;
//! the command line only turns flags, variables and a config file into a [`ServerConfig`].

use crate::delivery::{Deliverer, DeliveryOptions};
use crate::http_state_source::HttpStateSource;
use crate::issuer::Issuer;
use crate::keys::{self, KeyError, KeyId, KeyRing, LiveRing};
use crate::lifecycle::{
    Caller, Expiry, NewToken, NoticeThreshold, Policy, Service, TokenService, Upkeep,
};
use crate::mirror::{MirrorOptions, StateMirror};
use crate::server::{AppState, Parts, Tokens};
use crate::store::{AnyStore, StoreError, StoreOptions};
use crate::verifier::{Verifier, DEFAULT_ISSUER, DEFAULT_LEEWAY_SECS};
use crate::webhook::WebhookSecret;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What a server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The key folder.
    pub keys_dir: PathBuf,
    /// The store URL.
    pub store_url: String,
    /// Options of the store beyond its URL (`--redis-min-replicas`, `--redis-wait-timeout`).
    pub store_options: StoreOptions,
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
    /// Bad signatures a client may send in a window before its checks are refused for a
    /// cool-down (0: no budget).
    pub bad_signature_budget: u32,
    /// Verify only: no secret key, no management API; the token state comes from
    /// [`ServerConfig::state_from`] or, when that is `None`, from a shared store.
    pub verify_only: bool,
    /// For a verify-only instance: an issuer's base URL whose `/v1/state` to follow, with a
    /// `tessera` `read-state` token to read it.
    pub state_from: Option<(String, String)>,
    /// On an issuer with no live super-admin: make one and write it to this file (mode 0600).
    pub bootstrap_token: Option<PathBuf>,
    /// The lifetime of that token.
    pub bootstrap_expires: Expiry,
    /// Receivers of an event of every token change (issuers only).
    pub webhooks: Vec<String>,
    /// The secret the events are signed with; needed when `webhooks` is not empty.
    pub webhook_secret: Option<Arc<WebhookSecret>>,
    /// How long before expiry `token.expiring` notices go out (default 7 days and 1 day).
    pub notify_expiring: Vec<NoticeThreshold>,
}

/// The lifetime of a token made by `--bootstrap-token`, unless `--bootstrap-expires` says.
pub const BOOTSTRAP_EXPIRES_DAYS: u16 = 90;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            keys_dir: PathBuf::from("keys"),
            store_url: crate::store::DEFAULT_STORE_URL.to_owned(),
            store_options: StoreOptions::default(),
            issuer: DEFAULT_ISSUER.to_owned(),
            leeway: chrono::Duration::seconds(DEFAULT_LEEWAY_SECS),
            staleness_bound: Duration::from_secs(30),
            fail_open: false,
            policy: Policy::default(),
            trusted_proxies: Vec::new(),
            usage_flush: Duration::from_secs(5),
            bad_signature_budget: crate::server::budget::DEFAULT_LIMIT,
            verify_only: false,
            state_from: None,
            bootstrap_token: None,
            bootstrap_expires: Expiry::Days(BOOTSTRAP_EXPIRES_DAYS),
            webhooks: Vec::new(),
            webhook_secret: None,
            notify_expiring: crate::lifecycle::default_thresholds(),
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
    /// The first token could not be made or written.
    #[error("{0}")]
    Bootstrap(String),
}

/// What happened while starting, for the operator.
#[derive(Debug, Default)]
pub struct Startup {
    /// The key id generated on a first start, if one was.
    pub generated_key: Option<String>,
    /// The super-admin token made for `--bootstrap-token`, because none was live.
    pub bootstrapped: Option<Bootstrapped>,
    /// An issuer whose store holds no token at all, and was not asked to make one.
    pub no_tokens: bool,
}

/// A super-admin token made because none was live.
#[derive(Debug, Clone)]
pub struct Bootstrapped {
    /// Its id.
    pub id: uuid::Uuid,
    /// Its name: `admin`, or `admin-<date>-<time>` when that is taken.
    pub name: String,
    /// When it expires.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The file that holds it.
    pub path: PathBuf,
}

/// Open the store and keys named by `config`, start following the token state.
///
/// On a first start with the embedded store and a key folder that is missing or empty, a
/// key pair is generated (and reported in [`Startup`]). With Redis, where several instances
/// must share keys, a missing key is an error that says how to make and distribute one.
pub async fn open(config: &ServerConfig) -> Result<(AppState, Startup), StartError> {
    if config.verify_only {
        if !config.webhooks.is_empty() {
            return Err(StartError::Config(
                "--webhook is for an issuer: a verify-only instance makes no changes to \
                 announce"
                    .into(),
            ));
        }
        return Ok((open_verify_only(config).await?, Startup::default()));
    }
    if config.state_from.is_some() {
        return Err(StartError::Config(
            "--state-from is for a verify-only instance (--verify-only); an issuer follows \
             its own store"
                .into(),
        ));
    }
    let store = Arc::new(AnyStore::open_with(&config.store_url, config.store_options).await?);
    let deliverer = deliverer(config, &store)?;
    let mut startup = Startup::default();
    let (ring, generated) = signing_keys(&config.keys_dir, &store)?;
    startup.generated_key = generated.map(|id| id.to_string());
    let ring = Arc::new(LiveRing::new(Arc::new(ring)));
    let issuer = Issuer::live(ring.clone())
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
    match &config.bootstrap_token {
        Some(path) => {
            startup.bootstrapped = bootstrap(&service, path, config.bootstrap_expires).await?
        }
        None => startup.no_tokens = service.list().await.is_ok_and(|l| l.is_empty()),
    }
    let mirror = StateMirror::start(store.clone(), mirror_options(config)).await?;
    let state = assemble(
        config,
        Some(Tokens::new(service)),
        mirror,
        ring,
        Some(store),
        deliverer,
    );
    Ok((state, startup))
}

/// A verifier at the edge: public keys suffice, the token state comes from an issuer's
/// `/v1/state` or from a shared (Redis) store.
async fn open_verify_only(config: &ServerConfig) -> Result<AppState, StartError> {
    let ring = Arc::new(LiveRing::new(Arc::new(KeyRing::load_dir(
        &config.keys_dir,
    )?)));
    match &config.state_from {
        Some((url, token)) => {
            let offline = Verifier::new(ring.load()).with_issuer(config.issuer.clone());
            if offline.verify(token).is_ok_and(|t| t.is_super_admin()) {
                tracing::warn!(
                    "the state token (TESSERA_STATE_TOKEN) is a super-admin: whoever takes this \
                     edge can manage every token; give it a token with only \
                     {{\"resource\": \"tessera\", \"role\": \"read-state\"}}"
                );
            }
            let source = Arc::new(HttpStateSource::new(url, token)?);
            let mirror = StateMirror::start(source, mirror_options(config)).await?;
            Ok(assemble(config, None, mirror, ring, None, None))
        }
        None => {
            let store =
                Arc::new(AnyStore::open_with(&config.store_url, config.store_options).await?);
            if matches!(*store, AnyStore::Embedded(_)) {
                return Err(StartError::Config(
                    "a verify-only instance follows a shared store (--store redis://...) or \
                     an issuer (--state-from URL); the embedded store belongs to the one \
                     process that issues"
                        .into(),
                ));
            }
            let mirror = StateMirror::start(store.clone(), mirror_options(config)).await?;
            Ok(assemble(config, None, mirror, ring, Some(store), None))
        }
    }
}

/// The keys of an issuer in `dir`. On the first use of the embedded store, a folder that is
/// missing or empty gets a new key pair (its id is returned); a shared store needs the same
/// keys on every instance, so there a missing key is an error that says how to make them.
pub fn signing_keys(dir: &Path, store: &AnyStore) -> Result<(KeyRing, Option<KeyId>), StartError> {
    match KeyRing::load_dir(dir) {
        Err(KeyError::NoFolder(_) | KeyError::Empty(_))
            if matches!(store, AnyStore::Embedded(_)) =>
        {
            let made = keys::generate_into(dir, chrono::Utc::now())?;
            Ok((KeyRing::load_dir(dir)?, Some(made.id)))
        }
        Err(e @ (KeyError::NoFolder(_) | KeyError::Empty(_))) => {
            Err(StartError::NoSigningKey(format!(
                "{e}; with a shared store every instance needs the same keys: generate them \
                 once and copy the key folder to each instance"
            )))
        }
        other => Ok((other?, None)),
    }
}

/// When no live super-admin exists (none was ever made, or the last one expired), make one
/// expiring per `expires` and write it to `path`, readable by the owner only. `None` when a live
/// super-admin exists. The token never goes to the log.
///
/// The token goes to a new file beside `path` first, which then replaces `path` (it can only
/// hold a token that is no longer live). A token whose file cannot be written is withdrawn, so
/// no super-admin exists that nobody holds, and the next start tries again.
async fn bootstrap(
    service: &Service,
    path: &Path,
    expires: Expiry,
) -> Result<Option<Bootstrapped>, StartError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let failed = |e: &dyn std::fmt::Display| {
        StartError::Bootstrap(format!("cannot make a super-admin token: {e}"))
    };
    if !service
        .live_super_admins()
        .await
        .map_err(|e| failed(&e))?
        .is_empty()
    {
        return Ok(None);
    }
    let file_name = path
        .file_name()
        .ok_or_else(|| failed(&format_args!("{} names no file", path.display())))?;
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let cannot_write = |e: &dyn std::fmt::Display| {
        StartError::Bootstrap(format!(
            "cannot write the super-admin token to {}: {e}",
            path.display()
        ))
    };
    // A leftover from a start that died before the rename holds a token never handed out.
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&partial)
        .map_err(|e| cannot_write(&e))?;
    let name = free_name(service).await.map_err(|e| failed(&e))?;
    let new = NewToken {
        name: name.clone(),
        description: format!(
            "a super-admin token made by `tessera serve --bootstrap-token` because none was \
             live, written to {}",
            file_name.to_string_lossy()
        ),
        expires,
        permissions: crate::Permissions::SuperAdmin,
        allowed_cidrs: Default::default(),
    };
    let minted = service
        .create(&Caller::local(), new)
        .await
        .map_err(|e| failed(&e))?;
    let written = file
        .write_all(format!("{}\n", minted.token.expose()).as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&partial, path))
        .and_then(|()| sync_parent(path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        if let Err(undo) = service.withdraw(&Caller::local(), minted.record.id).await {
            tracing::error!(
                id = %minted.record.id,
                error = %undo,
                "a super-admin token whose file could not be written is still live; delete it"
            );
        }
        return Err(cannot_write(&e));
    }
    Ok(Some(Bootstrapped {
        id: minted.record.id,
        name,
        expires_at: minted.record.expires_at,
        path: path.to_owned(),
    }))
}

/// `admin`, or when a token has that name already, `admin-<date>-<time>`.
async fn free_name(service: &Service) -> Result<String, crate::lifecycle::LifecycleError> {
    if service.get_by_name("admin").await?.is_none() {
        return Ok("admin".to_owned());
    }
    Ok(format!("admin-{}", service.now().format("%Y%m%d-%H%M%S")))
}

/// Make a rename in the folder of `path` durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => std::fs::File::open(parent)?.sync_all(),
        None => std::fs::File::open(".")?.sync_all(),
    }
}

fn mirror_options(config: &ServerConfig) -> MirrorOptions {
    MirrorOptions {
        bound: config.staleness_bound,
        fail_open: config.fail_open,
        ..MirrorOptions::default()
    }
}

/// The deliverer of the store's events to the configured webhooks, if any are.
fn deliverer(
    config: &ServerConfig,
    store: &Arc<AnyStore>,
) -> Result<Option<Deliverer<AnyStore>>, StartError> {
    if config.webhooks.is_empty() {
        return Ok(None);
    }
    let secret = config.webhook_secret.clone().ok_or_else(|| {
        StartError::Config(
            "--webhook needs the signing secret in TESSERA_WEBHOOK_SECRET (or webhook-secret \
             in the config file): whsec_ and the base64 of 16 to 64 random bytes"
                .into(),
        )
    })?;
    Deliverer::new(
        store.clone(),
        &config.webhooks,
        secret,
        Arc::new(crate::clock::SystemClock),
        DeliveryOptions::default(),
    )
    .map(Some)
    .map_err(|e| StartError::Config(e.to_string()))
}

fn assemble(
    config: &ServerConfig,
    tokens: Option<Tokens>,
    mirror: StateMirror,
    ring: Arc<LiveRing>,
    store: Option<Arc<AnyStore>>,
    deliverer: Option<Deliverer<AnyStore>>,
) -> AppState {
    let upkeep = store.map(Upkeep::new);
    let verifier = Verifier::live(ring.clone())
        .with_state(mirror.state())
        .with_issuer(config.issuer.clone())
        .with_leeway(config.leeway);
    AppState::new(Parts {
        tokens,
        verifier,
        mirror,
        ring,
        upkeep,
        trusted_proxies: config.trusted_proxies.clone(),
        usage_flush: config.usage_flush,
        bad_signature_budget: config.bad_signature_budget,
        deliverer,
        notify_expiring: config.notify_expiring.clone(),
    })
}
