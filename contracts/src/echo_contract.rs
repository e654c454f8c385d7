//! The echo contract: the client sends numbers or text, the server answers each with the same payload.
//! The simplest loop (ping-pong), used by the echo service and the ping-pong benchmark.

use crate::contract;
use channels::ExString;

contract! {
    /// Echo: every `Ping` is answered by a `Pong` with the same number, every `Say` by an `Echoed` with the same
    /// text; `Bye` ends the conversation.
    pub contract Echo {
        /// A number to echo.
        in message Ping(u64);
        /// A line of text to echo.
        in message Say(ExString);
        /// The client is done.
        in message Bye;
        /// The number, back.
        out message Pong(u64);
        /// The text, back.
        out message Echoed(ExString);

        /// Waiting for the client.
        initial state Ready { Ping -> PingSent, Say -> SaySent, Bye -> Done }
        /// The server owes a `Pong`.
        state PingSent { Pong -> Ready }
        /// The server owes an `Echoed`.
        state SaySent { Echoed -> Ready }
        /// The conversation is over.
        terminal state Done;
    }
}
