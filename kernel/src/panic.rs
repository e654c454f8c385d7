//! The kernel's panic handler: a loud, complete report, then the machine stops with a failure status.
//!
//! A panic in SIP mode ends that SIP only (`sip::on_panic`). A panic in kernel code is a kernel bug; it stops
//! the machine. The report names the core (`KERNEL PANIC on cpu N at FILE:LINE:COL: MESSAGE`) and goes
//! straight to the serial port without taking the console lock (the panicking code, or a core stopped while
//! printing, may hold it), and to the framebuffer if its lock is free.
//!
//! On a machine with several cores, the first core to panic owns the report: it halts every other core by NMI
//! first (`cores::halt_other_cores_now`), so nothing else prints into its report or keeps running, then prints and
//! exits. A core that panics while another one is already reporting just halts.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU32, Ordering};

/// 0, or 1 + the index of the core reporting a panic.
static PANICKING: AtomicU32 = AtomicU32::new(0);

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    // A panic in SIP code (SIP mode) is that SIP's fault: end it alone (invariant 5).
    if crate::exec::running_sip().is_some() {
        crate::sip::on_panic(info);
    }
    x86_64::instructions::interrupts::disable();
    let cpu = crate::percpu::current_index();
    match PANICKING.compare_exchange(0, cpu + 1, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => crate::cores::halt_other_cores_now(),
        Err(owner) if owner == cpu + 1 => {
            // A panic while reporting a panic: say the least possible and stop.
            crate::console::emergency_print(format_args!("\nKERNEL PANIC on cpu {cpu} (nested): {}\n", info.message()));
            crate::power::exit_qemu(crate::power::ExitCode::Failure);
            crate::arch::cpu::halt_forever();
        }
        // Another core is reporting its panic and stopping the machine: leave the report to it.
        Err(_) => crate::cores::park_this_core(),
    }
    match info.location() {
        Some(at) => crate::console::emergency_print(format_args!(
            "\nKERNEL PANIC on cpu {cpu} at {}:{}:{}: {}\n",
            at.file(),
            at.line(),
            at.column(),
            info.message()
        )),
        None => crate::console::emergency_print(format_args!("\nKERNEL PANIC on cpu {cpu}: {}\n", info.message())),
    }
    crate::power::exit_qemu(crate::power::ExitCode::Failure);
    crate::arch::cpu::halt_forever()
}
