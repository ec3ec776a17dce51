//! The embedded store: one redb file, one write transaction per [`Write`], fsync on commit.
//!
//! redb gives atomic, durable commits (copy-on-write pages, `Durability::Immediate`), so a
//! process killed at any instant leaves either the whole write or none of it. Every operation
//! runs on tokio's blocking pool because a commit waits for the disk. Followers of the feed in
//! the same process are woken by a watch channel instead of polling. The file is locked to one
//! process: a second process (say `tessera token` while `tessera serve` runs) gets a clear
//! error naming the file.

use super::{
    newest_first, on_this_history, Committed, FeedValue, KeepSuperAdmin, KeyUse, StateDecoder,
    StoreError, TokenStore, Write, FEED_RETENTION,
};
use crate::model::{
    AuditEntry, AuditRecord, FeedPage, FeedPosition, StateRecord, StateSnapshot, TokenRecord, Usage,
};
use crate::outbox::{Delivery, EventFrame, OutboxEvent};
use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

const RECORDS: TableDefinition<u128, &[u8]> = TableDefinition::new("records");
const NAMES: TableDefinition<&str, u128> = TableDefinition::new("names");
const STATE: TableDefinition<u128, &[u8]> = TableDefinition::new("state");
/// `(drop_after unix seconds, id)` for every state entry that can be dropped.
const DROPS: TableDefinition<(i64, u128), ()> = TableDefinition::new("state_drops");
const FEED: TableDefinition<u64, &[u8]> = TableDefinition::new("feed");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Each token's last use, apart from its record so recording it never races a change.
const USAGE: TableDefinition<u128, &[u8]> = TableDefinition::new("usage");
const REVISION: &str = "revision";
/// Events by id (see [`crate::outbox`]).
const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox");
/// Pending events by id: when each may next be claimed, in Unix milliseconds.
const OUTBOX_DUE: TableDefinition<&str, i64> = TableDefinition::new("outbox_due");
/// Notices sent, by marker: until when (Unix seconds) each marker is kept.
const NOTICES: TableDefinition<&str, i64> = TableDefinition::new("notices");

/// The embedded store. Cheap to clone; clones share the open file.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    path: PathBuf,
    /// The latest committed state revision, for in-process followers.
    revision: watch::Sender<u64>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl EmbeddedStore {
    /// Open the store file at `path`, creating it (and its folder) if missing.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(path))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }

    fn open_blocking(path: PathBuf) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.clone()),
            e => StoreError::Unavailable(format!("cannot open {}: {e}", path.display())),
        })?;
        // Create every table up front so readers never meet a missing one.
        let txn = db.begin_write().map_err(db_err)?;
        {
            txn.open_table(RECORDS).map_err(db_err)?;
            txn.open_table(NAMES).map_err(db_err)?;
            txn.open_table(STATE).map_err(db_err)?;
            txn.open_table(DROPS).map_err(db_err)?;
            txn.open_table(FEED).map_err(db_err)?;
            txn.open_table(AUDIT).map_err(db_err)?;
            txn.open_table(META).map_err(db_err)?;
            txn.open_table(USAGE).map_err(db_err)?;
            txn.open_table(OUTBOX).map_err(db_err)?;
            txn.open_table(OUTBOX_DUE).map_err(db_err)?;
            txn.open_table(NOTICES).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        let revision = {
            let txn = db.begin_read().map_err(db_err)?;
            let meta = txn.open_table(META).map_err(db_err)?;
            meta.get(REVISION)
                .map_err(db_err)?
                .map(|v| v.value())
                .unwrap_or(0)
        };
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                path,
                revision: watch::Sender::new(revision),
            }),
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Unavailable(format!("redb: {}", e.into()))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

type Table<'t, K, V> = redb::Table<'t, K, V>;

