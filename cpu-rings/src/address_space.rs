//! User page tables: an address space whose lower half is its own and whose upper half is the kernel's, and the
//! checked copies between ring-3 memory and the kernel.
//!
//! An [`AddressSpace`] owns a level-4 table. Its upper 256 entries are copied from the kernel's at creation and
//! never change, so the kernel runs the same in every space; the kernel keeps this true by giving every
//! upper-half slot its level-3 table before the first space is made (its page-table code). The lower half holds
//! only user pages ([`AddressSpace::map`] refuses anything else) and the tables above them, made on demand from
//! the [`FrameSource`] the space was built with and freed when they become empty
//! ([`AddressSpace::unmap_range`]) or when the space is dropped.
//!
//! The kernel reads and writes ring-3 memory only through [`AddressSpace::copy_in`] and
//! [`AddressSpace::copy_out`]: every page of the range is looked up in this space's tables first (present,
//! user-accessible at every level, writable for a write) and the bytes move through the kernel's window on
//! physical memory, never through the user's addresses. So SMAP never has to be opened, a bad pointer from ring
//! 3 is an error and not a kernel page fault, and the copy reads the memory of the space named, whichever space
//! the CPU has loaded.
//!
//! A page can also be mapped shared ([`AddressSpace::map_shared`]): read-only, its frame owned elsewhere (the
//! ring-3 image's read-only pages, mapped into every SIP that loads it) and never freed by the space.
//!
//! Not here: which frames user pages get and who pays for them (the kernel's), and TLB shootdown: a space is used
//! by one core (the kernel's decision, docs/protection.md), which flushes its own TLB on unmap.
//!
//! Invariants: the lower half maps only user-accessible pages; every table frame reachable from the lower half
//! belongs to this space alone; the upper half is the kernel's, untouched.

use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::{PageTable, PageTableFlags as Flags, PhysFrame, Size4KiB};
use x86_64::{PhysAddr, VirtAddr};

/// First address past the lower (user) half.
pub const USER_END: u64 = 0x0000_8000_0000_0000;

/// Where page-table frames come from and where freed frames go.
pub trait FrameSource {
    /// A frame for a page table, or `None` when memory is exhausted. Its contents do not matter: the space
    /// clears it.
    fn table_frame(&mut self) -> Option<PhysFrame<Size4KiB>>;
    /// Takes back a page-table frame the space no longer uses.
    fn free_table(&mut self, frame: PhysFrame<Size4KiB>);
    /// Takes back the frame of a user page the space unmapped.
    fn free_page(&mut self, frame: PhysFrame<Size4KiB>);
}

/// Why a mapping could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceError {
    /// No frame for a page table.
    OutOfFrames,
    /// The page is mapped already.
    AlreadyMapped,
    /// The address is not in the lower half.
    NotUserAddress,
}

/// A ring-3 address the kernel was asked to read or write is not there: not mapped, not user-accessible, not
/// writable for a write, or not in the lower half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadUserAddress(pub u64);

/// The access a copy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read the user's bytes.
    Read,
    /// Write them.
    Write,
}

/// Page-table entry flags of every table above a user page: what the leaf allows is decided at the leaf.
const TABLE_FLAGS: Flags = Flags::PRESENT.union(Flags::WRITABLE).union(Flags::USER_ACCESSIBLE);

/// A leaf mapped with [`AddressSpace::map_shared`]: its frame is not the space's, and unmapping never frees it
/// (one of the bits the CPU leaves to the system).
const SHARED: Flags = Flags::BIT_9;

/// One level-4 table with the kernel's upper half: see the module docs.
pub struct AddressSpace<F: FrameSource> {
    level_4: PhysFrame<Size4KiB>,
    /// Virtual address of physical address 0 (the kernel's window on all physical memory).
    window: u64,
    frames: F,
    /// The level-1 table the last `map` went into, by the 2 MiB region it maps (address >> 21): pages are mostly
    /// mapped in runs (an image, a stack, a heap growth), and the next page then needs no walk. Forgotten by
    /// every unmap (which may free tables).
    last_leaf_table: Option<(u64, PhysFrame<Size4KiB>)>,
}

