//! A hostile service, and a canary: the attacks on isolation that safe Rust can still express, run against the
//! kernel and the other SIPs, and a SIP whose data must come through every one of them intact.
//!
//! `run hostile ATTACK` runs one attack (the list is in [`main`]; docs/security.md says what each one tried
//! against the old code and what stops it now). Each attack reports what it got with a `hostile:` log line, so
//! the scenario test (tests/hostile.rs) judges by the console. The routes that no longer compile (forged
//! owners, the platform hooks, hand-written `Exchangeable`, a `Drop` on a message, the raw transport of a typed
//! endpoint) are compile-fail cases in contracts/tests/ui/hostile_*.rs instead.
//!
//! `canary` holds known data in every place a SIP keeps data (its heap, exchange-heap blocks, messages queued
//! in a channel) and binds the name `canary`: `names lookup canary check` makes it check all of it and answer
//! `canary ok` or `canary CORRUPTED ...`. `hostile-admin` asks for a capability its policy does not grant: the
//! kernel refuses to start it.
//!
//! This crate follows every rule of a service (`#![forbid(unsafe_code)]`, no `static`, allowlisted
//! dependencies): it is exactly as hostile as any service may be.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use channels::raw::{RawEndpoint, pair, try_pair};
use channels::{Closed, ExAny, ExBox, ExString, ExVec, SelectWithVec, select_with_vec};
use contracts::echo::{self, server, state};
use contracts::{Exchangeable, service_provider};
use core::hint::black_box;
use sip_runtime::{Broadcast, Capability, LogFilter, Protection, RestartPolicy, SipContext, SipId, sip};

sip! {
    name: "hostile",
    entry: main,
    exports: [],
    imports: ["NameService", "Echo"],
    heap_quota: 1 << 20,
    stack_size: 32 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
    exchange_quota: 1 << 20,
}

// Asks for the power to shut the machine down; nothing in the kernel's policy grants it to this crate.
sip! {
    name: "hostile-admin",
    entry: main,
    exports: [],
    imports: [],
    heap_quota: 64 * 1024,
    stack_size: 16 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [Capability::SystemAdmin],
}

sip! {
    name: "canary",
    entry: canary,
    exports: ["Echo", "ServiceProvider"],
    imports: ["NameService"],
    heap_quota: 256 * 1024,
    stack_size: 32 * 1024,
    restart: RestartPolicy::Never,
    capabilities: [],
}

/// A report line the scenario test looks for.
macro_rules! report {
    ($ctx:expr, $($arg:tt)+) => { sip_runtime::warn!($ctx, "hostile: {}", format_args!($($arg)+)) };
}

fn main(ctx: SipContext) {
    let args = String::from(ctx.args());
    let mut words = args.split_whitespace();
    match words.next().unwrap_or("") {
        "deep-send" => deep_send(&ctx),
        "deep-walk" => deep_walk(&ctx),
        "exchange-exhaust" => exchange_exhaust(&ctx),
        "threads" => threads(&ctx),
        "raw-capacity" => raw_capacity(&ctx),
        "channel-flood" => channel_flood(&ctx),
        "self-cycle" => self_cycle(&ctx),
        "privileged" => privileged(&ctx),
        "wire" => wire(&ctx),
        "log-flood" => log_flood(&ctx),
        "names-flood" => names_flood(&ctx, words.next().and_then(|c| c.parse().ok())),
        "poison" => poison(&ctx),
        "huge-panic" => panic!("{}", "A".repeat(100 * 1024)),
        "hog" => hog(&ctx),
        "churn" => churn(&ctx),
        other => report!(ctx, "unknown attack '{other}'"),
    }
}

/// A list as deep as its data: every walk over it (send, receive, drop, the kernel's reclaim) would recurse
/// once per node if walks recursed.
#[derive(Exchangeable)]
enum List {
    Nil,
    Cons(u64, ExBox<List>),
}

