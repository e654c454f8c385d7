//! The two hooks a platform plugs into the channel runtime: the exchange ([`Exchange`]: memory and the
//! ownership records behind every block and channel side) and blocking ([`Blocking`]), installed once with
//! [`install`] by whoever holds the [`Trusted`] capability.
//!
//! Not here: any real allocator or scheduler (the kernel's, or the host's in `host`), and the bookkeeping
//! itself ([`Ledger`](crate::ledger::Ledger), which platforms keep behind their lock).
//!
//! Invariants: the platform is fixed at [`install`] (on the host, the first use may fix the host default
//! instead) and never changes after, so every block is freed by the exchange that allocated it. Nothing here
//! is reachable by a process: `current` is private to the crate, installing needs [`Trusted`], and the
//! hooks identify their caller themselves (a process never names the owner it acts for).

use crate::ledger::{ChannelId, Item, RingId, Side};
use crate::trusted::Trusted;
use core::alloc::Layout;
use core::fmt;
use core::ptr::NonNull;

/// Who holds exchange-heap blocks and channel sides: a process (SIP) or the kernel. Plain data: naming an
/// owner grants nothing; only the platform decides who the caller is.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Owner(u64);

impl Owner {
    /// The kernel (and, on the host, every thread that has not chosen another owner).
    pub const KERNEL: Owner = Owner(0);

    /// The process with id `id` (ids start at 1; 0 is the kernel's).
    pub const fn sip(id: u64) -> Owner {
        Owner(id)
    }

    /// The process id, or `None` for the kernel.
    pub const fn sip_id(self) -> Option<u64> {
        if self.0 == 0 { None } else { Some(self.0) }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sip_id() {
            None => f.write_str("kernel"),
            Some(id) => write!(f, "sip {id}"),
        }
    }
}

/// The exchange could not satisfy an allocation (out of memory, or the caller's exchange quota is spent).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AllocError;

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("exchange heap exhausted (or exchange quota spent)")
    }
}

/// The exchange heap and its ownership records: every block and channel side has one holder, and only its
/// holder may move, free or release it; every block is also charged to one payer, against whose exchange quota
/// it counts (the [`ledger`](crate::ledger) module says who that is).
///
/// The platform knows the caller (the kernel: the process whose code runs, or the kernel itself in kernel
/// code; the host: a thread-local owner). A call that breaks the records' rules (moving what the caller does not
/// hold) cannot come from safe code through this crate; the platform treats it as a fault of the caller (the
/// kernel ends that process, the host panics) and changes nothing.
///
/// # Safety
/// Implementations behave as an allocator: `allocate` returns a block valid for `layout` (non-zero size), not
/// overlapping any live block, that stays valid until it is freed (by `deallocate`, or by the records when its
/// holder dies or its channel is freed). Ownership changes are bookkeeping only and never touch memory, except
/// that freeing a channel frees its block and everything its rings hold.
pub unsafe trait Exchange: Sync {
    /// Allocates a block for `layout` (never zero-sized), held by and charged to the caller.
    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError>;

    /// Frees a block the caller holds, and everything sealed in it (its blocks freed, its endpoints closed).
    ///
    /// # Safety
    /// `block` came from `allocate` with this `layout` and is not used afterwards.
    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout);

    /// The caller's block `channel` (from `allocate`, holding the two rings) becomes a channel, both of whose
    /// sides the caller holds. The block stays charged to the caller, wherever the sides go, until the records
    /// alone free it, once neither side can be used again (both released, or the last one unreachable).
    fn open(&self, channel: ChannelId);

    /// `item`, held by the caller, now travels in `ring` (whose producing side the caller holds); a block stays
    /// charged to its payer.
    fn send(&self, item: Item, ring: RingId);

    /// `item`, travelling in `ring` (whose consuming side the caller holds), is now the caller's, and charged
    /// to it. Returns `false` if the caller is then beyond its exchange quota (the receive is refused).
    fn receive(&self, item: Item, ring: RingId) -> bool;

    /// `item`, held by `from`, is now `to`'s (and a block is charged to `to`): hand-overs the trusted base makes
    /// outside any channel (a process's first endpoint at spawn). Only reachable through [`Trusted`].
    fn give(&self, item: Item, from: Owner, to: Owner);

    /// `item`, held by the caller, is sealed into the caller's block `capsule`: it travels with the capsule
    /// (without being walked again, and still charged to its payer) and is freed with it, until whoever holds
    /// the capsule opens it.
    fn seal(&self, item: Item, capsule: NonNull<u8>);

    /// Opens the caller's `capsule`: everything sealed in it is the caller's, and charged to it. `false` (and
    /// nothing opened) if that would take the caller beyond its exchange quota.
    fn unseal(&self, capsule: NonNull<u8>) -> bool;

    /// The caller's endpoint on `side` is closed (its ring flags are set): forget the side, and free the
    /// channel with everything its rings hold once neither side is held.
    fn release(&self, side: Side);

    /// The caller dropped its `side` ("client" or "server") endpoint of a `contract` channel in `state`, which is
    /// not terminal, while the peer was still there: the peer sees `Closed` mid-protocol. For diagnostics
    /// (counted, logged); the names are the generated code's constants. Nothing by default.
    fn dropped_mid_protocol(&self, contract: &'static str, state: &'static str, side: &'static str) {
        let _ = (contract, state, side);
    }
}

