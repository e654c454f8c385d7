//! Running QEMU once: spawn it, relay the serial console when stdin is not a terminal, enforce `--timeout`,
//! and make sure it never outlives the runner.
//!
//! Relay mode (stdin is a pipe or a file): QEMU runs with `-serial stdio` and piped stdio. One thread copies
//! QEMU's stdout to ours unchanged, flushing after every read so a reader sees output as it comes, and watches
//! for the first `plurality> ` prompt. Only then does a second thread start forwarding our stdin to QEMU: bytes
//! written before the kernel has set up its UART could be lost. End of our stdin does not end QEMU (QEMU's
//! stdin pipe is kept open); QEMU ending ends the runner.
//!
//! Terminal mode (stdin is a terminal): QEMU inherits stdin/stdout and owns the terminal (`-serial mon:stdio`).
//!
//! In both modes QEMU's stderr is relayed line by line and scanned for QEMU's own error reports, which are
//! needed to tell "QEMU refused to start" from "the kernel shut down" (both exit with status 1).
//!
//! Invariant: QEMU does not outlive the runner. Normal paths wait for it or kill it ([`Qemu`]'s `Drop` kills it
//! on early returns and panics). For signals that end the runner (even SIGKILL) QEMU is started through
//! `setpriv --pdeathsig TERM` when util-linux's setpriv is available, so the kernel sends QEMU SIGTERM (QEMU then
//! restores the terminal and exits) when the runner dies. `std::process::exit` runs no destructors, so it is
//! only called by main after this module returned.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::qemu::{PROMPT, Serial, SetupError, find_in_path, is_qemu_error};

/// How often the supervisor checks QEMU and the deadline. Small against a boot (~1.5 s), invisible in use.
const POLL: Duration = Duration::from_millis(20);
/// How long QEMU gets to exit after SIGTERM before it is killed outright.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// What a finished QEMU run reports.
pub struct Finished {
    /// `None` when `--timeout` expired and QEMU was killed.
    pub status: Option<ExitStatus>,
    /// The first error line QEMU printed on its stderr.
    pub qemu_error: Option<String>,
    /// The guest wrote to the serial port (only known in relay mode).
    pub guest_spoke: bool,
}

/// A running QEMU that is killed when dropped.
struct Qemu {
    child: Child,
}

impl Qemu {
    /// SIGTERM (QEMU restores the terminal and exits), then SIGKILL if it has not ended after [`TERM_GRACE`].
    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let term_sent = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .is_some_and(|pid| rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok());
        if term_sent {
            let deadline = Instant::now() + TERM_GRACE;
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                thread::sleep(POLL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Qemu {
    /// Early return or panic while QEMU runs: end it (gracefully first, so a taken-over terminal is restored).
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Runs `qemu` with `args` until it exits or `timeout` expires.
pub fn run(qemu: &Path, args: &[OsString], serial: Serial, timeout: Option<Duration>) -> Result<Finished, SetupError> {
    let mut command = match find_in_path("setpriv") {
        // The parent-death signal survives the exec into QEMU; see the module doc.
        Some(setpriv) => {
            let mut c = Command::new(setpriv);
            c.args(["--pdeathsig", "TERM", "--"]).arg(qemu);
            c
        }
        None => Command::new(qemu),
    };
    command.args(args).stderr(Stdio::piped());
    match serial {
        Serial::Terminal => command.stdin(Stdio::inherit()).stdout(Stdio::inherit()),
        Serial::Relay => command.stdin(Stdio::piped()).stdout(Stdio::piped()),
    };

    let start = Instant::now();
    let mut qemu = Qemu { child: command.spawn().map_err(SetupError::Spawn)? };

    let qemu_error = Arc::new(Mutex::new(None));
    let stderr_thread = qemu.child.stderr.take().map(|stderr| relay_stderr(stderr, Arc::clone(&qemu_error)));

    let guest_spoke = Arc::new(AtomicBool::new(false));
    let mut stdout_thread = None;
    if let (Some(to_qemu), Some(from_qemu)) = (qemu.child.stdin.take(), qemu.child.stdout.take()) {
        let (prompt_tx, prompt_rx) = mpsc::channel();
        stdout_thread = Some(relay_output(from_qemu, prompt_tx, Arc::clone(&guest_spoke)));
        // Never joined: it may sit in a read of our stdin forever; process exit ends it.
        relay_input(to_qemu, prompt_rx);
    }

    let deadline = timeout.map(|t| start + t);
    let status = loop {
        match qemu.child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            // Cannot happen for our own child short of a kernel bug; do not spin on it.
            Err(_) => break qemu.child.wait().ok(),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            qemu.terminate();
            break None;
        }
        thread::sleep(POLL);
    };

    // QEMU has ended, so its pipes reach end-of-file: joining flushes every last byte of output to the user
    // before the runner reports and exits.
    if let Some(t) = stdout_thread {
        let _ = t.join();
    }
    if let Some(t) = stderr_thread {
        let _ = t.join();
    }
    let qemu_error = qemu_error.lock().map(|mut e| e.take()).unwrap_or(None);
    Ok(Finished { status, qemu_error, guest_spoke: guest_spoke.load(Ordering::Relaxed) })
}

/// Copies QEMU's stdout to ours unchanged, and signals `prompt` once the first prompt has gone by.
fn relay_output(mut from: ChildStdout, prompt: mpsc::Sender<()>, guest_spoke: Arc<AtomicBool>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut watcher = PromptWatcher::default();
        let mut out = io::stdout().lock();
        let mut stdout_open = true;
        let mut buf = [0u8; 4096];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            guest_spoke.store(true, Ordering::Relaxed);
            // If our reader went away, keep draining QEMU so that it never blocks on a full pipe.
            if stdout_open && (out.write_all(&buf[..n]).is_err() || out.flush().is_err()) {
                stdout_open = false;
            }
            if watcher.feed(&buf[..n]) {
                // The receiver may be gone if input forwarding already ended; nothing to do then.
                let _ = prompt.send(());
            }
        }
    })
}

