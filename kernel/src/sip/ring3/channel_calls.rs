//! The channel calls of ring-3 SIPs (`sip_runtime::ring3_calls::CHANNEL_*`): the kernel holds a ring-3 SIP's
//! endpoints in its handle table (`channels::proxy`) and moves messages between them and the SIP's memory in
//! their byte form (`channels::wire`).
//!
//! A message of at most `REGISTER_BYTES` travels in registers (`CHANNEL_SEND_SHORT`, `CHANNEL_RECV`'s answer;
//! `CHANNEL_CALL` sends one of at most `CALL_BYTES` and receives the answer in the same call);
//! a longer one is copied through the checked helpers of the SIP's address space (never a user pointer
//! followed). Every call decodes or encodes while acting for the SIP towards the exchange
//! (`exchange_heap::acting_for`: the blocks and endpoints are its, charged to it), and answers a number. What
//! the SIP writes is untrusted: a message that does not decode breaks only that channel (`BROKEN`), a handle
//! that names nothing is `BAD_HANDLE`. The calls that copy nothing reach the table through the core's cache
//! ([`with_handles`]), the others through the core's SIP table.
//!
//! Invariant: no lock is held and nothing of the kernel's is on the thread's stack while a receive or a wait
//! blocks (only the address of an endpoint and its ring, which stay in the table: in a SIP with several threads
//! the endpoint is busy meanwhile, `proxy::Proxied::set_busy`, so another thread can neither close nor move it),
//! so a kill may end the thread right there, as it may a ring-0 SIP's parked receive.

use super::{Sip, SipMemory, space_of, table};
use crate::ipc::exchange_heap::acting_for;
use crate::percpu;
use alloc::vec;
use alloc::vec::Vec;
use channels::proxy::{self, HandleTable, Polled, Proxied, RecvFailure, SendFailure};
use channels::wire::{self, Endpoints};
use core::sync::atomic::Ordering;
use cpu_rings::syscall::SyscallFrame;
use sip_runtime::ring3_calls as calls;

/// Runs `f` with SIP `id`'s handle table and its address space (for copies); `None` if `id` is not a ring-3 SIP
/// of this core.
pub(super) fn with_sip<R>(
    id: u64,
    f: impl FnOnce(&mut HandleTable, &crate::memory::user_spaces::UserSpace) -> R,
) -> Option<R> {
    let mut guard = table().lock();
    let table = &mut *guard;
    let Some(Sip { memory: SipMemory::User(user), .. }) = table.sips.get_mut(&id) else {
        return None;
    };
    // Field by field (not `space_of`): the table is borrowed mutably beside the space.
    let space = user.own.as_ref().or(table.ring3.shared.as_ref())?;
    Some(f(&mut user.handles, space))
}

/// Runs `f` with the handle table of SIP `id`, whose thread is making this call; `None` if `id` is not a ring-3
/// SIP of this core. The hot path of the calls that need no copy: the table is found through the core's cache
/// (`PerCpu::handles`), without the core's SIP table.
#[inline(always)]
fn with_handles<R>(id: u64, f: impl FnOnce(&mut HandleTable) -> R) -> Option<R> {
    let entry = &percpu::current().handles[id as usize % percpu::HANDLE_CACHE];
    let at = if entry.of.load(Ordering::Relaxed) == id + 1 {
        entry.at.load(Ordering::Relaxed) as *mut HandleTable
    } else {
        cache_handles(id, entry)?
    };
    // Why the reference below is sound: the table is the boxed one of SIP `id`, which is in this core's SIP table
    // (the cache is cleared, on this core, when the SIP leaves it: `forget`), so it is alive and does not move.
    // Nothing else touches it meanwhile: only this core's code does, always with interrupts off (the core's SIP
    // table lock, or this call, entered from ring 3 with interrupts masked and not switching out inside `f`), so
    // no other thread of the SIP runs while `f` does, and this thread holds no other reference to it. (Another
    // thread's call waiting with one of its endpoints holds that endpoint's address, not the table's, and the
    // table hands a busy endpoint to nobody: `Endpoint::wait`.)
    // SAFETY: `at` is live, unmoved and used by nothing else while `f` runs (above).
    let table = unsafe { &mut *at };
    Some(f(table))
}

