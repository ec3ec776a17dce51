//! The token lifecycle: create, list, get, update, regenerate and delete, with their rules, on
//! any [`TokenStore`].
//!
//! This module owns the rules; the store only has to be atomic. Every change is computed from
//! the record as read and committed with that record's revision as a precondition, so two
//! changes can never both apply to the same revision: a caller that named the revision it
//! expects gets [`LifecycleError::Conflict`], one that did not is retried on the fresh record.
//! That is what makes concurrent regenerations produce strictly increasing versions with
//! exactly one live token string, and concurrent updates lose nothing.
//!
//! What goes into the state map, and when it may go:
//! - update of the permissions or the networks: `perm` (plus the current `min_ver`), and
//!   `cidr` once the networks differ from those signed into the current version, so every
//!   verifier applies the new permissions and networks to the unchanged token string;
//! - regenerate: `min_ver` = the new version and no `perm` or `cidr` (the new token carries
//!   them);
//! - delete: `deleted`.
//!
//! Each entry is kept until no version it restricts could still pass an expiry check: the
//! latest expiry of any version ever issued ([`TokenRecord::issued_until`]) plus
//! [`Policy::retention_margin`], which must exceed every verifier's leeway. A token string is
//! returned once, in [`Minted`], and stored nowhere.

mod error;
mod notices;
mod request;
#[cfg(feature = "server")]
mod schema;
mod upkeep;
mod validate;

pub use error::LifecycleError;
pub use notices::{default_thresholds, NoticeThreshold};
pub use request::{
    Caller, Expiry, Minted, NewToken, Policy, RecordView, Status, TokenUpdate, EXPIRY_DAYS,
};
#[cfg(feature = "server")]
pub use schema::{AllowedCidrs, Description, Expires, TokenName};
pub use upkeep::{Service, Upkeep};
use validate::invalid;
pub use validate::{validate_description, validate_name};

use crate::cidr::CidrList;
use crate::clock::{Clock, SystemClock};
use crate::issuer::{IssueError, IssuedToken, Issuer, TokenSpec};
use crate::model::{Action, Actor, AuditEntry, AuditRecord, StateRecord, TokenRecord};
use crate::model::{FeedPage, FeedPosition, StateSnapshot};
use crate::permissions::Permissions;
use crate::store::{KeepSuperAdmin, StoreError, TokenStore, Write};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use uuid::Uuid;

/// Shortest token name.
pub const NAME_MIN: usize = 3;
/// Longest token name.
pub const NAME_MAX: usize = 50;
/// Longest description, in characters.
pub const DESCRIPTION_MAX: usize = 350;
/// How often a change is retried when another change to the same token came first and the
/// caller did not name a revision.
const MAX_ATTEMPTS: usize = 64;

/// The token lifecycle on a store.
pub struct TokenService<S> {
    store: Arc<S>,
    /// `None` for a service that only reads, deletes and edits descriptions.
    issuer: Option<Issuer>,
    clock: Arc<dyn Clock>,
    policy: Policy,
}

impl<S> fmt::Debug for TokenService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S: TokenStore> TokenService<S> {
    /// A service signing with `issuer` (its clock is replaced by the service's).
    pub fn new(store: Arc<S>, issuer: Issuer) -> Self {
        Self::build(store, Some(issuer))
    }

    /// A service without a signing key: it lists, shows, deletes and edits descriptions; what
    /// needs a signature fails with [`LifecycleError::NoSigningKey`].
    pub fn without_issuer(store: Arc<S>) -> Self {
        Self::build(store, None)
    }

