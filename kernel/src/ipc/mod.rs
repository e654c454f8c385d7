//! The kernel's side of the channel runtime: the exchange heap with its ownership ledger, and blocking through
//! the scheduler, installed as the `channels` platform hooks at boot; and the messages between cores.
//!
//! Everything a SIP sends lives in the exchange heap, outside every SIP arena, so a message (or a channel)
//! survives its sender's death; every block and channel side has an owner record, so a dead SIP's blocks and
//! endpoints can be reclaimed without running any of its code. Tasks (`tasks`) are futures that wait in channel
//! receives on a runner thread per core, woken by their token like threads.

pub mod blocking;
pub mod exchange_heap;
pub mod intercore;
pub mod tasks;

/// Installs the hooks; call once at boot, before any channel exists.
pub fn init() {
    let platform = channels::platform::Platform { exchange: &exchange_heap::EXCHANGE, blocking: &blocking::SCHEDULER };
    // SAFETY: the kernel is the trusted base.
    let trusted = unsafe { channels::trusted::Trusted::new() };
    if channels::platform::install(&trusted, platform).is_err() {
        panic!("channel platform fixed before ipc::init: a channel was used too early in boot");
    }
    tasks::init();
}
