//! Token stores: where token records, the live-name index, the state map, its change feed and
//! the audit trail live.
//!
//! The [`TokenStore`] trait is the contract every backend keeps; the lifecycle rules (names,
//! expiries, versions, what goes in the state map) live above it, in [`crate::lifecycle`], so a
//! backend only has to be atomic and honest. Two backends implement it:
//!
//! | backend | URL | for |
//! |---|---|---|
//! | [`EmbeddedStore`] | `file:data/tessera.redb` | one machine: a redb file, fsync on every commit |
//! | [`RedisStore`] | `redis://…`, `rediss://…`, `redis+cluster://…`, `redis+sentinel://…` | several issuers and many verifiers |
//!
//! [`AnyStore`] picks one by URL. One conformance suite (`tests/stores/store_conformance.rs`) runs
//! against both.

mod embedded;
#[cfg(feature = "redis")]
mod redis;

pub use embedded::EmbeddedStore;

use crate::model::{
    AuditEntry, AuditRecord, FeedPage, FeedPosition, StateChange, StateRecord, StateSnapshot,
    TokenRecord, Usage,
};
#[cfg(feature = "redis")]
pub use redis::RedisStore;

use crate::outbox::OutboxEvent;
use crate::permissions::Permissions;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The store URL used when none is given.
pub const DEFAULT_STORE_URL: &str = "file:data/tessera.redb";

/// How many changes a store keeps in its feed. A follower further behind than this reloads a
/// snapshot instead.
pub const FEED_RETENTION: u64 = 100_000;

/// A feed entry as both backends store it (the revision is its key or stream id).
#[derive(serde::Serialize, serde::Deserialize)]
struct FeedValue {
    id: Uuid,
    /// The change's tag (absent, so 0, in entries written before tags existed).
    #[serde(default)]
    tag: u64,
    entry: Option<StateRecord>,
}

/// Whether a follower at `after` stands on this store's history, given the store's current
/// revision and the tag of its feed entry at `after.revision` (`None`: not in the feed).
fn on_this_history(after: FeedPosition, current: u64, tag_there: Option<u64>) -> bool {
    if after.revision == 0 {
        return true;
    }
    if after.revision > current {
        return false;
    }
    match tag_there {
        Some(tag) => tag == after.tag,
        // Only the newest change can be missing without a trim: a feed cut short by hand.
        // Then a snapshot names tag 0, and its follower must not reload forever.
        None => after.revision == current && after.tag == 0,
    }
}

/// The `limit` newest of `events`, the newest first.
fn newest_first(mut events: Vec<OutboxEvent>, limit: usize) -> Vec<OutboxEvent> {
    events.sort_by_key(|e| std::cmp::Reverse((e.created_at, e.seq)));
    events.truncate(limit);
    events
}

impl FeedValue {
    fn into_change(self, revision: u64) -> StateChange {
        StateChange {
            revision,
            id: self.id,
            entry: self.entry,
            tag: self.tag,
        }
    }
}

/// Decodes the state entries of a snapshot, sharing equal permission sets as it goes, so a
/// snapshot of a million entries holds each distinct set once (and the duplicates are freed at
/// once, not after the whole snapshot is built).
#[derive(Default)]
pub(crate) struct StateDecoder {
    perms: std::collections::HashSet<Arc<Permissions>, foldhash::fast::RandomState>,
}

impl StateDecoder {
    /// Decode one stored entry.
    pub(crate) fn decode(&mut self, bytes: &[u8]) -> Result<StateRecord, StoreError> {
        let mut record: StateRecord = serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Corrupt(format!("state entry: {e}")))?;
        if let Some(perm) = record.perm.take() {
            let shared = match self.perms.get(&perm) {
                Some(shared) => shared.clone(),
                None => {
                    // Exactly sized, unlike a freshly parsed set (see `MemoryState`).
                    let compact = Arc::new(Permissions::clone(&perm));
                    self.perms.insert(compact.clone());
                    compact
                }
            };
            record.perm = Some(shared);
        }
        Ok(record)
    }
}

