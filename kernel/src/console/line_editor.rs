//! The console's line editor: bytes in, echo and finished lines out. Pure logic, no devices.
//!
//! Accepts UTF-8 text up to [`MAX_LINE`] bytes. Backspace/DEL erases one character, Ctrl-C drops the line,
//! Ctrl-U erases it; `\r`, `\n` and `\r\n` end a line. ANSI escape sequences (arrow keys) are swallowed.
//! Anything else that cannot be a command is not silently dropped: the line is reported on Enter with the
//! first reason it is unusable ([`LineError`]), so the user sees what went wrong.

use alloc::string::String;

/// Longest accepted line, in bytes.
pub const MAX_LINE: usize = 256;

/// Why a finished line cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// More than [`MAX_LINE`] bytes were typed; the count is the full length.
    TooLong(usize),
    /// A control byte (other than the editing keys) was typed.
    ControlByte(u8),
    /// The bytes are not valid UTF-8 (offset of the first bad byte).
    InvalidUtf8(usize),
}

impl core::fmt::Display for LineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLong(n) => write!(f, "line too long ({n} bytes, limit {MAX_LINE}); ignored"),
            Self::ControlByte(b) => write!(f, "control byte {b:#04x} in input; line ignored"),
            Self::InvalidUtf8(at) => write!(f, "input is not valid UTF-8 (byte {at}); line ignored"),
        }
    }
}

/// What the console should do after a byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to show.
    None,
    /// Echo this byte.
    Echo(u8),
    /// Erase this many bytes' worth of one character from the display (one column).
    EraseChar,
    /// Erase the whole line from the display (`columns` shown so far).
    EraseLine(usize),
    /// The line was dropped (Ctrl-C).
    Cancelled,
    /// A finished line (may be empty).
    Line(Result<String, LineError>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Start,
    /// Inside `ESC [ ...` until a final byte.
    Csi,
}

/// Line editor state.
pub struct LineEditor {
    buf: [u8; MAX_LINE],
    len: usize,
    /// Total bytes typed, including those past the limit.
    typed: usize,
    control: Option<u8>,
    last_was_cr: bool,
    escape: Escape,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    /// An empty editor.
    pub const fn new() -> Self {
        Self { buf: [0; MAX_LINE], len: 0, typed: 0, control: None, last_was_cr: false, escape: Escape::None }
    }

    fn reset(&mut self) {
        self.len = 0;
        self.typed = 0;
        self.control = None;
        self.escape = Escape::None;
    }

    fn finish(&mut self) -> Action {
        let result = if self.typed > MAX_LINE {
            Err(LineError::TooLong(self.typed))
        } else if let Some(b) = self.control {
            Err(LineError::ControlByte(b))
        } else {
            match core::str::from_utf8(&self.buf[..self.len]) {
                Ok(s) => Ok(String::from(s)),
                Err(e) => Err(LineError::InvalidUtf8(e.valid_up_to())),
            }
        };
        self.reset();
        Action::Line(result)
    }

    /// Feeds one input byte.
    pub fn feed(&mut self, byte: u8) -> Action {
        let after_cr = core::mem::replace(&mut self.last_was_cr, byte == b'\r');
        match self.escape {
            Escape::Start if byte == b'[' => {
                self.escape = Escape::Csi;
                return Action::None;
            }
            Escape::Start if byte >= 0x20 => {
                self.escape = Escape::None;
                return Action::None;
            }
            Escape::Csi if (0x20..0x40).contains(&byte) => return Action::None,
            Escape::Csi if (0x40..0x7f).contains(&byte) => {
                self.escape = Escape::None;
                return Action::None;
            }
            // Any other byte ends the sequence and is handled normally.
            _ => self.escape = Escape::None,
        }
        match byte {
            b'\n' if after_cr => Action::None,
            b'\r' | b'\n' => self.finish(),
            0x08 | 0x7f => self.erase_char(),
            0x03 => {
                self.reset();
                Action::Cancelled
            }
            0x15 => {
                let shown = self.columns();
                self.reset();
                Action::EraseLine(shown)
            }
            0x1b => {
                self.escape = Escape::Start;
                Action::None
            }
            b'\t' => self.push(b' '),
            b if b < 0x20 => {
                self.control.get_or_insert(b);
                self.typed += 1;
                Action::None
            }
            b => self.push(b),
        }
    }

    fn push(&mut self, byte: u8) -> Action {
        self.typed += 1;
        if self.len == MAX_LINE {
            return Action::None;
        }
        self.buf[self.len] = byte;
        self.len += 1;
        Action::Echo(byte)
    }

    fn erase_char(&mut self) -> Action {
        if self.len == 0 || self.typed > MAX_LINE {
            return Action::None;
        }
        // Remove one UTF-8 character: continuation bytes, then its first byte.
        while self.len > 0 {
            self.len -= 1;
            self.typed -= 1;
            if self.buf[self.len] & 0xc0 != 0x80 {
                break;
            }
        }
        Action::EraseChar
    }

    /// Columns the current line takes on screen (characters, not bytes).
    fn columns(&self) -> usize {
        self.buf[..self.len].iter().filter(|b| **b & 0xc0 != 0x80).count()
    }
}

crate::selftest! {
    /// Editing keys, line ends and each kind of bad input do what the console promises.
    fn line_editor_rules() {
        fn feed_all(ed: &mut LineEditor, bytes: &[u8]) -> alloc::vec::Vec<Action> {
            bytes.iter().map(|b| ed.feed(*b)).filter(|a| *a != Action::None).collect()
        }
        fn last_line(ed: &mut LineEditor, bytes: &[u8]) -> Option<Result<String, LineError>> {
            feed_all(ed, bytes).into_iter().rev().find_map(|a| match a {
                Action::Line(l) => Some(l),
                _ => None,
            })
        }
        let mut ed = LineEditor::new();
        crate::check!(last_line(&mut ed, b"mem\r\n") == Some(Ok("mem".into())), "plain line");
        crate::check!(feed_all(&mut ed, b"\n") == [Action::Line(Ok("".into()))], "\\n after \\r\\n is a new empty line");
        crate::check!(last_line(&mut ed, b"hex\x7f\x08elp\n") == Some(Ok("help".into())), "backspace");
        crate::check!(last_line(&mut ed, "h\u{e9}\x08i\n".as_bytes()) == Some(Ok("hi".into())), "backspace over UTF-8");
        crate::check!(last_line(&mut ed, b"a\x00b\n") == Some(Err(LineError::ControlByte(0))), "NUL");
        crate::check!(last_line(&mut ed, b"\xffok\n") == Some(Err(LineError::InvalidUtf8(0))), "0xff");
        crate::check!(last_line(&mut ed, b"up\x1b[Atime\n") == Some(Ok("uptime".into())), "escape sequence");
        crate::check!(feed_all(&mut ed, b"junk\x03").last() == Some(&Action::Cancelled), "Ctrl-C");
        crate::check!(last_line(&mut ed, b"cpus\n") == Some(Ok("cpus".into())), "line after Ctrl-C");
        let long = [b'x'; MAX_LINE + 10];
        let echoed = feed_all(&mut ed, &long).len();
        crate::check!(echoed == MAX_LINE, "echoed {echoed} bytes of an over-long line");
        crate::check!(last_line(&mut ed, b"\n") == Some(Err(LineError::TooLong(MAX_LINE + 10))), "over-long line");
        crate::check!(last_line(&mut ed, b"help\n") == Some(Ok("help".into())), "line after an over-long one");
        Ok(())
    }
}
