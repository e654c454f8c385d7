//! Isolation against a hostile service (issue 11): every attack `services/hostile` can still express in safe
//! Rust is run against a booted kernel, and each must end at most the attacker (or be refused with a clear
//! error) while the kernel lives on, a canary SIP's data stays intact, another service keeps answering, and
//! memory (data frames, the kernel heap, the exchange heap) comes back to its baseline.
//!
//! The attacks that no longer compile are compile-fail cases (contracts/tests/ui/hostile_*.rs); the stack
//! attacks are `fault` kinds (tests/sips.rs); items whose misuse needs no kernel are attacked on the host:
//! `channels::send_then_recv` with a foreign "next" endpoint (contracts/tests/runtime.rs: every protocol is kept),
//! and reports of mid-protocol drops under forged names, which are diagnostics bounded by the names in the
//! reporting code (docs/security.md); `sip_runtime::kernel_requests` (a service can build and decode requests,
//! but only the ring-3 runtime can send one: its decoder's hostile inputs are host tests there, and the
//! kernel's answers to an unprivileged ring-3 caller are the self-test `ring3_kernel_requests_are_checked_as_in_ring_0`);
//! `KernelAbi::restart_names` and `broadcast_probe` (which makes every core work) are among the privileged calls
//! below. The plain-data items of session 12 need no boot to attack: `ShortName::new` does constant work on any
//! length and never splits a character, and a `ShortName` forged in a message (a length past its array, bytes
//! that are not UTF-8) reads as its array or `?`, never beyond (sip-runtime host tests in `short_name.rs`);
//! `ProbeReport` and `Resource` are answers the kernel writes and never reads back, so a made-up one changes
//! nothing; a request over `MAX_REQUEST` is refused before anything is done (`kernel-requests` step 3).
//! The ring-3 items of session 13 are attacked where a ring-3 SIP reaches them: the short path (`channels::proxy`'s
//! `send_short`, `poll_short`, `detach`, the slot beside the ring) by `channel-attacks` steps 15-16 and the host
//! tests of `channels/tests/wire.rs` and `loom_ring.rs`; a busy endpoint (`set_busy`, `mark_threaded`) and
//! `THREAD_START` by `channel-attacks` step 17 and the fuzzer (its numbers include 21); `RunSelftests` without the
//! capability by `kernel-requests` step 7. A ring-0 service could build a `proxy::HandleTable` of its own and
//! call `get_mut`, `poll_short`, `set_busy`, `detach`, `mark_threaded` or `is_threaded` on what it holds there: each acts on that
//! table and its own endpoints only (a busy or detached end of its own is refused to itself; its peer still
//! receives through the ring), so there is nothing of another's to reach; `Polled`, `raw::Message` and
//! `wire::SHORT_MESSAGE` are plain data. `proxy::park_on` is `unsafe` (not callable from a service), and the
//! layout's thread-stack functions and `exec::current_sip_on` are kernel-only. The receive as a future
//! (`recv_async`, `raw::RecvAsync`) is a receive of the caller's own endpoint: polled with a waker of the
//! caller's making it only polls (a task waker, which would leave a token in the ring, needs `Trusted`), and a
//! future forgotten while it waits leaves at most a token that wakes its own task once (channels/tests/tasks.rs);
//! `channels::tasks::task_waker` needs `Trusted`, and `host::current_token` exists only in the host platform
//! (the `std` build), which no service links. The async SIPs of session 14 (`sip!`'s `entry: async`,
//! `sip_runtime::{Entry, AsyncMain}`, `SipContext::{yield_async, sleep_async}`,
//! `continuations::{YieldNow, SleepAsync, block_on}`, `KernelAbi::wake_at` (a timer for the polled task only: it
//! names no task, a thread or ring 3 gets `false`, a later call replaces the timer, a stale one wakes nobody), the
//! services' `serve_async` functions, the typed receive's future `channels::RecvTyped` and the raw
//! `poll_recv`/`forget_registration` under it, `MemoryInfo`'s two new figures) are attacked by `fault-async`, whose
//! entry fails at every await point it has in every way a SIP can (panic, stack overflow on the runner's stack,
//! spent quota, a spin that never awaits, a blocking call inside a poll, an endless wait, a dropped endpoint):
//! self-tests `async_sips_fail_at_every_await_point_and_are_reclaimed` (1,000 of them beside a bystander that
//! keeps answering, memory back) and `a_task_that_never_awaits_is_preempted_and_the_others_run`. An async SIP's
//! code runs only on its runner, in its own account (its entry is called by the first poll, never by the
//! spawner); its future is never dropped by the kernel (forgotten, its blocks freed by its owner list); a waker
//! it keeps or wakes is its own task's token, and a stale one finds a newer generation; `Entry::Async` names a
//! function like `Entry::Thread`, and `block_on` and `YieldNow` are plain futures code with no kernel side;
//! `poll_recv` and `forget_registration` act on the caller's own endpoint (its ring's consumer): a forged
//! `RecvWait` (session 15: `Registered` when it is not, `Spun` to skip the yield) or a reset at the wrong time can
//! cost only its own task a wake. `Blocking::yield_task` (session 15) is the platform's, installed with
//! `Trusted`; it acts only on a token of the calling core's polled task (any other token is an ordinary wake,
//! checked where it is looked up), and the per-CPU `polled_task` word it sets is read only by that core's runner
//! and the tick's hand-over (self-test `a_wake_during_a_poll_survives_a_hand_over`). The async twins of session 15
//! (`select_with_vec_async`/`SelectWithVecAsync`, `SipContext::{bind_async, lookup_async, unbind_async,
//! names_async, wait_async}`, `continuations::WaitAsync`, `KernelAbi::wake_on_end`) send what their blocking
//! twins send on the same contracts, so the name service sees nothing new; a select leaves only its own task's
//! token in its own rings (a forgotten one wakes that task once, spuriously); `wake_on_end` registers only the
//! polled task, once per task however often it is asked (a loop of polls cannot grow the awaited SIP's record),
//! and names no task (the kernel knows which it polls), so a SIP cannot make the kernel wake anyone else.
//! In ring 3, `channels::raw::{take_interest, wait_for_any}` (the executor's wait) act on the SIP's own list
//! and its own handle table (the kernel checks every handle, as for a select). Self-tests
//! `an_async_sip_uses_the_name_services_async_calls` and
//! `an_async_sip_awaits_another_sips_end_without_a_stack`; host tests of the select in contracts/tests/runtime.rs.
//! docs/security.md lists each attack with what it did to the old code.
//!
//! One boot runs the attacks one after the other, twice: the first pass lets the kernel's heaps grow to what
//! the attacks need (heaps keep what they mapped), the second is measured against the baseline taken between
//! them. Between attacks the canary and the echo service are asked; an attack that harmed anything fails the
//! test at once, naming it.

