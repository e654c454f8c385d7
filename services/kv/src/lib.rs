//! The key-value store service: serves one `KvStore` channel, handed to it at spawn, until the client says `Quit`
//! or goes away.
//!
//! Two layers, kept apart so the store can be tested on the host without channels:
//! - [`Store`]: a plain bounded map from UTF-8 keys to byte values, answering with the contract's [`KvError`]s.
//! - [`serve`] / [`serve_store`]: the channel loop that turns `KvStore` requests into `Store` calls and sends the
//!   answers the contract's typestates allow (a `Get` can only be answered by `Value` or `Failed`, and so on);
//!   [`serve_async`] / [`serve_store_async`] are the same loop as a continuation, with the same answers: the
//!   `kv-async` service, an async SIP (docs/thread-models.md).
//!
//! Limits ([`Limits::DEFAULT`]): keys of at most [`MAX_KEY_LEN`] bytes, values of at most [`MAX_VALUE_LEN`]
//! bytes, at most [`MAX_ENTRIES`] keys. They are chosen so that a full store (about 520 KiB of payload plus map
//! and allocator overhead) fits the SIP's 1 MiB heap quota: a client can fill the store, not the quota. Errors:
//! - any request naming a key longer than the limit fails `KeyTooLong` (such a key can never be stored, so even a
//!   `Get` or `Delete` of one is a client error, not a miss);
//! - a `Put` of a value over the limit fails `ValueTooLarge`;
//! - a `Put` of a new key into a store holding [`MAX_ENTRIES`] keys fails `StoreFull` (replacing the value of an
//!   existing key always has room); so does a `Put` whose copy cannot be allocated in the SIP heap, which leaves
//!   the store as it was instead of ending the SIP;
//! - a `Get` or `Delete` of an absent key fails `NotFound`.
//!
//! Memory: stored keys and values are copied out of the exchange heap into this SIP's own heap (so they count
//! against its quota and are reclaimed with its arena); the request's exchange-heap buffers are freed as soon as
//! the request is answered. If the exchange heap cannot hold a `Get` reply the service ends the conversation
//! (the client sees `Closed`); building a `Keys` reply uses the channel crate's infallible constructors, so its
//! exhaustion ends the SIP through the allocation-error handler, which the client also sees as `Closed`.
//!
//! Not here: persistence, more than one client per SIP (each spawn serves one channel), or any `unsafe`.
//! Invariants (DESIGN.md invariant 2, checked by the isolation audit): `#![forbid(unsafe_code)]`, no `static`
//! items, no `asm!`, `extern` blocks or linker attributes, dependencies only from the service allowlist.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

#[cfg(test)]
extern crate std;

use alloc::string::String;
use alloc::vec::Vec;
use channels::{Closed, ExString, ExVec};
use contracts::KvError;
use contracts::kv_store::{self, server, state};
use hashbrown::HashMap;
use sip_runtime::{RestartPolicy, SipContext, sip};

