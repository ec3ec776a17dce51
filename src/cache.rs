//! A bounded cache of tokens whose signature and claims have already been checked.
//!
//! Keyed by the whole token string (compared in full, never by a hash alone), so an entry can
//! only be found by presenting exactly the bytes that were verified. Only tokens that passed
//! the signature check are inserted, so an attacker cannot fill it with garbage; a full shard
//! forgets its oldest entry. Sharded so that concurrent verifiers rarely share a lock.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

struct Shard<V> {
    map: HashMap<Arc<str>, V, foldhash::fast::RandomState>,
    order: VecDeque<Arc<str>>,
}

/// A bounded, sharded map from token strings to verified values.
pub(crate) struct SigCache<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    per_shard: usize,
    // Seeded per process, so shard choice cannot be steered from outside.
    hasher: foldhash::fast::RandomState,
}

impl<V: Clone> SigCache<V> {
    /// A cache holding about `capacity` tokens; 0 disables it.
    pub(crate) fn new(capacity: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    map: HashMap::default(),
                    order: VecDeque::new(),
                })
            })
            .collect();
        Self {
            shards,
            per_shard: capacity.div_ceil(SHARDS),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, token: &str) -> &Mutex<Shard<V>> {
        let index = self.hasher.hash_one(token) as usize % SHARDS;
        &self.shards[index]
    }

    fn lock(shard: &Mutex<Shard<V>>) -> std::sync::MutexGuard<'_, Shard<V>> {
        // Every critical section is a single map or queue operation; a poisoned shard is intact.
        shard.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, token: &str) -> Option<V> {
        if self.per_shard == 0 {
            return None;
        }
        Self::lock(self.shard(token)).map.get(token).cloned()
    }

    pub(crate) fn insert(&self, token: &str, value: V) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = Self::lock(self.shard(token));
        if shard.map.contains_key(token) {
            return;
        }
        while shard.map.len() >= self.per_shard {
            match shard.order.pop_front() {
                Some(oldest) => {
                    shard.map.remove(&oldest);
                }
                None => break,
            }
        }
        let key: Arc<str> = Arc::from(token);
        shard.order.push_back(key.clone());
        shard.map.insert(key, value);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| Self::lock(s).map.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_within_its_bound_and_finds_exact_strings_only() {
        let cache = SigCache::new(64);
        for i in 0..1000 {
            cache.insert(&format!("token-{i}"), i);
        }
        assert!(cache.len() <= 64, "{}", cache.len());
        assert_eq!(cache.get("token-999"), Some(999));
        assert_eq!(cache.get("token-999 "), None);
        assert_eq!(cache.get("token-0"), None, "the oldest were forgotten");
    }

    #[test]
    fn a_zero_capacity_cache_holds_nothing() {
        let cache = SigCache::new(0);
        cache.insert("a", 1);
        assert_eq!(cache.get("a"), None);
    }
}