#![forbid(unsafe_code)]

mod harness;

use harness::{Runner, scaled};

/// Each attack (`run hostile ATTACK`) and what the console must show for it: the report lines, in any order.
const ATTACKS: &[(&str, &[&str])] = &[
    ("deep-send", &["hostile: deep-send queued a list of"]),
    ("deep-walk", &["hostile: deep-walk sent (true), received (true) and dropped a list of"]),
    ("exchange-exhaust", &["hostile: exchange-exhaust was refused after", "exceeded its exchange quota"]),
    ("raw-capacity", &["hostile: raw-capacity: a 2^28-slot channel refused (true)", "exceeded its exchange quota"]),
    ("channel-flood", &["hostile: channel-flood:", "channels, then refused"]),
    ("self-cycle", &["hostile: self-cycle: 5000 channels sent through themselves and freed"]),
    ("privileged", &["hostile: privileged: 16 calls refused, allowed: []; kernel_panic and shutdown returned"]),
    ("wire", &["hostile: wire: 0 endpoints forged, garbage refused (true)", "then refused (true)"]),
    ("threads", &["hostile: threads: started 3, then refused: the SIP runs as many threads as its policy allows"]),
    ("huge-panic", &["panicked: services/hostile/src/lib.rs", "more bytes)"]),
    (
        "log-flood",
        &["hostile: log-flood: 100 lines of 200 KiB and 2000 short ones took", "more bytes)", "beyond its rate"],
    ),
    ("poison", &["hostile: poison: the canary was handed a", "Refused"]),
];

