//! Scenario tests of the multikernel bring-up: every enabled core runs its own kernel instance.
//!
//! Each test is one QEMU boot through the runner, judged by the serial console and the exit status only:
//! `--smp 1, 2, 8` (BIOS) and `--smp 4` (BIOS and UEFI) boot with every core online in `cpus`, each with a run
//! queue figure, and every replica equal (with 8, `bench scale` counts each multicast scheme's messages); `--smp 64` and `--smp 255` (the widest TCG gives) as well, with both
//! multicast schemes reaching the same replicas and a service on the last core reached by name; `selftest`
//! (which runs the per-core self-tests on every core) passes with `--smp 4`; `shutdown` stops the other cores
//! and exits 0; a panic on an application processor or on the boot core stops the machine
//! with the failure status and names the core; a core that does not start is reported and left out while the
//! rest run. The last two use the kernel's fw_cfg test hooks (`opt/plurality/panic-on-cpu`,
//! `opt/plurality/stall-cpu`), passed with `--qemu-arg`.

#![forbid(unsafe_code)]

mod harness;

use harness::{PROMPT, Runner, boot_timeout, command_timeout, exit_timeout, scaled};

/// One line of `cpus`: `  cpu I: apic id A, acpi id P: online[, boot core], run queue Q, ...` or `...: offline ...`.
struct CoreLine {
    index: u32,
    online: bool,
    run_queue: Option<u32>,
}

fn parse_cpus(r: &Runner, out: &str, expected: usize) -> Vec<CoreLine> {
    let mut lines = out.lines();
    let first = lines.next().unwrap_or("");
    r.check(first == format!("cpus: {expected} (ACPI MADT)"), &format!("first line of `cpus`: {first:?}"));
    let cores: Vec<CoreLine> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let rest = line.trim().strip_prefix("cpu ").unwrap_or_else(|| r.fail(&format!("bad `cpus` line {line:?}")));
            let index = rest.split(':').next().and_then(|i| i.parse().ok());
            let state = rest.splitn(3, ": ").nth(2).unwrap_or("");
            let run_queue =
                state.split(", ").find_map(|part| part.strip_prefix("run queue ")).and_then(|n| n.trim().parse().ok());
            CoreLine {
                index: index.unwrap_or_else(|| r.fail(&format!("no core index in {line:?}"))),
                online: state.starts_with("online"),
                run_queue,
            }
        })
        .collect();
    r.check(cores.len() == expected, &format!("`cpus` lists {} cores, expected {expected}:\n{out}", cores.len()));
    for (i, core) in cores.iter().enumerate() {
        r.check(core.index == i as u32, &format!("core {i} listed as cpu {}:\n{out}", core.index));
    }
    cores
}

/// `cpus` lists `n` cores, every one online with a run-queue figure; the boot log says each AP came online.
fn assert_all_online(r: &mut Runner, n: usize) {
    let log = r.stdout();
    for i in 1..n {
        r.check(log.contains(&format!("cpu {i} (APIC id ")), &format!("no boot log line for cpu {i}"));
    }
    r.check(log.contains(&format!("{n} of {n} core(s) online")), &format!("boot log does not say {n} of {n} online"));
    let out = r.command("cpus");
    for core in parse_cpus(r, &out, n) {
        r.check(core.online, &format!("cpu {} is not online:\n{out}", core.index));
        r.check(core.run_queue.is_some(), &format!("cpu {} shows no run queue:\n{out}", core.index));
    }
}

/// Sends `shutdown` and checks that the other `n - 1` cores were stopped and the runner exited 0.
fn shutdown_stopping(mut r: Runner, n: usize) {
    if n == 1 {
        return r.shutdown();
    }
    r.send_line("shutdown");
    r.wait_for("Shutting down.", command_timeout());
    r.wait_for(&format!("stopped {} other core(s)", n - 1), command_timeout());
    let status = r.wait_exit(exit_timeout());
    r.check(status.code() == Some(0), &format!("after `shutdown` the runner exited with {status}, expected 0"));
}

