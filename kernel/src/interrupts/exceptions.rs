//! CPU exception handlers: every exception is reported with vector, RIP, error code, CR2 and CPU.
//!
//! A breakpoint is reported and returns (the self-tests use it to prove recovery). An exception raised by SIP
//! code (SIP mode) ends that SIP alone (through `exec::end_sip_for_fault`, the ending the SIP layer installs),
//! with a stack overflow recognised by the faulting address lying below the thread's stack. Every other exception is fatal: the report becomes the panic message, so it reaches the
//! serial port and the runner sees a failure exit.

use super::on_ist;
use core::sync::atomic::{AtomicU64, Ordering};
use cpu_rings::IstSlot;
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame, PageFaultErrorCode};

static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);

/// Breakpoints taken (and returned from) since boot.
pub fn breakpoint_count() -> u64 {
    BREAKPOINTS.load(Ordering::Relaxed)
}

fn fatal(name: &str, vector: u8, frame: &InterruptStackFrame, error_code: Option<u64>) -> ! {
    if crate::exec::running_sip().is_some() {
        sip_fault(name, vector, frame, error_code);
    }
    machine_fault(name, vector, frame, error_code)
}

/// Ends the SIP whose code took the exception. Never returns.
fn sip_fault(name: &str, vector: u8, frame: &InterruptStackFrame, error_code: Option<u64>) -> ! {
    let _kernel = crate::exec::KernelAccount::enter();
    let cr2 = Cr2::read_raw();
    let rip = frame.instruction_pointer.as_u64();
    let overflow =
        vector == 14 && crate::sched::with_current(|t| t.stack().is_some_and(|s| s.is_overflow(cr2))).unwrap_or(false);
    let description = if overflow {
        alloc::format!("stack overflow (page fault at {cr2:#x}, rip {rip:#x})")
    } else {
        match error_code {
            Some(code) => alloc::format!("{name} at rip {rip:#x}, error code {code:#x}, cr2 {cr2:#x}"),
            None => alloc::format!("{name} at rip {rip:#x}"),
        }
    };
    crate::exec::end_sip_for_fault(description)
}

/// Stops the machine with a full report: the exception interrupted kernel code, or is not any SIP's doing.
fn machine_fault(name: &str, vector: u8, frame: &InterruptStackFrame, error_code: Option<u64>) -> ! {
    let cpu = crate::percpu::current_index();
    let cr2 = Cr2::read_raw();
    let rip = frame.instruction_pointer.as_u64();
    let rsp = frame.stack_pointer.as_u64();
    match error_code {
        Some(code) => panic!(
            "CPU exception {name} (vector {vector}) on cpu {cpu}: rip {rip:#x}, rsp {rsp:#x}, error code {code:#x}, cr2 {cr2:#x}"
        ),
        None => panic!("CPU exception {name} (vector {vector}) on cpu {cpu}: rip {rip:#x}, rsp {rsp:#x}, cr2 {cr2:#x}"),
    }
}

macro_rules! fatal_handlers {
    ($( $handler:ident: $name:literal, $vector:literal; )*) => {$(
        extern "x86-interrupt" fn $handler(frame: InterruptStackFrame) {
            fatal($name, $vector, &frame, None)
        }
    )*};
}

macro_rules! fatal_handlers_with_code {
    ($( $handler:ident: $name:literal, $vector:literal; )*) => {$(
        extern "x86-interrupt" fn $handler(frame: InterruptStackFrame, code: u64) {
            fatal($name, $vector, &frame, Some(code))
        }
    )*};
}

fatal_handlers! {
    divide_error: "divide error", 0;
    debug: "debug", 1;
    overflow: "overflow", 4;
    bound_range: "bound range exceeded", 5;
    invalid_opcode: "invalid opcode", 6;
    device_not_available: "device not available", 7;
    x87_floating_point: "x87 floating point", 16;
    simd_floating_point: "SIMD floating point", 19;
    virtualization: "virtualization", 20;
    hypervisor_injection: "hypervisor injection", 28;
}

