//! The console driver: the kernel's side of the console. It owns the devices and the line editor, and serves
//! the Console contract to the shell SIP, restarting the shell whenever it ends.
//!
//! Input errors (an over-long line, control bytes, invalid UTF-8) are the driver's to report: it prints one
//! `error:` line and hands the shell an empty line, so the shell simply prompts again. Ctrl-C likewise.
//! Decision: line editing stays in the kernel, beside the devices, because echo must follow each keystroke at
//! once and the shell would otherwise need a channel message per byte.

use super::keyboard::Decoder;
use super::line_editor::{Action, LineEditor};
use super::{framebuffer, keyboard, serial};
use crate::println;
use alloc::string::String;
use channels::{Closed, ExString};
use contracts::console::{self, server, state};
use sip_runtime::Startup;
use x86_64::instructions::interrupts;

/// Runs the console forever: start a shell, serve it until it ends, start another.
pub fn run() -> ! {
    // The name service comes up beside the console: the shell and every service may look names up.
    crate::sip::names::start();
    if let Some(id) = crate::sched::current_id() {
        super::READER.store(id.0, core::sync::atomic::Ordering::Relaxed);
    }
    let mut reader = Reader { editor: LineEditor::new(), input: Input::new() };
    loop {
        let started = crate::time::uptime_nanos();
        match start_shell() {
            Ok((id, endpoint)) => {
                serve(endpoint, &mut reader);
                crate::sip::wait(id);
                log::warn!("the shell (sip {id}) ended; starting a new one");
            }
            Err(e) => println!("error: cannot start the shell: {e}"),
        }
        // A shell that dies at once would otherwise be restarted in a tight loop.
        if crate::time::uptime_nanos() - started < 1_000_000_000 {
            crate::sched::sleep(1_000_000_000);
        }
    }
}

fn start_shell() -> Result<(u64, console::Server<state::Ready>), sip_runtime::SpawnError> {
    let (client, server) = console::channel();
    let startup = Startup::new(client).map_err(|_| sip_runtime::SpawnError::OutOfMemory)?;
    let here = Some(crate::percpu::current_index());
    let id = crate::sip::spawn_with("shell", "", here, Some(startup)).map_err(|(e, _)| e)?;
    Ok((id.0, server))
}

/// Answers the shell's requests until it quits or is gone.
fn serve(mut endpoint: console::Server<state::Ready>, reader: &mut Reader) {
    loop {
        let next = match endpoint.recv() {
            Ok(server::Ready::Write(text, owes)) => {
                crate::print!("{}", text.as_str());
                owes.send_written().ok()
            }
            Ok(server::Ready::ReadLine(owes)) => {
                let line = reader.read_line();
                owes.send_line(ExString::from(line.as_str())).ok()
            }
            Ok(server::Ready::Quit(done)) => {
                done.close();
                return;
            }
            Err(Closed) => return,
        };
        match next {
            Some(ready) => endpoint = ready,
            None => return,
        }
    }
}

struct Reader {
    editor: LineEditor,
    input: Input,
}

impl Reader {
    /// The next line typed on the serial port or the keyboard; empty after an input error or Ctrl-C.
    fn read_line(&mut self) -> String {
        loop {
            while let Some(byte) = self.input.next_byte() {
                match self.editor.feed(byte) {
                    Action::None => {}
                    Action::Echo(b) => echo(&[b]),
                    Action::EraseChar => echo(b"\x08 \x08"),
                    Action::EraseLine(columns) => (0..columns).for_each(|_| echo(b"\x08 \x08")),
                    Action::Cancelled => {
                        println!("^C");
                        return String::new();
                    }
                    Action::Line(line) => {
                        println!();
                        return line.unwrap_or_else(|e| {
                            println!("error: {e}");
                            String::new()
                        });
                    }
                }
            }
            // Park until an input interrupt wakes us. Interrupts stay off between the check and the park, so a
            // byte that arrives in between is not missed (its wake-up finds us parked, or is remembered).
            interrupts::disable();
            if !serial::has_input() && !keyboard::has_input() {
                crate::sched::block_current();
            }
            interrupts::enable();
        }
    }
}

/// Input from both devices as one byte stream: the serial port first, then keyboard characters as UTF-8.
struct Input {
    decoder: Decoder,
    pending: [u8; 4],
    next: usize,
    len: usize,
}

impl Input {
    fn new() -> Self {
        Self { decoder: Decoder::new(), pending: [0; 4], next: 0, len: 0 }
    }

    fn next_byte(&mut self) -> Option<u8> {
        if let Some(b) = serial::poll() {
            return Some(b);
        }
        if self.next == self.len {
            let c = self.decoder.next_char()?;
            self.len = c.encode_utf8(&mut self.pending).len();
            self.next = 0;
        }
        self.next += 1;
        Some(self.pending[self.next - 1])
    }
}

fn echo(bytes: &[u8]) {
    serial::write_bytes(bytes);
    framebuffer::echo(bytes);
}
