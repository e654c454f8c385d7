//! Interrupt-stack-table slots and the stacks behind them.
//!
//! Each exception that can be caused by a broken stack (double fault, page fault on a guard page) or that can
//! arrive at any instant (NMI, machine check) runs on a dedicated stack, named by an [`IstSlot`]; so do all
//! device, timer and inter-processor interrupts, which share one ([`IstSlot::Interrupts`]): they arrive
//! whatever the interrupted code is doing, and in Plurality that code may be a SIP that has used up its stack.
//! The stacks are plain memory owned by one core; this module only computes their tops.
//!
//! Invariant of the shared interrupt stack: its handlers run with interrupts off from entry to `iretq` (an
//! interrupt gate clears IF and they never set it), so no two of them are ever on it at once, and none of
//! them switches threads while on it (the CPU starts every delivery at the top of the stack again).

use core::cell::UnsafeCell;

/// Bytes of each IST stack. Exception handlers format a report on it, so it is generous.
pub const IST_STACK_SIZE: usize = 16 * 1024;

/// The IST entries Plurality uses. The discriminant is the TSS index (the IDT stores it plus one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum IstSlot {
    /// #DF: taken when pushing an exception frame itself faults, e.g. kernel stack overflow.
    DoubleFault = 0,
    /// #PF: a SIP running off its stack into the guard page must still reach the handler.
    PageFault = 1,
    /// NMI: may interrupt any code, including code whose stack is half built.
    Nmi = 2,
    /// #MC: same reason as NMI.
    MachineCheck = 3,
    /// Every device, timer and inter-processor interrupt vector, and the spurious ones: they may arrive while
    /// a SIP runs with its stack nearly used up, and must never push a frame there.
    Interrupts = 4,
}

impl IstSlot {
    /// Every slot, in TSS order.
    pub const ALL: [IstSlot; 5] = [Self::DoubleFault, Self::PageFault, Self::Nmi, Self::MachineCheck, Self::Interrupts];

    /// The index into the TSS's interrupt-stack table.
    pub const fn index(self) -> u16 {
        self as u16
    }
}

/// Backing memory of one core's IST stacks.
///
/// The CPU writes to these stacks behind Rust's back, so they sit in an `UnsafeCell`: that also keeps a
/// `static IstStacks` out of read-only memory (a plain zeroed static would land in `.rodata`, and the first
/// exception delivered on it would fault, then double- and triple-fault).
#[repr(C, align(16))]
pub struct IstStacks {
    stacks: UnsafeCell<[[u8; IST_STACK_SIZE]; IstSlot::ALL.len()]>,
}

// SAFETY: Rust code never reads or writes the stacks' bytes; only addresses are computed from shared
// references, and the CPU uses the memory as stacks of the one core that owns them.
unsafe impl Sync for IstStacks {}

impl IstStacks {
    /// Zeroed stacks (usable as a `static` initialiser: lands in writable `.bss`).
    pub const fn new() -> Self {
        Self { stacks: UnsafeCell::new([[0; IST_STACK_SIZE]; IstSlot::ALL.len()]) }
    }

    /// Address of the lowest byte of `slot`'s stack.
    pub fn bottom(&self, slot: IstSlot) -> u64 {
        self.stacks.get() as u64 + u64::from(slot.index()) * IST_STACK_SIZE as u64
    }

    /// Address one past the highest byte of `slot`'s stack, 16-byte aligned as the ABI wants.
    pub fn top(&self, slot: IstSlot) -> u64 {
        (self.bottom(slot) + IST_STACK_SIZE as u64) & !0xf
    }
}

impl Default for IstStacks {
    fn default() -> Self {
        Self::new()
    }
}
