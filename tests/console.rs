//! Scenario tests: boot the real kernel in QEMU through the runner and drive its serial console.
//!
//! Each test is one boot (BIOS ~1.5 s of CPU under TCG, UEFI ~5 s), judged by the console's output and the
//! runner's exit status only, never by kernel internals. Several checks share a boot where they do not disturb
//! each other. The console contract these tests hold the kernel to is in README.md and the lead's issue 2:
//! prompt `plurality> `, echoed input, one `error: ` line for bad input, `selftest: N passed, M failed`,
//! `Shutting down.` then exit status 0, `KERNEL PANIC ...` then exit status 1.

#![forbid(unsafe_code)]

mod harness;

use std::time::{Duration, Instant};

use harness::{Runner, command_timeout, exit_timeout, scaled};

/// Every command `help` must list.
const COMMANDS: &[&str] = &["help", "mem", "cpus", "uptime", "log", "selftest", "shutdown"];

fn assert_help(r: &mut Runner) {
    let help = r.command("help");
    for name in COMMANDS {
        r.check(
            help.lines().any(|l| l.split_whitespace().next() == Some(name)),
            &format!("`help` does not list `{name}`:\n{help}"),
        );
    }
}

/// A boot log line: `[    0.123] LEVEL text`.
fn is_log_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else {
        return false;
    };
    let Some((stamp, text)) = rest.split_once("] ") else {
        return false;
    };
    let Some((secs, millis)) = stamp.trim_start().split_once('.') else {
        return false;
    };
    let level = text.split_whitespace().next().unwrap_or("");
    !secs.is_empty()
        && secs.chars().all(|c| c.is_ascii_digit())
        && millis.len() == 3
        && millis.chars().all(|c| c.is_ascii_digit())
        && ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level)
}

#[test]
fn bios_boot_help_and_shutdown() {
    let mut r = Runner::boot(&[]);
    let log = r.stdout();
    r.check(
        log.lines().any(|l| is_log_line(l.trim_end_matches('\r'))),
        "no boot log line of the form `[    0.123] INFO  text` before the prompt",
    );
    assert_help(&mut r);
    r.shutdown();
}

#[test]
fn uefi_boot_help_and_shutdown() {
    let mut r = Runner::boot(&["--uefi"]);
    assert_help(&mut r);
    r.shutdown();
}

#[test]
fn selftest_all_pass() {
    let mut r = Runner::boot(&[]);
    let out = r.command_within("selftest", scaled(120));
    let summary = out
        .lines()
        .rev()
        .find(|l| l.starts_with("selftest: "))
        .unwrap_or_else(|| r.fail(&format!("no `selftest: N passed, M failed` line:\n{out}")));
    let numbers = numbers_in(summary);
    r.check(
        numbers.len() == 2 && summary == format!("selftest: {} passed, {} failed", numbers[0], numbers[1]),
        &format!("summary line has the wrong form: {summary:?}"),
    );
    r.check(numbers[1] == 0, &format!("self-tests failed:\n{out}"));
    r.check(numbers[0] >= 6, &format!("only {} self-tests ran (expected at least 6)", numbers[0]));
    r.shutdown();
}

#[test]
fn bad_input_leaves_the_console_working() {
    let mut r = Runner::boot(&[]);

    // Far past the 256-byte line limit.
    let long = "x".repeat(10 * 1024);
    let out = r.command_within(&long, scaled(60));
    r.check(out.contains("error: line too long"), &format!("10 KiB line: {}", harness::tail(&out, 3)));

    // Random bytes, with NUL and 0xFF among them. Bytes the line editor treats as editing keys (Ctrl-C, Ctrl-U,
    // backspace, DEL, ESC sequences) or line ends are left out so that exactly one line reaches the console.
    let mut bytes = vec![b'a', 0x00, b'b', 0xff, 0x01, 0xfe];
    bytes.extend(pseudo_random_bytes(200, 0x5eed));
    bytes.push(b'\n');
    r.send(&bytes);
    let out = r.wait_for(harness::PROMPT, command_timeout());
    r.check(out.contains("error: "), &format!("random bytes gave no error line:\n{out}"));

    // Invalid UTF-8 alone.
    r.send(b"\xc3\x28 \xff\n");
    let out = r.wait_for(harness::PROMPT, command_timeout());
    r.check(out.contains("error: "), &format!("invalid UTF-8 gave no error line:\n{out}"));

    let out = r.command("frobnicate now");
    r.check(out.trim() == "error: unknown command 'frobnicate' (try 'help')", &format!("unknown command: {out:?}"));

    assert_help(&mut r);
    r.shutdown();
}