sip! {
    name: "kv",
    entry: main,
    exports: ["KvStore"],
    imports: [],
    heap_quota: 1024 * 1024,
    stack_size: 32 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

/// Longest key accepted, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 64;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 4096;
/// Most keys the store holds at once.
pub const MAX_ENTRIES: usize = 128;

sip! {
    name: "kv-async",
    entry: async main_async,
    exports: ["KvStore"],
    imports: [],
    heap_quota: 1024 * 1024,
    stack_size: 32 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

fn main(ctx: SipContext) {
    match ctx.take_startup::<kv_store::Server<state::Ready>>() {
        Some(endpoint) => {
            let mut store = Store::new();
            let served = serve_store(endpoint, &mut store);
            sip_runtime::debug!(ctx, "served {served} requests, {} keys held at the end", store.len());
        }
        None => sip_runtime::warn!(ctx, "spawned without a KvStore endpoint: nothing to serve"),
    }
}

/// The entry of `kv-async`: the same store and answers as `kv`, served as a continuation.
async fn main_async(ctx: SipContext) {
    match ctx.take_startup::<kv_store::Server<state::Ready>>() {
        Some(endpoint) => {
            let mut store = Store::new();
            let served = serve_store_async(endpoint, &mut store).await;
            sip_runtime::debug!(ctx, "served {served} requests, {} keys held at the end", store.len());
        }
        None => sip_runtime::warn!(ctx, "spawned without a KvStore endpoint: nothing to serve"),
    }
}

/// The bounds a [`Store`] enforces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Limits {
    /// Longest key, in bytes.
    pub max_key_len: usize,
    /// Largest value, in bytes.
    pub max_value_len: usize,
    /// Most keys held at once.
    pub max_entries: usize,
}

impl Limits {
    /// The service's limits: [`MAX_KEY_LEN`], [`MAX_VALUE_LEN`], [`MAX_ENTRIES`].
    pub const DEFAULT: Limits =
        Limits { max_key_len: MAX_KEY_LEN, max_value_len: MAX_VALUE_LEN, max_entries: MAX_ENTRIES };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A bounded in-memory map from keys to byte values, in this SIP's own heap.
///
/// Invariant: every stored key is at most `limits.max_key_len` bytes, every value at most `limits.max_value_len`
/// bytes, and there are at most `limits.max_entries` keys. A failed operation leaves the store unchanged.
#[derive(Debug)]
pub struct Store {
    entries: HashMap<String, Vec<u8>>,
    limits: Limits,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store with the service's [`Limits::DEFAULT`].
    pub fn new() -> Self {
        Self::with_limits(Limits::DEFAULT)
    }

    /// An empty store with other limits (tests use small ones to reach `StoreFull` quickly).
    pub fn with_limits(limits: Limits) -> Self {
        // No allocation until the first put: an idle service costs its quota nothing.
        Self { entries: HashMap::new(), limits }
    }

    /// The limits this store enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Result<&[u8], KvError> {
        self.check_key(key)?;
        self.entries.get(key).map(Vec::as_slice).ok_or(KvError::NotFound)
    }

    /// Stores a copy of `value` under `key`, replacing any old value.
    pub fn put(&mut self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.check_key(key)?;
        if value.len() > self.limits.max_value_len {
            return Err(KvError::ValueTooLarge);
        }
        let is_new = !self.entries.contains_key(key);
        if is_new && self.entries.len() >= self.limits.max_entries {
            return Err(KvError::StoreFull);
        }
        // Every allocation is fallible and made before the map changes: running out of SIP heap is the client's
        // `StoreFull`, not the end of the SIP, and a failed put leaves the store as it was.
        let copy = try_copy(value)?;
        if is_new {
            let mut owned_key = String::new();
            owned_key.try_reserve_exact(key.len()).map_err(|_| KvError::StoreFull)?;
            owned_key.push_str(key);
            self.entries.try_reserve(1).map_err(|_| KvError::StoreFull)?;
            self.entries.insert(owned_key, copy);
        } else if let Some(slot) = self.entries.get_mut(key) {
            *slot = copy;
        }
        Ok(())
    }

    /// Removes `key` and its value.
    pub fn delete(&mut self, key: &str) -> Result<(), KvError> {
        self.check_key(key)?;
        self.entries.remove(key).map(drop).ok_or(KvError::NotFound)
    }

    /// Every key, sorted (byte order, as `str`'s `Ord`), as the contract's `Keys` promises.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    fn check_key(&self, key: &str) -> Result<(), KvError> {
        if key.len() > self.limits.max_key_len { Err(KvError::KeyTooLong) } else { Ok(()) }
    }
}

/// Copies `value` into a SIP-heap vector, or reports `StoreFull` if the heap has no room for it.
fn try_copy(value: &[u8]) -> Result<Vec<u8>, KvError> {
    let mut copy = Vec::new();
    copy.try_reserve_exact(value.len()).map_err(|_| KvError::StoreFull)?;
    copy.extend_from_slice(value);
    Ok(copy)
}

