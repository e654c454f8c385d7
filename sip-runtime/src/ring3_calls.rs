//! The ring-3 system-call ABI: call numbers and the answers that mean an error, shared by the kernel and
//! ring-3 programs.
//!
//! A call is `syscall` with the number in `rax` and up to six arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`,
//! `r9`; the answer comes back in `rax`. Everything that crosses is plain data: numbers, and ring-3 addresses
//! with lengths, which the kernel checks against the caller's own address space and copies (it never follows
//! them). Answers from [`FIRST_ERROR`] up are errors; below it, each call's documented result.
//!
//! This is the first part of the ABI: what ring-3 programs and services without channels need to run, allocate,
//! be measured and fail. The calls of `KernelAbi` that involve channels, spawning and names follow.

/// Does nothing; answers 0. The cost of a round trip into the kernel.
pub const NULL: u64 = 0;
/// Ends the calling thread; if it is the SIP's first thread, the SIP, with the exit status in the first
/// argument (0: success, else a failure code, its low 32 bits). Never answers.
pub const EXIT: u64 = 1;
/// Gives the core to another ready thread; answers 0.
pub const YIELD: u64 = 2;
/// Logs the UTF-8 text at (first argument, length in the second) at level (third: 0 error, 1 warn, 2 info,
/// 3 debug), prefixed with the SIP's name; a text longer than `MAX_LOG_LINE` is cut. Answers 0.
pub const LOG: u64 = 3;
/// Sleeps at least the first argument's nanoseconds; answers 0.
pub const SLEEP: u64 = 4;
/// Answers the uptime in nanoseconds.
pub const NOW: u64 = 5;
/// Maps the first argument's bytes more (rounded up to pages) at the end of the caller's heap, within its heap
/// quota; answers where the new memory starts (the heap's old end). `OUT_OF_QUOTA` or `OUT_OF_MEMORY` otherwise.
pub const GROW: u64 = 6;
/// Answers the index of the core the caller runs on.
pub const CORE: u64 = 7;
/// Answers 1 if the cycle counter counts guest instructions (QEMU `-icount`), else 0.
pub const ICOUNT: u64 = 8;
/// Ends the calling SIP as panicked, with the UTF-8 message at (first argument, length in the second), cut at
/// `MAX_LOG_LINE`. Never answers.
pub const PANIC: u64 = 9;

/// Opens a channel of the contract whose raw pair type is named by the UTF-8 text at (first argument, length in
/// the second); answers the client side's handle in the low 32 bits and the server side's in the high 32.
/// `NO_SUCH_CONTRACT`, `OUT_OF_QUOTA` (too many handles or the exchange quota) otherwise.
pub const CHANNEL_OPEN: u64 = 10;
/// Sends the message whose byte form is at (second argument, length in the third) on the handle in the first;
/// answers 0. `CLOSED` (the peer is gone; nothing of the message was taken), `BAD_HANDLE`, `BROKEN` (not a
/// message of the channel, or the ring was full: the channel is closed for both sides).
pub const CHANNEL_SEND: u64 = 11;
/// Receives the oldest message on the handle in the first argument, waiting for one if the fourth is 1; answers
/// the message's length. A message of at most [`REGISTER_BYTES`] comes back in registers (`rdi`, `rsi`, `rdx`,
/// `r10`, little-endian words in that order) and the buffer is not touched; a longer one is copied into the
/// buffer at (second argument, room in the third). A length beyond the room means nothing was copied: the
/// message waits for a call with that much room. `EMPTY` (not waiting), `CLOSED`, `BAD_HANDLE`, `BROKEN` (the
/// message cannot cross: too deep or too long).
pub const CHANNEL_RECV: u64 = 12;
/// Writes the state of the handle in the first argument to the five `u64`s at the second (peer closed 0 or 1,
/// queued, in flight, send capacity, receive capacity); answers 0, or `BAD_HANDLE`.
pub const CHANNEL_STATUS: u64 = 13;
/// Answers 1 if the handles in the first two arguments are the two ends of one channel, else 0.
pub const CHANNEL_PEERS: u64 = 14;
/// Waits until one of the handles (the `u32`s at the first argument, as many as the second) has a message or a
/// closed peer; answers 0. `BAD_HANDLE` if one is not a handle, `BAD_ARGUMENT` for none or more than `MAX_WAIT`.
pub const CHANNEL_WAIT: u64 = 15;
/// Closes the handle in the first argument (the peer sees `Closed`); answers 0, or `BAD_HANDLE`.
pub const CHANNEL_CLOSE: u64 = 16;
/// Hands the name service the server end of a `NameService` channel (the handle in the first argument), on the
/// core in the second (`u64::MAX`: the caller's): `KernelAbi::connect_names`. Answers 1 if the name service took
/// it, 0 if it is down (the end is closed either way once it is not the caller's), `BAD_HANDLE` if the handle
/// names no such end.
pub const NAMES_CONNECT: u64 = 17;

/// Sends a message of at most [`REGISTER_BYTES`] in registers: on the handle in the first argument, its length in
/// the second, its bytes in the next four (`rdx`, `r10`, `r8`, `r9`: little-endian words in that order); answers
/// as `CHANNEL_SEND`. Short messages (most: a tag and a few words) then cost no copy through page tables.
pub const CHANNEL_SEND_SHORT: u64 = 18;

/// Bytes of a message that travel in registers (`CHANNEL_SEND_SHORT`, and `CHANNEL_RECV`'s answer).
pub const REGISTER_BYTES: usize = 32;