impl<F: FrameSource> AddressSpace<F> {
    /// A new space: an empty lower half and the upper half of `kernel_level_4`, reached through `window`.
    ///
    /// # Safety
    /// `window` maps all physical memory (read-write) at this address, `kernel_level_4` is the kernel's level-4
    /// table, and `frames` hands out frames that nothing else uses.
    pub unsafe fn new(
        kernel_level_4: PhysFrame<Size4KiB>,
        window: VirtAddr,
        mut frames: F,
    ) -> Result<Self, SpaceError> {
        let level_4 = frames.table_frame().ok_or(SpaceError::OutOfFrames)?;
        let space = Self { level_4, window: window.as_u64(), frames, last_leaf_table: None };
        let table = space.table(level_4);
        table.zero();
        let kernel = space.table(kernel_level_4);
        for i in 256..512 {
            table[i] = kernel[i].clone();
        }
        Ok(space)
    }

    /// The level-4 table's frame (what CR3 holds while this space is loaded).
    pub fn level_4(&self) -> PhysFrame<Size4KiB> {
        self.level_4
    }

    /// Loads this space on the calling core.
    ///
    /// # Safety
    /// The kernel must be running on memory of the upper half (always true of kernel code and stacks), and the
    /// space must stay alive while any core has it loaded.
    pub unsafe fn activate(&self) {
        // SAFETY: the upper half is the kernel's (module invariant), so the code and stack running now are mapped
        // the same after the write; the caller keeps the space alive while loaded.
        unsafe { Cr3::write(self.level_4, Cr3Flags::empty()) };
    }