    fn build(store: Arc<S>, issuer: Option<Issuer>) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Self {
            store,
            issuer: issuer.map(|i| i.with_clock(clock.clone())),
            clock,
            policy: Policy::default(),
        }
    }

    /// Read time from `clock` (for the issuer too).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.issuer = self.issuer.map(|i| i.with_clock(clock.clone()));
        self.clock = clock;
        self
    }

    fn sign(&self, spec: &TokenSpec<'_>) -> Result<IssuedToken, LifecycleError> {
        let issuer = self.issuer.as_ref().ok_or(LifecycleError::NoSigningKey)?;
        Ok(issuer.issue(spec)?)
    }

    /// Apply `policy`.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The current time by the service's clock, in whole seconds.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(0)
    }

    /// Create a token; returns the token string (once) and the record.
    pub async fn create(&self, caller: &Caller, new: NewToken) -> Result<Minted, LifecycleError> {
        let name = new.name.clone();
        let result = self.try_create(caller, new).await;
        self.audited(caller, Action::Create, None, Some(name), result)
            .await
    }

    async fn try_create(&self, caller: &Caller, new: NewToken) -> Result<Minted, LifecycleError> {
        validate_name(&new.name)?;
        validate_description(&new.description)?;
        new.permissions
            .validate()
            .map_err(|e| invalid("permissions", e.to_string()))?;
        let now = self.now();
        let expires_at = self.resolve(new.expires, now)?;
        let id = Uuid::new_v4();
        let token = self.sign(&TokenSpec {
            id,
            version: 1,
            name: &new.name,
            expires_at,
            permissions: &new.permissions,
            allowed_cidrs: &new.allowed_cidrs,
        })?;
        let record = TokenRecord {
            id,
            name: new.name,
            description: new.description,
            permissions: new.permissions,
            allowed_cidrs: new.allowed_cidrs,
            cidrs_updated: false,
            version: 1,
            revision: 1,
            created_at: now,
            created_by: caller.actor.to_string(),
            updated_at: now,
            updated_by: caller.actor.to_string(),
            expires_at,
            issued_until: expires_at,
            kid: Some(token.key_id().as_str().to_owned()),
            last_used_at: None,
            last_used_from: None,
        };
        let audit = self.audit_entry(caller, Action::Create, &record, "ok");
        self.store
            .commit(Write::Create {
                record: record.clone(),
                audit,
            })
            .await?;
        Ok(Minted { token, record })
    }

    /// The live tokens whose current version the key `kid` may have signed (see
    /// [`crate::store::TokenStore::key_use`]): what stands in the way of retiring it. A token
    /// that expired less than the verifiers' default leeway ago still counts.
    pub async fn key_use(&self, kid: &str) -> Result<crate::store::KeyUse, LifecycleError> {
        let leeway = chrono::Duration::seconds(crate::verifier::DEFAULT_LEEWAY_SECS);
        Ok(self.store.key_use(kid, self.now() - leeway).await?)
    }

    /// Every record, oldest first.
    pub async fn list(&self) -> Result<Vec<TokenRecord>, LifecycleError> {
        let mut records = self.store.list().await?;
        records.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
        Ok(records)
    }

    /// The record with this id.
    pub async fn get(&self, id: Uuid) -> Result<TokenRecord, LifecycleError> {
        self.store
            .get(id)
            .await?
            .ok_or(LifecycleError::NotFound(id))
    }

    /// The live token with this name.
    pub async fn get_by_name(&self, name: &str) -> Result<Option<TokenRecord>, LifecycleError> {
        Ok(self.store.get_by_name(name).await?)
    }

    /// Change a token's description and permissions; the token string stays valid and
    /// verifiers following the state feed apply the new permissions to it. `expect` names the
    /// record revision the caller read; a different one is a conflict.
    pub async fn update(
        &self,
        caller: &Caller,
        id: Uuid,
        update: TokenUpdate,
        expect: Option<u64>,
    ) -> Result<TokenRecord, LifecycleError> {
        let result = self.try_update(caller, id, update, expect).await;
        self.audited(caller, Action::Update, Some(id), None, result)
            .await
    }

    async fn try_update(
        &self,
        caller: &Caller,
        id: Uuid,
        update: TokenUpdate,
        expect: Option<u64>,
    ) -> Result<TokenRecord, LifecycleError> {
        if let Some(description) = &update.description {
            validate_description(description)?;
        }
        if let Some(permissions) = &update.permissions {
            permissions
                .validate()
                .map_err(|e| invalid("permissions", e.to_string()))?;
        }
        let update = &update;
        self.retrying_get(id, expect, |current| async move {
            let now = self.now();
            let mut record = current.clone();
            if let Some(description) = &update.description {
                record.description.clone_from(description);
            }
            let mut state = None;
            let mut keep = None;
            if let Some(permissions) = &update.permissions {
                if !permissions.is_super_admin() {
                    keep = self.keep_if_live_super_admin(&current, now);
                }
            }
            let permissions = update.permissions.as_ref().unwrap_or(&current.permissions);
            let cidrs = update
                .allowed_cidrs
                .as_ref()
                .unwrap_or(&current.allowed_cidrs);
            let cidrs_changed = *cidrs != current.allowed_cidrs;
            if *permissions != current.permissions || cidrs_changed {
                // The token must still fit a gateway's header with them: sign one and throw
                // it away.
                self.sign(&TokenSpec {
                    id,
                    version: current.version,
                    name: &current.name,
                    expires_at: None,
                    permissions,
                    allowed_cidrs: cidrs,
                })?;
                record.permissions = permissions.clone();
                record.allowed_cidrs = cidrs.clone();
                record.cidrs_updated |= cidrs_changed;
                state = Some(Some(StateRecord {
                    deleted: false,
                    min_ver: if current.version > 1 {
                        current.version
                    } else {
                        0
                    },
                    perm: Some(Arc::new(permissions.clone())),
                    // Only once the networks left those signed into the current version: an
                    // entry without `cidr` leaves the signed claim in force.
                    cidr: record.cidrs_updated.then(|| cidrs.clone()),
                    drop_after: self.drop_after(current.issued_until),
                }));
            }
            record.revision = current.revision + 1;
            record.updated_at = now;
            record.updated_by = caller.actor.to_string();
            let audit = self.audit_entry(caller, Action::Update, &record, "ok");
            self.store
                .commit(Write::Replace {
                    expect: current.revision,
                    record: record.clone(),
                    state,
                    audit,
                    keep,
                })
                .await?;
            Ok(record)
        })
        .await
    }

    /// Issue a new version of a token with a new expiry and its current permissions and
    /// networks; every older version stops working.
    pub async fn regenerate(
        &self,
        caller: &Caller,
        id: Uuid,
        expires: Expiry,
        expect: Option<u64>,
    ) -> Result<Minted, LifecycleError> {
        self.regenerate_with(caller, id, expires, None, expect)
            .await
    }

    /// [`TokenService::regenerate`], with new networks signed into the new version when
    /// `allowed_cidrs` is given (an empty list: anywhere).
    pub async fn regenerate_with(
        &self,
        caller: &Caller,
        id: Uuid,
        expires: Expiry,
        allowed_cidrs: Option<CidrList>,
        expect: Option<u64>,
    ) -> Result<Minted, LifecycleError> {
        let result = self
            .try_regenerate(caller, id, expires, allowed_cidrs.as_ref(), expect)
            .await;
        self.audited(caller, Action::Regenerate, Some(id), None, result)
            .await
    }

    async fn try_regenerate(
        &self,
        caller: &Caller,
        id: Uuid,
        expires: Expiry,
        allowed_cidrs: Option<&CidrList>,
        expect: Option<u64>,
    ) -> Result<Minted, LifecycleError> {
        self.retrying_get(id, expect, |current| async move {
            let cidrs = allowed_cidrs.unwrap_or(&current.allowed_cidrs);
            let now = self.now();
            let expires_at = self.resolve(expires, now)?;
            let version = current
                .version
                .checked_add(1)
                .ok_or_else(|| invalid("version", "the token cannot be regenerated again"))?;
            let token = self.sign(&TokenSpec {
                id,
                version,
                name: &current.name,
                expires_at,
                permissions: &current.permissions,
                allowed_cidrs: cidrs,
            })?;
            let mut record = current.clone();
            record.allowed_cidrs = cidrs.clone();
            record.cidrs_updated = false;
            record.version = version;
            record.revision = current.revision + 1;
            record.updated_at = now;
            record.updated_by = caller.actor.to_string();
            record.expires_at = expires_at;
            record.issued_until = latest(current.issued_until, expires_at);
            record.kid = Some(token.key_id().as_str().to_owned());
            let state = StateRecord {
                deleted: false,
                min_ver: version,
                perm: None,
                cidr: None,
                drop_after: self.drop_after(current.issued_until),
            };
            let audit = self.audit_entry(caller, Action::Regenerate, &record, "ok");
            self.store
                .commit(Write::Replace {
                    expect: current.revision,
                    record: record.clone(),
                    state: Some(Some(state)),
                    audit,
                    // A regeneration leaves a live token with the same permissions.
                    keep: None,
                })
                .await?;
            Ok(Minted { token, record })
        })
        .await
    }

    /// Delete a token: every version stops working at every verifier following the state
    /// feed; the record goes and its name is free again. Returns the record as it was.
    /// Refused with [`LifecycleError::LastSuperAdmin`] for the last live super-admin.
    pub async fn delete(
        &self,
        caller: &Caller,
        id: Uuid,
        expect: Option<u64>,
    ) -> Result<TokenRecord, LifecycleError> {
        self.delete_keeping(caller, id, expect, true).await
    }

    /// Delete a token whose string never left this process: nobody can hold it, so the
    /// last-super-admin rule does not protect anything. (Only the server's start uses it.)
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) async fn withdraw(&self, caller: &Caller, id: Uuid) -> Result<(), LifecycleError> {
        self.delete_keeping(caller, id, None, false).await.map(drop)
    }

    async fn delete_keeping(
        &self,
        caller: &Caller,
        id: Uuid,
        expect: Option<u64>,
        keep_super_admin: bool,
    ) -> Result<TokenRecord, LifecycleError> {
        let result = self
            .retrying_get(id, expect, |current| async move {
                let keep = if keep_super_admin {
                    self.keep_if_live_super_admin(&current, self.now())
                } else {
                    None
                };
                let state = StateRecord {
                    deleted: true,
                    min_ver: 0,
                    perm: None,
                    cidr: None,
                    drop_after: self.drop_after(current.issued_until),
                };
                let audit = self.audit_entry(caller, Action::Delete, &current, "ok");
                self.store
                    .commit(Write::Delete {
                        id,
                        expect: current.revision,
                        state,
                        audit,
                        keep,
                    })
                    .await?;
                Ok(current)
            })
            .await;
        self.audited(caller, Action::Delete, Some(id), None, result)
            .await
    }

    /// Revoke version `version` of token `id`, as its holder asks (RFC 7009, `Action::Revoked`)
    /// or a leak report does (`Action::Leaked`, with `note` saying where it was found): the
    /// token dies everywhere and its record goes, as on delete. `false` when that version is
    /// no longer the live one (nothing to do). The last-super-admin rule does not apply: a
    /// token its holder or a finder wants dead must die, and `--bootstrap-token` brings a
    /// super-admin back.
    pub async fn revoke(
        &self,
        caller: &Caller,
        id: Uuid,
        version: u32,
        action: Action,
        note: Option<String>,
    ) -> Result<bool, LifecycleError> {
        let note = &note;
        let result = self
            .retrying_get(id, None, |current| async move {
                if current.version != version {
                    return Ok(false);
                }
                let state = StateRecord {
                    deleted: true,
                    min_ver: 0,
                    perm: None,
                    cidr: None,
                    drop_after: self.drop_after(current.issued_until),
                };
                let mut audit = self.audit_entry(caller, action, &current, "ok");
                audit.note.clone_from(note);
                self.store
                    .commit(Write::Delete {
                        id,
                        expect: current.revision,
                        state,
                        audit,
                        keep: None,
                    })
                    .await?;
                Ok(true)
            })
            .await;
        match result {
            Err(LifecycleError::NotFound(_)) => Ok(false),
            result => result,
        }
    }

    /// Up to `limit` audit entries after position `after`, oldest first.
    pub async fn audit(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, LifecycleError> {
        Ok(self.store.audit(after, limit).await?)
    }

    /// Up to `limit` webhook events, the newest first.
    pub async fn events(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::outbox::OutboxEvent>, LifecycleError> {
        Ok(self.store.events(limit).await?)
    }

    /// The super-admin tokens live now (not expired), oldest first.
    pub async fn live_super_admins(&self) -> Result<Vec<TokenRecord>, LifecycleError> {
        let now = self.now();
        let mut records = self.list().await?;
        records.retain(|r| r.permissions.is_super_admin() && r.status(now) == Status::Active);
        Ok(records)
    }

    /// The token state map as of its revision, for verifiers that follow this issuer.
    pub async fn state_snapshot(&self) -> Result<StateSnapshot, LifecycleError> {
        Ok(self.store.snapshot().await?)
    }

    /// The token state changes after `after`, waiting up to `wait` for one.
    pub async fn state_changes(
        &self,
        after: FeedPosition,
        wait: std::time::Duration,
    ) -> Result<FeedPage, LifecycleError> {
        Ok(self.store.changes_since(after, wait).await?)
    }

    /// Drop the state entries that can no longer matter; returns how many went.
    /// Also drops the events too old to be delivered (see [`crate::outbox::RETENTION`]).
    pub async fn prune(&self) -> Result<usize, LifecycleError> {
        let now = self.now();
        self.store
            .prune_events(now - crate::outbox::RETENTION)
            .await?;
        Ok(self.store.prune_state(now).await?)
    }

    fn resolve(
        &self,
        expires: Expiry,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, LifecycleError> {
        let at = match expires {
            Expiry::Days(days) => Some(now + Duration::days(i64::from(days))),
            Expiry::At(at) => {
                let at = at.trunc_subsecs(0);
                if at <= now {
                    return Err(invalid(
                        "expires",
                        format!("{} is not in the future", crate::claims::format_time(&at)),
                    ));
                }
                Some(at)
            }
            Expiry::Never => None,
        };
        if let Some(max) = self.policy.max_lifetime {
            let limit = now + max;
            let days = max.num_days();
            match at {
                None => {
                    return Err(invalid(
                        "expires",
                        format!("tokens must expire: the longest lifetime allowed is {days} days"),
                    ))
                }
                Some(at) if at > limit => {
                    return Err(invalid(
                        "expires",
                        format!(
                            "{} is too far away: the longest lifetime allowed is {days} days \
                             (until {})",
                            crate::claims::format_time(&at),
                            crate::claims::format_time(&limit)
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(at)
    }

    /// The precondition that keeps a super-admin alive, when `current` is a live one.
    fn keep_if_live_super_admin(
        &self,
        current: &TokenRecord,
        now: DateTime<Utc>,
    ) -> Option<KeepSuperAdmin> {
        (current.permissions.is_super_admin() && current.status(now) == Status::Active)
            .then_some(KeepSuperAdmin { now })
    }

    fn drop_after(&self, issued_until: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        issued_until.map(|at| at + self.policy.retention_margin)
    }

    fn audit_entry(
        &self,
        caller: &Caller,
        action: Action,
        record: &TokenRecord,
        outcome: &str,
    ) -> AuditEntry {
        AuditEntry {
            at: self.now(),
            actor: caller.actor.clone(),
            action,
            target: Some(record.id),
            target_name: Some(record.name.clone()),
            outcome: outcome.to_owned(),
            from: caller.from.clone(),
            note: None,
        }
    }

    /// `result`, after recording it in the audit trail if it is a refusal.
    async fn audited<T>(
        &self,
        caller: &Caller,
        action: Action,
        target: Option<Uuid>,
        target_name: Option<String>,
        result: Result<T, LifecycleError>,
    ) -> Result<T, LifecycleError> {
        if let Err(e) = &result {
            self.audit_refusal(caller, action, target, target_name, e)
                .await;
        }
        result
    }

    /// Record a refused action. Best effort: when the store itself failed, this likely fails
    /// too, and the caller already has the error that matters.
    async fn audit_refusal(
        &self,
        caller: &Caller,
        action: Action,
        target: Option<Uuid>,
        target_name: Option<String>,
        error: &LifecycleError,
    ) {
        if matches!(error, LifecycleError::Store(_)) {
            return;
        }
        let entry = AuditEntry {
            at: self.now(),
            actor: caller.actor.clone(),
            action,
            target,
            target_name,
            outcome: error.code().to_owned(),
            from: caller.from.clone(),
            note: None,
        };
        let _ = self.store.append_audit(entry).await;
    }

    /// Read the record, check `expect`, run `change`; when another change came first and the
    /// caller named no revision, read again and retry.
    async fn retrying_get<T, F, Fut>(
        &self,
        id: Uuid,
        expect: Option<u64>,
        change: F,
    ) -> Result<T, LifecycleError>
    where
        F: Fn(TokenRecord) -> Fut,
        Fut: std::future::Future<Output = Result<T, LifecycleError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self.get(id).await?;
            if let Some(expected) = expect {
                if current.revision != expected {
                    return Err(LifecycleError::Conflict {
                        id,
                        expected,
                        actual: current.revision,
                    });
                }
            }
            match change(current).await {
                Err(LifecycleError::Conflict { .. })
                    if expect.is_none() && attempt < MAX_ATTEMPTS =>
                {
                    tokio::task::yield_now().await;
                }
                result => return result,
            }
        }
    }
}

fn latest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    Some(a?.max(b?))
}