/// A wide machine: every one of `n` cores online, every kernel instance's replicas equal (also after the
/// multicast schemes' self-test), a service on the last core reached by name, and `shutdown` stops them all. The boot is given longer than the others (255 cores start one after another under TCG).
fn wide_boot(n: usize) {
    let smp = n.to_string();
    let mut r = Runner::builder().args(["--headless", "--smp", smp.as_str()]).spawn();
    r.wait_for(PROMPT, scaled(300));
    assert_all_online(&mut r, n);
    assert_replicas_equal(&mut r, n);
    // Both multicast schemes agree, with SIPs spread over the machine (the highest cores among them).
    let out = r.command_within("selftest multicast", scaled(240));
    r.check(out.contains("multicast_schemes_reach_the_same_replicas ... ok"), &format!("multicast schemes:\n{out}"));
    // A service on the last core, reached by name from the first: wakes cross to core n - 1 and back.
    let out = r.command(&format!("spawn echo --core {} far-away", n - 1));
    r.spawned_pid(&out);
    r.poll(
        "names lookup far-away hello",
        |a| a.contains("far-away answered: hello"),
        &format!("echo on cpu {}", n - 1),
    );
    shutdown_stopping(r, n);
}

/// `replicas` lists `n` replicas, all equal (once the updates of the boot have arrived).
fn assert_replicas_equal(r: &mut Runner, n: usize) {
    let out = r.poll("replicas", |out| out.lines().any(|l| l == "replicas: all equal"), "replicas disagree");
    r.check(out.lines().filter(|l| l.starts_with("cpu ")).count() == n, &format!("not {n} replicas:\n{out}"));
}

/// Every one of `n` cores online, and every kernel instance's replicas equal.
fn boot_and_list(args: &[&str], n: usize) {
    let mut r = Runner::boot(args);
    assert_all_online(&mut r, n);
    assert_replicas_equal(&mut r, n);
    shutdown_stopping(r, n);
}

#[test]
fn smp1_bios_one_core_online() {
    boot_and_list(&["--smp", "1"], 1);
}

#[test]
fn smp2_bios_both_cores_online() {
    boot_and_list(&["--smp", "2"], 2);
}

/// Eight cores online, and `bench scale` reports them with the messages of both multicast schemes: 14 per probe
/// (one to each other core, one back) either way; one by one the probing core handles all 14, along the tree no
/// core more than 8 (core 1: one in from core 0, three out to 5, 6 and 7, their three answers, one answer out).
#[test]
fn smp8_bios_all_cores_online_and_bench_scale_counts_each_schemes_messages() {
    let mut r = Runner::boot(&["--smp", "8"]);
    assert_all_online(&mut r, 8);
    assert_replicas_equal(&mut r, 8);
    let out = r.command_within("bench scale", scaled(120));
    let line =
        out.lines().find(|l| l.starts_with("scale ")).unwrap_or_else(|| r.fail(&format!("no scale line:\n{out}")));
    for pair in
        ["cores=8", "of=8", "messages_one_by_one=14", "busiest_one_by_one=14", "messages_tree=14", "busiest_tree=8"]
    {
        r.check(line.split_whitespace().any(|w| w == pair), &format!("`{pair}` missing from: {line}"));
    }
    let value = |key: &str| line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='));
    r.check(value("start_ms").is_some_and(|ms| ms != "0.000"), &format!("no bring-up time in: {line}"));
    for key in ["update_one_by_one", "update_tree", "bind_unbind"] {
        let spread: Option<Vec<u64>> = value(key).and_then(|v| v.split('/').map(|n| n.parse().ok()).collect());
        r.check(
            spread.is_some_and(|s| s.len() == 3 && s[1] <= s[0] && s[0] <= s[2] && s[1] > 0),
            &format!("{key} is not median/min/max in: {line}"),
        );
    }
    shutdown_stopping(r, 8);
}

#[test]
fn smp64_bios_every_core_online_and_replicas_agree() {
    wide_boot(64);
}

/// The widest machine QEMU's TCG gives: 255 cores (xAPIC IDs; TCG has no x2APIC).
#[test]
fn smp255_bios_every_core_online_and_replicas_agree() {
    wide_boot(255);
}

