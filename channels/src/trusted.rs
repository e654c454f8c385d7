//! What only the trusted base may do with channels: install the platform, hand a value's blocks and channel
//! sides from one owner to another outside any channel, and close a channel side by its name.
//!
//! The privileged but memory-safe operations take a [`Trusted`] capability, which only code allowed to write
//! `unsafe` can create (its constructor is an `unsafe fn`); services are `#![forbid(unsafe_code)]`, so they can
//! neither make one nor call [`close_side`]. Nothing here is reachable from a process.
//!
//! Invariant: every operation goes through the installed platform's records, which check that the owner it
//! moves from really holds what it moves.

use crate::exchangeable::Exchangeable;
#[cfg(not(feature = "ring3"))]
use crate::ledger::Side;
#[cfg(not(feature = "ring3"))]
use crate::platform;
use crate::platform::Owner;
use crate::walk::{Action, walk};

/// Proof that the holder is part of the trusted base (the kernel, or a host test harness acting as one).
#[derive(Debug)]
pub struct Trusted(());

impl Trusted {
    /// The capability.
    ///
    /// # Safety
    /// Only the trusted base may call this: the holder can install the channel platform and hand any owner's
    /// values to any other owner (checked against the records, but with the authority of the kernel).
    pub unsafe fn new() -> Self {
        Trusted(())
    }
}

/// Hands every exchange-heap block and channel side of `value` from `from` (which must hold them) to `to`: what
/// the kernel does with a process's first endpoint when it starts it, and with an endpoint it keeps for itself.
pub fn give<V: Exchangeable>(trusted: &Trusted, value: &V, from: Owner, to: Owner) {
    let _ = trusted;
    walk(value, Action::Give { from, to });
}

/// Closes `side` of a channel as its endpoint's drop would (without releasing it from the records): the peer's
/// receive sees `Closed` once it has drained what was sent, its sends give their message back, and a peer
/// parked on the channel is woken. Idempotent. This is what a platform does for a dead owner's sides, whose
/// endpoints will never be dropped; it touches only the rings' flags and wait cells, never a message.
///
/// # Safety
/// `side`'s channel is live: its block was opened as a channel and is not freed before this returns.
#[cfg(not(feature = "ring3"))]
pub unsafe fn close_side(side: Side) {
    let wake = |token| platform::blocking().0.wake(token);
    // SAFETY: the caller guarantees a live channel, whose block starts with its two rings.
    let (produces, consumes) = unsafe { crate::raw::rings_of(side) };
    consumes.close_consumer();
    produces.close_producer(wake);
}
