//! A read-mostly map with per-entry expiry, read without locks.
//!
//! Readers load an arc-swapped snapshot (no lock, no allocation); writers, which only run after
//! a registry round trip, copy the map, drop expired entries and swap the copy in. The copy is
//! bounded by `capacity`, so a flood of distinct images cannot grow memory without end.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

#[derive(Debug, Clone)]
struct Entry<V> {
    value: V,
    expires: Instant,
}

pub struct TtlMap<K, V> {
    current: ArcSwap<HashMap<K, Entry<V>>>,
    /// Serializes writers, so two inserts cannot lose each other's entry.
    writer: Mutex<()>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlMap<K, V> {
    pub fn new(capacity: usize) -> Self {
        TtlMap {
            current: ArcSwap::from_pointee(HashMap::new()),
            writer: Mutex::new(()),
            capacity: capacity.max(1),
        }
    }

    /// The value under `key` unless it has expired.
    pub fn get<Q>(&self, key: &Q, now: Instant) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.current.load();
        map.get(key)
            .filter(|e| e.expires > now)
            .map(|e| e.value.clone())
    }

    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        let now = Instant::now();
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.current.load();
        let mut map: HashMap<K, Entry<V>> = HashMap::with_capacity(old.len() + 1);
        for (k, e) in old.iter() {
            if e.expires > now {
                map.insert(k.clone(), e.clone());
            }
        }
        if map.len() >= self.capacity {
            // Full of live entries: drop those closest to expiry (they would go first anyway).
            let mut by_expiry: Vec<(Instant, K)> =
                map.iter().map(|(k, e)| (e.expires, k.clone())).collect();
            by_expiry.sort_by_key(|(expires, _)| *expires);
            let excess = map.len() + 1 - self.capacity;
            for (_, k) in by_expiry.into_iter().take(excess) {
                map.remove(&k);
            }
        }
        map.insert(
            key,
            Entry {
                value,
                expires: now + ttl,
            },
        );
        self.current.store(Arc::new(map));
    }

    pub fn len(&self) -> usize {
        self.current.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_capacity_evicts_the_oldest() {
        let map: TtlMap<Arc<str>, u32> = TtlMap::new(2);
        let now = Instant::now();
        map.insert("a".into(), 1, Duration::from_secs(10));
        assert_eq!(map.get("a", now), Some(1));
        assert_eq!(map.get("a", now + Duration::from_secs(11)), None);
        map.insert("b".into(), 2, Duration::from_secs(20));
        map.insert("c".into(), 3, Duration::from_secs(30));
        assert_eq!(map.len(), 2);
        assert_eq!(
            map.get("a", now),
            None,
            "the entry closest to expiry went first"
        );
        assert_eq!(map.get("c", now), Some(3));
    }

    #[test]
    fn expired_entries_are_dropped_on_write() {
        let map: TtlMap<Arc<str>, u32> = TtlMap::new(10);
        map.insert("gone".into(), 1, Duration::ZERO);
        map.insert("kept".into(), 2, Duration::from_secs(60));
        assert_eq!(map.len(), 1);
    }
}
