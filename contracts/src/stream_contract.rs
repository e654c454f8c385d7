//! The streaming contract: open a named sequence and read it in chunks until its end (a loop with messages in
//! both directions, so its queues stay bounded). Each `Read` is answered by up to two chunks, so the server can
//! send the second while the client consumes the first (two messages in flight to the client).

use crate::{Exchangeable, contract};
use channels::{ExString, ExVec};

/// Why a stream could not be opened.
#[derive(Exchangeable, Clone, Copy, PartialEq, Eq, Debug)]
pub enum StreamError {
    /// Nothing by that name.
    NotFound,
    /// The server serves no more streams now.
    Busy,
}

contract! {
    /// Reads a sequence in chunks: `Open`, then `Read`s answered by `Chunk`s until `End`.
    pub contract Stream {
        /// Open the named sequence.
        in message Open(ExString);
        /// It is open; its length in bytes if known (else `u64::MAX`).
        out message Opened(u64);
        /// It could not be opened.
        out message OpenFailed(StreamError);
        /// Ask for the next two chunks of at most this many bytes each.
        in message Read(u32);
        /// The next chunk.
        out message Chunk(ExVec<u8>);
        /// The sequence has ended.
        out message End;
        /// The client is done.
        in message Close;

        /// Nothing open.
        initial state Start { Open -> Opening, Close -> Done }
        /// The server is opening the sequence.
        state Opening { Opened -> Streaming, OpenFailed -> Start }
        /// Open, no read outstanding.
        state Streaming { Read -> Reading, Close -> Done }
        /// A read is outstanding: the server owes the first chunk (or the end).
        state Reading { Chunk -> SecondChunk, End -> Done }
        /// The server owes the second chunk (or the end).
        state SecondChunk { Chunk -> Streaming, End -> Done }
        /// The conversation is over.
        terminal state Done;
    }
}
