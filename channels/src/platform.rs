//! The two hooks a platform plugs into the channel runtime: the exchange-heap allocator ([`ExchangeHeap`]) and
//! blocking ([`Blocking`]), installed once with [`install`].
//!
//! Not here: any real allocator or scheduler. Without an installed platform the defaults are the global
//! allocator without owner records ([`GlobalHeap`]) and busy-waiting ([`SpinBlocking`]); the `std` feature's
//! `host` module has host implementations (owner-tracking heap, thread park/unpark).
//!
//! Invariants: the platform is fixed at the first use of a channel or exchange allocation (or at `install`,
//! whichever is first) and never changes after, so every block is freed by the heap that allocated it.

use core::alloc::Layout;
use core::fmt;
use core::ptr::NonNull;
use core::task::Waker;

/// Who owns an exchange-heap block: a SIP id in the kernel, any number the platform chooses on the host.
///
/// Sending a message moves its blocks to [`Owner::IN_TRANSIT`]; receiving moves them to the receiver's
/// [`ExchangeHeap::current_owner`]. A platform reclaims a dead owner's blocks by enumerating its records.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Owner(pub u64);

impl Owner {
    /// The kernel itself (and the owner of everything on a platform that does not track owners).
    pub const KERNEL: Owner = Owner(0);
    /// Blocks of a message that sits in a channel's ring: owned by the channel until received; freed with the
    /// channel if never received.
    pub const IN_TRANSIT: Owner = Owner(u64::MAX);
    /// Channel cores (the shared part of a channel, holding its rings): one block per channel, whose two sides'
    /// holders are recorded inside it (see `raw::reclaim_dead_endpoints`).
    pub const CHANNELS: Owner = Owner(u64::MAX - 1);
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Owner::KERNEL => f.write_str("kernel"),
            Owner::IN_TRANSIT => f.write_str("in-transit"),
            Owner::CHANNELS => f.write_str("channels"),
            Owner(id) => write!(f, "owner {id}"),
        }
    }
}

/// The exchange heap could not satisfy an allocation (out of memory, or the owner's quota is spent).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AllocError;

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("exchange heap exhausted")
    }
}

/// The exchange-heap allocator: every block it hands out has an owner record, which it can change.
///
/// # Safety
/// Implementations must behave as an allocator: `allocate` returns a block valid for `layout` (non-zero size),
/// not overlapping any live block, that stays valid until `deallocate` is called with the same layout.
/// `set_owner` changes bookkeeping only, never the block's memory or validity.
pub unsafe trait ExchangeHeap: Sync {
    /// Allocates a block for `layout` (never zero-sized) recorded as owned by `owner`.
    fn allocate(&self, layout: Layout, owner: Owner) -> Result<NonNull<u8>, AllocError>;

    /// Frees a block.
    ///
    /// # Safety
    /// `block` came from `allocate` of this heap with this `layout` and is not used afterwards.
    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout);

    /// Records that `block` is now owned by `owner` (called when a message is sent and when it is received).
    /// `block` is a live block of this heap; a heap without records ignores the call.
    fn set_owner(&self, block: NonNull<u8>, owner: Owner);

    /// The owner on whose behalf the calling thread runs (the current SIP in the kernel).
    fn current_owner(&self) -> Owner;

    /// Whether `set_owner` does anything; lets sends skip walking a message that no one would record.
    fn tracks_owners(&self) -> bool {
        true
    }
}

/// How a receiving thread blocks until a peer sends or closes.
///
/// The runtime polls `spin_limit` times, then registers [`waker`](Blocking::waker) with the rings it waits on
/// and calls [`park`](Blocking::park) until something happened. A peer wakes it through the waker, from any
/// thread (later: any core).
pub trait Blocking: Sync {
    /// A waker that makes the calling thread's pending or next `park` return.
    fn waker(&self) -> Waker;

    /// Blocks the calling thread until its waker is woken. Must return at once if the waker was woken since
    /// the last `park` returned (token semantics); may return spuriously.
    fn park(&self);

    /// Polls before blocking: worth it when the peer runs on another core and answers within microseconds.
    /// Asked once, when the platform is fixed.
    fn spin_limit(&self) -> u32 {
        0
    }

    /// Starts a section that must not be cut short: between a message's owner records and the ring (a send or a
    /// receive), or while an endpoint closes. A platform that can end a thread from outside (the kernel killing
    /// a SIP) lets the thread leave the section first; otherwise a message could be lost between the two.
    fn uninterruptible_begin(&self) {}

    /// Ends the section [`Blocking::uninterruptible_begin`] started.
    fn uninterruptible_end(&self) {}

    /// Called between polls (`round` counts from 0) and while a sender waits for ring space: pause the CPU for
    /// a moment, or — when the peer may need this very CPU — yield it.
    fn relax(&self, round: u32) {
        let _ = round;
        core::hint::spin_loop();
    }
}

/// The installed hooks.
#[derive(Clone, Copy)]
pub struct Platform {
    /// The exchange heap.
    pub heap: &'static dyn ExchangeHeap,
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
pub fn install(platform: Platform) -> Result<(), AlreadyInstalled> {
    let mut installed = false;
    PLATFORM.call_once(|| {
        installed = true;
        Installed::new(platform)
    });
    if installed { Ok(()) } else { Err(AlreadyInstalled) }
}

/// The platform in force (fixing the default if none was installed).
#[inline]
pub fn current() -> &'static Platform {
    &installed().platform
}

/// The installed blocking hook and its [`Blocking::spin_limit`] (read without a virtual call), from one look
/// at the installed platform: a blocking receive needs both.
#[inline]
pub(crate) fn blocking() -> (&'static dyn Blocking, u32) {
    let installed = installed();
    (installed.platform.blocking, installed.spin_limit)
}

#[inline]
fn installed() -> &'static Installed {
    PLATFORM.call_once(|| Installed::new(default_platform()))
}

#[cfg(feature = "std")]
fn default_platform() -> Platform {
    Platform { heap: &GlobalHeap, blocking: &crate::host::ThreadBlocking }
}

#[cfg(not(feature = "std"))]
fn default_platform() -> Platform {
    Platform { heap: &GlobalHeap, blocking: &SpinBlocking }
}

/// The fallback heap: the global allocator, no owner records (every block is the kernel's).
pub struct GlobalHeap;

// SAFETY: forwards to the global allocator, which upholds the allocator contract.
unsafe impl ExchangeHeap for GlobalHeap {
    fn allocate(&self, layout: Layout, _owner: Owner) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: callers never pass a zero-sized layout (documented on the trait, upheld by ExBox/ExVec).
        let ptr = unsafe { alloc::alloc::alloc(layout) };
        NonNull::new(ptr).ok_or(AllocError)
    }

    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller promises `block` came from `allocate` (the global allocator) with `layout`.
        unsafe { alloc::alloc::dealloc(block.as_ptr(), layout) }
    }

    fn set_owner(&self, _block: NonNull<u8>, _owner: Owner) {}

    fn current_owner(&self) -> Owner {
        Owner::KERNEL
    }

    fn tracks_owners(&self) -> bool {
        false
    }
}

/// The fallback blocking: spin. Correct (wakes are never lost, receives re-check), but it burns the core, so a
/// kernel installs its scheduler instead.
pub struct SpinBlocking;

impl Blocking for SpinBlocking {
    fn waker(&self) -> Waker {
        Waker::noop().clone()
    }

    fn park(&self) {
        core::hint::spin_loop();
    }
}
