//! Device interrupt handlers: timer, keyboard, serial, and the spurious/error vectors.
//!
//! Handlers do the least work possible (count a tick, move bytes into a queue) and acknowledge the local
//! APIC; the console loop does the rest with interrupts on.

use super::{APIC_ERROR_VECTOR, APIC_SPURIOUS_VECTOR, KEYBOARD_VECTOR, SERIAL_VECTOR, TIMER_VECTOR};
use crate::arch::{apic, pic};
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame};

extern "x86-interrupt" fn timer(_frame: InterruptStackFrame) {
    crate::time::on_tick();
    apic::end_of_interrupt();
    // After the EOI, so the next tick can come while another thread runs.
    crate::sched::on_timer_tick();
}

extern "x86-interrupt" fn keyboard(_frame: InterruptStackFrame) {
    crate::console::keyboard::on_interrupt();
    apic::end_of_interrupt();
}

extern "x86-interrupt" fn serial(_frame: InterruptStackFrame) {
    crate::console::serial::on_interrupt();
    apic::end_of_interrupt();
}

extern "x86-interrupt" fn apic_error(_frame: InterruptStackFrame) {
    log::warn!("local APIC error on cpu {}", crate::percpu::current_index());
    apic::end_of_interrupt();
}

/// Spurious interrupts (APIC or a masked PIC) must not be acknowledged.
extern "x86-interrupt" fn spurious(_frame: InterruptStackFrame) {}

/// Installs the device and spurious handlers.
pub fn install(idt: &mut InterruptDescriptorTable) {
    idt[TIMER_VECTOR].set_handler_fn(timer);
    idt[KEYBOARD_VECTOR].set_handler_fn(keyboard);
    idt[SERIAL_VECTOR].set_handler_fn(serial);
    idt[APIC_ERROR_VECTOR].set_handler_fn(apic_error);
    idt[APIC_SPURIOUS_VECTOR].set_handler_fn(spurious);
    idt[pic::SPURIOUS_MASTER].set_handler_fn(spurious);
    idt[pic::SPURIOUS_SLAVE].set_handler_fn(spurious);
}
