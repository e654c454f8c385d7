//! Protection modes from the console (issue 13, docs/protection.md): the programs of the ring-3 image and services
//! (with their contracts: echo and kv talk to the ring-0 shell) start with `--protection ring3|ring3-own`, `ps` shows each SIP's mode, every fault of the deliberately unsafe
//! program and of the safe one that exploits a compiler bug ends only that SIP with a line that names it, the
//! kernel refuses to start them in ring 0, and the frames come back.
//!
//! A service that spawns (the `bench` driver) runs unchanged in ring 3. The self-tests
//! `sip::ring3::selftests::*` (run by `selftest` here too) cover the rest of the fault matrix, the fuzzer,
//! another SIP's memory in each mode and the spawn/exit cycles.

#![forbid(unsafe_code)]

mod harness;

use harness::{Runner, ps_row, scaled};

/// The cells after `row`'s name in a benchmark table `out`; fails the test if the row is missing.
fn row_cells<'a>(r: &Runner, out: &'a str, row: &str) -> Vec<&'a str> {
    let line = out.lines().find(|l| l.starts_with(row)).unwrap_or_else(|| r.fail(&format!("no '{row}' row:\n{out}")));
    line[row.len()..].split_whitespace().collect()
}

/// No ring-3 SIP is left in `ps`, and the data frames in `mem` are what they were in `before` (a `mem` output).
fn assert_no_ring3_sip_and_frames_back(r: &mut Runner, before: &str) {
    let ps = r.command("ps");
    r.check(!ps.contains("ring3"), &format!("a ring-3 SIP is left:\n{ps}"));
    let after = r.command("mem");
    r.check(
        data_frames(before).is_some() && data_frames(before) == data_frames(&after),
        &format!("data frames not back at baseline:\nbefore:\n{before}\nafter:\n{after}"),
    );
}

/// Frames in use for data, from `mem`.
fn data_frames(mem: &str) -> Option<u64> {
    mem.lines().find_map(|l| l.strip_prefix("frames in use: ")?.split_whitespace().next()?.parse().ok())
}

