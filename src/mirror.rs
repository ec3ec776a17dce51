//! The state mirror: a verifier's in-memory copy of a store's state map, kept current by
//! following the store's change feed.
//!
//! The mirror loads a snapshot, then applies the feed in revision order, asking each time for
//! the changes after the [`FeedPosition`] it stands on (a revision and its change's tag, so
//! that a store whose history forked under it, in a failover that lost writes, says so). On a
//! gap, a [`FeedPage::Reload`], or any store error (a lost connection, a restart), it reloads the
//! snapshot once the store answers again, because changes may have been missed meanwhile. Every
//! successful poll (even an empty one) counts as hearing from the source; the [`MemoryState`]
//! it feeds refuses to answer once the source has been silent longer than the bound, so
//! verification fails closed with `stale_state`. With [`MirrorOptions::fail_open`] the map keeps
//! answering instead, and the mirror logs an error every few seconds for as long as that lasts.
//!
//! The same code follows both stores: the embedded store wakes it in process, Redis through
//! `XREAD BLOCK`.

use crate::clock::{Clock, SystemClock};
use crate::model::{FeedPage, FeedPosition, StateSnapshot};
use crate::state::MemoryState;
use crate::store::{StoreError, TokenStore};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where a mirror reads the token state from: a [`TokenStore`] (every store is one), or an
/// issuer's `/v1/state` over HTTP (`crate::http_state_source::HttpStateSource`).
///
/// The contract is the store's for these two calls: a snapshot is never behind its revision,
/// and `changes_since` returns changes in order without gaps, or [`FeedPage::Reload`].
pub trait StateSource: Send + Sync + 'static {
    /// The whole state map as of a revision.
    fn snapshot(&self) -> impl Future<Output = Result<StateSnapshot, StoreError>> + Send;

    /// The changes after `after`, waiting up to `wait` for one.
    fn changes_since(
        &self,
        after: FeedPosition,
        wait: Duration,
    ) -> impl Future<Output = Result<FeedPage, StoreError>> + Send;
}

impl<S: TokenStore> StateSource for S {
    fn snapshot(&self) -> impl Future<Output = Result<StateSnapshot, StoreError>> + Send {
        TokenStore::snapshot(self)
    }

    fn changes_since(
        &self,
        after: FeedPosition,
        wait: Duration,
    ) -> impl Future<Output = Result<FeedPage, StoreError>> + Send {
        TokenStore::changes_since(self, after, wait)
    }
}

/// How a mirror follows its store.
#[derive(Clone)]
pub struct MirrorOptions {
    /// How long the source may be silent before verification fails closed (default 30 s).
    pub bound: Duration,
    /// Keep answering from the last known map past the bound (logged as an error).
    pub fail_open: bool,
    /// How long one poll of the feed waits for a change (default 1 s; keep it well under the
    /// bound, since each poll is also the heartbeat).
    pub poll_wait: Duration,
    /// The clock staleness is measured by.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MirrorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorOptions")
            .field("bound", &self.bound)
            .field("fail_open", &self.fail_open)
            .field("poll_wait", &self.poll_wait)
            .finish_non_exhaustive()
    }
}