/// How a receiving thread blocks until a peer sends or closes.
///
/// The runtime polls `spin_limit` times, then stores the thread's [`token`](Blocking::token) in the rings it
/// waits on and calls [`park`](Blocking::park) until something happened. A peer (or the platform closing a dead
/// peer's side) wakes it with [`wake`](Blocking::wake) and that token, from any thread (or core). A token is
/// plain data read from shared memory: `wake` must accept any value, and a token of no thread wakes nobody.
pub trait Blocking: Sync {
    /// The calling thread's wake token.
    fn token(&self) -> u64;

    /// Makes the thread with `token` return from its pending or next `park` (token semantics); any other value
    /// does nothing.
    fn wake(&self, token: u64);

    /// Blocks the calling thread until it is woken. Must return at once if it was woken since the last `park`
    /// returned; may return spuriously.
    fn park(&self);

    /// Asks that the task being polled, whose token is `token` (its waker's), be polled again after the other
    /// tasks of its core that are ready now; `false`, and nothing asked, if none is. A future receive that finds
    /// nothing gives the core away once this way before it registers: its peer may be one of those tasks and
    /// answer meanwhile (channels/src/tasks.rs).
    fn yield_task(&self, token: u64) -> bool {
        let _ = token;
        false
    }

    /// Polls before blocking: worth it when the peer runs on another core and answers within microseconds.
    /// Asked once, when the platform is fixed.
    fn spin_limit(&self) -> u32 {
        0
    }

    /// Called between polls (`round` counts from 0) and while a raw sender waits for ring space: pause the CPU
    /// for a moment, or — when the peer may need this very CPU — yield it.
    fn relax(&self, round: u32) {
        let _ = round;
        core::hint::spin_loop();
    }
}

/// The installed hooks.
#[derive(Clone, Copy)]
pub struct Platform {
    /// The exchange heap and its records.
    pub exchange: &'static dyn Exchange,
    /// Blocking.
    pub blocking: &'static dyn Blocking,
}

/// [`install`] came after the platform was already fixed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AlreadyInstalled;

/// The platform in force, with what is asked of it on every blocking receive read once when it is fixed.
struct Installed {
    platform: Platform,
    /// `platform.blocking.spin_limit()`.
    #[cfg_attr(feature = "ring3", allow(dead_code, reason = "ring-3 receives wait in the kernel"))]
    spin_limit: u32,
}

impl Installed {
    fn new(platform: Platform) -> Self {
        Self { platform, spin_limit: platform.blocking.spin_limit() }
    }
}

static PLATFORM: spin::Once<Installed> = spin::Once::new();

/// Installs the platform's hooks. Call it before the first channel or exchange allocation; afterwards the
/// platform is fixed and this returns [`AlreadyInstalled`].
pub fn install(trusted: &Trusted, platform: Platform) -> Result<(), AlreadyInstalled> {
    let _ = trusted;
    let mut installed = false;
    PLATFORM.call_once(|| {
        installed = true;
        Installed::new(platform)
    });
    if installed { Ok(()) } else { Err(AlreadyInstalled) }
}

/// The platform in force (on the host, fixing the host default if none was installed).
#[inline]
pub(crate) fn current() -> &'static Platform {
    &installed().platform
}

/// The installed blocking hook and its [`Blocking::spin_limit`] (read without a virtual call), from one look
/// at the installed platform: a blocking receive needs both.
#[inline]
#[cfg_attr(feature = "ring3", allow(dead_code, reason = "ring-3 receives wait in the kernel"))]
pub(crate) fn blocking() -> (&'static dyn Blocking, u32) {
    let installed = installed();
    (installed.platform.blocking, installed.spin_limit)
}

#[inline]
fn installed() -> &'static Installed {
    match PLATFORM.get() {
        Some(installed) => installed,
        None => install_default(),
    }
}

/// On the host: the tracking exchange and thread blocking of `host`, the same rules as the kernel's.
#[cfg(feature = "std")]
#[cold]
fn install_default() -> &'static Installed {
    PLATFORM.call_once(|| Installed::new(crate::host::default_platform()))
}

/// On bare metal there is no default: the kernel installs its platform before the first channel exists.
#[cfg(not(feature = "std"))]
#[cold]
fn install_default() -> &'static Installed {
    panic!("channels: no platform installed (the kernel installs one at boot, before any channel)")
}
