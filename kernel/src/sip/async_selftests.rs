//! Self-tests of async SIPs (docs/thread-models.md): continuations on their core's runner, served over the same
//! contracts as thread SIPs, holding no stack while they wait, preempted when they never await, and reclaimed
//! whole whatever way they fail.

use super::{info, kill, spawn_here, wait};
use crate::memory::frames;
use alloc::format;
use alloc::string::String;
use channels::Closed;
use contracts::echo::{self, client, state};
use sip_runtime::Startup;

/// Frames a run may leave mapped (a heap that grew stays grown; the small heap keeps its pages).
const SLACK_FRAMES: i64 = 24;
/// Kernel-heap bytes a run may leave (queues and tables that grew stay grown).
const SLACK_HEAP: i64 = 8192;

/// Spawns `service` on this core (the kernel holding the channel) with the server end of a new Echo channel; its id and the client end.
fn spawn_echo(service: &str, args: &str) -> Result<(u64, echo::Client<state::Ready>), String> {
    let (client, server) = echo::channel();
    let startup = Startup::new(server).map_err(|_| "no exchange memory for the startup value")?;
    // The channel is the kernel's (made in kernel mode), whichever thread the self-tests run on.
    let id = spawn_here(service, args, 0, Some(startup), channels::Owner::KERNEL)
        .map_err(|(e, _)| format!("spawn {service} {args}: {e}"))?;
    Ok((id.0, client))
}

/// `n` pings and their pongs; the client back.
fn ping(mut client: echo::Client<state::Ready>, n: u64) -> Result<echo::Client<state::Ready>, String> {
    for i in 0..n {
        match client.send_ping(i).map_err(|_| format!("ping {i}: closed"))?.recv() {
            Ok(client::PingSent::Pong(got, ready)) if got == i => client = ready,
            Ok(client::PingSent::Pong(got, _)) => return Err(format!("pong {got} for ping {i}")),
            Err(Closed) => return Err(format!("ping {i}: closed before the pong")),
        }
    }
    Ok(client)
}

/// Frames and kernel heap before a run.
struct Baseline {
    free: u64,
    heap: usize,
    exchange: (usize, usize),
}

impl Baseline {
    fn take() -> Self {
        Self {
            free: frames::stats().free,
            heap: crate::memory::heap::stats().used,
            exchange: crate::ipc::exchange_heap::totals(),
        }
    }

    fn check_back(&self, what: &str) -> Result<(), String> {
        let leaked = self.free as i64 - frames::stats().free as i64;
        crate::check!(leaked <= SLACK_FRAMES, "{what} leaked {leaked} frames");
        let grown = crate::memory::heap::stats().used as i64 - self.heap as i64;
        crate::check!(grown <= SLACK_HEAP, "{what} grew the kernel heap by {grown} bytes");
        let exchange = crate::ipc::exchange_heap::totals();
        crate::check!(
            exchange == self.exchange,
            "{what}: exchange heap {:?} before, {exchange:?} after",
            self.exchange
        );
        Ok(())
    }
}

crate::selftest! {
    /// A thread client and an async echo server talk over one Echo channel: the server answers every ping, has
    /// no thread (it is a continuation on the core's runner), is listed as blocked while it waits, holds a few
    /// hundred bytes of its small heap, and ends with the client's Bye (after a warm-up, its memory comes back).
    fn an_async_sip_serves_echo_without_a_thread() {
        // The first async SIP of a core starts its runners and grows its small heap, which stay: a warm-up.
        let (id, client) = spawn_echo("echo-async", "")?;
        drop(client);
        wait(id);
        let baseline = Baseline::take();
        let (id, client) = spawn_echo("echo-async", "")?;
        let client = ping(client, 100)?;
        let listing = info(id).ok_or("no listing for a live async SIP")?;
        crate::check!(listing.threads == 0, "the async SIP has {} threads", listing.threads);
        crate::check!(listing.state == sip_runtime::ProcessState::Blocked, "a waiting async SIP is {:?}", listing.state);
        crate::check!(
            listing.heap_used > 0 && listing.heap_used <= 2048,
            "a waiting echo-async holds {} bytes of its small heap",
            listing.heap_used
        );
        let done = client.send_bye().map_err(|_| "bye: closed")?;
        done.close();
        wait(id);
        crate::check!(info(id).is_none(), "the async SIP is still listed after Bye");
        baseline.check_back("echo-async")
    }
}

