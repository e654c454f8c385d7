//! The in-OS benchmark driver, behind the shell's `bench`: the operations of Singularity's Table 1, measured in
//! one boot with the cycle counter, as median and spread over many rounds.
//!
//! Operations: a kernel ABI call; a thread yield with nobody else ready; a yield round trip A→B→A between two
//! SIPs; a message round trip (Echo contract, Ping → Pong) with an echo SIP on the same core, also with a third
//! thread ready on the core and with a peer slow enough that every receive parks; with more than one core, the
//! same round trip with the echo SIP on another core and a message to all cores with their acknowledgements;
//! binding and unbinding a name; SIP create + exit. Besides: `bench capacity` (how many idle SIPs fit in memory
//! and the kernel memory each costs), `bench kills` (SIPs killed mid-message leave the exchange heap as it
//! was), `bench throughput` (one pair of SIPs per core, on one core and then on two at once) and `bench models`
//! (thread SIPs against async SIPs, the two kernel thread models: thread_models.rs).
//!
//! Under the runner's `--icount` the counter is the guest instruction count (deterministic across boots);
//! otherwise it is the TSC under emulation, inflated and noisy: compare ratios within one run. With `--icount`
//! and more than one core, QEMU runs the virtual CPUs in turn on one host thread, so the cross-core rows then
//! measure that interleaving, not cores working in parallel (docs/benchmarks.md).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use channels::Exchangeable;
use contracts::echo::{self, client};
use contracts::service_provider;
use core::hint::black_box;
use sip_runtime::{Broadcast, Capability, ExitStatus, ProbeReport, Protection, RestartPolicy, SipContext, SipId, sip};

mod thread_models;

sip! {
    name: "bench",
    entry: main,
    exports: [],
    imports: ["Echo", "NameService"],
    heap_quota: 4 << 20,
    stack_size: 64 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [Capability::ProcessControl, Capability::SystemInfo, Capability::Console],
    exchange_quota: 4 << 20,
}

