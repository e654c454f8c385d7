//! Scenario tests of the multikernel at work (`--smp 4`): SIPs placed on every core, channels and name lookups
//! across cores, a crash on one core that the others survive, concurrent binds of the same names from every
//! core with exactly one winner each, replicas that agree, and memory back at its baseline after a thousand SIP
//! lifetimes spread over the cores.
//!
//! Judged by the console only: `spawn --core`, `ps` (its CORE column), `ping`, `names`, `fault --core`,
//! `replicas`, `mem`, and the lines SIPs log.

#![forbid(unsafe_code)]

mod harness;

use harness::{Runner, scaled};
use std::time::Duration;

/// The CORE column of `pid`'s `ps` row.
fn core_of(ps: &str, pid: u64) -> Option<u32> {
    ps.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&pid.to_string().as_str()))
        .and_then(|f| f.get(2)?.parse().ok())
}

/// Whether `replicas` reports every core's replicas equal, for `cores` cores.
fn replicas_equal(out: &str, cores: usize) -> bool {
    out.lines().filter(|l| l.starts_with("cpu ") && l.contains("processes version")).count() == cores
        && out.lines().any(|l| l == "replicas: all equal")
}

/// The uptime in milliseconds, from `uptime` (`up S.MMM s, ...`).
fn uptime_ms(r: &mut Runner) -> u64 {
    let out = r.command("uptime");
    let seconds = out.strip_prefix("up ").and_then(|rest| rest.split(' ').next());
    let parsed = seconds
        .and_then(|s| s.split_once('.'))
        .and_then(|(s, ms)| Some((s.parse::<u64>().ok()?, ms.parse::<u64>().ok()?)));
    parsed.map_or_else(|| r.fail(&format!("cannot read `uptime`: {out}")), |(s, ms)| s * 1000 + ms)
}

#[test]
fn sips_on_every_core_talk_across_cores_and_survive_a_crash_elsewhere() {
    let mut r = Runner::boot(&["--smp", "4"]);
    r.command("log error");
    // Placement: an explicit core, and the default (least loaded) spreads new SIPs over the cores.
    let mut pids = Vec::new();
    for core in 0..4 {
        let out = r.command(&format!("spawn echo --core {core} svc-{core}"));
        pids.push(r.spawned_pid(&out));
    }
    let ps = r.command("ps");
    for (core, pid) in pids.iter().enumerate() {
        r.check(core_of(&ps, *pid) == Some(core as u32), &format!("pid {pid} not on core {core}:\n{ps}"));
    }
    let out = r.command("spawn echo --core 9");
    r.check(out.starts_with("error: cannot spawn 'echo': no such core"), &format!("spawn on a missing core: {out}"));

    // Cross-core channels: the shell (core 0) talks to each echo through a name, wherever it runs.
    r.poll("names", |l| (0..4).all(|c| l.contains(&format!("svc-{c} "))), "all four names bound");
    for core in 0..4 {
        let out = r.command(&format!("names lookup svc-{core} hello core {core}"));
        r.check(out == format!("svc-{core} answered: hello core {core}"), &format!("lookup svc-{core}: {out}"));
    }
    // A ping-pong to an echo SIP the default placement puts on another core than the shell's.
    let out = r.command("ping 200");
    r.check(out.contains("ping: 200 round trips"), &format!("cross-core ping: {out}"));

    // A SIP on core 3 crashes mid-protocol: its peer on core 0 sees Closed, and everything else keeps working.
    let out = r.command_within("fault panic --core 3", scaled(30));
    r.check(out.contains("fault panic: peer saw Closed"), &format!("crash on core 3: {out}"));
    let out = r.command("names lookup svc-0 still here");
    r.check(out == "svc-0 answered: still here", &format!("core 0 after the crash: {out}"));
    let out = r.command("names lookup svc-3 also here");
    r.check(out == "svc-3 answered: also here", &format!("core 3 after the crash: {out}"));

    // Killing a SIP of another core ends it there, and every replica (processes and names) forgets it.
    r.command(&format!("kill {}", pids[2]));
    let out = r.command("names lookup svc-2 gone");
    r.check(out.starts_with("error: lookup svc-2: no such name"), &format!("name of a killed SIP: {out}"));
    r.poll("replicas", |out| replicas_equal(out, 4), "replicas agree after kills and a crash");
    r.shutdown();
}

