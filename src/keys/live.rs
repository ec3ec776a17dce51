//! The ring a running process holds, swapped whole when the key folder is reloaded.
//!
//! The verifier and the issuer share one [`LiveRing`]. A reload builds a new [`KeyRing`] aside
//! and swaps it in atomically; a reload that fails leaves the old one. Readers never take a
//! lock: the ring is an [`ArcSwap`], and a generation number, bumped after each swap, lets the
//! verifier's signature cache tell a token checked under an older ring (whose key may since
//! have been retired) with one atomic load.

use super::KeyRing;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A key ring that can be replaced while it is in use.
#[derive(Debug)]
pub struct LiveRing {
    ring: ArcSwap<KeyRing>,
    generation: AtomicU64,
}

impl LiveRing {
    /// Start with `ring`, at generation 0.
    pub fn new(ring: Arc<KeyRing>) -> Self {
        Self {
            ring: ArcSwap::new(ring),
            generation: AtomicU64::new(0),
        }
    }

    /// The ring now.
    pub fn load(&self) -> Arc<KeyRing> {
        self.ring.load_full()
    }

    /// The ring now, without touching its reference count: for a short look on a hot path.
    pub fn guard(&self) -> arc_swap::Guard<Arc<KeyRing>> {
        self.ring.load()
    }

    /// The number of swaps so far. Read it *before* [`LiveRing::load`]: a ring loaded after
    /// reading generation `g` is generation `g` or newer, never older.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Replace the ring; returns the new generation.
    pub fn replace(&self, ring: Arc<KeyRing>) -> u64 {
        self.ring.store(ring);
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }
}

impl From<Arc<KeyRing>> for LiveRing {
    fn from(ring: Arc<KeyRing>) -> Self {
        Self::new(ring)
    }
}