/// Finds SIP `id`'s handle table in the core's SIP table and keeps its address in `entry`; `None` if `id` is not
/// a ring-3 SIP of this core.
#[cold]
#[inline(never)]
fn cache_handles(id: u64, entry: &percpu::HandleCacheEntry) -> Option<*mut HandleTable> {
    let mut guard = table().lock();
    let Some(Sip { memory: SipMemory::User(user), .. }) = guard.sip_mut(id) else { return None };
    let at: *mut HandleTable = &mut *user.handles;
    entry.at.store(at as usize, Ordering::Relaxed);
    entry.of.store(id + 1, Ordering::Relaxed);
    Some(at)
}

/// SIP `id` is leaving this core's SIP table: its handle table is no longer reached through the cache.
pub fn forget(id: u64) {
    let entry = &percpu::current().handles[id as usize % percpu::HANDLE_CACHE];
    if entry.of.load(Ordering::Relaxed) == id + 1 {
        entry.of.store(0, Ordering::Relaxed);
    }
}

/// `CHANNEL_OPEN`: a channel of the contract whose pair type is named at (`at`, `len`).
pub fn open(id: u64, at: u64, len: u64) -> u64 {
    if len > 4096 {
        return calls::NO_SUCH_CONTRACT;
    }
    let mut name = vec![0u8; len as usize];
    let answer = with_sip(id, |handles, space| {
        if space.copy_in(at, &mut name).is_err() {
            return calls::BAD_ADDRESS;
        }
        let Some(contract) = wire::channel_crossing(&name) else { return calls::NO_SUCH_CONTRACT };
        acting_for(id, || {
            let Ok((client, server)) = (contract.open)() else { return calls::OUT_OF_QUOTA };
            // Either both ends are the SIP's or neither (a refused end is dropped, closing its channel).
            let Ok(client) = handles.put(client) else { return calls::OUT_OF_QUOTA };
            match handles.put(server) {
                Ok(server) => u64::from(client) | u64::from(server) << 32,
                Err(_) => {
                    let _ = handles.close(client);
                    calls::OUT_OF_QUOTA
                }
            }
        })
    });
    answer.unwrap_or(calls::NO_SUCH_CALL)
}

/// Bytes of a message a send copies onto the stack rather than the heap.
const SMALL: usize = 256;

/// `CHANNEL_SEND`: the message at (`at`, `len`) on `handle`.
pub fn send(id: u64, handle: u64, at: u64, len: u64) -> u64 {
    let Ok(handle) = u32::try_from(handle) else { return calls::BAD_HANDLE };
    if len > wire::MAX_MESSAGE as u64 {
        return calls::BAD_ARGUMENT;
    }
    // Small messages on the stack: an allocation costs more than the rest of the call.
    let mut small = [0u8; SMALL];
    let mut large = Vec::new();
    let bytes: &mut [u8] = if len as usize <= SMALL {
        &mut small[..len as usize]
    } else {
        if large.try_reserve_exact(len as usize).is_err() {
            return calls::OUT_OF_MEMORY;
        }
        large.resize(len as usize, 0);
        &mut large
    };
    let answer = with_sip(id, |handles, space| {
        if space.copy_in(at, bytes).is_err() {
            return calls::BAD_ADDRESS;
        }
        send_bytes(id, handles, handle, bytes)
    });
    answer.unwrap_or(calls::NO_SUCH_CALL)
}

