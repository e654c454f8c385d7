//! The ring-3 image: the programs that run in ring 3, one ELF the kernel finds in the boot ramdisk and loads into
//! a ring-3 SIP's slot (position independent: the kernel applies its relocations for the slot it chose).
//!
//! A SIP started from the image enters at [`_start`](start::_start) with a startup block on its stack (the
//! program's name and its argument string, `start`); the image runs the program of that name and exits with its
//! status. What is in it today: the ring-3 call wrappers (`calls`, the only `syscall`s in the workspace, in this
//! crate so that no ring-0 code can reach them), a panic handler that logs and exits, and the programs of
//! `programs`: `hello` and the deliberately unsafe `unsafe-test`, which is not a service (not under `services/`,
//! not audited) and which the kernel refuses to start in ring 0. The services themselves come here with the
//! ring-3 `KernelAbi` (docs/protection.md, "Next steps").
//!
//! Trusted like `sip-runtime`'s internals: `unsafe` is denied but in `calls`, `start`, the no-heap allocator and
//! the deliberately unsafe program, each block with its reason; the programs are what they say they are.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod calls;
mod programs;
mod start;

/// No heap yet: the programs of the image do not allocate (the ring-3 allocator over a SIP's heap comes with the
/// services, growing by call within its quota). An allocation fails, and the failure is a panic.
struct NoHeap;

// SAFETY: `alloc` never hands out memory, so nothing can be used wrongly; `dealloc` is never given a block.
#[allow(unsafe_code, reason = "an allocator is an unsafe trait")]
unsafe impl core::alloc::GlobalAlloc for NoHeap {
    unsafe fn alloc(&self, _: core::alloc::Layout) -> *mut u8 {
        core::ptr::null_mut()
    }

    unsafe fn dealloc(&self, _: *mut u8, _: core::alloc::Layout) {}
}

#[global_allocator]
static HEAP: NoHeap = NoHeap;

/// Ends the SIP with a log line naming the panic, at most one line long (nothing here allocates).
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut line = calls::Line::new();
    let _ = core::fmt::write(&mut line, format_args!("panicked: {}", info.message()));
    if let Some(at) = info.location() {
        let _ = core::fmt::write(&mut line, format_args!(" at {}:{}", at.file(), at.line()));
    }
    calls::log(calls::Level::Error, line.as_str());
    calls::exit(101)
}