    /// The table in `frame`, through the window.
    #[allow(
        clippy::mut_from_ref,
        reason = "a table is reached by its frame; &mut self or &self of the space guards it"
    )]
    fn table(&self, frame: PhysFrame<Size4KiB>) -> &mut PageTable {
        // SAFETY: the window maps all physical memory (constructor contract) and `frame` is a table of this space
        // (or the kernel's level 4 while copying from it); callers that write hold `&mut self`.
        unsafe { &mut *((self.window + frame.start_address().as_u64()) as *mut PageTable) }
    }

    /// Maps the user page at `page` to `frame`, user-accessible, writable and executable as `flags` says (only
    /// `WRITABLE` and `NO_EXECUTE` are taken from it). The frame becomes the space's: unmapping frees it.
    pub fn map(&mut self, page: VirtAddr, frame: PhysFrame<Size4KiB>, flags: Flags) -> Result<(), SpaceError> {
        self.map_leaf(page, frame, flags & (Flags::WRITABLE | Flags::NO_EXECUTE))
    }

    /// Maps the user page at `page` to `frame`, which stays its owner's (many spaces may map it): read-only,
    /// executable unless `flags` has `NO_EXECUTE`; unmapping leaves the frame alone.
    pub fn map_shared(&mut self, page: VirtAddr, frame: PhysFrame<Size4KiB>, flags: Flags) -> Result<(), SpaceError> {
        self.map_leaf(page, frame, (flags & Flags::NO_EXECUTE) | SHARED)
    }

    /// Maps a leaf with `allowed` (besides present and user-accessible).
    fn map_leaf(&mut self, page: VirtAddr, frame: PhysFrame<Size4KiB>, allowed: Flags) -> Result<(), SpaceError> {
        if page.as_u64() >= USER_END || !page.is_aligned(4096u64) {
            return Err(SpaceError::NotUserAddress);
        }
        let region = page.as_u64() >> 21;
        let table = match self.last_leaf_table {
            Some((last, table)) if last == region => table,
            _ => {
                let indices = [page.p4_index(), page.p3_index(), page.p2_index()];
                let mut table = self.level_4;
                for index in indices {
                    let entry = &mut self.table(table)[index];
                    table = if entry.is_unused() {
                        let fresh = self.frames.table_frame().ok_or(SpaceError::OutOfFrames)?;
                        self.table(fresh).zero();
                        self.table(table)[index].set_frame(fresh, TABLE_FLAGS);
                        fresh
                    } else {
                        entry.frame().map_err(|_| SpaceError::AlreadyMapped)?
                    };
                }
                self.last_leaf_table = Some((region, table));
                table
            }
        };
        let leaf = &mut self.table(table)[page.p1_index()];
        if !leaf.is_unused() {
            return Err(SpaceError::AlreadyMapped);
        }
        leaf.set_frame(frame, allowed | Flags::PRESENT | Flags::USER_ACCESSIBLE);
        Ok(())
    }

    /// The physical address `addr` maps to in this space if ring-3 code may access it as `access` says.
    pub fn translate(&self, addr: VirtAddr, access: Access) -> Option<PhysAddr> {
        if addr.as_u64() >= USER_END {
            return None;
        }
        let mut needed = Flags::PRESENT | Flags::USER_ACCESSIBLE;
        if access == Access::Write {
            needed |= Flags::WRITABLE;
        }
        let indices = [addr.p4_index(), addr.p3_index(), addr.p2_index(), addr.p1_index()];
        let mut table = self.level_4;
        for index in indices {
            let entry = &self.table(table)[index];
            if !entry.flags().contains(needed) || entry.flags().contains(Flags::HUGE_PAGE) {
                return None;
            }
            table = entry.frame().ok()?;
        }
        Some(table.start_address() + (addr.as_u64() & 0xfff))
    }

    /// Moves bytes between ring-3 memory at `user` and `kernel` (page by page, through the window), after
    /// checking the whole range allows `access`. Nothing is copied when any page fails.
    fn copy(
        &self,
        user: u64,
        len: usize,
        access: Access,
        mut each: impl FnMut(*mut u8, usize, usize),
    ) -> Result<(), BadUserAddress> {
        let end = user.checked_add(len as u64).filter(|end| *end <= USER_END).ok_or(BadUserAddress(user))?;
        if len == 0 {
            return Ok(());
        }
        if (user ^ (end - 1)) & !0xfff == 0 {
            // One page (a message, a status block): one walk of the tables.
            let phys = self.translate(VirtAddr::new(user), access).ok_or(BadUserAddress(user))?;
            each((self.window + phys.as_u64()) as *mut u8, 0, len);
            return Ok(());
        }
        let mut at = user;
        while at < end {
            self.translate(VirtAddr::new(at), access).ok_or(BadUserAddress(at))?;
            at = (at & !0xfff) + 4096;
        }
        let mut done = 0;
        while done < len {
            let at = user + done as u64;
            let piece = (4096 - (at & 0xfff) as usize).min(len - done);
            let phys = self.translate(VirtAddr::new(at), access).ok_or(BadUserAddress(at))?;
            each((self.window + phys.as_u64()) as *mut u8, done, piece);
            done += piece;
        }
        Ok(())
    }

    /// Copies `out.len()` bytes of ring-3 memory at `user` into `out`.
    pub fn copy_in(&self, user: u64, out: &mut [u8]) -> Result<(), BadUserAddress> {
        let len = out.len();
        let dst = out.as_mut_ptr();
        self.copy(user, len, Access::Read, |src, offset, piece| {
            // SAFETY: `src` is `piece` mapped bytes of the window (checked by `copy`); `dst + offset` is inside
            // `out`; a user frame never holds kernel data, so the two do not overlap.
            unsafe { core::ptr::copy_nonoverlapping(src, dst.add(offset), piece) }
        })
    }

    /// Copies `bytes` into ring-3 memory at `user`.
    pub fn copy_out(&self, user: u64, bytes: &[u8]) -> Result<(), BadUserAddress> {
        let src = bytes.as_ptr();
        self.copy(user, bytes.len(), Access::Write, |dst, offset, piece| {
            // SAFETY: as in `copy_in`, the other way.
            unsafe { core::ptr::copy_nonoverlapping(src.add(offset), dst, piece) }
        })
    }

    /// Unmaps every user page in `start..end` (page-aligned, lower half), gives each page's frame and every table
    /// left empty back to the frame source, and says how many pages were unmapped. The caller flushes the TLB
    /// of a loaded space.
    pub fn unmap_range(&mut self, start: u64, end: u64) -> u64 {
        let end = end.min(USER_END);
        if start >= end {
            return 0;
        }
        self.last_leaf_table = None;
        let level_4 = self.level_4;
        self.unmap_in(level_4, 4, 0, start, end)
    }

    /// [`Self::unmap_range`] inside the table `frame` of `level`, which maps addresses from `base`.
    fn unmap_in(&mut self, frame: PhysFrame<Size4KiB>, level: u32, base: u64, start: u64, end: u64) -> u64 {
        let span = 1u64 << (12 + 9 * (level - 1));
        let mut unmapped = 0;
        // At level 4 only the lower half: the upper entries are the kernel's. Only the entries that cover part of
        // `start..end` are visited, so the cost follows the range, not the table.
        let entries: u64 = if level == 4 { 256 } else { 512 };
        let first = start.saturating_sub(base) / span;
        let last = ((end - 1).saturating_sub(base) / span).min(entries - 1);
        for index in (first..=last).map(|i| i as usize) {
            let from = base + index as u64 * span;
            let entry = &self.table(frame)[index];
            if entry.is_unused() {
                continue;
            }
            let Ok(next) = entry.frame() else { continue };
            if level == 1 {
                let shared = entry.flags().contains(SHARED);
                self.table(frame)[index].set_unused();
                if !shared {
                    self.frames.free_page(next);
                }
                unmapped += 1;
                continue;
            }
            if start <= from && from + span <= end {
                // The whole subtree is in the range: free it without looking for what is left in it.
                unmapped += self.free_subtree(next, level - 1);
                self.table(frame)[index].set_unused();
                self.frames.free_table(next);
                continue;
            }
            unmapped += self.unmap_in(next, level - 1, from, start, end);
            // Also a table that never had a page (a `map` that ran out of frames half way) goes here.
            if is_empty(self.table(next)) {
                self.table(frame)[index].set_unused();
                self.frames.free_table(next);
            }
        }
        unmapped
    }
}