/// One atomic write. The store checks the precondition, then applies every part or none.
#[derive(Debug, Clone)]
pub enum Write {
    /// A new token: refused with [`StoreError::NameTaken`] when a live token has the name (or
    /// [`StoreError::Conflict`] when the id exists).
    Create {
        /// The record, at revision 1.
        record: TokenRecord,
        /// Appended with the record.
        audit: AuditEntry,
    },
    /// A changed record (same id and name): refused with [`StoreError::NotFound`] when the
    /// token does not exist and [`StoreError::Conflict`] when its revision is not `expect`.
    Replace {
        /// The revision the record must have now.
        expect: u64,
        /// The new record (its revision is `expect + 1`).
        record: TokenRecord,
        /// The token's new state entry (`Some(None)` drops it), given the next global
        /// revision and appended to the feed; `None` leaves the state map alone.
        state: Option<Option<StateRecord>>,
        /// Appended with the record.
        audit: AuditEntry,
        /// See [`KeepSuperAdmin`].
        keep: Option<KeepSuperAdmin>,
    },
    /// A deleted token: the record goes, its name is freed, its state entry is set. Refused
    /// like [`Write::Replace`].
    Delete {
        /// The token id.
        id: Uuid,
        /// The revision the record must have now.
        expect: u64,
        /// The token's state entry, which rejects every version.
        state: StateRecord,
        /// Appended with the deletion.
        audit: AuditEntry,
        /// See [`KeepSuperAdmin`].
        keep: Option<KeepSuperAdmin>,
    },
}

/// A precondition on the other records, checked in the same atomic step as the write: some
/// record other than the one written must be a super-admin that is live at `now` (it never
/// expires, or expires after `now`). Refused with [`StoreError::LastSuperAdmin`]. Two
/// administrators deleting the last two super-admins at once therefore cannot both succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepSuperAdmin {
    /// The time at which the other super-admin must be live, in whole seconds.
    pub now: DateTime<Utc>,
}

impl KeepSuperAdmin {
    /// Whether `record`, other than `written`, keeps a super-admin alive at `self.now`.
    pub fn kept_by(&self, record: &TokenRecord, written: Uuid) -> bool {
        record.id != written
            && record.permissions.is_super_admin()
            && record.expires_at.is_none_or(|at| at > self.now)
    }
}

/// The tokens whose current version a key may have signed and that are still live, as
/// [`TokenStore::key_use`] counts them: what stands in the way of retiring the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyUse {
    /// How many records count: those that name the key, and those that name no key.
    pub tokens: u64,
    /// How many of them name no key (written before records kept one): they may have been
    /// signed by any key, so they count against every key.
    pub unattributed: u64,
    /// Whether one of them never expires.
    pub never_expires: bool,
    /// The latest expiry among those that expire.
    pub latest_expiry: Option<DateTime<Utc>>,
}

impl KeyUse {
    /// Count `records` for the key `kid`: each record that names `kid` or names no key, and
    /// that never expires or expires after `after`.
    pub fn count<'r>(
        records: impl IntoIterator<Item = &'r TokenRecord>,
        kid: &str,
        after: DateTime<Utc>,
    ) -> Self {
        let mut found = Self::default();
        for record in records {
            let signed_by = match record.kid.as_deref() {
                Some(k) => k == kid,
                None => true,
            };
            if !signed_by || record.expires_at.is_some_and(|at| at <= after) {
                continue;
            }
            found.tokens += 1;
            found.unattributed += u64::from(record.kid.is_none());
            match record.expires_at {
                None => found.never_expires = true,
                Some(at) => found.latest_expiry = found.latest_expiry.max(Some(at)),
            }
        }
        found
    }
}

/// What a committed write changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The global state revision the write was given, if it touched the state map.
    pub state_revision: Option<u64>,
}

