//! The exchange heap: a `talc` heap in its own region, and the ownership ledger (`channels::ledger`) that says
//! who holds every block and every channel side and who pays for it.
//!
//! Every operation identifies its caller itself: the SIP whose code runs (SIP mode), or the kernel (kernel
//! code, even on a SIP's thread). The ledger checks every ownership change against its records; a change the
//! records refuse cannot come from safe code through `channels`, so it is treated as the calling SIP's fault
//! and ends it (a kernel caller with a refused change is a kernel bug: panic). Every block is charged to a
//! payer (the SIP that allocated it, then whoever receives or opens it), and a channel to the SIP that made it
//! until it is freed, up to each SIP's exchange quota from the kernel's policy (`sip::policy`).
//!
//! When a SIP ends, [`reclaim`] frees everything it holds and closes its endpoints from the records alone: no
//! destructor, no function pointer found in exchange memory, no walk over its data runs. Closing a side for a
//! live peer happens under the ledger's lock (so no other core can free that channel meanwhile); freeing
//! memory happens after.
//!
//! Not here: the rings and the walks (crate `channels`), the policy (`sip::policy`).

use crate::exec::{self, KernelAccount};
use crate::memory::frames::Use;
use crate::memory::heap::GrowingHeap;
use crate::memory::layout::{EXCHANGE_MAX, EXCHANGE_START};
use crate::sync::{IrqMutex, IrqMutexGuard, IrqSpinRaw};
use alloc::vec::Vec;
use channels::ledger::{ChannelId, Holder, Item, Ledger, Release, RingId, Side, Violation};
use channels::platform::{AllocError, Exchange, Owner};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

/// Smallest step the exchange heap grows by.
const GROWTH_STEP: u64 = 256 * 1024;

static MEMORY: talc::TalcLock<IrqSpinRaw, GrowingHeap> =
    talc::TalcLock::new(GrowingHeap::new(EXCHANGE_START, EXCHANGE_MAX, GROWTH_STEP, Use::Sip));

static LEDGER: IrqMutex<Ledger> = IrqMutex::new(Ledger::new());

/// The kernel's exchange (the `channels` hook).
pub struct KernelExchange;