/// Sends a message of at most [`CALL_BYTES`] in registers and then receives on the same handle, waiting: L4's
/// call (a client's request and its answer) and reply-and-wait (a server's answer and the next request) in one
/// call. The handle in the low 32 bits of the first argument and the message's length in the high 32; the
/// receive's buffer at the second argument with its room in the third; the message's bytes in the next three
/// (`r10`, `r8`, `r9`: little-endian words). Answers as `CHANNEL_RECV` (a short answer in registers), once the
/// message is sent; `NOT_SENT` if the peer was already gone (nothing of the message was taken); `BAD_HANDLE`,
/// `BAD_ARGUMENT` (a length beyond `CALL_BYTES`) and `BROKEN` as the send would.
pub const CHANNEL_CALL: u64 = 19;

/// Bytes of a message a `CHANNEL_CALL` sends in registers (three words: the other three registers name the
/// handle and the receive's buffer).
pub const CALL_BYTES: usize = 24;

/// Asks the kernel one of the `KernelAbi` calls that have no call of their own (`kernel_requests::Request`:
/// the name registry, process control, system information, the console, administration): the request's byte
/// form at (first argument, length in the second, at most `kernel_requests::MAX_REQUEST`), the answer's written
/// to the buffer at the third (room in the fourth, at least `kernel_requests::MAX_ANSWER`); answers the answer's
/// length. The kernel answers it as it answers a ring-0 SIP's call, capabilities checked alike. `BAD_ARGUMENT`
/// (bytes that are no request, a length or room out of range) and `BAD_ADDRESS` (a buffer that is not the
/// caller's memory) before anything is done.
pub const KERNEL: u64 = 20;

/// Starts a thread of the calling SIP in ring 3 at the address in the first argument (in the SIP's image), with
/// the second argument in `rdi`, on a stack of the manifest's size of its own (a region below the first
/// thread's; its return address is 0: the thread ends with `EXIT`); answers the thread's id. `OUT_OF_QUOTA` if
/// the SIP has as many threads as its manifest grants (at most `memory::layout::USER_THREADS`), `BAD_ARGUMENT`
/// for an address outside the SIP's image, `OUT_OF_MEMORY` if its stack or kernel thread cannot be made.
pub const THREAD_START: u64 = 21;

/// A message of at most [`REGISTER_BYTES`] as the words of the registers it travels in (little-endian, the
/// rest zero); `None` if it is longer.
#[inline]
pub fn to_words(bytes: &[u8]) -> Option<[u64; 4]> {
    if bytes.len() > REGISTER_BYTES {
        return None;
    }
    // Word by word, the last one byte by byte, unrolled: as a loop, the compiler makes it a call to `memcpy`,
    // which costs more than the rest of the conversion.
    let word = |i: usize| {
        let start = i * 8;
        match bytes.get(start..start + 8).and_then(|chunk| <[u8; 8]>::try_from(chunk).ok()) {
            Some(chunk) => u64::from_le_bytes(chunk),
            None => bytes
                .get(start..)
                .map_or(0, |tail| tail.iter().rev().fold(0, |word, byte| word << 8 | u64::from(*byte))),
        }
    };
    Some([word(0), word(1), word(2), word(3)])
}

/// The bytes of a message that came back in registers (the first `len` of them are the message).
#[inline]
pub fn from_words(words: [u64; 4]) -> [[u8; 8]; 4] {
    words.map(u64::to_le_bytes)
}

/// The most handles one `CHANNEL_WAIT` waits on.
pub const MAX_WAIT: u64 = 1024;
/// The most endpoints a ring-3 SIP holds at once.
pub const MAX_HANDLES: usize = 4096;

/// The lowest answer that is an error.
pub const FIRST_ERROR: u64 = u64::MAX - 15;
/// The call number is not one of these.
pub const NO_SUCH_CALL: u64 = u64::MAX;
/// An address or range is not the caller's readable (or writable) ring-3 memory.
pub const BAD_ADDRESS: u64 = u64::MAX - 1;
/// An argument is out of range (a length beyond the call's limit, an unknown level).
pub const BAD_ARGUMENT: u64 = u64::MAX - 2;
/// The text is not UTF-8.
pub const NOT_UTF8: u64 = u64::MAX - 3;
/// The caller's quota does not allow it.
pub const OUT_OF_QUOTA: u64 = u64::MAX - 4;
/// Memory ran out.
pub const OUT_OF_MEMORY: u64 = u64::MAX - 5;
/// The handle names no endpoint of the caller's.
pub const BAD_HANDLE: u64 = u64::MAX - 6;
/// The peer endpoint is gone.
pub const CLOSED: u64 = u64::MAX - 7;
/// Nothing to receive yet.
pub const EMPTY: u64 = u64::MAX - 8;
/// The channel broke: a message that is not one of the channel's, or one that cannot cross.
pub const BROKEN: u64 = u64::MAX - 9;
/// No contract's channel has that name.
pub const NO_SUCH_CONTRACT: u64 = u64::MAX - 10;
/// A `CHANNEL_CALL`'s message was not sent: the peer was gone (the message's endpoints stay the caller's).
pub const NOT_SENT: u64 = u64::MAX - 11;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_message_survives_the_registers_byte_for_byte() {
        // Every length up to the registers' (and the tail lengths 1-7 of each word), with bytes that differ.
        let bytes: [u8; REGISTER_BYTES] = core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(1));
        for len in 0..=REGISTER_BYTES {
            let words = to_words(&bytes[..len]).expect("short enough");
            let back = from_words(words);
            assert_eq!(&back.as_flattened()[..len], &bytes[..len], "length {len}");
            // What is beyond the message is zero: the kernel never sees stale bytes as part of it.
            assert!(back.as_flattened()[len..].iter().all(|b| *b == 0), "length {len}");
        }
    }

    #[test]
    fn a_longer_message_does_not_fit_the_registers() {
        assert_eq!(to_words(&[0; REGISTER_BYTES + 1]), None);
    }
}