/// Why a store operation failed. Messages are for logs and operators; clients see codes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A live token already has this name.
    #[error("a live token is already named {0:?}")]
    NameTaken(String),
    /// No token has this id.
    #[error("no token has id {0}")]
    NotFound(Uuid),
    /// The record's revision is not the one expected: another change came first.
    #[error("token {id} is at revision {actual}, not {expected}: another change came first")]
    Conflict {
        /// The token id.
        id: Uuid,
        /// The revision the write expected.
        expected: u64,
        /// The revision the record has (0 when it exists but no revision applies).
        actual: u64,
    },
    /// The write would leave no live super-admin (see [`KeepSuperAdmin`]).
    #[error("token {0} is the last live super-admin")]
    LastSuperAdmin(Uuid),
    /// The store could not be reached or did not answer; the write may or may not have been
    /// applied only if it said so (see each backend).
    #[error("token store unavailable: {0}")]
    Unavailable(String),
    /// The embedded store's file is open in another process, which holds its lock.
    #[error("token store unavailable: {} is in use by another process (a running `tessera serve`?)", .0.display())]
    Locked(std::path::PathBuf),
    /// The store holds something this version cannot read.
    #[error("token store data is corrupt: {0}")]
    Corrupt(String),
    /// The store URL or its options are wrong.
    #[error("{0}")]
    Config(String),
}

impl StoreError {
    /// A stable code for clients and the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NameTaken(_) => "name_taken",
            StoreError::NotFound(_) => "not_found",
            StoreError::Conflict { .. } => "conflict",
            StoreError::LastSuperAdmin(_) => "last_super_admin",
            StoreError::Unavailable(_) => "store_unavailable",
            StoreError::Locked(_) => "store_locked",
            StoreError::Corrupt(_) => "store_corrupt",
            StoreError::Config(_) => "store_config",
        }
    }
}