/// Endpoints dropped outside a terminal state while their peer was there, per contract name (the names are the
/// generated code's constants in the kernel's image: `channels::tracked`).
static MID_PROTOCOL_DROPS: IrqMutex<Vec<(&'static str, u64)>> = IrqMutex::new(Vec::new());

/// How many endpoints of contract `contract` were dropped mid-protocol since boot (ring-0 endpoints: a ring-3
/// SIP's typed endpoints live in its own image).
pub fn mid_protocol_drops(contract: &str) -> u64 {
    MID_PROTOCOL_DROPS.lock().iter().find(|(name, _)| *name == contract).map_or(0, |(_, count)| *count)
}

/// The one instance.
pub static EXCHANGE: KernelExchange = KernelExchange;

/// Who is calling: the SIP whose code runs, or the kernel (kernel code acts with the kernel's authority, on
/// whichever thread it runs). Read before entering kernel mode.
fn caller() -> Owner {
    match exec::running_sip() {
        Some(sip) => Owner::sip(sip),
        None => {
            crate::percpu::current().acting_for.load(Ordering::Relaxed).checked_sub(1).map_or(Owner::KERNEL, Owner::sip)
        }
    }
}

/// Runs `f`, kernel code, as ring-3 SIP `sip` towards the exchange: what its channel calls do with the endpoints
/// the kernel holds for it (`channels::proxy`) is its own doing, held by it and charged to it, exactly as a
/// ring-0 SIP's channel code is. Interrupts are off meanwhile, so no other thread runs on this core while the
/// exchange would mistake it for `sip`; `f` must not block (it is bounded by one message: `channels::wire`).
#[inline(always)]
pub fn acting_for<R>(sip: u64, f: impl FnOnce() -> R) -> R {
    let cpu = crate::percpu::current();
    let were_enabled = x86_64::instructions::interrupts::are_enabled();
    x86_64::instructions::interrupts::disable();
    cpu.acting_for.store(sip + 1, Ordering::Relaxed);
    let result = f();
    cpu.acting_for.store(0, Ordering::Relaxed);
    if were_enabled {
        x86_64::instructions::interrupts::enable();
    }
    result
}

/// Ends the caller for breaking the records' rules (after every lock is released).
fn refused(by: Owner, violation: Violation) -> ! {
    // The call that was acting for a ring-3 SIP never returns: nobody else on this core may inherit it.
    crate::percpu::current().acting_for.store(0, Ordering::Relaxed);
    match by.sip_id() {
        Some(_) => exec::end_sip_for_fault(alloc::format!("{violation}")),
        None => panic!("the kernel broke the exchange records' rules: {violation}"),
    }
}

/// Does the memory work of a release: closes the sides of live peers while the ledger is still locked, then
/// frees the blocks.
fn finish(ledger: IrqMutexGuard<'_, Ledger>, release: Release) {
    for side in &release.close {
        // SAFETY: the ledger holds the other side of this channel, so its block is live, and the ledger stays
        // locked while this closes it (no release can free it meanwhile).
        unsafe { channels::trusted::close_side(*side) };
    }
    drop(ledger);
    for (block, layout) in release.free {
        // SAFETY: the ledger removed this block's record, made when `MEMORY` allocated it with this layout;
        // nothing can reach it any more (its holder is gone or its channel is freed).
        unsafe { MEMORY.dealloc(core::ptr::with_exposed_provenance_mut::<u8>(block), layout) };
    }
}

// SAFETY: blocks come from a talc heap over memory only it uses and go back to it once, after the ledger
// removed their record; ownership changes are bookkeeping beside the blocks and never touch them.
unsafe impl Exchange for KernelExchange {
    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let owner = caller();
        let _kernel = KernelAccount::enter();
        LEDGER.lock().charge(owner, layout).map_err(|_| AllocError)?;
        // SAFETY: `layout` is non-zero-sized (trait contract); TalcLock is a sound GlobalAlloc.
        let Some(block) = NonNull::new(unsafe { MEMORY.alloc(layout) }) else {
            LEDGER.lock().uncharge(owner, layout);
            return Err(AllocError);
        };
        // Exposed: the ledger names blocks by address, and a release or reclaim frees them from that address.
        LEDGER.lock().allocated(block.expose_provenance().get(), layout, owner);
        Ok(block)
    }

    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout) {
        let owner = caller();
        let kernel = KernelAccount::enter();
        let mut ledger = LEDGER.lock();
        match ledger.free(block.addr().get(), owner) {
            // The block is the release's first: freed with the layout the records kept (which the caller's
            // `layout` matches for every block `channels` frees).
            Ok(release) => {
                debug_assert_eq!(release.free.first(), Some(&(block.addr().get(), layout)));
                finish(ledger, release);
            }
            Err(violation) => {
                drop(ledger);
                drop(kernel);
                refused(owner, violation)
            }
        }
    }

    fn open(&self, channel: ChannelId) {
        let owner = caller();
        let kernel = KernelAccount::enter();
        let result = LEDGER.lock().open(channel, owner);
        if let Err(violation) = result {
            drop(kernel);
            refused(owner, violation);
        }
    }

    fn send(&self, item: Item, ring: RingId) {
        let owner = caller();
        let kernel = KernelAccount::enter();
        let result = LEDGER.lock().send(item, ring, owner);
        if let Err(violation) = result {
            drop(kernel);
            refused(owner, violation);
        }
    }

    fn receive(&self, item: Item, ring: RingId) -> bool {
        let owner = caller();
        let kernel = KernelAccount::enter();
        let result = LEDGER.lock().receive(item, ring, owner);
        match result {
            Ok(within_quota) => within_quota,
            Err(violation) => {
                drop(kernel);
                refused(owner, violation)
            }
        }
    }

    fn give(&self, item: Item, from: Owner, to: Owner) {
        let kernel = KernelAccount::enter();
        let result = LEDGER.lock().give(item, from, to);
        if let Err(violation) = result {
            drop(kernel);
            // Only the kernel gives (`channels::trusted`): a refused hand-over is the kernel's mistake.
            panic!("{violation} (giving from {from} to {to})");
        }
    }

    fn seal(&self, item: Item, capsule: NonNull<u8>) {
        let owner = caller();
        let kernel = KernelAccount::enter();
        let result = LEDGER.lock().seal(item, capsule.addr().get(), owner);
        if let Err(violation) = result {
            drop(kernel);
            refused(owner, violation);
        }
    }

    fn unseal(&self, capsule: NonNull<u8>) -> bool {
        let owner = caller();
        let kernel = KernelAccount::enter();
        let result = LEDGER.lock().unseal(capsule.addr().get(), owner);
        match result {
            Ok(opened) => opened,
            Err(violation) => {
                drop(kernel);
                refused(owner, violation)
            }
        }
    }

    fn dropped_mid_protocol(&self, contract: &'static str, state: &'static str, side: &'static str) {
        let owner = caller();
        let _kernel = KernelAccount::enter();
        {
            let mut drops = MID_PROTOCOL_DROPS.lock();
            match drops.iter_mut().find(|(name, _)| *name == contract) {
                Some((_, count)) => *count += 1,
                // One entry per contract linked into the kernel: bounded, and small.
                None => {
                    if drops.try_reserve(1).is_ok() {
                        drops.push((contract, 1));
                    }
                }
            }
        }
        log::debug!(
            "{owner} dropped its {contract} {side} endpoint in state {state}, its peer still there (mid-protocol)"
        );
    }

    fn release(&self, side: Side) {
        let owner = caller();
        let kernel = KernelAccount::enter();
        let mut ledger = LEDGER.lock();
        match ledger.release(side, owner) {
            Ok(release) => finish(ledger, release),
            Err(violation) => {
                drop(ledger);
                drop(kernel);
                refused(owner, violation)
            }
        }
    }
}