/// The deepest list the exchange quota allows, up to `max` nodes (stops at the first refused allocation).
fn deep_list(max: u64) -> (List, u64) {
    let mut list = List::Nil;
    let mut length = 0;
    while length < max {
        match ExBox::try_new(list) {
            Ok(boxed) => {
                length += 1;
                list = List::Cons(length, boxed);
            }
            Err((back, _)) => return (back, length),
        }
    }
    (list, length)
}

/// Queues the deepest list it can in a channel to itself and ends: the kernel must free the list from its
/// records (the old kernel recursed over it in kernel mode, and overflowed).
fn deep_send(ctx: &SipContext) {
    let (mut tx, rx) = pair::<List, ()>(1, 1);
    let (list, length) = deep_list(u64::MAX);
    let sent = tx.send(list).is_ok();
    report!(ctx, "deep-send queued a list of {length} nodes ({sent}); ending with it in the ring");
    core::mem::forget((tx, rx));
}

/// Sends, receives and drops the deepest list it can, on its own 32 KiB stack.
fn deep_walk(ctx: &SipContext) {
    let (mut tx, mut rx) = pair::<List, ()>(1, 1);
    let (list, length) = deep_list(u64::MAX);
    let sent = tx.send(list).is_ok();
    let received = rx.recv().ok();
    let got = received.is_some();
    drop(received);
    report!(ctx, "deep-walk sent ({sent}), received ({got}) and dropped a list of {length} nodes");
}

/// Allocates exchange memory until refused, then once more with the allocation that cannot fail quietly.
fn exchange_exhaust(ctx: &SipContext) {
    let mut hoard: Vec<ExVec<u8>> = Vec::new();
    loop {
        let mut block = ExVec::new();
        if block.try_reserve(16 * 1024).is_err() {
            break;
        }
        hoard.push(block);
    }
    report!(ctx, "exchange-exhaust was refused after {} KiB", hoard.len() * 16);
    hoard.push(ExVec::with_capacity(16 * 1024));
    report!(ctx, "exchange-exhaust: the last allocation succeeded, which it must not");
}

/// Starts threads until refused.
fn threads(ctx: &SipContext) {
    let mut started = 0;
    let error = loop {
        match ctx.spawn_thread(|ctx| ctx.sleep_ms(u64::MAX)) {
            Ok(_) => started += 1,
            Err(e) => break e,
        }
        if started > 100_000 {
            break sip_runtime::SpawnError::OutOfMemory;
        }
    };
    report!(ctx, "threads: started {started}, then refused: {error}");
}

/// Asks for rings far larger than memory.
fn raw_capacity(ctx: &SipContext) {
    let refused = try_pair::<u64, u64>(1 << 28, 1).is_err();
    report!(ctx, "raw-capacity: a 2^28-slot channel refused ({refused}); now the allocation that panics");
    let _ = black_box(pair::<u64, u64>(1 << 28, 1));
    report!(ctx, "raw-capacity: the huge channel was made, which it must not be");
}

/// Makes channels until refused, keeping them all.
fn channel_flood(ctx: &SipContext) {
    let mut kept: Vec<(RawEndpoint<u64, u64>, RawEndpoint<u64, u64>)> = Vec::new();
    while let Ok(pair) = try_pair::<u64, u64>(4, 4) {
        kept.push(pair);
        if kept.len() > 1_000_000 {
            break;
        }
    }
    report!(ctx, "channel-flood: {} channels, then refused", kept.len());
}

/// Sends a channel's receiving end through the channel itself, then lets go of the sending end: nobody can
/// ever receive it. Many times: if the records kept such cycles, the quota would fill up.
fn self_cycle(ctx: &SipContext) {
    const ROUNDS: usize = 5_000;
    for round in 0..ROUNDS {
        let Ok((mut tx, rx)) = try_pair::<ExAny, ()>(1, 1) else {
            report!(ctx, "self-cycle: out of exchange memory after {round} cycles");
            return;
        };
        let Ok(any) = ExAny::new(rx) else {
            report!(ctx, "self-cycle: out of exchange memory after {round} cycles");
            return;
        };
        if tx.send(any).is_err() {
            report!(ctx, "self-cycle: the send failed");
            return;
        }
    }
    report!(ctx, "self-cycle: {ROUNDS} channels sent through themselves and freed");
}

