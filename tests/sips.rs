//! Scenario tests of software-isolated processes: spawn, `ps`, kill, faults that end only their SIP,
//! supervision, manifest errors, and memory returning exactly to its baseline after thousands of SIP lifetimes.
//!
//! Judged by the console only: the commands `spawn`, `run` (spawn and wait for the end), `repeat`, `ps`, `kill`,
//! `services` and `mem`, and the kernel's one-line reports `sip NAME#PID <how it ended>`.

#![forbid(unsafe_code)]

mod harness;

use harness::{Runner, ps_row, scaled};

/// The `ps` rows of SIPs other than the system's own (always there: the shell runs the console, `names` is
/// the name service).
fn ps_rows_but_system(ps: &str) -> usize {
    ps.lines().skip(1).filter(|l| !matches!(l.split_whitespace().nth(1), Some("shell" | "names"))).count()
}

#[test]
fn spawn_ps_kill_and_clear_errors() {
    let mut r = Runner::boot(&[]);
    let services = r.command("services");
    for name in ["template", "fault", "fault-restart"] {
        r.check(services.lines().any(|l| l.starts_with(name)), &format!("`services` lacks {name}:\n{services}"));
    }

    let out = r.command("run template hello world");
    r.check(out.contains("hello from sip") && out.contains("args: 'hello world'"), &format!("template:\n{out}"));

    let spinner = {
        let out = r.command("spawn fault spin");
        r.spawned_pid(&out)
    };
    let ps = r.command("ps");
    let row = ps_row(&ps, spinner).unwrap_or_else(|| r.fail(&format!("pid {spinner} not in ps:\n{ps}")));
    r.check(row.contains("fault") && row.contains("262144") && row.contains(" type "), &format!("ps row: {row}"));
    // The spinner never yields; the console still answers because the timer preempts it.
    let up = r.command("uptime");
    r.check(up.starts_with("up "), &format!("uptime while a SIP spins: {up}"));

    let killed = r.command(&format!("kill {spinner}"));
    r.check(killed.contains(&format!("killed {spinner}")), &format!("kill: {killed}"));
    let ps = r.command("ps");
    r.check(ps_row(&ps, spinner).is_none(), &format!("killed SIP still listed:\n{ps}"));

    for (cmd, expected) in [
        (format!("kill {spinner}"), "no such process"),
        ("kill 999999".into(), "no such process"),
        ("kill seven".into(), "is not a process id"),
        ("spawn no-such-service".into(), "no such service"),
        ("spawn fault-bad-manifest".into(), "manifest rejected: heap quota 0 bytes"),
    ] {
        let out = r.command(&cmd);
        r.check(out.starts_with("error: ") && out.contains(expected), &format!("`{cmd}` gave: {out}"));
    }
    let ps = r.command("ps");
    r.check(ps_rows_but_system(&ps) == 0, &format!("refused spawns left SIPs behind:\n{ps}"));
    r.shutdown();
}

#[test]
fn each_fault_ends_only_its_sip() {
    let mut r = Runner::boot(&[]);
    let bystander = {
        let out = r.command("spawn fault spin");
        r.spawned_pid(&out)
    };
    for (kind, report) in [
        ("panic", "panicked: services/fault/src/lib.rs"),
        ("overflow", "faulted: stack overflow"),
        // Stack exhaustion while the kernel runs on the SIP's stack: in an ABI call, in the allocator, under
        // the timer interrupt. Each ends the SIP alone, as a stack overflow.
        ("overflow-abi", "faulted: stack overflow"),
        ("overflow-alloc", "faulted: stack overflow"),
        ("overflow-tick", "faulted: stack overflow"),
        ("quota", "exceeded its heap quota"),
        ("exit", "injecting fault 'exit'"),
    ] {
        let out = r.command_within(&format!("run fault {kind}"), scaled(30));
        r.check(out.contains(report), &format!("`run fault {kind}` did not report `{report}`:\n{out}"));
        let up = r.command("uptime");
        r.check(up.starts_with("up "), &format!("console dead after fault {kind}: {up}"));
    }
    let ps = r.command("ps");
    r.check(ps_row(&ps, bystander).is_some(), &format!("the bystander SIP died with the others:\n{ps}"));
    r.check(ps_rows_but_system(&ps) == 1, &format!("a faulted SIP is still listed:\n{ps}"));
    r.command(&format!("kill {bystander}"));
    let selftest = r.command_within("selftest", scaled(120));
    r.check(selftest.contains(" 0 failed"), &format!("selftest after faults:\n{selftest}"));
    r.shutdown();
}

