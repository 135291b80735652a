//! `LruCache`: a bounded map that forgets the least recently used entry. Entries live in a slab
//! (`Vec`) linked into a recency list by index, with a `HashMap` from key to slot: get and set
//! are O(1), nothing scans. Also the SHA-256 keys the caches use.

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

const NIL: usize = usize::MAX;

struct Entry<V> {
    key: String,
    value: V,
    prev: usize,
    next: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    pub size: usize,
    pub max_size: usize,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

pub struct LruCache<V> {
    index: HashMap<String, usize>,
    slab: Vec<Entry<V>>,
    /// Most recently used.
    head: usize,
    /// Least recently used: the next to go.
    tail: usize,
    max_size: usize,
    hits: u64,
    misses: u64,
    evictions: u64,
}

impl<V: Clone> LruCache<V> {
    /// `max_size` 0 disables caching: every get misses and set keeps nothing.
    pub fn new(max_size: usize) -> Self {
        LruCache {
            index: HashMap::with_capacity(max_size.min(1 << 16)),
            slab: Vec::new(),
            head: NIL,
            tail: NIL,
            max_size,
            hits: 0,
            misses: 0,
            evictions: 0,
        }
    }

    pub fn get(&mut self, key: &str) -> Option<V> {
        match self.index.get(key).copied() {
            Some(i) => {
                self.hits += 1;
                self.unlink(i);
                self.push_front(i);
                Some(self.slab[i].value.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    pub fn set(&mut self, key: String, value: V) {
        if self.max_size == 0 {
            return;
        }
        if let Some(&i) = self.index.get(&key) {
            self.slab[i].value = value;
            self.unlink(i);
            self.push_front(i);
            return;
        }
        let i = if self.index.len() >= self.max_size {
            // Reuse the least recent entry's slot: the slab never outgrows max_size.
            let i = self.tail;
            self.unlink(i);
            self.index.remove(&self.slab[i].key);
            self.evictions += 1;
            self.slab[i].key.clone_from(&key);
            self.slab[i].value = value;
            i
        } else {
            self.slab.push(Entry { key: key.clone(), value, prev: NIL, next: NIL });
            self.slab.len() - 1
        };
        self.index.insert(key, i);
        self.push_front(i);
    }

    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Drops every entry; the counters stay.
    pub fn clear(&mut self) {
        self.index.clear();
        self.slab.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            size: self.index.len(),
            max_size: self.max_size,
            hits: self.hits,
            misses: self.misses,
            evictions: self.evictions,
        }
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.slab[i].prev, self.slab[i].next);
        match prev {
            NIL => self.head = next,
            p => self.slab[p].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slab[n].prev = prev,
        }
        self.slab[i].prev = NIL;
        self.slab[i].next = NIL;
    }

    fn push_front(&mut self, i: usize) {
        self.slab[i].next = self.head;
        self.slab[i].prev = NIL;
        match self.head {
            NIL => self.tail = i,
            h => self.slab[h].prev = i,
        }
        self.head = i;
    }
}

/// SHA-256 of the text, lower-case hex.
pub fn hash_prompt(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// SHA-256 over parts, each length-prefixed so that ("ab","c") and ("a","bc") differ.
pub fn hash_parts(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(max: usize, ops: &[(&str, Option<u32>)], expected_keys: &[&str], evictions: u64) {
        let mut c = LruCache::new(max);
        for (key, value) in ops {
            match value {
                Some(v) => c.set(key.to_string(), *v),
                None => {
                    c.get(key);
                }
            }
        }
        let mut keys: Vec<&str> = expected_keys.to_vec();
        keys.sort_unstable();
        let mut present: Vec<&str> = ["a", "b", "c", "d"].into_iter().filter(|k| c.contains(k)).collect();
        present.sort_unstable();
        assert_eq!(present, keys, "{ops:?}");
        assert_eq!(c.stats().evictions, evictions);
    }

    #[test]
    fn evicts_least_recently_used() {
        // The seed's case: max 2, set a, b, c => a evicted, b kept.
        check(2, &[("a", Some(1)), ("b", Some(2)), ("c", Some(3))], &["b", "c"], 1);
        // A get refreshes recency.
        check(2, &[("a", Some(1)), ("b", Some(2)), ("a", None), ("c", Some(3))], &["a", "c"], 1);
        // Replacing a key neither grows nor evicts.
        check(2, &[("a", Some(1)), ("b", Some(2)), ("a", Some(9))], &["a", "b"], 0);
        check(1, &[("a", Some(1)), ("b", Some(2)), ("c", Some(3)), ("d", Some(4))], &["d"], 3);
        check(0, &[("a", Some(1))], &[], 0);
    }

    #[test]
    fn counts_hits_and_misses_and_clear_keeps_them() {
        let mut c = LruCache::new(4);
        c.set("a".into(), 1);
        assert_eq!(c.get("a"), Some(1));
        assert_eq!(c.get("zz"), None);
        c.set("a".into(), 2);
        assert_eq!(c.get("a"), Some(2));
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.get("a"), None);
        assert_eq!(c.stats(), CacheStats { size: 0, max_size: 4, hits: 2, misses: 2, evictions: 0 });
        c.set("b".into(), 3);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn matches_a_simple_model_over_100k_random_operations() {
        // The model: a Vec ordered from least to most recent.
        let mut model: Vec<(String, u64)> = Vec::new();
        let mut cache = LruCache::new(16);
        let mut evictions = 0u64;
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..100_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("k{}", x % 50);
            if x % 3 == 0 {
                let expected = model.iter().position(|(k, _)| *k == key).map(|i| {
                    let e = model.remove(i);
                    model.push(e.clone());
                    e.1
                });
                assert_eq!(cache.get(&key), expected, "step {step}");
            } else {
                if let Some(i) = model.iter().position(|(k, _)| *k == key) {
                    model.remove(i);
                } else if model.len() == 16 {
                    model.remove(0);
                    evictions += 1;
                }
                model.push((key.clone(), step));
                cache.set(key, step);
            }
            assert_eq!(cache.len(), model.len());
        }
        assert_eq!(cache.stats().evictions, evictions);
        for (k, v) in &model {
            assert_eq!(cache.get(k), Some(*v));
        }
    }

    #[test]
    fn hashes() {
        assert_eq!(hash_prompt("hello"), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_ne!(hash_parts(&["ab", "c"]), hash_parts(&["a", "bc"]));
        assert_eq!(hash_parts(&["x"]).len(), 64);
    }
}
