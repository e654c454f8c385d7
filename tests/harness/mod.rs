//! Host-side test harness: drives the runner (and through it QEMU and the kernel's serial console) from tests.
//!
//! A [`Runner`] is the `plurality` binary started with piped stdin/stdout/stderr in a process group of its own.
//! Reader threads collect its output; tests wait for text with per-step timeouts ([`Runner::wait_for`]), send
//! lines ([`Runner::send_line`]) and run console commands ([`Runner::command`]). Every failure message carries the
//! tail of the serial output and the runner's stderr.
//!
//! Invariants:
//! - QEMU never outlives a test: dropping a [`Runner`] (also while unwinding from a failed assertion or a step
//!   timeout) kills the runner's whole process group, which QEMU belongs to. If the test process itself dies,
//!   `setpriv --pdeathsig KILL` (when present) takes the runner down, and the runner's own parent-death signal
//!   takes QEMU down.
//! - Timeouts are generous for TCG on a loaded 2-core machine (tests boot in parallel) and can be scaled with
//!   `PLURALITY_TEST_TIMEOUT_SCALE=N` for slower machines.
//!
//! Also here: [`FakeQemu`], a shell script standing in for `qemu-system-x86_64` on `PATH`, so the runner's
//! relay, argument building and exit-status mapping are tested without booting anything.

// Each test crate includes this module and uses a different part of it.
#![allow(dead_code)]

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The console prompt (no newline follows it).
pub const PROMPT: &str = "plurality> ";
/// The runner under test.
pub const RUNNER: &str = env!("CARGO_BIN_EXE_plurality");

/// Scales a base timeout by `PLURALITY_TEST_TIMEOUT_SCALE` (a positive integer, default 1).
pub fn scaled(secs: u64) -> Duration {
    let factor = std::env::var("PLURALITY_TEST_TIMEOUT_SCALE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&f| f > 0)
        .unwrap_or(1);
    Duration::from_secs(secs * factor)
}

/// Boot to the first prompt (BIOS ~1.5 s alone, UEFI ~5 s; parallel tests on 2 cores stretch both).
pub fn boot_timeout() -> Duration {
    scaled(90)
}
/// One console command.
pub fn command_timeout() -> Duration {
    scaled(30)
}
/// From `shutdown` (or a panic) to the runner's exit.
pub fn exit_timeout() -> Duration {
    scaled(30)
}

/// Bytes from one of the runner's pipes, filled by a reader thread.
#[derive(Default)]
struct Stream {
    state: Mutex<StreamState>,
    grew: Condvar,
}

#[derive(Default)]
struct StreamState {
    bytes: Vec<u8>,
    closed: bool,
}

impl Stream {
    fn collect(self: &Arc<Self>, mut from: impl Read + Send + 'static) {
        let stream = Arc::clone(self);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                let mut state = stream.state.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    state.closed = true;
                } else {
                    state.bytes.extend_from_slice(&buf[..n]);
                }
                stream.grew.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
    }

    fn snapshot(&self) -> (Vec<u8>, bool) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.bytes.clone(), state.closed)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.snapshot().0).into_owned()
    }
}

/// How to start a runner.
#[derive(Default)]
pub struct RunnerBuilder {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
    label: String,
}

impl RunnerBuilder {
    /// Adds runner arguments.
    pub fn args<S: Into<OsString>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    /// Sets an environment variable for the runner.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
    /// Removes an environment variable for the runner.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env_remove.push(key.into());
        self
    }
    /// Starts the runner.
    pub fn spawn(self) -> Runner {
        // `setpriv --pdeathsig KILL`: if this test process dies (Ctrl-C on `cargo test`), so does the runner,
        // which is in a process group of its own and would not get the terminal's signal.
        let mut cmd = match which("setpriv") {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--", RUNNER]);
                c
            }
            None => Command::new(RUNNER),
        };
        cmd.args(&self.args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start the runner {RUNNER}: {e}"));
        let stdout = Arc::new(Stream::default());
        let stderr = Arc::new(Stream::default());
        stdout.collect(child.stdout.take().expect("stdout is piped"));
        stderr.collect(child.stderr.take().expect("stderr is piped"));
        let label = if self.label.is_empty() {
            format!("plurality {}", self.args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "))
        } else {
            self.label
        };
        Runner {
            pgid: child.id() as i32,
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            cursor: 0,
            status: None,
            label,
        }
    }
}