/// A token store.
///
/// # Contract
/// - **Atomic writes.** [`TokenStore::commit`] applies every part of a [`Write`] or none: the
///   record, the live-name index, the state entry with the next global revision, the feed
///   entry and the audit entry. A crash or a lost connection at any point leaves no half-made
///   token, no name that points nowhere and no revision gap.
/// - **Durable acknowledgements.** Once `commit` returns `Ok`, the write survives a crash of
///   the process (and, for a server, of the server, as far as its configured persistence
///   allows).
/// - **Names.** At most one live token per name; a deleted token's name is free at once.
/// - **Revisions.** The global state revision starts at 0 and goes up by exactly one for each
///   write that touches the state map; the feed holds those changes in order. A record's
///   revision is checked and replaced in the same atomic step.
/// - **Feed.** [`TokenStore::changes_since`] returns the changes after a position in order,
///   with no gaps, or [`FeedPage::Reload`] when it cannot; it may wait up to `wait` for a change
///   when there is none, and must return within about `wait` either way.
/// - **Tags.** Every change gets a fresh random tag ([`FeedPosition::new_tag`]), kept in the
///   feed. `changes_since` answers `Reload` unless the feed holds the change at the position's
///   revision with the position's tag (revision 0 matches any store): a follower that saw
///   changes this store's history does not hold (lost in a failover, undone by a restore) must
///   reload, even once new changes have reused those revisions. A snapshot names the tag of
///   the change at its revision.
/// - **Snapshots.** [`TokenStore::snapshot`] gives every entry of the map as of its
///   `revision`, except that an entry may already show a change made after that revision
///   (never an older one), and an id may appear twice (the later one counts). Applying the feed
///   after `revision`, as a follower does, therefore ends exact. A backend may give exactly the
///   map at `revision` (the embedded store does).
/// - **Outbox.** Every write also adds the event that describes it (see [`crate::outbox`]): its
///   record after the change (before it, for a deletion) and the audit entry's actor, in the
///   same atomic step. A refused write adds none. Events are leased out by `claim_events` and
///   settled by `settle_event`, so that of several deliverers one has each event at a time,
///   and one that dies mid-delivery gives it back when its lease ends.
/// - **No token strings.** Nothing a store keeps can be turned back into a token.
/// - **Usage.** [`TokenStore::record_usage`] keeps each token's last use apart from its record:
///   it bumps no revision and writes no audit entry, ignores ids with no record, never moves a
///   last use backwards, and a deletion removes it. Reads of records fill it in.
/// - **Key use.** [`TokenStore::key_use`] counts, as [`KeyUse::count`] does, every record
///   whose current version the key may have signed (it names the key, or names no key) and
///   that is live after the given time, from one consistent read.
/// - Reads never fail open: an unreadable record is [`StoreError::Corrupt`], not absent.
pub trait TokenStore: Send + Sync + 'static {
    /// Apply one write atomically.
    fn commit(&self, write: Write) -> impl Future<Output = Result<Committed, StoreError>> + Send;

    /// The record with this id.
    fn get(&self, id: Uuid)
        -> impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send;

    /// The live token with this name.
    fn get_by_name(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send;

    /// Every record, in no particular order.
    fn list(&self) -> impl Future<Output = Result<Vec<TokenRecord>, StoreError>> + Send;

    /// Append an audit entry on its own (for refused actions).
    fn append_audit(
        &self,
        entry: AuditEntry,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Up to `limit` audit entries after position `after`, oldest first.
    fn audit(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;

    /// The whole state map at one revision.
    fn snapshot(&self) -> impl Future<Output = Result<StateSnapshot, StoreError>> + Send;

    /// The changes after `after`, waiting up to `wait` for one when there is none.
    fn changes_since(
        &self,
        after: FeedPosition,
        wait: Duration,
    ) -> impl Future<Output = Result<FeedPage, StoreError>> + Send;

    /// Up to `limit` pending events due at `now`, oldest due first, each leased for `lease`:
    /// no other call returns it until the lease ends, unless it is settled first.
    fn claim_events(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutboxEvent>, StoreError>> + Send;

    /// Write an event's delivery so far: a pending one is due again at its
    /// `next_attempt_at`, a settled one is no longer claimed. An event no longer kept (see
    /// `prune_events`) is left alone.
    fn settle_event(
        &self,
        event: OutboxEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` events, the newest first.
    fn events(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutboxEvent>, StoreError>> + Send;

    /// Add `event`, a notice, unless a notice was already added under `marker`: of several
    /// issuers sending the same notice, one does. `true` when added. The marker is kept
    /// until `keep_until` (see `prune_events`).
    fn add_notice(
        &self,
        marker: String,
        keep_until: DateTime<Utc>,
        event: OutboxEvent,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Drop the events made before `before`, delivered or not, and the notice markers to be
    /// kept until before `before`; returns how many events went.
    fn prune_events(
        &self,
        before: DateTime<Utc>,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Record the last use of tokens (a batch, in any order; later uses of one id win).
    fn record_usage(&self, uses: Vec<Usage>)
        -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The live tokens the key `kid` may have signed: records that name it or name no key,
    /// and that never expire or expire after `after` (see [`KeyUse::count`]).
    fn key_use(
        &self,
        kid: &str,
        after: DateTime<Utc>,
    ) -> impl Future<Output = Result<KeyUse, StoreError>> + Send;

    /// Drop every state entry whose `drop_after` is before `now`, each as a change with its own
    /// revision. Returns how many were dropped.
    fn prune_state(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// A store chosen by URL: `file:PATH` (or a plain path) for the embedded store, `redis://` or
/// `rediss://` for one Redis, `redis+cluster://` or `rediss+cluster://` (seed nodes separated
/// by commas) for a Redis Cluster, `redis+sentinel://` or `rediss+sentinel://` (Sentinels
/// separated by commas, then `/MASTER_NAME/DB`) for a primary found through Redis Sentinel.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// The embedded redb file.
    Embedded(EmbeddedStore),
    /// Redis.
    #[cfg(feature = "redis")]
    Redis(RedisStore),
}

/// Options of a store beyond its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Redis only: after every write, wait (`WAIT`) until this many replicas have it; when
    /// fewer do within [`StoreOptions::redis_wait_timeout`], the write fails as
    /// [`StoreError::Unavailable`] (it may have been applied). 0: do not wait.
    pub redis_min_replicas: u32,
    /// How long a write waits for [`StoreOptions::redis_min_replicas`] replicas (whole
    /// milliseconds, at least 1, at most [`MAX_REDIS_WAIT_TIMEOUT`]).
    pub redis_wait_timeout: Duration,
}

/// The longest [`StoreOptions::redis_wait_timeout`]: the write and its `WAIT` must come back
/// within the Redis store's 5 s response timeout.
pub const MAX_REDIS_WAIT_TIMEOUT: Duration = Duration::from_millis(4000);

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            redis_min_replicas: 0,
            redis_wait_timeout: Duration::from_secs(1),
        }
    }
}