#[test]
fn ring3_programs_run_fault_alone_and_are_refused_in_ring_0() {
    let mut r = Runner::boot(&[]);
    let warm = r.command("run hello --protection ring3-own");
    r.check(warm.contains("hello from ring 3 (Rust), args ''"), &format!("hello: {warm}"));
    let before = r.command("mem");

    let out = r.command("run hello --protection ring3 a b");
    r.check(out.contains("hello from ring 3 (Rust), args 'a b'"), &format!("hello in ring3: {out}"));
    // The same service crate in every mode: `template` logs its id and arguments.
    for mode in ["type", "ring3", "ring3-own"] {
        let out = r.command(&format!("run template --protection {mode} in {mode}"));
        r.check(out.contains(&format!("(args: 'in {mode}')")), &format!("template in {mode}: {out}"));
    }
    let kernel = "0xffff800000000000";
    for mode in ["ring3", "ring3-own"] {
        for (args, expected) in [
            (format!("unsafe-test --protection {mode} cli"), "faulted: general protection fault in ring 3".to_owned()),
            (
                format!("unsafe-test --protection {mode} write {kernel}"),
                format!("faulted: page fault in ring 3: write of {kernel} (kernel memory)"),
            ),
            (
                format!("unsafe-test --protection {mode} jump {kernel}"),
                format!("faulted: page fault in ring 3: execute of {kernel} (kernel memory)"),
            ),
            (format!("unsafe-test --protection {mode} recurse"), "faulted: stack overflow in ring 3".to_owned()),
            (
                format!("soundness --protection {mode} {kernel}"),
                format!("faulted: page fault in ring 3: write of {kernel} (kernel memory)"),
            ),
        ] {
            let mut out = r.command_within(&format!("run {args}"), scaled(30));
            if !out.contains(&expected) {
                out.push_str(&r.wait_for(&expected, scaled(10)));
            }
            r.check(out.contains(&expected), &format!("`run {args}` did not report '{expected}':\n{out}"));
        }
    }

    // A spinning ring-3 SIP: listed with its mode, the console still answers, a kill ends it.
    let pid = {
        let out = r.command("spawn unsafe-test --protection ring3-own spin");
        r.spawned_pid(&out)
    };
    let ps = r.command("ps");
    let row = ps_row(&ps, pid).unwrap_or_else(|| r.fail(&format!("pid {pid} not in ps:\n{ps}")));
    r.check(row.contains("unsafe-test") && row.contains(" ring3-own "), &format!("ps row: {row}"));
    let up = r.command("uptime");
    r.check(up.starts_with("up "), &format!("uptime while a ring-3 SIP spins: {up}"));
    let killed = r.command(&format!("kill {pid}"));
    r.check(killed.contains(&format!("killed {pid}")), &format!("kill: {killed}"));

    for (cmd, expected) in [
        ("spawn unsafe-test cli", "cannot spawn 'unsafe-test': not verified code"),
        ("spawn unsafe-test --protection type cli", "cannot spawn 'unsafe-test': not verified code"),
        ("spawn fault --protection ring3", "cannot spawn 'fault': no ring-3 build"),
        ("spawn no-such --protection ring3-own", "cannot spawn 'no-such': no such service"),
        ("spawn hello --protection ring4", "'ring4' is not a protection mode"),
        ("spawn hello --protection ring3 --core 9", "cannot spawn 'hello': no such core"),
    ] {
        let out = r.command(cmd);
        r.check(out.starts_with("error: ") && out.contains(expected), &format!("`{cmd}` gave: {out}"));
    }
    // `bench protection`: every row measured in every mode that has it.
    let bench = r.command_within("bench protection", scaled(120));
    for row in [
        "null call",
        "thread yield (alone)",
        "yield A->B->A (two SIPs)",
        "SIP create + exit",
        "ping-pong (one SIP)",
        "ping-pong (same core)",
        "ping-pong, receiver parks",
        "ring 0 -> ring 3 (same core)",
        "kv workload (per request)",
        "kv: ring 0 -> ring 3",
    ] {
        let cells = row_cells(&r, &bench, row);
        // The first cell is the `type` figure, or `-` for the mixed pair (which has no `type` column).
        r.check(
            !cells.is_empty()
                && cells.iter().all(|c| *c != "failed")
                && (cells[0].parse::<u64>().is_ok() || cells[0] == "-"),
            &format!("`bench protection` row {row}: {cells:?}"),
        );
    }
    assert_no_ring3_sip_and_frames_back(&mut r, &before);
    r.shutdown();
}

