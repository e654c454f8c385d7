//! The fault injector: a SIP that fails on request, in each way a SIP can fail.
//!
//! The argument picks the fault: `panic`, `overflow` (runs off its stack into the guard page: a CPU exception,
//! a page fault, in its own code), `overflow-abi` (recurses to within a few KiB of where it estimates its stack
//! ends, then calls the kernel at every deeper level, the margin shrinking to nothing: kernel code must never
//! run out of stack on a SIP's behalf), `overflow-alloc` (the same descent, allocating and freeing at every
//! level: the allocator runs on the SIP's stack and takes locks), `overflow-tick` (recurses to within a
//! hundred-odd bytes of that estimate, pausing at each level on the way, and spins there: the timer interrupt
//! must not run out of stack either), `quota` (allocates until its heap quota is spent), `spin` (loops forever
//! without yielding: preemption must keep the system alive), `drop` (drops its channel mid-protocol and ends
//! cleanly), `exit` (answers, then ends cleanly: the control case). Each overflow kind must end as "stack
//! overflow", this SIP alone. They estimate their stack's end as a hostile SIP can, in safe Rust: the address
//! of a local of the entry function minus the manifest's `stack_size`. Spawned with an Echo endpoint (the console's
//! `fault` command), it first takes a request, so every fault happens while the peer is owed an answer. The
//! second manifest, `fault-restart`, fails shortly after starting and has a restart policy, so supervision can
//! be observed; the third, `fault-bad-manifest`, is invalid on purpose (heap quota 0), so the kernel's manifest
//! check can be seen refusing it.
//!
//! `fault-async` is the injector as an async SIP (a continuation, docs/thread-models.md): with the arguments
//! `KIND [N]` it answers N pings, awaiting each (N await points), takes one more and then fails in way KIND
//! while owing the answer: `panic`, `overflow` (recursion off its runner's stack), `quota`, `spin` (never
//! awaits again: the timer must take the core's other tasks to another runner), `block` (a blocking call inside
//! a poll, a sleep, then answers), `sleep` (the same with an async sleep, which holds no stack), `names` (every
//! async call of the name service inside the poll, then answers only if each did what it should), `end ID`
//! (awaits the end of SIP ID without a stack, then answers N, or N + 1 if ID was not alive), `wait` (awaits
//! forever, to be killed), `drop`, `exit` (answers and ends).
//!
//! Not here: other CPU exceptions (#DE, #UD, #GP...): safe Rust cannot raise them (division is checked and
//! panics), which is the point of type-based isolation.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use contracts::NameError;
use contracts::echo::{self, server, state};
use core::hint::black_box;
use sip_runtime::{ExitStatus, RestartPolicy, SipContext, SipId, sip};

/// The `fault` manifest's `stack_size`; the overflow kinds estimate where their stack ends from it.
const STACK_SIZE: usize = 32 * 1024;
/// `overflow-abi` and `overflow-alloc` call the kernel or the allocator at every level of their recursion closer
/// than this to their estimated stack end.
const ABI_WINDOW: usize = 4 * 1024;
/// `overflow-tick` pauses at every level of its recursion closer than this to its estimated stack end...
const TICK_WINDOW: usize = 1024;
/// ... for about this long (a few timer ticks at 100 Hz), so that some tick lands at each depth...
const TICK_PAUSE_NANOS: u64 = 30_000_000;
/// ... and spins for good at the first level closer than this. The frames above the entry function (thread
/// start, runtime) take about 400 bytes today, so this level lies below the end of the manifest's stack.
const TICK_MARGIN: usize = 128;

sip! {
    name: "fault",
    entry: main,
    exports: [],
    imports: [],
    heap_quota: 256 * 1024,
    stack_size: STACK_SIZE,
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

sip! {
    name: "fault-async",
    entry: async fault_async,
    exports: ["ServiceProvider"],
    imports: ["NameService"],
    heap_quota: 64 * 1024,
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
    // Where this stack ends, as far as safe code can tell: the entry function's frame lies a few hundred bytes
    // below the top of the stack, so the true end of the manifest's stack is a little above this estimate.
    let stack_end = (&owed as *const _ as usize).saturating_sub(STACK_SIZE);
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
        "overflow-abi" => {
            // Enter the kernel: a plain ABI call, a yield into the scheduler, a log line through its logger.
            let depth = descend_doing(stack_end, black_box(1), &mut |left| {
                black_box(ctx.now_nanos());
                ctx.yield_now();
                sip_runtime::debug!(ctx, "{left} bytes above the estimated stack end");
            });
            sip_runtime::info!(ctx, "recursion returned {depth}: the guard page was not hit");
        }
        "overflow-alloc" => {
            // Allocate and free: the allocator runs on this stack in SIP mode and takes the arena's locks.
            let depth = descend_doing(stack_end, black_box(1), &mut |left| {
                drop(black_box(alloc::vec![left; 16]));
            });
            sip_runtime::info!(ctx, "recursion returned {depth}: the guard page was not hit");
        }
        "overflow-tick" => {
            let spins = spins_per(&ctx, TICK_PAUSE_NANOS);
            let depth = descend_and_spin(stack_end, spins, black_box(1));
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
            sip_runtime::warn!(
                ctx,
                "unknown fault '{other}' \
                 (panic|overflow|overflow-abi|overflow-alloc|overflow-tick|quota|spin|drop|exit)"
            );
            ctx.exit(ExitStatus::Failure(2));
        }
    }
}

/// Unbounded recursion with a frame the optimiser cannot remove.
fn recurse(n: u64) -> u64 {
    let frame = black_box([n; 64]);
    if black_box(n) == 0 { frame[0] } else { recurse(n + 1) + frame[63] }
}

