//! Plurality kernel entry.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};

entry_point!(kernel_main);

fn kernel_main(_boot_info: &'static mut BootInfo) -> ! {
    let mut port = x86_64::instructions::port::Port::<u8>::new(0x3f8);
    for b in b"hello from plurality\n" {
        // SAFETY: COM1 data port; writing bytes only emits them.
        unsafe { port.write(*b) };
    }
    let mut exit = x86_64::instructions::port::Port::<u32>::new(0xf4);
    // SAFETY: QEMU debug-exit device.
    unsafe { exit.write(0) };
    loop { x86_64::instructions::hlt(); }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! { loop {} }