#[test]
fn smp4_lists_four_cores() {
    let mut r = Runner::boot(&["--smp", "4"]);
    let out = r.command("cpus");
    let mut lines = out.lines();
    let first = lines.next().unwrap_or("");
    r.check(first == "cpus: 4 (ACPI MADT)", &format!("first line of `cpus`: {first:?}"));
    let cores = lines.filter(|l| !l.trim().is_empty()).count();
    r.check(cores == 4, &format!("`cpus` lists {cores} cores, expected 4:\n{out}"));
    r.shutdown();
}

#[test]
fn kernel_panic_exits_1_with_the_message() {
    let mut r = Runner::boot(&[]);
    r.send_line("panic boom");
    r.wait_for("KERNEL PANIC", command_timeout());
    let status = r.wait_exit(exit_timeout());
    let out = r.stdout();
    let panic_line = out.lines().find(|l| l.contains("KERNEL PANIC")).unwrap_or("");
    r.check(panic_line.contains("boom"), &format!("panic line without the message: {panic_line:?}"));
    r.check(
        panic_line.contains(" at ") && panic_line.contains(".rs:"),
        &format!("panic line without a location: {panic_line:?}"),
    );
    r.check(status.code() == Some(1), &format!("runner exited with {status}, expected 1"));
    r.check(r.stderr().contains("plurality: kernel panicked"), "runner did not say `kernel panicked` on stderr");
}

#[test]
fn mem_uptime_and_log_answer_sensibly() {
    let mut r = Runner::boot(&["--memory", "128"]);

    // mem: frames used/free and heap used/free parse; the frames fit in the 128 MiB given to the guest and
    // most of it is usable.
    let out = r.command("mem");
    let frames = out.lines().find(|l| l.starts_with("frames")).unwrap_or("");
    let heap = out.lines().find(|l| l.starts_with("heap")).unwrap_or("");
    let (f_used, f_free) = (number_before(frames, "used"), number_before(frames, "free"));
    let (h_used, h_free) = (number_before(heap, "bytes used"), number_before(heap, "bytes free"));
    let (Some(f_used), Some(f_free), Some(_), Some(h_free)) = (f_used, f_free, h_used, h_free) else {
        r.fail(&format!("`mem` output does not parse:\n{out}"));
    };
    let frames_in_128_mib = 128 * 1024 * 1024 / 4096;
    r.check(
        f_used + f_free <= frames_in_128_mib && f_used + f_free >= frames_in_128_mib / 2,
        &format!("{f_used} + {f_free} frames is implausible for 128 MiB:\n{out}"),
    );
    r.check(f_free > 0 && h_free > 0, &format!("nothing free:\n{out}"));

    // uptime: increases with wall time, plausibly.
    let first = uptime_secs(&mut r);
    let wall = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let second = uptime_secs(&mut r);
    let elapsed = wall.elapsed().as_secs_f64();
    let delta = second - first;
    r.check(
        delta > 0.25 * elapsed && delta < elapsed + 2.0,
        &format!("uptime went from {first} to {second} s over {elapsed:.2} s of wall time"),
    );

    // log LEVEL: set, read back, reject nonsense, set back.
    let out = r.command("log debug");
    r.check(out.to_lowercase().contains("debug"), &format!("`log debug`: {out:?}"));
    let out = r.command("log");
    r.check(out.to_lowercase().contains("debug"), &format!("`log` after `log debug`: {out:?}"));
    let out = r.command("log loud");
    r.check(out.starts_with("error: "), &format!("`log loud`: {out:?}"));
    let out = r.command("log info");
    r.check(out.to_lowercase().contains("info"), &format!("`log info`: {out:?}"));

    r.shutdown();
}

