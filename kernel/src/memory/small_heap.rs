//! Small heaps: many small owners' blocks in one `talc` heap, every block on its owner's list, so that an owner
//! is charged for what it holds and freed whole without the help of its code.
//!
//! Async SIPs live here (docs/thread-models.md): a blocked async SIP is only its future, a few hundred bytes,
//! and an arena of its own would cost a 64 KiB growth step and one of 16,384 slots. Each core has a small heap
//! (by index: this layer knows no cores), each in its own region of [`SMALL_HEAP_SIZE`], growing on demand.
//! Every block carries a 32-byte header before it: the links of its owner's doubly linked list and its owner.
//! So a free (found by address: the region says which heap) unlinks the block in O(1) whoever frees it, and
//! [`Owner::reclaim`] walks one owner's list and frees every block still on it, running nothing of the owner's
//! (DESIGN.md: reclaim by ownership records, not by `Drop`).
//!
//! Not here: who owns what (the SIP layer makes an [`Owner`] per async SIP), which account allocates (the
//! global allocator, `exec::allocator`), and arenas (`arena`), which thread SIPs keep.
//!
//! Invariants: a block is on exactly one owner's list from its allocation to its free or its owner's reclaim;
//! the lists and an owner's counters change only under the lock of the heap that owner's blocks are in; an
//! owner is reclaimed before its record is dropped (its `Drop` reclaims whatever is left); no block is freed
//! after its owner was reclaimed (as for arenas: nothing the kernel keeps is allocated on a SIP's account, so
//! nothing of an ended SIP's is freed later).

use super::frames::Use;
use super::heap::GrowingHeap;
use super::layout::{SMALL_HEAP_SIZE, SMALL_HEAPS, SMALL_HEAPS_START};
use crate::sync::IrqSpinRaw;
use alloc::boxed::Box;
use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Smallest step a small heap grows by.
const GROWTH_STEP: u64 = 64 * 1024;

type Heap = talc::TalcLock<IrqSpinRaw, GrowingHeap>;

/// The heaps, placed in their regions on first use (`GrowingHeap::place`).
static HEAPS: [Heap; SMALL_HEAPS] =
    [const { talc::TalcLock::new(GrowingHeap::new(0, 0, GROWTH_STEP, Use::Sip)) }; SMALL_HEAPS];

/// Heap `index`, locked and placed in its region.
macro_rules! lock {
    ($index:expr) => {{
        let index: usize = $index;
        let mut talc = HEAPS[index].lock();
        talc.source.place(SMALL_HEAPS_START + index as u64 * SMALL_HEAP_SIZE, SMALL_HEAP_SIZE);
        talc
    }};
}

/// The links of a doubly linked, circular list: an owner's list has a sentinel (in the owner) and its blocks.
#[repr(C)]
struct Links {
    prev: *mut Links,
    next: *mut Links,
}

/// What precedes every block: its links (first, so a `*mut Links` of a block is its header), its owner, and the
/// layout of the whole allocation (header included), which a reclaim needs to free it.
#[repr(C, align(16))]
struct Header {
    links: Links,
    owner: *const Owner,
    /// The allocation's size and alignment (a quota is far below 4 GiB).
    size: u32,
    align: u32,
}

/// Bytes of the header before every block (a multiple of every alignment up to 16).
const HEADER: usize = core::mem::size_of::<Header>();
const _: () = assert!(HEADER == 32);

/// Someone whose blocks live in a small heap: the sentinel of their list, what they hold and may hold.
pub struct Owner {
    /// The list's sentinel (boxed with the owner, so its address never changes).
    list: UnsafeCell<Links>,
    /// The heap the blocks are in.
    heap: usize,
    /// Bytes its live blocks hold (headers included).
    used: AtomicUsize,
    /// Most bytes it may hold.
    quota: usize,
    /// Whether an allocation was refused for the quota or for memory.
    quota_hit: AtomicBool,
}

// SAFETY: the list and its blocks are only touched under the lock of heap `heap` (module invariants); the
// counters are atomics.
unsafe impl Send for Owner {}
// SAFETY: as above.
unsafe impl Sync for Owner {}

/// Why an owner could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSuchHeap;

impl Owner {
    /// A new owner of blocks in small heap `heap`, of at most `quota` bytes (headers included). Call in kernel
    /// mode (the record is on the kernel heap).
    pub fn new(heap: usize, quota: usize) -> Result<Box<Owner>, NoSuchHeap> {
        if heap >= SMALL_HEAPS {
            return Err(NoSuchHeap);
        }
        let owner = Box::new(Owner {
            list: UnsafeCell::new(Links { prev: ptr::null_mut(), next: ptr::null_mut() }),
            heap,
            used: AtomicUsize::new(0),
            quota,
            quota_hit: AtomicBool::new(false),
        });
        let sentinel = owner.list.get();
        // SAFETY: the box is fresh and not shared: the sentinel points at itself (an empty list).
        unsafe { (*sentinel).prev = sentinel };
        // SAFETY: as above.
        unsafe { (*sentinel).next = sentinel };
        Ok(owner)
    }

