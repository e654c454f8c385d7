//! The bookkeeping every replica shares (the process table's and the name registry's): a map that counts the
//! changes applied to it and keeps a digest of its entries, so `replicas` can tell whether two cores agree.
//!
//! Not here: who may change a replica or how its changes travel between cores (`replica`, `name_registry`).
//!
//! Invariants: `version` counts the inserts of absent keys and the removals of present ones (a repeat changes
//! nothing and is not counted); `digest` is the XOR of the entry hash of every entry, so equal sets have equal
//! digests whatever the order they were built in.

use alloc::collections::BTreeMap;
use core::borrow::Borrow;

/// A map with a change count and an order-independent digest.
pub struct ReplicatedMap<K, V> {
    entries: BTreeMap<K, V>,
    version: u64,
    digest: u64,
    /// The hash of one entry (the digest is their XOR).
    hash: fn(&K, &V) -> u64,
}

impl<K: Ord, V> ReplicatedMap<K, V> {
    /// An empty replica (usable in a `static` initialiser).
    pub const fn new(hash: fn(&K, &V) -> u64) -> Self {
        Self { entries: BTreeMap::new(), version: 0, digest: 0, hash }
    }

    /// Adds `key` unless it is present (then nothing changes).
    pub fn insert(&mut self, key: K, value: V) {
        if !self.entries.contains_key(&key) {
            self.digest ^= (self.hash)(&key, &value);
            self.version += 1;
            self.entries.insert(key, value);
        }
    }

    /// Removes `key` if it is present.
    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
    {
        if let Some((key, value)) = self.entries.remove_entry(key) {
            self.digest ^= (self.hash)(&key, &value);
            self.version += 1;
        }
    }

    /// The entries, for reading.
    pub fn entries(&self) -> &BTreeMap<K, V> {
        &self.entries
    }

    /// Changes applied so far.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// XOR of the entries' hashes.
    pub fn digest(&self) -> u64 {
        self.digest
    }
}

/// FNV-1a over `bytes`: cheap, and good enough to tell replicas apart.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, byte| (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3))
}
