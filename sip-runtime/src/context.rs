//! `SipContext`: what a SIP's entry function receives.

use crate::Startup;
use crate::abi::{
    ExitStatus, KernelAbi, KillError, LogLevel, MemoryInfo, NotPermitted, ProcessInfo, SipId, SpawnError,
};
use alloc::boxed::Box;
use alloc::string::String;
use channels::Exchangeable;
use core::fmt::{self, Write};

/// A SIP's view of itself and of the kernel. Passed by value to the entry function; cheap to clone.
#[derive(Clone)]
pub struct SipContext {
    pub(crate) abi: &'static dyn KernelAbi,
    id: SipId,
    name: &'static str,
    args: String,
}

/// A new thread's work, boxed in the SIP's heap.
type Closure = Box<dyn FnOnce() + Send>;

/// A thread started by [`SipContext::spawn_thread`]: runs the closure whose box `argument` is. Private, so a SIP
/// cannot hand it a number of its own choosing (it can start threads only with functions it can name).
fn run_boxed(argument: usize) {
    // SAFETY: the kernel calls a thread's entry once, with the argument `spawn_thread` gave it: the address of a
    // `Box<Closure>` from `Box::into_raw`, not used anywhere else.
    #[allow(unsafe_code)]
    let closure = unsafe { Box::from_raw(argument as *mut Closure) };
    closure();
}

impl fmt::Debug for SipContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipContext").field("id", &self.id).field("name", &self.name).finish_non_exhaustive()
    }
}

impl SipContext {
    /// Made by the kernel when it starts a SIP.
    pub fn new(abi: &'static dyn KernelAbi, id: SipId, name: &'static str, args: String) -> Self {
        Self { abi, id, name, args }
    }

    /// This SIP's id.
    pub fn id(&self) -> SipId {
        self.id
    }

    /// This SIP's service name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The argument string it was spawned with (may be empty).
    pub fn args(&self) -> &str {
        &self.args
    }