impl<F: FrameSource> AddressSpace<F> {
    /// Frees every page under the table `frame` of `level` and every table below it (not `frame` itself); says
    /// how many pages it freed.
    fn free_subtree(&mut self, frame: PhysFrame<Size4KiB>, level: u32) -> u64 {
        let mut freed = 0;
        for group in 0..512 / GROUP {
            if !group_in_use(self.table(frame), group) {
                continue;
            }
            for index in group * GROUP..(group + 1) * GROUP {
                let entry = &self.table(frame)[index];
                if entry.is_unused() {
                    continue;
                }
                let Ok(next) = entry.frame() else { continue };
                if level == 1 {
                    if !entry.flags().contains(SHARED) {
                        self.frames.free_page(next);
                    }
                    freed += 1;
                } else {
                    freed += self.free_subtree(next, level - 1);
                    self.frames.free_table(next);
                }
            }
        }
        freed
    }
}

/// Entries of a table looked at together by [`group_in_use`].
const GROUP: usize = 16;

/// Whether any of entries `group * GROUP ..` of `table` is in use. Most of a table is empty (a slot maps a few
/// runs of pages, and a teardown visits every table whole): an empty group costs a few instructions instead of a
/// compare and a branch per entry.
fn group_in_use(table: &PageTable, group: usize) -> bool {
    // SAFETY: `PageTable` is `repr(C)` over `[PageTableEntry; 512]`, and `PageTableEntry` is `repr(transparent)`
    // over `u64`: the same bytes, read as the words they are.
    let words: &[u64; 512] = unsafe { &*core::ptr::from_ref(table).cast::<[u64; 512]>() };
    words[group * GROUP..][..GROUP].iter().fold(0, |any, word| any | word) != 0
}

/// Whether no entry of `table` is in use.
fn is_empty(table: &PageTable) -> bool {
    !(0..512 / GROUP).any(|group| group_in_use(table, group))
}

impl<F: FrameSource> Drop for AddressSpace<F> {
    /// Frees every user page, every table of the lower half and the level-4 table. The caller made sure no core
    /// has the space loaded.
    fn drop(&mut self) {
        self.unmap_range(0, USER_END);
        self.frames.free_table(self.level_4);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    /// Simulated physical memory: frame `n` is page `n` of a leaked buffer, the window is its address.
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    struct Frames {
        free: Vec<u64>,
        tables_out: u64,
        pages_freed: Vec<u64>,
    }

    impl FrameSource for &mut Frames {
        fn table_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
            let frame = self.free.pop()?;
            self.tables_out += 1;
            Some(PhysFrame::containing_address(PhysAddr::new(frame)))
        }
        fn free_table(&mut self, frame: PhysFrame<Size4KiB>) {
            self.tables_out -= 1;
            self.free.push(frame.start_address().as_u64());
        }
        fn free_page(&mut self, frame: PhysFrame<Size4KiB>) {
            self.pages_freed.push(frame.start_address().as_u64());
        }
    }

    const FRAMES: u64 = 64;