#[test]
fn stack_exhaustion_ends_only_its_sip_on_every_core() {
    // The application processor's own tables: its interrupt stack, its per-CPU stack limit, its scheduler.
    let mut r = Runner::boot(&["--smp", "2"]);
    let bystander = {
        let out = r.command("spawn fault --core 1 spin");
        r.spawned_pid(&out)
    };
    for kind in ["overflow-abi", "overflow-alloc", "overflow-tick", "overflow"] {
        for core in [1, 0] {
            let mut out = r.command_within(&format!("run fault --core {core} {kind}"), scaled(30));
            if core != 0 && !out.contains("faulted: stack overflow") {
                // Core 1 reports its SIP's end itself, after `run` on core 0 has heard of it: the line may come
                // after the prompt.
                out.push_str(&r.wait_for("faulted: stack overflow", scaled(10)));
            }
            r.check(
                out.contains("faulted: stack overflow"),
                &format!("`run fault --core {core} {kind}` did not report a stack overflow:\n{out}"),
            );
        }
    }
    let ps = r.command("ps");
    r.check(ps_row(&ps, bystander).is_some(), &format!("the bystander SIP died with the others:\n{ps}"));
    r.check(ps_rows_but_system(&ps) == 1, &format!("a faulted SIP is still listed:\n{ps}"));
    let ping = r.command("ping 20");
    r.check(ping.contains("ping: 20 round trips"), &format!("ping after the faults: {ping}"));
    r.command(&format!("kill {bystander}"));
    let selftest = r.command_within("selftest", scaled(120));
    r.check(selftest.contains(" 0 failed"), &format!("selftest after faults:\n{selftest}"));
    r.shutdown();
}

#[test]
fn failing_service_is_restarted_with_backoff_up_to_its_limit() {
    let mut r = Runner::boot(&[]);
    r.command("spawn fault-restart");
    let log = r.wait_for("restart limit (2) reached", scaled(60));
    r.check(log.matches("restarted as #").count() == 2, &format!("expected two restarts:\n{log}"));
    r.shutdown();
}

#[test]
fn thousands_of_sip_lifetimes_leave_memory_at_baseline() {
    let mut r = Runner::boot(&[]);
    r.command("log error"); // one warning per panic would flood the console
    // Warm up: the first lifetimes create page tables and free-list entries that later ones reuse.
    r.command_within("repeat 20 run template", scaled(60));
    r.command_within("repeat 20 run fault panic", scaled(60));
    let before = r.command("mem");
    let exits = r.command_within("repeat 1000 run template", scaled(300));
    r.check(exits.contains("repeat: 1000 runs"), &format!("spawn->exit cycles: {exits}"));
    let panics = r.command_within("repeat 1000 run fault panic", scaled(300));
    r.check(panics.contains("repeat: 1000 runs"), &format!("spawn->panic cycles: {panics}"));
    let after = r.command("mem");
    // Frames for data, the kernel heap and the exchange heap must be exactly where they were. Page tables are
    // a cache that may keep a table made for a slot that happened to be used once (reported apart by `mem`).
    let baseline = |mem: &str| -> Vec<String> {
        mem.lines()
            .filter_map(|l| {
                if let Some(rest) = l.strip_prefix("frames in use: ") {
                    rest.split(" for data").next().map(|data| format!("data frames {data}"))
                } else if l.starts_with("heap:") || l.starts_with("exchange heap:") {
                    Some(l.to_owned())
                } else {
                    None
                }
            })
            .collect()
    };
    r.check(baseline(&before).len() == 3, &format!("unexpected `mem` output:\n{before}"));
    r.check(
        baseline(&before) == baseline(&after),
        &format!("memory not at baseline:\nbefore:\n{before}\nafter:\n{after}"),
    );
    // Ids are never reused: the next SIP gets a fresh one.
    let pid = {
        let out = r.command("spawn template");
        r.spawned_pid(&out)
    };
    r.check(pid > 2040, &format!("pid {pid} reuses an id of an ended SIP"));
    r.shutdown();
}

