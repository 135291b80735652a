//! `LruCache`, a bounded map that forgets the least recently used entry, and the SHA-256 keys
//! the hub's caches use (`hash_prompt`, `hash_parts`). Entries live in a slab (`Vec`) linked
//! into a recency list by index, with a `HashMap` from key to slot, so get and set are O(1) and
//! nothing ever scans.

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The end of the recency list (slot indices never reach it: the slab would not fit in memory).
const NIL: usize = usize::MAX;

struct Entry<V> {
    /// Kept beside the value so evicting the tail can find its index entry.
    key: String,
    value: V,
    /// Towards the most recent.
    prev: usize,
    /// Towards the least recent.
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

/// Keys are `String`s. There is no free list: the only way out is eviction, and an evicted
/// slot is refilled by the insert that caused it, so the slab never has holes and never
/// outgrows `max_size`.
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
            // Room up front for the common sizes; a huge bound should not allocate until used.
            index: HashMap::with_capacity(max_size.min(1 << 12)),
            slab: Vec::with_capacity(max_size.min(1 << 12)),
            head: NIL,
            tail: NIL,
            max_size,
            hits: 0,
            misses: 0,
            evictions: 0,
        }
    }

    /// The value, counted as a hit and made the most recent; or a counted miss.
    pub fn get(&mut self, key: &str) -> Option<V> {
        match self.index.get(key).copied() {
            Some(i) => {
                self.hits += 1;
                self.touch(i);
                Some(self.slab[i].value.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Inserts or replaces, making the key the most recent; a new key beyond `max_size`
    /// evicts the least recent.
    pub fn set(&mut self, key: String, value: V) {
        if self.max_size == 0 {
            return;
        }
        if let Some(&i) = self.index.get(&key) {
            self.slab[i].value = value;
            self.touch(i);
            return;
        }
        let i = if self.slab.len() >= self.max_size {
            let i = self.tail;
            self.unlink(i);
            self.index.remove(&self.slab[i].key);
            self.evictions += 1;
            // Reuses the old key's buffer when it is big enough (hash keys all are).
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

    /// Whether the key is cached, without counting or reordering anything.
    #[cfg(test)]
    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    #[cfg(test)]
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Keeps only the entries `keep` says yes to, in their recency order (a reload dropping
    /// what changed rules made). O(n): rare, never on a request.
    pub fn retain(&mut self, keep: impl Fn(&V) -> bool) {
        let mut order = Vec::with_capacity(self.slab.len());
        let mut i = self.tail;
        while i != NIL {
            order.push(i);
            i = self.slab[i].prev;
        }
        let mut slab: Vec<Option<Entry<V>>> = std::mem::take(&mut self.slab).into_iter().map(Some).collect();
        self.clear();
        for i in order {
            if let Some(e) = slab[i].take().filter(|e| keep(&e.value)) {
                self.set(e.key, e.value);
            }
        }
    }

    /// Drops every entry; the counters stay, since they describe the cache's whole life.
    pub fn clear(&mut self) {
        self.index.clear();
        self.slab.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            size: self.slab.len(),
            max_size: self.max_size,
            hits: self.hits,
            misses: self.misses,
            evictions: self.evictions,
        }
    }

    /// Makes slot `i` the most recent.
    fn touch(&mut self, i: usize) {
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
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
    }

    fn push_front(&mut self, i: usize) {
        self.slab[i].prev = NIL;
        self.slab[i].next = self.head;
        match self.head {
            NIL => self.tail = i,
            h => self.slab[h].prev = i,
        }
        self.head = i;
    }
}

/// SHA-256 of the text, lower-case hex (64 characters).
pub fn hash_prompt(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// SHA-256 over several parts, lower-case hex. Each part is length-prefixed, so moving text
/// across a boundary changes the hash: ("ab", "c") and ("a", "bc") differ.
pub fn hash_parts(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        // Fixed width and byte order, so the key is the same on every platform.
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Set(key, value)` or `Get(key)` on a cache of `u32`s.
    #[derive(Debug, Clone, Copy)]
    enum Op {
        Set(&'static str, u32),
        Get(&'static str),
    }
    use Op::{Get, Set};

    /// Runs `ops` on a cache of `max` entries, then checks which of a..d remain and how many
    /// evictions it counted.
    fn check(max: usize, ops: &[Op], kept: &[&str], evictions: u64) {
        let mut c = LruCache::new(max);
        for op in ops {
            match *op {
                Set(k, v) => c.set(k.to_string(), v),
                Get(k) => {
                    c.get(k);
                }
            }
        }
        let present: Vec<&str> = ["a", "b", "c", "d"].into_iter().filter(|k| c.contains(k)).collect();
        assert_eq!(present, kept, "max {max}: {ops:?}");
        assert_eq!((c.len(), c.stats().evictions), (kept.len(), evictions), "max {max}: {ops:?}");
    }

    #[test]
    fn evicts_the_least_recently_used() {
        // The seed's case.
        check(2, &[Set("a", 1), Set("b", 2), Set("c", 3)], &["b", "c"], 1);
        // A get refreshes recency.
        check(2, &[Set("a", 1), Set("b", 2), Get("a"), Set("c", 3)], &["a", "c"], 1);
        // A set of an existing key refreshes it too.
        check(2, &[Set("a", 1), Set("b", 2), Set("a", 9), Set("c", 3)], &["a", "c"], 1);
        // Replacing neither grows nor evicts.
        check(2, &[Set("a", 1), Set("b", 2), Set("a", 9), Set("a", 8)], &["a", "b"], 0);
        // A miss changes nothing.
        check(2, &[Set("a", 1), Set("b", 2), Get("d"), Set("c", 3)], &["b", "c"], 1);
        check(1, &[Set("a", 1), Set("b", 2), Set("c", 3), Set("d", 4)], &["d"], 3);
        check(
            3,
            &[Set("a", 1), Set("b", 2), Set("c", 3), Get("a"), Get("b"), Set("d", 4)],
            &["a", "b", "d"],
            1,
        );
        check(0, &[Set("a", 1), Get("a")], &[], 0);
    }

    #[test]
    fn replacing_keeps_the_newest_value() {
        let mut c = LruCache::new(2);
        c.set("a".into(), 1);
        c.set("a".into(), 2);
        assert_eq!((c.get("a"), c.len()), (Some(2), 1));
    }

    #[test]
    fn counts_hits_and_misses_and_clear_keeps_them() {
        let mut c = LruCache::new(4);
        c.set("a".into(), 1);
        assert_eq!(c.get("a"), Some(1));
        assert_eq!(c.get("zz"), None);
        assert!(c.contains("a") && !c.contains("zz"), "contains counts nothing");
        assert_eq!(c.stats(), CacheStats { size: 1, max_size: 4, hits: 1, misses: 1, evictions: 0 });

        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.get("a"), None);
        assert_eq!(c.stats(), CacheStats { size: 0, max_size: 4, hits: 1, misses: 2, evictions: 0 });
        c.set("b".into(), 3);
        assert_eq!((c.len(), c.get("b")), (1, Some(3)));
    }

    #[test]
    fn size_zero_caches_nothing() {
        let mut c = LruCache::new(0);
        c.set("a".into(), 1);
        assert_eq!((c.get("a"), c.len(), c.max_size()), (None, 0, 0));
        assert_eq!(c.stats(), CacheStats { size: 0, max_size: 0, hits: 0, misses: 1, evictions: 0 });
    }

    /// xorshift64: deterministic, so a failing step reproduces.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn matches_a_simple_model_over_100k_random_operations() {
        const MAX: usize = 16;
        // The model: a Vec ordered from least to most recent, scanned on every operation.
        let mut model: Vec<(String, u64)> = Vec::new();
        let mut model_evictions = 0u64;
        let mut cache = LruCache::new(MAX);
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for step in 0..100_000u64 {
            let key = format!("k{}", rng.below(50));
            let found = model.iter().position(|(k, _)| *k == key);
            if rng.below(3) == 0 {
                let expected = found.map(|i| {
                    let e = model.remove(i);
                    let v = e.1;
                    model.push(e);
                    v
                });
                assert_eq!(cache.get(&key), expected, "step {step}: get {key}");
            } else {
                match found {
                    Some(i) => {
                        model.remove(i);
                    }
                    None if model.len() == MAX => {
                        model.remove(0);
                        model_evictions += 1;
                    }
                    None => {}
                }
                model.push((key.clone(), step));
                cache.set(key, step);
            }
            assert_eq!(cache.len(), model.len(), "step {step}");
            assert_eq!(cache.stats().evictions, model_evictions, "step {step}");
        }
        // Least recent first, so every get below leaves the order it checks next intact.
        for (k, v) in &model {
            assert_eq!(cache.get(k), Some(*v), "final {k}");
        }
    }

    #[test]
    fn hashes() {
        assert_eq!(hash_prompt("hello"), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(hash_prompt(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_ne!(hash_parts(&["ab", "c"]), hash_parts(&["a", "bc"]));
        assert_ne!(hash_parts(&["a", ""]), hash_parts(&["", "a"]));
        assert_ne!(hash_parts(&["a"]), hash_parts(&["a", ""]));
        assert_eq!(hash_parts(&["x", "y"]), hash_parts(&["x", "y"]));
        let h = hash_parts(&["x"]);
        assert!(h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{h}");
    }

    #[test]
    fn retain_keeps_the_chosen_entries_in_recency_order() {
        let mut c = LruCache::new(4);
        for (k, v) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
            c.set(k.into(), v);
        }
        c.get("a");
        c.retain(|v| v % 2 == 1);
        assert!(c.contains("a") && c.contains("c") && !c.contains("b") && !c.contains("d"));
        assert_eq!(c.len(), 2);
        // c is now the least recent: the next two inserts past the bound evict it first.
        c.set("e".into(), 5);
        c.set("f".into(), 7);
        c.set("g".into(), 9);
        assert!(!c.contains("c") && c.contains("a"));
    }
}
