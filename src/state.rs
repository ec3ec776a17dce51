//! Token state: what a verifier consults after the signature, so that deletion, regeneration
//! and permission updates reach tokens already handed out.
//!
//! The state map holds only tokens whose signed claims are no longer the whole truth
//! (docs/architecture.md): deleted tokens, a minimum version after a regeneration, and permissions that
//! replace the signed ones after an update. A verifier keeps it in memory and looks a token up
//! by id on every verification, so implementations must answer from memory, never block on I/O.
//!
//! [`MemoryState`] is the in-process map: it applies changes in revision order, refuses a gap
//! (the caller must reload a snapshot), and reports itself stale when it has not heard from its
//! source within a bound, so that verification fails closed.
//!
//! Memory matters here: a verifier may hold a million entries. Entries are stored inline (24
//! bytes beside their 16-byte key: two flags, and one pointer each for permissions and
//! networks), and equal permission sets and equal network lists are shared, since updates tend
//! to give many tokens the same ones.

use crate::cidr::CidrList;
use crate::clock::{Clock, SystemClock};
use crate::permissions::Permissions;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use uuid::Uuid;

/// What the state map says about one token id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateEntry {
    /// Every version of the token is rejected.
    pub deleted: bool,
    /// Versions below this are rejected (a regeneration bumps it); 0 or 1 restricts nothing.
    pub min_ver: u32,
    /// Permissions that replace the signed `perm` claim.
    pub perm: Option<Arc<Permissions>>,
    /// Networks that replace the signed `cidr` claim; an empty list lifts the restriction.
    pub cidr: Option<CidrList>,
}

/// A state source that cannot vouch for its answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The source has not been heard from within its bound.
    #[error(
        "token state is stale: last heard from its source {age_secs} s ago (bound {bound_secs} s)"
    )]
    Stale {
        /// Seconds since the source was last heard from.
        age_secs: i64,
        /// The configured bound.
        bound_secs: i64,
    },
}

/// The token state a verifier consults.
///
/// # Contract
/// - `lookup` answers from memory: it must not block on I/O, because it runs on every
///   verification.
/// - `Ok(None)` means "the signed claims are the whole truth for this id". An implementation
///   that cannot vouch for that (its view is older than it may be) must return an error, never
///   `Ok(None)`: the verifier turns the error into a refusal (`stale_state`).
/// - Answers for one id never go backwards in revision order.
pub trait TokenState: Send + Sync {
    /// The entry for `id`, if the map holds one.
    fn lookup(&self, id: &Uuid) -> Result<Option<StateEntry>, StateError>;
}

/// No state at all: pure offline verification with a public key. A deleted or regenerated token
/// is accepted until it expires, like any signed token.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoState;

impl TokenState for NoState {
    fn lookup(&self, _id: &Uuid) -> Result<Option<StateEntry>, StateError> {
        Ok(None)
    }
}

/// A change to apply did not follow the last one applied: changes were missed, reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("revision gap: at {at}, got {got}; reload a snapshot")]
pub struct RevisionGap {
    /// The last revision applied.
    pub at: u64,
    /// The revision offered.
    pub got: u64,
}

type Hasher = foldhash::fast::RandomState;

/// The smallest pool size at which unused permission sets are swept out.
const SWEEP_MIN: usize = 1024;

/// The map and the permission sets its entries share.
struct Map {
    entries: HashMap<Uuid, StateEntry, Hasher>,
    /// One copy of each distinct permission set in use.
    perms: HashSet<Arc<Permissions>, Hasher>,
    /// One copy of each distinct network list in use.
    cidrs: HashSet<CidrList, Hasher>,
    /// Pool size at which to sweep out sets nobody uses (see [`Map::intern`]).
    sweep_at: usize,
}

impl Map {
    fn new() -> Self {
        Self {
            entries: HashMap::default(),
            perms: HashSet::default(),
            cidrs: HashSet::default(),
            sweep_at: SWEEP_MIN,
        }
    }

    /// `entry` with its permissions replaced by the shared copy.
    fn intern(&mut self, mut entry: StateEntry) -> StateEntry {
        if let Some(perm) = entry.perm.take() {
            let shared = match self.perms.get(&perm) {
                Some(shared) => shared.clone(),
                None => {
                    // A set still held by a verified token when its entry went stays pooled;
                    // sweeping when the pool has doubled keeps such leftovers bounded.
                    if self.perms.len() >= self.sweep_at {
                        self.perms.retain(|p| Arc::strong_count(p) > 1);
                        self.sweep_at = (2 * self.perms.len()).max(SWEEP_MIN);
                    }
                    // A clone is sized exactly; a freshly parsed set carries the slack of its
                    // parser's growing vectors (more than half again its size).
                    let compact = Arc::new(Permissions::clone(&perm));
                    self.perms.insert(compact.clone());
                    compact
                }
            };
            entry.perm = Some(shared);
        }
        if let Some(cidr) = entry.cidr.take() {
            // Lists are small and bounded (32 networks), and few distinct ones exist: the pool
            // keeps one of each in use; `release` drops a list when its last entry goes.
            let shared = match self.cidrs.get(&cidr) {
                Some(shared) => shared.clone(),
                None => {
                    self.cidrs.insert(cidr.clone());
                    cidr
                }
            };
            entry.cidr = Some(shared);
        }
        entry
    }