#[test]
fn contract_channels_to_sips_and_closed_on_every_fault() {
    let mut r = Runner::boot(&[]);
    let exchange_line = |mem: &str| mem.lines().find(|l| l.starts_with("exchange heap:")).map(str::to_owned);
    let before = r.command("mem");
    let echoed = r.command("echo hello across the boundary");
    r.check(echoed == "hello across the boundary", &format!("echo: {echoed}"));
    let ping = r.command("ping 100");
    r.check(ping.contains("ping: 100 round trips"), &format!("ping: {ping}"));
    // Every way the peer can fail while it owes an answer ends with Closed on our side, never a hang; the
    // control case answers.
    for kind in ["panic", "overflow", "overflow-abi", "overflow-alloc", "overflow-tick", "quota", "spin", "drop"] {
        let out = r.command_within(&format!("fault {kind}"), scaled(60));
        r.check(
            out.contains(&format!("fault {kind}: ")) && out.contains("peer saw Closed"),
            &format!("{kind}:\n{out}"),
        );
    }
    let out = r.command("fault exit");
    r.check(out.contains("fault exit: answered pong 7"), &format!("exit:\n{out}"));
    // Channels, messages and arenas of all those SIPs are gone: only the shell's remain, as before.
    let after = r.command("mem");
    r.check(
        exchange_line(&before).is_some() && exchange_line(&before) == exchange_line(&after),
        &format!("before:\n{before}\nafter:\n{after}"),
    );
    r.shutdown();
}

/// The kv console checks, the first command (which starts the store) as `start` (`kv`, or `kv --async`): put,
/// get, list, delete, a miss, a key over the limit.
fn the_store_answers_as_specified(r: &mut Runner, start: &str) {
    let stored = r.command(&format!("{start} put color deep blue"));
    r.check(stored == "stored color", &format!("put: {stored}"));
    r.command("kv put size 42");
    let got = r.command("kv get color");
    r.check(got == "deep blue", &format!("get: {got}"));
    let list = r.command("kv list");
    r.check(
        list.starts_with("2 keys") && list.contains("  color") && list.contains("  size"),
        &format!("list:\n{list}"),
    );
    let deleted = r.command("kv del size");
    r.check(deleted == "deleted size", &format!("del: {deleted}"));
    let missing = r.command("kv get size");
    r.check(missing.contains("NotFound"), &format!("get after del: {missing}"));
    let too_long = r.command(&format!("kv put {} v", "k".repeat(65)));
    r.check(too_long.contains("KeyTooLong"), &format!("long key: {too_long}"));
}

