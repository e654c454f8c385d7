//! The host platform (feature `std`): blocking by thread park/unpark after a short spin, and an exchange over
//! the system allocator with the same ownership ledger and rules as the kernel's. It is the default platform
//! of every host program that uses channels, so `cargo test` and the benchmarks run under the kernel's rules.
//!
//! Not here: anything the kernel uses; this module exists for `cargo test`, benchmarks and host tools.
//!
//! Invariants: [`HostExchange`] records every live block and channel side in its [`Ledger`]; a thread acts for
//! the owner set with [`set_current_owner`] (default [`Owner::KERNEL`]); a broken ownership rule panics the
//! calling thread (on the host, a test failure) and changes nothing. Wake tokens index a registry of parked
//! threads that only grows; an unknown token wakes nobody. Mid-protocol drops are counted per contract
//! ([`mid_protocol_drops`]).

use crate::ledger::{ChannelId, Item, Ledger, Release, RingId, Side, Violation};
use crate::platform::{self, AllocError, AlreadyInstalled, Blocking, Exchange, Owner, Platform};
use crate::trusted::Trusted;
use core::alloc::Layout;
use core::cell::Cell;
use core::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};
use std::vec::Vec;

/// Blocking by `std::thread::park` after polling a little (the peer is often on another core and quick).
pub struct ThreadBlocking;

