//! The entry: `_start` with the startup block the kernel wrote on the stack, and the program it names.
//!
//! The startup block, from the initial stack pointer up: the SIP's id, the name's length, the argument string's
//! length (three `u64`), then the name's bytes and the argument's bytes (UTF-8). A name is a program of
//! `programs` or a service linked into the image (`services`), whose entry gets a `SipContext` over the ring-3
//! `KernelAbi` (`abi`). The kernel writes it (docs/protection.md);
//! this side still checks that it is UTF-8 and fits the stack page it is on.
#![allow(
    unsafe_code,
    reason = "the entry reads the startup block the kernel wrote on the stack; a thread's entry takes back its box"
)]

use crate::{abi, calls, programs};
use alloc::string::String;
use sip_runtime::{Entry, KernelAbi, MANIFESTS, SipContext, SipId};

/// The exit status when the block names no program or service of the image.
const NO_SUCH_PROGRAM: u32 = 127;

/// Bytes of the startup block this side reads at most (names and arguments are bounded by the kernel).
const MAX_BLOCK: usize = 2048;

/// First instruction of every SIP started from the image: pass the stack pointer (the startup block) to
/// [`start`], on a stack aligned as the ABI wants.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    core::arch::naked_asm!("mov rdi, rsp", "and rsp, -16", "call {start}", "ud2", start = sym start)
}

/// Reads the startup block at `block` and runs the program or service it names.
extern "C" fn start(block: *const u64) -> ! {
    // SAFETY: the kernel placed the block at the initial stack pointer, inside the mapped stack: three words and
    // then the bytes they count, which `MAX_BLOCK` bounds (a longer block is refused below).
    let (id, name_len, args_len) =
        unsafe { (block.read(), block.add(1).read() as usize, block.add(2).read() as usize) };
    if name_len.saturating_add(args_len) > MAX_BLOCK {
        calls::exit(NO_SUCH_PROGRAM);
    }
    // SAFETY: as above: the bytes follow the three words, within the mapped stack.
    let bytes = unsafe { core::slice::from_raw_parts(block.add(3).cast::<u8>(), name_len + args_len) };
    let (name, args) = bytes.split_at(name_len);
    let (Ok(name), Ok(args)) = (core::str::from_utf8(name), core::str::from_utf8(args)) else {
        calls::exit(NO_SUCH_PROGRAM)
    };
    calls::install_channels();
    if let Some(program) = programs::find(name) {
        calls::exit(program(args));
    }
    match MANIFESTS.iter().find(|m| m.name == name) {
        Some(manifest) => {
            let context = SipContext::new(&abi::RING3, SipId(id), manifest.name, String::from(args));
            match manifest.entry {
                Entry::Thread(main) => main(context),
                // No runner in ring 3: the SIP's thread polls its future; while it is pending, it waits in the
                // kernel on the endpoints its receives noted, or yields if it asked to be polled again.
                Entry::Async(main) => sip_runtime::continuations::block_on(main(context), |again| {
                    let interest = channels::raw::take_interest();
                    if again || interest.is_empty() {
                        abi::RING3.yield_now();
                    } else {
                        channels::raw::wait_for_any(&interest);
                    }
                }),
            }
            calls::exit(0)
        }
        None => calls::exit(NO_SUCH_PROGRAM),
    }
}

/// What a thread of this SIP runs: the function and its argument, boxed by [`start_thread`] and taken back by
/// [`thread_entry`].
type ThreadStart = (fn(usize), usize);

/// Starts a thread of this SIP running `entry(argument)` (`KernelAbi::start_thread`): the kernel enters
/// [`thread_entry`] on a stack of the thread's own, with the boxed pair as its argument.
pub fn start_thread(entry: fn(usize), argument: usize) -> Result<u64, sip_runtime::SpawnError> {
    use sip_runtime::ring3_calls as numbers;
    let packed = alloc::boxed::Box::into_raw(alloc::boxed::Box::new((entry, argument) as ThreadStart));
    let entry_address = thread_entry as extern "sysv64" fn(usize) -> ! as usize as u64;
    let started = calls::thread_start(entry_address, packed as u64);
    if started < numbers::FIRST_ERROR {
        return Ok(started);
    }
    // SAFETY: the kernel refused the thread, so nothing else has the box made above: it is freed once, here.
    drop(unsafe { alloc::boxed::Box::from_raw(packed) });
    Err(match started {
        numbers::OUT_OF_QUOTA => sip_runtime::SpawnError::TooManyThreads,
        numbers::OUT_OF_MEMORY => sip_runtime::SpawnError::OutOfMemory,
        _ => sip_runtime::SpawnError::NotPermitted,
    })
}

/// First instruction of every thread [`start_thread`] starts: runs its function, then ends the thread (the
/// kernel starts it with the boxed pair in `rdi` and a return address of 0 below a 16-byte aligned stack top, as
/// after a call).
extern "sysv64" fn thread_entry(packed: usize) -> ! {
    // SAFETY: `packed` is the box `start_thread` made for this thread and handed to the kernel, which starts
    // the thread with it once; nothing else frees it.
    let (entry, argument) = *unsafe { alloc::boxed::Box::from_raw(packed as *mut ThreadStart) };
    entry(argument);
    calls::exit(0)
}