/// Every privileged call, without the capabilities: each must be refused.
/// The byte form of messages and the kernel's handle tables (`channels::wire`, `channels::proxy`: public for the
/// kernel's sake) from a ring-0 SIP: endpoints forged from bytes, from a table of its own with a handle of another
/// type, inside an `ExAny`; garbage and oversized input; channels opened through the registry until the quota
/// says no. Nothing may come out but its own things or an error.
fn wire(ctx: &SipContext) {
    use channels::proxy::{HandleTable, hold};
    use channels::wire::{CHANNELS, Endpoints, NoEndpoints, decode};
    type EchoServer = echo::Server<state::Ready>;
    let mut forged = 0;
    // An endpoint from nothing but a handle number.
    forged += usize::from(decode::<EchoServer>(&[0, 0, 0, 0], &mut NoEndpoints).is_ok());
    // From a table of its own that holds an endpoint of another type under that handle.
    let (_near, far) = pair::<u64, u64>(1, 1);
    let mut table = HandleTable::new(8);
    let handle = match table.put(hold(far)) {
        Ok(handle) => handle,
        Err(e) => return report!(ctx, "wire: its own table refused its own endpoint: {e}"),
    };
    forged += usize::from(decode::<EchoServer>(&handle.to_le_bytes(), &mut table).is_ok());
    // Inside an `ExAny` naming the echo server's type.
    let name = core::any::type_name::<EchoServer>();
    let mut any = Vec::from((name.len() as u32).to_le_bytes());
    any.extend_from_slice(name.as_bytes());
    any.extend_from_slice(&99u32.to_le_bytes());
    forged += usize::from(decode::<ExAny>(&any, &mut table).is_ok());
    // Garbage, and a length that claims two billion elements in four bytes.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let refused_garbage = decode::<contracts::kv_store::ToServer>(&garbage, &mut NoEndpoints).is_err()
        && decode::<ExVec<u64>>(&[0xff, 0xff, 0xff, 0x7f], &mut NoEndpoints).is_err();
    // Channels of every registered contract until the exchange quota refuses one.
    let mut opened = Vec::new();
    let refused_at = (0..100_000).find_map(|i| {
        let entry = &CHANNELS[i % CHANNELS.len()];
        match (entry.open)() {
            Ok(pair) => {
                opened.push(pair);
                None
            }
            Err(_) => Some(opened.len()),
        }
    });
    drop(opened);
    report!(
        ctx,
        "wire: {forged} endpoints forged, garbage refused ({refused_garbage}), {} channels opened by registry, then \
         refused ({})",
        refused_at.unwrap_or(0),
        refused_at.is_some()
    );
}

fn privileged(ctx: &SipContext) {
    let abi = ctx.abi();
    let refused = [
        ("spawn", ctx.spawn("template", "", None).is_err()),
        ("kill", ctx.kill(SipId(1)).is_err()),
        ("set_log_level", abi.set_log_level(LogFilter::Off).is_err()),
        ("run_selftests", abi.run_selftests("").is_err()),
        ("console_write", abi.console_write("hostile was here\n").is_err()),
        ("claim_name", abi.claim_name("echo", SipId(1), "Echo").is_err()),
        ("release_name", abi.release_name("canary", SipId(1)).is_err()),
        ("memory", abi.memory() == sip_runtime::MemoryInfo::default()),
        ("process_after", abi.process_after(None).is_none()),
        ("channel_after", abi.channel_after(None).is_none()),
        ("cpu", abi.cpu(0).is_none()),
        (
            "spawn_protected",
            abi.spawn_protected("unsafe-test", "write 0xffff800000000000", None, Protection::Ring3, None).is_err(),
        ),
        ("exit_status_of", abi.exit_status_of(SipId(1)).is_none()),
        ("events", abi.events() == sip_runtime::EventCounts::default()),
        ("restart_names", abi.restart_names(Protection::Ring3Own).is_err()),
        ("broadcast_probe", abi.broadcast_probe(Broadcast::Tree).is_none()),
    ];
    // The two that do not return when permitted come last.
    let _ = abi.kernel_panic("a service panicked the kernel");
    let _ = abi.shutdown();
    let allowed: Vec<&str> = refused.iter().filter(|(_, no)| !no).map(|(name, _)| *name).collect();
    report!(
        ctx,
        "privileged: {} calls refused, allowed: {allowed:?}; kernel_panic and shutdown returned",
        refused.len()
    );
}

