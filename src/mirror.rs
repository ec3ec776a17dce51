//! The state mirror: a verifier's in-memory copy of a store's state map, kept current by
//! following the store's change feed.
//!
//! The mirror loads a snapshot, then applies the feed in revision order. On a gap, a
//! [`FeedPage::Reload`], or any store error (a lost connection, a restart), it reloads the
//! snapshot once the store answers again, because changes may have been missed meanwhile. Every
//! successful poll (even an empty one) counts as hearing from the source; the [`MemoryState`]
//! it feeds refuses to answer once the source has been silent longer than the bound, so
//! verification fails closed with `stale_state`. With [`MirrorOptions::fail_open`] the map keeps
//! answering instead, and the mirror logs an error every few seconds for as long as that lasts.
//!
//! The same code follows both stores: the embedded store wakes it in process, Redis through
//! `XREAD BLOCK`.

use crate::clock::{Clock, SystemClock};
use crate::state::MemoryState;
use crate::store::{FeedPage, StoreError, TokenStore};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    pub async fn start<S: TokenStore>(
        store: Arc<S>,
        options: MirrorOptions,
    ) -> Result<Self, StoreError> {
        let bound_secs = i64::try_from(options.bound.as_secs()).unwrap_or(i64::MAX);
        let state = Arc::new(
            MemoryState::with_bound(options.clock.clone(), Some(bound_secs))
                .failing_open(options.fail_open),
        );
        let stats = Arc::new(MirrorStats::default());
        load(&*store, &state, &stats).await?;
        let task = tokio::spawn(follow(store, state.clone(), stats.clone(), options));
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

async fn load<S: TokenStore>(
    store: &S,
    state: &MemoryState,
    stats: &MirrorStats,
) -> Result<(), StoreError> {
    let snapshot = store.snapshot().await?;
    state.load_snapshot(
        snapshot.revision,
        snapshot
            .entries
            .into_iter()
            .map(|(id, record)| (id, record.to_entry())),
    );
    stats.reloads.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn follow<S: TokenStore>(
    store: Arc<S>,
    state: Arc<MemoryState>,
    stats: Arc<MirrorStats>,
    options: MirrorOptions,
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
            load(&*store, &state, &stats).await.map(|()| {
                reload = false;
            })
        } else {
            match store
                .changes_since(state.revision(), options.poll_wait)
                .await
            {
                Ok(FeedPage::Changes(changes)) => {
                    for change in changes {
                        let entry = change.entry.as_ref().map(|e| e.to_entry());
                        if let Err(gap) = state.apply(change.revision, change.id, entry) {
                            tracing::warn!(%gap, "state feed skipped a revision; reloading");
                            reload = true;
                            break;
                        }
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