/// `CHANNEL_SEND_SHORT`: the message of `len` bytes in the frame's `rdx`, `r10`, `r8`, `r9` on `handle` (the
/// frame's `rdi`, `len` its `rsi`).
pub fn send_short(id: u64, frame: &SyscallFrame) -> u64 {
    let Ok(handle) = u32::try_from(frame.rdi) else { return calls::BAD_HANDLE };
    let Some(len) = usize::try_from(frame.rsi).ok().filter(|len| *len <= calls::REGISTER_BYTES) else {
        return calls::BAD_ARGUMENT;
    };
    let answer =
        with_handles(id, |handles| send_words(id, handles, handle, [frame.rdx, frame.r10, frame.r8, frame.r9], len));
    answer.unwrap_or(calls::NO_SUCH_CALL)
}

/// `CHANNEL_CALL`: the message of `len` bytes in the frame's `r10`, `r8`, `r9` on the handle (the frame's `rdi`:
/// handle in the low half, `len` in the high), then a waiting receive on it into the buffer at (`rsi`, room
/// `rdx`), answered as [`recv`] answers.
#[inline(always)]
pub fn call(id: u64, frame: &mut SyscallFrame) -> u64 {
    let (handle, len) = (frame.rdi as u32, (frame.rdi >> 32) as usize);
    if len > calls::CALL_BYTES {
        return calls::BAD_ARGUMENT;
    }
    let mut end = match Endpoint::of(id, handle) {
        Ok(end) => end,
        Err(answer) => return answer,
    };
    let words = [frame.r10, frame.r8, frame.r9, 0];
    let sent = match acting_for(id, || end.get().send_short(words, len)) {
        Some(sent) => answer_of(sent),
        None => with_handles(id, |handles| send_bytes(id, handles, handle, &bytes_of(&words)[..len]))
            .unwrap_or(calls::NO_SUCH_CALL),
    };
    match sent {
        0 => {
            // Sent: the receive, as `CHANNEL_RECV` with this handle and buffer would do it, waiting.
            (frame.rdi, frame.r10) = (u64::from(handle), 1);
            receive(id, end, frame, true)
        }
        calls::CLOSED => calls::NOT_SENT,
        refused => refused,
    }
}

/// The bytes of a message in register words.
fn bytes_of(words: &[u64; 4]) -> [u8; 32] {
    let mut bytes = [0; 32];
    for (chunk, word) in bytes.as_chunks_mut::<8>().0.iter_mut().zip(words) {
        *chunk = word.to_le_bytes();
    }
    bytes
}

/// An endpoint of the calling ring-3 SIP, found once for the whole of a call.
struct Endpoint {
    end: core::ptr::NonNull<dyn Proxied>,
    /// Its SIP has more than one thread: the endpoint is marked busy while this call waits with it.
    threaded: bool,
}

impl Endpoint {
    /// The endpoint `handle` of SIP `id`; else the call's answer.
    #[inline]
    fn of(id: u64, handle: u32) -> Result<Self, u64> {
        let found = with_handles(id, |handles| {
            let threaded = handles.is_threaded();
            handles.get_mut(handle).map(|end| Self { end: core::ptr::NonNull::from(end), threaded })
        });
        match found {
            None => Err(calls::NO_SUCH_CALL),
            Some(None) => Err(calls::BAD_HANDLE),
            Some(Some(end)) => Ok(end),
        }
    }

    #[inline]
    fn get(&mut self) -> &mut dyn Proxied {
        // Why this holds: the endpoint stays in the SIP's table, boxed and unmoved, while this call runs: the
        // table is touched only by the calls of the SIP's threads, one at a time (a call runs with interrupts off
        // and switches only in its waits), and while this one waits with the endpoint it is busy, which the
        // table hands to no other call ([`Endpoint::wait`]); a message this call sends cannot carry the endpoint
        // it is sent on (`HandleTable::with`); and the SIP's reclaim comes after its threads are gone.
        // SAFETY: so the endpoint is live and nothing else refers to it while this reference is used (above).
        unsafe { self.end.as_mut() }
    }

