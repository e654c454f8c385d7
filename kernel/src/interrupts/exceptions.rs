//! CPU exception handlers: every exception is reported with vector, RIP, error code, CR2 and CPU.
//!
//! Each vector's IDT entry is a `cpu_rings::ring_aware_entry!` stub: an exception in ring-0 code reaches the
//! `x86-interrupt` handler of its vector; one in ring-3 code reaches [`from_ring_3`], which ends that SIP (or,
//! for an NMI, a double fault or a machine check, stops the machine as from ring 0).
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

/// The exceptions with a handler of this module: vector, name, whether the CPU pushes an error code.
const EXCEPTIONS: [(u8, &str, bool); 23] = [
    (0, "divide error", false),
    (1, "debug", false),
    (2, "non-maskable interrupt", false),
    (3, "breakpoint", false),
    (4, "overflow", false),
    (5, "bound range exceeded", false),
    (6, "invalid opcode", false),
    (7, "device not available", false),
    (8, "double fault", true),
    (10, "invalid TSS", true),
    (11, "segment not present", true),
    (12, "stack-segment fault", true),
    (13, "general protection fault", true),
    (14, "page fault", true),
    (16, "x87 floating point", false),
    (17, "alignment check", true),
    (18, "machine check", false),
    (19, "SIMD floating point", false),
    (20, "virtualization", false),
    (21, "control protection", true),
    (28, "hypervisor injection", false),
    (29, "VMM communication", true),
    (30, "security exception", true),
];

/// The name of exception `vector`.
fn name_of(vector: u8) -> &'static str {
    EXCEPTIONS.iter().find(|(v, _, _)| *v == vector).map_or("exception", |(_, name, _)| name)
}

macro_rules! fatal_handlers {
    ($( $handler:ident, $entry:ident: $vector:literal; )*) => {$(
        extern "x86-interrupt" fn $handler(frame: InterruptStackFrame) {
            fatal(name_of($vector), $vector, &frame, None)
        }
        cpu_rings::ring_aware_entry!($entry, $vector, $handler);
    )*};
}

macro_rules! fatal_handlers_with_code {
    ($( $handler:ident, $entry:ident: $vector:literal; )*) => {$(
        extern "x86-interrupt" fn $handler(frame: InterruptStackFrame, code: u64) {
            fatal(name_of($vector), $vector, &frame, Some(code))
        }
        cpu_rings::ring_aware_entry!($entry, $vector, $handler, error_code);
    )*};
}

fatal_handlers! {
    divide_error, divide_error_entry: 0;
    debug, debug_entry: 1;
    overflow, overflow_entry: 4;
    bound_range, bound_range_entry: 5;
    invalid_opcode, invalid_opcode_entry: 6;
    device_not_available, device_not_available_entry: 7;
    x87_floating_point, x87_floating_point_entry: 16;
    simd_floating_point, simd_floating_point_entry: 19;
    virtualization, virtualization_entry: 20;
    hypervisor_injection, hypervisor_injection_entry: 28;
}

fatal_handlers_with_code! {
    invalid_tss, invalid_tss_entry: 10;
    segment_not_present, segment_not_present_entry: 11;
    stack_segment_fault, stack_segment_fault_entry: 12;
    general_protection, general_protection_entry: 13;
    alignment_check, alignment_check_entry: 17;
    control_protection, control_protection_entry: 21;
    vmm_communication, vmm_communication_entry: 29;
    security, security_entry: 30;
}

extern "x86-interrupt" fn breakpoint(frame: InterruptStackFrame) {
    BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
    log::debug!("breakpoint at {:#x} on cpu {}", frame.instruction_pointer.as_u64(), crate::percpu::current_index());
}
cpu_rings::ring_aware_entry!(breakpoint_entry, 3, breakpoint);

extern "x86-interrupt" fn page_fault(frame: InterruptStackFrame, code: PageFaultErrorCode) {
    crate::percpu::PerCpu::count(&crate::percpu::current().page_faults);
    fatal("page fault", 14, &frame, Some(code.bits()))
}
cpu_rings::ring_aware_entry!(page_fault_entry, 14, page_fault, error_code);