/// Frees everything `owner` (a dead SIP) holds and closes its endpoints for their peers, from the records;
/// returns (blocks, bytes) it held. Its account keeps the charges of what it paid for that still lives
/// (messages it sent that wait in rings, channels it made), without a quota.
pub fn reclaim(owner: Owner) -> (usize, usize) {
    let _kernel = KernelAccount::enter();
    let mut ledger = LEDGER.lock();
    let held = ledger.held_by(owner);
    let release = ledger.reclaim(owner);
    ledger.end_account(owner);
    finish(ledger, release);
    held
}

/// Sets `owner`'s exchange quota (at spawn, from the policy).
pub fn set_quota(owner: Owner, bytes: usize) {
    let _kernel = KernelAccount::enter();
    LEDGER.lock().set_quota(owner, bytes);
}

/// Whether one of `owner`'s exchange allocations was refused for its quota.
pub fn quota_refused(owner: Owner) -> bool {
    let _kernel = KernelAccount::enter();
    LEDGER.lock().quota_refused(owner)
}

/// Every live channel: its serial number and who holds each side (`None`: that side's endpoint is gone).
pub fn channels() -> Vec<(u64, [Option<Holder>; 2])> {
    let _kernel = KernelAccount::enter();
    LEDGER.lock().channels()
}

/// How many channel ends `owner` holds (for `ps`).
pub fn channel_ends_of(owner: Owner) -> usize {
    let _kernel = KernelAccount::enter();
    LEDGER.lock().sides_held_by(owner)
}

