//! The composition root: configuration in, a running server's parts out. It loads (or, on a
//! first start with the embedded store, makes) the keys, opens the store, builds the issuer and
//! the token service, makes the first super-admin token when asked, starts the state mirror,
//! and assembles the [`AppState`] the HTTP service runs on. Nothing else wires these together;
//! the command line only turns flags, variables and a config file into a [`ServerConfig`].

use crate::issuer::Issuer;
use crate::keys::{self, KeyError, KeyId, KeyRing};
use crate::lifecycle::{Caller, Expiry, NewToken, Policy, TokenService};
use crate::mirror::{MirrorOptions, StateMirror};
use crate::server::{AppState, HttpStateSource, Parts, Tokens};
use crate::store::{AnyStore, StoreError};
use crate::verifier::{Verifier, DEFAULT_ISSUER, DEFAULT_LEEWAY_SECS};
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
    /// On an issuer whose store holds no token: make the first super-admin token and write it
    /// to this new file (mode 0600).
    pub bootstrap_token: Option<PathBuf>,
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
            bootstrap_token: None,
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
    /// The first super-admin token made for `--bootstrap-token`: its id and file.
    pub bootstrapped: Option<(uuid::Uuid, PathBuf)>,
    /// An issuer whose store holds no token at all, and was not asked to make one.
    pub no_tokens: bool,
}

/// Open the store and keys named by `config`, start following the token state.
///
/// On a first start with the embedded store and a key folder that is missing or empty, a
/// key pair is generated (and reported in [`Startup`]). With Redis, where several instances
/// must share keys, a missing key is an error that says how to make and distribute one.
pub async fn open(config: &ServerConfig) -> Result<(AppState, Startup), StartError> {
    if config.verify_only {
        return Ok((open_verify_only(config).await?, Startup::default()));
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
    let (ring, generated) = signing_keys(&config.keys_dir, &store)?;
    startup.generated_key = generated.map(|id| id.to_string());
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
    match &config.bootstrap_token {
        Some(path) => startup.bootstrapped = bootstrap(&service, path).await?,
        None => startup.no_tokens = service.list().await.is_ok_and(|l| l.is_empty()),
    }
    let mirror = StateMirror::start(store.clone(), mirror_options(config)).await?;
    let state = assemble(
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
async fn open_verify_only(config: &ServerConfig) -> Result<AppState, StartError> {
    let ring = Arc::new(KeyRing::load_dir(&config.keys_dir)?);
    match &config.state_from {
        Some((url, token)) => {
            let source = Arc::new(HttpStateSource::new(url, token)?);
            let mirror = StateMirror::start(source, mirror_options(config)).await?;
            Ok(assemble(config, None, mirror, ring, None))
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
            Ok(assemble(config, None, mirror, ring, Some(store)))
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

/// When the store holds no token at all, make the first super-admin token, named `admin`,
/// expiring in 30 days, and write it to a new file at `path` that only the owner can read.
/// `None` when tokens exist already. The token never goes to the log.
async fn bootstrap(
    service: &TokenService<AnyStore>,
    path: &Path,
) -> Result<Option<(uuid::Uuid, PathBuf)>, StartError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let failed = |e: &dyn std::fmt::Display| {
        StartError::Bootstrap(format!("cannot make the first token: {e}"))
    };
    if !service.list().await.map_err(|e| failed(&e))?.is_empty() {
        return Ok(None);
    }
    let new = NewToken {
        name: "admin".into(),
        description: "the first super-admin token, made by `tessera serve --bootstrap-token`"
            .into(),
        expires: Expiry::Days(30),
        permissions: crate::Permissions::SuperAdmin,
    };
    let minted = service
        .create(&Caller::local(), new)
        .await
        .map_err(|e| failed(&e))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            StartError::Bootstrap(format!(
                "the first token was made, but {} cannot be written: {e}; delete the token \
                 `admin` with `tessera token delete admin` once the server is stopped",
                path.display()
            ))
        })?;
    file.write_all(format!("{}\n", minted.token.expose()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| StartError::Bootstrap(format!("cannot write {}: {e}", path.display())))?;
    Ok(Some((minted.record.id, path.to_owned())))
}

fn mirror_options(config: &ServerConfig) -> MirrorOptions {
    MirrorOptions {
        bound: config.staleness_bound,
        fail_open: config.fail_open,
        ..MirrorOptions::default()
    }
}

fn assemble(
    config: &ServerConfig,
    tokens: Option<Tokens>,
    mirror: StateMirror,
    ring: Arc<KeyRing>,
    store: Option<Arc<AnyStore>>,
) -> AppState {
    let verifier = Verifier::new(ring.clone())
        .with_state(mirror.state())
        .with_issuer(config.issuer.clone())
        .with_leeway(config.leeway);
    AppState::new(Parts {
        tokens,
        verifier,
        mirror,
        ring,
        store,
        trusted_proxies: config.trusted_proxies.clone(),
        usage_flush: config.usage_flush,
    })
}