/// A running `plurality` runner (and the QEMU it started).
pub struct Runner {
    child: Child,
    pgid: i32,
    stdin: Option<ChildStdin>,
    stdout: Arc<Stream>,
    stderr: Arc<Stream>,
    /// Where in stdout the next [`Runner::wait_for`] starts looking.
    cursor: usize,
    status: Option<ExitStatus>,
    label: String,
}

impl Runner {
    /// A runner with these arguments (nothing added).
    pub fn builder() -> RunnerBuilder {
        RunnerBuilder::default()
    }

    /// Starts `plurality --headless ARGS` and waits for the first prompt.
    pub fn boot(args: &[&str]) -> Runner {
        let mut runner = Runner::builder().args(["--headless"]).args(args.iter().copied()).spawn();
        runner.wait_for(PROMPT, boot_timeout());
        runner
    }

    /// Waits until `pattern` appears in stdout after the cursor; returns the text from the cursor up to and
    /// including it (lossy UTF-8) and moves the cursor past it. Fails the test on timeout or if the runner
    /// exits first.
    pub fn wait_for(&mut self, pattern: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let needle = pattern.as_bytes();
        let mut state = self.stdout.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let hay = &state.bytes[self.cursor.min(state.bytes.len())..];
            if let Some(at) = find(hay, needle) {
                let found = String::from_utf8_lossy(&hay[..at + needle.len()]).into_owned();
                self.cursor += at + needle.len();
                return found;
            }
            if state.closed {
                drop(state);
                self.fail(&format!("output ended before {pattern:?} appeared"));
            }
            let now = Instant::now();
            if now >= deadline {
                drop(state);
                self.fail(&format!("no {pattern:?} within {} s", timeout.as_secs()));
            }
            state = self.stdout.grew.wait_timeout(state, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Sends raw bytes to the console.
    pub fn send(&mut self, bytes: &[u8]) {
        let ok = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(bytes).and_then(|()| stdin.flush()).is_ok(),
            None => false,
        };
        if !ok {
            self.fail("cannot write to the runner's stdin (closed, or the runner exited)");
        }
    }

    /// Sends `line` and a newline.
    pub fn send_line(&mut self, line: &str) {
        self.send(format!("{line}\n").as_bytes());
    }

    /// Closes the runner's stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Runs a console command and returns its output: the lines between the echoed command line and the next
    /// prompt, with `\r` removed.
    pub fn command(&mut self, cmd: &str) -> String {
        self.command_within(cmd, command_timeout())
    }

    /// [`Runner::command`] with an explicit timeout.
    pub fn command_within(&mut self, cmd: &str, timeout: Duration) -> String {
        self.send_line(cmd);
        let raw = self.wait_for(PROMPT, timeout);
        let text = raw.replace('\r', "");
        let body = text.strip_suffix(PROMPT).unwrap_or(&text);
        // The first line is the kernel's echo of what we typed.
        let body = body.split_once('\n').map_or("", |(_, rest)| rest);
        body.trim_end_matches('\n').to_owned()
    }

    /// Sends `shutdown`, waits for the runner to exit, and checks it exited 0 after `Shutting down.`.
    pub fn shutdown(mut self) {
        self.send_line("shutdown");
        self.wait_for("Shutting down.", command_timeout());
        let status = self.wait_exit(exit_timeout());
        if status.code() != Some(0) {
            self.fail(&format!("after `shutdown` the runner exited with {status}, expected 0"));
        }
    }

    /// Waits for the runner to exit (and its output to end); fails the test on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    self.drain_output(deadline);
                    return status;
                }
                Ok(None) => {}
                Err(e) => self.fail(&format!("cannot wait for the runner: {e}")),
            }
            if Instant::now() >= deadline {
                self.fail(&format!("the runner did not exit within {} s", timeout.as_secs()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until both output pipes have reached end-of-file, so `output()` is complete.
    fn drain_output(&self, deadline: Instant) {
        for stream in [&self.stdout, &self.stderr] {
            let mut state = stream.state.lock().unwrap_or_else(|e| e.into_inner());
            while !state.closed && Instant::now() < deadline {
                state =
                    stream.grew.wait_timeout(state, Duration::from_millis(100)).unwrap_or_else(|e| e.into_inner()).0;
            }
        }
    }

    /// Everything the runner wrote to stdout (the serial console), lossy UTF-8.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Everything the runner (and QEMU) wrote to stderr.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Both, for failure messages.
    pub fn output(&self) -> String {
        format!("--- stdout ---\n{}\n--- stderr ---\n{}", self.stdout(), self.stderr())
    }

    /// The runner's process group (which QEMU shares).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Fails the test with `what`, the tail of the serial output and the runner's stderr.
    pub fn fail(&self, what: &str) -> ! {
        panic!(
            "[{}] {what}\n--- last serial output ---\n{}\n--- runner stderr ---\n{}",
            self.label,
            tail(&self.stdout(), 40),
            tail(&self.stderr(), 20)
        );
    }

    /// Asserts with the output tail in the failure message.
    pub fn check(&self, ok: bool, what: &str) {
        if !ok {
            self.fail(what);
        }
    }

    /// The pid in a `spawned NAME as pid N` line of `output`.
    pub fn spawned_pid(&self, output: &str) -> u64 {
        output
            .lines()
            .find_map(|l| l.strip_prefix("spawned ").and_then(|rest| rest.rsplit_once(" as pid ")))
            .and_then(|(_, pid)| pid.trim().parse().ok())
            .unwrap_or_else(|| self.fail(&format!("no `spawned ... as pid N` in:\n{output}")))
    }

    /// Runs `cmd` until its output satisfies `done`, for up to 30 s (scaled) of wall time: things that happen
    /// asynchronously (a SIP binding its name, updates reaching other cores, a service retrying every 200 ms).
    /// By time, not by a count of tries: on a loaded host a count of quick commands can run out before a
    /// guest's timer does. Fails with `what` and the last output otherwise.
    pub fn poll(&mut self, cmd: &str, done: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + scaled(30);
        loop {
            let out = self.command(cmd);
            if done(&out) {
                return out;
            }
            if Instant::now() > deadline {
                self.fail(&format!("{what}: `{cmd}` said:\n{out}"));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // The whole group: the runner, setpriv (if any) and QEMU. Errors mean it is already gone.
        if let Some(pgid) = rustix::process::Pid::from_raw(self.pgid) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
    }
}

/// Is any process of this group still alive (zombies count as dead)?
pub fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // Fields after the `(comm)` (which may contain spaces): state, ppid, pgrp, ...
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[0] != "X" && fields[2] == pgid.to_string()
    })
}

/// Is this process alive (zombies count as dead)?
pub fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')))
        .unwrap_or(false)
}

