//! The heap of a ring-3 SIP: `talc` over the slot's heap region, which grows by the `GROW` call within the SIP's
//! heap quota. A refused growth makes the allocation fail (and the failure is a panic, which the kernel reports
//! as the quota's when the quota was the reason).
#![allow(unsafe_code, reason = "an allocator's source hands memory to talc")]

use crate::calls;
use core::alloc::Layout;
use core::sync::atomic::{AtomicBool, Ordering};
use talc::base::Talc;
use talc::base::binning::Binning;
use talc::source::Source;

/// Smallest step the heap grows by.
const STEP: u64 = 16 * 1024;

/// Where the heap's memory comes from: the kernel, by `GROW`.
#[derive(Debug)]
pub struct Grown {
    /// The end of the memory handed to talc so far (null before the first growth).
    end: *mut u8,
}

// SAFETY: the pointer is only an address in this SIP's own heap, used under the heap's lock.
unsafe impl Send for Grown {}

// SAFETY: `acquire` hands talc only memory the kernel has just mapped for this heap, which nothing else uses;
// the heap's memory is contiguous (each growth starts where the last ended), so extending is valid.
unsafe impl Source for Grown {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        let want = ((layout.size() + layout.align() + 4096) as u64).max(STEP).next_multiple_of(4096);
        let start = calls::grow(want).ok_or(())?;
        let new_end = (start + want) as *mut u8;
        talc.source.end = if talc.source.end.is_null() || talc.source.end as u64 != start {
            // SAFETY: [start, start + want) was just mapped, writable, for this heap alone.
            unsafe { talc.claim(start as *mut u8, want as usize) }.ok_or(())?.as_ptr()
        } else {
            // SAFETY: `end` is the end talc returned last time, and the memory up to `new_end` was just mapped.
            unsafe { talc.extend(core::ptr::NonNull::new(talc.source.end).ok_or(())?, new_end) }.as_ptr()
        };
        Ok(())
    }
}

/// A lock for the heap: a spin lock that gives the core away while another thread holds it.
pub struct YieldingLock(AtomicBool);

// SAFETY: `lock` returns only once this caller flipped the flag from false to true (acquire), `unlock` clears it
// (release); so at most one holder exists at a time.
unsafe impl talc::lock_api::RawMutex for YieldingLock {
    #[allow(clippy::declare_interior_mutable_const, reason = "lock_api's required initialiser pattern")]
    const INIT: Self = Self(AtomicBool::new(false));
    type GuardMarker = talc::lock_api::GuardNoSend;

    fn lock(&self) {
        while !self.try_lock() {
            calls::yield_now();
        }
    }

    fn try_lock(&self) -> bool {
        self.0.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    unsafe fn unlock(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The SIP's heap.
#[global_allocator]
static HEAP: talc::TalcLock<YieldingLock, Grown> = talc::TalcLock::new(Grown { end: core::ptr::null_mut() });