crate::selftest! {
    /// 1,000 async SIPs fail at every await point they have (after 0 to 4 answered pings), in every way: a
    /// panic, a stack overflow on the runner's stack, a spent quota, a dropped endpoint, a spin and an endless
    /// wait (both killed), a blocking call, an async sleep, a clean exit. Each time the client sees `Closed` (or its pong), the
    /// kernel lives on, the core's other async SIPs keep being served, and frames, the kernel heap and the
    /// exchange heap come back.
    fn async_sips_fail_at_every_await_point_and_are_reclaimed() {
        const KINDS: [&str; 9] = ["panic", "overflow", "quota", "drop", "spin", "wait", "block", "sleep", "exit"];
        // A bystander on the same core: served all along, whatever its neighbours do.
        let (bystander, mut witness) = spawn_echo("echo-async", "")?;
        witness = ping(witness, 1)?;
        let baseline = Baseline::take();
        for round in 0..1000u64 {
            let kind = KINDS[round as usize % KINDS.len()];
            let after = round / KINDS.len() as u64 % 5;
            let what = format!("fault-async {kind} {after}");
            let (id, client) = spawn_echo("fault-async", &format!("{kind} {after}"))?;
            let client = ping(client, after).map_err(|e| format!("{what}: {e}"))?;
            let owed = client.send_ping(after).map_err(|_| format!("{what}: closed before the last ping"))?;
            if matches!(kind, "spin" | "wait") {
                // The bystander answers while this one spins or waits (the spinner holds a runner; another serves).
                witness = ping(witness, 1).map_err(|e| format!("bystander beside {what}: {e}"))?;
                kill(id).map_err(|e| format!("{what}: kill: {e}"))?;
            }
            let answer = owed.recv();
            let expected_pong = matches!(kind, "block" | "sleep" | "exit");
            match answer {
                Ok(client::PingSent::Pong(n, _)) if expected_pong && n == after => {}
                Err(Closed) if !expected_pong => {}
                Ok(_) => return Err(format!("{what}: an answer where Closed was due")),
                Err(Closed) => return Err(format!("{what}: Closed where a pong was due")),
            }
            wait(id);
            crate::check!(info(id).is_none(), "{what} is still listed");
        }
        witness = ping(witness, 1).map_err(|e| format!("bystander at the end: {e}"))?;
        baseline.check_back("1,000 failing async SIPs")?;
        let done = witness.send_bye().map_err(|_| "bye: closed")?;
        done.close();
        wait(bystander);
        Ok(())
    }
}

crate::selftest! {
    /// An async sleep holds no stack: while `fault-async sleep` waits out its 20 ms, its task is idle (`ps`:
    /// blocked, not running as it is in a blocking sleep inside a poll), and its timer wakes it to answer.
    fn an_async_sleep_holds_no_stack_and_its_timer_wakes_it() {
        let (id, client) = spawn_echo("fault-async", "sleep 0")?;
        let start = crate::time::uptime_nanos();
        let owed = client.send_ping(0).map_err(|_| "closed before the ping")?;
        // Let it take the ping and start its sleep.
        (0..20).for_each(|_| crate::sched::yield_now());
        let state = info(id).map(|listing| listing.state);
        let answer = owed.recv();
        let took = crate::time::uptime_nanos() - start;
        crate::check!(state == Some(sip_runtime::ProcessState::Blocked), "a sleeping async SIP is {state:?}");
        crate::check!(matches!(answer, Ok(client::PingSent::Pong(0, _))), "no pong after the sleep");
        crate::check!(took >= 20_000_000, "the pong came after {took} ns, before the 20 ms sleep was over");
        wait(id);
        Ok(())
    }
}