// NMI, double fault and machine check are never a SIP's doing (a SIP's stack overflow arrives as a page fault on
// its own IST stack): they always stop the machine. They may arrive at any instruction, including the few of
// an entry from ring 3 or an exit to it that run in ring 0 with the user's GS base (before the entry's `swapgs`,
// after the exit's): they make sure of the kernel's GS base first, and never return.

/// Makes GS the kernel's if the CPU arrived with the user's: in ring 0 between a `swapgs` and the ring change.
fn kernel_gs_base() {
    use x86_64::registers::model_specific::GsBase;
    // The kernel's GS base is its per-CPU record, an upper-half address; ring 3's is a lower-half one (ring-3 code
    // cannot set it: FSGSBASE is off, and a segment load gives base 0).
    if GsBase::read().as_u64() < 0xffff_8000_0000_0000 {
        // SAFETY: GS holds the user's base and KERNEL_GS_BASE the kernel's; swapping makes GS the kernel's, and
        // the caller never returns to the code it interrupted, so nothing needs the user's base back.
        unsafe { core::arch::asm!("swapgs", options(nostack, preserves_flags)) };
    }
}

extern "x86-interrupt" fn nmi(frame: InterruptStackFrame) {
    kernel_gs_base();
    // Another core is stopping the machine (a panic there) and reaches this one by NMI, which arrives even
    // when this core spins with interrupts off.
    if crate::cores::stop_requested() {
        crate::cores::park_this_core();
    }
    machine_fault("non-maskable interrupt", 2, &frame, None)
}
cpu_rings::ring_aware_entry!(nmi_entry, 2, nmi);

extern "x86-interrupt" fn double_fault(frame: InterruptStackFrame, code: u64) -> ! {
    kernel_gs_base();
    machine_fault("double fault", 8, &frame, Some(code))
}
cpu_rings::ring_aware_entry!(double_fault_entry, 8, double_fault, error_code);

extern "x86-interrupt" fn machine_check(frame: InterruptStackFrame) -> ! {
    kernel_gs_base();
    machine_fault("machine check", 18, &frame, None)
}
cpu_rings::ring_aware_entry!(machine_check_entry, 18, machine_check);

/// Every exception's IDT stub and IST slot (if it has one).
const ENTRIES: [(u8, extern "C" fn(), Option<IstSlot>); 23] = [
    (0, divide_error_entry, None),
    (1, debug_entry, None),
    (2, nmi_entry, Some(IstSlot::Nmi)),
    (3, breakpoint_entry, None),
    (4, overflow_entry, None),
    (5, bound_range_entry, None),
    (6, invalid_opcode_entry, None),
    (7, device_not_available_entry, None),
    (8, double_fault_entry, Some(IstSlot::DoubleFault)),
    (10, invalid_tss_entry, None),
    (11, segment_not_present_entry, None),
    (12, stack_segment_fault_entry, None),
    (13, general_protection_entry, None),
    (14, page_fault_entry, Some(IstSlot::PageFault)),
    (16, x87_floating_point_entry, None),
    (17, alignment_check_entry, None),
    (18, machine_check_entry, Some(IstSlot::MachineCheck)),
    (19, simd_floating_point_entry, None),
    (20, virtualization_entry, None),
    (21, control_protection_entry, None),
    (28, hypervisor_injection_entry, None),
    (29, vmm_communication_entry, None),
    (30, security_entry, None),
];

