//! The runner's own behaviour, tested without depending on what the kernel does: flags, images, setup errors,
//! timeouts, and (with a fake `qemu-system-x86_64` on `PATH`) the serial relay, the QEMU command line and the
//! mapping of QEMU exit statuses to runner exit statuses.
//!
//! Only `timeout_kills_qemu_and_exits_3` starts the real QEMU (halted with `-S`, so no kernel code runs).
//! Kernel scenarios are in `tests/console.rs`.

#![forbid(unsafe_code)]

mod harness;

use std::time::{Duration, Instant};

use harness::{FakeQemu, Runner, ScratchDir, exit_timeout, group_alive, process_alive};

/// Runs the runner with `args`, no stdin, and returns it after it exited.
fn run(args: &[&str]) -> Runner {
    let mut r = Runner::builder().args(args.iter().copied()).spawn();
    r.close_stdin();
    r.wait_exit(exit_timeout());
    r
}

fn code(r: &mut Runner) -> Option<i32> {
    r.wait_exit(exit_timeout()).code()
}

#[test]
fn help_lists_every_flag() {
    let mut r = run(&["--help"]);
    assert_eq!(code(&mut r), Some(0), "{}", r.output());
    let help = r.stdout();
    for flag in [
        "--uefi",
        "--smp N",
        "--memory MiB",
        "--headless",
        "--gdb",
        "--icount",
        "--timeout SECS",
        "--qemu-arg ARG",
        "--print-images",
        "--help",
        "PLURALITY_OVMF",
        "Ctrl-A X",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}:\n{help}");
    }
}

#[test]
fn print_images_prints_two_fresh_copies() {
    let mut r = run(&["--print-images"]);
    assert_eq!(code(&mut r), Some(0), "{}", r.output());
    let out = r.stdout();
    let paths: Vec<&str> = out.lines().collect();
    assert_eq!(paths.len(), 2, "expected two paths:\n{out}");
    assert!(paths[0].ends_with("images/plurality-bios.img"), "{out}");
    assert!(paths[1].ends_with("images/plurality-uefi.img"), "{out}");
    for (copy, built) in paths.iter().zip([env!("BIOS_IMAGE"), env!("UEFI_IMAGE")]) {
        let copy = std::fs::read(copy).unwrap_or_else(|e| panic!("{copy}: {e}"));
        let built = std::fs::read(built).unwrap_or_else(|e| panic!("{built}: {e}"));
        assert!(!copy.is_empty());
        assert!(copy == built, "the copy differs from the image build.rs made");
    }
    // The stable place is <target dir>/images, beside the profile directory holding the runner.
    let target_dir = std::path::Path::new(env!("CARGO_BIN_EXE_plurality"))
        .parent()
        .and_then(|p| p.parent())
        .expect("runner lives in <target>/<profile>/");
    assert_eq!(std::path::Path::new(paths[0]).parent(), Some(target_dir.join("images").as_path()));
}

#[test]
fn unknown_flag_is_an_error() {
    let mut r = run(&["--frobnicate"]);
    assert_eq!(code(&mut r), Some(4), "{}", r.output());
    assert!(r.stderr().contains("unknown argument '--frobnicate'"), "{}", r.output());
    assert!(r.stdout().is_empty(), "{}", r.output());

    let mut r = run(&["--smp", "zero"]);
    assert_eq!(code(&mut r), Some(4), "{}", r.output());
    assert!(r.stderr().contains("invalid value 'zero' for --smp"), "{}", r.output());
}

