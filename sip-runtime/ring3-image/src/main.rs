//! The ring-3 image: the programs that run in ring 3, one ELF the kernel finds in the boot ramdisk and loads into
//! a ring-3 SIP's slot (position independent: the kernel applies its relocations for the slot it chose).
//!
//! A SIP started from the image enters at [`_start`](start::_start) with a startup block on its stack (its id,
//! the program's or service's name and its argument string, `start`); the image runs the program of that name,
//! or the service whose manifest has it, and exits with its status. What is in it today: the ring-3 call
//! wrappers (`calls`, the only `syscall`s in the workspace, in this crate so that no ring-0 code can reach them),
//! the SIP's heap (`heap`, growing by call), the ring-3 `KernelAbi` a service's `SipContext` gets (`abi`), a
//! panic handler that ends the SIP as panicked, the services linked in (`services`: those without contracts so
//! far), and the programs of `programs`: `hello`, the deliberately unsafe `unsafe-test` and `soundness`, which
//! are not services (not under `services/`, not audited) and which the kernel refuses to start in ring 0.
//! Channels across address spaces come next (docs/protection.md, "Next steps").
//!
//! Trusted like `sip-runtime`'s internals: `unsafe` is denied but in `calls`, `start`, `heap` and the deliberately
//! unsafe program, each block with its reason; the programs are what they say
//! they are.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

mod abi;
mod calls;
mod heap;
mod programs;
mod services;
mod start;

/// Ends the SIP as panicked, with the message and where (at most one log line; formatting does not allocate).
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut line = calls::Line::new();
    if let Some(at) = info.location() {
        let _ = core::fmt::write(&mut line, format_args!("{}:{}: ", at.file(), at.line()));
    }
    let _ = core::fmt::write(&mut line, format_args!("{}", info.message()));
    calls::panic(line.as_str())
}