/// Copies `bytes` into the exchange heap for a reply, or `None` if it has no room.
fn try_ex_bytes(bytes: &[u8]) -> Option<ExVec<u8>> {
    let mut reply = ExVec::new();
    reply.try_reserve(bytes.len()).ok()?;
    // Cannot grow (the room is reserved above), so this never reaches the allocation-error handler.
    reply.extend_from_slice(bytes);
    Some(reply)
}

/// The sorted key list as a `Keys` payload.
fn ex_keys(store: &Store) -> ExVec<ExString> {
    let keys = store.keys();
    let mut reply = ExVec::with_capacity(keys.len());
    reply.extend(keys.into_iter().map(ExString::from));
    reply
}

/// Serves requests from a fresh [`Store`] until `Quit` or until the client is gone; returns how many were answered.
pub fn serve(endpoint: kv_store::Server<state::Ready>) -> u64 {
    serve_store(endpoint, &mut Store::new())
}

/// Serves requests from `store` until `Quit` or until the client is gone; returns how many were answered.
///
/// The store outlives the conversation, so a caller (or a test) can look at what the client left in it.
pub fn serve_store(mut endpoint: kv_store::Server<state::Ready>, store: &mut Store) -> u64 {
    let mut served = 0;
    loop {
        match answer(endpoint.recv(), store) {
            Some(ready) => endpoint = ready,
            None => return served,
        }
        served += 1;
    }
}

/// [`serve_store`] as a continuation (the `kv-async` service): awaits each request, answers it as
/// [`serve_store`] does.
pub async fn serve_store_async(mut endpoint: kv_store::Server<state::Ready>, store: &mut Store) -> u64 {
    let mut served = 0;
    loop {
        match answer(endpoint.recv_async().await, store) {
            Some(ready) => endpoint = ready,
            None => return served,
        }
        served += 1;
    }
}

/// [`serve`] as a continuation.
pub async fn serve_async(endpoint: kv_store::Server<state::Ready>) -> u64 {
    serve_store_async(endpoint, &mut Store::new()).await
}

/// Answers one request from `store`; the endpoint comes back unless the client quit, went away, or the answer
/// could not go out.
fn answer(request: Result<server::Ready, Closed>, store: &mut Store) -> Option<kv_store::Server<state::Ready>> {
    // Each arm answers with the only messages its typestate allows; a failed send means the client dropped its
    // endpoint mid-protocol (the reply comes back to us and is dropped), which ends the conversation.
    match request {
        Ok(server::Ready::Get(key, owes)) => match store.get(&key) {
            Ok(value) => match try_ex_bytes(value) {
                Some(reply) => owes.send_value(reply).ok(),
                // No exchange-heap room for the reply, and the contract has no error for that: end the
                // conversation (the client sees `Closed`) rather than the whole SIP.
                None => None,
            },
            Err(error) => owes.send_failed(error).ok(),
        },
        Ok(server::Ready::Put(key, value, owes)) => match store.put(&key, &value) {
            Ok(()) => owes.send_stored().ok(),
            Err(error) => owes.send_failed(error).ok(),
        },
        Ok(server::Ready::Delete(key, owes)) => match store.delete(&key) {
            Ok(()) => owes.send_deleted().ok(),
            Err(error) => owes.send_failed(error).ok(),
        },
        Ok(server::Ready::List(owes)) => owes.send_keys(ex_keys(store)).ok(),
        Ok(server::Ready::Quit(done)) => {
            done.close();
            None
        }
        Err(Closed) => None,
    }
}

#[cfg(test)]
mod tests {
    //! Unit tests of [`Store`] alone: limits, errors, replacement, sorting, and that failures change nothing.

    use super::*;
    use std::vec;

    fn small() -> Store {
        Store::with_limits(Limits { max_key_len: 4, max_value_len: 8, max_entries: 2 })
    }