/// `printf 'help\nshutdown\n' | cargo run -- --headless`: all input arrives before the kernel is up, then EOF.
#[test]
fn scripted_stdin_runs_help_then_shutdown() {
    let mut r = Runner::builder().args(["--headless"]).spawn();
    r.send(b"help\nshutdown\n");
    r.close_stdin();
    let status = r.wait_exit(harness::boot_timeout());
    let out = r.stdout();
    r.check(out.contains("selftest"), "the help listing is missing");
    r.check(out.contains("Shutting down."), "no `Shutting down.`");
    r.check(status.code() == Some(0), &format!("runner exited with {status}, expected 0"));
}

/// Keys typed on the PS/2 keyboard (injected through QEMU's monitor, `sendkey`) reach the same console.
#[test]
fn ps2_keyboard_types_commands() {
    let scratch = harness::ScratchDir::new("keyboard");
    let socket = scratch.path().join("monitor.sock");
    let monitor_arg = format!("unix:{},server=on,wait=off", socket.display());
    let mut r = Runner::boot(&["--qemu-arg", "-monitor", "--qemu-arg", &monitor_arg]);
    let mut monitor = std::os::unix::net::UnixStream::connect(&socket)
        .unwrap_or_else(|e| r.fail(&format!("cannot connect to the QEMU monitor at {}: {e}", socket.display())));
    // "uptime" then Enter, one key at a time; a lower-case key is its own name in QEMU's key list.
    for key in "uptime".chars().map(String::from).chain(["ret".to_owned()]) {
        use std::io::Write;
        let sent = monitor.write_all(format!("sendkey {key}\n").as_bytes());
        r.check(sent.is_ok(), "cannot write to the QEMU monitor");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = r.wait_for(" timer ticks", command_timeout());
    r.check(out.contains("uptime") && out.contains("up "), &format!("typed `uptime` did not run:\n{out}"));
    r.shutdown();
}

fn uptime_secs(r: &mut Runner) -> f64 {
    let out = r.command("uptime");
    out.split_whitespace()
        .find_map(|w| w.contains('.').then(|| w.parse::<f64>().ok()).flatten())
        .unwrap_or_else(|| r.fail(&format!("`uptime` shows no seconds: {out:?}")))
}

/// All unsigned integers in `text`.
fn numbers_in(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect()
}

/// The integer right before `word` in `text` (`"262 used"` → 262).
fn number_before(text: &str, word: &str) -> Option<u64> {
    let at = text.find(word)?;
    text[..at].split_whitespace().last()?.parse().ok()
}

/// Deterministic bytes (xorshift) without line ends and the line editor's editing keys.
fn pseudo_random_bytes(n: usize, mut state: u64) -> Vec<u8> {
    const SKIP: &[u8] = &[b'\r', b'\n', 0x03, 0x08, 0x15, 0x1b, 0x7f];
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let b = (state >> 24) as u8;
        if !SKIP.contains(&b) {
            out.push(b);
        }
    }
    out
}

#[test]
fn helpers_parse_what_the_console_prints() {
    assert!(is_log_line("[    0.123] INFO  text"));
    assert!(is_log_line("[   12.000] DEBUG kernel::x: y"));
    assert!(!is_log_line("INFO : bootloader line"));
    assert_eq!(number_before("frames: 9 total, 262 used, 7 free", "used"), Some(262));
    assert_eq!(number_before("heap: 5 bytes used, 6 bytes free", "bytes free"), Some(6));
    assert_eq!(numbers_in("selftest: 12 passed, 0 failed"), vec![12, 0]);
    let bytes = pseudo_random_bytes(1000, 1);
    assert_eq!(bytes.len(), 1000);
    assert!(!bytes.contains(&b'\n') && !bytes.contains(&0x1b));
}
