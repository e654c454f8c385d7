//! The interrupt descriptor table: every CPU exception reported, device interrupts dispatched.
//!
//! Vector map: 0-31 CPU exceptions (`exceptions`); 0x20-0x2f the masked legacy PICs (only their spurious
//! vectors can fire); 0x30 and up the APIC-delivered device interrupts (`devices`); 0xfe APIC error, 0xff
//! APIC spurious. One IDT is shared by all cores: its contents are the same everywhere and never change
//! after boot.

mod devices;
mod exceptions;

use cpu_rings::IstSlot;
use x86_64::structures::idt::{EntryOptions, InterruptDescriptorTable};

/// Local APIC timer.
pub const TIMER_VECTOR: u8 = 0x30;
/// PS/2 keyboard (ISA IRQ 1).
pub const KEYBOARD_VECTOR: u8 = 0x31;
/// COM1 serial port (ISA IRQ 4).
pub const SERIAL_VECTOR: u8 = 0x32;
/// Local APIC error.
pub const APIC_ERROR_VECTOR: u8 = 0xfe;
/// Local APIC spurious interrupt.
pub const APIC_SPURIOUS_VECTOR: u8 = 0xff;

static IDT: spin::Once<InterruptDescriptorTable> = spin::Once::new();

fn build() -> InterruptDescriptorTable {
    let mut idt = InterruptDescriptorTable::new();
    exceptions::install(&mut idt);
    devices::install(&mut idt);
    idt
}

/// Builds the IDT (first call) and loads it on the calling core.
pub fn load() {
    IDT.call_once(build).load();
}

/// Sets the IST slot of an IDT entry.
fn on_ist(entry: &mut EntryOptions, slot: IstSlot) {
    // SAFETY: every core loads cpu-rings tables whose TSS has a valid, core-private stack in each IstSlot, and
    // the IDT is loaded only after them (boot order in `boot`).
    unsafe { entry.set_stack_index(slot.index()) };
}