#[test]
fn concurrent_binds_from_every_core_have_one_winner_per_name() {
    let mut r = Runner::boot(&["--smp", "4"]);
    // Four binders, one per core, all bind race-0..race-19 at the same moment (a little after the last spawn).
    let start = uptime_ms(&mut r) + 600;
    let mut pids = Vec::new();
    for core in 0..4 {
        let out = r.command(&format!("spawn bench-binder --core {core} race 20 {start}"));
        pids.push(r.spawned_pid(&out));
    }
    // The reports come in any order: read them from the whole output once all four are there.
    let deadline = std::time::Instant::now() + scaled(30);
    let reports: Vec<String> = loop {
        let log = r.stdout();
        let reports: Vec<String> = log
            .lines()
            .filter(|l| l.contains("[bench-binder#") && l.contains("binder on cpu "))
            .map(str::to_owned)
            .collect();
        if reports.len() == pids.len() {
            break reports;
        }
        if std::time::Instant::now() > deadline {
            r.fail(&format!("{} of {} binder reports after 30 s", reports.len(), pids.len()));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut won = 0;
    for report in &reports {
        let count = report.split("won ").nth(1).and_then(|w| w.split(' ').next()).and_then(|n| n.parse::<u32>().ok());
        won += count.unwrap_or_else(|| r.fail(&format!("cannot read the binder's report: {report}")));
    }
    r.check(won == 20, &format!("the binders won {won} names in all, expected exactly 20"));
    r.command("log error");
    let listing = r.poll("names", |l| l.lines().filter(|l| l.starts_with("race-")).count() == 20, "20 names");
    for i in 0..20 {
        let owners: Vec<&str> = listing
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(format!("race-{i}").as_str()))
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        r.check(
            owners.len() == 1 && pids.iter().any(|p| owners[0] == p.to_string()),
            &format!("race-{i} is not held by exactly one binder:\n{listing}"),
        );
    }
    let out = r.poll("replicas", |out| replicas_equal(out, 4), "replicas agree after the race");
    r.check(out.contains("(20 names)"), &format!("replicas do not all hold the 20 names:\n{out}"));
    r.shutdown();
}

/// `mem` once two readings in a row agree: a SIP's last thread frees its stack on its own core just after the
/// end is reported, and on four cores the next command may run in between.
fn settled_mem(r: &mut Runner) -> String {
    let mut last = r.command("mem");
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(50));
        let now = r.command("mem");
        if now == last {
            return now;
        }
        last = now;
    }
    r.fail(&format!("`mem` never settled:\n{last}"))
}

#[test]
fn a_thousand_lifetimes_over_four_cores_leave_memory_at_baseline() {
    let mut r = Runner::boot(&["--smp", "4"]);
    r.command("log error");
    // Warm-up: page tables, free lists and queue capacity that later lifetimes reuse.
    r.command_within("repeat 100 run template", scaled(60));
    let before = settled_mem(&mut r);
    let out = r.command_within("repeat 1000 run template", scaled(300));
    r.check(out.contains("repeat: 1000 runs"), &format!("spawn->exit cycles: {out}"));
    // They were spread: the replicas counted updates on every core (two per lifetime, all applied everywhere).
    let replicas = r.poll("replicas", |out| replicas_equal(out, 4), "replicas agree after 1000 lifetimes");
    let version = replicas
        .lines()
        .find_map(|l| l.split("processes version ").nth(1)?.split(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    r.check(version >= 2080, &format!("replicas applied {version} updates, expected over 2080:\n{replicas}"));
    let after = settled_mem(&mut r);
    // Frames for data and the exchange heap must be exactly where they were. The kernel heap must be within a
    // few hundred bytes: its B-trees (replicas, SIP tables, sleepers) keep or free a node depending on the most
    // SIPs that were ever alive at once, which four cores racing make differ from run to run; a leak of even one
    // 16-byte allocation per lifetime would show as 16,000 bytes here.
    let exact = |mem: &str| -> Vec<String> {
        mem.lines()
            .filter_map(|l| {
                if let Some(rest) = l.strip_prefix("frames in use: ") {
                    rest.split(" for data").next().map(|data| format!("data frames {data}"))
                } else {
                    l.starts_with("exchange heap:").then(|| l.to_owned())
                }
            })
            .collect()
    };
    let heap_used = |mem: &str| -> Option<i64> {
        mem.lines().find_map(|l| l.strip_prefix("heap: ")?.split(' ').next()?.parse().ok())
    };
    r.check(exact(&before).len() == 2, &format!("unexpected `mem` output:\n{before}"));
    let drift = heap_used(&after).zip(heap_used(&before)).map(|(a, b)| a - b);
    r.check(
        exact(&before) == exact(&after) && drift.is_some_and(|d| d.abs() < 1024),
        &format!("memory not at baseline (kernel heap drift {drift:?} bytes):\nbefore:\n{before}\nafter:\n{after}"),
    );
    r.shutdown();
}