#[test]
fn missing_qemu_says_what_to_install() {
    let empty = ScratchDir::new("no-qemu");
    let mut r = Runner::builder().args(["--headless"]).env("PATH", empty.path()).spawn();
    r.close_stdin();
    assert_eq!(code(&mut r), Some(4), "{}", r.output());
    let err = r.stderr();
    assert!(err.contains("qemu-system-x86_64 not found"), "{err}");
    assert!(err.contains("apt-get install qemu-system-x86"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
}

#[test]
fn missing_ovmf_is_a_setup_error() {
    let mut r = Runner::builder().args(["--uefi", "--headless"]).env("PLURALITY_OVMF", "/nonexistent/OVMF.fd").spawn();
    r.close_stdin();
    assert_eq!(code(&mut r), Some(4), "{}", r.output());
    assert!(r.stderr().contains("PLURALITY_OVMF=/nonexistent/OVMF.fd does not exist"), "{}", r.output());
}

/// The real QEMU, halted before the first instruction (`-S`): it would wait forever.
#[test]
fn timeout_kills_qemu_and_exits_3() {
    let start = Instant::now();
    let mut r = Runner::builder().args(["--headless", "--timeout", "1", "--qemu-arg", "-S"]).spawn();
    let status = r.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(3), "{}", r.output());
    assert!(r.stderr().contains("timeout"), "{}", r.output());
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
    assert!(!group_alive(r.pgid()), "QEMU outlived the runner");
}

/// A fake QEMU that checks nothing arrives before the prompt, answers one line, then exits with `status`.
fn prompt_fake(name: &str, status: i32) -> FakeQemu {
    FakeQemu::new(
        name,
        &format!(
            r#"echo "args: $*" >&2
echo "booting"
if read -r -t 1 early; then echo "EARLY:$early"; fi
printf 'plurality> '
read -r line
echo "got:$line"
sleep 0.3
echo "still here after the runner's stdin ended"
exit {status}"#
        ),
    )
}

#[test]
fn relay_waits_for_the_prompt_and_survives_stdin_eof() {
    let fake = prompt_fake("relay", 1);
    let mut r = fake.runner().args(["--headless"]).spawn();
    // Sent at once, long before the prompt; the runner must hold it back until `plurality> ` has appeared.
    r.send_line("hello");
    r.close_stdin();
    assert_eq!(code(&mut r), Some(0), "{}", r.output());
    let out = r.stdout();
    assert!(!out.contains("EARLY"), "input was forwarded before the prompt:\n{out}");
    assert!(out.contains("got:hello"), "{out}");
    assert!(out.contains("still here"), "stdin EOF ended QEMU early:\n{out}");
    // Output is relayed unchanged (no newline added after the prompt).
    assert!(out.contains("booting\nplurality> got:hello\n"), "{out:?}");
}

#[test]
fn qemu_command_line() {
    let fake = prompt_fake("args", 1);
    let mut r = fake
        .runner()
        .args(["--headless", "--smp", "3", "--memory", "100", "--icount"])
        .args(["--qemu-arg", "-S", "--qemu-arg", "-name", "--qemu-arg", "x"])
        .spawn();
    r.send_line("x");
    assert_eq!(code(&mut r), Some(0), "{}", r.output());
    let args = r.stderr();
    for expected in [
        "-drive format=raw,file=",
        "plurality-bios.img,snapshot=on",
        "-m 100M",
        "-smp 3",
        "-no-reboot",
        "-device isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-serial stdio",
        "-display none",
        "-icount shift=0",
        "-S -name x",
    ] {
        assert!(args.contains(expected), "missing {expected:?} in {args}");
    }
    assert!(!args.contains("-net none"), "{args}");

    // UEFI: OVMF from PLURALITY_OVMF, the UEFI image, no network boot.
    let fw = ScratchDir::new("ovmf");
    let ovmf = fw.path().join("OVMF.fd");
    std::fs::write(&ovmf, b"not really firmware").unwrap();
    let mut r = fake.runner().args(["--uefi", "--headless"]).env("PLURALITY_OVMF", &ovmf).spawn();
    r.send_line("x");
    assert_eq!(code(&mut r), Some(0), "{}", r.output());
    let args = r.stderr();
    assert!(args.contains(&format!("-bios {}", ovmf.display())), "{args}");
    assert!(args.contains("plurality-uefi.img,snapshot=on"), "{args}");
    assert!(args.contains("-net none"), "{args}");
}

#[test]
fn no_display_falls_back_to_headless() {
    let fake = prompt_fake("nodisplay", 1);
    let mut r = fake.runner().env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY").spawn();
    r.send_line("x");
    assert_eq!(code(&mut r), Some(0), "{}", r.output());
    assert!(r.stderr().contains("running headless"), "{}", r.output());
    assert!(r.stderr().contains("-display none"), "{}", r.output());
}

#[test]
fn exit_statuses_map_to_runner_statuses() {
    // (QEMU status, runner status, text on the runner's stderr)
    for (qemu, runner, says) in [
        (1, 0, None),
        (3, 1, Some("plurality: kernel panicked")),
        (0, 2, Some("triple fault or reset: the kernel did not exit through the exit device")),
        (7, 2, Some("unexpected QEMU exit status 7")),
    ] {
        let fake = prompt_fake(&format!("status{qemu}"), qemu);
        let mut r = fake.runner().args(["--headless"]).spawn();
        r.send_line("x");
        assert_eq!(code(&mut r), Some(runner), "QEMU status {qemu}: {}", r.output());
        if let Some(text) = says {
            assert!(r.stderr().contains(text), "QEMU status {qemu}: {}", r.output());
        }
    }
}

#[test]
fn qemu_refusing_its_arguments_is_not_a_clean_shutdown() {
    // QEMU exits with 1 on bad options, the same status as the kernel's clean shutdown.
    let fake = FakeQemu::new("refuse", r#"echo "qemu-system-x86_64: -bogus: invalid option" >&2; exit 1"#);
    let mut r = fake.runner().args(["--headless"]).spawn();
    r.close_stdin();
    assert_eq!(code(&mut r), Some(4), "{}", r.output());
    assert!(r.stderr().contains("QEMU did not boot the kernel"), "{}", r.output());
}

#[test]
fn qemu_dies_with_the_runner() {
    let fake = FakeQemu::new("orphan", r#"echo $$ > "$(dirname "$0")/pid"; exec sleep 600"#);
    let r = fake.runner().args(["--headless"]).spawn();
    let pid_file = fake.dir().join("pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<i32>().ok()) {
            break pid;
        }
        r.check(Instant::now() < deadline, "fake QEMU did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(process_alive(pid));
    if harness::which("setpriv").is_none() {
        eprintln!("setpriv not installed: skipping the kill-the-runner half of this test");
        return;
    }
    // SIGKILL the runner alone (not its group): no destructor runs, only the parent-death signal helps.
    // The harness starts the runner as its process group's leader (setpriv execs it), so pgid = pid.
    let runner_pid = r.pgid();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(runner_pid).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill runner");
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid) {
        r.check(Instant::now() < deadline, "QEMU outlived the runner's SIGKILL by 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}
