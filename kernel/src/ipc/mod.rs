//! The kernel's side of the channel runtime: the owner-tracking exchange heap and blocking through the
//! scheduler, installed as the `channels` platform hooks at boot.
//!
//! Everything a SIP sends lives in the exchange heap, outside every SIP arena, so a message (or a channel)
//! survives its sender's death; every block has an owner record, so a dead SIP's blocks can be reclaimed
//! without running its destructors.

pub mod blocking;
pub mod exchange_heap;
pub mod intercore;

/// Installs the hooks; call once at boot, before any channel exists.
pub fn init() {
    let platform = channels::platform::Platform { heap: &exchange_heap::HEAP, blocking: &blocking::SCHEDULER };
    if channels::platform::install(platform).is_err() {
        panic!("channel platform fixed before ipc::init: a channel was used too early in boot");
    }
}