    /// Memory, the window, a kernel level-4 table (frame 0) with two upper-half entries, and frames 1.. free,
    /// except the last few, kept for user pages.
    fn machine() -> (VirtAddr, Frames) {
        let memory: &'static mut [Page] = Box::leak((0..FRAMES).map(|_| Page([0; 4096])).collect());
        let window = VirtAddr::new(memory.as_ptr() as u64);
        // SAFETY: frame 0 of the leaked memory, a page-aligned PageTable-sized buffer nobody else uses.
        let kernel = unsafe { &mut *(window.as_u64() as *mut PageTable) };
        kernel[256].set_addr(PhysAddr::new(0x1234_5000), Flags::PRESENT | Flags::WRITABLE);
        kernel[511].set_addr(PhysAddr::new(0x6789_a000), Flags::PRESENT);
        (window, Frames { free: (1..FRAMES - 8).map(|n| n * 4096).collect(), tables_out: 0, pages_freed: Vec::new() })
    }

    fn user_frame(n: u64) -> PhysFrame<Size4KiB> {
        PhysFrame::containing_address(PhysAddr::new((FRAMES - 8 + n) * 4096))
    }

    fn kernel_frame() -> PhysFrame<Size4KiB> {
        PhysFrame::containing_address(PhysAddr::new(0))
    }

    #[test]
    fn a_new_space_shares_the_kernel_half_and_has_an_empty_user_half() {
        let (window, mut frames) = machine();
        // SAFETY: the simulated window and frames of `machine`.
        let space = unsafe { AddressSpace::new(kernel_frame(), window, &mut frames) }.unwrap();
        let table = space.table(space.level_4());
        assert!(table.iter().take(256).all(|e| e.is_unused()));
        assert_eq!(table[256].addr().as_u64(), 0x1234_5000);
        assert_eq!(table[511].addr().as_u64(), 0x6789_a000);
        assert!(table.iter().skip(257).take(254).all(|e| e.is_unused()));
    }

    #[test]
    fn map_translate_copy_and_unmap() {
        let (window, mut frames) = machine();
        let free_before = frames.free.len();
        {
            // SAFETY: the simulated window and frames of `machine`.
            let mut space = unsafe { AddressSpace::new(kernel_frame(), window, &mut frames) }.unwrap();
            let code = VirtAddr::new(0x4000_0000_0000);
            let data = code + 4096u64;
            space.map(code, user_frame(0), Flags::WRITABLE).unwrap();
            space.map(data, user_frame(1), Flags::WRITABLE | Flags::NO_EXECUTE).unwrap();
            assert_eq!(space.map(code, user_frame(2), Flags::empty()), Err(SpaceError::AlreadyMapped));
            assert_eq!(
                space.map(VirtAddr::new(0xffff_8000_0000_0000), user_frame(2), Flags::empty()),
                Err(SpaceError::NotUserAddress)
            );
            assert_eq!(space.translate(code + 5u64, Access::Read), Some(user_frame(0).start_address() + 5u64));
            assert_eq!(space.translate(code + 8192u64, Access::Read), None);

            // A copy across the page boundary lands in both frames and reads back.
            let bytes: Vec<u8> = (0..100).collect();
            let at = data.as_u64() - 50;
            space.copy_out(at, &bytes).unwrap();
            let mut back = [0u8; 100];
            space.copy_in(at, &mut back).unwrap();
            assert_eq!(&back[..], &bytes[..]);
            // Past the mapped pages, into the kernel half, or wrapping: refused, nothing copied.
            let mut big = [0u8; 8192];
            assert_eq!(space.copy_in(data.as_u64(), &mut big), Err(BadUserAddress(data.as_u64() + 4096)));
            assert!(space.copy_in(USER_END - 4, &mut back).is_err());
            assert!(space.copy_in(u64::MAX - 10, &mut back).is_err());

            assert_eq!(space.unmap_range(code.as_u64(), code.as_u64() + 4096), 1);
            // A range that covers nothing mapped, or nothing at all, unmaps nothing.
            assert_eq!(space.unmap_range(0x1000, 0x2000), 0);
            assert_eq!(space.unmap_range(0x2000, 0x2000), 0);
            assert_eq!(space.translate(code, Access::Read), None);
            assert!(space.translate(data, Access::Read).is_some());
        }
        // Dropping the space freed the other page and every table.
        assert_eq!(frames.pages_freed.len(), 2);
        assert_eq!(frames.tables_out, 0);
        assert_eq!(frames.free.len(), free_before);
    }

