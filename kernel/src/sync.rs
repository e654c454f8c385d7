//! Locks that may be taken both by ordinary kernel code and by interrupt handlers on the same core.
//!
//! A spinlock that an interrupt handler can also take must be held with interrupts off, or the handler spins
//! forever on the lock its own core holds (DESIGN.md, pitfalls). Both types here disable interrupts for the
//! time the lock is held and restore the previous state afterwards. No other lock kind is used for state an
//! interrupt handler or the scheduler can touch.

use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::instructions::interrupts;

/// A spin mutex held with interrupts disabled on the holding core.
pub struct IrqMutex<T> {
    inner: spin::Mutex<T>,
}

/// Guard of an [`IrqMutex`]; re-enables interrupts on drop if they were enabled at lock time.
pub struct IrqMutexGuard<'a, T> {
    guard: Option<spin::MutexGuard<'a, T>>,
    were_enabled: bool,
}

impl<T> IrqMutex<T> {
    /// A new unlocked mutex.
    pub const fn new(value: T) -> Self {
        Self { inner: spin::Mutex::new(value) }
    }

    /// Disables interrupts, then spins until the lock is free. Inline: a few instructions, taken on most kernel
    /// paths (out of line, every caller paid a call and the spills around it: SIP create + exit +800 once).
    #[inline]
    pub fn lock(&self) -> IrqMutexGuard<'_, T> {
        let were_enabled = interrupts::are_enabled();
        interrupts::disable();
        IrqMutexGuard { guard: Some(self.inner.lock()), were_enabled }
    }

    /// [`IrqMutex::lock`] for callers that have already disabled interrupts: skips saving and restoring the flag.
    /// Always inline: the scheduler takes its lock this way on every switch.
    #[inline(always)]
    pub fn lock_irqs_off(&self) -> IrqMutexGuard<'_, T> {
        debug_assert!(!interrupts::are_enabled(), "lock_irqs_off with interrupts on");
        IrqMutexGuard { guard: Some(self.inner.lock()), were_enabled: false }
    }

    /// Like [`IrqMutex::lock`] but gives up instead of spinning (for the panic path, where the holder may be
    /// the code that panicked).
    pub fn try_lock(&self) -> Option<IrqMutexGuard<'_, T>> {
        let were_enabled = interrupts::are_enabled();
        interrupts::disable();
        match self.inner.try_lock() {
            Some(guard) => Some(IrqMutexGuard { guard: Some(guard), were_enabled }),
            None => {
                if were_enabled {
                    interrupts::enable();
                }
                None
            }
        }
    }
}

impl<T> Deref for IrqMutexGuard<'_, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        self.guard.as_deref().unwrap_or_else(|| unreachable!("guard lives until drop"))
    }
}

impl<T> DerefMut for IrqMutexGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_deref_mut().unwrap_or_else(|| unreachable!("guard lives until drop"))
    }
}

impl<T> Drop for IrqMutexGuard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        // Release the lock before interrupts can come back, so a handler never finds it taken by us.
        drop(self.guard.take());
        if self.were_enabled {
            interrupts::enable();
        }
    }
}

/// A raw spinlock for `lock_api` users (the heap allocator) with the same interrupt discipline.
pub struct IrqSpinRaw {
    locked: AtomicBool,
    restore_interrupts: AtomicBool,
}

// SAFETY: `lock` returns only once this caller flipped `locked` from false to true (acquire), `unlock` clears it
// (release); so at most one holder exists at a time, which is the RawMutex contract.
unsafe impl talc::lock_api::RawMutex for IrqSpinRaw {
    #[allow(clippy::declare_interior_mutable_const, reason = "lock_api's required initialiser pattern")]
    const INIT: Self = Self { locked: AtomicBool::new(false), restore_interrupts: AtomicBool::new(false) };
    type GuardMarker = talc::lock_api::GuardNoSend;

    #[inline]
    fn lock(&self) {
        let were_enabled = interrupts::are_enabled();
        interrupts::disable();
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            core::hint::spin_loop();
        }
        self.restore_interrupts.store(were_enabled, Ordering::Relaxed);
    }

    fn try_lock(&self) -> bool {
        let were_enabled = interrupts::are_enabled();
        interrupts::disable();
        if self.locked.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            self.restore_interrupts.store(were_enabled, Ordering::Relaxed);
            true
        } else {
            if were_enabled {
                interrupts::enable();
            }
            false
        }
    }

    #[inline]
    unsafe fn unlock(&self) {
        let restore = self.restore_interrupts.load(Ordering::Relaxed);
        self.locked.store(false, Ordering::Release);
        if restore {
            interrupts::enable();
        }
    }
}
