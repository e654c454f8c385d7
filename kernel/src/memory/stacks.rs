//! Thread stacks: each in its own slot of the stack region, with an unmapped guard page below it.
//!
//! Running off the bottom of a stack hits the guard page and raises a page fault (taken on an IST stack), so
//! an overflow is a clean, attributable fault rather than silent corruption of a neighbour. Slots are
//! recycled through a free list; their frames go back to the frame allocator when a stack is freed.
//!
//! A SIP thread's stack is [`KERNEL_RESERVE`] bytes larger than its manifest asks for: kernel code runs on the
//! SIP's stack (ring 0 to ring 0, no stack switch), and the reserve is the room it is guaranteed there. The
//! scheduler keeps the reserve's upper end as the per-CPU stack limit; a SIP found below it when it enters the
//! kernel or when the timer interrupts it has exhausted its own stack and is ended as a stack overflow
//! (`exec`, `sched::preempt`; docs/architecture.md, "Stacks and the kernel reserve").

use super::frames::Use;
use super::layout::{STACKS_SIZE, STACKS_START};
use super::paging::{self, MapError};
use crate::sync::IrqMutex;
use alloc::vec::Vec;
use x86_64::VirtAddr;
use x86_64::structures::paging::{Page, Size4KiB};

/// Virtual size of a slot: the largest stack plus its guard page.
pub const SLOT_SIZE: u64 = 1 << 20;
/// Largest stack a thread may ask for.
pub const MAX_STACK: u64 = SLOT_SIZE - 4096;

/// Bytes below every SIP thread's own stack that only kernel code may use (docs/architecture.md, "Stacks and
/// the kernel reserve"). Sized by measurement (`exec::watermark`, every console command on one and two cores):
/// the deepest kernel use of a SIP stack was 2,424 bytes (the self-tests, run on the shell's stack; 2,304 for
/// `bench capacity`, at most 1,800 for every other command), and a preemption of SIP code took at most 816
/// bytes; 8 KiB is 3.4 times the deepest. `sip_runtime`'s `MAX_STACK_SIZE` is [`MAX_STACK`] less this, so the
/// largest SIP stack still fits its slot.
pub const KERNEL_RESERVE: u64 = 8 * 1024;

struct Slots {
    next_unused: u64,
    free: Vec<u64>,
}

static SLOTS: IrqMutex<Slots> = IrqMutex::new(Slots { next_unused: 0, free: Vec::new() });

/// Why a stack could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackError {
    /// The size is zero or above [`MAX_STACK`].
    BadSize,
    /// Every slot of the stack region is in use.
    NoSlot,
    /// Mapping the stack failed (out of frames).
    Map(MapError),
}

/// A mapped stack; unmapped and its frames freed on drop.
#[derive(Debug)]
pub struct Stack {
    slot: u64,
    pages: u64,
}

impl Stack {
    /// Maps a stack of `bytes` (rounded up to pages) with a guard page below, with frames for `purpose` (a SIP's
    /// thread stack never takes the kernel's frame reserve).
    pub fn new(bytes: u64, purpose: Use) -> Result<Self, StackError> {
        if bytes == 0 || bytes > MAX_STACK {
            return Err(StackError::BadSize);
        }
        let pages = bytes.div_ceil(4096);
        let slot = {
            let mut slots = SLOTS.lock();
            match slots.free.pop() {
                Some(slot) => slot,
                None if (slots.next_unused + 1) * SLOT_SIZE <= STACKS_SIZE => {
                    slots.next_unused += 1;
                    slots.next_unused - 1
                }
                None => return Err(StackError::NoSlot),
            }
        };
        let stack = Stack { slot, pages };
        match paging::map_fresh(Page::containing_address(VirtAddr::new(stack.bottom())), pages, purpose) {
            Ok(()) => Ok(stack),
            Err(e) => {
                SLOTS.lock().free.push(slot);
                core::mem::forget(stack);
                Err(StackError::Map(e))
            }
        }
    }

    fn slot_end(&self) -> u64 {
        STACKS_START + (self.slot + 1) * SLOT_SIZE
    }

    /// One past the highest byte (16-byte aligned).
    pub fn top(&self) -> u64 {
        self.slot_end()
    }

    /// Lowest mapped byte.
    pub fn bottom(&self) -> u64 {
        self.slot_end() - self.pages * 4096
    }

    /// Whether `addr` lies in the unmapped part of this stack's slot, below the stack: an overflow.
    pub fn is_overflow(&self, addr: u64) -> bool {
        (self.slot_end() - SLOT_SIZE..self.bottom()).contains(&addr)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let first = Page::<Size4KiB>::containing_address(VirtAddr::new(self.bottom()));
        for i in 0..self.pages {
            if let Err(e) = paging::unmap_and_free(first + i) {
                log::error!("freeing stack page {:#x}: {e:?}", (first + i).start_address().as_u64());
            }
        }
        SLOTS.lock().free.push(self.slot);
    }
}
