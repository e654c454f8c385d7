//! Reading lines from the console's devices: bytes from the serial port and the keyboard, through the line
//! editor, echoed as they are typed.
//!
//! Decision: line editing stays in the kernel, beside the devices, because echo must follow each keystroke at
//! once and the shell would otherwise need a channel message per byte. Input errors are reported here, as one
//! `error:` line, and read as an empty line.

use super::keyboard::Decoder;
use super::line_editor::{Action, LineEditor};
use super::{framebuffer, keyboard, serial};
use crate::println;
use alloc::string::String;
use x86_64::instructions::interrupts;

/// The console's line reader: one per reading thread (the console server's).
pub struct Reader {
    editor: LineEditor,
    input: Input,
}

impl Reader {
    /// A reader with an empty line.
    pub fn new() -> Self {
        Self { editor: LineEditor::new(), input: Input::new() }
    }

    /// The next line typed on the serial port or the keyboard; empty after an input error or Ctrl-C.
    pub fn read_line(&mut self) -> String {
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