/// Installs an entry stub for every architecturally defined exception.
pub fn install(idt: &mut InterruptDescriptorTable) {
    for (vector, entry, ist) in ENTRIES {
        let address = x86_64::VirtAddr::new(entry as *const () as u64);
        // SAFETY: the stub is a `ring_aware_entry!` of this vector, with the error-code form exactly where the
        // CPU pushes one (`EXCEPTIONS`): it goes on to this module's handler for ring-0 code and to the ring-3
        // path otherwise, and either returns with `iretq` or never.
        let options = unsafe {
            match vector {
                0 => idt.divide_error.set_handler_addr(address),
                1 => idt.debug.set_handler_addr(address),
                2 => idt.non_maskable_interrupt.set_handler_addr(address),
                3 => idt.breakpoint.set_handler_addr(address),
                4 => idt.overflow.set_handler_addr(address),
                5 => idt.bound_range_exceeded.set_handler_addr(address),
                6 => idt.invalid_opcode.set_handler_addr(address),
                7 => idt.device_not_available.set_handler_addr(address),
                8 => idt.double_fault.set_handler_addr(address),
                10 => idt.invalid_tss.set_handler_addr(address),
                11 => idt.segment_not_present.set_handler_addr(address),
                12 => idt.stack_segment_fault.set_handler_addr(address),
                13 => idt.general_protection_fault.set_handler_addr(address),
                14 => idt.page_fault.set_handler_addr(address),
                16 => idt.x87_floating_point.set_handler_addr(address),
                17 => idt.alignment_check.set_handler_addr(address),
                18 => idt.machine_check.set_handler_addr(address),
                19 => idt.simd_floating_point.set_handler_addr(address),
                20 => idt.virtualization.set_handler_addr(address),
                21 => idt.cp_protection_exception.set_handler_addr(address),
                28 => idt.hv_injection_exception.set_handler_addr(address),
                29 => idt.vmm_communication_exception.set_handler_addr(address),
                30 => idt.security_exception.set_handler_addr(address),
                _ => continue,
            }
        };
        if let Some(slot) = ist {
            on_ist(options, slot);
        }
    }
}

/// An exception from ring-3 code (interrupts off, on the thread's kernel stack): it ends that SIP alone, with a
/// report of what it did; an NMI, double fault or machine check stops the machine as from ring 0. Ring-3 code
/// that is not a SIP's (the self-test's) is a kernel bug when it faults.
pub(super) fn from_ring_3(frame: &cpu_rings::TrapFrame) -> ! {
    let vector = frame.vector as u8;
    let name = name_of(vector);
    let cr2 = Cr2::read_raw();
    if matches!(vector, 2 | 8 | 18) || crate::exec::current_sip().is_none() {
        if vector == 2 && crate::cores::stop_requested() {
            crate::cores::park_this_core();
        }
        panic!(
            "CPU exception {name} (vector {vector}) from ring 3 on cpu {}: rip {:#x}, rsp {:#x}, error code {:#x}, cr2 {cr2:#x}",
            crate::percpu::current_index(),
            frame.rip,
            frame.rsp,
            frame.error_code
        );
    }
    if vector == 14 {
        crate::percpu::PerCpu::count(&crate::percpu::current().page_faults);
    }
    let _kernel = crate::exec::KernelAccount::enter();
    let rip = frame.rip;
    let overflow = vector == 14 && crate::sched::with_current(|t| t.is_ring3_stack_overflow(cr2)).unwrap_or(false);
    let description = if overflow {
        alloc::format!("stack overflow in ring 3 (page fault at {cr2:#x}, rip {rip:#x})")
    } else if vector == 14 {
        let code = PageFaultErrorCode::from_bits_truncate(frame.error_code);
        let access = if code.contains(PageFaultErrorCode::INSTRUCTION_FETCH) {
            "execute"
        } else if code.contains(PageFaultErrorCode::CAUSED_BY_WRITE) {
            "write"
        } else {
            "read"
        };
        let whose = if cr2 >= 0xffff_8000_0000_0000 { " (kernel memory)" } else { "" };
        alloc::format!("page fault in ring 3: {access} of {cr2:#x}{whose} at rip {rip:#x}")
    } else if EXCEPTIONS.iter().any(|(v, _, code)| *v == vector && *code) {
        alloc::format!("{name} in ring 3 at rip {rip:#x}, error code {:#x}", frame.error_code)
    } else {
        alloc::format!("{name} in ring 3 at rip {rip:#x}")
    };
    crate::exec::end_sip_for_fault(description)
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