#[test]
fn kv_store_sip_from_the_console() {
    let mut r = Runner::boot(&[]);
    the_store_answers_as_specified(&mut r, "kv");
    let channels = r.command("channels");
    // Three channels: the console's (shell and kernel), the name service's listener (names and kernel) and the
    // store's (shell and kv). The shell and the name service start side by side, so either may get pid 1.
    let row = |a: &str, b: &str| channels.lines().any(|l| l.contains(a) && l.contains(" <-> ") && l.contains(b));
    r.check(
        channels.starts_with("3 channels")
            && row("shell#", "kernel")
            && row("kernel", "names#")
            && row("shell#", "kv#"),
        &format!("channels:\n{channels}"),
    );
    // Every conversation so far ended in a terminal state or is still going: no endpoint was dropped
    // mid-protocol (docs/contracts.md, "Dropping mid-protocol").
    r.check(channels.lines().last() == Some("dropped mid-protocol: none"), &format!("channels:\n{channels}"));
    let contracts = r.command("contracts");
    for expected in [
        "Echo: 4 states",
        "KvStore: 6 states, 10 messages; at most 1 in flight to the server, 1 to the client; 0 dropped mid-protocol",
        "Ready (initial): client sends Get -> Getting",
    ] {
        r.check(contracts.contains(expected), &format!("contracts lacks `{expected}`:\n{contracts}"));
    }
    // One contract as Graphviz text (docs/contracts.md, "Pictures"), and an unknown name answered with the known.
    let dot = r.command("contracts --dot Echo");
    r.check(
        dot.lines().next() == Some("digraph Echo {")
            && dot.lines().any(|l| l.contains("\"Ready\" -> ") && l.contains("[label="))
            && dot.lines().last() == Some("}"),
        &format!("contracts --dot Echo:\n{dot}"),
    );
    let unknown = r.command("contracts --dot Nope");
    r.check(
        unknown.starts_with("error: no contract named 'Nope'")
            && ["Echo", "KvStore", "NameService", "Stream"].iter().all(|name| unknown.contains(name)),
        &format!("contracts --dot Nope: {unknown}"),
    );
    // The store is a SIP like any other: killed, the console's next request sees the channel closed.
    let ps = r.command("ps");
    r.check(
        ps.lines().any(|l| l.contains(" kv ") && l.split_whitespace().nth(7) == Some("1")),
        &format!("ps channels:\n{ps}"),
    );
    let pid = ps
        .lines()
        .find(|l| l.contains(" kv "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| r.fail(&format!("kv not in ps:\n{ps}")))
        .to_owned();
    r.command(&format!("kill {pid}"));
    let after = r.command("kv get color");
    r.check(after.starts_with("error: the kv SIP is gone"), &format!("after kill: {after}"));
    let fresh = r.command("kv get color");
    r.check(fresh.contains("NotFound"), &format!("a new kv SIP starts empty: {fresh}"));
    r.shutdown();
}

#[test]
fn async_services_answer_as_their_thread_twins_do() {
    let mut r = Runner::boot(&["--smp", "2"]);
    // An async SIP on the other core: listed there with no thread, killed from this one.
    let idle = {
        let out = r.command("spawn bench-async-idle --core 1");
        r.spawned_pid(&out)
    };
    let ps = r.command("ps");
    let row = ps_row(&ps, idle).unwrap_or_else(|| r.fail(&format!("pid {idle} not in ps:\n{ps}")));
    let fields: Vec<&str> = row.split_whitespace().collect();
    r.check(fields.get(2) == Some(&"1") && fields.get(7) == Some(&"0"), &format!("ps row of an async SIP: {row}"));
    let killed = r.command(&format!("kill {idle}"));
    r.check(killed.contains(&format!("killed {idle}")), &format!("kill across cores: {killed}"));
    let ps = r.command("ps");
    r.check(ps_row(&ps, idle).is_none(), &format!("killed async SIP still listed:\n{ps}"));
    // Echo as a continuation: in ring 0 (polled by the core's runner) and in ring 3 (polled by its own thread).
    for (command, expected) in [
        ("echo --async as a continuation", "as a continuation"),
        ("echo --protection ring3 --async up there", "up there"),
    ] {
        let out = r.command(command);
        r.check(out == expected, &format!("`{command}`: {out}"));
    }
    // On each core: one of the two is not the shell's, so a thread and a continuation talk across cores too.
    for core in [0, 1] {
        let ping = r.command(&format!("ping --async --core {core} 100"));
        r.check(ping.contains("ping: 100 round trips to echo-async#"), &format!("ping --async --core {core}: {ping}"));
    }
    // The store's checks, against kv-async: the same answers as kv's.
    the_store_answers_as_specified(&mut r, "kv --async");
    let mixed = r.command("kv --protection type put again v");
    r.check(
        mixed.starts_with("error: kv-async#") && mixed.contains("'kv quit' first"),
        &format!("mode mismatch: {mixed}"),
    );
    // A continuation has no thread of its own: `ps` lists it with 0 threads, waiting for its client.
    let ps = r.command("ps");
    let row = ps
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("kv-async"))
        .unwrap_or_else(|| r.fail(&format!("kv-async not in ps:\n{ps}")))
        .to_owned();
    let fields: Vec<&str> = row.split_whitespace().collect();
    r.check(fields.get(3) == Some(&"blocked") && fields.get(7) == Some(&"0"), &format!("ps row: {row}"));
    // Killed while it waits, the console's next request sees the channel closed.
    r.command(&format!("kill {}", fields[0]));
    let after = r.command("kv get color");
    r.check(after.starts_with("error: the kv SIP is gone"), &format!("after kill: {after}"));
    // A named async echo on the other core: bound with the name service's async calls, answering every client
    // that looks it up, with no thread; gone from the name service once killed.
    let named = a_named_async_echo_answers(&mut r, "--core 1", "echo-a");
    let ps = r.command("ps");
    let row = ps_row(&ps, named).unwrap_or_else(|| r.fail(&format!("pid {named} not in ps:\n{ps}")));
    let fields: Vec<&str> = row.split_whitespace().collect();
    r.check(fields.get(3) == Some(&"blocked") && fields.get(7) == Some(&"0"), &format!("named async echo: {row}"));
    r.command(&format!("kill {named}"));
    let gone = r.command("names lookup echo-a bye");
    r.check(gone.starts_with("error: lookup echo-a"), &format!("a killed async SIP's name: {gone}"));
    // The same in ring 3, where its thread polls it and waits in the kernel on the endpoints its select noted.
    let ring3 = a_named_async_echo_answers(&mut r, "--protection ring3", "echo-r");
    r.command(&format!("kill {ring3}"));
    // An async SIP awaits the end of a SIP of the other core (the self-test's second half needs two cores).
    let awaited = r.command_within("selftest awaits_another_sips_end", scaled(60));
    r.check(awaited.contains("selftest: 1 passed, 0 failed"), &format!("wait_async across cores:\n{awaited}"));
    // Both models side by side in one boot, measured (docs/thread-models.md): every row of `bench models`.
    let bench = r.command_within("bench models", scaled(120));
    for row in [
        "yield A->B->A, threads",
        "yield A->B->A, async",
        "ping-pong, threads",
        "ping-pong, thread->async",
        "ping-pong, async",
        "ping-pong, async, hand-over",
        "bytes per blocked SIP, thread",
        "bytes per blocked SIP, async",
    ] {
        r.check(bench.lines().any(|l| l.starts_with(row)), &format!("bench models lacks `{row}`:\n{bench}"));
    }
    let failed = bench.lines().any(|l| l.starts_with("bench models: ") && !l.starts_with("bench models: unit"));
    r.check(!failed, &format!("bench models reported a failure:\n{bench}"));
    r.shutdown();
}

