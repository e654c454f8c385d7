//! What async SIPs await besides channel receives, and how an async entry runs where there is no runner.
//!
//! An async SIP (`sip!`'s `entry: async main`, [`Entry::Async`](crate::Entry)) is polled by its core's runner
//! in ring 0 (docs/thread-models.md); a receive waits with `recv_async().await`, a pause for others with
//! [`SipContext::yield_async`](crate::SipContext::yield_async), a sleep with
//! [`SipContext::sleep_async`](crate::SipContext::sleep_async) (a timer of the runner wakes the task; no stack
//! is held meanwhile), the end of another SIP with [`SipContext::wait_async`](crate::SipContext::wait_async)
//! (the kernel wakes the task when that SIP ends). In ring 3 there is no runner: the ring-3 image runs the same
//! entry on the SIP's thread with [`block_on`], which polls the future and, while it is pending, waits in the
//! kernel on the endpoints its receives found empty (or yields the core, if it asked to be polled again), so
//! the same service code runs in every mode.

use crate::{AsyncMain, KillError, SipId};
use alloc::sync::Arc;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};

/// A future that is pending once (asking to be polled again at once), then ready: the runner polls the core's
/// other ready tasks in between.
#[derive(Debug, Default)]
#[must_use = "a yield does nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if core::mem::replace(&mut self.yielded, true) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A sleep as a future ([`SipContext::sleep_async`](crate::SipContext::sleep_async)): ready once the clock has
/// passed its deadline; until then pending, with a timer that wakes the task (or, where there is none, asking to
/// be polled again).
#[must_use = "a sleep does nothing unless awaited"]
pub struct SleepAsync {
    abi: &'static dyn crate::KernelAbi,
    deadline: u64,
}

impl SleepAsync {
    pub(crate) fn new(abi: &'static dyn crate::KernelAbi, deadline: u64) -> Self {
        Self { abi, deadline }
    }
}

impl core::fmt::Debug for SleepAsync {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SleepAsync").field("deadline", &self.deadline).finish_non_exhaustive()
    }
}

impl Future for SleepAsync {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.abi.now() >= self.deadline {
            return Poll::Ready(());
        }
        if !self.abi.wake_at(self.deadline) {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// The end of a SIP as a future ([`SipContext::wait_async`](crate::SipContext::wait_async)): each poll asks the
/// kernel whether the SIP is gone, which otherwise wakes the task when it goes; where there is no task (ring 3,
/// a thread), the poll waits as `wait` does.
#[must_use = "a wait does nothing unless awaited"]
pub struct WaitAsync {
    abi: &'static dyn crate::KernelAbi,
    id: SipId,
    polled: bool,
}

impl WaitAsync {
    pub(crate) fn new(abi: &'static dyn crate::KernelAbi, id: SipId) -> Self {
        Self { abi, id, polled: false }
    }
}

impl core::fmt::Debug for WaitAsync {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WaitAsync").field("id", &self.id).field("polled", &self.polled).finish_non_exhaustive()
    }
}

impl Future for WaitAsync {
    type Output = Result<(), KillError>;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let first = !core::mem::replace(&mut self.polled, true);
        match self.abi.wake_on_end(self.id) {
            Some(false) => Poll::Pending,
            Some(true) if first => Poll::Ready(Err(KillError::NoSuchProcess)),
            Some(true) => Poll::Ready(Ok(())),
            None => Poll::Ready(self.abi.wait(self.id)),
        }
    }
}

/// Runs `future` to completion on the calling thread: polls it, and after each pending poll calls `pause` with
/// whether the future asked to be polled again at once (woke its waker: a yield, a sleep without a timer). The
/// ring-3 image's `pause` yields the core in that case, and otherwise waits in the kernel on the endpoints the
/// future's receives noted (`channels::raw::take_interest`). For an async entry where no runner polls it
/// (ring 3).
pub fn block_on(mut future: AsyncMain, pause: impl Fn(bool)) {
    let again = Arc::new(PollAgain(AtomicBool::new(false)));
    let waker = Waker::from(again.clone());
    let mut cx = Context::from_waker(&waker);
    while future.as_mut().poll(&mut cx).is_pending() {
        pause(again.0.swap(false, Ordering::Relaxed));
    }
}

/// [`block_on`]'s waker: a wake asks for another poll at once.
struct PollAgain(AtomicBool);

impl alloc::task::Wake for PollAgain {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}