    /// Forget a permission set no entry uses any more.
    fn release(&mut self, old: Option<StateEntry>) {
        let Some(old) = old else { return };
        if let Some(perm) = old.perm {
            // The pool's copy and `perm` itself: nobody else.
            if Arc::strong_count(&perm) == 2 {
                self.perms.remove(&perm);
            }
        }
        if let Some(cidr) = old.cidr {
            if cidr.shared_count() == 2 {
                self.cidrs.remove(&cidr);
            }
        }
    }

    fn set(&mut self, id: Uuid, entry: Option<StateEntry>) {
        let old = match entry {
            Some(entry) => {
                let entry = self.intern(entry);
                self.entries.insert(id, entry)
            }
            None => self.entries.remove(&id),
        };
        self.release(old);
    }
}

/// The state map in memory, fed by a snapshot plus changes in revision order.
pub struct MemoryState {
    map: RwLock<Map>,
    revision: AtomicU64,
    clock: Arc<dyn Clock>,
    /// Unix seconds when the source was last heard from.
    heard: AtomicI64,
    /// Seconds after which answers are refused as stale; `None` never goes stale.
    bound_secs: Option<i64>,
    /// Past the bound, answer from the last known map instead of refusing.
    fail_open: bool,
}

impl std::fmt::Debug for MemoryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryState")
            .field("entries", &self.len())
            .field("revision", &self.revision())
            .field("bound_secs", &self.bound_secs)
            .finish()
    }
}

impl Default for MemoryState {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryState {
    /// An empty map at revision 0 that never goes stale (its owner is its source).
    pub fn new() -> Self {
        Self::with_bound(Arc::new(SystemClock), None)
    }

    /// An empty map that refuses to answer once its source has been silent longer than
    /// `bound_secs` seconds by `clock`.
    pub fn with_bound(clock: Arc<dyn Clock>, bound_secs: Option<i64>) -> Self {
        let heard = clock.now().timestamp();
        Self {
            map: RwLock::new(Map::new()),
            revision: AtomicU64::new(0),
            clock,
            heard: AtomicI64::new(heard),
            bound_secs,
            fail_open: false,
        }
    }

    /// Past the bound, keep answering from the last known map instead of refusing. This trades
    /// safety for availability: a token deleted while the source is away keeps working. Whoever
    /// feeds the map must say so loudly (the state mirror logs an error every few seconds).
    pub fn failing_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// Seconds since the source was last heard from.
    pub fn age_secs(&self) -> i64 {
        self.clock.now().timestamp() - self.heard.load(Ordering::Acquire)
    }

    /// Whether the source has been silent longer than the bound.
    pub fn is_stale(&self) -> bool {
        self.bound_secs.is_some_and(|bound| self.age_secs() > bound)
    }

    /// The last revision applied.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// How many entries the map holds.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// How many distinct permission sets the entries share.
    pub fn distinct_permissions(&self) -> usize {
        self.read().perms.len()
    }

