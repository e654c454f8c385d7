//! `bench models`: the two kernel thread models of docs/thread-models.md side by side in one boot: thread SIPs
//! (a stack each) and async SIPs (continuations polled by their core's runner), on the same contract and the
//! same work.
//!
//! Rows: yield A->B->A and same-core ping-pong between two thread SIPs, between a thread SIP and an async SIP
//! (mixed), and between two async SIPs; ping-pong with an async echo that makes a blocking yield before every
//! answer, so that its runner is switched out inside the poll and hands the core's tasks over (what preempting
//! a continuation costs, besides the timer's interrupt that threads pay too); the memory each blocked SIP costs
//! in each model (kernel records, stacks, heaps, its half of a channel). `bench models capacity` spawns blocked
//! SIPs of each model until memory runs out.
//!
//! Async SIPs report their own figures over an Echo channel to the bench: three pings carrying the median, the
//! minimum and the maximum.

use super::{Figures, ROUNDS, figures, measure, round_trips, row};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use contracts::echo::{self, client, server, state};
use sip_runtime::{MemoryInfo, SipContext, SipId, SpawnError};

/// Round trips (or yields) per round.
const ITERATIONS: u64 = 200;

/// Blocked SIPs of each model spawned for the memory rows.
const MEMORY_SIPS: usize = 200;

/// The async pinger: its Echo client to the server, and its Echo client to the bench for the report.
pub type PingJob = (echo::Client<state::Ready>, echo::Client<state::Ready>);

pub fn models(ctx: &SipContext) {
    let abi = ctx.abi();
    let here = Some(abi.current_core());
    let unit =
        if abi.cycles_are_instructions() { "guest instructions (-icount)" } else { "TSC cycles under emulation" };
    let _ = ctx.print(format_args!("bench models: unit = {unit}; {ROUNDS} rounds each\n"));
    let _ = ctx.print(format_args!(
        "{:<30} {:>10} {:>10} {:>10} {:>8}  {:>10}\n",
        "operation", "median", "min", "max", "iters", "target"
    ));
    match ctx.spawn("bench-partner", "", here) {
        Ok(partner) => {
            ctx.yield_now();
            let round_trip = measure(ctx, ITERATIONS, || ctx.yield_now());
            let _ = ctx.kill(partner);
            row(ctx, "yield A->B->A, threads", &round_trip, ITERATIONS, "-");
        }
        Err(e) => say(ctx, format!("cannot start the yield partner: {e}")),
    }
    match async_yields(ctx) {
        Ok(f) => row(ctx, "yield A->B->A, async", &f, ITERATIONS, "-"),
        Err(e) => say(ctx, e),
    }
    for (label, server) in [("ping-pong, threads", "echo"), ("ping-pong, thread->async", "echo-async")] {
        match thread_ping_pong(ctx, server, "") {
            Ok(f) => row(ctx, label, &f, ITERATIONS, if server == "echo" { "<= 500" } else { "-" }),
            Err(e) => say(ctx, e),
        }
    }
    match async_ping_pong(ctx, "") {
        Ok(f) => row(ctx, "ping-pong, async", &f, ITERATIONS, "<= 300"),
        Err(e) => say(ctx, e),
    }
    match async_ping_pong(ctx, "hand-over") {
        Ok(f) => row(ctx, "ping-pong, async, hand-over", &f, ITERATIONS, "-"),
        Err(e) => say(ctx, e),
    }
    for (label, service, target) in
        [("bytes per blocked SIP, thread", "echo", "-"), ("bytes per blocked SIP, async", "echo-async", "<= 2,048")]
    {
        match bytes_per_blocked_sip(ctx, service, MEMORY_SIPS) {
            Ok(bytes) => {
                let f = Figures { median: bytes, min: bytes, max: bytes };
                row(ctx, label, &f, MEMORY_SIPS as u64, target);
            }
            Err(e) => say(ctx, e),
        }
    }
}

fn say(ctx: &SipContext, text: String) {
    let _ = ctx.print(format_args!("bench models: {text}\n"));
}

/// Ping-pong from this thread SIP to `server` (a thread or an async echo) on this core.
fn thread_ping_pong(ctx: &SipContext, server: &str, args: &str) -> Result<Figures, String> {
    let (client, end) = echo::channel();
    let id = ctx
        .spawn_with(server, args, Some(ctx.abi().current_core()), end)
        .map_err(|(e, _)| format!("cannot start {server}: {e}"))?;
    let figures = round_trips(ctx, client, ITERATIONS);
    let _ = ctx.wait(id);
    figures.ok_or_else(|| format!("{server} closed the channel during the ping-pong"))
}