impl StoreOptions {
    /// Refuse values the store cannot keep.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.redis_wait_timeout < Duration::from_millis(1)
            || self.redis_wait_timeout > MAX_REDIS_WAIT_TIMEOUT
        {
            return Err(StoreError::Config(format!(
                "the Redis wait timeout must be from 1 to {} ms, not {} ms",
                MAX_REDIS_WAIT_TIMEOUT.as_millis(),
                self.redis_wait_timeout.as_millis()
            )));
        }
        Ok(())
    }
}

/// The URL schemes of the Redis store.
const REDIS_SCHEMES: [&str; 6] = [
    "redis://",
    "rediss://",
    "redis+cluster://",
    "rediss+cluster://",
    "redis+sentinel://",
    "rediss+sentinel://",
];

impl AnyStore {
    /// Open the store a URL names, with the default [`StoreOptions`].
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, StoreOptions::default()).await
    }

    /// Open the store a URL names. Options for Redis on another store are refused
    /// ([`StoreError::Config`]): the embedded store has no replicas to wait for.
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        options.check()?;
        if REDIS_SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
            #[cfg(feature = "redis")]
            return Ok(AnyStore::Redis(
                RedisStore::open_with_options(url, self::redis::DEFAULT_PREFIX, options).await?,
            ));
            #[cfg(not(feature = "redis"))]
            return Err(StoreError::Config(
                "this build has no Redis support (feature `redis`)".into(),
            ));
        }
        let path = url.strip_prefix("file:").unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(StoreError::Config(format!(
                "unknown store URL {url:?}: use file:PATH, redis://HOST:PORT/DB, \
                 redis+cluster://HOST:PORT,HOST:PORT or \
                 redis+sentinel://HOST:PORT,HOST:PORT/MASTER_NAME/DB"
            )));
        }
        if options.redis_min_replicas > 0 {
            return Err(StoreError::Config(format!(
                "--redis-min-replicas {} applies to a Redis store only: the embedded store \
                 ({url}) has no replicas (set it to 0, or use --store redis://...)",
                options.redis_min_replicas
            )));
        }
        Ok(AnyStore::Embedded(EmbeddedStore::open(path).await?))
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Embedded($s) => $e,
            #[cfg(feature = "redis")]
            AnyStore::Redis($s) => $e,
        }
    };
}

impl TokenStore for AnyStore {
    async fn commit(&self, write: Write) -> Result<Committed, StoreError> {
        delegate!(self, s => s.commit(write).await)
    }
    async fn get(&self, id: Uuid) -> Result<Option<TokenRecord>, StoreError> {
        delegate!(self, s => s.get(id).await)
    }
    async fn get_by_name(&self, name: &str) -> Result<Option<TokenRecord>, StoreError> {
        delegate!(self, s => s.get_by_name(name).await)
    }
    async fn list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        delegate!(self, s => s.list().await)
    }
    async fn append_audit(&self, entry: AuditEntry) -> Result<u64, StoreError> {
        delegate!(self, s => s.append_audit(entry).await)
    }
    async fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        delegate!(self, s => s.audit(after, limit).await)
    }
    async fn snapshot(&self) -> Result<StateSnapshot, StoreError> {
        delegate!(self, s => s.snapshot().await)
    }
    async fn changes_since(
        &self,
        after: FeedPosition,
        wait: Duration,
    ) -> Result<FeedPage, StoreError> {
        delegate!(self, s => s.changes_since(after, wait).await)
    }
    async fn key_use(&self, kid: &str, after: DateTime<Utc>) -> Result<KeyUse, StoreError> {
        delegate!(self, s => s.key_use(kid, after).await)
    }
    async fn prune_state(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        delegate!(self, s => s.prune_state(now).await)
    }
    async fn record_usage(&self, uses: Vec<Usage>) -> Result<(), StoreError> {
        delegate!(self, s => s.record_usage(uses).await)
    }
    async fn claim_events(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        delegate!(self, s => s.claim_events(now, lease, limit).await)
    }
    async fn settle_event(&self, event: OutboxEvent) -> Result<(), StoreError> {
        delegate!(self, s => s.settle_event(event).await)
    }
    async fn events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        delegate!(self, s => s.events(limit).await)
    }
    async fn prune_events(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        delegate!(self, s => s.prune_events(before).await)
    }
    async fn add_notice(
        &self,
        marker: String,
        keep_until: DateTime<Utc>,
        event: OutboxEvent,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.add_notice(marker, keep_until, event).await)
    }
}
