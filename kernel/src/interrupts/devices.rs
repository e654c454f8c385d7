//! Device interrupt handlers: timer, keyboard, serial, and the spurious/error vectors.
//!
//! Handlers do the least work possible (count a tick, move bytes into a queue) and acknowledge the local
//! APIC; the console loop does the rest with interrupts on.

use super::{
    APIC_ERROR_VECTOR, APIC_SPURIOUS_VECTOR, CALL_VECTOR, KEYBOARD_VECTOR, SERIAL_VECTOR, STOP_VECTOR, TIMER_VECTOR,
};
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

/// Another core asks this one to stop (shutdown). Interrupts are off in the handler, so this core holds no
/// `IrqMutex` now: it stops at a point where it owns no shared lock. No EOI: it never takes another interrupt.
extern "x86-interrupt" fn stop(_frame: InterruptStackFrame) {
    crate::smp::park_this_core()
}

/// A job was posted to this core's mailbox: wake the core's monitor thread to run it.
extern "x86-interrupt" fn call(_frame: InterruptStackFrame) {
    apic::end_of_interrupt();
    crate::smp::on_call_interrupt();
}

/// Spurious interrupts (APIC or a masked PIC) must not be acknowledged.
extern "x86-interrupt" fn spurious(_frame: InterruptStackFrame) {}

/// Installs the device and spurious handlers.
pub fn install(idt: &mut InterruptDescriptorTable) {
    idt[TIMER_VECTOR].set_handler_fn(timer);
    idt[KEYBOARD_VECTOR].set_handler_fn(keyboard);
    idt[SERIAL_VECTOR].set_handler_fn(serial);
    idt[STOP_VECTOR].set_handler_fn(stop);
    idt[CALL_VECTOR].set_handler_fn(call);
    idt[APIC_ERROR_VECTOR].set_handler_fn(apic_error);
    idt[APIC_SPURIOUS_VECTOR].set_handler_fn(spurious);
    idt[pic::SPURIOUS_MASTER].set_handler_fn(spurious);
    idt[pic::SPURIOUS_SLAVE].set_handler_fn(spurious);
}