#[test]
fn ring3_sips_run_on_another_core() {
    let mut r = Runner::boot(&["--smp", "2"]);
    let pid = {
        let out = r.command("spawn unsafe-test --protection ring3-own --core 1 spin");
        r.spawned_pid(&out)
    };
    let ps = r.command("ps");
    let row = ps_row(&ps, pid).unwrap_or_else(|| r.fail(&format!("pid {pid} not in ps:\n{ps}")));
    let fields: Vec<&str> = row.split_whitespace().collect();
    r.check(fields.get(2) == Some(&"1") && fields.contains(&"ring3-own"), &format!("ps row: {row}"));
    let killed = r.command(&format!("kill {pid}"));
    r.check(killed.contains(&format!("killed {pid}")), &format!("kill: {killed}"));
    for mode in ["ring3", "ring3-own"] {
        let mut out = r.command(&format!("run template --core 1 --protection {mode} on core 1"));
        if !out.contains("(args: 'on core 1')") {
            out.push_str(&r.wait_for("(args: 'on core 1')", scaled(10)));
        }
        r.check(out.contains("(args: 'on core 1')"), &format!("template on core 1 in {mode}: {out}"));
        let expected = "faulted: page fault in ring 3: write of 0xffff800000000000 (kernel memory)";
        let mut out = r.command(&format!("run unsafe-test --protection {mode} --core 1 write 0xffff800000000000"));
        if !out.contains(expected) {
            out.push_str(&r.wait_for(expected, scaled(10)));
        }
        r.check(out.contains(expected), &format!("unsafe-test on core 1 in {mode}: {out}"));
        // A ring-3 kv on the other core (the least loaded: core 0 has the name service and the shell), its
        // channel to the ring-0 shell crossing both the ring boundary and the cores.
        let out = r.command(&format!("kv --protection {mode} put where core-1"));
        r.check(out.contains("stored where"), &format!("kv put across cores in {mode}: {out}"));
        let ps = r.command("ps");
        let kv = ps.lines().find(|l| l.contains(" kv ")).unwrap_or_else(|| r.fail(&format!("no kv in ps:\n{ps}")));
        let fields: Vec<&str> = kv.split_whitespace().collect();
        r.check(fields.get(2) == Some(&"1") && fields.contains(&mode), &format!("kv row: {kv}"));
        let out = r.command("kv get where");
        r.check(out.contains("core-1"), &format!("kv get across cores in {mode}: {out}"));
        let out = r.command("kv quit");
        r.check(out.contains("ended"), &format!("kv quit across cores in {mode}: {out}"));
    }
    r.shutdown();
}

/// A service that spawns runs unchanged in ring 3: the `bench` driver in its own address space starts its
/// partners (with startup values: the echo SIPs' server ends), waits for them, kills them, binds names and
/// probes every core, and prints the whole table; nothing it started is left behind.
#[test]
fn a_service_that_spawns_runs_in_ring_3() {
    let mut r = Runner::boot(&["--smp", "2"]);
    let out = r.command_within("run bench --protection ring3-own", scaled(180));
    for row in [
        "ABI call",
        "thread yield A->B->A",
        "message ping-pong (same core)",
        "ping-pong, receiver parks",
        "message ping-pong (cross core)",
        "message to all cores + acks (tree)",
        "name bind + unbind",
        "SIP create + exit",
    ] {
        let cells = row_cells(&r, &out, row);
        let median = cells.first().and_then(|n| n.parse::<u64>().ok());
        r.check(median.is_some_and(|m| m > 0), &format!("'{row}' has no figure: {cells:?}"));
    }
    r.check(
        !out.contains("bench: cannot") && !out.contains("failed"),
        &format!("the ring-3 bench failed a step:\n{out}"),
    );
    let ps = r.poll("ps", |ps| !ps.contains(" bench") && !ps.contains(" echo "), "the bench left SIPs behind");
    r.check(ps.lines().count() >= 3, &format!("ps lists too little:\n{ps}"));
    r.shutdown();
}

/// The console's shell itself in ring 3 (`--shell-protection ring3-own`): `ps` lists it so, and it spawns and
/// lists SIPs, looks names up, keeps a kv session, reads the cores, runs self-tests (on a kernel thread of their
/// own) and shuts the machine down, all through the ring-3 ABI.
#[test]
fn the_shell_runs_in_ring_3() {
    let mut r = Runner::boot(&["--smp", "2", "--shell-protection", "ring3-own"]);
    r.check(r.stdout().contains("console: the shell runs in ring3-own"), "no boot line for the shell's mode");
    let ps = r.command("ps");
    let shell = ps.lines().find(|l| l.contains(" shell ")).unwrap_or_else(|| r.fail(&format!("no shell in ps:\n{ps}")));
    r.check(shell.split_whitespace().any(|f| f == "ring3-own"), &format!("shell row: {shell}"));
    let out = r.command("spawn echo from-ring-3");
    r.spawned_pid(&out);
    r.poll("names lookup from-ring-3 hi", |a| a.contains("from-ring-3 answered: hi"), "echo spawned by a ring-3 shell");
    let out = r.command("run template --protection ring3 nested");
    r.check(out.contains("(args: 'nested')"), &format!("a ring-3 template from the ring-3 shell: {out}"));
    let out = r.command("kv put k v");
    r.check(out.contains("stored k"), &format!("kv put: {out}"));
    let out = r.command("kv get k");
    r.check(out.trim() == "v", &format!("kv get: {out}"));
    let out = r.command("cpus");
    r.check(out.starts_with("cpus: 2"), &format!("cpus: {out}"));
    // The self-tests, on a kernel thread of their own (the ring-3 shell's kernel stack is too small for them).
    let out = r.command("selftest sched::");
    let summary = out.lines().find(|l| l.starts_with("selftest: ")).unwrap_or_default();
    r.check(
        summary.ends_with(" passed, 0 failed") && !summary.starts_with("selftest: 0 passed"),
        &format!("selftest from ring 3: {out}"),
    );
    let out = r.command("selftest no-test-has-this-name");
    r.check(out.contains("selftest: 0 passed, 0 failed"), &format!("selftest matching nothing: {out}"));
    r.shutdown();
}