    #[test]
    fn read_only_pages_refuse_writes_and_copies_out() {
        let (window, mut frames) = machine();
        // SAFETY: the simulated window and frames of `machine`.
        let mut space = unsafe { AddressSpace::new(kernel_frame(), window, &mut frames) }.unwrap();
        let page = VirtAddr::new(0x1000);
        space.map(page, user_frame(0), Flags::empty()).unwrap();
        assert!(space.translate(page, Access::Read).is_some());
        assert_eq!(space.translate(page, Access::Write), None);
        assert_eq!(space.copy_out(0x1000, &[1, 2, 3]), Err(BadUserAddress(0x1000)));
    }

    #[test]
    fn shared_pages_are_read_only_and_never_freed_by_the_space() {
        let (window, mut frames) = machine();
        {
            // SAFETY: the simulated window and frames of `machine`.
            let mut space = unsafe { AddressSpace::new(kernel_frame(), window, &mut frames) }.unwrap();
            space.map_shared(VirtAddr::new(0x1000), user_frame(0), Flags::WRITABLE).unwrap();
            space.map(VirtAddr::new(0x2000), user_frame(1), Flags::WRITABLE).unwrap();
            assert!(space.translate(VirtAddr::new(0x1000), Access::Read).is_some());
            assert_eq!(space.translate(VirtAddr::new(0x1000), Access::Write), None, "a shared page was writable");
            assert_eq!(space.unmap_range(0x1000, 0x2000), 1);
            space.map_shared(VirtAddr::new(0x1000), user_frame(0), Flags::empty()).unwrap();
        }
        // Only the space's own page was given back, with unmap or with the drop.
        assert_eq!(frames.pages_freed, [user_frame(1).start_address().as_u64()]);
        assert_eq!(frames.tables_out, 0);
    }

    #[test]
    fn a_teardown_frees_every_page_wherever_it_is_in_its_tables() {
        let (window, mut frames) = machine();
        // Entries at the edges of the teardown's groups of sixteen (0, 15, 16, 31, 511), in three 2 MiB regions
        // under two level-3 entries, and a shared page among them.
        let pages = [0u64, 15, 16, 31, 200, 511].map(|i| i * 4096);
        let regions = [0u64, 1 << 21, 1 << 30];
        let mut mapped = Vec::new();
        {
            // SAFETY: the simulated window and frames of `machine`.
            let mut space = unsafe { AddressSpace::new(kernel_frame(), window, &mut frames) }.unwrap();
            let mut n = 0;
            for region in regions {
                for page in pages {
                    // Seven user frames are kept for pages: the frames themselves are never read here, so they
                    // repeat; the count of frees is what is checked.
                    let frame = user_frame(n % 7);
                    if n == 3 {
                        space.map_shared(VirtAddr::new(region + page), frame, Flags::empty()).unwrap();
                    } else {
                        space.map(VirtAddr::new(region + page), frame, Flags::WRITABLE).unwrap();
                        mapped.push(frame.start_address().as_u64());
                    }
                    n += 1;
                }
            }
            // A partial unmap of one region leaves the others, and frees what it covered.
            assert_eq!(space.unmap_range(1 << 21, (1 << 21) + 16 * 4096), 2);
            assert!(space.translate(VirtAddr::new((1 << 21) + 31 * 4096), Access::Read).is_some());
            assert!(space.translate(VirtAddr::new((1 << 30) + 511 * 4096), Access::Read).is_some());
        }
        frames.pages_freed.sort_unstable();
        mapped.sort_unstable();
        assert_eq!(frames.pages_freed, mapped, "every own page freed once, the shared one never");
        assert_eq!(frames.tables_out, 0, "every table given back");
    }

    #[test]
    fn running_out_of_table_frames_is_an_error() {
        let (window, mut frames) = machine();
        frames.free.truncate(2);
        // SAFETY: the simulated window and frames of `machine`.
        let mut space = unsafe { AddressSpace::new(kernel_frame(), window, &mut frames) }.unwrap();
        assert_eq!(space.map(VirtAddr::new(0x1000), user_frame(0), Flags::empty()), Err(SpaceError::OutOfFrames));
        drop(space);
        // The level-3 table made before the failure is freed with the space, though no page was ever under it.
        assert_eq!(frames.tables_out, 0);
        assert!(frames.pages_freed.is_empty());
    }
}
