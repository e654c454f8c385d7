//! The console's devices: text out to the serial port and the framebuffer, lines in from the serial port and the
//! PS/2 keyboard (`reader`), and the kernel's logger. The shell SIP is served over the Console contract one layer
//! up (`console_server`); the commands themselves live in the shell (`services/shell`).
//!
//! Output goes to both devices under their own locks, taken with interrupts off (`sync::IrqMutex`), so a log
//! line from an interrupt handler can never deadlock against the console. Input arrives from interrupt
//! handlers through lock-free queues and is consumed by the driver with interrupts on.

pub mod framebuffer;
pub mod keyboard;
pub mod line_editor;
pub mod logger;
pub mod reader;
pub mod serial;

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

/// The thread that reads console input (0: none yet); input interrupts wake it.
static READER: AtomicU64 = AtomicU64::new(0);

/// Makes `thread` the one that input interrupts wake (the console server's).
pub fn set_reader(thread: crate::sched::ThreadId) {
    READER.store(thread.0, Ordering::Relaxed);
}

/// Called by the input interrupt handlers after queueing input.
pub fn wake_reader() {
    match READER.load(Ordering::Relaxed) {
        0 => {}
        id => crate::sched::wake(crate::sched::ThreadId(id)),
    }
}

/// Writes formatted text to every console device.
pub fn print(args: fmt::Arguments<'_>) {
    serial::write_fmt(args);
    framebuffer::write_fmt(args);
}

/// Writes to the serial port bypassing its lock, and to the framebuffer only if its lock is free: for panics.
pub fn emergency_print(args: fmt::Arguments<'_>) {
    let _ = serial::EmergencyWriter.write_fmt(args);
    framebuffer::try_write_fmt(args);
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