/// Set or drop one state entry under the next revision, inside a write transaction.
fn put_state(
    state: &mut Table<'_, u128, &'static [u8]>,
    drops: &mut Table<'_, (i64, u128), ()>,
    feed: &mut Table<'_, u64, &'static [u8]>,
    meta: &mut Table<'_, &'static str, u64>,
    id: Uuid,
    entry: Option<&StateRecord>,
) -> Result<u64, StoreError> {
    let key = id.as_u128();
    let old = match state.get(key).map_err(db_err)? {
        Some(v) => Some(decode::<StateRecord>("state entry", v.value())?),
        None => None,
    };
    if let Some(at) = old.as_ref().and_then(|o| o.drop_after) {
        drops.remove((at.timestamp(), key)).map_err(db_err)?;
    }
    match entry {
        Some(entry) => {
            state
                .insert(key, encode(entry)?.as_slice())
                .map_err(db_err)?;
            if let Some(at) = entry.drop_after {
                drops.insert((at.timestamp(), key), ()).map_err(db_err)?;
            }
        }
        None => {
            state.remove(key).map_err(db_err)?;
        }
    }
    let revision = meta.get(REVISION).map_err(db_err)?.map_or(0, |v| v.value()) + 1;
    meta.insert(REVISION, revision).map_err(db_err)?;
    let value = FeedValue {
        id,
        tag: FeedPosition::new_tag(),
        entry: entry.cloned(),
    };
    feed.insert(revision, encode(&value)?.as_slice())
        .map_err(db_err)?;
    if revision > FEED_RETENTION {
        feed.remove(revision - FEED_RETENTION).map_err(db_err)?;
    }
    Ok(revision)
}

/// Add the event of the change `audit` records (at audit position `seq`), `record` being the
/// token's record to show.
fn add_event(
    txn: &redb::WriteTransaction,
    audit: &AuditEntry,
    record: &TokenRecord,
    seq: u64,
) -> Result<(), StoreError> {
    let frame = EventFrame::for_change(audit);
    let json = encode(record)?;
    let json = std::str::from_utf8(&json)
        .map_err(|e| StoreError::Corrupt(format!("a record encoded as {e}")))?;
    let event = frame.around(json, seq);
    txn.open_table(OUTBOX)
        .map_err(db_err)?
        .insert(frame.id.as_str(), event.as_bytes())
        .map_err(db_err)?;
    txn.open_table(OUTBOX_DUE)
        .map_err(db_err)?
        .insert(frame.id.as_str(), frame.due_ms)
        .map_err(db_err)?;
    Ok(())
}

fn append_audit(
    audit: &mut Table<'_, u64, &'static [u8]>,
    entry: &AuditEntry,
) -> Result<u64, StoreError> {
    let seq = audit.last().map_err(db_err)?.map_or(0, |(k, _)| k.value()) + 1;
    audit
        .insert(seq, encode(entry)?.as_slice())
        .map_err(db_err)?;
    Ok(seq)
}

/// A stored record with its last use filled in.
fn with_usage(
    usage: &impl ReadableTable<u128, &'static [u8]>,
    bytes: &[u8],
) -> Result<TokenRecord, StoreError> {
    let record: TokenRecord = decode("token record", bytes)?;
    let used = match usage.get(record.id.as_u128()).map_err(db_err)? {
        Some(v) => Some(decode::<Usage>("usage entry", v.value())?),
        None => None,
    };
    Ok(record.with_usage(used))
}

fn current_record(
    records: &Table<'_, u128, &'static [u8]>,
    id: Uuid,
    expect: u64,
) -> Result<TokenRecord, StoreError> {
    let record: TokenRecord = match records.get(id.as_u128()).map_err(db_err)? {
        Some(v) => decode("token record", v.value())?,
        None => return Err(StoreError::NotFound(id)),
    };
    if record.revision != expect {
        return Err(StoreError::Conflict {
            id,
            expected: expect,
            actual: record.revision,
        });
    }
    Ok(record)
}

/// Refuse the write to `written` unless another record keeps a super-admin alive.
fn check_keep(
    records: &Table<'_, u128, &'static [u8]>,
    written: Uuid,
    keep: Option<KeepSuperAdmin>,
) -> Result<(), StoreError> {
    let Some(keep) = keep else { return Ok(()) };
    for entry in records.iter().map_err(db_err)? {
        let (_, value) = entry.map_err(db_err)?;
        let record: TokenRecord = decode("token record", value.value())?;
        if keep.kept_by(&record, written) {
            return Ok(());
        }
    }
    Err(StoreError::LastSuperAdmin(written))
}