impl Default for MirrorOptions {
    fn default() -> Self {
        Self {
            bound: Duration::from_secs(30),
            fail_open: false,
            poll_wait: Duration::from_secs(1),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Counters a mirror keeps, for metrics and tests.
#[derive(Debug, Default)]
pub struct MirrorStats {
    reloads: AtomicU64,
    errors: AtomicU64,
}

impl MirrorStats {
    /// Snapshots loaded, the first one included.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Polls that failed because the store did not answer.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

/// A running mirror. Dropping it stops the task that follows the feed.
pub struct StateMirror {
    state: Arc<MemoryState>,
    stats: Arc<MirrorStats>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for StateMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMirror")
            .field("state", &self.state)
            .field("stats", &self.stats)
            .finish()
    }
}

impl StateMirror {
    /// Load a snapshot from `store` and follow its feed on a tokio task. Fails only when the
    /// first snapshot cannot be loaded.
    pub async fn start<S: StateSource>(
        store: Arc<S>,
        options: MirrorOptions,
    ) -> Result<Self, StoreError> {
        let bound_secs = i64::try_from(options.bound.as_secs()).unwrap_or(i64::MAX);
        let state = Arc::new(
            MemoryState::with_bound(options.clock.clone(), Some(bound_secs))
                .failing_open(options.fail_open),
        );
        let stats = Arc::new(MirrorStats::default());
        let position = load(&*store, &state, &stats).await?;
        let task = tokio::spawn(follow(
            store,
            state.clone(),
            stats.clone(),
            options,
            position,
        ));
        Ok(Self { state, stats, task })
    }

    /// The map, to hand to [`crate::Verifier::with_state`].
    pub fn state(&self) -> Arc<MemoryState> {
        self.state.clone()
    }

    /// The mirror's counters.
    pub fn stats(&self) -> &MirrorStats {
        &self.stats
    }
}

impl Drop for StateMirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Load a snapshot; returns where the mirror then stands.
async fn load<S: StateSource>(
    store: &S,
    state: &MemoryState,
    stats: &MirrorStats,
) -> Result<FeedPosition, StoreError> {
    let snapshot = store.snapshot().await?;
    let position = snapshot.position();
    state.load_snapshot(
        snapshot.revision,
        snapshot
            .entries
            .into_iter()
            .map(|(id, record)| (id, record.to_entry())),
    );
    stats.reloads.fetch_add(1, Ordering::Relaxed);
    Ok(position)
}

async fn follow<S: StateSource>(
    store: Arc<S>,
    state: Arc<MemoryState>,
    stats: Arc<MirrorStats>,
    options: MirrorOptions,
    mut position: FeedPosition,
) {
    let mut reload = false;
    let mut backoff = Duration::from_millis(50);
    let mut last_alarm: Option<tokio::time::Instant> = None;
    loop {
        if options.fail_open && state.is_stale() {
            // Failing open is a choice an operator made; make sure nobody forgets it.
            let due = last_alarm.is_none_or(|at| at.elapsed() >= Duration::from_secs(5));
            if due {
                tracing::error!(
                    age_secs = state.age_secs(),
                    "token state is stale and the verifier is FAILING OPEN: deleted, \
                     regenerated or re-permissioned tokens may be accepted"
                );
                last_alarm = Some(tokio::time::Instant::now());
            }
        }
        let result = if reload {
            load(&*store, &state, &stats).await.map(|at| {
                position = at;
                reload = false;
            })
        } else {
            match store.changes_since(position, options.poll_wait).await {
                Ok(FeedPage::Changes(changes)) => {
                    for change in changes {
                        let entry = change.entry.as_ref().map(|e| e.to_entry());
                        if let Err(gap) = state.apply(change.revision, change.id, entry) {
                            tracing::warn!(%gap, "state feed skipped a revision; reloading");
                            reload = true;
                            break;
                        }
                        position = change.position();
                    }
                    if !reload {
                        state.heard_now();
                    }
                    Ok(())
                }
                Ok(FeedPage::Reload) => {
                    reload = true;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(()) => backoff = Duration::from_millis(50),
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "token store did not answer; will reload the state");
                // Changes may be missed while the store is away.
                reload = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{StateChange, StateRecord, StateSnapshot};
    use crate::TokenState as _;
    use chrono::Utc;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use uuid::Uuid;

    /// A feed that answers from a script: each poll takes the next answer; the snapshot is
    /// whatever the test set last.
    #[derive(Default)]
    struct Scripted {
        snapshot: Mutex<StateSnapshot>,
        answers: Mutex<VecDeque<Result<FeedPage, StoreError>>>,
        asked: Mutex<Vec<FeedPosition>>,
    }

    fn deleted() -> StateRecord {
        StateRecord {
            deleted: true,
            min_ver: 0,
            perm: None,
            cidr: None,
            drop_after: None,
        }
    }

    fn change(revision: u64, id: u128) -> StateChange {
        StateChange {
            revision,
            id: Uuid::from_u128(id),
            entry: Some(deleted()),
            tag: 100 + revision,
        }
    }

    impl StateSource for Scripted {
        async fn snapshot(&self) -> Result<StateSnapshot, StoreError> {
            Ok(self.snapshot.lock().unwrap().clone())
        }
        async fn changes_since(
            &self,
            after: FeedPosition,
            wait: Duration,
        ) -> Result<FeedPage, StoreError> {
            {
                let mut asked = self.asked.lock().unwrap();
                if asked.last() != Some(&after) {
                    asked.push(after);
                }
            }
            let answer = self.answers.lock().unwrap().pop_front();
            match answer {
                Some(answer) => answer,
                None => {
                    tokio::time::sleep(wait).await;
                    Ok(FeedPage::Changes(Vec::new()))
                }
            }
        }
    }

    fn options() -> MirrorOptions {
        MirrorOptions {
            poll_wait: Duration::from_millis(5),
            ..MirrorOptions::default()
        }
    }

    async fn until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..2000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("timed out waiting until {what}");
    }

    #[tokio::test]
    async fn a_gap_in_the_feed_makes_the_mirror_reload() {
        let store = Arc::new(Scripted::default());
        let mirror = StateMirror::start(store.clone(), options()).await.unwrap();
        // Revision 1 arrives, then 3: revision 2 was missed.
        *store.snapshot.lock().unwrap() = StateSnapshot {
            revision: 3,
            tag: 42,
            entries: vec![
                (Uuid::from_u128(1), deleted()),
                (Uuid::from_u128(2), deleted()),
            ],
        };
        store.answers.lock().unwrap().extend([
            Ok(FeedPage::Changes(vec![change(1, 1)])),
            Ok(FeedPage::Changes(vec![change(3, 3)])),
        ]);
        until("the snapshot is reloaded", || mirror.stats().reloads() == 2).await;
        let state = mirror.state();
        assert_eq!(state.revision(), 3);
        assert!(state.lookup(&Uuid::from_u128(2)).unwrap().is_some());
        // Revision 3's change was not applied on its own: the snapshot stands for it.
        assert!(state.lookup(&Uuid::from_u128(3)).unwrap().is_none());
        // Each ask names where the mirror stood: nowhere, then revision 1 with its change's
        // tag, then the reloaded snapshot's revision and tag.
        until("the mirror asks from the snapshot", || {
            store.asked.lock().unwrap().len() == 3
        })
        .await;
        let at = |revision, tag| FeedPosition { revision, tag };
        assert_eq!(
            *store.asked.lock().unwrap(),
            [at(0, 0), at(1, 101), at(3, 42)]
        );
    }

    #[tokio::test]
    async fn a_reload_page_or_an_error_makes_the_mirror_reload() {
        let store = Arc::new(Scripted::default());
        let mirror = StateMirror::start(store.clone(), options()).await.unwrap();
        store.answers.lock().unwrap().extend([
            Ok(FeedPage::Reload),
            Err(StoreError::Unavailable("connection reset".into())),
        ]);
        until("both reloads happen", || mirror.stats().reloads() == 3).await;
        assert_eq!(mirror.stats().errors(), 1);
    }

    #[tokio::test]
    async fn a_source_that_stops_answering_fails_closed_past_the_bound() {
        let store = Arc::new(Scripted::default());
        let clock = Arc::new(crate::ManualClock::new(Utc::now()));
        let options = MirrorOptions {
            clock: clock.clone(),
            bound: Duration::from_secs(30),
            ..options()
        };
        let mirror = StateMirror::start(store.clone(), options).await.unwrap();
        store
            .answers
            .lock()
            .unwrap()
            .extend((0..10_000).map(|_| Err(StoreError::Unavailable("down".into()))));
        until("the errors start", || mirror.stats().errors() > 0).await;
        clock.advance(chrono::Duration::seconds(30));
        assert!(mirror.state().lookup(&Uuid::from_u128(1)).is_ok());
        clock.advance(chrono::Duration::seconds(1));
        assert!(matches!(
            mirror.state().lookup(&Uuid::from_u128(1)),
            Err(crate::StateError::Stale { .. })
        ));
        // The source answers again: the mirror reloads and answers again.
        store.answers.lock().unwrap().clear();
        until("the mirror hears from the source", || {
            mirror.state().lookup(&Uuid::from_u128(1)).is_ok()
        })
        .await;
    }
}