/// Ping-pong between two async SIPs on this core: `bench-async-ping` and `echo-async` (with `echo_args`).
fn async_ping_pong(ctx: &SipContext, echo_args: &str) -> Result<Figures, String> {
    let here = Some(ctx.abi().current_core());
    let (client, end) = echo::channel();
    let echo_sip =
        ctx.spawn_with("echo-async", echo_args, here, end).map_err(|(e, _)| format!("cannot start echo-async: {e}"))?;
    let (report, report_end) = echo::channel();
    let pinger = ctx
        .spawn_with("bench-async-ping", "", here, (client, report))
        .map_err(|(e, _)| format!("cannot start bench-async-ping: {e}"))?;
    let figures = receive_report(report_end);
    let _ = ctx.wait(pinger);
    let _ = ctx.wait(echo_sip);
    figures.ok_or_else(|| String::from("the async ping-pong did not report"))
}

/// Yields between two async SIPs on this core: `bench-async-yield report` measures, `bench-async-yield`
/// yields alongside it.
fn async_yields(ctx: &SipContext) -> Result<Figures, String> {
    let here = Some(ctx.abi().current_core());
    let partner =
        ctx.spawn("bench-async-yield", "", here).map_err(|e| format!("cannot start the async yield partner: {e}"))?;
    let (report, report_end) = echo::channel();
    let measured = ctx.spawn_with("bench-async-yield", "report", here, report);
    let figures = match measured {
        Ok(id) => {
            let figures = receive_report(report_end);
            let _ = ctx.wait(id);
            figures.ok_or_else(|| String::from("the async yields did not report"))
        }
        Err((e, _)) => Err(format!("cannot start the async yielder: {e}")),
    };
    let _ = ctx.kill(partner);
    figures
}

/// The figures an async SIP reports: three pings (median, minimum, maximum), each answered.
fn receive_report(mut end: echo::Server<state::Ready>) -> Option<Figures> {
    let mut values = [0u64; 3];
    for value in &mut values {
        match end.recv().ok()? {
            server::Ready::Ping(n, owes) => {
                *value = n;
                end = owes.send_pong(n).ok()?;
            }
            _ => return None,
        }
    }
    Some(Figures { median: values[0], min: values[1], max: values[2] })
}

/// Sends `figures` as [`receive_report`] takes them, then `Bye`.
pub async fn report(mut to: echo::Client<state::Ready>, figures: &Figures) {
    for value in [figures.median, figures.min, figures.max] {
        let Ok(sent) = to.send_ping(value) else { return };
        match sent.recv_async().await {
            Ok(client::PingSent::Pong(_, ready)) => to = ready,
            Err(_) => return,
        }
    }
    if let Ok(done) = to.send_bye() {
        done.close();
    }
}

/// `bench-async-ping`: round trips to the echo on its job's first channel, measured as `measure` does, reported
/// on the second.
pub async fn async_ping(ctx: SipContext) {
    let Some((mut echo, to_bench)) = ctx.take_startup::<PingJob>() else {
        return sip_runtime::warn!(ctx, "bench-async-ping needs its two Echo clients");
    };
    let mut per_op = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = ctx.cycles();
        for i in 0..ITERATIONS {
            let Ok(sent) = echo.send_ping(i) else { return };
            match sent.recv_async().await {
                Ok(client::PingSent::Pong(_, ready)) => echo = ready,
                Err(_) => return,
            }
        }
        per_op.push((ctx.cycles() - start) / ITERATIONS);
    }
    if let Ok(done) = echo.send_bye() {
        done.close();
    }
    report(to_bench, &figures(per_op)).await;
}

/// `bench-async-yield [report]`: yields for ever, or (`report`, with an Echo client to the bench) measures its
/// yields as `measure` does and reports them.
pub async fn async_yield(ctx: SipContext) {
    let Some(to_bench) = ctx.take_startup::<echo::Client<state::Ready>>() else {
        loop {
            ctx.yield_async().await;
        }
    };
    let mut per_op = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = ctx.cycles();
        for _ in 0..ITERATIONS {
            ctx.yield_async().await;
        }
        per_op.push((ctx.cycles() - start) / ITERATIONS);
    }
    report(to_bench, &figures(per_op)).await;
}