/// A machine with too little memory for its cores (128 cores in 48 MiB) boots with the cores it can serve,
/// says so, and works: the others are listed offline, a service on the last started core is reached by name,
/// and `shutdown` stops the started ones.
#[test]
fn a_machine_short_of_memory_starts_the_cores_it_can_serve() {
    let mut r = Runner::builder().args(["--headless", "--smp", "128", "--memory", "48"]).spawn();
    r.wait_for(PROMPT, scaled(300));
    let log = r.stdout();
    let served = log
        .split(" cores; the other ")
        .next()
        .and_then(|head| head.rsplit(" serves ").next())
        .and_then(|n| n.strip_suffix(" of 128"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| r.fail("no 'memory: ... serves N of 128 cores' line in the boot log"));
    r.check((2..128).contains(&served), &format!("{served} of 128 cores served in 48 MiB"));
    r.check(log.contains(&format!("{served} of 128 core(s) online")), &format!("not {served} of 128 online"));
    let out = r.command("cpus");
    let cores = parse_cpus(&r, &out, 128);
    r.check(cores.iter().filter(|c| c.online).count() == served, &format!("not {served} online in `cpus`:\n{out}"));
    r.check(cores.iter().take(served).all(|c| c.online), &format!("the first {served} are not the online ones"));
    let out = r.command(&format!("spawn echo --core {} last-core", served - 1));
    r.spawned_pid(&out);
    let what = format!("echo on cpu {}", served - 1);
    r.poll("names lookup last-core hello", |a| a.contains("last-core answered: hello"), &what);
    shutdown_stopping(r, served);
}

#[test]
fn smp4_uefi_all_cores_online() {
    boot_and_list(&["--uefi", "--smp", "4"], 4);
}

#[test]
fn smp4_bios_cores_online_selftest_passes_and_shutdown_stops_them() {
    let mut r = Runner::boot(&["--smp", "4"]);
    assert_all_online(&mut r, 4);
    let out = r.command_within("selftest", scaled(180));
    r.check(
        out.lines().any(|l| l == "selftest smp::per_core_selftests_pass_on_every_core ... ok"),
        &format!("the per-core self-tests did not pass on every core:\n{out}"),
    );
    let summary = out.lines().rev().find(|l| l.starts_with("selftest: ")).unwrap_or("");
    r.check(summary.ends_with(" passed, 0 failed"), &format!("selftest summary: {summary:?}\n{out}"));
    shutdown_stopping(r, 4);
}

fn boot_with_hook(hook: &str, core: u32) -> Runner {
    let file = format!("--qemu-arg=name=opt/plurality/{hook},string={core}");
    Runner::builder().args(["--headless", "--smp", "4", "--qemu-arg=-fw_cfg", file.as_str()]).spawn()
}

fn assert_panic_exit(r: &mut Runner) {
    let status = r.wait_exit(exit_timeout());
    r.check(status.code() == Some(1), &format!("runner exited with {status}, expected 1 (kernel panic)"));
    r.check(r.stderr().contains("plurality: kernel panicked"), "runner did not say `kernel panicked` on stderr");
}

#[test]
fn panic_on_an_application_processor_stops_the_machine_naming_the_core() {
    let mut r = boot_with_hook("panic-on-cpu", 2);
    // The boot core keeps printing meanwhile: the report must still come out whole.
    r.wait_for(PROMPT, boot_timeout());
    r.send_line("repeat 100 help");
    r.wait_for("KERNEL PANIC on cpu 2 at ", boot_timeout());
    let line = r.wait_for("\n", command_timeout());
    r.check(line.contains("deliberate panic on cpu 2"), &format!("panic line without its message: {line:?}"));
    assert_panic_exit(&mut r);
}

#[test]
fn panic_on_the_boot_core_with_four_cores_names_cpu_0() {
    let mut r = Runner::boot(&["--smp", "4"]);
    r.send_line("panic boom");
    r.wait_for("KERNEL PANIC on cpu 0 at ", command_timeout());
    r.wait_for("boom", command_timeout());
    assert_panic_exit(&mut r);
}

#[test]
fn a_core_that_does_not_start_is_reported_and_left_out() {
    let mut r = boot_with_hook("stall-cpu", 2);
    r.wait_for("cpu 2 (APIC id 2) did not start", boot_timeout());
    r.wait_for("3 of 4 core(s) online", boot_timeout());
    r.wait_for(PROMPT, boot_timeout());
    let out = r.command("cpus");
    let cores = parse_cpus(&r, &out, 4);
    for core in &cores {
        r.check(core.online == (core.index != 2), &format!("wrong online state for cpu {}:\n{out}", core.index));
    }
    r.check(
        out.lines().any(|l| l.trim() == "cpu 2: apic id 2, acpi id 2: offline (did not start)"),
        &format!("cpu 2 not reported as not started:\n{out}"),
    );
    shutdown_stopping(r, 3);
}