    /// Bytes its live blocks hold, headers included.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether an allocation was refused (quota spent or memory exhausted).
    pub fn quota_hit(&self) -> bool {
        self.quota_hit.load(Ordering::Relaxed)
    }

    /// A block for `layout`, on this owner's list; null when its quota or memory is spent.
    pub fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((full, offset)) = with_header(layout) else { return ptr::null_mut() };
        let mut talc = lock!(self.heap);
        let used = self.used.load(Ordering::Relaxed);
        if used.saturating_add(full.size()) > self.quota {
            self.quota_hit.store(true, Ordering::Relaxed);
            return ptr::null_mut();
        }
        // SAFETY: `full` is at least the header's size, so nonzero.
        let Some(base) = (unsafe { talc.allocate(full) }) else {
            self.quota_hit.store(true, Ordering::Relaxed);
            return ptr::null_mut();
        };
        self.used.store(used + full.size(), Ordering::Relaxed);
        // SAFETY: `base + offset` is inside the block just allocated (offset < size), 16-aligned, and the header
        // fits before it (offset >= HEADER).
        let block = unsafe { base.as_ptr().add(offset) };
        let header = header_of(block);
        let sentinel = self.list.get();
        // SAFETY: the header lies in the fresh block; the sentinel and its first block are this owner's list,
        // changed only under this heap's lock, which is held.
        unsafe {
            let (size, align) = (full.size() as u32, full.align() as u32);
            header.write(Header { links: Links { prev: sentinel, next: (*sentinel).next }, owner: self, size, align });
            (*(*sentinel).next).prev = header.cast();
            (*sentinel).next = header.cast();
        }
        block
    }

    /// Frees every block still on this owner's list (its code never runs for it: nothing is dropped).
    pub fn reclaim(&self) {
        let mut talc = lock!(self.heap);
        let sentinel = self.list.get();
        // SAFETY: the list is this owner's, changed only under the heap's lock (held); each entry is the header
        // of a live block allocated by `alloc` with the layout its size and offset come from.
        unsafe {
            let mut at = (*sentinel).next;
            while at != sentinel {
                let next = (*at).next;
                let header = at.cast::<Header>();
                let full = Layout::from_size_align_unchecked((*header).size as usize, (*header).align as usize);
                talc.deallocate(at.cast::<u8>().add(HEADER).sub(offset_in(full)), full);
                at = next;
            }
            (*sentinel).prev = sentinel;
            (*sentinel).next = sentinel;
        }
        self.used.store(0, Ordering::Relaxed);
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.reclaim();
    }
}

/// The layout of a block with its header for `layout`, and where the caller's part starts in it.
fn with_header(layout: Layout) -> Option<(Layout, usize)> {
    let full_align = layout.align().max(16);
    let offset = offset_in_align(full_align);
    let size = offset.checked_add(layout.size()).filter(|size| u32::try_from(*size).is_ok())?;
    Some((Layout::from_size_align(size, full_align).ok()?, offset))
}

/// Where the caller's part starts in an allocation aligned to `full_align`: after the header, aligned.
const fn offset_in_align(full_align: usize) -> usize {
    if full_align > HEADER { full_align } else { HEADER.next_multiple_of(full_align) }
}

/// Where the caller's part starts in the allocation `full` (`with_header`'s layout).
fn offset_in(full: Layout) -> usize {
    offset_in_align(full.align())
}

/// The header of the block at `block` (of any owner).
fn header_of(block: *mut u8) -> *mut Header {
    block.wrapping_sub(HEADER).cast()
}

/// Whether `addr` lies in the small heaps' region.
pub fn contains(addr: usize) -> bool {
    (SMALL_HEAPS_START..SMALL_HEAPS_START + SMALL_HEAPS as u64 * SMALL_HEAP_SIZE).contains(&(addr as u64))
}

/// Frees a block of some owner, found by its address.
///
/// # Safety
/// `ptr` was returned by [`Owner::alloc`] with this `layout`, its owner has not reclaimed it, and it is not used
/// afterwards.
pub unsafe fn dealloc(ptr: *mut u8, layout: Layout) {
    let index = ((ptr as u64 - SMALL_HEAPS_START) / SMALL_HEAP_SIZE) as usize;
    let Some((full, offset)) = with_header(layout) else { return };
    let mut talc = lock!(index);
    let header = header_of(ptr);
    // SAFETY: the caller's contract: the header is the live block's, on its owner's list (changed only under this
    // heap's lock, held), and its owner is alive (an owner reclaims its blocks before it is dropped).
    unsafe {
        let links = &mut (*header).links;
        (*links.prev).next = links.next;
        (*links.next).prev = links.prev;
        (*(*header).owner).used.fetch_sub(full.size(), Ordering::Relaxed);
        talc.deallocate(ptr.sub(offset), full);
    }
}

/// Bytes every small heap has mapped (the frames they hold).
pub fn mapped() -> u64 {
    HEAPS.iter().map(|heap| heap.lock().source.mapped()).sum()
}