/// The memory `count` SIPs of `service` (an echo, spawned with an Echo server end and left waiting for a
/// request) cost, per SIP: kernel-heap, exchange-heap and (async) small-heap bytes in use, plus every frame
/// taken outside those heaps (stacks, arenas, page tables).
fn bytes_per_blocked_sip(ctx: &SipContext, service: &str, count: usize) -> Result<u64, String> {
    let before = ctx.memory();
    let mut spawned: Vec<(SipId, echo::Client<state::Ready>)> = Vec::with_capacity(count);
    let mut failure = None;
    for i in 0..count {
        match spawn_blocked(ctx, service) {
            Ok(pair) => spawned.push(pair),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        // Let the new ones take their startup values (until then, each is charged to this SIP's exchange quota).
        if i % 16 == 15 {
            ctx.yield_now();
        }
    }
    // Let each one run to its first receive and wait there.
    ctx.yield_now();
    let after = ctx.memory();
    let small: usize = if service == "echo-async" {
        spawned
            .iter()
            .filter_map(|(id, _)| ctx.abi().process_after(Some(SipId(id.0 - 1))).filter(|p| p.id == *id))
            .map(|p| p.heap_used)
            .sum()
    } else {
        0
    };
    let n = spawned.len() as u64;
    end_all(ctx, spawned);
    if let Some(e) = failure {
        return Err(format!("{service}: spawn {} failed: {e}", n + 1));
    }
    let bytes = memory_used(&before, &after, service == "echo-async", small as u64);
    let per = |a: u64, b: u64| b.saturating_sub(a) / n.max(1);
    let _ = ctx.print(format_args!(
        "  of which: kernel heap {}, exchange heap {}, small heap {}, other frames {}\n",
        per(before.kernel_heap_used as u64, after.kernel_heap_used as u64),
        per(before.exchange_used as u64, after.exchange_used as u64),
        small as u64 / n.max(1),
        per(0, memory_used(&before, &after, service == "echo-async", 0))
            .saturating_sub(per(before.kernel_heap_used as u64, after.kernel_heap_used as u64))
            .saturating_sub(per(before.exchange_used as u64, after.exchange_used as u64)),
    ));
    Ok(bytes / n.max(1))
}

/// Bytes taken between `before` and `after`: heap bytes in use where heaps grew (their slack is not use), every
/// other frame whole. An async SIP's small-heap bytes (`small`) are counted by use, and the frames the small
/// heaps mapped are left out (`async_sips`: they are the only ones that grew them).
fn memory_used(before: &MemoryInfo, after: &MemoryInfo, async_sips: bool, small: u64) -> u64 {
    let frames = before.frames_free.saturating_sub(after.frames_free) * 4096;
    let heap_frames = after.kernel_heap_mapped.saturating_sub(before.kernel_heap_mapped)
        + after.exchange_mapped.saturating_sub(before.exchange_mapped)
        + if async_sips { after.small_heaps_mapped.saturating_sub(before.small_heaps_mapped) } else { 0 };
    let heap_bytes = (after.kernel_heap_used as u64).saturating_sub(before.kernel_heap_used as u64)
        + (after.exchange_used as u64).saturating_sub(before.exchange_used as u64)
        + small;
    frames.saturating_sub(heap_frames) + heap_bytes
}

/// Spawns `service` with the server end of a new Echo channel (it waits for a request); its id and the client.
fn spawn_blocked(ctx: &SipContext, service: &str) -> Result<(SipId, echo::Client<state::Ready>), SpawnError> {
    let (client, end) = echo::channel();
    ctx.spawn_with(service, "", Some(ctx.abi().current_core()), end).map(|id| (id, client)).map_err(|(e, _)| e)
}

/// Ends the SIPs of [`spawn_blocked`]: a Bye to each, then a wait for each.
fn end_all(ctx: &SipContext, spawned: Vec<(SipId, echo::Client<state::Ready>)>) {
    let ids: Vec<SipId> = spawned
        .into_iter()
        .map(|(id, client)| {
            if let Ok(done) = client.send_bye() {
                done.close();
            }
            id
        })
        .collect();
    for id in ids {
        let _ = ctx.wait(id);
    }
}

/// `bench models capacity`: blocked SIPs of each model (`bench-idle`, a thread parked for ever with the
/// smallest stack a manifest may ask for; `bench-async-idle`, a continuation awaiting for ever) spawned until a
/// spawn fails (or `limit`), then killed. Idle SIPs hold no channel: every byte they take is the model's.
pub fn capacity(ctx: &SipContext) {
    let here = Some(ctx.abi().current_core());
    for (service, limit) in [("bench-idle", 40_000usize), ("bench-async-idle", 400_000)] {
        let before = ctx.memory();
        let mut spawned: Vec<SipId> = Vec::new();
        if spawned.try_reserve_exact(limit).is_err() {
            say(ctx, format!("no room for {limit} ids"));
            return;
        }
        let failure = loop {
            if spawned.len() == limit {
                break None;
            }
            match ctx.spawn(service, "", here) {
                Ok(id) => spawned.push(id),
                Err(e) => break Some(e),
            }
        };
        ctx.yield_now();
        let after = ctx.memory();
        let count = spawned.len();
        let used = memory_used(&before, &after, false, 0);
        for id in spawned {
            let _ = ctx.kill(id);
        }
        let _ = ctx.print(format_args!(
            "bench models capacity: {count} blocked {service} SIPs at once ({}); {} bytes each, {} of {} frames \
             free before\n",
            match failure {
                Some(e) => format!("the next spawn failed: {e}"),
                None => format!("stopped at the limit of {limit}"),
            },
            used / count.max(1) as u64,
            before.frames_free,
            before.frames_total,
        ));
    }
}

/// `bench-async-idle`: awaits for ever (the continuation of `bench models capacity`).
pub async fn async_idle(_: SipContext) {
    core::future::pending::<()>().await
}
