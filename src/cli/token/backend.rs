//! Where the commands run: on a store opened here, or through a server's HTTP API.

use super::*;
use crate::store::{StoreError, StoreOptions};

/// Where the commands run: on a store opened here, or through a server's HTTP API. Both give
/// the same records and refusals, so everything after this is written once.
pub(super) enum Backend {
    Local {
        service: TokenService<AnyStore>,
        caller: Caller,
    },
    Remote(Remote),
}

impl Backend {
    /// The server `--server` names, else the store `--store` names, with the keys (for
    /// commands that sign) and the lifetime rule.
    pub(super) async fn open(
        common: &Common,
        keys: Option<&KeysDir>,
        policy: Option<&PolicyArgs>,
    ) -> Result<Self, Failure> {
        if let Some(url) = &common.remote.server {
            return Ok(Backend::Remote(Remote::from_env(&common.remote, url)?));
        }
        let service = service(&common.store, &common.replicas, keys)
            .await?
            .with_policy(policy.map(PolicyArgs::policy).unwrap_or_default());
        Ok(Backend::Local {
            service,
            caller: Caller::local(),
        })
    }

    /// Now, in whole seconds: the time statuses and relative times are shown at.
    pub(super) fn now(&self) -> DateTime<Utc> {
        match self {
            Backend::Local { service, .. } => service.now(),
            Backend::Remote(_) => Utc::now().trunc_subsecs(0),
        }
    }

    pub(super) async fn create(&self, new: NewToken) -> Result<Issued, Stop> {
        match self {
            Backend::Local { service, caller } => Ok(service.create(caller, new).await?.into()),
            Backend::Remote(remote) => remote.create(&new).await,
        }
    }

    /// Every record with `status` (all when `None`), oldest first.
    pub(super) async fn list(&self, status: Option<Status>) -> Result<Vec<TokenRecord>, Stop> {
        match self {
            Backend::Local { service, .. } => {
                let now = service.now();
                let mut records = service.list().await?;
                records.retain(|r| status.is_none_or(|s| r.status(now) == s));
                Ok(records)
            }
            Backend::Remote(remote) => remote.list(status).await,
        }
    }

    /// The token a command names, by id or by name.
    pub(super) async fn find(&self, key: &str) -> Result<TokenRecord, Stop> {
        if let Ok(id) = Uuid::parse_str(key) {
            return match self {
                Backend::Local { service, .. } => Ok(service.get(id).await?),
                Backend::Remote(remote) => remote.get(id).await,
            };
        }
        let found = match self {
            Backend::Local { service, .. } => service.get_by_name(key).await?,
            Backend::Remote(remote) => remote.get_by_name(key).await?,
        };
        // Refused as the API refuses an unknown id: `not_found`, exit 1.
        found.ok_or_else(|| Stop::Refused {
            code: "not_found".to_owned(),
            message: format!(
                "not found: no live token is named {:?} (give a name or an id; `tessera token \
                 list` shows them)",
                crate::permissions::shorten(key)
            ),
        })
    }

    pub(super) async fn update(
        &self,
        id: Uuid,
        update: TokenUpdate,
        expect: Option<u64>,
    ) -> Result<TokenRecord, Stop> {
        match self {
            Backend::Local { service, caller } => {
                Ok(service.update(caller, id, update, expect).await?)
            }
            Backend::Remote(remote) => remote.update(id, &update, expect).await,
        }
    }

    pub(super) async fn regenerate(
        &self,
        id: Uuid,
        expires: Expiry,
        allowed_cidrs: Option<CidrList>,
        expect: Option<u64>,
    ) -> Result<Issued, Stop> {
        match self {
            Backend::Local { service, caller } => Ok(service
                .regenerate_with(caller, id, expires, allowed_cidrs, expect)
                .await?
                .into()),
            Backend::Remote(remote) => {
                remote
                    .regenerate(id, expires, allowed_cidrs.as_ref(), expect)
                    .await
            }
        }
    }

    /// Delete `record`'s token; the record as it was.
    pub(super) async fn delete(
        &self,
        record: TokenRecord,
        expect: Option<u64>,
    ) -> Result<TokenRecord, Stop> {
        match self {
            Backend::Local { service, caller } => {
                Ok(service.delete(caller, record.id, expect).await?)
            }
            Backend::Remote(remote) => {
                remote.delete(record.id, expect).await?;
                Ok(record)
            }
        }
    }

    pub(super) async fn audit(&self, after: u64, limit: u64) -> Result<Vec<AuditRecord>, Stop> {
        match self {
            Backend::Local { service, .. } => {
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                Ok(service.audit(after, limit).await?)
            }
            Backend::Remote(remote) => remote.audit(after, limit).await,
        }
    }

    /// After a change on a store, drop state entries nothing can need any more. Best effort:
    /// the command's own work is done. A server does this itself.
    pub(super) async fn prune(&self) {
        if let Backend::Local { service, .. } = self {
            if let Err(e) = service.prune().await {
                eprint_line(format_args!(
                    "warning: could not prune the token state: {e}"
                ));
            }
        }
    }
}

pub(super) async fn service(
    store: &StoreArg,
    replicas: &ReplicaArgs,
    keys: Option<&KeysDir>,
) -> Result<TokenService<AnyStore>, Failure> {
    let store = Arc::new(open_store(&store.store, replicas.options(), LOCKED_FOR_TOKENS).await?);
    // Commands that sign nothing need no keys.
    let Some(dir) = keys else {
        return Ok(TokenService::without_issuer(store));
    };
    // The first use on one machine, as `tessera serve` does on a first start.
    let (ring, generated) = crate::startup::signing_keys(&dir.keys, &store)
        .map_err(|e| Failure::new(e).hint("copy the key folder from an issuer, or generate one"))?;
    if let Some(id) = generated {
        eprint_line(format_args!(
            "first use: generated the signing key {id} in {} (the secret file is mode 0600)",
            dir.keys.display()
        ));
    }
    let issuer = Issuer::new(Arc::new(ring)).map_err(|_| {
        Failure::new(format_args!(
            "no secret key in {}, so no token can be signed",
            dir.keys.display()
        ))
        .hint("create one with `tessera keys generate`")
    })?;
    Ok(TokenService::new(store, issuer))
}

/// Open the store a `--store` URL names, with an error that says what to check; `locked` is
/// the way round a store file another process holds.
pub(crate) async fn open_store(
    url: &str,
    options: StoreOptions,
    locked: &str,
) -> Result<AnyStore, Failure> {
    AnyStore::open_with(url, options).await.map_err(|e| {
        let hint = match e {
            StoreError::Locked(_) => locked,
            _ => "check --store (or TESSERA_STORE): file:PATH or redis://HOST:PORT/DB",
        };
        Failure::new(crate::redact::url(&e.to_string())).hint(hint)
    })
}

/// The way round the lock for the token commands: the server holding the file serves the
/// same commands through its management API.
const LOCKED_FOR_TOKENS: &str = "while `tessera serve` holds the store, manage tokens through \
    its management API: the same command with --server http://127.0.0.1:8080 (or \
    TESSERA_SERVER) and a super-admin token in TESSERA_TOKEN; or stop the process holding it";