/// Forwards our stdin to QEMU once the prompt has been seen; keeps QEMU's stdin open after our EOF.
fn relay_input(mut to: ChildStdin, prompt: mpsc::Receiver<()>) {
    thread::spawn(move || {
        // Err: QEMU's output ended without a prompt, so there is nobody to talk to.
        if prompt.recv().is_err() {
            return;
        }
        let mut stdin = io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            if to.write_all(&buf[..n]).is_err() || to.flush().is_err() {
                return; // QEMU is gone.
            }
        }
        // End of our input is not the end of the session: the kernel may still be working on the last
        // command (e.g. `shutdown`). Hold QEMU's stdin open until the process exits.
        loop {
            thread::park();
        }
    });
}

/// Copies QEMU's stderr to ours line by line and records the first QEMU error line.
fn relay_stderr(from: std::process::ChildStderr, first_error: Arc<Mutex<Option<String>>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let mut err = io::stderr().lock();
            let _ = err.write_all(&line);
            let _ = err.flush();
            let text = String::from_utf8_lossy(&line);
            if is_qemu_error(&text)
                && let Ok(mut slot) = first_error.lock()
            {
                slot.get_or_insert_with(|| text.trim().to_owned());
            }
        }
    })
}

/// Finds [`PROMPT`] in a byte stream that arrives in arbitrary chunks.
#[derive(Default)]
struct PromptWatcher {
    /// The last `PROMPT.len() - 1` bytes seen, so a prompt split across reads is still found.
    tail: Vec<u8>,
    seen: bool,
}

impl PromptWatcher {
    /// Feeds a chunk; true exactly once, on the chunk that completes the first prompt.
    fn feed(&mut self, chunk: &[u8]) -> bool {
        if self.seen {
            return false;
        }
        self.tail.extend_from_slice(chunk);
        if self.tail.windows(PROMPT.len()).any(|w| w == PROMPT) {
            self.seen = true;
            self.tail = Vec::new();
            return true;
        }
        let keep = PROMPT.len() - 1;
        if self.tail.len() > keep {
            self.tail.drain(..self.tail.len() - keep);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_found_once_even_when_split() {
        let mut w = PromptWatcher::default();
        assert!(!w.feed(b"[    0.1] INFO  boot\nplural"));
        assert!(!w.feed(b"ity"));
        assert!(w.feed(b"> "));
        assert!(!w.feed(b"plurality> "));
    }

    #[test]
    fn prompt_in_one_chunk_and_near_misses() {
        let mut w = PromptWatcher::default();
        assert!(!w.feed(b"plurality>"));
        assert!(!w.feed(b"\n"));
        assert!(!w.feed(b"hello from plurality\n"));
        assert!(w.feed(b"x plurality> y"));
    }

    #[test]
    fn byte_by_byte() {
        let mut w = PromptWatcher::default();
        let hits = b"abc plurality> def".iter().filter(|b| w.feed(std::slice::from_ref(b))).count();
        assert_eq!(hits, 1);
    }
}
