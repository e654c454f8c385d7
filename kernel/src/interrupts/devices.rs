//! Device interrupt handlers: timer, keyboard, serial, and the spurious/error vectors.
//!
//! Handlers do the least work possible (count a tick, move bytes into a queue, make a thread ready) and
//! acknowledge the local APIC; the console loop does the rest with interrupts on.
//!
//! Each vector's IDT entry is a `cpu_rings::ring_aware_entry!` stub: interrupted ring-0 code reaches the
//! `x86-interrupt` handler here, ring-3 code reaches [`from_ring_3`] through `cpu_rings::traps` (on its
//! thread's kernel stack); the work is the same function from both.
//!
//! Every vector here runs on the core's interrupt IST stack (`IstSlot::Interrupts`), never on the stack of the
//! code it interrupts: that code may be a SIP whose stack is all but used up. The handlers therefore must not
//! switch threads (the next delivery would start again at the top of that one IST stack, under a suspended
//! handler); the timer preempts by having the interrupted thread yield on its own stack after the `iretq`
//! (`sched::on_timer_tick`).

use super::on_ist;
use crate::arch::vectors::{
    APIC_ERROR_VECTOR, APIC_SPURIOUS_VECTOR, CALL_VECTOR, KEYBOARD_VECTOR, SERIAL_VECTOR, STOP_VECTOR, TIMER_VECTOR,
};
use crate::arch::{apic, pic};
use cpu_rings::IstSlot;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame};

extern "x86-interrupt" fn timer(mut frame: InterruptStackFrame) {
    crate::time::on_tick();
    apic::end_of_interrupt();
    // After the EOI, so the next tick can come while another thread runs. It may rewrite the frame so that the
    // `iretq` goes to a yield (or, for a SIP that ate into its kernel reserve, to its end).
    crate::sched::on_timer_tick(&mut frame);
}

fn keyboard() {
    crate::console::keyboard::on_interrupt();
    apic::end_of_interrupt();
}

fn serial() {
    crate::console::serial::on_interrupt();
    apic::end_of_interrupt();
}

fn apic_error() {
    log::warn!("local APIC error on cpu {}", crate::percpu::current_index());
    apic::end_of_interrupt();
}

/// Another core asks this one to stop (shutdown). Interrupts are off in the handler, so this core holds no
/// `IrqMutex` now: it stops at a point where it owns no shared lock. No EOI: it never takes another interrupt.
fn stop() {
    crate::cores::park_this_core()
}

/// What the CALL inter-processor interrupt does: installed by the layer that sends it (`smp`), which this one
/// does not name.
static CALL_HANDLER: spin::Once<fn()> = spin::Once::new();

/// Installs what the CALL inter-processor interrupt does on every core (once, at boot, before another core can
/// send it).
pub fn set_call_handler(handler: fn()) {
    CALL_HANDLER.call_once(|| handler);
}

/// Another core sent messages or posted a job here: its handler hands them on.
fn call() {
    apic::end_of_interrupt();
    if let Some(handler) = CALL_HANDLER.get() {
        handler();
    }
}

/// Spurious interrupts (APIC or a masked PIC) must not be acknowledged.
fn spurious() {}

/// The handler of a device vector that interrupted ring-0 code: the work, with nothing to do to the frame.
macro_rules! from_ring_0 {
    ($($name:ident => $work:ident,)*) => {$(
        extern "x86-interrupt" fn $name(_frame: InterruptStackFrame) {
            $work()
        }
    )*};
}

from_ring_0! {
    keyboard_in_ring_0 => keyboard,
    serial_in_ring_0 => serial,
    apic_error_in_ring_0 => apic_error,
    stop_in_ring_0 => stop,
    call_in_ring_0 => call,
    spurious_in_ring_0 => spurious,
}

cpu_rings::ring_aware_entry!(timer_entry, TIMER_VECTOR, timer);
cpu_rings::ring_aware_entry!(keyboard_entry, KEYBOARD_VECTOR, keyboard_in_ring_0);
cpu_rings::ring_aware_entry!(serial_entry, SERIAL_VECTOR, serial_in_ring_0);
cpu_rings::ring_aware_entry!(stop_entry, STOP_VECTOR, stop_in_ring_0);
cpu_rings::ring_aware_entry!(call_entry, CALL_VECTOR, call_in_ring_0);
cpu_rings::ring_aware_entry!(apic_error_entry, APIC_ERROR_VECTOR, apic_error_in_ring_0);
cpu_rings::ring_aware_entry!(apic_spurious_entry, APIC_SPURIOUS_VECTOR, spurious_in_ring_0);
cpu_rings::ring_aware_entry!(pic_master_spurious_entry, pic::SPURIOUS_MASTER, spurious_in_ring_0);
cpu_rings::ring_aware_entry!(pic_slave_spurious_entry, pic::SPURIOUS_SLAVE, spurious_in_ring_0);