/// What must come back: data frames other than the kernel heap's, the kernel heap's used bytes, the exchange
/// heap. (A heap keeps the pages it mapped: the kernel heap's mapped size may stay above its peak need.)
fn baseline(mem: &str) -> Vec<String> {
    let number_after = |line: &str, prefix: &str| -> Option<u64> {
        line.strip_prefix(prefix)?.split_whitespace().next()?.parse().ok()
    };
    let data = mem.lines().find_map(|l| number_after(l, "frames in use: "));
    let heap = mem.lines().find(|l| l.starts_with("heap:"));
    let heap_used = heap.and_then(|l| number_after(l, "heap: "));
    let heap_pages = heap.and_then(|l| l.split(", ").nth(2)).and_then(|m| m.split(' ').next()?.parse::<u64>().ok());
    let exchange = mem.lines().find(|l| l.starts_with("exchange heap:"));
    match (data, heap_used, heap_pages, exchange) {
        (Some(data), Some(used), Some(mapped_kib), Some(exchange)) => vec![
            format!("data frames besides the kernel heap: {}", data - mapped_kib / 4),
            format!("kernel heap used: {used}"),
            exchange.to_owned(),
        ],
        _ => Vec::new(),
    }
}

/// The canary's data is intact and the echo service answers.
fn bystanders_are_fine(r: &mut Runner, after: &str) {
    let canary = r.command("names lookup canary check");
    r.check(canary.starts_with("canary answered: canary ok"), &format!("after {after}, the canary: {canary}"));
    let echo = r.command("names lookup echo still here");
    r.check(echo == "echo answered: still here", &format!("after {after}, the echo service: {echo}"));
}

#[test]
fn every_attack_ends_at_most_the_attacker_and_memory_comes_back() {
    let mut r = Runner::boot(&[]);
    // The attacks' own reports are warnings; the info lines of the flood would only slow the console down.
    r.command("log warn");
    for (service, name) in [("canary", "canary"), ("echo", "echo")] {
        let out = r.command(&format!("spawn {service}"));
        r.spawned_pid(&out);
        r.poll("names", |l| l.lines().any(|line| line.starts_with(name)), &format!("{name} is bound"));
    }
    bystanders_are_fine(&mut r, "boot");

    let refused = r.command("spawn hostile-admin");
    r.check(
        refused.starts_with("error: ")
            && refused.contains("asks for SystemAdmin, which the kernel's policy does not grant it"),
        &format!("a manifest that grants itself SystemAdmin: {refused}"),
    );

    let mut before = String::new();
    for pass in 0..2 {
        if pass == 1 {
            before = r.command("mem");
        }
        for (attack, expected) in ATTACKS {
            let out = r.command_within(&format!("run hostile {attack}"), scaled(120));
            for line in *expected {
                r.check(out.contains(line), &format!("`run hostile {attack}` did not show `{line}`:\n{out}"));
            }
            r.check(!out.contains("must not"), &format!("`run hostile {attack}` got what it must not:\n{out}"));
            let uptime = r.command("uptime");
            r.check(uptime.starts_with("up "), &format!("after {attack} the console answers: {uptime}"));
            bystanders_are_fine(&mut r, attack);
        }
    }
    let ps = r.command("ps");
    r.check(!ps.contains("hostile"), &format!("an attacker is left:\n{ps}"));
    let after = r.command("mem");
    r.check(baseline(&before).len() == 3, &format!("unexpected `mem` output:\n{before}"));
    r.check(
        baseline(&before) == baseline(&after),
        &format!("memory not at baseline after the attacks:\nbefore:\n{before}\nafter:\n{after}"),
    );
    r.shutdown();
}

