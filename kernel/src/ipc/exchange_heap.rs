//! The exchange heap: a `talc` heap in its own region, with an owner record for every block.
//!
//! Records live in a map from block address to (layout, owner) on the kernel heap, plus per-owner totals for
//! `ps` and `mem`. Ownership changes when a message is sent (to in-transit) and received (to the receiver).
//! When a SIP ends, [`reclaim`] frees every block it still owns, without running any destructor.

use crate::exec::{self, KernelMode};
use crate::memory::heap::GrowingHeap;
use crate::memory::layout::{EXCHANGE_MAX, EXCHANGE_START};
use crate::sync::{IrqMutex, IrqSpinRaw};
use alloc::collections::BTreeMap;
use channels::platform::{AllocError, ExchangeHeap, Owner};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

/// Smallest step the exchange heap grows by.
const GROWTH_STEP: u64 = 256 * 1024;

static MEMORY: talc::TalcLock<IrqSpinRaw, GrowingHeap> =
    talc::TalcLock::new(GrowingHeap::new(EXCHANGE_START, EXCHANGE_MAX, GROWTH_STEP));

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Totals {
    blocks: usize,
    bytes: usize,
}

struct Records {
    blocks: BTreeMap<usize, (Layout, Owner)>,
    owners: BTreeMap<Owner, Totals>,
}

static RECORDS: IrqMutex<Records> = IrqMutex::new(Records { blocks: BTreeMap::new(), owners: BTreeMap::new() });

impl Records {
    fn charge(&mut self, owner: Owner, layout: Layout) {
        let totals = self.owners.entry(owner).or_default();
        totals.blocks += 1;
        totals.bytes += layout.size();
    }

    fn discharge(&mut self, owner: Owner, layout: Layout) {
        if let Some(totals) = self.owners.get_mut(&owner) {
            totals.blocks -= 1;
            totals.bytes -= layout.size();
            if totals.blocks == 0 {
                self.owners.remove(&owner);
            }
        }
    }
}

/// The kernel's exchange heap (the `channels` hook).
pub struct KernelExchangeHeap;

/// The one instance.
pub static HEAP: KernelExchangeHeap = KernelExchangeHeap;

// SAFETY: blocks come from a talc heap over memory only it uses and go back to it on `deallocate`; owner
// records are bookkeeping beside the blocks and never touch their memory.
unsafe impl ExchangeHeap for KernelExchangeHeap {
    fn allocate(&self, layout: Layout, owner: Owner) -> Result<NonNull<u8>, AllocError> {
        let _kernel = KernelMode::enter();
        // SAFETY: `layout` is non-zero-sized (trait contract); TalcLock is a sound GlobalAlloc.
        let block = NonNull::new(unsafe { MEMORY.alloc(layout) }).ok_or(AllocError)?;
        let mut records = RECORDS.lock();
        records.blocks.insert(block.as_ptr() as usize, (layout, owner));
        records.charge(owner, layout);
        Ok(block)
    }

    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout) {
        let _kernel = KernelMode::enter();
        let mut records = RECORDS.lock();
        if let Some((layout, owner)) = records.blocks.remove(&(block.as_ptr() as usize)) {
            records.discharge(owner, layout);
        }
        drop(records);
        // SAFETY: the caller guarantees `block` came from `allocate` with `layout` and is not used again.
        unsafe { MEMORY.dealloc(block.as_ptr(), layout) }
    }

    fn set_owner(&self, block: NonNull<u8>, owner: Owner) {
        let _kernel = KernelMode::enter();
        let mut records = RECORDS.lock();
        let Some(&(layout, old)) = records.blocks.get(&(block.as_ptr() as usize)) else { return };
        if old != owner {
            records.discharge(old, layout);
            records.charge(owner, layout);
            records.blocks.insert(block.as_ptr() as usize, (layout, owner));
        }
    }

    fn current_owner(&self) -> Owner {
        exec::current_sip().map_or(Owner::KERNEL, Owner)
    }
}

/// Frees every block `owner` still holds; returns (blocks, bytes) freed. Destructors do not run: the owner is
/// dead and what the blocks held (plain data, or endpoints closed separately) needs none.
pub fn reclaim(owner: Owner) -> (usize, usize) {
    let _kernel = KernelMode::enter();
    let mut records = RECORDS.lock();
    let Some(totals) = records.owners.remove(&owner) else { return (0, 0) };
    let doomed: alloc::vec::Vec<(usize, Layout)> =
        records.blocks.iter().filter(|(_, (_, o))| *o == owner).map(|(addr, (layout, _))| (*addr, *layout)).collect();
    for (addr, _) in &doomed {
        records.blocks.remove(addr);
    }
    drop(records);
    for (addr, layout) in doomed {
        // SAFETY: the block was allocated by MEMORY with `layout`, its record is gone, and its owner is dead, so
        // nothing will use or free it again.
        unsafe { MEMORY.dealloc(addr as *mut u8, layout) };
    }
    (totals.blocks, totals.bytes)
}