/// Endpoints dropped mid-protocol, per contract name (`Exchange::dropped_mid_protocol`).
static MID_PROTOCOL_DROPS: Mutex<Vec<(&'static str, u64)>> = Mutex::new(Vec::new());

/// How many endpoints of contract `contract` were dropped outside a terminal state while their peer was there.
pub fn mid_protocol_drops(contract: &str) -> u64 {
    let drops = MID_PROTOCOL_DROPS.lock().unwrap_or_else(PoisonError::into_inner);
    drops.iter().find(|(name, _)| *name == contract).map_or(0, |(_, count)| *count)
}

/// Every thread that ever asked for a token, by token.
static THREADS: Mutex<Vec<Thread>> = Mutex::new(Vec::new());

std::thread_local! {
    /// This thread's token, registered once: a blocked receive then costs no allocation.
    static TOKEN: u64 = {
        let mut threads = THREADS.lock().unwrap_or_else(PoisonError::into_inner);
        threads.push(thread::current());
        (threads.len() - 1) as u64
    };
    static CURRENT_OWNER: Cell<Owner> = const { Cell::new(Owner::KERNEL) };
}

/// Polls with one CPU pause each before yielding: about 3 µs on the 2-core EPYC VM of docs/benchmarks.md (a
/// `pause` takes ~26 ns there), i.e. some thirty round trips of a peer that is running.
const SPIN_ROUNDS: u32 = 128;
/// Polls that yield the CPU before the receiver parks (each ~0.6 µs when nothing else wants the CPU).
const YIELD_ROUNDS: u32 = 32;

impl Blocking for ThreadBlocking {
    fn token(&self) -> u64 {
        TOKEN.with(|token| *token)
    }

    fn wake(&self, token: u64) {
        let thread = usize::try_from(token)
            .ok()
            .and_then(|index| THREADS.lock().unwrap_or_else(PoisonError::into_inner).get(index).cloned());
        if let Some(thread) = thread {
            thread.unpark();
        }
    }

    fn park(&self) {
        thread::park();
    }

    fn spin_limit(&self) -> u32 {
        // A few microseconds of polling, then some yielding (below), before paying for a futex sleep: a blocked
        // receiver never burns its CPU for more than some 25 µs.
        SPIN_ROUNDS + YIELD_ROUNDS
    }

    fn relax(&self, round: u32) {
        // One pause per poll, as a spinning SPSC queue does: the peer is usually on another core and about to
        // answer, and a reply is then noticed within one pause. Then give the CPU away, in case the peer is
        // waiting for it (more threads than free cores).
        if round < SPIN_ROUNDS {
            core::hint::spin_loop();
        } else {
            thread::yield_now();
        }
    }
}

/// The calling thread's wake token on this platform (what a blocking receive leaves in a ring; a task waker
/// made with it, `tasks::task_waker`, wakes this thread).
pub fn current_token() -> u64 {
    TOKEN.with(|token| *token)
}

/// Makes the calling thread act for `owner` (as a SIP's threads do in the kernel): its exchange allocations are
/// `owner`'s, and what it receives becomes `owner`'s.
pub fn set_current_owner(owner: Owner) {
    CURRENT_OWNER.with(|current| current.set(owner));
}

/// The calling thread's owner.
pub fn current_owner() -> Owner {
    CURRENT_OWNER.with(Cell::get)
}

/// An exchange over the system allocator with the kernel's ownership ledger.
pub struct HostExchange {
    ledger: Mutex<Ledger>,
}

impl HostExchange {
    /// An empty exchange (usable in a `static`).
    pub const fn new() -> Self {
        Self { ledger: Mutex::new(Ledger::new()) }
    }

    /// The ledger, for inspection (who holds what, charges, totals).
    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // A panic while holding the lock leaves the ledger consistent: every operation checks before it changes
        // anything.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Everything `owner` holds is freed and every endpoint it holds closed, without any of its code running:
    /// what the kernel does when a process dies. The caller makes sure no thread acts for `owner` again.
    pub fn reclaim(&self, owner: Owner) {
        let mut ledger = self.ledger();
        let release = ledger.reclaim(owner);
        finish(ledger, release);
    }

    fn checked<T>(&self, result: Result<T, Violation>) -> T {
        result.unwrap_or_else(|violation| panic!("{violation} (owner {})", current_owner()))
    }
}

impl Default for HostExchange {
    fn default() -> Self {
        Self::new()
    }
}

/// Does a release's memory work: closes sides while the ledger is still locked (so no other release can free
/// their channels meanwhile), then frees blocks.
fn finish(ledger: MutexGuard<'_, Ledger>, release: Release) {
    for side in &release.close {
        // SAFETY: the ledger says the side's channel is live (its other side is held), and it stays locked.
        unsafe { crate::trusted::close_side(*side) };
    }
    drop(ledger);
    for (block, layout) in release.free {
        // SAFETY: the ledger freed the record of this block, which `allocate` made with this layout; nothing
        // reaches it any more.
        unsafe { std::alloc::dealloc(core::ptr::with_exposed_provenance_mut::<u8>(block), layout) };
    }
}

// SAFETY: blocks come from the system allocator with the requested layout and go back to it with the same
// layout, once (the ledger removes the record before the memory is freed); ownership changes are bookkeeping.
unsafe impl Exchange for HostExchange {
    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let owner = current_owner();
        self.ledger().charge(owner, layout).map_err(|_| AllocError)?;
        // SAFETY: callers never pass a zero-sized layout (the trait's contract).
        let Some(block) = NonNull::new(unsafe { std::alloc::alloc(layout) }) else {
            self.ledger().uncharge(owner, layout);
            return Err(AllocError);
        };
        // Exposed: the ledger names blocks by address, and a release or reclaim frees them from that address.
        self.ledger().allocated(block.expose_provenance().get(), layout, owner);
        Ok(block)
    }

    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout) {
        let mut ledger = self.ledger();
        let release = self.checked(ledger.free(block.addr().get(), current_owner()));
        assert_eq!(release.free.first(), Some(&(block.addr().get(), layout)), "freed with another layout");
        finish(ledger, release);
    }

    fn open(&self, channel: ChannelId) {
        self.checked(self.ledger().open(channel, current_owner()));
    }

    fn send(&self, item: Item, ring: RingId) {
        self.checked(self.ledger().send(item, ring, current_owner()));
    }

    fn receive(&self, item: Item, ring: RingId) -> bool {
        self.checked(self.ledger().receive(item, ring, current_owner()))
    }

    fn dropped_mid_protocol(&self, contract: &'static str, _state: &'static str, _side: &'static str) {
        let mut drops = MID_PROTOCOL_DROPS.lock().unwrap_or_else(PoisonError::into_inner);
        match drops.iter_mut().find(|(name, _)| *name == contract) {
            Some((_, count)) => *count += 1,
            None => drops.push((contract, 1)),
        }
    }

    fn give(&self, item: Item, from: Owner, to: Owner) {
        self.checked(self.ledger().give(item, from, to));
    }

    fn seal(&self, item: Item, capsule: NonNull<u8>) {
        self.checked(self.ledger().seal(item, capsule.addr().get(), current_owner()));
    }

    fn unseal(&self, capsule: NonNull<u8>) -> bool {
        self.checked(self.ledger().unseal(capsule.addr().get(), current_owner()))
    }

    fn release(&self, side: Side) {
        let mut ledger = self.ledger();
        let release = self.checked(ledger.release(side, current_owner()));
        finish(ledger, release);
    }
}

/// The exchange of the host's default platform.
pub static EXCHANGE: HostExchange = HostExchange::new();

/// The host's default platform: [`EXCHANGE`] and [`ThreadBlocking`].
pub(crate) fn default_platform() -> Platform {
    Platform { exchange: &EXCHANGE, blocking: &ThreadBlocking }
}

/// Installs the host's default platform now (every host program gets it at its first channel anyway); `Err`
/// if another platform was installed first.
pub fn install_default() -> Result<(), AlreadyInstalled> {
    // SAFETY: host programs are their own trusted base.
    let trusted = unsafe { Trusted::new() };
    platform::install(&trusted, default_platform())
}
