//! COM1, the primary console: `uart_16550` drives the UART; received bytes reach the console's reader through a queue.
//!
//! The receive interrupt moves bytes from the UART FIFO into [`INPUT`]. If the queue is full the bytes stay in
//! the UART, whose full FIFO makes QEMU hold back further input (no loss), and [`poll`] picks them up.

use crate::sync::IrqMutex;
use core::fmt::{self, Write};
use crossbeam_queue::ArrayQueue;
use uart_16550::Uart16550Tty;
use uart_16550::backend::PioBackend;
use uart_16550::spec::registers::IER;
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;
/// Bytes buffered between the interrupt handler and the console's reader.
const INPUT_CAPACITY: usize = 4096;

static UART: IrqMutex<Option<Uart16550Tty<PioBackend>>> = IrqMutex::new(None);
static INPUT: spin::Once<ArrayQueue<u8>> = spin::Once::new();

/// Why the serial port is not available.
#[derive(Debug)]
pub enum SerialError {
    /// The UART did not answer (absent or broken).
    NotPresent,
}

/// Initialises COM1 (115200 8N1, FIFO on, receive interrupt on). Output works from here on.
pub fn init() -> Result<(), SerialError> {
    let config = uart_16550::Config {
        baud_rate: uart_16550::BaudRate::Baud115200,
        interrupts: IER::DATA_READY,
        // An interrupt per byte: the console reacts to each keystroke at once.
        fifo_trigger_level: Some(uart_16550::spec::registers::FifoTriggerLevel::One),
        ..Default::default()
    };
    // SAFETY: COM1's eight registers at 0x3f8 are used by nothing but this driver (and the lock-free emergency
    // writer, which only writes THR when LSR says it is empty).
    let tty = unsafe { Uart16550Tty::new_port(COM1, config) }.map_err(|_| SerialError::NotPresent)?;
    *UART.lock() = Some(tty);
    Ok(())
}

/// The queue of received bytes (created on first use, after the heap exists).
fn input() -> &'static ArrayQueue<u8> {
    INPUT.call_once(|| ArrayQueue::new(INPUT_CAPACITY))
}

/// Creates the input queue; call after the heap is up and before enabling interrupts.
pub fn init_input() {
    input();
}

fn drain_uart_into_queue() {
    let Some(queue) = INPUT.get() else { return };
    let mut uart = UART.lock();
    let Some(tty) = uart.as_mut() else { return };
    while !queue.is_full() {
        match tty.inner_mut().try_receive_byte() {
            Ok(byte) => {
                let _ = queue.push(byte);
            }
            Err(_) => break,
        }
    }
}

/// The receive interrupt: move what the UART holds into the queue.
pub fn on_interrupt() {
    drain_uart_into_queue();
    super::wake_reader();
}

/// Next received byte, picking up bytes left in the UART when the queue was full.
pub fn poll() -> Option<u8> {
    let queue = INPUT.get()?;
    if let Some(byte) = queue.pop() {
        return Some(byte);
    }
    drain_uart_into_queue();
    queue.pop()
}

/// Whether received bytes are waiting.
pub fn has_input() -> bool {
    INPUT.get().is_some_and(|q| !q.is_empty())
}

/// Writes formatted text to COM1 (no-op before [`init`]).
pub fn write_fmt(args: fmt::Arguments<'_>) {
    if let Some(tty) = UART.lock().as_mut() {
        let _ = tty.write_fmt(args);
    }
}

/// Writes raw bytes to COM1 (echo of input, which may not be UTF-8).
pub fn write_bytes(bytes: &[u8]) {
    if let Some(tty) = UART.lock().as_mut() {
        tty.inner_mut().send_bytes_exact(bytes);
    }
}

/// Writes to COM1 by polling the line status register, without any lock: used only on the panic path.
pub struct EmergencyWriter;

impl Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut data = Port::<u8>::new(COM1);
        let mut line_status = Port::<u8>::new(COM1 + 5);
        for byte in s.bytes() {
            for _ in 0..100_000 {
                // SAFETY: reading COM1's line status register has no side effect.
                if unsafe { line_status.read() } & 0x20 != 0 {
                    break;
                }
                core::hint::spin_loop();
            }
            // SAFETY: the transmit holding register is empty (or the UART is dead and the byte is lost, which
            // is the best the panic path can do).
            unsafe { data.write(byte) };
        }
        Ok(())
    }
}