    /// How many distinct network lists the entries share.
    pub fn distinct_cidr_lists(&self) -> usize {
        self.read().cidrs.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replace the whole map with a snapshot taken at `revision`.
    pub fn load_snapshot(
        &self,
        revision: u64,
        entries: impl IntoIterator<Item = (Uuid, StateEntry)>,
    ) {
        let entries = entries.into_iter();
        let mut map = Map::new();
        map.entries.reserve(entries.size_hint().0);
        for (id, entry) in entries {
            map.set(id, Some(entry));
        }
        let mut guard = self.write();
        *guard = map;
        self.revision.store(revision, Ordering::Release);
        drop(guard);
        self.heard_now();
    }

    /// Apply the change with revision `revision`: set the entry for `id`, or drop it with
    /// `None`. A change at or below the current revision was already applied and is ignored;
    /// one past the next is a gap.
    pub fn apply(
        &self,
        revision: u64,
        id: Uuid,
        entry: Option<StateEntry>,
    ) -> Result<(), RevisionGap> {
        let mut guard = self.write();
        let at = self.revision.load(Ordering::Acquire);
        if revision <= at {
            return Ok(());
        }
        if revision != at + 1 {
            return Err(RevisionGap { at, got: revision });
        }
        guard.set(id, entry);
        self.revision.store(revision, Ordering::Release);
        drop(guard);
        self.heard_now();
        Ok(())
    }

    /// Record that the source was heard from (a heartbeat with no change).
    pub fn heard_now(&self) {
        self.heard
            .store(self.clock.now().timestamp(), Ordering::Release);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        // A panic while holding the lock cannot leave the map inconsistent: every write is one
        // insert, remove or swap, and at worst a permission set stays pooled. So a poisoned lock
        // still guards a consistent map.
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl TokenState for MemoryState {
    fn lookup(&self, id: &Uuid) -> Result<Option<StateEntry>, StateError> {
        if let Some(bound_secs) = self.bound_secs.filter(|_| !self.fail_open) {
            let age_secs = self.age_secs();
            if age_secs > bound_secs {
                return Err(StateError::Stale {
                    age_secs,
                    bound_secs,
                });
            }
        }
        Ok(self.read().entries.get(id).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn deleted() -> StateEntry {
        StateEntry {
            deleted: true,
            ..StateEntry::default()
        }
    }

    #[test]
    fn changes_apply_in_revision_order_and_a_gap_is_refused() {
        let state = MemoryState::new();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        state.apply(1, a, Some(deleted())).unwrap();
        state.apply(2, b, Some(deleted())).unwrap();
        assert_eq!(state.apply(4, a, None), Err(RevisionGap { at: 2, got: 4 }));
        state.apply(2, b, None).unwrap(); // replayed: ignored
        assert_eq!(state.lookup(&b).unwrap(), Some(deleted()));
        state.apply(3, a, None).unwrap();
        assert_eq!(state.lookup(&a).unwrap(), None);
        assert_eq!((state.revision(), state.len()), (3, 1));
    }

    #[test]
    fn equal_permission_sets_are_shared_and_released_when_unused() {
        let state = MemoryState::new();
        let perm = |p: Permissions| StateEntry {
            perm: Some(Arc::new(p)),
            ..StateEntry::default()
        };
        state
            .apply(1, Uuid::from_u128(1), Some(perm(Permissions::SuperAdmin)))
            .unwrap();
        state
            .apply(2, Uuid::from_u128(2), Some(perm(Permissions::SuperAdmin)))
            .unwrap();
        assert_eq!(state.distinct_permissions(), 1);
        let a = state
            .lookup(&Uuid::from_u128(1))
            .unwrap()
            .unwrap()
            .perm
            .unwrap();
        let b = state
            .lookup(&Uuid::from_u128(2))
            .unwrap()
            .unwrap()
            .perm
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        state.apply(3, Uuid::from_u128(1), None).unwrap();
        assert_eq!(state.distinct_permissions(), 1);
        state.apply(4, Uuid::from_u128(2), Some(deleted())).unwrap();
        assert_eq!(state.distinct_permissions(), 0);
    }

    #[test]
    fn equal_network_lists_are_shared_and_released_when_unused() {
        let state = MemoryState::new();
        let bound = |text: &str| StateEntry {
            cidr: Some(CidrList::parse(&[text]).unwrap()),
            ..StateEntry::default()
        };
        state
            .apply(1, Uuid::from_u128(1), Some(bound("10.0.0.0/8")))
            .unwrap();
        state
            .apply(2, Uuid::from_u128(2), Some(bound("10.1.2.3/8")))
            .unwrap();
        assert_eq!(state.distinct_cidr_lists(), 1);
        let a = state
            .lookup(&Uuid::from_u128(1))
            .unwrap()
            .unwrap()
            .cidr
            .unwrap();
        let b = state
            .lookup(&Uuid::from_u128(2))
            .unwrap()
            .unwrap()
            .cidr
            .unwrap();
        assert!(a.ptr_eq(&b));
        drop((a, b));
        state.apply(3, Uuid::from_u128(1), None).unwrap();
        assert_eq!(state.distinct_cidr_lists(), 1);
        state.apply(4, Uuid::from_u128(2), Some(deleted())).unwrap();
        assert_eq!(state.distinct_cidr_lists(), 0);
        assert_eq!(std::mem::size_of::<StateEntry>(), 24);
    }

    #[test]
    fn a_snapshot_replaces_everything() {
        let state = MemoryState::new();
        state.apply(1, Uuid::from_u128(1), Some(deleted())).unwrap();
        state.load_snapshot(10, [(Uuid::from_u128(2), deleted())]);
        assert_eq!(state.revision(), 10);
        assert_eq!(state.lookup(&Uuid::from_u128(1)).unwrap(), None);
        assert!(state.lookup(&Uuid::from_u128(2)).unwrap().is_some());
    }

    #[test]
    fn a_silent_source_makes_lookups_fail_past_the_bound() {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let state = MemoryState::with_bound(clock.clone(), Some(30));
        clock.advance(chrono::Duration::seconds(30));
        assert_eq!(state.lookup(&Uuid::from_u128(1)), Ok(None));
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(
            state.lookup(&Uuid::from_u128(1)),
            Err(StateError::Stale {
                age_secs: 31,
                bound_secs: 30
            })
        );
        state.heard_now();
        assert_eq!(state.lookup(&Uuid::from_u128(1)), Ok(None));
    }

    #[test]
    fn failing_open_keeps_answering_past_the_bound() {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let state = MemoryState::with_bound(clock.clone(), Some(30)).failing_open(true);
        state.apply(1, Uuid::from_u128(1), Some(deleted())).unwrap();
        clock.advance(chrono::Duration::seconds(31));
        assert!(state.is_stale());
        assert_eq!(state.age_secs(), 31);
        assert_eq!(state.lookup(&Uuid::from_u128(1)).unwrap(), Some(deleted()));
    }
}
