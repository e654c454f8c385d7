//! The `KERNEL` call of ring-3 SIPs: the `KernelAbi` calls without a call of their own
//! (`sip_runtime::kernel_requests`), answered by the ring-0 implementation itself.
//!
//! The request is copied from the SIP's memory onto this thread's kernel stack and decoded there (borrowing its
//! strings), so nothing of the kernel heap is held while a request waits (`wait`, `kill`, a name claim agreed
//! with another core, a restart of the name service): a thread ended there leaves nothing behind. The answer
//! buffer is checked before the request is done (room and address), so a request is never done without its
//! answer reaching the SIP. Capabilities are checked by `abi::RING0`, exactly as for a ring-0 caller: the
//! thread making this call is the SIP's own.
//!
//! A spawn is the one request with an endpoint: its startup end is taken from the SIP's handle table by its
//! handle (type-checked, as an end arriving in a message is), and a refused spawn puts it back and names the new
//! handle in the answer.
//!
//! `run_selftests` runs the tests on a kernel thread of their own (`abi::run_selftests_on_own_thread`): the
//! caller's kernel stack is too small for them.
//!
//! Not here: the calls `kernel_requests` leaves out (they answer `NotPermitted` in ring 3, without a call).

use super::{Sip, SipMemory, channel_calls, space_of, table};
use crate::sip::abi::RING0;
use channels::ExAny;
use channels::Exchangeable;
use channels::raw::RawEndpoint;
use channels::wire::{self, NoEndpoints};
use sip_runtime::kernel_requests::{MAX_ANSWER, MAX_REQUEST, Request};
use sip_runtime::ring3_calls as calls;
use sip_runtime::{KernelAbi, Startup};

/// Runs `f` with SIP `id`'s address space; the call's error answer if `id` is not a ring-3 SIP of this core.
fn with_space<R>(id: u64, f: impl FnOnce(&crate::memory::user_spaces::UserSpace) -> R) -> Result<R, u64> {
    let guard = table().lock();
    let Some(Sip { memory: SipMemory::User(user), .. }) = guard.sip(id) else { return Err(calls::NO_SUCH_CALL) };
    let space = space_of(user, &guard.ring3).ok_or(calls::BAD_ADDRESS)?;
    Ok(f(space))
}

/// `KERNEL`: the request at (`at`, `len`) of SIP `id`, answered into (`out`, `room`).
pub fn answer(id: u64, at: u64, len: u64, out: u64, room: u64) -> u64 {
    let Some(len) = usize::try_from(len).ok().filter(|len| *len <= MAX_REQUEST) else { return calls::BAD_ARGUMENT };
    if room < MAX_ANSWER as u64 {
        return calls::BAD_ARGUMENT;
    }
    let mut buffer = [0u8; MAX_REQUEST];
    let bytes = &mut buffer[..len];
    // The answer's room is written (zeros) before anything is done: an answer buffer that is not the SIP's
    // writable memory refuses the request, not its answer.
    let checked =
        with_space(id, |space| space.copy_in(at, bytes).is_ok() && space.copy_out(out, &[0; MAX_ANSWER]).is_ok());
    match checked {
        Ok(true) => {}
        Ok(false) => return calls::BAD_ADDRESS,
        Err(answer) => return answer,
    }
    let Some(request) = Request::decode(bytes) else { return calls::BAD_ARGUMENT };
    let encoded = match request {
        Request::Kill(sip) => encode(RING0.kill(sip)),
        Request::Wait(sip) => encode(RING0.wait(sip)),
        Request::ExitStatusOf(sip) => encode(RING0.exit_status_of(sip)),
        Request::Events => encode(RING0.events()),
        Request::Memory => encode(RING0.memory()),
        Request::Cpu(index) => encode(RING0.cpu(index)),
        Request::ChannelAfter(after) => encode(RING0.channel_after(after)),
        Request::MidProtocolDrops(contract) => encode(RING0.mid_protocol_drops(contract)),
        Request::LogLevel => encode(RING0.log_level()),
        Request::SetLogLevel(level) => encode(RING0.set_log_level(level)),
        Request::ConsoleWrite(text) => encode(RING0.console_write(text)),
        Request::Shutdown => encode(RING0.shutdown()),
        Request::KernelPanic(message) => encode(RING0.kernel_panic(message)),
        Request::RunSelftests(filter) => encode(crate::sip::abi::run_selftests_on_own_thread(filter)),
        Request::Replica(core) => encode(RING0.replica(core)),
        Request::BroadcastProbe(scheme) => encode(RING0.broadcast_probe(scheme)),
        Request::ClaimName { name, sip, contract } => encode(RING0.claim_name(name, sip, contract)),
        Request::ReleaseName { name, sip } => encode(RING0.release_name(name, sip)),
        Request::ResolveName(name) => encode(RING0.resolve_name(name)),
        Request::NameAfter(after) => encode(RING0.name_after(after)),
        Request::RestartNames(protection) => encode(RING0.restart_names(protection)),
        Request::ProcessAfter(after) => encode(RING0.process_after(after)),
        Request::Spawn { name, args, core, protection, startup } => {
            let startup = match startup.map(|handle| take_startup(id, handle)).transpose() {
                Ok(startup) => startup,
                Err(answer) => return answer,
            };
            let outcome = match protection {
                None => RING0.spawn(name, args, core, startup),
                Some(protection) => RING0.spawn_protected(name, args, core, protection, startup),
            };
            // A refused spawn's startup end goes back to the SIP, as a handle in the answer.
            let outcome = outcome.map_err(|(error, startup)| (error, startup.map(Startup::into_end)));
            channel_calls::with_sip(id, |handles, _| wire::encode(outcome, handles).ok()).flatten()
        }
    };
    let Some(encoded) = encoded else { return calls::OUT_OF_MEMORY };
    match with_space(id, |space| space.copy_out(out, &encoded).is_ok()) {
        Ok(true) => encoded.len() as u64,
        // Checked writable above, and a SIP has one thread: its memory cannot have gone meanwhile.
        Ok(false) => calls::BAD_ADDRESS,
        Err(answer) => answer,
    }
}

/// The startup end `handle` of SIP `id`, taken from its handle table; the call's error answer if `handle` is not
/// an end of that type of the SIP's.
fn take_startup(id: u64, handle: u32) -> Result<Startup, u64> {
    let end = channel_calls::with_sip(id, |handles, _| {
        wire::decode::<RawEndpoint<(), ExAny>>(&handle.to_le_bytes(), handles).map_err(|_| calls::BAD_HANDLE)
    });
    end.ok_or(calls::NO_SUCH_CALL)?.map(Startup::from_end)
}

/// An answer's byte form (plain data: no endpoints); `None` only if the kernel heap is out of memory.
fn encode<T: Exchangeable>(answer: T) -> Option<alloc::vec::Vec<u8>> {
    let bytes = wire::encode(answer, &mut NoEndpoints).ok()?;
    debug_assert!(bytes.len() <= MAX_ANSWER, "kernel_requests::MAX_ANSWER holds every answer");
    Some(bytes)
}