/// Services with contracts in ring 3, talking to the ring-0 shell over the same contracts: `echo` in both ring-3
/// modes (text, then numbers), `kv` in each (kept between commands, listed by `ps` with its mode, refusing a
/// change of mode while it runs), and everything ends with its memory back.
#[test]
fn services_talk_across_rings() {
    let mut r = Runner::boot(&[]);
    let warm = r.command("echo --protection ring3-own warm");
    r.check(warm.contains("warm"), &format!("echo (warm-up): {warm}"));
    let before = r.command("mem");
    for mode in ["ring3", "ring3-own"] {
        let out = r.command(&format!("echo --protection {mode} hello from {mode}"));
        r.check(out.contains(&format!("hello from {mode}")), &format!("echo in {mode}: {out}"));
        let out = r.command(&format!("ping --protection {mode} 50"));
        r.check(
            out.contains("ping: 50 round trips to echo#") && out.contains(&format!("({mode})")),
            &format!("ping in {mode}: {out}"),
        );

        let out = r.command(&format!("kv --protection {mode} put greeting hello {mode}"));
        r.check(out.contains("stored greeting"), &format!("kv put in {mode}: {out}"));
        let out = r.command("kv get greeting");
        r.check(out.contains(&format!("hello {mode}")), &format!("kv get in {mode}: {out}"));
        let out = r.command("kv get absent");
        r.check(out.contains("error: get absent: NotFound"), &format!("kv miss in {mode}: {out}"));
        let other = if mode == "ring3" { "ring3-own" } else { "ring3" };
        let out = r.command(&format!("kv --protection {other} list"));
        r.check(out.contains(&format!("runs under {mode}")), &format!("kv mode switch while running: {out}"));
        let ps = r.command("ps");
        r.check(
            ps.lines().any(|l| l.contains(" kv ") && l.contains(&format!(" {mode} "))),
            &format!("kv in {mode} not listed with its mode:\n{ps}"),
        );
        let out = r.command("kv quit");
        r.check(out.contains("ended"), &format!("kv quit in {mode}: {out}"));

        // An echo that binds a name through the (ring-0) name service, looked up from the ring-0 shell: the
        // lookup's server end crosses into ring 3 inside the name service's `Connect`.
        let name = format!("echo-{mode}");
        let pid = {
            let out = r.command(&format!("spawn echo --protection {mode} {name}"));
            r.spawned_pid(&out)
        };
        r.poll("names", |listed| listed.contains(&name), &format!("{name} not bound"));
        let out = r.command(&format!("names lookup {name} hello by name"));
        r.check(out.contains(&format!("{name} answered: hello by name")), &format!("lookup of {name}: {out}"));
        let killed = r.command(&format!("kill {pid}"));
        r.check(killed.contains(&format!("killed {pid}")), &format!("kill: {killed}"));
    }
    // A ring-3 SIP that drops an endpoint mid-protocol says so in the log (debug level), as the kernel says it of
    // a ring-0 one: `bench-ring3 selfloop` ends with both ends of its Echo channel in `Ready`.
    r.command("log debug");
    let out = r.command("run bench-ring3 --protection ring3 selfloop 5");
    r.check(
        out.contains("[bench-ring3#")
            && out.contains("dropped its Echo client endpoint in state Ready, its peer still there (mid-protocol)"),
        &format!("no mid-protocol report from ring 3: {out}"),
    );
    r.command("log info");
    let out = r.command("echo --protection ring5 x");
    r.check(out.starts_with("error: ") && out.contains("'ring5' is not a protection"), &format!("bad mode: {out}"));
    assert_no_ring3_sip_and_frames_back(&mut r, &before);
    r.shutdown();
}