/// Spawns `echo-async` (with `options`) bound to `name`, checks that two clients that look the name up are
/// answered, and returns its pid.
fn a_named_async_echo_answers(r: &mut Runner, options: &str, name: &str) -> u64 {
    let pid = {
        let out = r.command(&format!("spawn echo-async {options} {name}"));
        r.spawned_pid(&out)
    };
    // The bind is the SIP's own business after the spawn: ask until it is done (a few polls of its runner).
    let first = (0..50)
        .map(|_| r.command(&format!("names lookup {name} hello")))
        .find(|out| !out.contains("no such name"))
        .unwrap_or_else(|| r.fail(&format!("{name} was never bound")));
    // Its "serving" log line may land in the middle of this command's output.
    r.check(first.ends_with(&format!("{name} answered: hello")), &format!("named async echo ({options}): {first}"));
    let second = r.command(&format!("names lookup {name} again"));
    r.check(second == format!("{name} answered: again"), &format!("named async echo ({options}), second: {second}"));
    pid
}

#[test]
fn the_shell_is_a_sip_and_comes_back_when_killed() {
    let mut r = Runner::boot(&[]);
    let ps = r.command("ps");
    let shell = ps
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("shell"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| r.fail(&format!("no shell in ps:\n{ps}")))
        .to_owned();
    // The shell kills itself: the console driver sees its channel close and starts a new shell.
    r.send_line(&format!("kill {shell}"));
    r.wait_for("starting a new one", scaled(30));
    r.wait_for(harness::PROMPT, scaled(30));
    let ps = r.command("ps");
    let new_shell = ps.lines().find(|l| l.split_whitespace().nth(1) == Some("shell"));
    r.check(
        new_shell.is_some_and(|l| l.split_whitespace().next() != Some(shell.as_str())),
        &format!("no new shell after killing pid {shell}:\n{ps}"),
    );
    r.shutdown();
}

