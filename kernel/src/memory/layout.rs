//! The kernel's virtual address map: the regions the kernel places itself.
//!
//! The kernel's own lower half stays empty; ring-3 address spaces use theirs from [`USER_START`]. The bootloader places the kernel
//! image, its stack, the boot info, the framebuffer and the physical-memory window in
//! [`BOOTLOADER_RANGE_START`]..=[`BOOTLOADER_RANGE_END`]; everything from `0xffff_c000_0000_0000` up belongs to
//! the regions below, each in its own level-4 slots so no two can ever overlap.

/// Lowest address the bootloader may use for its dynamic mappings.
pub const BOOTLOADER_RANGE_START: u64 = 0xffff_8000_0000_0000;
/// Highest address the bootloader may use for its dynamic mappings.
pub const BOOTLOADER_RANGE_END: u64 = 0xffff_bfff_ffff_ffff;

/// Start of the kernel heap; it grows upwards on demand.
pub const KERNEL_HEAP_START: u64 = 0xffff_c000_0000_0000;
/// Most the kernel heap may grow to.
pub const KERNEL_HEAP_MAX: u64 = 1 << 30;

/// Start of the window for device registers (APICs), mapped uncached.
pub const MMIO_START: u64 = 0xffff_c800_0000_0000;
/// Size of the MMIO window.
pub const MMIO_SIZE: u64 = 1 << 30;

/// Start of the thread-stack region: 1 MiB slots, each a stack with unmapped space (the guard) below it.
pub const STACKS_START: u64 = 0xffff_d000_0000_0000;
/// Size of the thread-stack region (65,536 slots).
pub const STACKS_SIZE: u64 = 1 << 36;

/// Start of the SIP heap arenas: one slot of [`ARENA_SLOT_SIZE`] per live SIP.
pub const ARENAS_START: u64 = 0xffff_e000_0000_0000;
/// Virtual size of one arena slot (the largest heap quota a manifest may ask for).
pub const ARENA_SLOT_SIZE: u64 = 64 << 20;
/// Arena slots (SIPs alive at once).
pub const MAX_ARENAS: usize = 16384;

/// Start of the exchange heap, where messages live between SIPs.
pub const EXCHANGE_START: u64 = 0xffff_e800_0000_0000;
/// Most the exchange heap may grow to.
pub const EXCHANGE_MAX: u64 = 1 << 30;

/// Start of the small heaps (`small_heap`): one region of [`SMALL_HEAP_SIZE`] per heap, where async SIPs keep
/// their futures and everything they allocate.
pub const SMALL_HEAPS_START: u64 = 0xffff_f000_0000_0000;
/// Virtual size of one small heap.
pub const SMALL_HEAP_SIZE: u64 = 1 << 30;
/// Small heaps (one per core: `percpu::MAX_CPUS`), 256 GiB in all, within one level-4 slot.
pub const SMALL_HEAPS: usize = 256;

/// Start of the region the self-tests map and unmap scratch pages in.
pub const SELFTEST_SCRATCH_START: u64 = 0xffff_cf00_0000_0000;

/// Start of the ring-3 region: user-accessible pages in the lower half of ring-3 address spaces, one slot of
/// [`USER_SLOT_SIZE`] per ring-3 SIP (in the shared space of its core, or its own). Far from the AP trampoline's
/// identity-mapped page below 1 MiB, so their page tables are never shared with it.
pub const USER_START: u64 = 0x0000_4000_0000_0000;
/// End of the lower half.
pub const USER_END: u64 = 0x0000_8000_0000_0000;
/// One ring-3 SIP's slot: its code and data from the slot's start, its heap from [`USER_HEAP_OFFSET`], its stack at
/// the top (below one unmapped page), with [`USER_STACK_REGION`] kept for it, the part below the mapped stack
/// never mapped: the guard.
pub const USER_SLOT_SIZE: u64 = 1 << 30;
/// Where in its slot a ring-3 SIP's heap starts (after at most 256 MiB of image); it grows by call, within the
/// heap quota (at most 64 MiB, `sip_runtime::MAX_HEAP_QUOTA`), far below the stack region.
pub const USER_HEAP_OFFSET: u64 = 256 << 20;
/// Slots in the ring-3 region.
pub const USER_SLOTS: u64 = (USER_END - USER_START) / USER_SLOT_SIZE;
/// Bytes at the top of a slot kept for its stack and the guard below it (more than the largest stack a manifest
/// may ask for).
pub const USER_STACK_REGION: u64 = 2 << 20;

/// The start of ring-3 slot `slot`.
pub const fn user_slot_start(slot: u64) -> u64 {
    USER_START + slot * USER_SLOT_SIZE
}

/// The most threads a ring-3 SIP may have: each has a stack region of its own below the first's.
pub const USER_THREADS: u64 = 64;

/// The top of the stack of ring-3 slot `slot` (the page above it stays unmapped).
pub const fn user_stack_top(slot: u64) -> u64 {
    user_thread_stack_top(slot, 0)
}

/// The guard below a ring-3 stack of `stack_bytes` in slot `slot`: the rest of the slot's stack region, never
/// mapped, where a fault is that stack's overflow.
pub const fn user_stack_guard(slot: u64, stack_bytes: u64) -> core::ops::Range<u64> {
    user_thread_stack_guard(slot, 0, stack_bytes)
}

/// The top of the stack of thread `index` (0: the first; below [`USER_THREADS`]) of ring-3 slot `slot`: each
/// thread's region is [`USER_STACK_REGION`] below the one before, from the slot's top down (64 of them take 128
/// MiB, far above the heap's end), and the page at the top of each stays unmapped.
pub const fn user_thread_stack_top(slot: u64, index: u64) -> u64 {
    user_slot_start(slot) + USER_SLOT_SIZE - index * USER_STACK_REGION - 4096
}

/// The stack region of thread `index` in slot `slot`: its stack at the top, its guard below.
pub const fn user_thread_stack_region(slot: u64, index: u64) -> core::ops::Range<u64> {
    user_slot_start(slot) + USER_SLOT_SIZE - (index + 1) * USER_STACK_REGION..user_thread_stack_top(slot, index)
}

/// The guard below the stack of `stack_bytes` of thread `index` in slot `slot` (as [`user_stack_guard`]).
pub const fn user_thread_stack_guard(slot: u64, index: u64, stack_bytes: u64) -> core::ops::Range<u64> {
    let region = user_thread_stack_region(slot, index);
    region.start..region.end - stack_bytes
}