/// Closes every channel side held by the dead `owner` (its endpoints' destructors never run): peers see
/// `Closed`, and channels with no side left are freed. Returns how many sides were closed.
pub fn close_endpoints_of(owner: Owner) -> usize {
    let _kernel = KernelMode::enter();
    let cores: alloc::vec::Vec<usize> = {
        let records = RECORDS.lock();
        records.blocks.iter().filter(|(_, (_, o))| *o == Owner::CHANNELS).map(|(addr, _)| *addr).collect()
    };
    let mut closed = 0;
    for core in cores {
        // The core may have been freed by an earlier call of this loop (its last side closed); only live ones
        // are passed on.
        if !RECORDS.lock().blocks.contains_key(&core) {
            continue;
        }
        let Some(block) = NonNull::new(core as *mut u8) else { continue };
        // SAFETY: the block is recorded as a live channel core (`Owner::CHANNELS`), the owner is dead (no thread
        // of it runs again), and nothing else frees cores concurrently on this core's reclaim path.
        closed += unsafe { channels::raw::reclaim_dead_endpoints(block, owner) };
    }
    closed
}

/// Every live channel: its core's address and who holds each side (`None`: that side's endpoint is gone).
pub fn channels() -> alloc::vec::Vec<(usize, [Option<Owner>; 2])> {
    let _kernel = KernelMode::enter();
    let records = RECORDS.lock();
    records
        .blocks
        .iter()
        .filter(|(_, (_, owner))| *owner == Owner::CHANNELS)
        .filter_map(|(addr, _)| {
            let block = NonNull::new(*addr as *mut u8)?;
            // SAFETY: the block is recorded as a live channel core, and holding RECORDS keeps it live: freeing
            // it takes this lock first.
            Some((*addr, unsafe { channels::raw::core_sides(block) }))
        })
        .collect()
}

/// How many channel ends `owner` holds (for `ps`; no allocation, one pass under the records lock).
pub fn channel_ends_of(owner: Owner) -> usize {
    let _kernel = KernelMode::enter();
    let records = RECORDS.lock();
    records
        .blocks
        .iter()
        .filter(|(_, (_, o))| *o == Owner::CHANNELS)
        .filter_map(|(addr, _)| NonNull::new(*addr as *mut u8))
        // SAFETY: each block is recorded as a live channel core, kept live by holding RECORDS (freeing takes it).
        .map(|block| unsafe { channels::raw::core_sides(block) }.iter().filter(|side| **side == Some(owner)).count())
        .sum()
}

/// Bytes and blocks held by `owner`.
pub fn owned_by(owner: Owner) -> (usize, usize) {
    RECORDS.lock().owners.get(&owner).map_or((0, 0), |t| (t.blocks, t.bytes))
}

/// Live blocks and bytes in the whole exchange heap.
pub fn totals() -> (usize, usize) {
    let records = RECORDS.lock();
    records.owners.values().fold((0, 0), |(b, n), t| (b + t.blocks, n + t.bytes))
}

crate::selftest! {
    /// Blocks carry owner records that follow ownership changes, and reclaiming an owner frees exactly its blocks.
    fn exchange_heap_owner_records() {
        let (a, b) = (Owner(1_000_001), Owner(1_000_002));
        let layout = Layout::from_size_align(100, 8).map_err(|_| "layout")?;
        let before = totals();
        let x = HEAP.allocate(layout, a).map_err(|_| "allocation failed")?;
        let y = HEAP.allocate(layout, a).map_err(|_| "allocation failed")?;
        let z = HEAP.allocate(layout, b).map_err(|_| "allocation failed")?;
        crate::check!(owned_by(a) == (2, 200) && owned_by(b) == (1, 100), "wrong totals after allocation");
        HEAP.set_owner(y, b);
        crate::check!(owned_by(a) == (1, 100) && owned_by(b) == (2, 200), "ownership change not recorded");
        crate::check!(reclaim(b) == (2, 200), "reclaim freed the wrong amount");
        crate::check!(owned_by(b) == (0, 0), "reclaimed owner still holds blocks");
        let _ = z;
        // SAFETY: `x` came from `allocate` with `layout` and is not used again.
        unsafe { HEAP.deallocate(x, layout) };
        crate::check!(totals() == before, "totals {:?} after, {before:?} before", totals());
        Ok(())
    }
}
