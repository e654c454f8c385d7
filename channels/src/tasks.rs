//! Receiving without a thread of one's own: a receive as a future (`RawEndpoint::recv_async`,
//! [`recv_async`](crate::recv_async) for typed endpoints), and the wakers that name a task by a plain number.
//!
//! A receive that finds nothing registers a *token* in the ring's wait cell, exactly as a blocking receive does
//! (ring.rs, "Who to wake is a plain number"): a task's token names it to the platform, whose `Blocking::wake`
//! makes it ready. So nothing calls a function found in a ring, and a future receive and a blocking one share
//! the ring's wake protocol, checked by loom. The token comes from the task's waker when it is a task waker
//! ([`task_waker`], which only trusted code makes: a forged token would let a SIP wake anybody); with any other
//! waker the future asks to be polled again at once (it works, by polling).
//!
//! Not here: the executor that polls tasks (the kernel's runner, docs/thread-models.md), and receives in ring 3,
//! where a future receive polls the kernel.

use crate::platform;
use crate::trusted::Trusted;
use core::task::{RawWaker, RawWakerVTable, Waker};

/// The waker of the task whose platform token is `token`: waking it hands the token to the platform's
/// `Blocking::wake`.
pub fn task_waker(trusted: &Trusted, token: u64) -> Waker {
    let _ = trusted;
    // SAFETY: the vtable's functions treat the data pointer as the token it carries (a number, never followed)
    // and are valid for any such pointer; cloning copies the number and dropping does nothing.
    unsafe { Waker::from_raw(raw_waker(token)) }
}

/// The token `waker` carries, if it is a task waker ([`task_waker`]).
pub(crate) fn token_of(waker: &Waker) -> Option<u64> {
    core::ptr::eq(waker.vtable(), &TASK_WAKER).then(|| waker.data().addr() as u64)
}

fn raw_waker(token: u64) -> RawWaker {
    RawWaker::new(core::ptr::without_provenance(token as usize), &TASK_WAKER)
}

/// A task waker's functions: its data pointer is its token, a number.
static TASK_WAKER: RawWakerVTable = RawWakerVTable::new(
    |data| raw_waker(data.addr() as u64),
    |data| wake(data.addr() as u64),
    |data| wake(data.addr() as u64),
    |_| {},
);

fn wake(token: u64) {
    platform::blocking().0.wake(token);
}
