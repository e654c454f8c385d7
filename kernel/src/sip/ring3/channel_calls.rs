//! The channel calls of ring-3 SIPs (`sip_runtime::ring3_calls::CHANNEL_*`): the kernel holds a ring-3 SIP's
//! endpoints in its handle table (`channels::proxy`) and moves messages between them and the SIP's memory in
//! their byte form (`channels::wire`).
//!
//! Every call copies through the checked helpers of the SIP's address space (never a user pointer followed),
//! decodes or encodes while acting for the SIP towards the exchange (`exchange_heap::acting_for`: the blocks
//! and endpoints are its, charged to it), and answers a number. What the SIP writes is untrusted: a message
//! that does not decode breaks only that channel (`BROKEN`), a handle that names nothing is `BAD_HANDLE`.
//!
//! Invariant: no lock is held and nothing of the kernel's is on the thread's stack while a receive or a wait
//! blocks (only the address of a ring, whose endpoint stays in the table: the SIP has one thread), so a kill may
//! end the thread right there, as it may a ring-0 SIP's parked receive.

use super::{Sip, SipMemory, space_of, table};
use crate::ipc::exchange_heap::acting_for;
use alloc::vec;
use alloc::vec::Vec;
use channels::proxy::{self, HandleTable, RecvFailure, SendFailure};
use channels::wire::{self, Endpoints};
use sip_runtime::ring3_calls as calls;

/// Runs `f` with SIP `id`'s handle table and its address space (for copies); `None` if `id` is not a ring-3 SIP
/// of this core.
fn with_sip<R>(id: u64, f: impl FnOnce(&mut HandleTable, &crate::memory::user_spaces::UserSpace) -> R) -> Option<R> {
    let mut guard = table().lock();
    let table = &mut *guard;
    let Some(Sip { memory: SipMemory::User(user), handles, .. }) = table.sips.get_mut(&id) else { return None };
    let space = space_of(user, &table.ring3)?;
    Some(f(handles, space))
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
    // Small messages (most: a tag and a few words) on the stack: an allocation costs more than the rest of the
    // call.
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
        let sent = acting_for(id, || handles.with(handle, |end, rest| end.send_encoded(bytes, rest)));
        match sent {
            None => calls::BAD_HANDLE,
            Some(Ok(())) => 0,
            Some(Err(SendFailure::Closed)) => calls::CLOSED,
            Some(Err(SendFailure::Bad(_) | SendFailure::Full)) => calls::BROKEN,
        }
    });
    answer.unwrap_or(calls::NO_SUCH_CALL)
}

/// `CHANNEL_RECV`: the oldest message on `handle` into (`at`, `room`), waiting for one if `wait` is 1.
pub fn recv(id: u64, handle: u64, at: u64, room: u64, wait: u64) -> u64 {
    let Ok(handle) = u32::try_from(handle) else { return calls::BAD_HANDLE };
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    loop {
        let attempt = with_sip(id, |handles, space| {
            // The copy to the SIP happens inside: a message it cannot take stays for a call with a buffer that
            // is its memory.
            let mut deliver = |bytes: &[u8]| space.copy_out(at, bytes).is_ok();
            let taken = acting_for(id, || handles.with(handle, |end, rest| end.recv_with(rest, room, &mut deliver)));
            match taken {
                None => Err(calls::BAD_HANDLE),
                Some(Ok(len)) => Err(len as u64),
                Some(Err(RecvFailure::NotDelivered)) => Err(calls::BAD_ADDRESS),
                Some(Err(RecvFailure::TooSmall(len))) => Err(len as u64),
                Some(Err(RecvFailure::Closed)) => Err(calls::CLOSED),
                Some(Err(RecvFailure::Bad(_))) => Err(calls::BROKEN),
                Some(Err(RecvFailure::Empty)) if wait != 1 => Err(calls::EMPTY),
                Some(Err(RecvFailure::Empty)) => Ok(handles.get(handle).map(|end| end.waiter())),
            }
        });
        match attempt {
            None => return calls::NO_SUCH_CALL,
            Some(Err(answer)) => return answer,
            Some(Ok(None)) => return calls::BAD_HANDLE,
            // SAFETY: the endpoint stays in the SIP's table while this waits: the SIP has this one thread, which
            // is here, and the table is touched only by its calls (and, once it is gone, by its reclaim).
            Some(Ok(Some(waiter))) => unsafe { proxy::wait_any(&[waiter]) },
        }
    }
}

/// `CHANNEL_STATUS`: the state of `handle`, written as five `u64`s at `at`.
pub fn status(id: u64, handle: u64, at: u64) -> u64 {
    let Ok(handle) = u32::try_from(handle) else { return calls::BAD_HANDLE };
    let answer = with_sip(id, |handles, space| {
        let Some(status) = handles.get(handle).map(|end| end.status()) else { return calls::BAD_HANDLE };
        let mut out = [0u8; 40];
        let words = [
            u64::from(status.peer_closed),
            status.queued as u64,
            status.in_flight as u64,
            status.send_capacity as u64,
            status.recv_capacity as u64,
        ];
        for (chunk, word) in out.as_chunks_mut::<8>().0.iter_mut().zip(words) {
            *chunk = word.to_le_bytes();
        }
        if space.copy_out(at, &out).is_err() { calls::BAD_ADDRESS } else { 0 }
    });
    answer.unwrap_or(calls::NO_SUCH_CALL)
}

/// `CHANNEL_PEERS`: whether `a` and `b` are the two ends of one channel.
pub fn peers(id: u64, a: u64, b: u64) -> u64 {
    let (Ok(a), Ok(b)) = (u32::try_from(a), u32::try_from(b)) else { return 0 };
    let answer = with_sip(id, |handles, _| match (handles.get(a), handles.get(b)) {
        (Some(a), Some(b)) => u64::from(a.is_peer_of(b)),
        _ => 0,
    });
    answer.unwrap_or(0)
}

/// `CHANNEL_WAIT`: until one of the `count` handles at `at` is ready.
pub fn wait(id: u64, at: u64, count: u64) -> u64 {
    if count > calls::MAX_WAIT {
        return calls::BAD_ARGUMENT;
    }
    let mut raw = vec![0u8; count as usize * 4];
    let waiters = with_sip(id, |handles, space| {
        space.copy_in(at, &mut raw).map_err(|_| calls::BAD_ADDRESS)?;
        raw.as_chunks::<4>()
            .0
            .iter()
            .map(|chunk| {
                let handle = u32::from_le_bytes(*chunk);
                handles.get(handle).map(|end| end.waiter()).ok_or(calls::BAD_HANDLE)
            })
            .collect::<Result<Vec<_>, u64>>()
    });
    match waiters {
        None => calls::NO_SUCH_CALL,
        Some(Err(answer)) => answer,
        Some(Ok(waiters)) => {
            // SAFETY: as in `recv`: the endpoints stay in the table while the SIP's one thread waits here.
            unsafe { proxy::wait_any(&waiters) };
            0
        }
    }
}

/// `CHANNEL_CLOSE`: closes `handle`.
pub fn close(id: u64, handle: u64) -> u64 {
    let Ok(handle) = u32::try_from(handle) else { return calls::BAD_HANDLE };
    let answer = with_sip(id, |handles, _| acting_for(id, || handles.close(handle)));
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