    /// The kernel ABI object itself (for code that is generic over it).
    pub fn abi(&self) -> &'static dyn KernelAbi {
        self.abi
    }

    /// Gives the core to another ready thread.
    pub fn yield_now(&self) {
        self.abi.yield_now()
    }

    /// In an async SIP: lets the core's other ready tasks run, then goes on (`ctx.yield_async().await`).
    pub fn yield_async(&self) -> crate::continuations::YieldNow {
        crate::continuations::YieldNow::default()
    }

    /// In an async SIP: waits at least `millis` milliseconds without holding a stack (`ctx.sleep_async(ms).await`).
    pub fn sleep_async(&self, millis: u64) -> crate::continuations::SleepAsync {
        let deadline = self.abi.now().saturating_add(millis.saturating_mul(1_000_000));
        crate::continuations::SleepAsync::new(self.abi, deadline)
    }

    /// Parks this thread for at least `millis` milliseconds.
    pub fn sleep_ms(&self, millis: u64) {
        self.abi.sleep(millis.saturating_mul(1_000_000))
    }

    /// Nanoseconds since boot.
    pub fn now_nanos(&self) -> u64 {
        self.abi.now()
    }

    /// The raw cycle counter.
    pub fn cycles(&self) -> u64 {
        self.abi.cycles()
    }

    /// Ends this SIP.
    pub fn exit(&self, status: ExitStatus) -> ! {
        self.abi.exit(status)
    }

    /// Logs a formatted line. Formatting happens here, in the SIP, so the kernel only ever sees a `&str`.
    pub fn log(&self, level: LogLevel, args: fmt::Arguments<'_>) {
        let mut line = String::new();
        let _ = line.write_fmt(args);
        self.abi.log(level, &line);
    }

    /// Starts service `name` with `args`, on `core` or the least loaded core.
    pub fn spawn(&self, name: &str, args: &str, core: Option<u32>) -> Result<SipId, SpawnError> {
        self.abi.spawn(name, args, core, None).map_err(|(e, _)| e)
    }

    /// Starts service `name` and hands it `value` (typically a channel endpoint), which the child receives with
    /// [`SipContext::take_startup`]. On failure the value comes back with the error.
    pub fn spawn_with<E: Exchangeable + Send>(
        &self,
        name: &str,
        args: &str,
        core: Option<u32>,
        value: E,
    ) -> Result<SipId, (SpawnError, Option<E>)> {
        let startup = Startup::new(value).map_err(|(value, _)| (SpawnError::OutOfMemory, Some(value)))?;
        self.abi.spawn(name, args, core, Some(startup)).map_err(|(e, back)| (e, back.and_then(Startup::take)))
    }

    /// [`SipContext::spawn_with`] under `protection` (`KernelAbi::spawn_protected`): the same service, and the
    /// same value, in ring 0 or in ring 3.
    pub fn spawn_protected_with<E: Exchangeable + Send>(
        &self,
        name: &str,
        args: &str,
        core: Option<u32>,
        protection: crate::Protection,
        value: E,
    ) -> Result<SipId, (SpawnError, Option<E>)> {
        let startup = Startup::new(value).map_err(|(value, _)| (SpawnError::OutOfMemory, Some(value)))?;
        self.abi
            .spawn_protected(name, args, core, protection, Some(startup))
            .map_err(|(e, back)| (e, back.and_then(Startup::take)))
    }

    /// The value this SIP was spawned with, if it is an `E` (once; `None` afterwards or for another type).
    pub fn take_startup<E: Exchangeable + Send>(&self) -> Option<E> {
        self.abi.take_startup()?.take()
    }

    /// Starts another thread of this SIP, running `f` with its own copy of the context, on a stack of the
    /// manifest's `stack_size` with its own guard page. The SIP ends when its first thread (the entry function)
    /// returns, or when any thread panics or faults; another thread that returns ends alone.
    pub fn spawn_thread(&self, f: impl FnOnce(SipContext) + Send + 'static) -> Result<u64, SpawnError> {
        let ctx = self.clone();
        let closure: Closure = Box::new(move || f(ctx));
        // The closure stays in this SIP's heap; only its address crosses the ABI, as a number, and only
        // `run_boxed` turns it back into the closure, once.
        let argument = Box::into_raw(Box::new(closure)) as usize;
        self.abi.start_thread(run_boxed, argument).inspect_err(|_| {
            // Not started: the closure is ours to drop (here, in the SIP, never in the kernel).
            // SAFETY: `argument` came from `Box::into_raw` just above and the kernel did not start a thread
            // with it, so this is its only use.
            #[allow(unsafe_code)]
            drop(unsafe { Box::from_raw(argument as *mut Closure) });
        })
    }

    /// Ends SIP `id`.
    pub fn kill(&self, id: SipId) -> Result<(), KillError> {
        self.abi.kill(id)
    }

    /// Every live SIP, in id order.
    pub fn processes(&self) -> impl Iterator<Item = ProcessInfo> + '_ {
        let mut after = None;
        core::iter::from_fn(move || {
            let next = self.abi.process_after(after)?;
            after = Some(next.id);
            Some(next)
        })
    }

    /// Memory figures.
    pub fn memory(&self) -> MemoryInfo {
        self.abi.memory()
    }

    /// Blocks until SIP `id` has ended.
    pub fn wait(&self, id: SipId) -> Result<(), KillError> {
        self.abi.wait(id)
    }

    /// [`wait`](Self::wait) as a future, for async SIPs: resolves when SIP `id` has ended, holding no stack
    /// meanwhile (the kernel wakes the task at the end); `NoSuchProcess` if it was not alive at the first poll.
    pub fn wait_async(&self, id: SipId) -> crate::continuations::WaitAsync {
        crate::continuations::WaitAsync::new(self.abi, id)
    }

    /// Writes formatted text to the system console (needs the `Console` capability).
    pub fn print(&self, args: fmt::Arguments<'_>) -> Result<(), NotPermitted> {
        let mut text = String::new();
        let _ = text.write_fmt(args);
        self.abi.console_write(&text)
    }
}
