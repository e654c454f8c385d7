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
