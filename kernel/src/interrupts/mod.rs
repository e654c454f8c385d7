//! The interrupt descriptor table: every CPU exception reported, device interrupts dispatched.
//!
//! Every entry is a ring-aware stub (`cpu_rings::ring_aware_entry!`): from ring-0 code to the `x86-interrupt`
//! handlers of `exceptions` and `devices`, from ring-3 code through `cpu_rings::traps` to [`from_ring_3`].
//!
//! The vector map is `arch::vectors`: 0-31 CPU exceptions (`exceptions`); 0x20-0x2f the masked legacy PICs
//! (only their spurious vectors can fire); 0x30 and up the APIC-delivered device interrupts (`devices`); 0xf0
//! and 0xf1 the inter-processor "stop" and "call" interrupts; 0xfe APIC error, 0xff APIC spurious.
//!
//! Each core has an IDT of its own: the boot core's is static (loaded before the heap exists), each application
//! processor builds one on the heap ([`load_own`]). Their contents are the same today, but a core's table is
//! its own to change (per-core vectors come with inter-core messaging). IST indices in the entries name slots of
//! the *loading* core's TSS, so every core's double-fault and page-fault stacks are its own, and so is the stack
//! every device, timer and inter-processor interrupt runs on (`devices`).

mod devices;
mod exceptions;

pub use devices::set_call_handler;

use cpu_rings::IstSlot;
use x86_64::structures::idt::{EntryOptions, InterruptDescriptorTable};

static IDT: spin::Once<InterruptDescriptorTable> = spin::Once::new();

fn build() -> InterruptDescriptorTable {
    cpu_rings::traps::install_handler(from_ring_3);
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

/// Every interrupt and exception that arrives while ring-3 code runs (through `cpu_rings::traps`, on the
/// thread's kernel stack, interrupts off): devices as from ring 0, the timer with a preemption, exceptions end
/// the SIP.
fn from_ring_3(frame: &mut cpu_rings::TrapFrame) {
    let vector = frame.vector as u8;
    if vector < 32 {
        exceptions::from_ring_3(frame)
    }
    if !devices::from_ring_3(vector) {
        log::warn!("unexpected vector {vector:#x} from ring 3 on cpu {}", crate::percpu::current_index());
    }
}

/// Sets the IST slot of an IDT entry.
fn on_ist(entry: &mut EntryOptions, slot: IstSlot) {
    // SAFETY: every core loads cpu-rings tables whose TSS has a valid, core-private stack in each IstSlot, and
    // the IDT is loaded only after them (boot order in `boot`).
    unsafe { entry.set_stack_index(slot.index()) };
}