impl Inner {
    fn commit(&self, write: Write) -> Result<Committed, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut state_revision = None;
        {
            let mut records = txn.open_table(RECORDS).map_err(db_err)?;
            let mut names = txn.open_table(NAMES).map_err(db_err)?;
            let mut state = txn.open_table(STATE).map_err(db_err)?;
            let mut drops = txn.open_table(DROPS).map_err(db_err)?;
            let mut feed = txn.open_table(FEED).map_err(db_err)?;
            let mut audit = txn.open_table(AUDIT).map_err(db_err)?;
            let mut meta = txn.open_table(META).map_err(db_err)?;
            match &write {
                Write::Create { record, audit: a } => {
                    if names.get(record.name.as_str()).map_err(db_err)?.is_some() {
                        return Err(StoreError::NameTaken(record.name.clone()));
                    }
                    if records.get(record.id.as_u128()).map_err(db_err)?.is_some() {
                        return Err(StoreError::Conflict {
                            id: record.id,
                            expected: 0,
                            actual: 0,
                        });
                    }
                    records
                        .insert(record.id.as_u128(), encode(record)?.as_slice())
                        .map_err(db_err)?;
                    names
                        .insert(record.name.as_str(), record.id.as_u128())
                        .map_err(db_err)?;
                    let seq = append_audit(&mut audit, a)?;
                    add_event(&txn, a, record, seq)?;
                }
                Write::Replace {
                    expect,
                    record,
                    state: entry,
                    audit: a,
                    keep,
                } => {
                    current_record(&records, record.id, *expect)?;
                    check_keep(&records, record.id, *keep)?;
                    records
                        .insert(record.id.as_u128(), encode(record)?.as_slice())
                        .map_err(db_err)?;
                    if let Some(entry) = entry {
                        state_revision = Some(put_state(
                            &mut state,
                            &mut drops,
                            &mut feed,
                            &mut meta,
                            record.id,
                            entry.as_ref(),
                        )?);
                    }
                    let seq = append_audit(&mut audit, a)?;
                    add_event(&txn, a, record, seq)?;
                }
                Write::Delete {
                    id,
                    expect,
                    state: entry,
                    audit: a,
                    keep,
                } => {
                    let record = current_record(&records, *id, *expect)?;
                    check_keep(&records, *id, *keep)?;
                    records.remove(id.as_u128()).map_err(db_err)?;
                    txn.open_table(USAGE)
                        .map_err(db_err)?
                        .remove(id.as_u128())
                        .map_err(db_err)?;
                    let owner = names
                        .get(record.name.as_str())
                        .map_err(db_err)?
                        .map(|v| v.value());
                    if owner == Some(id.as_u128()) {
                        names.remove(record.name.as_str()).map_err(db_err)?;
                    }
                    state_revision = Some(put_state(
                        &mut state,
                        &mut drops,
                        &mut feed,
                        &mut meta,
                        *id,
                        Some(entry),
                    )?);
                    let seq = append_audit(&mut audit, a)?;
                    add_event(&txn, a, &record, seq)?;
                }
            }
        }
        txn.commit().map_err(db_err)?;
        if let Some(revision) = state_revision {
            self.revision.send_replace(revision);
        }
        Ok(Committed { state_revision })
    }

    fn prune(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut last = None;
        let mut dropped = 0;
        {
            let mut state = txn.open_table(STATE).map_err(db_err)?;
            let mut drops = txn.open_table(DROPS).map_err(db_err)?;
            let mut feed = txn.open_table(FEED).map_err(db_err)?;
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let due: Vec<u128> = drops
                .range(..(now.timestamp(), 0u128))
                .map_err(db_err)?
                .map(|item| item.map(|(k, _)| k.value().1))
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
            for key in due {
                let id = Uuid::from_u128(key);
                last = Some(put_state(
                    &mut state, &mut drops, &mut feed, &mut meta, id, None,
                )?);
                dropped += 1;
            }
        }
        txn.commit().map_err(db_err)?;
        if let Some(revision) = last {
            self.revision.send_replace(revision);
        }
        Ok(dropped)
    }

    fn get(&self, id: Uuid) -> Result<Option<TokenRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let records = txn.open_table(RECORDS).map_err(db_err)?;
        let usage = txn.open_table(USAGE).map_err(db_err)?;
        let value = records.get(id.as_u128()).map_err(db_err)?;
        value.map(|v| with_usage(&usage, v.value())).transpose()
    }

    fn get_by_name(&self, name: &str) -> Result<Option<TokenRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let names = txn.open_table(NAMES).map_err(db_err)?;
        let Some(id) = names.get(name).map_err(db_err)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let records = txn.open_table(RECORDS).map_err(db_err)?;
        let usage = txn.open_table(USAGE).map_err(db_err)?;
        match records.get(id).map_err(db_err)? {
            Some(v) => Ok(Some(with_usage(&usage, v.value())?)),
            None => Err(StoreError::Corrupt(format!(
                "the name {name:?} points at a missing record"
            ))),
        }
    }

    fn list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let records = txn.open_table(RECORDS).map_err(db_err)?;
        let usage = txn.open_table(USAGE).map_err(db_err)?;
        let mut out = Vec::with_capacity(records.len().map_err(db_err)? as usize);
        for item in records.iter().map_err(db_err)? {
            let (_, v) = item.map_err(db_err)?;
            out.push(with_usage(&usage, v.value())?);
        }
        Ok(out)
    }

    fn key_use(&self, kid: &str, after: DateTime<Utc>) -> Result<KeyUse, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let records = txn.open_table(RECORDS).map_err(db_err)?;
        let mut all = Vec::new();
        for item in records.iter().map_err(db_err)? {
            let (_, v) = item.map_err(db_err)?;
            all.push(decode::<TokenRecord>("token record", v.value())?);
        }
        Ok(KeyUse::count(&all, kid, after))
    }

    fn record_usage(&self, uses: Vec<Usage>) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let records = txn.open_table(RECORDS).map_err(db_err)?;
            let mut usage = txn.open_table(USAGE).map_err(db_err)?;
            for new in uses {
                let key = new.id.as_u128();
                if records.get(key).map_err(db_err)?.is_none() {
                    continue;
                }
                let old = match usage.get(key).map_err(db_err)? {
                    Some(v) => Some(decode::<Usage>("usage entry", v.value())?),
                    None => None,
                };
                if old.is_some_and(|old| old.at > new.at) {
                    continue;
                }
                usage
                    .insert(key, encode(&new)?.as_slice())
                    .map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    fn claim_events(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let now_ms = now.timestamp_millis();
        let until = now_ms.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut claimed = Vec::new();
        {
            let outbox = txn.open_table(OUTBOX).map_err(db_err)?;
            let mut due = txn.open_table(OUTBOX_DUE).map_err(db_err)?;
            let mut ready: Vec<(i64, String)> = Vec::new();
            for item in due.iter().map_err(db_err)? {
                let (id, at) = item.map_err(db_err)?;
                if at.value() <= now_ms {
                    ready.push((at.value(), id.value().to_owned()));
                }
            }
            if ready.is_empty() {
                // Nothing to write: no commit, so an idle deliverer costs no disk flush.
                return Ok(claimed);
            }
            ready.sort();
            for (_, id) in ready.into_iter().take(limit) {
                match outbox.get(id.as_str()).map_err(db_err)? {
                    Some(v) => {
                        claimed.push(decode::<OutboxEvent>("outbox event", v.value())?);
                        due.insert(id.as_str(), until).map_err(db_err)?;
                    }
                    None => {
                        due.remove(id.as_str()).map_err(db_err)?;
                    }
                }
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(claimed)
    }

    fn settle_event(&self, event: &OutboxEvent) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut outbox = txn.open_table(OUTBOX).map_err(db_err)?;
            if outbox.get(event.id.as_str()).map_err(db_err)?.is_none() {
                return Ok(());
            }
            outbox
                .insert(event.id.as_str(), encode(event)?.as_slice())
                .map_err(db_err)?;
            let mut due = txn.open_table(OUTBOX_DUE).map_err(db_err)?;
            match event.delivery {
                Delivery::Pending => {
                    let at = event.next_attempt_at.unwrap_or(event.created_at);
                    due.insert(event.id.as_str(), at.timestamp_millis())
                        .map_err(db_err)?;
                }
                Delivery::Delivered | Delivery::Failed => {
                    due.remove(event.id.as_str()).map_err(db_err)?;
                }
            }
        }
        txn.commit().map_err(db_err)
    }

    fn events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let outbox = txn.open_table(OUTBOX).map_err(db_err)?;
        let mut all = Vec::new();
        for item in outbox.iter().map_err(db_err)? {
            let (_, v) = item.map_err(db_err)?;
            all.push(decode::<OutboxEvent>("outbox event", v.value())?);
        }
        Ok(newest_first(all, limit))
    }

    fn prune_events(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut dropped = 0;
        {
            let mut outbox = txn.open_table(OUTBOX).map_err(db_err)?;
            let mut due = txn.open_table(OUTBOX_DUE).map_err(db_err)?;
            let mut old = Vec::new();
            for item in outbox.iter().map_err(db_err)? {
                let (id, v) = item.map_err(db_err)?;
                if decode::<OutboxEvent>("outbox event", v.value())?.created_at < before {
                    old.push(id.value().to_owned());
                }
            }
            for id in old {
                outbox.remove(id.as_str()).map_err(db_err)?;
                due.remove(id.as_str()).map_err(db_err)?;
                dropped += 1;
            }
            let mut notices = txn.open_table(NOTICES).map_err(db_err)?;
            notices
                .retain(|_, keep_until| keep_until >= before.timestamp())
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(dropped)
    }

    fn add_notice(
        &self,
        marker: &str,
        keep_until: DateTime<Utc>,
        event: &OutboxEvent,
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut notices = txn.open_table(NOTICES).map_err(db_err)?;
            if notices.get(marker).map_err(db_err)?.is_some() {
                return Ok(false);
            }
            notices
                .insert(marker, keep_until.timestamp())
                .map_err(db_err)?;
            txn.open_table(OUTBOX)
                .map_err(db_err)?
                .insert(event.id.as_str(), encode(event)?.as_slice())
                .map_err(db_err)?;
            let due = event.next_attempt_at.unwrap_or(event.created_at);
            txn.open_table(OUTBOX_DUE)
                .map_err(db_err)?
                .insert(event.id.as_str(), due.timestamp_millis())
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(true)
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<u64, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let seq = {
            let mut audit = txn.open_table(AUDIT).map_err(db_err)?;
            append_audit(&mut audit, entry)?
        };
        txn.commit().map_err(db_err)?;
        Ok(seq)
    }

    fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let audit = txn.open_table(AUDIT).map_err(db_err)?;
        let mut out = Vec::new();
        for item in audit
            .range(after.saturating_add(1)..)
            .map_err(db_err)?
            .take(limit)
        {
            let (k, v) = item.map_err(db_err)?;
            out.push(AuditRecord {
                seq: k.value(),
                entry: decode("audit entry", v.value())?,
            });
        }
        Ok(out)
    }

    fn snapshot(&self) -> Result<StateSnapshot, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let revision = meta.get(REVISION).map_err(db_err)?.map_or(0, |v| v.value());
        let feed = txn.open_table(FEED).map_err(db_err)?;
        let tag = tag_at(&feed, revision)?.unwrap_or(0);
        let state = txn.open_table(STATE).map_err(db_err)?;
        let mut entries = Vec::with_capacity(state.len().map_err(db_err)? as usize);
        let mut decoder = StateDecoder::default();
        for item in state.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            entries.push((Uuid::from_u128(k.value()), decoder.decode(v.value())?));
        }
        Ok(StateSnapshot {
            revision,
            tag,
            entries,
        })
    }

    fn read_feed(&self, after: FeedPosition) -> Result<FeedPage, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let current = meta.get(REVISION).map_err(db_err)?.map_or(0, |v| v.value());
        let feed = txn.open_table(FEED).map_err(db_err)?;
        let revision = after.revision;
        let tag_there = if revision > 0 && revision <= current {
            tag_at(&feed, revision)?
        } else {
            None
        };
        if !on_this_history(after, current, tag_there) {
            // The follower has seen changes this store does not hold: a different or reset
            // store, or one restored from a backup.
            return Ok(FeedPage::Reload);
        }
        if revision == current {
            return Ok(FeedPage::Changes(Vec::new()));
        }
        let mut changes = Vec::new();
        for item in feed.range(revision + 1..).map_err(db_err)?.take(1000) {
            let (k, v) = item.map_err(db_err)?;
            let value: FeedValue = decode("feed entry", v.value())?;
            changes.push(value.into_change(k.value()));
        }
        if changes.first().map(|c| c.revision) != Some(revision + 1) {
            return Ok(FeedPage::Reload);
        }
        Ok(FeedPage::Changes(changes))
    }
}

