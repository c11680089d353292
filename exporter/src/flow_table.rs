//! The agent's table of tracked flows, kept in the order the kernel's batch read returns
//! them.
//!
//! `BPF_MAP_LOOKUP_BATCH` walks a hash map bucket by bucket, so one read returns the flows in
//! the same order as the last one, but for the flows created or deleted in between. A read
//! cycle therefore finds each flow at the table's cursor, the entry after the last one found:
//! it walks the table front to back, which the CPU prefetches, instead of hashing into it at
//! random (at 100,000 flows of ~130 bytes a random lookup misses the CPU caches; the table of
//! 100,000 flows is 13 MB). A flow out of order is found through a small index (its hash and
//! position: 16 bytes a flow, mostly in the CPU caches), and the cursor moves after it. New
//! flows are appended; when out-of-order finds pass an eighth of the table in one cycle,
//! [`FlowTable::end_cycle`] puts the entries back in the order of the last read.

use std::hash::BuildHasher;

use egressor_common::FlowKey;
use foldhash::fast::RandomState;
use hashbrown::HashTable;

/// Flows and their values, in the order of the last read.
#[derive(Debug)]
pub struct FlowTable<V> {
    entries: Vec<Entry<V>>,
    /// (32 bits of the key's hash, position in `entries`) of every entry: 8 bytes a flow, so
    /// the index of 100,000 flows is 1 MB and growing it moves half what a 64-bit hash would.
    index: HashTable<(u32, u32)>,
    hasher: RandomState,
    /// Where the next flow of a read in the last read's order is.
    cursor: usize,
    /// Finds of this cycle not at the cursor.
    out_of_order: usize,
    /// Finds and insertions so far: an entry's `seen` orders the entries by the last read.
    seen: u64,
}

#[derive(Debug)]
struct Entry<V> {
    key: FlowKey,
    seen: u64,
    value: V,
}

impl<V> Default for FlowTable<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            index: HashTable::new(),
            hasher: RandomState::default(),
            cursor: 0,
            out_of_order: 0,
            seen: 0,
        }
    }
}

impl<V> FlowTable<V> {
    /// An empty table whose entries have room for `flows` without moving. Only the entries
    /// are reserved, not the index: they fill the reservation front to back, so pages not
    /// reached yet are never touched (no resident memory), while a hash index would spread
    /// even a few flows over all of its pages.
    pub fn with_capacity(flows: usize) -> Self {
        Self { entries: Vec::with_capacity(flows), ..Self::default() }
    }

    /// Flows in the table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no flows.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// 32 bits of `key`'s hash: what the index keeps.
    fn hash(&self, key: &FlowKey) -> u32 {
        self.hasher.hash_one(key) as u32
    }

    fn position(&self, key: &FlowKey, hash: u32) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(spread(hash), |&(h, i)| h == hash && entries[i as usize].key == *key)
            .map(|e| e.1 as usize)
    }

    /// The value of `key`, looked for first at the cursor (a read in the last read's order
    /// finds every flow there); the cursor moves past it.
    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut V> {
        let at = match self.entries.get(self.cursor) {
            Some(e) if e.key == *key => self.cursor,
            _ => {
                let at = self.position(key, self.hash(key))?;
                self.out_of_order += 1;
                at
            }
        };
        Some(self.found(at))
    }

    /// The value of `key` as [`FlowTable::get_mut`] finds it, else `new()` pushed; and
    /// whether it was pushed. A key not at the cursor costs one probe of the index, found or
    /// not.
    pub fn get_or_push(&mut self, key: FlowKey, new: impl FnOnce() -> V) -> (&mut V, bool) {
        if let Some(e) = self.entries.get(self.cursor)
            && e.key == key
        {
            let at = self.cursor;
            return (self.found(at), false);
        }
        let hash = self.hash(&key);
        let entries = &self.entries;
        let at = entries.len();
        match self.index.entry(
            spread(hash),
            |&(h, i)| h == hash && entries[i as usize].key == key,
            |&(h, _)| spread(h),
        ) {
            hashbrown::hash_table::Entry::Occupied(found) => {
                let at = found.get().1 as usize;
                self.out_of_order += 1;
                (self.found(at), false)
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert((hash, at as u32));
                self.seen += 1;
                self.entries.push(Entry { key, seen: self.seen, value: new() });
                (&mut self.entries[at].value, true)
            }
        }
    }

    /// Marks the entry at `at` found by this read: the cursor moves past it.
    fn found(&mut self, at: usize) -> &mut V {
        self.cursor = at + 1;
        self.seen += 1;
        let e = &mut self.entries[at];
        e.seen = self.seen;
        &mut e.value
    }

    /// Adds `key`, which must not be in the table (see [`FlowTable::insert`]), after the last
    /// entry.
    pub fn push(&mut self, key: FlowKey, value: V) -> &mut V {
        let hash = self.hash(&key);
        debug_assert!(self.position(&key, hash).is_none(), "{key:?} twice");
        self.push_hashed(key, hash, value)
    }

    fn push_hashed(&mut self, key: FlowKey, hash: u32, value: V) -> &mut V {
        let at = self.entries.len();
        self.index.insert_unique(spread(hash), (hash, at as u32), |&(h, _)| spread(h));
        self.seen += 1;
        self.entries.push(Entry { key, seen: self.seen, value });
        &mut self.entries[at].value
    }

    /// Sets `key`'s value, returning the one it replaces.
    pub fn insert(&mut self, key: FlowKey, value: V) -> Option<V> {
        match self.position(&key, self.hash(&key)) {
            Some(at) => Some(std::mem::replace(&mut self.entries[at].value, value)),
            None => {
                self.push(key, value);
                None
            }
        }
    }

    /// Removes `key` (the last entry takes its place).
    pub fn remove(&mut self, key: &FlowKey) -> Option<V> {
        let hash = self.hash(key);
        let entries = &self.entries;
        let found = self
            .index
            .find_entry(spread(hash), |&(h, i)| h == hash && entries[i as usize].key == *key)
            .ok()?;
        let at = found.get().1 as usize;
        found.remove();
        let last = self.entries.len() - 1;
        if at != last {
            let moved = self.hash(&self.entries[last].key);
            let slot =
                self.index.find_mut(spread(moved), |&(h, i)| h == moved && i as usize == last);
            slot.expect("every entry is indexed").1 = at as u32;
        }
        Some(self.entries.swap_remove(at).value)
    }

    /// Keeps the flows for which `keep` is true, in their order.
    pub fn retain(&mut self, mut keep: impl FnMut(&FlowKey, &mut V) -> bool) {
        let before = self.entries.len();
        self.entries.retain_mut(|e| keep(&e.key, &mut e.value));
        if self.entries.len() != before {
            self.reindex();
        }
    }

    /// Ends a read: the next starts at the front; if this one found many flows out of
    /// order, the entries are put in the order it read them (entries it did not read
    /// first).
    pub fn end_cycle(&mut self) {
        if self.out_of_order > self.entries.len() / 8 {
            self.entries.sort_by_key(|e| e.seen);
            self.reindex();
        }
        self.cursor = 0;
        self.out_of_order = 0;
    }

    fn reindex(&mut self) {
        self.index.clear();
        self.index.reserve(self.entries.len(), |&(h, _)| spread(h));
        for (at, e) in self.entries.iter().enumerate() {
            let hash = self.hasher.hash_one(e.key) as u32;
            self.index.insert_unique(spread(hash), (hash, at as u32), |&(h, _)| spread(h));
        }
    }

    /// Every flow and its value, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (&FlowKey, &V)> {
        self.entries.iter().map(|e| (&e.key, &e.value))
    }

    /// Every flow and its value, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&FlowKey, &mut V)> {
        self.entries.iter_mut().map(|e| (&e.key, &mut e.value))
    }
}