#[test]
fn attacks_across_cores_and_kills_are_bounded() {
    let mut r = Runner::boot(&["--smp", "2"]);
    r.command("log warn");
    let out = r.command("spawn canary --core 0");
    r.spawned_pid(&out);
    r.poll("names", |l| l.lines().any(|line| line.starts_with("canary")), "canary is bound");
    // A SIP that never stops sending and receiving tracked messages is killed at once, on either core.
    for core in [0, 1] {
        let out = r.command(&format!("spawn hostile --core {core} churn"));
        let pid = r.spawned_pid(&out);
        if !out.contains("hostile: churn started") {
            r.wait_for("hostile: churn started", scaled(30));
        }
        let killed = r.command_within(&format!("kill {pid}"), scaled(10));
        r.check(killed.contains(&format!("killed {pid}")), &format!("kill of a churning SIP on core {core}: {killed}"));
    }
    // Name-service connections to the other core's name service, kept: bounded by the attacker's quota.
    let flood = r.command_within("run hostile --core 0 names-flood 1", scaled(120));
    r.check(flood.contains("connections kept, then refused"), &format!("names-flood:\n{flood}"));
    let canary = r.command("names lookup canary check");
    r.check(canary.starts_with("canary answered: canary ok"), &format!("the canary: {canary}"));
    let replicas = r.command("replicas");
    r.check(replicas.contains("replicas: all equal"), &format!("replicas after the attacks:\n{replicas}"));
    r.shutdown();
}

#[test]
fn exhausting_memory_fails_the_hogs_not_the_kernel() {
    // A small machine, and SIPs that each fill their quotas: memory runs out long before the SIP slots do.
    let mut r = Runner::boot(&["--memory", "96"]);
    r.command("log error");
    let out = r.command("spawn canary");
    r.spawned_pid(&out);
    r.poll("names", |l| l.lines().any(|line| line.starts_with("canary")), "canary is bound");
    let before = r.command("mem");
    let hogs = r.command_within("repeat 200 spawn hostile hog", scaled(300));
    // Either a spawn is refused for memory (`repeat` stops there) or the hogs get less than they ask for.
    r.check(hogs.contains("error: ") || hogs.contains("repeat: 200 runs"), &format!("hogs:\n{hogs}"));
    let mem = r.command("mem");
    r.check(mem.starts_with("frames:"), &format!("`mem` with memory exhausted: {mem}"));
    let canary = r.command("names lookup canary check");
    r.check(canary.starts_with("canary answered: canary ok"), &format!("the canary under memory pressure: {canary}"));
    // The kernel can still end every hog and take everything back.
    let ps = r.command("ps");
    let hog_pids: Vec<String> = ps
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("hostile"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    r.check(hog_pids.len() > 10, &format!("too few hogs ran:\n{ps}"));
    for pid in &hog_pids {
        let killed = r.command(&format!("kill {pid}"));
        r.check(killed.contains(&format!("killed {pid}")), &format!("kill {pid}: {killed}"));
    }
    let after = r.command("mem");
    let exchange = |mem: &str| mem.lines().find(|l| l.starts_with("exchange heap:")).map(str::to_owned);
    r.check(exchange(&before) == exchange(&after), &format!("exchange heap not back:\n{before}\n{after}"));
    let canary = r.command("names lookup canary check");
    r.check(canary.starts_with("canary answered: canary ok"), &format!("the canary after: {canary}"));
    r.shutdown();
}