/// A vector this module handles: the vector, its IDT entry stub, and its work when it interrupts ring-3 code
/// (the timer's is `None`: its preemption differs by ring, [`from_ring_3`]).
type Handler = (u8, extern "C" fn(), Option<fn()>);

/// Every vector this module handles.
const HANDLERS: [Handler; 9] = [
    (TIMER_VECTOR, timer_entry, None),
    (KEYBOARD_VECTOR, keyboard_entry, Some(keyboard)),
    (SERIAL_VECTOR, serial_entry, Some(serial)),
    (STOP_VECTOR, stop_entry, Some(stop)),
    (CALL_VECTOR, call_entry, Some(call)),
    (APIC_ERROR_VECTOR, apic_error_entry, Some(apic_error)),
    (APIC_SPURIOUS_VECTOR, apic_spurious_entry, Some(spurious)),
    (pic::SPURIOUS_MASTER, pic_master_spurious_entry, Some(spurious)),
    (pic::SPURIOUS_SLAVE, pic_slave_spurious_entry, Some(spurious)),
];

/// Installs the device and spurious handlers' entry stubs, each on the interrupt IST stack.
pub fn install(idt: &mut InterruptDescriptorTable) {
    for (vector, entry, _) in HANDLERS {
        // SAFETY: the stub is a `ring_aware_entry!` of this vector: it goes on to an x86-interrupt handler for
        // ring-0 code and to the ring-3 path otherwise, both of which end in `iretq` (or never return).
        let options = unsafe { idt[vector].set_handler_addr(x86_64::VirtAddr::new(entry as *const () as u64)) };
        on_ist(options, IstSlot::Interrupts);
    }
}

/// A device vector that interrupted ring-3 code (interrupts off, on the thread's kernel stack): the same work as
/// from ring 0, and for the timer a preemption that switches threads right here (`sched::on_timer_tick_in_ring_3`).
/// Returns `false` for a vector that is not a device's.
pub(super) fn from_ring_3(vector: u8) -> bool {
    if vector == TIMER_VECTOR {
        crate::time::on_tick();
        apic::end_of_interrupt();
        crate::sched::on_timer_tick_in_ring_3();
        return true;
    }
    match HANDLERS.iter().find(|(v, _, _)| *v == vector) {
        Some((_, _, Some(work))) => {
            work();
            true
        }
        _ => false,
    }
}

crate::selftest! {
    /// Every device, timer and inter-processor vector of this core's loaded IDT names the interrupt IST slot, and
    /// that slot's stack is not the one the other IST entries use.
    fn device_interrupts_run_on_their_own_stack() {
        let idtr = x86_64::instructions::tables::sidt();
        for (vector, _, _) in HANDLERS {
            let at = idtr.base.as_u64() + u64::from(vector) * 16 + 4;
            crate::check!(at <= idtr.base.as_u64() + u64::from(idtr.limit), "vector {vector:#x} beyond the IDT");
            // SAFETY: the loaded IDT is 'static and, by the check above, holds this vector's 16-byte entry; byte 4
            // of an entry is its IST field. Reading it has no side effects.
            let ist = unsafe { core::ptr::read_volatile(at as *const u8) } & 0x7;
            crate::check!(
                u16::from(ist) == IstSlot::Interrupts.index() + 1,
                "vector {vector:#x} uses IST entry {ist}, not the interrupt stack"
            );
        }
        // How deep the handlers have gone on that stack since boot: the stack starts zeroed, and the lowest
        // byte that is not zero any more bounds their deepest use from below.
        let top = crate::percpu::current().tables.ist_top(IstSlot::Interrupts);
        let bottom = top - cpu_rings::IST_STACK_SIZE as u64;
        // SAFETY: the core's own interrupt IST stack, `IST_STACK_SIZE` mapped bytes below its top, used by this
        // core alone; an interrupt meanwhile only writes more of it. Reading it has no side effects.
        let untouched = (bottom..top).take_while(|at| unsafe { core::ptr::read_volatile(*at as *const u8) } == 0).count();
        let used = cpu_rings::IST_STACK_SIZE - untouched;
        log::debug!("interrupt stack of cpu {}: {used} of {} bytes used", crate::percpu::current_index(), cpu_rings::IST_STACK_SIZE);
        crate::check!(used <= cpu_rings::IST_STACK_SIZE / 2, "the interrupt handlers used {used} bytes of their stack");
        Ok(())
    }
}
