//! A bounded map with per-entry expiry, read on the request path without allocating.
//!
//! Built on `quick_cache`'s sharded cache: a hit takes one shard's read lock (a writer holds
//! that shard only for one insert, never for a copy or a sort of the map), clones the value and
//! allocates nothing, so the cached signed-images path stays allocation-free. An insert costs
//! the same whatever the map holds: an audit over many distinct images pays per image, not per
//! image times the map's size. The bound is `capacity` entries; past it the cache evicts (S3-FIFO:
//! entries read again outlive entries read once), so distinct images cannot grow memory without
//! end.
//!
//! The cache has no notion of time: each entry carries its own deadline, and an entry past it
//! reads as absent. It is removed when it is read after its deadline, or evicted like any other
//! entry when the map is full.

use std::borrow::Borrow;
use std::hash::Hash;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

/// Longer than any TTL means anything, and short enough that `Instant + ttl` cannot overflow
/// (which panics) whatever duration a policy spells out.
const LONGEST_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Debug, Clone)]
struct Entry<V> {
    value: V,
    expires: Instant,
}

pub struct TtlMap<K, V> {
    entries: Cache<K, Entry<V>>,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlMap<K, V> {
    /// A map of at most about `capacity` entries: the bound is split evenly between the shards,
    /// so it is exact when `capacity` is a multiple of 32 (the shard count is a power of two
    /// that leaves each shard 32 entries at least).
    pub fn new(capacity: usize) -> Self {
        TtlMap {
            entries: Cache::new(capacity.max(1)),
        }
    }

    /// The value under `key` unless it has expired by `now`. Allocates nothing.
    pub fn get<Q>(&self, key: &Q, now: Instant) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entry = self.entries.get(key)?;
        if entry.expires > now {
            return Some(entry.value);
        }
        // Dead, and asked for: drop it now rather than let it hold a slot until evicted. A
        // value inserted since, which expires later, stays.
        self.entries.remove_if(key, |e| e.expires <= now);
        None
    }

    /// Remembers `value` under `key` for `ttl`, replacing what was there (a fresh verdict
    /// replaces a stale one whatever their TTLs).
    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            // Expired at birth: it would never be read, but the value it replaces could be.
            self.entries.remove(&key);
            return;
        }
        let expires = Instant::now() + ttl.min(LONGEST_TTL);
        self.entries.insert(key, Entry { value, expires });
    }

    /// The entries held, counting those expired but not yet removed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn an_entry_reads_as_absent_once_its_ttl_has_passed() {
        let map: TtlMap<Arc<str>, u32> = TtlMap::new(64);
        let now = Instant::now();
        map.insert("a".into(), 1, Duration::from_secs(10));
        assert_eq!(map.get("a", now), Some(1));
        assert_eq!(map.get("a", now + Duration::from_secs(11)), None);
        assert_eq!(map.len(), 0, "an expired entry that was read is removed");
        assert_eq!(map.get("a", now), None);
    }

    #[test]
    fn each_entry_expires_after_its_own_ttl() {
        // As the verifier uses it: verified for the cache TTL, rejected for the negative TTL,
        // a registry error for a few seconds.
        let map: TtlMap<Arc<str>, &str> = TtlMap::new(64);
        let now = Instant::now();
        map.insert("verified".into(), "v", 10 * MINUTE);
        map.insert("rejected".into(), "r", MINUTE / 2);
        map.insert("unavailable".into(), "u", Duration::from_secs(5));
        let at = |secs| now + Duration::from_secs(secs);
        assert_eq!(map.get("unavailable", at(4)), Some("u"));
        assert_eq!(map.get("unavailable", at(6)), None);
        assert_eq!(map.get("rejected", at(6)), Some("r"));
        assert_eq!(map.get("rejected", at(31)), None);
        assert_eq!(map.get("verified", at(31)), Some("v"));
        assert_eq!(map.get("verified", at(601)), None);
    }

    #[test]
    fn a_new_value_replaces_the_old_one_with_its_own_ttl() {
        let map: TtlMap<Arc<str>, &str> = TtlMap::new(64);
        let now = Instant::now();
        map.insert("image".into(), "verified", 10 * MINUTE);
        map.insert("image".into(), "unavailable", Duration::from_secs(5));
        assert_eq!(map.get("image", now), Some("unavailable"));
        assert_eq!(map.get("image", now + Duration::from_secs(6)), None);
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn a_value_expired_at_birth_is_not_kept_and_clears_the_old_one() {
        let map: TtlMap<Arc<str>, u32> = TtlMap::new(64);
        map.insert("gone".into(), 1, Duration::ZERO);
        map.insert("kept".into(), 2, MINUTE);
        assert_eq!(map.len(), 1);
        map.insert("kept".into(), 3, Duration::ZERO);
        assert_eq!(map.get("kept", Instant::now()), None);
        assert!(map.is_empty());
    }

    #[test]
    fn a_ttl_too_long_to_add_to_an_instant_means_a_long_time() {
        let map: TtlMap<Arc<str>, u32> = TtlMap::new(64);
        map.insert("a".into(), 1, Duration::MAX);
        assert_eq!(
            map.get("a", Instant::now() + 300 * 24 * 60 * MINUTE),
            Some(1)
        );
    }

    #[test]
    fn the_capacity_bounds_the_entries_and_the_newest_is_kept() {
        const CAPACITY: usize = 1024;
        let map: TtlMap<(u64, u64), u64> = TtlMap::new(CAPACITY);
        for i in 0..20 * CAPACITY as u64 {
            map.insert((7, i), i, 10 * MINUTE);
            // What was just verified is what the review waiting for it reads next.
            assert_eq!(map.get(&(7, i), Instant::now()), Some(i), "entry {i}");
            assert!(map.len() <= CAPACITY, "{} entries after {i}", map.len());
        }
        assert!(map.len() > CAPACITY / 2, "{} entries", map.len());
    }

    #[test]
    fn entries_read_again_outlive_entries_read_once() {
        const CAPACITY: usize = 1024;
        let map: TtlMap<(u64, u64), u64> = TtlMap::new(CAPACITY);
        let now = Instant::now();
        for i in 0..64 {
            map.insert((1, i), i, 10 * MINUTE);
            assert_eq!(map.get(&(1, i), now), Some(i));
        }
        // An audit sweeps more images than the cache holds, each verified and then read once
        // by the review of its pod, as the verifier does.
        for i in 0..4 * CAPACITY as u64 {
            map.insert((2, i), i, 10 * MINUTE);
            assert_eq!(map.get(&(2, i), now), Some(i));
            for j in 0..64 {
                if i % 256 == 0 {
                    // The images of the cluster's running workloads, reviewed again and again.
                    assert_eq!(map.get(&(1, j), now), Some(j), "hot entry {j} after {i}");
                }
            }
        }
    }
}
