//! The programs of the image, by name. Each takes its argument string and returns its exit status.
//!
//! `unsafe-test` is the deliberately unsafe test program of the fault matrix (docs/protection.md): it commits
//! the fault its argument names, which only hardware protection can stop, and exits with [`SURVIVED`] if
//! nothing did. It is not a service and is not audited; the kernel refuses to run it in ring 0.

use crate::calls::{self, Level};
use contracts::echo;

mod channel_attacks;
mod kernel_requests;
mod soundness;

/// The exit status of a fault that nothing stopped.
pub const SURVIVED: u32 = 7;

/// A program: its argument string in, its exit status out.
pub type Program = fn(&str) -> u32;

/// Every program of the image.
const PROGRAMS: [(&str, Program); 7] = [
    ("channel-attacks", channel_attacks::run),
    ("kernel-requests", kernel_requests::run),
    ("hello", hello),
    ("unsafe-test", unsafe_test),
    ("soundness", soundness::write_anywhere),
    ("alloc", alloc),
    ("bench-ring3", bench),
];

/// The program named `name`.
pub fn find(name: &str) -> Option<Program> {
    PROGRAMS.iter().find(|(n, _)| *n == name).map(|(_, program)| *program)
}

/// Logs a greeting with its argument, and exits with success.
fn hello(args: &str) -> u32 {
    let mut line = calls::Line::new();
    let _ = core::fmt::write(&mut line, format_args!("hello from ring 3 (Rust), args '{args}'"));
    calls::log(Level::Info, line.as_str());
    0
}

/// A `bench protection` row in ring 3: `null N` (N null calls), `yield N` (N yields with nobody else ready),
/// `pingpong N` (N Echo round trips over the Echo client end this SIP was spawned with) or `selfloop N` (N
/// Echo round trips between two ends of one channel this SIP holds both of: the calls without the switches),
/// measured over 21 rounds (`kv N`, the macro workload, is measured once: see [`kv_workload`]); exits with the
/// median cycles per operation (guest instructions under `--icount`), which the benchmark reads as this SIP's
/// exit status, and logs the median, minimum and maximum. `exit` exits at once (the create + exit row);
/// `yield-partner` yields until it is killed (beside it, each `yield` of another SIP is A->B->A).
/// `u32::MAX` means the row could not be measured.
fn bench(args: &str) -> u32 {
    const ROUNDS: usize = 21;
    let mut words = args.split_whitespace();
    let what = words.next().unwrap_or("");
    let count = words.next().and_then(number).unwrap_or(1000).max(1);
    let mut echo = if what == "pingpong" { echo_client() } else { None };
    let mut op: alloc::boxed::Box<dyn FnMut() -> bool> = match what {
        "null" => alloc::boxed::Box::new(|| {
            calls::raw(sip_runtime::ring3_calls::NULL, 0, 0, 0);
            true
        }),
        "yield" => alloc::boxed::Box::new(|| {
            calls::yield_now();
            true
        }),
        "pingpong" if echo.is_some() => alloc::boxed::Box::new(|| round_trip(&mut echo)),
        "selfloop" => {
            let (client, server) = echo::channel();
            let mut ends = Some((client, server));
            alloc::boxed::Box::new(move || self_round_trip(&mut ends))
        }
        "kv" => return kv_workload(count),
        "exit" => return 0,
        // The partner of the A->B->A row: yields until it is killed.
        "yield-partner" => loop {
            calls::yield_now();
        },
        _ => return u32::MAX,
    };
    let mut rounds = [0u64; ROUNDS];
    for round in rounds.iter_mut() {
        let start = calls::cycles();
        if !(0..count).all(|_| op()) {
            return u32::MAX;
        }
        *round = (calls::cycles() - start) / count;
    }
    drop(op);
    rounds.sort_unstable();
    let (median, min, max) = (rounds[ROUNDS / 2], rounds[0], rounds[ROUNDS - 1]);
    let mut line = calls::Line::new();
    let _ = core::fmt::write(&mut line, format_args!("{what}: median {median}, min {min}, max {max}"));
    calls::log(Level::Debug, line.as_str());
    median.min(u64::from(u32::MAX - 1)) as u32
}

