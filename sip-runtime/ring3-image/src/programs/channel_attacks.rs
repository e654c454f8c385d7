//! `channel-attacks`: what a hostile ring-3 SIP can do with the channel calls, each checked against the answer
//! the kernel owes it (docs/protection.md, "How a message crosses"). Safe code: the calls pass numbers and this
//! program's own addresses, and the attacks are in what those numbers say.
//!
//! Spawned with an Echo server end as its startup value (the kernel's self-test does), it takes it with
//! deliberately bad buffers first, then forges handles, sends bytes that are no message (breaking that channel:
//! the ring-0 client sees `Closed`), names contracts that do not exist and kernel memory, waits on nonsense,
//! closes twice, offers the name service ends that are not its contract's, makes calls (send, then receive) with
//! bad lengths, forged handles and gone peers, uses an endpoint another of its threads waits with, and opens
//! channels until its quota
//! says no. Exits with 0 if every answer was the documented
//! one, else with the number of the first step that was not.

use crate::calls;
use core::sync::atomic::{AtomicU64, Ordering};
use sip_runtime::ring3_calls as c;

/// An address in kernel memory (the start of the higher half).
const KERNEL: u64 = 0xffff_8000_0000_0000;

/// Runs the attacks; 0 if the kernel answered each as documented.
pub fn run(_: &str) -> u32 {
    let mut buffer = [0u8; 512];
    let buf = buffer.as_mut_ptr() as u64;
    let checks: [&dyn Fn() -> bool; 18] = [
        // 1: the startup endpoint is there, with one message queued (its sender is gone: it sent the one).
        &|| {
            let mut words = [0u64; 5];
            calls::raw(c::CHANNEL_STATUS, 0, words.as_mut_ptr() as u64, 0) == 0 && words[1] == 1
        },
        // 2: a receive into kernel memory is refused, and the message stays.
        &|| calls::raw4(c::CHANNEL_RECV, 0, KERNEL, 512, 0) == c::BAD_ADDRESS,
        // 3: a room too small gets the length, and the message stays.
        &|| {
            let len = calls::raw4(c::CHANNEL_RECV, 0, buf, 1, 0);
            len > 1 && len < 512
        },
        // 4: with room, the message: the ExAny of the Echo server end, which is now handle 1.
        &|| {
            let len = calls::raw4(c::CHANNEL_RECV, 0, buf, 512, 0);
            len > 4 && len < 512 && calls::raw(c::CHANNEL_STATUS, 1, KERNEL, 0) == c::BAD_ADDRESS
        },
        // 5: a second receive: nothing more (the startup channel carries one message).
        &|| matches!(calls::raw4(c::CHANNEL_RECV, 0, buf, 512, 0), c::EMPTY | c::CLOSED),
        // 6: forged handles.
        &|| {
            calls::raw(c::CHANNEL_SEND, 99_999, buf, 4) == c::BAD_HANDLE
                && calls::raw(c::CHANNEL_SEND, 1 << 32, buf, 4) == c::BAD_HANDLE
                && calls::raw(c::CHANNEL_CLOSE, 77, 0, 0) == c::BAD_HANDLE
        },
        // 7: a send from kernel memory, and one longer than any message.
        &|| {
            calls::raw(c::CHANNEL_SEND, 1, KERNEL, 8) == c::BAD_ADDRESS
                && calls::raw(c::CHANNEL_SEND, 1, buf, 1 << 40) == c::BAD_ARGUMENT
        },
        // 8: bytes that are no Echo message (a tag no message has): the channel breaks, the peer is gone.
        &|| {
            let garbage = [0xffu8; 12];
            let mut words = [0u64; 5];
            calls::raw(c::CHANNEL_SEND, 1, garbage.as_ptr() as u64, 12) == c::BROKEN
                && calls::raw(c::CHANNEL_STATUS, 1, words.as_mut_ptr() as u64, 0) == 0
                && words[0] == 1
        },
        // 9: contracts that do not exist, names in kernel memory, absurd lengths.
        &|| {
            let name = "no such contract";
            calls::raw(c::CHANNEL_OPEN, name.as_ptr() as u64, name.len() as u64, 0) == c::NO_SUCH_CONTRACT
                && calls::raw(c::CHANNEL_OPEN, KERNEL, 16, 0) == c::BAD_ADDRESS
                && calls::raw(c::CHANNEL_OPEN, buf, 1 << 40, 0) == c::NO_SUCH_CONTRACT
        },
        // 10: waits on too many handles or none (which nothing could end), on kernel memory, on handles that name
        // nothing.
        &|| {
            let nonsense = [12_345u32];
            calls::raw(c::CHANNEL_WAIT, buf, 1 << 20, 0) == c::BAD_ARGUMENT
                && calls::raw(c::CHANNEL_WAIT, buf, 0, 0) == c::BAD_ARGUMENT
                && calls::raw(c::CHANNEL_WAIT, KERNEL, 1, 0) == c::BAD_ADDRESS
                && calls::raw(c::CHANNEL_WAIT, nonsense.as_ptr() as u64, 1, 0) == c::BAD_HANDLE
        },
        // 11: a closed handle closes once.
        &|| calls::raw(c::CHANNEL_CLOSE, 1, 0, 0) == 0 && calls::raw(c::CHANNEL_CLOSE, 1, 0, 0) == c::BAD_HANDLE,
        // 12: a channel of its own: a message goes from one end to the other, byte for byte.
        &|| {
            let name = core::any::type_name::<channels::ContractPair<contracts::echo::Echo>>();
            let pair = calls::raw(c::CHANNEL_OPEN, name.as_ptr() as u64, name.len() as u64, 0);
            if pair >= c::FIRST_ERROR {
                return false;
            }
            let (client, server) = (pair & 0xffff_ffff, pair >> 32);
            // Ping(42): tag 0, then the number; short, so it comes back in registers (the buffer stays as it was),
            // whether it went out from memory or in registers.
            let mut ping = [0u8; 12];
            ping[4..].copy_from_slice(&42u64.to_le_bytes());
            let mut got = [0u8; 12];
            let registers = |(len, words): (u64, [u64; 4])| {
                len == 12 && words[0].to_le_bytes()[..4] == ping[..4] && words[0] >> 32 == 42 && words[1] == 0
            };
            calls::raw(c::CHANNEL_SEND, client, ping.as_ptr() as u64, 12) == 0
                && registers(calls::recv_call(server as u32, got.as_mut_ptr() as u64, 12, true))
                && got == [0; 12]
                && calls::raw6(c::CHANNEL_SEND_SHORT, [client, 12, 42 << 32, 0, 0, 0]) == 0
                && registers(calls::recv_call(server as u32, 0, 0, true))
                && calls::raw(c::CHANNEL_PEERS, client, server, 0) == 1
                && calls::raw(c::CHANNEL_PEERS, client, client, 0) == 0
        },
        // 13: an endpoint sent over itself (a server end inside nothing: Echo carries no endpoints, so the handle
        // is only bytes) — and a receive that waits on a channel whose peer is gone returns.
        &|| {
            let name = core::any::type_name::<channels::ContractPair<contracts::echo::Echo>>();
            let pair = calls::raw(c::CHANNEL_OPEN, name.as_ptr() as u64, name.len() as u64, 0);
            let (client, server) = (pair & 0xffff_ffff, pair >> 32);
            pair < c::FIRST_ERROR
                && calls::raw(c::CHANNEL_CLOSE, client, 0, 0) == 0
                && calls::raw4(c::CHANNEL_RECV, server, buf, 512, 1) == c::CLOSED
        },
        // 14: the name service offered a forged handle, an end of another contract, an absurd core.
        &|| {
            let name = core::any::type_name::<channels::ContractPair<contracts::echo::Echo>>();
            let pair = calls::raw(c::CHANNEL_OPEN, name.as_ptr() as u64, name.len() as u64, 0);
            let server = pair >> 32;
            pair < c::FIRST_ERROR
                && calls::raw(c::NAMES_CONNECT, 99_999, u64::MAX, 0) == c::BAD_HANDLE
                && calls::raw(c::NAMES_CONNECT, server, u64::MAX, 0) == c::BAD_HANDLE
                && calls::raw(c::NAMES_CONNECT, server, 1 << 40, 0) == c::BAD_ARGUMENT
        },
        // 15: short sends with lengths beyond the registers, forged handles, and bytes that are no message.
        &|| {
            let name = core::any::type_name::<channels::ContractPair<contracts::echo::Echo>>();
            let pair = calls::raw(c::CHANNEL_OPEN, name.as_ptr() as u64, name.len() as u64, 0);
            let (client, server) = (pair & 0xffff_ffff, pair >> 32);
            pair < c::FIRST_ERROR
                && calls::raw6(c::CHANNEL_SEND_SHORT, [client, 33, 0, 0, 0, 0]) == c::BAD_ARGUMENT
                && calls::raw6(c::CHANNEL_SEND_SHORT, [client, u64::MAX, 0, 0, 0, 0]) == c::BAD_ARGUMENT
                && calls::raw6(c::CHANNEL_SEND_SHORT, [99_999, 12, 0, 0, 0, 0]) == c::BAD_HANDLE
                && calls::raw6(c::CHANNEL_SEND_SHORT, [1 << 33, 12, 0, 0, 0, 0]) == c::BAD_HANDLE
                && calls::raw6(c::CHANNEL_SEND_SHORT, [client, 32, u64::MAX, 1, 2, 3]) == c::BROKEN
                && calls::recv_call(server as u32, 0, 0, true).0 == c::CLOSED
        },
        // 16: calls (send, then receive) with lengths beyond their registers, forged handles, an answer already
        // queued (the call returns it at once, and the request reached the other end), a peer gone before the
        // send (nothing sent), and bytes that are no message (the channel breaks before anything waits).
        &|| {
            let name = core::any::type_name::<channels::ContractPair<contracts::echo::Echo>>();
            let pair = calls::raw(c::CHANNEL_OPEN, name.as_ptr() as u64, name.len() as u64, 0);
            let (client, server) = (pair & 0xffff_ffff, pair >> 32);
            let ping = 42 << 32; // tag 0 (`Ping`, and `Pong` the other way), then 42: a 12-byte message
            let queued_request = |words: (u64, [u64; 4])| words.0 == 12 && words.1[0] == ping;
            pair < c::FIRST_ERROR
                && calls::raw6(c::CHANNEL_CALL, [client | 25 << 32, buf, 512, ping, 0, 0]) == c::BAD_ARGUMENT
                && calls::raw6(c::CHANNEL_CALL, [99_999 | 12 << 32, buf, 512, ping, 0, 0]) == c::BAD_HANDLE
                && calls::raw6(c::CHANNEL_SEND_SHORT, [server, 12, ping, 0, 0, 0]) == 0
                && calls::raw6(c::CHANNEL_CALL, [client | 12 << 32, buf, 512, ping, 0, 0]) == 12
                && queued_request(calls::recv_call(server as u32, 0, 0, false))
                && calls::raw(c::CHANNEL_CLOSE, server, 0, 0) == 0
                && calls::raw6(c::CHANNEL_CALL, [client | 12 << 32, buf, 512, ping, 0, 0]) == c::NOT_SENT
                && calls::raw(c::CHANNEL_CLOSE, client, 0, 0) == 0
                && {
                    let pair = calls::raw(c::CHANNEL_OPEN, name.as_ptr() as u64, name.len() as u64, 0);
                    let (client, server) = (pair & 0xffff_ffff, pair >> 32);
                    calls::raw6(c::CHANNEL_CALL, [client | 24 << 32, buf, 512, u64::MAX, 1, 2]) == c::BROKEN
                        && calls::recv_call(server as u32, 0, 0, true).0 == c::CLOSED
                }
        },
        // 17: a second thread waits with an endpoint: this one can neither use, close nor move it (it is busy:
        // `BAD_HANDLE`) until the waiter has its message, and then it is this SIP's as before.
        &|| {
            let name = core::any::type_name::<channels::ContractPair<contracts::echo::Echo>>();
            let pair = calls::raw(c::CHANNEL_OPEN, name.as_ptr() as u64, name.len() as u64, 0);
            let (client, server) = (pair & 0xffff_ffff, pair >> 32);
            let ping = 42 << 32;
            let mut words = [0u64; 5];
            let status = words.as_mut_ptr() as u64;
            pair < c::FIRST_ERROR
                && crate::start::start_thread(wait_for_a_request, server as usize).is_ok()
                && (0..20).all(|_| {
                    calls::yield_now();
                    true
                })
                && calls::raw(c::CHANNEL_CLOSE, server, 0, 0) == c::BAD_HANDLE
                && calls::raw(c::CHANNEL_STATUS, server, status, 0) == c::BAD_HANDLE
                && calls::raw6(c::CHANNEL_SEND_SHORT, [server, 12, ping, 0, 0, 0]) == c::BAD_HANDLE
                && calls::recv_call(server as u32, 0, 0, false).0 == c::BAD_HANDLE
                && calls::raw6(c::CHANNEL_SEND_SHORT, [client, 12, ping, 0, 0, 0]) == 0
                && (0..1000).any(|_| {
                    calls::yield_now();
                    WAITER_GOT.load(Ordering::Acquire) != 0
                })
                && WAITER_GOT.load(Ordering::Acquire) == 12 + 1
                && calls::raw(c::CHANNEL_STATUS, server, status, 0) == 0
                && calls::raw(c::CHANNEL_CLOSE, server, 0, 0) == 0
                && calls::raw(c::CHANNEL_CLOSE, client, 0, 0) == 0
        },
        // 18: channels until the quota says no; the kernel reclaims them all when this SIP ends.
        &|| {
            let name = core::any::type_name::<channels::ContractPair<contracts::echo::Echo>>();
            (0..5000)
                .any(|_| calls::raw(c::CHANNEL_OPEN, name.as_ptr() as u64, name.len() as u64, 0) == c::OUT_OF_QUOTA)
        },
    ];
    for (step, check) in checks.iter().enumerate() {
        if !check() {
            return step as u32 + 1;
        }
    }
    0
}

/// What the waiting thread of step 17 received: the receive's answer plus one (0: nothing yet).
static WAITER_GOT: AtomicU64 = AtomicU64::new(0);

/// Step 17's second thread: a waiting receive on the handle `server`.
fn wait_for_a_request(server: usize) {
    let (answer, _) = calls::recv_call(server as u32, 0, 0, true);
    WAITER_GOT.store(answer.wrapping_add(1), Ordering::Release);
}