crate::selftest! {
    /// An async SIP asks the name service with every async call inside its poll (`fault-async names`: bind, list,
    /// a lookup that finds nothing, unbind, list again, each answer checked) and answers the ping only if all did
    /// what they should.
    fn an_async_sip_uses_the_name_services_async_calls() {
        let (id, client) = spawn_echo("fault-async", "names 0")?;
        let owed = client.send_ping(0).map_err(|_| "closed before the ping")?;
        let answer = owed.recv();
        crate::check!(
            matches!(answer, Ok(client::PingSent::Pong(0, _))),
            "no pong: one of the name service's async calls failed (its warning says which)"
        );
        wait(id);
        Ok(())
    }
}

crate::selftest! {
    /// An async SIP awaits another SIP's end without a stack (`fault-async end 0 ID`, `SipContext::wait_async`):
    /// blocked with no thread and no answer while the other lives, woken by its end to answer; awaiting a SIP
    /// that is already gone answers at once with `NoSuchProcess` (its pong says so); with a second core, the
    /// same for a SIP of that core (`tests/sips.rs` runs it so).
    fn an_async_sip_awaits_another_sips_end_without_a_stack() {
        let (target, target_client) = spawn_echo("echo-async", "")?;
        let (waiter, client) = spawn_echo("fault-async", &format!("end 0 {target}"))?;
        let owed = client.send_ping(0).map_err(|_| "closed before the ping")?;
        (0..20).for_each(|_| crate::sched::yield_now());
        let listing = info(waiter).ok_or("the waiting async SIP is not listed")?;
        crate::check!(
            listing.state == sip_runtime::ProcessState::Blocked && listing.threads == 0,
            "an async SIP awaiting an end is {:?} with {} threads",
            listing.state,
            listing.threads
        );
        let owed = match channels::try_recv(owed) {
            channels::TryRecv::Empty(owed) => owed,
            _ => return Err(String::from("answered while the awaited SIP still lives")),
        };
        // The target's client goes: it ends, and its end wakes the waiter.
        drop(target_client);
        wait(target);
        crate::check!(matches!(owed.recv(), Ok(client::PingSent::Pong(0, _))), "no pong after the awaited end");
        wait(waiter);
        let (late, client) = spawn_echo("fault-async", &format!("end 0 {target}"))?;
        let answer = client.send_ping(0).map_err(|_| "closed before the ping")?.recv();
        crate::check!(matches!(answer, Ok(client::PingSent::Pong(1, _))), "awaiting a gone SIP: not NoSuchProcess");
        wait(late);
        // A SIP of another core (with `--smp 2` or more): the task is registered there, and woken from there.
        let other = (crate::percpu::current_index() + 1) % crate::percpu::MAX_CPUS as u32;
        if crate::cores::is_online(other) && other != crate::percpu::current_index() {
            let remote =
                super::spawn("bench-async-idle", "", Some(other)).map_err(|e| format!("spawn on {other}: {e}"))?;
            let (waiter, client) = spawn_echo("fault-async", &format!("end 0 {}", remote.0))?;
            let owed = client.send_ping(0).map_err(|_| "closed before the ping")?;
            (0..20).for_each(|_| crate::sched::yield_now());
            let owed = match channels::try_recv(owed) {
                channels::TryRecv::Empty(owed) => owed,
                _ => return Err(format!("answered while the SIP on core {other} still lives")),
            };
            kill(remote.0).map_err(|e| format!("kill on core {other}: {e}"))?;
            let answer = owed.recv();
            crate::check!(matches!(answer, Ok(client::PingSent::Pong(0, _))), "no pong after the end on core {other}");
            wait(waiter);
        }
        Ok(())
    }
}