/// The 64-bit hash the index probes with, from the 32 bits it keeps: hashbrown takes the
/// bucket from the low bits and the control byte from the top seven, so both come from the
/// kept bits (below 2^25 buckets, always the case here, they are different bits).
fn spread(hash: u32) -> u64 {
    u64::from(hash) << 32 | u64::from(hash)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn key(n: u32) -> FlowKey {
        let mut k = FlowKey { cgroup_id: u64::from(n % 7), ..FlowKey::zeroed() };
        k.remote_addr[0] = n;
        k
    }

    #[test]
    fn agrees_with_a_hash_map_under_random_operations() {
        let mut rng = fastrand::Rng::with_seed(7);
        let (mut table, mut model) = (FlowTable::default(), HashMap::new());
        for step in 0..20_000u32 {
            let k = key(rng.u32(0..500));
            match rng.u8(0..10) {
                0..=4 => {
                    let got = table.get_mut(&k).map(|v: &mut u32| {
                        *v += 1;
                        *v
                    });
                    let want = model.get_mut(&k).map(|v: &mut u32| {
                        *v += 1;
                        *v
                    });
                    assert_eq!(got, want, "step {step}");
                }
                5 | 6 => {
                    if let std::collections::hash_map::Entry::Vacant(e) = model.entry(k) {
                        table.push(k, step);
                        e.insert(step);
                    }
                }
                7 => assert_eq!(table.remove(&k), model.remove(&k), "step {step}"),
                8 => assert_eq!(table.insert(k, step), model.insert(k, step), "step {step}"),
                _ => {
                    if rng.u8(0..20) == 0 {
                        table.retain(|k, _| k.remote_addr[0] % 3 != 0);
                        model.retain(|k, _| k.remote_addr[0] % 3 != 0);
                    } else {
                        table.end_cycle();
                    }
                }
            }
            assert_eq!(table.len(), model.len());
        }
        let mut all: Vec<_> = table.iter().map(|(k, v)| (*k, *v)).collect();
        let mut want: Vec<_> = model.into_iter().collect();
        all.sort_by_key(|(k, _)| k.remote_addr[0]);
        want.sort_by_key(|(k, _)| k.remote_addr[0]);
        assert_eq!(all, want);
    }

    #[test]
    fn a_read_in_the_last_order_finds_every_flow_at_the_cursor() {
        let mut table = FlowTable::default();
        for n in 0..1000 {
            table.push(key(n), n);
        }
        table.end_cycle();
        for n in 0..1000 {
            assert_eq!(table.get_mut(&key(n)).map(|v| *v), Some(n));
        }
        assert_eq!(table.out_of_order, 0);
        // A read in another order: found through the index, then put in that order.
        table.end_cycle();
        for n in (0..1000).rev() {
            assert!(table.get_mut(&key(n)).is_some());
        }
        assert!(table.out_of_order > 900);
        table.end_cycle();
        for n in (0..1000).rev() {
            assert!(table.get_mut(&key(n)).is_some());
        }
        assert_eq!(table.out_of_order, 0, "reordered by the last read");
        // Flows the read did not see go first, in their order.
        table.end_cycle();
        for n in (0..1000).rev().filter(|n| n % 2 == 0) {
            assert!(table.get_mut(&key(n)).is_some());
        }
        table.end_cycle();
        let order: Vec<u32> = table.iter().map(|(_, v)| *v).take(3).collect();
        assert_eq!(order, [999, 997, 995]);
    }
}