/// The `ps` row of `pid`, if listed.
pub fn ps_row(ps: &str, pid: u64) -> Option<String> {
    ps.lines().find(|l| l.split_whitespace().next() == Some(&pid.to_string())).map(str::to_owned)
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Finds an executable on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// A fresh scratch directory for one test, removed on drop.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `$TMPDIR/plurality-test-NAME-PID`.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("plurality-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        ScratchDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fake `qemu-system-x86_64`: a bash script in a scratch directory that goes first on the runner's `PATH`.
pub struct FakeQemu {
    dir: ScratchDir,
}

impl FakeQemu {
    /// A fake whose body is `script` (bash). `$@` are the arguments the runner passed.
    pub fn new(name: &str, script: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = ScratchDir::new(name);
        let path = dir.path().join("qemu-system-x86_64");
        std::fs::write(&path, format!("#!/bin/bash\n{script}\n")).expect("write fake qemu");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod fake qemu");
        FakeQemu { dir }
    }

    /// Its directory (for files the script writes).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A runner builder whose `PATH` finds this fake first.
    pub fn runner(&self) -> RunnerBuilder {
        let mut path = OsString::from(self.dir.path());
        if let Some(rest) = std::env::var_os("PATH") {
            path.push(":");
            path.push(rest);
        }
        Runner::builder().env("PATH", path)
    }
}