// Yields a given number of times: the partner for the A->B->A measurement.
sip! {
    name: "bench-partner",
    entry: partner,
    exports: [],
    imports: [],
    heap_quota: 16 * 1024,
    stack_size: 16 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

// Does nothing: the SIP of the create+exit measurement.
sip! {
    name: "bench-null",
    entry: null,
    exports: [],
    imports: [],
    heap_quota: 16 * 1024,
    stack_size: 8 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

// Parks forever without allocating: the SIP of the capacity measurement.
sip! {
    name: "bench-idle",
    entry: idle,
    exports: [],
    imports: [],
    heap_quota: 16 * 1024,
    stack_size: 8 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

// Ping-pongs with an echo SIP of its own core: one pair of the throughput measurement (`bench throughput`).
sip! {
    name: "bench-pump",
    entry: pump,
    exports: [],
    imports: ["Echo"],
    heap_quota: 64 * 1024,
    stack_size: 16 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [Capability::ProcessControl],
}

// A SIP with several threads: `N [hold|panic]` starts N worker threads, each serving an Echo channel, and
// pings each; `hold` then keeps them all alive (for `ps` and `kill`), `panic` makes one worker panic. It asks
// for up to 8 threads (its own and 7 workers); a worker beyond that is refused (`TooManyThreads`).
sip! {
    name: "bench-threads",
    entry: threads,
    exports: ["Echo"],
    imports: ["Echo"],
    heap_quota: 256 * 1024,
    stack_size: 16 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
    threads: 8,
}

// Binds a run of names at an agreed moment, reports how many it won, and holds them: one per core in the
// name-agreement test (`spawn bench-binder --core N PREFIX COUNT START_MS`).
sip! {
    name: "bench-binder",
    entry: binder,
    exports: ["ServiceProvider"],
    imports: ["NameService"],
    heap_quota: 64 * 1024,
    stack_size: 16 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

// Sends text to an echo SIP and reads it back, forever: the victim of `bench kills`.
sip! {
    name: "bench-flood",
    entry: flood,
    exports: [],
    imports: ["Echo"],
    heap_quota: 64 * 1024,
    stack_size: 16 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

// Round trips to an echo, as an async SIP, reporting to the bench: `bench models` (thread_models.rs).
sip! {
    name: "bench-async-ping",
    entry: async thread_models::async_ping,
    exports: [],
    imports: ["Echo"],
    heap_quota: 16 * 1024,
    stack_size: 16 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

// Awaits for ever: the continuation of `bench models capacity` (thread_models.rs).
sip! {
    name: "bench-async-idle",
    entry: async thread_models::async_idle,
    exports: [],
    imports: [],
    heap_quota: 4 * 1024,
    stack_size: 8 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

// Yields as an async SIP, for ever or measuring: `bench models` (thread_models.rs).
sip! {
    name: "bench-async-yield",
    entry: async thread_models::async_yield,
    exports: [],
    imports: ["Echo"],
    heap_quota: 16 * 1024,
    stack_size: 16 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

/// Rounds per operation; the median and extremes are taken over them.
const ROUNDS: usize = 21;

/// Median, minimum and maximum of per-operation costs over the rounds.
struct Figures {
    median: u64,
    min: u64,
    max: u64,
}

fn figures(mut per_op: Vec<u64>) -> Figures {
    per_op.sort_unstable();
    Figures { median: per_op[per_op.len() / 2], min: per_op[0], max: per_op[per_op.len() - 1] }
}

/// Runs `op` `iterations` times per round and returns the per-operation cost of each round.
fn measure(ctx: &SipContext, iterations: u64, mut op: impl FnMut()) -> Figures {
    let mut per_op = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = ctx.cycles();
        for _ in 0..iterations {
            op();
        }
        per_op.push((ctx.cycles() - start) / iterations);
    }
    figures(per_op)
}

fn row(ctx: &SipContext, name: &str, f: &Figures, iterations: u64, singularity: &str) {
    let _ = ctx.print(format_args!(
        "{name:<30} {:>10} {:>10} {:>10} {:>8}  {singularity:>10}\n",
        f.median, f.min, f.max, iterations
    ));
}

fn main(ctx: SipContext) {
    match ctx.args() {
        "" | "all" => table(&ctx),
        "capacity" => capacity(&ctx),
        "kills" => kills(&ctx),
        "throughput" => throughput(&ctx),
        "protection" => protection(&ctx),
        "scale" => scale(&ctx),
        "models" => thread_models::models(&ctx),
        "models capacity" => thread_models::capacity(&ctx),
        other => {
            let _ = ctx.print(format_args!(
                "bench: unknown argument '{other}' \
                 (use: bench [capacity|kills|throughput|protection|scale|models|models capacity])\n"
            ));
            ctx.exit(ExitStatus::Failure(2));
        }
    }
}

fn table(ctx: &SipContext) {
    let unit = if ctx.abi().cycles_are_instructions() {
        "guest instructions (QEMU -icount: deterministic)"
    } else {
        "TSC cycles under emulation (inflated, noisy: compare ratios within this run)"
    };
    let _ = ctx.print(format_args!("bench: unit = {unit}; {ROUNDS} rounds each\n"));
    let _ = ctx.print(format_args!(
        "{:<30} {:>10} {:>10} {:>10} {:>8}  {:>10}\n",
        "operation", "median", "min", "max", "iters", "Sing.2007"
    ));
    let abi = ctx.abi();
    let call = measure(ctx, 1000, || {
        black_box(abi.current_core());
    });
    row(ctx, "ABI call", &call, 1000, "80");

    let alone = measure(ctx, 1000, || ctx.yield_now());
    row(ctx, "thread yield (alone)", &alone, 1000, "-");

    let here = Some(abi.current_core());
    let iterations = 500;
    match ctx.spawn("bench-partner", "", here) {
        Ok(partner) => {
            // Let the partner start and begin yielding; then every yield of ours is A->B->A.
            ctx.yield_now();
            let round_trip = measure(ctx, iterations, || ctx.yield_now());
            let _ = ctx.kill(partner);
            row(ctx, "thread yield A->B->A", &round_trip, iterations, "2 x 365");
        }
        Err(e) => {
            let _ = ctx.print(format_args!("bench: cannot start the yield partner: {e}\n"));
        }
    }

    let core = abi.current_core();
    ping_pong(ctx, "", core, "message ping-pong (same core)", "1,040");
    // The same with a third thread ready on the core: a receive's polls yield to it too.
    match ctx.spawn("bench-partner", "", here) {
        Ok(partner) => {
            ping_pong(ctx, "", core, "ping-pong, third thread ready", "-");
            let _ = ctx.kill(partner);
        }
        Err(e) => {
            let _ = ctx.print(format_args!("bench: cannot start the third thread: {e}\n"));
        }
    }
    // And with a peer slow enough that every receive parks and is woken.
    ping_pong(ctx, SLOW_ECHO, core, "ping-pong, receiver parks", "-");
    if let Some(other) = other_core(ctx) {
        ping_pong(ctx, "", other, "message ping-pong (cross core)", "-");
        for (scheme, label) in [
            (Broadcast::OneByOne, "message to all cores + acks (one by one)"),
            (Broadcast::Tree, "message to all cores + acks (tree)"),
        ] {
            let probe = measure(ctx, 20, || {
                black_box(abi.broadcast_probe(scheme));
            });
            row(ctx, label, &probe, 20, "-");
        }
    }
    name_binding(ctx);

    let creates = 20;
    let create = measure(ctx, creates, || match ctx.spawn("bench-null", "", here) {
        Ok(id) => {
            let _ = ctx.wait(id);
        }
        Err(e) => sip_runtime::warn!(ctx, "spawn failed: {e}"),
    });
    row(ctx, "SIP create + exit", &create, creates, "388,000");
}

/// Another running core than the caller's, if there is one.
fn other_core(ctx: &SipContext) -> Option<u32> {
    let abi = ctx.abi();
    let me = abi.current_core();
    (0..).map_while(|i| abi.cpu(i)).find(|cpu| cpu.online && cpu.index != me).map(|cpu| cpu.index)
}

/// Message round trips over an Echo channel to an echo SIP (spawned with `echo_args`) on `core`: Ping out, Pong
/// back.
fn ping_pong(ctx: &SipContext, echo_args: &str, core: u32, label: &str, singularity: &str) {
    let (client, server) = echo::channel();
    let echo_sip = match ctx.spawn_with("echo", echo_args, Some(core), server) {
        Ok(id) => id,
        Err((e, _)) => {
            let _ = ctx.print(format_args!("bench: cannot start the echo SIP: {e}\n"));
            return;
        }
    };
    let iterations = 200;
    let round_trip = round_trips(ctx, client, iterations);
    let _ = ctx.wait(echo_sip);
    match round_trip {
        Some(round_trip) => row(ctx, label, &round_trip, iterations, singularity),
        None => {
            let _ = ctx.print(format_args!("bench: the echo SIP closed the channel during the ping-pong\n"));
        }
    }
}

/// `iterations` Ping/Pong round trips per round over `client`, then `Bye`; `None` if the echo SIP went away.
fn round_trips(ctx: &SipContext, client: echo::Client<echo::state::Ready>, iterations: u64) -> Option<Figures> {
    let mut endpoint = Some(client);
    let mut failed = false;
    let figures = measure(ctx, iterations, || {
        let Some(ready) = endpoint.take() else { return };
        match ready.send_ping_and_recv(7) {
            Ok(client::PingSent::Pong(_, ready)) => endpoint = Some(ready),
            _ => failed = true,
        }
    });
    if let Some(ready) = endpoint
        && let Ok(done) = ready.send_bye()
    {
        done.close();
    }
    (!failed).then_some(figures)
}

/// Binding a name and removing it again through the name service (each call a fresh connection: the ABI call,
/// the kernel's hand-over to the `names` SIP, one request, quit).
fn name_binding(ctx: &SipContext) {
    match bind_unbind(ctx) {
        Ok(cost) => row(ctx, "name bind + unbind", &cost, BINDS, "-"),
        Err(e) => {
            let _ = ctx.print(format_args!("bench: name bind + unbind failed: {e}\n"));
        }
    }
}

/// Bind + unbind pairs per round.
const BINDS: u64 = 20;

/// What one bind + unbind of a name costs, or the first failure.
fn bind_unbind(ctx: &SipContext) -> Result<Figures, contracts::NameError> {
    const NAME: &str = "bench/name";
    let mut failed = None;
    let cost = measure(ctx, BINDS, || {
        let outcome = ctx.bind(NAME, "Echo").and_then(|_provider| ctx.unbind(NAME));
        if let Err(e) = outcome {
            failed = Some(e);
        }
    });
    failed.map_or(Ok(cost), Err)
}

/// Probes of every core in `bench scale`.
const SCALE_PROBES: usize = 41;

/// `bench scale`: the figures of this boot's width, one `scale` line of `key=value` pairs that the runner's
/// `bench-plot` gathers from boots at several widths (docs/multikernel.md): cores online; the time the boot
/// core spent bringing them online; memory in use (the plot takes memory per core from the difference to the
/// one-core boot); a replicated update reaching every core and confirmed, one by one and along the tree, as
/// cycles (median/min/max), messages in all, and messages on the busiest core (medians); a name bind + unbind
/// (median/min/max). `-` where a figure does not exist (one core has nobody to update) or failed.
fn scale(ctx: &SipContext) {
    let abi = ctx.abi();
    let unit = if abi.cycles_are_instructions() { "instructions" } else { "tsc" };
    let cpus: Vec<_> = (0..).map_while(|i| abi.cpu(i)).collect();
    let online = cpus.iter().filter(|c| c.online).count();
    let start_nanos: u64 = cpus.iter().map(|c| c.start_nanos).sum();
    let spread = |f: Figures| alloc::format!("{}/{}/{}", f.median, f.min, f.max);
    let update = |scheme| {
        let reports: Option<Vec<_>> = (0..SCALE_PROBES).map(|_| abi.broadcast_probe(scheme)).collect();
        let reports = reports.filter(|r| !r.is_empty());
        let Some(reports) = reports else { return ["-".into(), "-".into(), "-".into()] };
        let median = |pick: fn(&ProbeReport) -> u64| figures(reports.iter().map(pick).collect()).median;
        [
            spread(figures(reports.iter().map(|r| r.cycles).collect())),
            alloc::format!("{}", median(|r| r.messages)),
            alloc::format!("{}", median(|r| r.busiest)),
        ]
    };
    let [one_by_one, one_by_one_messages, one_by_one_busiest] = update(Broadcast::OneByOne);
    let [tree, tree_messages, tree_busiest] = update(Broadcast::Tree);
    let bind = bind_unbind(ctx).map_or_else(|_| "-".into(), spread);
    // After the probes: the lanes they needed are made, as on a machine in use.
    let memory = ctx.memory();
    let used_kib = (memory.frames_total - memory.frames_free) * 4;
    let _ = ctx.print(format_args!(
        "bench scale: cycles as median/min/max ({SCALE_PROBES} probes; bind + unbind {ROUNDS} rounds of \
         {BINDS}); unit={unit}\n\
         scale cores={online} of={} start_ms={}.{:03} used_kib={used_kib} update_one_by_one={one_by_one} \
         messages_one_by_one={one_by_one_messages} busiest_one_by_one={one_by_one_busiest} update_tree={tree} \
         messages_tree={tree_messages} busiest_tree={tree_busiest} bind_unbind={bind}\n",
        cpus.len(),
        start_nanos / 1_000_000,
        start_nanos / 1000 % 1000,
    ));
}

fn capacity(ctx: &SipContext) {
    let before = ctx.memory();
    let mut idle: Vec<SipId> = Vec::new();
    let limit = 20_000;
    let error = loop {
        if idle.len() == limit {
            break None;
        }
        match ctx.spawn("bench-idle", "", None) {
            Ok(id) => idle.push(id),
            Err(e) => break Some(e),
        }
    };
    let after = ctx.memory();
    let count = idle.len() as u64;
    let used_frames = before.frames_free.saturating_sub(after.frames_free);
    let heap = after.kernel_heap_used.saturating_sub(before.kernel_heap_used) as u64;
    let per_sip = (used_frames * 4096 + heap).checked_div(count).unwrap_or(0);
    let _ = ctx.print(format_args!(
        "bench capacity: {count} idle SIPs alive at once ({}); {per_sip} bytes each ({} frames and {} kernel heap \
         bytes in all)\n",
        match error {
            Some(e) => alloc::format!("the next spawn failed: {e}"),
            None => alloc::format!("stopped at the limit of {limit}"),
        },
        used_frames,
        heap
    ));
    for id in idle {
        let _ = ctx.kill(id);
    }
    let end = ctx.memory();
    let _ = ctx.print(format_args!(
        "bench capacity: after killing them, {} frames free (before: {})\n",
        end.frames_free, before.frames_free
    ));
}

fn partner(ctx: SipContext) {
    loop {
        ctx.yield_now();
    }
}

fn null(_: SipContext) {}

/// The echo SIP's arguments for a slow peer: it yields 100 times before each answer, more than a blocking
/// receive's 64 polls (`kernel/src/ipc/blocking.rs`), so the client has parked by the time the answer comes.
const SLOW_ECHO: &str = "yields 100";

/// `PREFIX COUNT START_MS`: at uptime START_MS, binds PREFIX-0 .. PREFIX-(COUNT-1), logs how many it won, then
/// holds them (refusing every connection) until killed.
fn binder(ctx: SipContext) {
    let args: Vec<&str> = ctx.args().split_whitespace().collect();
    let (prefix, count, start) = match args.as_slice() {
        [prefix, count, start] => match (count.parse::<u32>(), start.parse::<u64>()) {
            (Ok(count), Ok(start)) => (*prefix, count, start),
            _ => return sip_runtime::warn!(ctx, "usage: PREFIX COUNT START_MS"),
        },
        _ => return sip_runtime::warn!(ctx, "usage: PREFIX COUNT START_MS"),
    };
    while ctx.now_nanos() < start.saturating_mul(1_000_000) {
        ctx.yield_now();
    }
    let mut held = Vec::new();
    let mut lost = 0;
    for i in 0..count {
        match ctx.bind(&alloc::format!("{prefix}-{i}"), "Echo") {
            Ok(provider) => held.push(provider),
            Err(contracts::NameError::AlreadyBound) => lost += 1,
            Err(e) => return sip_runtime::warn!(ctx, "bind {prefix}-{i} failed: {e}"),
        }
    }
    let core = ctx.abi().current_core();
    sip_runtime::warn!(ctx, "binder on cpu {core}: won {} of {count} ({lost} already bound)", held.len());
    while let Some((_, Ok(service_provider::server::Ready::Connect(end, owes)))) = channels::select_vec(&mut held) {
        match sip_runtime::accept::<()>(end, owes) {
            (_, Ok(provider)) => held.push(provider),
            (_, Err(_)) => return,
        }
    }
}

fn threads(ctx: SipContext) {
    let args: Vec<&str> = ctx.args().split_whitespace().collect();
    let (workers, mode) = match args.as_slice() {
        [n, rest @ ..] => (n.parse::<u64>().unwrap_or(0), rest.first().copied().unwrap_or("")),
        [] => (0, ""),
    };
    let mut clients = Vec::new();
    for worker in 0..workers {
        let (client, server) = echo::channel();
        let panics = mode == "panic" && worker == workers - 1;
        let started = ctx.spawn_thread(move |_ctx| {
            if panics {
                panic!("worker {worker} panics on purpose");
            }
            answer_pings(server);
        });
        if let Err(e) = started {
            return sip_runtime::warn!(ctx, "cannot start worker {worker}: {e}");
        }
        clients.push(Some(client));
    }
    let mut answered = 0;
    for slot in &mut clients {
        for n in 0..100 {
            let Some(ready) = slot.take() else { break };
            match ready.send_ping(n).ok().map(|owed| owed.recv()) {
                Some(Ok(client::PingSent::Pong(m, ready))) if m == n => {
                    *slot = Some(ready);
                    answered += 1;
                }
                _ => break,
            }
        }
    }
    sip_runtime::warn!(ctx, "threads: {workers} workers answered {answered} pings");
    if mode == "hold" {
        loop {
            ctx.sleep_ms(u64::MAX);
        }
    }
}

/// A worker's work: answer pings until the first thread stops sending them (only `Ping`: the echo service is
/// the Echo server; this is one thread's share of a test's load).
fn answer_pings(mut endpoint: echo::Server<echo::state::Ready>) {
    while let Ok(echo::server::Ready::Ping(n, owes)) = endpoint.recv() {
        match owes.send_pong(n) {
            Ok(next) => endpoint = next,
            Err(_) => return,
        }
    }
}

/// Round trips a pump makes in `bench throughput`.
const PUMP_ROUND_TRIPS: u64 = 50_000;

/// Interleaved repetitions of each configuration in `bench throughput`.
const PUMP_REPETITIONS: usize = 5;

/// Message throughput with one pair of SIPs (pump + echo) per core, on one core and then on two at once: the
/// multikernel's scaling claim. The pairs share nothing on the message path because `Ping(u64)` and
/// `Pong(u64)` are plain data: no lock or counter is common to them. A message holding exchange-heap data
/// (an `ExString`, an endpoint) would take the exchange ledger's lock, which every core shares.
fn throughput(ctx: &SipContext) {
    let abi = ctx.abi();
    let online: Vec<u32> = (0..).map_while(|i| abi.cpu(i)).filter(|c| c.online).map(|c| c.index).collect();
    // The last cores: away from core 0's console and services when there are enough.
    let [.., second, last] = online.as_slice() else {
        let _ = ctx.print(format_args!("bench throughput: needs at least 2 cores (run with --smp 2 or more)\n"));
        return;
    };
    // Interleaved repetitions, medians: one run of each is at the mercy of whatever else the host does then.
    let (mut ones, mut twos) = (Vec::new(), Vec::new());
    for _ in 0..PUMP_REPETITIONS {
        let (Some(one), Some(two)) = (run_pumps(ctx, &[*last]), run_pumps(ctx, &[*last, *second])) else { return };
        ones.push(one);
        twos.push(two);
    }
    let (one, two) = (figures(ones), figures(twos));
    let rate = |pairs: u64, nanos: u64| pairs * PUMP_ROUND_TRIPS * 1_000_000_000 / nanos.max(1);
    let (rate_one, rate_two) = (rate(1, one.median), rate(2, two.median));
    let _ = ctx.print(format_args!(
        "bench throughput: {PUMP_ROUND_TRIPS} round trips per pair (same-core pump + echo), median of \
         {PUMP_REPETITIONS} interleaved runs\n\
         1 pair on cpu {last}: {rate_one} round trips/s ({} ms; runs {}-{} ms)\n\
         2 pairs on cpus {last} and {second}: {rate_two} round trips/s ({} ms; runs {}-{} ms)\n\
         scaling 1 -> 2 cores: {}.{:02}x\n",
        one.median / 1_000_000,
        one.min / 1_000_000,
        one.max / 1_000_000,
        two.median / 1_000_000,
        two.min / 1_000_000,
        two.max / 1_000_000,
        rate_two / rate_one.max(1),
        rate_two * 100 / rate_one.max(1) % 100
    ));
}

/// Starts one pump on each of `cores` at once and waits for all; returns the wall-clock nanoseconds.
fn run_pumps(ctx: &SipContext, cores: &[u32]) -> Option<u64> {
    let start = ctx.now_nanos();
    let mut pumps = Vec::new();
    for core in cores {
        match ctx.spawn("bench-pump", &alloc::format!("{PUMP_ROUND_TRIPS}"), Some(*core)) {
            Ok(id) => pumps.push(id),
            Err(e) => {
                let _ = ctx.print(format_args!("bench throughput: cannot start a pump on cpu {core}: {e}\n"));
                return None;
            }
        }
    }
    for id in pumps {
        let _ = ctx.wait(id);
    }
    Some(ctx.now_nanos() - start)
}

fn pump(ctx: SipContext) {
    let Ok(round_trips) = ctx.args().parse::<u64>() else { return };
    let (client, server) = echo::channel();
    let Ok(echo_sip) = ctx.spawn_with("echo", "", Some(ctx.abi().current_core()), server) else { return };
    let mut endpoint = client;
    for i in 0..round_trips {
        match endpoint.send_ping(i).ok().map(|owed| owed.recv()) {
            Some(Ok(client::PingSent::Pong(_, ready))) => endpoint = ready,
            _ => return sip_runtime::warn!(ctx, "the echo SIP went away"),
        }
    }
    if let Ok(done) = endpoint.send_bye() {
        done.close();
    }
    let _ = ctx.wait(echo_sip);
}

fn idle(ctx: SipContext) {
    loop {
        ctx.sleep_ms(u64::MAX);
    }
}

/// Kills pairs of SIPs in the middle of a message flood, at uneven moments, and reports whether the exchange
/// heap comes back to where it was: a message caught between its owner records and a ring must not be lost.
fn kills(ctx: &SipContext) {
    let rounds = 40;
    let mut ran = 0;
    let mut failed = None;
    let before = ctx.memory();
    for round in 0..rounds {
        let (client, server) = echo::channel();
        let echo_sip = match ctx.spawn_with("echo", "", None, server) {
            Ok(id) => id,
            Err((e, _)) => {
                failed = Some(e);
                continue;
            }
        };
        let flood = match ctx.spawn_with("bench-flood", "", None, client) {
            Ok(id) => id,
            Err((e, _)) => {
                failed = Some(e);
                let _ = ctx.kill(echo_sip);
                continue;
            }
        };
        ran += 1;
        // Let the flood run a varying while; the timer tick that wakes us preempts it at an arbitrary
        // instruction, often inside a send or a receive. Then kill one side first, then the other.
        ctx.sleep_ms(1 + round % 5);
        let (first, second) = if round % 2 == 0 { (flood, echo_sip) } else { (echo_sip, flood) };
        let _ = ctx.kill(first);
        let _ = ctx.kill(second);
        let _ = ctx.wait(first);
        let _ = ctx.wait(second);
    }
    let after = ctx.memory();
    if let Some(e) = failed {
        let _ = ctx.print(format_args!("bench kills: {} rounds could not start: {e}\n", rounds - ran));
    }
    let _ = ctx.print(format_args!(
        "bench kills: {ran} of {rounds} rounds ran; exchange heap {} bytes in {} blocks before, {} bytes in {} \
         blocks after\n",
        before.exchange_used, before.exchange_blocks, after.exchange_used, after.exchange_blocks
    ));
}

fn flood(ctx: SipContext) {
    let Some(mut endpoint) = ctx.take_startup::<echo::Client<echo::state::Ready>>() else { return };
    loop {
        let Ok(mut owed) = endpoint.send_say(channels::ExString::from("flooding the channel")) else { return };
        // Poll instead of blocking, so this thread stays runnable and is preempted at arbitrary points.
        endpoint = loop {
            match owed.try_recv() {
                channels::TryRecv::Message(client::SaySent::Echoed(_, ready)) => break ready,
                channels::TryRecv::Empty(again) => owed = again,
                channels::TryRecv::Closed => return,
            }
            ctx.yield_now();
        };
    }
}

/// `bench protection`: the operations that exist in every protection mode today, measured in one boot, one column
/// per mode, then the events per operation that explain the figures. In ring 3 the measuring code is the ring-3
/// image's `bench-ring3` program, which runs the rounds itself and exits with the median (read with
/// `exit_status_of`; it logs min and max at debug level). SIP create + exit is measured here for every mode.
/// Message rows wait for channels in ring 3 (docs/protection.md).
fn protection(ctx: &SipContext) {
    let abi = ctx.abi();
    let here = Some(abi.current_core());
    let unit =
        if abi.cycles_are_instructions() { "guest instructions (-icount)" } else { "TSC cycles under emulation" };
    let _ = ctx.print(format_args!(
        "bench protection: unit = {unit}; {ROUNDS} rounds each; median (min-max), ring 3 in-program: median\n"
    ));
    let _ = ctx.print(format_args!("{:<24} {:>24} {:>24} {:>24}\n", "operation", "type", "ring3", "ring3-own"));
    let modes = [Protection::Ring3, Protection::Ring3Own];
    // Runs `op` and returns its result with the events it caused, per one of its `ops` operations.
    let counted = |ops: u64, op: &mut dyn FnMut() -> String| -> (String, String) {
        let before = abi.events();
        let result = op();
        let after = abi.events();
        let per = |a: u64, b: u64| (b - a) as f64 / ops as f64;
        let events = format!(
            "{:.2}/{:.2}/{:.2}/{:.2}",
            per(before.ring3_entries, after.ring3_entries),
            per(before.cr3_writes, after.cr3_writes),
            per(before.tlb_flushes, after.tlb_flushes),
            per(before.ipis, after.ipis),
        );
        (result, events)
    };
    // A ring-3 row: the median the program exits with.
    let in_ring3 = |mode: Protection, args: &str| -> String {
        let Ok(id) = abi.spawn_protected("bench-ring3", args, here, mode, None) else { return String::from("failed") };
        let _ = abi.wait(id);
        match abi.exit_status_of(id) {
            Some(ExitStatus::Failure(median)) => format!("{}", median as u32),
            _ => String::from("failed"),
        }
    };
    let cell = |f: &Figures| format!("{} ({}-{})", f.median, f.min, f.max);
    let per_run = (ROUNDS * 1000) as u64;
    let mut events: Vec<(&str, [String; 3])> = Vec::new();

    let null = counted(per_run, &mut || {
        cell(&measure(ctx, 1000, || {
            black_box(abi.current_core());
        }))
    });
    let [null3, null3own] = modes.map(|m| counted(per_run, &mut || in_ring3(m, "null 1000")));
    protection_row(ctx, "null call", [null.0, null3.0, null3own.0]);
    events.push(("null call", [null.1, null3.1, null3own.1]));

    let alone = counted(per_run, &mut || cell(&measure(ctx, 1000, || ctx.yield_now())));
    let [yield3, yield3own] = modes.map(|m| counted(per_run, &mut || in_ring3(m, "yield 1000")));
    protection_row(ctx, "thread yield (alone)", [alone.0, yield3.0, yield3own.0]);
    events.push(("thread yield (alone)", [alone.1, yield3.1, yield3own.1]));

    // A yield while a partner SIP in the same mode yields too, on this core: each is a switch there and back.
    let ab = counted(per_run, &mut || match ctx.spawn("bench-partner", "", here) {
        Ok(partner) => {
            ctx.yield_now();
            let figures = cell(&measure(ctx, 1000, || ctx.yield_now()));
            let _ = ctx.kill(partner);
            figures
        }
        Err(_) => String::from("failed"),
    });
    let [ab3, ab3own] = modes.map(|mode| {
        counted(per_run, &mut || match abi.spawn_protected("bench-ring3", "yield-partner", here, mode, None) {
            Ok(partner) => {
                ctx.yield_now();
                let figure = in_ring3(mode, "yield 1000");
                let _ = ctx.kill(partner);
                let _ = abi.wait(partner);
                figure
            }
            Err(_) => String::from("failed"),
        })
    });
    protection_row(ctx, "yield A->B->A (two SIPs)", [ab.0, ab3.0, ab3own.0]);
    events.push(("yield A->B->A", [ab.1, ab3.1, ab3own.1]));

    let rounds = ROUNDS as u64;
    let create = counted(rounds, &mut || {
        cell(&measure(ctx, 1, || {
            if let Ok(id) = ctx.spawn("bench-null", "", here) {
                let _ = ctx.wait(id);
            }
        }))
    });
    let [create3, create3own] = modes.map(|mode| {
        counted(rounds, &mut || {
            cell(&measure(ctx, 1, || {
                if let Ok(id) = abi.spawn_protected("bench-ring3", "exit", here, mode, None) {
                    let _ = abi.wait(id);
                }
            }))
        })
    });
    protection_row(ctx, "SIP create + exit", [create.0, create3.0, create3own.0]);
    events.push(("SIP create + exit", [create.1, create3.1, create3own.1]));

    // Echo round trips: a client and an echo SIP in one mode (the ring-3 client is the image's program), and the
    // mixed pair: this ring-0 SIP as the client of an echo SIP in ring 3.
    let trips = (ROUNDS * PING_PONGS) as u64;
    // The calls of a round trip without the switches: one ring-3 SIP holds both ends of an Echo channel.
    let args = format!("selfloop {PING_PONGS}");
    let [calls3, calls3own] = modes.map(|mode| counted(trips, &mut || in_ring3(mode, &args)));
    protection_row(ctx, "ping-pong (one SIP)", [String::from("-"), calls3.0, calls3own.0]);
    events.push(("ping-pong (one SIP)", [String::from("-"), calls3.1, calls3own.1]));
    let mut cores = alloc::vec![("same core", abi.current_core())];
    cores.extend(other_core(ctx).map(|core| ("cross-core", core)));
    for (place, core) in cores {
        let own = counted(trips, &mut || echo_round_trips(ctx, Protection::Type, core));
        let [own3, own3own] = modes.map(|mode| {
            counted(trips, &mut || {
                let (client, server) = echo::channel();
                let args = format!("pingpong {PING_PONGS}");
                ring3_pair(ctx, mode, ("echo", "", Some(core), server), (&args, here, client))
            })
        });
        let name = format!("ping-pong ({place})");
        protection_row(ctx, &name, [own.0, own3.0, own3own.0]);
        if place == "same core" {
            // The parking variant: an echo that yields 100 times before each answer, so every receive of the
            // client finds nothing, parks and is woken.
            let parks = counted(trips, &mut || echo_round_trips_with(ctx, Protection::Type, core, SLOW_ECHO));
            let [parks3, parks3own] = modes.map(|mode| {
                counted(trips, &mut || {
                    let (client, server) = echo::channel();
                    let args = format!("pingpong {PING_PONGS}");
                    ring3_pair(ctx, mode, ("echo", SLOW_ECHO, Some(core), server), (&args, here, client))
                })
            });
            protection_row(ctx, "ping-pong, receiver parks", [parks.0, parks3.0, parks3own.0]);
            events.push(("ping-pong, receiver parks", [parks.1, parks3.1, parks3own.1]));
        }
        let [mixed3, mixed3own] = modes.map(|mode| counted(trips, &mut || echo_round_trips(ctx, mode, core)));
        let mixed_name = format!("ring 0 -> ring 3 ({place})");
        protection_row(ctx, &mixed_name, [String::from("-"), mixed3.0, mixed3own.0]);
        events.push((
            if place == "same core" { "ping-pong (same core)" } else { "ping-pong (cross-core)" },
            [own.1, own3.1, own3own.1],
        ));
        events.push((
            if place == "same core" { "ring 0 -> ring 3 (same)" } else { "ring 0 -> ring 3 (cross)" },
            [String::from("-"), mixed3.1, mixed3own.1],
        ));
    }

    // The macro workload: 10,000 mixed kv requests (`contracts::mixed_requests`), the client and the store in one
    // mode, and the mixed pair (this ring-0 SIP the client of a ring-3 store); per request, and relative to `type`.
    let ops = KV_OPS as u64;
    let kv_type = counted(ops, &mut || kv_from_here(ctx, Protection::Type, here));
    let [kv3, kv3own] = modes.map(|mode| {
        counted(ops, &mut || {
            let (client, server) = contracts::kv_store::channel();
            ring3_pair(ctx, mode, ("kv", "", here, server), (&format!("kv {KV_OPS}"), here, client))
        })
    });
    protection_row(ctx, "kv workload (per request)", [kv_type.0.clone(), kv3.0.clone(), kv3own.0.clone()]);
    let [mixed3, mixed3own] = modes.map(|mode| counted(ops, &mut || kv_from_here(ctx, mode, here)));
    protection_row(ctx, "kv: ring 0 -> ring 3", [String::from("-"), mixed3.0.clone(), mixed3own.0.clone()]);
    let relative = |cell: &str| match (cell.parse::<f64>(), kv_type.0.parse::<f64>()) {
        (Ok(mode), Ok(base)) if base > 0.0 => format!("{:+.1} %", (mode / base - 1.0) * 100.0),
        _ => String::from("-"),
    };
    protection_row(ctx, "kv workload vs type", [String::from("0 %"), relative(&kv3.0), relative(&kv3own.0)]);
    let _ = ctx.print(format_args!(
        "(Singularity, all SIPs in their own ring-3 domain: WebFiles +37.7 % against type-based isolation)\n"
    ));
    events.push(("kv workload", [kv_type.1, kv3.1, kv3own.1]));
    events.push(("kv: ring 0 -> ring 3", [String::from("-"), mixed3.1, mixed3own.1]));

    let _ = ctx.print(format_args!(
        "events per operation: ring-3 entries / CR3 writes / TLB flushes / IPIs (the ring-3 rows include their \
         program's start and exit, spread over its {per_run} operations)\n"
    ));
    for (name, cells) in events {
        protection_row(ctx, name, cells);
    }
}

/// A ring-3 measurement between two SIPs under `mode`: the service `server.0` with the arguments `server.1` on
/// core `server.2` with the server end `server.3`, and the image's `bench-ring3` with the arguments `client.0` on
/// core `client.1` with the client end `client.2`, whose exit status is the figure; `failed` if either does not
/// start or the program says it could not measure.
fn ring3_pair<S: Exchangeable + Send, C: Exchangeable + Send>(
    ctx: &SipContext,
    mode: Protection,
    server: (&str, &str, Option<u32>, S),
    client: (&str, Option<u32>, C),
) -> String {
    let abi = ctx.abi();
    let Ok(service) = ctx.spawn_protected_with(server.0, server.1, server.2, mode, server.3) else {
        return String::from("failed");
    };
    let figure = match ctx.spawn_protected_with("bench-ring3", client.0, client.1, mode, client.2) {
        Ok(id) => {
            let _ = abi.wait(id);
            match abi.exit_status_of(id) {
                Some(ExitStatus::Failure(figure)) if figure != -1 => format!("{}", figure as u32),
                _ => String::from("failed"),
            }
        }
        Err(_) => String::from("failed"),
    };
    let _ = abi.wait(service);
    figure
}

/// Requests of the `bench protection` macro workload.
const KV_OPS: u32 = 10_000;

/// The macro workload from this SIP (the client, in ring 0) against a kv SIP under `mode` on `core`: cycles per
/// request, measured once over all of them.
fn kv_from_here(ctx: &SipContext, mode: Protection, core: Option<u32>) -> String {
    let (client, server) = contracts::kv_store::channel();
    let Ok(store) = ctx.spawn_protected_with("kv", "", core, mode, server) else { return String::from("failed") };
    let start = ctx.cycles();
    let result = contracts::mixed_requests(client, KV_OPS);
    let per = (ctx.cycles() - start) / u64::from(KV_OPS);
    let answer = match result {
        Ok((0, client)) => {
            if let Ok(done) = client.send_quit() {
                done.close();
            }
            format!("{per}")
        }
        _ => String::from("failed"),
    };
    let _ = ctx.wait(store);
    answer
}

/// Echo round trips per `bench protection` ping-pong round.
const PING_PONGS: usize = 200;

/// Echo round trips from this SIP (the client, in ring 0) to an echo SIP under `mode` on `core`: median (min-max).
fn echo_round_trips(ctx: &SipContext, mode: Protection, core: u32) -> String {
    echo_round_trips_with(ctx, mode, core, "")
}

/// [`echo_round_trips`] with the echo SIP's arguments `args` (`yields N`: a slow echo).
fn echo_round_trips_with(ctx: &SipContext, mode: Protection, core: u32, args: &str) -> String {
    let (client, server) = echo::channel();
    let Ok(echo_sip) = ctx.spawn_protected_with("echo", args, Some(core), mode, server) else {
        return String::from("failed");
    };
    let trips = round_trips(ctx, client, PING_PONGS as u64);
    let _ = ctx.wait(echo_sip);
    trips.map_or_else(|| String::from("failed"), |f| format!("{} ({}-{})", f.median, f.min, f.max))
}

fn protection_row(ctx: &SipContext, name: &str, cells: [String; 3]) {
    let _ = ctx.print(format_args!("{name:<24} {:>24} {:>24} {:>24}\n", cells[0], cells[1], cells[2]));
}