    /// Runs `wait` (a yield or a park of this thread) with the endpoint busy if the SIP has other threads.
    /// Always inlined: every same-core round trip waits twice.
    #[inline(always)]
    fn wait(&mut self, wait: impl FnOnce(&dyn Proxied)) {
        let threaded = self.threaded;
        let end = self.get();
        if threaded {
            end.set_busy(true);
        }
        wait(end);
        if threaded {
            end.set_busy(false);
        }
    }
}

/// Sends the message of `len` bytes in `words` on the endpoint `handle`, acting for SIP `id`; the call's answer.
/// Plain data takes the short path (`Proxied::send_short`); a message with endpoints in it, or one that is no
/// message of the channel, goes as bytes.
#[inline]
fn send_words(id: u64, handles: &mut HandleTable, handle: u32, words: [u64; 4], len: usize) -> u64 {
    match acting_for(id, || handles.get_mut(handle).map(|end| end.send_short(words, len))) {
        None => calls::BAD_HANDLE,
        Some(Some(sent)) => answer_of(sent),
        Some(None) => send_bytes(id, handles, handle, &bytes_of(&words)[..len]),
    }
}

/// A send's answer.
#[inline]
fn answer_of(sent: Result<(), SendFailure>) -> u64 {
    match sent {
        Ok(()) => 0,
        Err(SendFailure::Closed) => calls::CLOSED,
        Err(SendFailure::Bad(_) | SendFailure::Full) => calls::BROKEN,
    }
}

/// Decodes `bytes` as a message of the endpoint `handle` and sends it, acting for SIP `id`; the call's answer.
fn send_bytes(id: u64, handles: &mut HandleTable, handle: u32, bytes: &[u8]) -> u64 {
    match acting_for(id, || handles.with(handle, |end, rest| end.send_encoded(bytes, rest))) {
        None => calls::BAD_HANDLE,
        Some(sent) => answer_of(sent),
    }
}

/// `CHANNEL_RECV`: the oldest message on the frame's `rdi` handle, waiting for one if `r10` is 1: in the
/// frame's registers if it is short, else into the buffer at (`rsi`, room `rdx`). Answers its length.
pub fn recv(id: u64, frame: &mut SyscallFrame) -> u64 {
    let Ok(handle) = u32::try_from(frame.rdi) else { return calls::BAD_HANDLE };
    match Endpoint::of(id, handle) {
        Ok(end) => receive(id, end, frame, false),
        Err(answer) => answer,
    }
}