#[test]
fn killing_sips_mid_message_loses_no_exchange_memory() {
    let mut r = Runner::boot(&[]);
    r.command("log error");
    // Each round kills a flooding sender and its echo peer at an arbitrary instruction (a timer tick); without
    // the kernel letting a thread leave its send or receive first, message blocks leaked here.
    for _ in 0..2 {
        let out = r.command_within("bench kills", scaled(120));
        let numbers: Vec<&str> = out.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).collect();
        // "bench kills: R of 40 rounds ran; exchange heap B bytes in N blocks before, B' bytes in N' blocks after"
        r.check(numbers.len() == 6 && numbers[0] == "40" && numbers[1] == "40", &format!("rounds did not run:\n{out}"));
        r.check(numbers[2..4] == numbers[4..6], &format!("exchange heap changed:\n{out}"));
    }
    r.shutdown();
}

/// Whether a `names` listing (`NAME PID CORE CONTRACT`) binds `name` to `pid` for the Echo contract.
fn binds(listing: &str, name: &str, pid: u64) -> bool {
    listing.lines().any(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        fields.len() == 4 && fields[0] == name && fields[1] == pid.to_string() && fields[3] == "Echo"
    })
}

#[test]
fn name_service_binds_looks_up_and_forgets_dead_sips() {
    let mut r = Runner::boot(&[]);
    // Log lines from SIPs starting and ending would interleave with command output.
    r.command("log error");
    let empty = r.command("names");
    r.check(empty == "no names bound", &format!("names at boot: {empty}"));
    let first = {
        let out = r.command("spawn echo");
        r.spawned_pid(&out)
    };
    let second = {
        let out = r.command("spawn echo svc/echo-2");
        r.spawned_pid(&out)
    };
    r.poll("names", |l| binds(l, "echo", first) && binds(l, "svc/echo-2", second), "both names bound");
    // A lookup gives a working endpoint, to each provider, as often as asked.
    for _ in 0..3 {
        let out = r.command("names lookup echo hello by name");
        r.check(out == "echo answered: hello by name", &format!("lookup echo: {out}"));
    }
    let out = r.command("names lookup svc/echo-2 second");
    r.check(out == "svc/echo-2 answered: second", &format!("lookup svc/echo-2: {out}"));
    // A second binder of a taken name is refused (it logs why and ends); the first keeps the name.
    let refused = {
        let out = r.command("spawn echo");
        r.spawned_pid(&out)
    };
    r.poll("ps", |ps| ps_row(ps, refused).is_none(), "the refused binder ends");
    let listing = r.command("names");
    r.check(binds(&listing, "echo", first), &format!("the first binder lost its name:\n{listing}"));
    // Clear errors: unknown names, invalid names, names bound by someone else.
    for (cmd, expected) in [
        ("names lookup nope hi", "error: lookup nope: no such name"),
        ("names lookup Bad!Name hi", "error: lookup Bad!Name: invalid name"),
        ("names unbind echo", "error: unbind echo: name bound by another process"),
        ("names unbind nope", "error: unbind nope: no such name"),
        ("names frobnicate", "error: usage: names"),
    ] {
        let out = r.command(cmd);
        r.check(out.starts_with(expected), &format!("`{cmd}`: expected `{expected}`, got: {out}"));
    }
    // A dead SIP's names go with it.
    r.command(&format!("kill {first}"));
    let listing = r.command("names");
    r.check(
        !listing.lines().any(|l| l.starts_with("echo ")) && binds(&listing, "svc/echo-2", second),
        &format!("the killed provider's name is still bound:\n{listing}"),
    );
    let out = r.command("names lookup echo hi");
    r.check(out.starts_with("error: lookup echo: no such name"), &format!("lookup of a dead name: {out}"));
    // The name service itself is a SIP: killed, the kernel starts another, and providers bind again.
    let ps = r.command("ps");
    let names_pid = ps
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("names"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| r.fail(&format!("no names SIP in ps:\n{ps}")))
        .to_owned();
    r.command(&format!("kill {names_pid}"));
    r.poll("names", |l| binds(l, "svc/echo-2", second), "the provider binds again after a restart");
    let out = r.command("names lookup svc/echo-2 again");
    r.check(out == "svc/echo-2 answered: again", &format!("lookup after a name-service restart: {out}"));
    r.shutdown();
}