/// Recursion that, once closer than [`ABI_WINDOW`] to `stack_end`, does `act` at every level (passing the bytes
/// left above `stack_end`), with less and less stack left, down to none; it never returns on its own.
fn descend_doing(stack_end: usize, n: u64, act: &mut dyn FnMut(usize)) -> u64 {
    let frame = black_box([n; 8]);
    let here = &frame as *const _ as usize;
    if here < stack_end.saturating_add(ABI_WINDOW) {
        act(here.saturating_sub(stack_end));
    }
    if black_box(n) == 0 { frame[0] } else { descend_doing(stack_end, n + 1, act) + frame[7] }
}

/// Recursion that pauses (spinning, `spins` iterations) at every level closer than [`TICK_WINDOW`] to
/// `stack_end`, and spins forever at the first level closer than [`TICK_MARGIN`]: only an interrupt, arriving
/// on what is left of the stack, can end it.
fn descend_and_spin(stack_end: usize, spins: u64, n: u64) -> u64 {
    let frame = black_box([n; 8]);
    let here = &frame as *const _ as usize;
    if here < stack_end.saturating_add(TICK_MARGIN) {
        loop {
            black_box(&frame);
        }
    }
    if here < stack_end.saturating_add(TICK_WINDOW) {
        for i in 0..spins {
            black_box(i);
        }
    }
    if black_box(n) == 0 { frame[0] } else { descend_and_spin(stack_end, spins, n + 1) + frame[7] }
}

/// How many iterations of an empty `black_box` loop take about `nanos` here (measured, as the speed of an
/// emulated CPU is anyone's guess).
fn spins_per(ctx: &SipContext, nanos: u64) -> u64 {
    const PROBE: u64 = 100_000;
    let start = ctx.now_nanos();
    for i in 0..PROBE {
        black_box(i);
    }
    let took = ctx.now_nanos().saturating_sub(start).max(1);
    PROBE.saturating_mul(nanos) / took
}

/// `fault-async KIND [N]` (see the crate docs).
async fn fault_async(ctx: SipContext) {
    let mut args = ctx.args().split_whitespace();
    let kind = args.next().unwrap_or_default();
    let after: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let other = SipId(args.next().and_then(|id| id.parse().ok()).unwrap_or(0));
    let Some(mut ready) = ctx.take_startup::<echo::Server<state::Ready>>() else {
        return sip_runtime::warn!(ctx, "fault-async needs an Echo endpoint to fail on");
    };
    for _ in 0..after {
        let Ok(server::Ready::Ping(n, owes)) = ready.recv_async().await else { return };
        let Ok(next) = owes.send_pong(n) else { return };
        ready = next;
    }
    let Ok(server::Ready::Ping(n, owes)) = ready.recv_async().await else { return };
    match kind {
        "panic" => panic!("requested panic after {after} awaits"),
        "overflow" => {
            let depth = recurse(black_box(1));
            sip_runtime::info!(ctx, "recursion returned {depth}: the guard page was not hit");
        }
        "quota" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(black_box(alloc::vec![0xa5; 4 * 1024]));
            }
        }
        "spin" => loop {
            black_box(0);
        },
        "block" => {
            ctx.sleep_ms(20);
            let _ = owes.send_pong(n);
        }
        // Not a fault: the control case of `block`, a sleep that holds no stack.
        "sleep" => {
            ctx.sleep_async(20).await;
            let _ = owes.send_pong(n);
        }
        // Not a fault either: the name service asked without a stack; a wrong answer leaves the ping unanswered.
        "names" => match ask_the_name_service(&ctx).await {
            Ok(()) => drop(owes.send_pong(n)),
            Err(e) => sip_runtime::warn!(ctx, "the name service's async calls: {e}"),
        },
        "end" => {
            let gone_before = ctx.wait_async(other).await.is_err();
            drop(owes.send_pong(n + u64::from(gone_before)));
        }
        "wait" => core::future::pending::<()>().await,
        "drop" => drop(owes),
        "exit" => {
            let _ = owes.send_pong(n);
            ctx.exit(ExitStatus::Success)
        }
        other => {
            sip_runtime::warn!(
                ctx,
                "unknown fault '{other}' (panic|overflow|quota|spin|block|sleep|names|end|wait|drop|exit)"
            );
            ctx.exit(ExitStatus::Failure(2));
        }
    }
}

/// Binds a name of this SIP's, finds it listed, looks up a name nobody bound (not its own: the name service
/// waits for a provider's answer to a lookup, and this SIP would be awaiting the lookup), unbinds the name and
/// finds it gone: every async call of the name service, each answer checked.
async fn ask_the_name_service(ctx: &SipContext) -> Result<(), String> {
    let name = format!("fault-async-{}", ctx.id().0);
    let listed = |listing: &str| listing.lines().any(|line| line.split_whitespace().next() == Some(name.as_str()));
    let provider = ctx.bind_async(&name, "Echo").await.map_err(|e| format!("bind: {e}"))?;
    if !listed(&ctx.names_async().await.map_err(|e| format!("names: {e}"))?) {
        return Err(format!("{name} bound but not listed"));
    }
    let (_client, server) = echo::channel();
    match ctx.lookup_async("fault-async-nobody", server).await {
        Err(NameError::NotFound) => {}
        other => return Err(format!("lookup of a name nobody bound: {other:?}")),
    }
    ctx.unbind_async(&name).await.map_err(|e| format!("unbind: {e}"))?;
    if listed(&ctx.names_async().await.map_err(|e| format!("names: {e}"))?) {
        return Err(format!("{name} still listed after unbind"));
    }
    drop(provider);
    Ok(())
}

fn restarting(ctx: SipContext) {
    sip_runtime::info!(ctx, "up; failing in 10 ms");
    ctx.sleep_ms(10);
    panic!("failing on purpose to be restarted");
}
