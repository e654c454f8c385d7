//! Each core's monitor thread: the kernel instance's message loop, and the mailbox that runs a job on another
//! core ([`run_on`]).
//!
//! The monitor answers requests from other cores (`ipc::intercore`; each request's own `handle` does the work,
//! defined by the layer that sent it) and runs jobs posted to its core's one-slot mailbox; it sleeps otherwise,
//! woken by the CALL IPI ([`on_call_interrupt`], installed as that interrupt's handler). It never waits for
//! another core (`ipc::intercore`'s invariant). The mailbox is a synchronous diagnostic call (the self-tests
//! run per-core tests on every core with it), not the inter-core messaging layer.

use crate::arch::apic;
use crate::arch::vectors::CALL_VECTOR;
use crate::cores::{self, Core, CoreState};
use crate::exec::Account;
use crate::ipc::intercore;
use crate::sync::IrqMutex;
use crate::{percpu, sched, time};
use alloc::string::String;
use alloc::vec::Vec;

/// How long a [`run_on`] job may take.
const CALL_TIMEOUT_NANOS: u64 = 10_000_000_000;
/// How long a monitor waits before trying again to move backlogged requests into full lanes.
const BACKLOG_RETRY_NANOS: u64 = 100_000;
/// Stack of the boot core's monitor thread (the other cores' monitors run on their boot stacks).
const MONITOR_STACK_BYTES: u64 = 64 * 1024;

/// A job for another core's monitor thread.
pub type Job = fn() -> Result<(), String>;

enum Mail {
    Empty,
    Posted(Job),
    Done(Result<(), String>),
}

/// Every core's mailbox, by dense index.
static MAILBOXES: spin::Once<Vec<IrqMutex<Mail>>> = spin::Once::new();

/// Gives every core of the core table its mailbox (once, on the boot core, before any other core starts).
pub fn init() {
    MAILBOXES.call_once(|| cores::cores().iter().map(|_| IrqMutex::new(Mail::Empty)).collect());
}

fn mailbox(index: u32) -> Option<&'static IrqMutex<Mail>> {
    MAILBOXES.get()?.get(index as usize)
}

/// The monitor loop of `core` (the calling core), forever.
pub fn run(core: &'static Core) -> ! {
    let Some(mailbox) = mailbox(core.index) else { panic!("cpu {} has no mailbox", core.index) };
    let mut turn = 0u32;
    loop {
        let job = match *mailbox.lock() {
            Mail::Posted(job) => Some(job),
            _ => None,
        };
        if let Some(job) = job {
            let result = job();
            *mailbox.lock() = Mail::Done(result);
            continue;
        }
        // Start from a different sending core each time, so one busy core cannot starve the others.
        turn = turn.wrapping_add(1);
        match intercore::next_request(turn) {
            Some((from, request)) => intercore::serve(from, request),
            // Requests still waiting for room in a full lane: look again shortly (their receivers are draining).
            None if intercore::flush_backlogs() => sched::sleep(BACKLOG_RETRY_NANOS),
            // A wake that arrives between the checks and the park is kept (token semantics): nothing is missed.
            None => sched::block_current(),
        }
    }
}

/// Starts the boot core's monitor thread (application processors turn their boot thread into theirs).
pub fn start_boot_core_monitor() {
    let Some(core) = cores::cores().first() else { return };
    match sched::spawn(Account::Kernel, MONITOR_STACK_BYTES, move || run(core)) {
        Ok(id) => core.set_monitor(id.0),
        Err(e) => log::error!("cpu 0: cannot start its monitor thread ({e:?}): other cores cannot reach it"),
    }
}

/// The CALL IPI on this core: apply the wake-ups other cores sent, and wake the monitor thread if a request or
/// a job waits for it.
pub fn on_call_interrupt() {
    let requests = intercore::drain_wakes();
    let Some(core) = cores::this_core() else { return };
    let posted = mailbox(core.index).is_some_and(|m| matches!(*m.lock(), Mail::Posted(_)));
    if let (true, Some(monitor)) = (requests || posted, core.monitor()) {
        sched::wake(sched::ThreadId(monitor));
    }
}

/// Why [`run_on`] did not run the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOnError {
    /// No such core, or it is not online.
    NotOnline,
    /// Its mailbox holds another job.
    Busy,
    /// The IPI could not be sent.
    Ipi(#[allow(dead_code, reason = "shown through Debug in reports")] apic::IpiError),
    /// The job did not finish in time (it may still finish; the mailbox stays busy until then).
    Timeout,
}

/// Runs `job` on the monitor thread of core `index` and waits (sleeping) for its result. On the calling core
/// itself the job runs directly.
pub fn run_on(index: u32, job: Job) -> Result<Result<(), String>, RunOnError> {
    if index == percpu::current_index() {
        return Ok(job());
    }
    let core =
        cores::cores().get(index as usize).filter(|c| c.state() == CoreState::Online).ok_or(RunOnError::NotOnline)?;
    let mailbox = mailbox(index).ok_or(RunOnError::NotOnline)?;
    {
        let mut mail = mailbox.lock();
        if !matches!(*mail, Mail::Empty) {
            return Err(RunOnError::Busy);
        }
        *mail = Mail::Posted(job);
    }
    if let Err(e) = apic::send_ipi(core.apic_id, apic::Ipi::Fixed(CALL_VECTOR)) {
        *mailbox.lock() = Mail::Empty;
        return Err(RunOnError::Ipi(e));
    }
    let deadline = time::uptime_nanos() + CALL_TIMEOUT_NANOS;
    loop {
        {
            let mut mail = mailbox.lock();
            if matches!(*mail, Mail::Done(_))
                && let Mail::Done(result) = core::mem::replace(&mut *mail, Mail::Empty)
            {
                return Ok(result);
            }
        }
        if time::uptime_nanos() > deadline {
            return Err(RunOnError::Timeout);
        }
        sched::sleep(1_000_000);
    }
}
