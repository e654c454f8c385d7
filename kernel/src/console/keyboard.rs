//! The PS/2 keyboard: scancodes from the interrupt handler, decoded by `pc-keyboard` on the reading thread.
//!
//! The interrupt handler only reads the scancode byte and queues it; decoding (which keeps modifier state) runs
//! in the console's reader (`reader`), on the console server's thread. Decoded characters become UTF-8 bytes for the same line editor as the serial port.

use crossbeam_queue::ArrayQueue;
use pc_keyboard::{DecodedKey, HandleControl, PS2Keyboard, ScancodeSet1, layouts::Us104Key};
use x86_64::instructions::port::Port;

const DATA: u16 = 0x60;
const STATUS_COMMAND: u16 = 0x64;
const SCANCODE_CAPACITY: usize = 256;

static SCANCODES: spin::Once<ArrayQueue<u8>> = spin::Once::new();

/// Enables the controller's keyboard interrupt and translation to scancode set 1, and empties its buffer.
/// Best effort: without a PS/2 controller (some UEFI machines) the waits time out and the keyboard stays off.
pub fn init() {
    SCANCODES.call_once(|| ArrayQueue::new(SCANCODE_CAPACITY));
    let mut data = Port::<u8>::new(DATA);
    let mut command = Port::<u8>::new(STATUS_COMMAND);
    let wait = |ready: fn(u8) -> bool| {
        let mut status = Port::<u8>::new(STATUS_COMMAND);
        // SAFETY: reading the 8042 status register has no side effect.
        (0..100_000).any(|_| ready(unsafe { status.read() }))
    };
    // SAFETY: ports 0x60/0x64 are the 8042 controller, used only here and by the interrupt handler (which only
    // reads 0x60); command 0x20/0x60 read and write its configuration byte.
    unsafe {
        while command.read() & 1 != 0 {
            data.read();
        }
        if !wait(|s| s & 2 == 0) {
            return;
        }
        command.write(0x20);
        if !wait(|s| s & 1 != 0) {
            return;
        }
        let config = data.read() | 0x01 | 0x40; // IRQ 1 on, translation on
        if !wait(|s| s & 2 == 0) {
            return;
        }
        command.write(0x60);
        if !wait(|s| s & 2 == 0) {
            return;
        }
        data.write(config & !0x10); // clock of the first port enabled
    }
}

/// The keyboard interrupt: queue one scancode.
pub fn on_interrupt() {
    let mut data = Port::<u8>::new(DATA);
    // SAFETY: reading the 8042 data port takes the byte the interrupt announced.
    let scancode = unsafe { data.read() };
    if let Some(queue) = SCANCODES.get() {
        // A full queue means nobody is reading the console; dropping keystrokes then is harmless.
        let _ = queue.push(scancode);
    }
    super::wake_reader();
}

/// Whether scancodes are waiting.
pub fn has_input() -> bool {
    SCANCODES.get().is_some_and(|q| !q.is_empty())
}

/// Decodes queued scancodes into text.
pub struct Decoder {
    keyboard: PS2Keyboard<Us104Key, ScancodeSet1>,
}

impl Decoder {
    /// A decoder with no modifier held.
    pub fn new() -> Self {
        Self { keyboard: PS2Keyboard::new(ScancodeSet1::new(), Us104Key, HandleControl::MapLettersToUnicode) }
    }

    /// The next typed character, if a queued scancode completes one.
    pub fn next_char(&mut self) -> Option<char> {
        let queue = SCANCODES.get()?;
        while let Some(scancode) = queue.pop() {
            if let Ok(Some(event)) = self.keyboard.add_byte(scancode)
                && let Some(DecodedKey::Unicode(c)) = self.keyboard.process_keyevent(event)
            {
                return Some(c);
            }
        }
        None
    }
}