/// A SIP's threads in every protection mode (in ring 3 each thread has a ring-3 stack of its own and waits in
/// its channel calls while the others run): workers serve a channel each, `ps` counts them, a kill ends them
/// all, a worker's panic ends its SIP, and every thread's stacks and the channels are given back.
#[test]
fn a_sip_runs_several_threads_and_ends_with_all_of_them() {
    let mut r = Runner::boot(&[]);
    r.command("log warn");
    for mode in ["type", "ring3", "ring3-own"] {
        let with = if mode == "type" { String::new() } else { format!("--protection {mode} ") };
        // Three worker threads serve a channel each; the first thread pings them all, then returns: the SIP ends.
        let out = r.command(&format!("run bench-threads {with}3"));
        r.check(out.contains("threads: 3 workers answered 300 pings"), &format!("three workers ({mode}): {out}"));
        let before = r.command("mem");
        // Held alive: `ps` counts its five threads (main + four workers); a kill ends them all.
        let pid = {
            let out = r.command(&format!("spawn bench-threads {with}4 hold"));
            r.spawned_pid(&out)
        };
        r.wait_for("threads: 4 workers answered 400 pings", scaled(30));
        let ps = r.command("ps");
        let row = ps_row(&ps, pid).unwrap_or_else(|| r.fail(&format!("pid {pid} not in ps:\n{ps}")));
        r.check(row.split_whitespace().nth(7) == Some("5"), &format!("threads of pid {pid} ({mode}): {row}"));
        r.command(&format!("kill {pid}"));
        let ps = r.command("ps");
        r.check(ps_row(&ps, pid).is_none(), &format!("killed SIP still listed ({mode}):\n{ps}"));
        // A worker that panics ends its whole SIP (and every other thread of it), nothing else.
        let out = r.command(&format!("run bench-threads {with}3 panic"));
        r.check(
            out.contains("panicked:") && out.contains("worker 2 panics on purpose"),
            &format!("panic ({mode}): {out}"),
        );
        let ps = r.command("ps");
        r.check(!ps.contains("bench-threads"), &format!("a bench-threads SIP is left ({mode}):\n{ps}"));
        // Every thread's stack, the arena and the channels are gone.
        let after = r.command("mem");
        let kept = |mem: &str| -> Vec<String> {
            mem.lines()
                .filter(|l| l.starts_with("frames in use:") || l.starts_with("exchange heap:"))
                .map(|l| l.split(" for page tables").next().unwrap_or(l).to_owned())
                .collect()
        };
        r.check(
            kept(&before) == kept(&after),
            &format!("memory not back ({mode}):\nbefore:\n{before}\nafter:\n{after}"),
        );
    }
    r.shutdown();
}