/// The name service itself in every mode (`names restart --protection MODE`), serving providers in every mode:
/// an echo in each mode binds its name again after each restart (the old instance's names are released with
/// it), and the ring-0 shell looks each up through the name service in ring 3 or ring 0. The name service's
/// registry calls cross from ring 3 through the `KERNEL` call; a refusal crosses back (the shell may not
/// unbind an echo's name: `NotOwner`).
#[test]
fn the_name_service_runs_in_every_mode() {
    let mut r = Runner::boot(&[]);
    let modes = ["type", "ring3", "ring3-own"];
    let pids: Vec<u64> = modes
        .iter()
        .map(|mode| {
            let out = r.command(&format!("spawn echo --protection {mode} by-{mode}"));
            r.spawned_pid(&out)
        })
        .collect();
    for names_mode in ["ring3-own", "ring3", "type"] {
        let out = r.command(&format!("names restart --protection {names_mode}"));
        r.check(
            out.contains(&format!("the name service runs in {names_mode}")),
            &format!("restart in {names_mode}: {out}"),
        );
        let ps = r.command("ps");
        r.check(
            ps.lines().any(|l| l.contains(" names ") && l.contains(&format!(" {names_mode} "))),
            &format!("names not listed in {names_mode}:\n{ps}"),
        );
        // Each echo sees its provider end close with the old name service and binds its name again (retrying
        // every 200 ms while the new one starts).
        let rebound = |listed: &str| modes.iter().all(|mode| listed.contains(&format!("by-{mode}")));
        let listed = r.poll("names", rebound, "the echos did not bind their names again");
        for (mode, pid) in modes.iter().zip(&pids) {
            let name = format!("by-{mode}");
            r.check(
                listed.lines().any(|l| l.starts_with(&name) && l.contains(&format!(" {pid} ")) && l.ends_with("Echo")),
                &format!("{name} (pid {pid}) not bound again under names in {names_mode}:\n{listed}"),
            );
            let out = r.command(&format!("names lookup {name} hi from {names_mode}"));
            r.check(
                out.contains(&format!("{name} answered: hi from {names_mode}")),
                &format!("lookup of {name} through names in {names_mode}: {out}"),
            );
        }
        let out = r.command("names unbind by-type");
        r.check(
            out.starts_with("error: unbind by-type: ") && out.contains("another"),
            &format!("the shell unbound an echo's name (names in {names_mode}): {out}"),
        );
        let out = r.command("names lookup nobody x");
        r.check(out.starts_with("error: lookup nobody: "), &format!("lookup of an unbound name: {out}"));
    }
    let out = r.command("names restart --protection ring5");
    r.check(out.starts_with("error: usage: names"), &format!("a bad mode: {out}"));
    for pid in &pids {
        let out = r.command(&format!("kill {pid}"));
        r.check(out.contains(&format!("killed {pid}")), &format!("kill {pid}: {out}"));
    }
    let out = r.command("names");
    r.check(out.contains("no names bound"), &format!("the killed echos' names are left:\n{out}"));
    r.shutdown();
}
