//! The kernel's panic handler: a loud, complete report, then the machine stops with a failure status.
//!
//! A panic in SIP mode ends that SIP only (`sip::on_panic`). A panic in kernel code is a kernel bug; it stops
//! the machine. The report goes straight to the serial port without taking the console lock (the
//! panicking code may hold it), and to the framebuffer if its lock is free.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    // A panic in SIP code (SIP mode) is that SIP's fault: end it alone (invariant 5).
    if crate::exec::running_sip().is_some() {
        crate::sip::on_panic(info);
    }
    x86_64::instructions::interrupts::disable();
    let cpu = crate::percpu::current_index();
    if PANICKING.swap(true, Ordering::SeqCst) {
        // A panic while reporting a panic: say the least possible and stop.
        crate::console::emergency_print(format_args!("\nKERNEL PANIC on cpu {cpu} (nested): {}\n", info.message()));
        crate::power::exit_qemu(crate::power::ExitCode::Failure);
        crate::arch::cpu::halt_forever();
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