/// The tag of the feed entry at `revision`, if the feed still holds it.
fn tag_at(
    feed: &redb::ReadOnlyTable<u64, &'static [u8]>,
    revision: u64,
) -> Result<Option<u64>, StoreError> {
    match feed.get(revision).map_err(db_err)? {
        Some(v) => Ok(Some(decode::<FeedValue>("feed entry", v.value())?.tag)),
        None => Ok(None),
    }
}

impl TokenStore for EmbeddedStore {
    async fn commit(&self, write: Write) -> Result<Committed, StoreError> {
        self.blocking(move |inner| inner.commit(write)).await
    }

    async fn get(&self, id: Uuid) -> Result<Option<TokenRecord>, StoreError> {
        self.blocking(move |inner| inner.get(id)).await
    }

    async fn get_by_name(&self, name: &str) -> Result<Option<TokenRecord>, StoreError> {
        let name = name.to_owned();
        self.blocking(move |inner| inner.get_by_name(&name)).await
    }

    async fn list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.blocking(|inner| inner.list()).await
    }

    async fn key_use(&self, kid: &str, after: DateTime<Utc>) -> Result<KeyUse, StoreError> {
        let kid = kid.to_owned();
        self.blocking(move |inner| inner.key_use(&kid, after)).await
    }

    async fn append_audit(&self, entry: AuditEntry) -> Result<u64, StoreError> {
        self.blocking(move |inner| inner.append_audit(&entry)).await
    }

    async fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.blocking(move |inner| inner.audit(after, limit)).await
    }

    async fn snapshot(&self) -> Result<StateSnapshot, StoreError> {
        self.blocking(|inner| inner.snapshot()).await
    }

    async fn changes_since(
        &self,
        after: FeedPosition,
        wait: Duration,
    ) -> Result<FeedPage, StoreError> {
        // Subscribe before reading, so a commit between the read and the wait still wakes us.
        let mut watcher = self.inner.revision.subscribe();
        let revision = after.revision;
        let page = self.blocking(move |inner| inner.read_feed(after)).await?;
        if !matches!(&page, FeedPage::Changes(c) if c.is_empty()) {
            return Ok(page);
        }
        let woke = tokio::time::timeout(wait, watcher.wait_for(|&r| r > revision))
            .await
            .is_ok_and(|r| r.is_ok());
        if !woke {
            return Ok(FeedPage::Changes(Vec::new()));
        }
        self.blocking(move |inner| inner.read_feed(after)).await
    }

    async fn prune_state(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.blocking(move |inner| inner.prune(now)).await
    }

    async fn record_usage(&self, uses: Vec<Usage>) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        self.blocking(move |inner| inner.record_usage(uses)).await
    }

    async fn claim_events(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        self.blocking(move |inner| inner.claim_events(now, lease, limit))
            .await
    }

    async fn settle_event(&self, event: OutboxEvent) -> Result<(), StoreError> {
        self.blocking(move |inner| inner.settle_event(&event)).await
    }

    async fn events(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        self.blocking(move |inner| inner.events(limit)).await
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        self.blocking(move |inner| inner.prune_events(before)).await
    }

    async fn add_notice(
        &self,
        marker: String,
        keep_until: DateTime<Utc>,
        event: OutboxEvent,
    ) -> Result<bool, StoreError> {
        self.blocking(move |inner| inner.add_notice(&marker, keep_until, &event))
            .await
    }
}