/// The macro workload: `ops` mixed requests (`contracts::mixed_requests`) to the kv SIP whose client end this SIP was
/// spawned with; exits with the cycles per request (guest instructions under `--icount`), `u32::MAX` if a request
/// failed or the store went away.
fn kv_workload(ops: u64) -> u32 {
    let client = calls::startup_endpoint().and_then(|end| {
        sip_runtime::Startup::from_end(end).take::<contracts::kv_store::Client<contracts::kv_store::state::Ready>>()
    });
    let Some(client) = client else { return u32::MAX };
    let ops = ops.min(u64::from(u32::MAX)) as u32;
    let start = calls::cycles();
    let Ok((0, client)) = contracts::mixed_requests(client, ops) else { return u32::MAX };
    let per = (calls::cycles() - start) / u64::from(ops.max(1));
    if let Ok(done) = client.send_quit() {
        done.close();
    }
    per.min(u64::from(u32::MAX - 1)) as u32
}

/// The Echo client end this SIP was spawned with.
fn echo_client() -> Option<echo::Client<echo::state::Ready>> {
    sip_runtime::Startup::from_end(calls::startup_endpoint()?).take()
}

/// One Ping out and its Pong back; `false` if the echo SIP is gone.
fn round_trip(client: &mut Option<echo::Client<echo::state::Ready>>) -> bool {
    let Some(ready) = client.take() else { return false };
    match ready.send_ping_and_recv(7) {
        Ok(echo::client::PingSent::Pong(_, ready)) => {
            *client = Some(ready);
            true
        }
        _ => false,
    }
}

/// One Ping and its Pong between two ends this SIP holds both of: the calls of a round trip without the
/// switches between SIPs.
fn self_round_trip(ends: &mut Option<(echo::Client<echo::state::Ready>, echo::Server<echo::state::Ready>)>) -> bool {
    let Some((client, server)) = ends.take() else { return false };
    let Ok(owed) = client.send_ping(7) else { return false };
    let Ok(echo::server::Ready::Ping(n, owes)) = server.recv() else { return false };
    let Ok(server) = owes.send_pong(n) else { return false };
    match owed.recv() {
        Ok(echo::client::PingSent::Pong(_, client)) => {
            *ends = Some((client, server));
            true
        }
        _ => false,
    }
}

/// Allocates and fills a vector of the argument's bytes on the heap (which grows by call, within the quota),
/// frees it, and exits with success; beyond the quota the allocation fails, which is a panic.
fn alloc(args: &str) -> u32 {
    let bytes = number(args.trim()).unwrap_or(0) as usize;
    let filled = alloc::vec![0x5au8; bytes];
    let sum = core::hint::black_box(&filled).iter().map(|b| u64::from(*b)).sum::<u64>();
    u32::from(sum != 0x5a * bytes as u64)
}

/// A number from an argument: decimal, or hexadecimal with `0x`.
pub fn number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Commits the fault `args` names: `cli`, `hlt`, `wrmsr`, `cr3`, `read ADDR`, `write ADDR`, `jump ADDR`,
/// `log ADDR LEN` (a call with a pointer of its choice; exits with the low 32 bits of the answer), `recurse`,
/// `spin` (forever).
#[allow(unsafe_code, reason = "the deliberately unsafe test program: its faults need unsafe")]
fn unsafe_test(args: &str) -> u32 {
    let mut words = args.split_whitespace();
    let fault = words.next().unwrap_or("");
    let address = words.next().and_then(number).unwrap_or(0);
    // SAFETY: none of this is sound; that is the point. Each block commits one fault on purpose, for the
    // hardware to stop: in ring 3 each traps and ends this SIP alone.
    unsafe {
        match fault {
            "cli" => core::arch::asm!("cli"),
            "hlt" => core::arch::asm!("hlt"),
            "wrmsr" => core::arch::asm!("wrmsr", in("ecx") 0xc000_0080u32, in("eax") 0, in("edx") 0),
            "cr3" => core::arch::asm!("mov cr3, {}", in(reg) address),
            "read" => {
                core::ptr::read_volatile(address as *const u8);
            }
            "write" => core::ptr::write_volatile(address as *mut u8, 0x55),
            "jump" => {
                let target: extern "C" fn() = core::mem::transmute(address as *const ());
                target();
            }
            "log" => {
                let len = words.next().and_then(number).unwrap_or(16);
                return calls::raw(sip_runtime::ring3_calls::LOG, address, len, 2) as u32;
            }
            "recurse" => return recurse(1),
            "spin" => loop {
                core::hint::spin_loop();
            },
            _ => return 2,
        }
    }
    SURVIVED
}

/// Recurses without end: a stack overflow.
#[allow(unconditional_recursion, reason = "the stack overflow of the fault matrix")]
fn recurse(depth: u32) -> u32 {
    let frame = [depth; 64];
    core::hint::black_box(&frame);
    recurse(core::hint::black_box(depth + 1)).wrapping_add(frame[0])
}