    #[test]
    fn put_then_get_returns_the_value() {
        let mut store = Store::new();
        assert_eq!(store.put("a", b"1"), Ok(()));
        assert_eq!(store.get("a"), Ok(&b"1"[..]));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn put_replaces_the_old_value() {
        let mut store = Store::new();
        store.put("a", b"old").expect("room");
        store.put("a", b"new").expect("room");
        assert_eq!(store.get("a"), Ok(&b"new"[..]));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn missing_keys_are_not_found() {
        let mut store = Store::new();
        assert_eq!(store.get("nope"), Err(KvError::NotFound));
        assert_eq!(store.delete("nope"), Err(KvError::NotFound));
    }

    #[test]
    fn delete_removes_the_key() {
        let mut store = Store::new();
        store.put("a", b"1").expect("room");
        assert_eq!(store.delete("a"), Ok(()));
        assert_eq!(store.get("a"), Err(KvError::NotFound));
        assert_eq!(store.delete("a"), Err(KvError::NotFound));
        assert!(store.is_empty());
    }

    #[test]
    fn empty_keys_and_values_are_ordinary() {
        let mut store = Store::new();
        assert_eq!(store.put("", b""), Ok(()));
        assert_eq!(store.get(""), Ok(&b""[..]));
        assert_eq!(store.keys(), vec![""]);
    }

    #[test]
    fn key_length_limit_is_inclusive_and_in_bytes() {
        let mut store = small();
        assert_eq!(store.put("abcd", b"x"), Ok(()));
        assert_eq!(store.put("abcde", b"x"), Err(KvError::KeyTooLong));
        // "éé" is 2 characters but 4 bytes; "ééé" is 6 bytes.
        assert_eq!(store.put("éé", b"x"), Ok(()));
        assert_eq!(store.delete("éé"), Ok(()));
        assert_eq!(store.put("ééé", b"x"), Err(KvError::KeyTooLong));
    }

    #[test]
    fn over_long_keys_fail_every_request() {
        let mut store = small();
        assert_eq!(store.get("abcde"), Err(KvError::KeyTooLong));
        assert_eq!(store.delete("abcde"), Err(KvError::KeyTooLong));
    }

    #[test]
    fn value_length_limit_is_inclusive() {
        let mut store = small();
        assert_eq!(store.put("a", &[7; 8]), Ok(()));
        assert_eq!(store.put("b", &[7; 9]), Err(KvError::ValueTooLarge));
        assert_eq!(store.get("b"), Err(KvError::NotFound));
    }

    #[test]
    fn key_too_long_wins_over_value_too_large() {
        let mut store = small();
        assert_eq!(store.put("abcde", &[0; 9]), Err(KvError::KeyTooLong));
    }

    #[test]
    fn a_full_store_refuses_new_keys_but_replaces_old_ones() {
        let mut store = small();
        store.put("a", b"1").expect("room");
        store.put("b", b"2").expect("room");
        assert_eq!(store.put("c", b"3"), Err(KvError::StoreFull));
        assert_eq!(store.put("a", b"one"), Ok(()));
        assert_eq!(store.get("a"), Ok(&b"one"[..]));
        store.delete("b").expect("held");
        assert_eq!(store.put("c", b"3"), Ok(()));
        assert_eq!(store.keys(), vec!["a", "c"]);
    }

    #[test]
    fn failed_puts_leave_the_store_unchanged() {
        let mut store = small();
        store.put("a", b"1").expect("room");
        assert_eq!(store.put("a", &[0; 9]), Err(KvError::ValueTooLarge));
        assert_eq!(store.get("a"), Ok(&b"1"[..]));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn keys_are_sorted() {
        let mut store = Store::new();
        for key in ["pear", "apple", "fig", "Zed", "banana"] {
            store.put(key, key.as_bytes()).expect("room");
        }
        assert_eq!(store.keys(), vec!["Zed", "apple", "banana", "fig", "pear"]);
    }

    #[test]
    fn default_limits_fill_exactly_max_entries() {
        let mut store = Store::new();
        let value = [0xAB; MAX_VALUE_LEN];
        for i in 0..MAX_ENTRIES {
            let key = std::format!("{i:0>width$}", width = MAX_KEY_LEN);
            assert_eq!(store.put(&key, &value), Ok(()), "key {i}");
        }
        assert_eq!(store.len(), MAX_ENTRIES);
        assert_eq!(store.put("one-more", b""), Err(KvError::StoreFull));
        assert_eq!(store.limits(), Limits::DEFAULT);
    }
}