/// Logs 200 KiB lines, then short lines as fast as it can (at a level the console shows), then waits for its
/// rate to allow one more line: the report.
fn log_flood(ctx: &SipContext) {
    let long = "L".repeat(200 * 1024);
    let start = ctx.now_nanos();
    for _ in 0..100 {
        sip_runtime::warn!(ctx, "{long}");
    }
    for n in 0..2_000 {
        sip_runtime::warn!(ctx, "short line {n}");
    }
    let took_ms = (ctx.now_nanos() - start) / 1_000_000;
    ctx.sleep_ms(1_100);
    report!(ctx, "log-flood: 100 lines of 200 KiB and 2000 short ones took {took_ms} ms");
}

/// Opens name-service connections (to `core`, or its own core's) and keeps them, until refused.
fn names_flood(ctx: &SipContext, core: Option<u32>) {
    let mut kept = Vec::new();
    loop {
        let Ok((client, server)) = contracts::name_service::try_channel() else { break };
        if !ctx.abi().connect_names(core, server) {
            break;
        }
        kept.push(client);
        if kept.len() > 1_000_000 {
            break;
        }
    }
    report!(ctx, "names-flood: {} connections kept, then refused", kept.len());
}

/// Hands the canary (through the name service) a value it does not serve: a deep list instead of an Echo end.
fn poison(ctx: &SipContext) {
    // Deep, but leaving room in the quota for the lookup's own channel and messages.
    let (list, length) = deep_list(4_000);
    let answer = ctx.lookup("canary", list);
    report!(ctx, "poison: the canary was handed a {length}-node list: {answer:?}");
}

/// Fills its heap and exchange quotas and waits forever (many of these exhaust memory).
fn hog(ctx: &SipContext) {
    let mut heap: Vec<Vec<u8>> = Vec::new();
    while heap.try_reserve(1).is_ok() {
        let mut chunk = Vec::new();
        if chunk.try_reserve_exact(16 * 1024).is_err() {
            break;
        }
        chunk.resize(16 * 1024, 0x5a);
        heap.push(chunk);
    }
    let mut exchange: Vec<ExVec<u8>> = Vec::new();
    loop {
        let mut block = ExVec::new();
        if block.try_reserve(16 * 1024).is_err() || exchange.try_reserve(1).is_err() {
            break;
        }
        block.extend_from_slice(&[0xa5; 64]);
        exchange.push(block);
    }
    report!(ctx, "hog holds {} KiB of heap and {} KiB of exchange", heap.len() * 16, exchange.len() * 16);
    ctx.sleep_ms(u64::MAX);
}

/// Sends and receives tracked messages on its own channel forever.
fn churn(ctx: &SipContext) {
    let (mut tx, mut rx) = pair::<ExString, ()>(4, 1);
    report!(ctx, "churn started");
    loop {
        let _ = tx.send(ExString::from("round and round"));
        let _ = black_box(rx.recv());
    }
}

/// The canary's pattern at index `i`.
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ 0x5a) as u8
}