fatal_handlers_with_code! {
    invalid_tss: "invalid TSS", 10;
    segment_not_present: "segment not present", 11;
    stack_segment_fault: "stack-segment fault", 12;
    general_protection: "general protection fault", 13;
    alignment_check: "alignment check", 17;
    control_protection: "control protection", 21;
    vmm_communication: "VMM communication", 29;
    security: "security exception", 30;
}

extern "x86-interrupt" fn breakpoint(frame: InterruptStackFrame) {
    BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
    log::debug!("breakpoint at {:#x} on cpu {}", frame.instruction_pointer.as_u64(), crate::percpu::current_index());
}

extern "x86-interrupt" fn page_fault(frame: InterruptStackFrame, code: PageFaultErrorCode) {
    fatal("page fault", 14, &frame, Some(code.bits()))
}

// NMI, double fault and machine check are never a SIP's doing (a SIP's stack overflow arrives as a page fault on
// its own IST stack): they always stop the machine.

extern "x86-interrupt" fn nmi(frame: InterruptStackFrame) {
    // Another core is stopping the machine (a panic there) and reaches this one by NMI, which arrives even
    // when this core spins with interrupts off.
    if crate::cores::stop_requested() {
        crate::cores::park_this_core();
    }
    machine_fault("non-maskable interrupt", 2, &frame, None)
}

extern "x86-interrupt" fn double_fault(frame: InterruptStackFrame, code: u64) -> ! {
    machine_fault("double fault", 8, &frame, Some(code))
}

extern "x86-interrupt" fn machine_check(frame: InterruptStackFrame) -> ! {
    machine_fault("machine check", 18, &frame, None)
}

/// Installs a handler for every architecturally defined exception.
pub fn install(idt: &mut InterruptDescriptorTable) {
    idt.divide_error.set_handler_fn(divide_error);
    idt.debug.set_handler_fn(debug);
    on_ist(idt.non_maskable_interrupt.set_handler_fn(nmi), IstSlot::Nmi);
    idt.breakpoint.set_handler_fn(breakpoint);
    idt.overflow.set_handler_fn(overflow);
    idt.bound_range_exceeded.set_handler_fn(bound_range);
    idt.invalid_opcode.set_handler_fn(invalid_opcode);
    idt.device_not_available.set_handler_fn(device_not_available);
    on_ist(idt.double_fault.set_handler_fn(double_fault), IstSlot::DoubleFault);
    idt.invalid_tss.set_handler_fn(invalid_tss);
    idt.segment_not_present.set_handler_fn(segment_not_present);
    idt.stack_segment_fault.set_handler_fn(stack_segment_fault);
    idt.general_protection_fault.set_handler_fn(general_protection);
    on_ist(idt.page_fault.set_handler_fn(page_fault), IstSlot::PageFault);
    idt.x87_floating_point.set_handler_fn(x87_floating_point);
    idt.alignment_check.set_handler_fn(alignment_check);
    on_ist(idt.machine_check.set_handler_fn(machine_check), IstSlot::MachineCheck);
    idt.simd_floating_point.set_handler_fn(simd_floating_point);
    idt.virtualization.set_handler_fn(virtualization);
    idt.cp_protection_exception.set_handler_fn(control_protection);
    idt.hv_injection_exception.set_handler_fn(hypervisor_injection);
    idt.vmm_communication_exception.set_handler_fn(vmm_communication);
    idt.security_exception.set_handler_fn(security);
}

crate::selftest! {
    /// A breakpoint exception is reported and execution continues after it.
    fn breakpoint_returns() {
        let before = breakpoint_count();
        x86_64::instructions::interrupts::int3();
        x86_64::instructions::interrupts::int3();
        crate::check!(breakpoint_count() == before + 2, "{} breakpoints counted, expected 2", breakpoint_count() - before);
        Ok(())
    }
}
