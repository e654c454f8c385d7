//! The interrupt vector map: which vector each interrupt source is given.
//!
//! One table for the whole kernel, so that the layer that programs a source (the timer, the I/O APIC routes, the
//! inter-processor interrupts) and the layer that handles it (`interrupts`) agree without naming each other.
//! 0-31 are the CPU's exceptions and 0x20-0x2f the remapped legacy PICs (`pic`).

/// Local APIC timer.
pub const TIMER_VECTOR: u8 = 0x30;
/// PS/2 keyboard (ISA IRQ 1).
pub const KEYBOARD_VECTOR: u8 = 0x31;
/// COM1 serial port (ISA IRQ 4).
pub const SERIAL_VECTOR: u8 = 0x32;
/// Inter-processor: stop this core (shutdown).
pub const STOP_VECTOR: u8 = 0xf0;
/// Inter-processor: messages from other cores wait for this core (`ipc::intercore`), or a job in its mailbox.
pub const CALL_VECTOR: u8 = 0xf1;
/// Local APIC error.
pub const APIC_ERROR_VECTOR: u8 = 0xfe;
/// Local APIC spurious interrupt.
pub const APIC_SPURIOUS_VECTOR: u8 = 0xff;
