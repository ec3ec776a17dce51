//! Last use: when and from where each token was last accepted, recorded without making any
//! verification wait on the store.
//!
//! A verification only notes the use in memory (a sharded map, one short lock, nothing written
//! when the same token was already noted within the same second from the same address). A
//! background task writes what changed to the store in one batch every few seconds, and once
//! more at shutdown. If the store is down, the batch is kept and retried with the next one.

use crate::lifecycle::Upkeep;
use crate::model::Usage;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use uuid::Uuid;

const SHARDS: usize = 16;

/// How long a token not used since stays in memory.
const FORGET_AFTER_SECS: i64 = 600;

struct Noted {
    at: DateTime<Utc>,
    // An address, not its text: formatting waits for the batch, off the hot path.
    from: Option<IpAddr>,
    /// Not yet written to the store.
    dirty: bool,
}

type Shard = HashMap<Uuid, Noted, foldhash::fast::RandomState>;

/// A use taken from memory for a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pending {
    id: Uuid,
    at: DateTime<Utc>,
    from: Option<IpAddr>,
}

/// Uses noted since the last write.
pub struct UsageRecorder {
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for UsageRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageRecorder").finish_non_exhaustive()
    }
}

impl Default for UsageRecorder {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl UsageRecorder {
    fn shard(&self, id: &Uuid) -> std::sync::MutexGuard<'_, Shard> {
        let i = self.hasher.hash_one(id) as usize % SHARDS;
        // Each critical section is one map operation; a poisoned shard is intact.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Note that token `id` was accepted at `at` from `from`.
    pub fn note(&self, id: Uuid, at: DateTime<Utc>, from: Option<IpAddr>) {
        let mut shard = self.shard(&id);
        match shard.get_mut(&id) {
            Some(noted) if noted.at.timestamp() == at.timestamp() && noted.from == from => {}
            Some(noted) if noted.at <= at => {
                noted.at = at;
                noted.from = from;
                noted.dirty = true;
            }
            Some(_) => {}
            None => {
                shard.insert(
                    id,
                    Noted {
                        at,
                        from,
                        dirty: true,
                    },
                );
            }
        }
    }

    /// Take every use not yet written, and forget tokens idle for a while.
    fn take(&self, now: DateTime<Utc>) -> Vec<Pending> {
        let mut batch = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            shard.retain(|id, noted| {
                if noted.dirty {
                    noted.dirty = false;
                    batch.push(Pending {
                        id: *id,
                        at: noted.at,
                        from: noted.from,
                    });
                }
                (now - noted.at).num_seconds() < FORGET_AFTER_SECS
            });
        }
        batch
    }

    /// Put a batch that could not be written back, unless newer uses replaced it.
    fn restore(&self, batch: Vec<Pending>) {
        for usage in batch {
            let mut shard = self.shard(&usage.id);
            let noted = shard.entry(usage.id).or_insert(Noted {
                at: usage.at,
                from: usage.from,
                dirty: true,
            });
            if noted.at <= usage.at {
                noted.dirty = true;
            }
        }
    }

    /// Write what changed to the store; on failure keep it for the next time.
    pub async fn flush(&self, upkeep: &Upkeep, now: DateTime<Utc>) {
        let batch = self.take(now);
        if batch.is_empty() {
            return;
        }
        let uses = batch
            .iter()
            .map(|p| Usage {
                id: p.id,
                at: p.at,
                from: p.from.map(|ip| ip.to_string()),
            })
            .collect();
        if let Err(e) = upkeep.record_usage(uses).await {
            tracing::warn!(error = %e, uses = batch.len(), "could not record token use; will retry");
            self.restore(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn each_token_is_written_once_per_batch_with_its_latest_use() {
        let recorder = UsageRecorder::default();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        recorder.note(a, at(0), ip("10.0.0.1"));
        recorder.note(a, at(1), ip("10.0.0.2"));
        recorder.note(b, at(1), None);
        recorder.note(a, at(0), ip("10.0.0.9")); // older: ignored
        let mut batch = recorder.take(at(2));
        batch.sort_by_key(|u| u.id);
        assert_eq!(batch.len(), 2);
        assert_eq!((batch[0].at, batch[0].from), (at(1), ip("10.0.0.2")));
        assert!(recorder.take(at(2)).is_empty(), "nothing new");
        recorder.note(a, at(1), ip("10.0.0.2")); // the same second and address: no write
        assert!(recorder.take(at(2)).is_empty());
        recorder.note(a, at(5), ip("10.0.0.2"));
        assert_eq!(recorder.take(at(6)).len(), 1);
    }

    #[test]
    fn a_failed_batch_is_kept_and_idle_tokens_are_forgotten() {
        let recorder = UsageRecorder::default();
        let a = Uuid::from_u128(1);
        recorder.note(a, at(0), None);
        let batch = recorder.take(at(1));
        recorder.restore(batch);
        assert_eq!(recorder.take(at(2)).len(), 1);
        recorder.take(at(FORGET_AFTER_SECS + 1));
        assert!(recorder.shards.iter().all(|s| s.lock().unwrap().is_empty()));
    }
}
