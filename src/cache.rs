//! A bounded cache of tokens whose signature and claims have already been checked.
//!
//! Keyed by the whole token string (compared in full, never by a hash alone), so an entry can
//! only be found by presenting exactly the bytes that were verified. Only tokens that passed
//! the signature check are offered, so an attacker cannot fill it with garbage; a full shard
//! forgets its oldest entry. Sharded so that concurrent verifiers rarely share a lock.
//!
//! While a shard has room, a verified token is admitted at once. A full shard admits a token
//! only on its second sighting (the "doorkeeper" of TinyLFU): a small table of hashes remembers
//! which verified tokens were seen recently. Tokens seen only once, common on a gateway with
//! many clients, then never cost an insertion and an eviction, and never push a hot token out.
//! The table decides admission only; a hash collision at worst admits a token that was itself
//! fully verified.
//!
//! A token string is hashed once per lookup: the shard, the doorkeeper slot and the shard's
//! table all use that one hash.

use hashbrown::HashTable;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

struct Entry<V> {
    hash: u64,
    token: Arc<str>,
    value: V,
}

impl<V> Entry<V> {
    /// The full hash first: the table matches on 7 bits of it, and on a false match, reading the
    /// stored token would be one more cache miss on a cold lookup.
    fn is(&self, hash: u64, token: &str) -> bool {
        self.hash == hash && *self.token == *token
    }
}

struct Shard<V> {
    table: HashTable<Entry<V>>,
    /// Oldest first, for eviction.
    order: VecDeque<(u64, Arc<str>)>,
    // Counted under the shard's lock, which a lookup holds anyway: no extra atomic.
    hits: u64,
    misses: u64,
}

/// A bounded, sharded map from token strings to verified values.
pub(crate) struct SigCache<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    per_shard: usize,
    /// Hashes of tokens seen once, one per slot; a power-of-two number of slots.
    seen: Box<[AtomicU64]>,
    // Seeded per process, so neither shards nor doorkeeper slots can be steered from outside.
    hasher: foldhash::fast::RandomState,
}

/// A lookup that found nothing, carrying the token's hash for [`SigCache::offer`].
pub(crate) struct Miss(u64);

impl<V: Clone> SigCache<V> {
    /// A cache holding about `capacity` tokens; 0 disables it.
    pub(crate) fn new(capacity: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    table: HashTable::new(),
                    order: VecDeque::new(),
                    hits: 0,
                    misses: 0,
                })
            })
            .collect();
        let slots = if capacity == 0 {
            0
        } else {
            capacity.next_power_of_two()
        };
        Self {
            shards,
            per_shard: capacity.div_ceil(SHARDS),
            seen: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn lock(&self, hash: u64) -> std::sync::MutexGuard<'_, Shard<V>> {
        // Every critical section is a single map or queue operation; a poisoned shard is intact.
        let shard = &self.shards[(hash >> 59) as usize % SHARDS];
        shard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value remembered for exactly this token string.
    pub(crate) fn get(&self, token: &str) -> Result<V, Miss> {
        let hash = self.hasher.hash_one(token);
        if self.per_shard == 0 {
            return Err(Miss(hash));
        }
        let mut shard = self.lock(hash);
        match shard.table.find(hash, |e| e.is(hash, token)) {
            Some(entry) => {
                let value = entry.value.clone();
                shard.hits += 1;
                Ok(value)
            }
            None => {
                shard.misses += 1;
                Err(Miss(hash))
            }
        }
    }

    /// Lookups that found their token, and lookups that did not, since the cache was made.
    pub(crate) fn stats(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(hits, misses), shard| {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            (hits + shard.hits, misses + shard.misses)
        })
    }

    /// Offer a verified token: admitted while its shard has room, and then only if it was
    /// offered recently already.
    pub(crate) fn offer(&self, miss: Miss, token: &str, value: V) {
        let Miss(hash) = miss;
        if self.per_shard == 0 {
            return;
        }
        let slot = &self.seen[hash as usize & (self.seen.len() - 1)];
        // Zero marks an empty slot: a token whose hash is zero gets in only while there is room.
        let seen_before = slot.swap(hash, Ordering::Relaxed) == hash;
        let mut shard = self.lock(hash);
        let full = shard.table.len() >= self.per_shard;
        if (full && !seen_before) || shard.table.find(hash, |e| e.is(hash, token)).is_some() {
            return;
        }
        while shard.table.len() >= self.per_shard {
            let Some((old_hash, oldest)) = shard.order.pop_front() else {
                break;
            };
            if let Ok(entry) = shard
                .table
                .find_entry(old_hash, |e| Arc::ptr_eq(&e.token, &oldest))
            {
                entry.remove();
            }
        }
        let token: Arc<str> = Arc::from(token);
        shard.order.push_back((hash, token.clone()));
        shard
            .table
            .insert_unique(hash, Entry { hash, token, value }, |e| e.hash);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).table.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer_twice(cache: &SigCache<i32>, token: &str, value: i32) {
        for _ in 0..2 {
            if let Err(miss) = cache.get(token) {
                cache.offer(miss, token, value);
            }
        }
    }

    #[test]
    fn a_token_is_admitted_at_once_while_there_is_room_then_on_its_second_sighting() {
        let cache = SigCache::new(16); // one token per shard
        let miss = cache.get("first").unwrap_err();
        cache.offer(miss, "first", 0);
        assert_eq!(cache.get("first").ok(), Some(0), "room: admitted at once");
        for i in 0..1000 {
            offer_twice(&cache, &format!("token-{i}"), i);
        }
        assert_eq!(cache.len(), 16, "every shard is full");
        let miss = cache.get("new").unwrap_err();
        cache.offer(miss, "new", 1);
        assert!(cache.get("new").is_err(), "full, seen once: not admitted");
        let miss = cache.get("new").unwrap_err();
        cache.offer(miss, "new", 1);
        assert_eq!(cache.get("new").ok(), Some(1), "seen twice: admitted");
    }

    #[test]
    fn the_cache_stays_within_its_bound_and_finds_exact_strings_only() {
        let cache = SigCache::new(64);
        for i in 0..1000 {
            offer_twice(&cache, &format!("token-{i}"), i);
        }
        assert!(cache.len() <= 64, "{}", cache.len());
        assert_eq!(cache.get("token-999").ok(), Some(999));
        assert!(cache.get("token-999 ").is_err());
        assert!(cache.get("token-0").is_err(), "the oldest were forgotten");
    }

    #[test]
    fn a_zero_capacity_cache_holds_nothing() {
        let cache = SigCache::new(0);
        offer_twice(&cache, "a", 1);
        assert!(cache.get("a").is_err());
    }
}
