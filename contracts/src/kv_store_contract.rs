//! The key-value store contract: get, put, delete and list, each answered by a result or a typed error.

use crate::{Exchangeable, contract};
use channels::{ExString, ExVec};

/// Why a key-value request failed.
#[derive(Exchangeable, Clone, Copy, PartialEq, Eq, Debug)]
pub enum KvError {
    /// No value under that key.
    NotFound,
    /// The key is longer than the store accepts.
    KeyTooLong,
    /// The value is larger than the store accepts.
    ValueTooLarge,
    /// The store has no room for another key.
    StoreFull,
}

contract! {
    /// A key-value store: one request at a time, each answered before the next.
    pub contract KvStore {
        /// Read the value under a key.
        in message Get(ExString);
        /// Store a value under a key (replacing any old one).
        in message Put(ExString, ExVec<u8>);
        /// Remove a key.
        in message Delete(ExString);
        /// List every key.
        in message List;
        /// The client is done.
        in message Quit;
        /// The value asked for.
        out message Value(ExVec<u8>);
        /// The put succeeded.
        out message Stored;
        /// The delete succeeded.
        out message Deleted;
        /// Every key, sorted.
        out message Keys(ExVec<ExString>);
        /// The request failed.
        out message Failed(KvError);

        /// Waiting for a request.
        initial state Ready { Get -> Getting, Put -> Putting, Delete -> Deleting, List -> Listing, Quit -> Done }
        /// A get is being answered.
        state Getting { Value -> Ready, Failed -> Ready }
        /// A put is being answered.
        state Putting { Stored -> Ready, Failed -> Ready }
        /// A delete is being answered.
        state Deleting { Deleted -> Ready, Failed -> Ready }
        /// A listing is being answered.
        state Listing { Keys -> Ready }
        /// The conversation is over.
        terminal state Done;
    }
}

/// Distinct keys [`mixed_requests`] uses.
const WORKLOAD_KEYS: u32 = 64;

/// A fixed mix of requests: the macro workload of `bench protection`, here beside the contract because both a
/// ring-0 SIP and a ring-3 program run it (the same client code in every mode). `ops` requests on `client`,
/// alternately a put of a 32-byte value under one of 64 keys and a get of that key. Answers how many requests
/// failed, and the endpoint; `Err(Closed)` if the store went away.
pub fn mixed_requests(
    client: kv_store::Client<kv_store::state::Ready>,
    ops: u32,
) -> Result<(u32, kv_store::Client<kv_store::state::Ready>), channels::Closed> {
    use channels::Closed;
    use kv_store::client::{Getting, Putting};
    let mut client = client;
    let mut failed = 0;
    for op in 0..ops {
        let number = (op / 2) % WORKLOAD_KEYS;
        let mut key = ExString::from("key");
        key.push(char::from(b'0' + (number / 10) as u8));
        key.push(char::from(b'0' + (number % 10) as u8));
        client = if op % 2 == 0 {
            match client.send_put_and_recv(key, ExVec::from_slice(&[op as u8; 32])).map_err(|_| Closed)? {
                Putting::Stored(ready) => ready,
                Putting::Failed(_, ready) => {
                    failed += 1;
                    ready
                }
            }
        } else {
            match client.send_get_and_recv(key).map_err(|_| Closed)? {
                Getting::Value(value, ready) => {
                    failed += u32::from(value.len() != 32);
                    ready
                }
                Getting::Failed(_, ready) => {
                    failed += 1;
                    ready
                }
            }
        };
    }
    Ok((failed, client))
}