/// What the canary keeps: some of everything a SIP can hold.
struct Hoard {
    heap: Vec<u8>,
    exchange: ExVec<u8>,
    boxes: Vec<ExBox<[u64; 16]>>,
    /// A channel to itself with messages queued in it.
    queue: (RawEndpoint<ExString, ()>, RawEndpoint<(), ExString>),
}

impl Hoard {
    fn new() -> Self {
        let heap: Vec<u8> = (0..64 * 1024).map(pattern).collect();
        let exchange: ExVec<u8> = (0..16 * 1024).map(pattern).collect();
        let boxes = (0..64u64).map(|i| ExBox::new([i.wrapping_mul(0x0101_0101_0101_0101); 16])).collect();
        let (mut tx, rx) = pair::<ExString, ()>(4, 1);
        for i in 0..4 {
            let _ = tx.send(ExString::from(text(i).as_str()));
        }
        Hoard { heap, exchange, boxes, queue: (tx, rx) }
    }

    /// Checks everything; the first damage found, if any. The queued messages go round once (taken, checked,
    /// sent again).
    fn check(&mut self) -> Result<usize, String> {
        if self.heap.iter().enumerate().any(|(i, b)| *b != pattern(i)) {
            return Err(String::from("its heap"));
        }
        if self.exchange.iter().enumerate().any(|(i, b)| *b != pattern(i)) {
            return Err(String::from("its exchange-heap vector"));
        }
        for (i, boxed) in self.boxes.iter().enumerate() {
            if boxed.iter().any(|w| *w != (i as u64).wrapping_mul(0x0101_0101_0101_0101)) {
                return Err(alloc::format!("exchange box {i}"));
            }
        }
        let (tx, rx) = &mut self.queue;
        for i in 0..4 {
            match rx.try_recv() {
                Ok(message) if message.as_str() == text(i) => {
                    let _ = tx.send(message);
                }
                _ => return Err(alloc::format!("queued message {i}")),
            }
        }
        Ok(self.heap.len() + self.exchange.len() + self.boxes.len() * 128 + 4 * 64)
    }
}

/// The canary's `i`th queued message.
fn text(i: usize) -> String {
    alloc::format!("canary message {i}: {}", "0123456789abcdef".repeat(3))
}

/// The canary: binds `canary` and answers `check` with the state of its hoard; echoes anything else.
fn canary(ctx: SipContext) {
    let mut hoard = Hoard::new();
    let Ok(mut provider) = ctx.bind("canary", "Echo") else {
        sip_runtime::warn!(ctx, "canary: cannot bind 'canary'");
        return;
    };
    sip_runtime::info!(ctx, "canary: serving");
    let mut sessions: Vec<echo::Server<state::Ready>> = Vec::new();
    loop {
        match select_with_vec(provider, &mut sessions) {
            SelectWithVec::First(Ok(service_provider::server::Ready::Connect(end, owes))) => {
                let (session, next) = sip_runtime::accept::<echo::Server<state::Ready>>(end, owes);
                sessions.extend(session);
                let Ok(next) = next else { return };
                provider = next;
            }
            SelectWithVec::First(Err(Closed)) => return,
            SelectWithVec::Member(next, _, request) => {
                provider = next;
                let session = match request {
                    Ok(server::Ready::Say(text, owes)) if text.as_str() == "check" => {
                        let verdict = match hoard.check() {
                            Ok(bytes) => alloc::format!("canary ok ({bytes} bytes checked)"),
                            Err(what) => alloc::format!("canary CORRUPTED: {what}"),
                        };
                        owes.send_echoed(ExString::from(verdict.as_str())).ok()
                    }
                    Ok(server::Ready::Say(text, owes)) => owes.send_echoed(text).ok(),
                    Ok(server::Ready::Ping(n, owes)) => owes.send_pong(n).ok(),
                    Ok(server::Ready::Bye(done)) => {
                        done.close();
                        None
                    }
                    Err(Closed) => None,
                };
                sessions.extend(session);
            }
        }
    }
}
