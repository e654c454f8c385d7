//! The interrupt descriptor table: every CPU exception reported, device interrupts dispatched.
//!
//! Vector map: 0-31 CPU exceptions (`exceptions`); 0x20-0x2f the masked legacy PICs (only their spurious
//! vectors can fire); 0x30 and up the APIC-delivered device interrupts (`devices`); 0xf0 and 0xf1 the
//! inter-processor "stop" and "call" interrupts; 0xfe APIC error, 0xff APIC spurious.
//!
//! Each core has an IDT of its own: the boot core's is static (loaded before the heap exists), each application
//! processor builds one on the heap ([`load_own`]). Their contents are the same today, but a core's table is
//! its own to change (per-core vectors come with inter-core messaging). IST indices in the entries name slots of
//! the *loading* core's TSS, so every core's double-fault and page-fault stacks are its own, and so is the stack
//! every device, timer and inter-processor interrupt runs on (`devices`).

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
/// Inter-processor: stop this core (shutdown).
pub const STOP_VECTOR: u8 = 0xf0;
/// Inter-processor: a job waits in this core's mailbox (`smp::run_on`).
pub const CALL_VECTOR: u8 = 0xf1;
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

/// Builds the boot core's IDT (first call) and loads it on the calling core.
pub fn load() {
    IDT.call_once(build).load();
}

/// Builds an IDT for the calling core on the heap (leaked: a core never goes away) and loads it.
pub fn load_own() {
    let idt: &'static InterruptDescriptorTable = alloc::boxed::Box::leak(alloc::boxed::Box::new(build()));
    idt.load();
}

/// Sets the IST slot of an IDT entry.
fn on_ist(entry: &mut EntryOptions, slot: IstSlot) {
    // SAFETY: every core loads cpu-rings tables whose TSS has a valid, core-private stack in each IstSlot, and
    // the IDT is loaded only after them (boot order in `boot`).
    unsafe { entry.set_stack_index(slot.index()) };
}