/// [`recv`] on `end`, the endpoint the frame's `rdi` names; `just_sent`: this call sent on it a moment ago (a
/// request or an answer), so the peer is yet to answer and the receive yields before it first looks. Inlined into
/// its two callers: the same-core round trip runs it twice.
#[inline(always)]
fn receive(id: u64, mut end: Endpoint, frame: &mut SyscallFrame, just_sent: bool) -> u64 {
    let handle = frame.rdi as u32;
    let (at, wait) = (frame.rsi, frame.r10 == 1);
    // A short message fits whatever room the SIP offered: it does not go to the buffer.
    let room = usize::try_from(frame.rdx).unwrap_or(usize::MAX).max(calls::REGISTER_BYTES);
    // The short path first: a message that came beside the ring, or nothing there yet (then the wait, which
    // costs less than a receive that finds nothing: a same-core peer has not answered yet when the receive
    // comes). Anything else (a message in the ring, kept for a larger room, a closed peer) takes the general
    // path below.
    let mut polls = 0;
    if just_sent && wait {
        crate::sched::note_ring3_stack();
        polls = 1;
        end.wait(|_| crate::sched::yield_now());
    }
    loop {
        match end.get().poll_short() {
            Polled::Short(words, len) => {
                [frame.rdi, frame.rsi, frame.rdx, frame.r10] = words;
                return len as u64;
            }
            Polled::Other => break,
            Polled::Nothing if !wait => return calls::EMPTY,
            Polled::Nothing => {
                // The wait: polls first, each after yielding the core (a peer on this core answers meanwhile:
                // the same-core round trip), then the park.
                if polls == 0 {
                    // Waiting switches this thread out: its kernel stack is noted first (`calls` does not for
                    // a receive).
                    crate::sched::note_ring3_stack();
                }
                if polls < crate::ipc::blocking::SPIN_POLLS {
                    polls += 1;
                    end.wait(|_| crate::sched::yield_now());
                } else {
                    end.wait(park);
                }
            }
        }
    }
    let mut short = None;
    loop {
        let attempt = with_handles(id, |handles| {
            // A message the SIP cannot take (its buffer is not its memory) stays for a call with one that is.
            let mut deliver = |bytes: &[u8]| {
                if let Some(words) = calls::to_words(bytes) {
                    short = Some(words);
                    true
                } else {
                    copy_out(id, at, bytes)
                }
            };
            let taken = acting_for(id, || handles.with(handle, |end, rest| end.recv_with(rest, room, &mut deliver)));
            match taken {
                None => Err(calls::BAD_HANDLE),
                Some(Ok(len)) => Err(len as u64),
                Some(Err(RecvFailure::NotDelivered)) => Err(calls::BAD_ADDRESS),
                Some(Err(RecvFailure::TooSmall(len))) => Err(len as u64),
                Some(Err(RecvFailure::Closed)) => Err(calls::CLOSED),
                Some(Err(RecvFailure::Bad(_))) => Err(calls::BROKEN),
                Some(Err(RecvFailure::Empty)) if !wait => Err(calls::EMPTY),
                Some(Err(RecvFailure::Empty)) => Ok(()),
            }
        });
        match attempt {
            None => return calls::NO_SUCH_CALL,
            Some(Err(answer)) => {
                if let Some(words) = short {
                    [frame.rdi, frame.rsi, frame.rdx, frame.r10] = words;
                }
                return answer;
            }
            Some(Ok(())) => {
                crate::sched::note_ring3_stack();
                end.wait(park);
            }
        }
    }
}

/// Parks, in a receive, until `end` has a message or a closed peer (or spuriously), its thread's kernel stack
/// noted.
fn park(end: &dyn Proxied) {
    // SAFETY: the endpoint stays in the SIP's table while this waits: the table is touched only by the calls of
    // the SIP's threads (and, once they are gone, by its reclaim), and while this one waits the endpoint is busy
    // if there are others (`Endpoint::wait`), so none of them closes or moves it.
    unsafe { proxy::park_on(&[end.waiter()]) }
}

/// Copies `bytes` to `at` in SIP `id`'s space; whether it is its memory (and `id` a ring-3 SIP of this core).
fn copy_out(id: u64, at: u64, bytes: &[u8]) -> bool {
    let guard = table().lock();
    let Some(Sip { memory: SipMemory::User(user), .. }) = guard.sip(id) else { return false };
    space_of(user, &guard.ring3).is_some_and(|space| space.copy_out(at, bytes).is_ok())
}

/// `CHANNEL_STATUS`: the state of `handle`, written as five `u64`s at `at`.
pub fn status(id: u64, handle: u64, at: u64) -> u64 {
    let Ok(handle) = u32::try_from(handle) else { return calls::BAD_HANDLE };
    let Some(found) = with_handles(id, |handles| handles.get(handle).map(|end| end.status())) else {
        return calls::NO_SUCH_CALL;
    };
    let Some(status) = found else { return calls::BAD_HANDLE };
    let words = [
        u64::from(status.peer_closed),
        status.queued as u64,
        status.in_flight as u64,
        status.send_capacity as u64,
        status.recv_capacity as u64,
    ]
    .map(u64::to_le_bytes);
    if copy_out(id, at, words.as_flattened()) { 0 } else { calls::BAD_ADDRESS }
}

