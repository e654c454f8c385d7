//! The fault injector: a SIP that fails on request, in each way a SIP can fail.
//!
//! The argument picks the fault: `panic`, `overflow` (runs off its stack into the guard page: a CPU exception,
//! a page fault, in its own code), `quota` (allocates until its heap quota is spent), `spin` (loops forever
//! without yielding: preemption must keep the system alive), `drop` (drops its channel mid-protocol and ends
//! cleanly), `exit` (answers, then ends cleanly: the control case). Spawned with an Echo endpoint (the console's
//! `fault` command), it first takes a request, so every fault happens while the peer is owed an answer. The
//! second manifest, `fault-restart`, fails shortly after starting and has a restart policy, so supervision can
//! be observed; the third, `fault-bad-manifest`, is invalid on purpose (heap quota 0), so the kernel's manifest
//! check can be seen refusing it.
//!
//! Not here: other CPU exceptions (#DE, #UD, #GP...): safe Rust cannot raise them (division is checked and
//! panics), which is the point of type-based isolation.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use contracts::echo::{self, server, state};
use core::hint::black_box;
use sip_runtime::{ExitStatus, RestartPolicy, SipContext, sip};

sip! {
    name: "fault",
    entry: main,
    exports: [],
    imports: [],
    heap_quota: 256 * 1024,
    stack_size: 32 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

sip! {
    name: "fault-restart",
    entry: restarting,
    exports: [],
    imports: [],
    heap_quota: 64 * 1024,
    stack_size: 16 * 1024,
    restart: RestartPolicy::OnFailure { max_restarts: 2, backoff_ms: 50 },
    capabilities: [],
}

// A manifest the kernel must refuse (quota 0): the fixture for "a manifest error gives a clear error, nothing
// starts". It is never valid, so `spawn fault-bad-manifest` always fails at the kernel's check.
sip! {
    name: "fault-bad-manifest",
    entry: main,
    exports: [],
    imports: [],
    heap_quota: 0,
    stack_size: 16 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

fn main(ctx: SipContext) {
    // Spawned with an Echo endpoint (the console's `fault` command), take the request first, so the fault
    // happens mid-protocol: the peer is owed a Pong. The endpoint stays alive through the fault.
    let owed = ctx.take_startup::<echo::Server<state::Ready>>().and_then(|endpoint| match endpoint.recv() {
        Ok(server::Ready::Ping(n, owes)) => Some((n, owes)),
        _ => None,
    });
    sip_runtime::info!(ctx, "injecting fault '{}'", ctx.args());
    match ctx.args() {
        "drop" => {
            // Drop the endpoint while owing the answer, and end cleanly: the peer must see Closed.
            drop(owed);
        }
        "panic" => panic!("requested panic"),
        "overflow" => {
            let depth = recurse(black_box(1));
            sip_runtime::info!(ctx, "recursion returned {depth}: the guard page was not hit");
        }
        "quota" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(black_box(alloc::vec![0xa5; 16 * 1024]));
            }
        }
        "spin" => loop {
            black_box(0);
        },
        "exit" => {
            // The control case: answer, then end cleanly.
            if let Some((n, owes)) = owed {
                let _ = owes.send_pong(n);
            }
            ctx.exit(ExitStatus::Success)
        }
        other => {
            sip_runtime::warn!(ctx, "unknown fault '{other}' (panic|overflow|quota|spin|drop|exit)");
            ctx.exit(ExitStatus::Failure(2));
        }
    }
}

/// Unbounded recursion with a frame the optimiser cannot remove.
fn recurse(n: u64) -> u64 {
    let frame = black_box([n; 64]);
    if black_box(n) == 0 { frame[0] } else { recurse(n + 1) + frame[63] }
}

fn restarting(ctx: SipContext) {
    sip_runtime::info!(ctx, "up; failing in 10 ms");
    ctx.sleep_ms(10);
    panic!("failing on purpose to be restarted");
}