/// Blocks and bytes charged to `owner` (its own blocks, messages it sent still in rings, channels it made).
pub fn charged_to(owner: Owner) -> (usize, usize) {
    let _kernel = KernelAccount::enter();
    LEDGER.lock().charged(owner)
}

/// Blocks and bytes `owner` holds.
pub fn held_by(owner: Owner) -> (usize, usize) {
    let _kernel = KernelAccount::enter();
    LEDGER.lock().held_by(owner)
}

/// Bytes of the exchange heap's region mapped so far.
pub fn mapped() -> u64 {
    MEMORY.lock().source.mapped()
}

/// Live blocks and bytes in the whole exchange heap.
pub fn totals() -> (usize, usize) {
    let _kernel = KernelAccount::enter();
    LEDGER.lock().totals()
}

crate::selftest! {
    /// Blocks are held by their allocator, the ledger refuses a free by anyone else, and reclaiming an owner
    /// frees exactly its blocks.
    fn exchange_heap_owner_records() {
        let (a, b) = (Owner::sip(1_000_001), Owner::sip(1_000_002));
        let layout = Layout::from_size_align(100, 8).map_err(|_| "layout")?;
        let before = totals();
        let mut blocks = Vec::new();
        for owner in [a, a, b] {
            LEDGER.lock().charge(owner, layout).map_err(|_| "charge refused")?;
            // SAFETY: a non-zero layout.
            let block = NonNull::new(unsafe { MEMORY.alloc(layout) }).ok_or("out of exchange memory")?;
            LEDGER.lock().allocated(block.expose_provenance().get(), layout, owner);
            blocks.push(block);
        }
        crate::check!(held_by(a) == (2, 200) && held_by(b) == (1, 100), "wrong holdings after allocation");
        crate::check!(LEDGER.lock().free(blocks[0].addr().get(), b).is_err(), "b freed a's block");
        crate::check!(reclaim(a) == (2, 200), "reclaim freed the wrong amount");
        crate::check!(held_by(a) == (0, 0) && charged_to(a) == (0, 0), "reclaimed owner still holds blocks");
        crate::check!(reclaim(b) == (1, 100), "b's block not reclaimed");
        crate::check!(totals() == before, "totals {:?} after, {before:?} before", totals());
        Ok(())
    }
}

contracts::contract! {
    /// A question and its answer (the self-test of mid-protocol drops: a contract of its own, so that nothing
    /// else running can move its count).
    pub contract SelftestDropProbe {
        in message Ask(question: u64);
        out message Answer(answer: u64);
        initial state Asking { Ask? -> Answering }
        state Answering { Answer! -> Finished }
        terminal state Finished;
    }
}

crate::selftest! {
    /// A typed endpoint dropped outside a terminal state while its peer is there is counted for its contract,
    /// once; one dropped in a terminal state, after its peer left, or whose send found the peer gone, is not.
    fn exchange_heap_counts_mid_protocol_drops() {
        use selftest_drop_probe::{client, server};
        let count = || mid_protocol_drops("SelftestDropProbe");
        let before = count();
        let (asker, answerer) = selftest_drop_probe::channel();
        drop(asker);
        crate::check!(count() == before + 1, "a drop in Asking with the peer there: {} after {before}", count());
        drop(answerer);
        crate::check!(count() == before + 1, "a drop after the peer left was counted");

        let (asker, answerer) = selftest_drop_probe::channel();
        let asker = asker.send_ask(6).map_err(|_| "answerer gone")?;
        let Ok(server::Asking::Ask { question, endpoint }) = answerer.recv() else { return Err("no ask".into()) };
        let answerer = endpoint.send_answer(question * 7).map_err(|_| "asker gone")?;
        let Ok(client::Answering::Answer { answer: 42, endpoint: asker }) = asker.recv() else {
            return Err("no answer".into());
        };
        asker.close();
        answerer.close();
        crate::check!(count() == before + 1, "drops in the terminal state were counted");
        Ok(())
    }
}