/// `CHANNEL_PEERS`: whether `a` and `b` are the two ends of one channel.
pub fn peers(id: u64, a: u64, b: u64) -> u64 {
    let (Ok(a), Ok(b)) = (u32::try_from(a), u32::try_from(b)) else { return 0 };
    let answer = with_handles(id, |handles| match (handles.get(a), handles.get(b)) {
        (Some(a), Some(b)) => u64::from(a.is_peer_of(b)),
        _ => 0,
    });
    answer.unwrap_or(0)
}

/// `CHANNEL_WAIT`: until one of the `count` handles at `at` is ready.
pub fn wait(id: u64, at: u64, count: u64) -> u64 {
    // A wait on no handle would never end (nothing could wake it): refused, as one on too many.
    if count == 0 || count > calls::MAX_WAIT {
        return calls::BAD_ARGUMENT;
    }
    let mut raw = vec![0u8; count as usize * 4];
    let ends = with_sip(id, |handles, space| {
        space.copy_in(at, &mut raw).map_err(|_| calls::BAD_ADDRESS)?;
        let threaded = handles.is_threaded();
        let ends = raw
            .as_chunks::<4>()
            .0
            .iter()
            .map(|chunk| {
                let handle = u32::from_le_bytes(*chunk);
                let end = handles.get_mut(handle).ok_or(calls::BAD_HANDLE)?;
                Ok(Endpoint { end: core::ptr::NonNull::from(end), threaded })
            })
            .collect::<Result<Vec<_>, u64>>()?;
        Ok((ends, threaded))
    });
    match ends {
        None => calls::NO_SUCH_CALL,
        Some(Err(answer)) => answer,
        Some(Ok((mut ends, threaded))) => {
            // A handle named twice is one endpoint: marked busy once, cleared once.
            let waiters: Vec<_> = ends.iter_mut().map(|end| end.get().waiter()).collect();
            if threaded {
                ends.iter_mut().for_each(|end| end.get().set_busy(true));
            }
            // SAFETY: as in `park`: the endpoints stay in the table while this thread waits here (busy, if the
            // SIP has other threads, so none of them closes or moves one meanwhile).
            unsafe { proxy::wait_any(&waiters) };
            if threaded {
                ends.iter_mut().for_each(|end| end.get().set_busy(false));
            }
            0
        }
    }
}

/// `CHANNEL_CLOSE`: closes `handle`.
pub fn close(id: u64, handle: u64) -> u64 {
    let Ok(handle) = u32::try_from(handle) else { return calls::BAD_HANDLE };
    let answer = with_handles(id, |handles| acting_for(id, || handles.close(handle)));
    match answer {
        None => calls::NO_SUCH_CALL,
        Some(Ok(())) => 0,
        Some(Err(_)) => calls::BAD_HANDLE,
    }
}

/// `NAMES_CONNECT`: the `NameService` server end `handle` goes to the name service on `core` (`u64::MAX`: this
/// one), as `KernelAbi::connect_names` sends a ring-0 SIP's.
pub fn names_connect(id: u64, handle: u64, core: u64) -> u64 {
    let Ok(handle) = u32::try_from(handle) else { return calls::BAD_HANDLE };
    let core = match core {
        u64::MAX => None,
        core => match u32::try_from(core) {
            Ok(core) => Some(core),
            Err(_) => return calls::BAD_ARGUMENT,
        },
    };
    // The typed end is rebuilt as an endpoint arriving in a message is: from its handle, type-checked.
    let server = with_sip(id, |handles, _| {
        wire::decode::<sip_runtime::NameServiceServer>(&handle.to_le_bytes(), handles).map_err(|_| calls::BAD_HANDLE)
    });
    match server {
        None => calls::NO_SUCH_CALL,
        Some(Err(answer)) => answer,
        Some(Ok(server)) => u64::from(crate::sip::names::connect(id, core, server)),
    }
}
