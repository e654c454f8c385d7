//! Bringing the boot core up, in dependency order, and handing over to the console.
//!
//! Order matters: the serial console first (so everything after can report), then the core's descriptor
//! tables and the IDT (so a fault is reported instead of triple-faulting), then memory (the heap is needed by
//! ACPI parsing and the console queues), the framebuffer, ACPI, and finally the interrupt controllers and the
//! timer, after which interrupts are enabled; then the other cores are started (`smp`), each of which runs its
//! own kernel instance. Failures that leave no usable machine panic with the reason; a core that does not start
//! is reported and left out.

use crate::arch::vectors::{APIC_ERROR_VECTOR, APIC_SPURIOUS_VECTOR, KEYBOARD_VECTOR, SERIAL_VECTOR, TIMER_VECTOR};
use crate::arch::{apic, io_apic, pic};
use crate::console::{self, framebuffer, keyboard, serial};
use crate::interrupts;
use crate::{firmware, memory, percpu, time};
use bootloader_api::BootInfo;
use x86_64::PhysAddr;

/// The kernel's entry point, called by the bootloader on the boot core.
pub fn start(boot_info: &'static mut BootInfo) -> ! {
    time::record_boot();
    // Without a serial port the framebuffer still shows everything: carry on.
    let serial_ok = serial::init().is_ok();
    console::logger::init();
    // The per-core state of the layers above `percpu`, kept in every core's record.
    percpu::init_bsp([&crate::sched::SCHEDULERS, &crate::sip::TABLES]);
    interrupts::load();

    let regions = &boot_info.memory_regions;
    if let Err(e) = memory::init(boot_info.physical_memory_offset.into_option(), regions) {
        panic!("memory setup failed: {e:?}");
    }
    if let Some(fb) = boot_info.framebuffer.as_mut() {
        framebuffer::init(fb);
    }
    log::info!("Plurality kernel starting on cpu 0{}", if serial_ok { "" } else { " (no serial port)" });
    let protections = crate::ring3::init_this_core();
    log::info!("ring 3: syscall on, SMEP {}, SMAP {}", on_off(protections.smep), on_off(protections.smap));

    let machine = match firmware::acpi::init(boot_info.rsdp_addr.into_option()) {
        Ok(p) => p,
        Err(e) => panic!("ACPI tables unusable ({e:?}): cannot find the interrupt controllers"),
    };
    log::info!(
        "ACPI MADT: {} usable core(s), {} I/O APIC(s)",
        machine.usable_processors().count(),
        machine.io_apics.len()
    );
    // The kernel drives the local APIC in xAPIC mode, whose IDs end at 254; a core named by a larger ID is
    // reported and left out when the cores start (docs/multikernel.md, "x2APIC").
    let beyond = machine.usable_processors().filter(|p| p.apic_id > crate::arch::apic::MAX_XAPIC_ID).count();
    match (crate::arch::cpu::has_x2apic(), beyond) {
        (_, 0) => log::info!("x2APIC: {}; xAPIC mode serves every core", offered(crate::arch::cpu::has_x2apic())),
        (true, n) => log::warn!(
            "x2APIC: offered, but the kernel runs the APIC in xAPIC mode: {n} core(s) with larger IDs stay offline"
        ),
        (false, n) => {
            log::warn!("x2APIC: not offered, yet the MADT names {n} core(s) beyond xAPIC IDs: they stay offline")
        }
    }

    crate::smp::init(machine);

    pic::remap_and_mask();
    let apic_base = memory::paging::map_mmio(PhysAddr::new(apic::physical_base()), 4096)
        .unwrap_or_else(|e| panic!("cannot map the local APIC: {e:?}"));
    apic::init(apic_base.as_u64(), APIC_SPURIOUS_VECTOR, APIC_ERROR_VECTOR);
    time::calibrate();
    time::start_tick(TIMER_VECTOR);
    log::info!(
        "timer: {} Hz, TSC {}.{:03} MHz (calibrated against the PIT)",
        time::TIMER_HZ,
        time::tsc_hz() / 1_000_000,
        (time::tsc_hz() / 1000) % 1000
    );

    crate::ipc::init();
    crate::sip::init();
    let ramdisk = boot_info.ramdisk_addr.into_option().filter(|_| boot_info.ramdisk_len > 0).map(|addr| {
        // SAFETY: the bootloader mapped the ramdisk at this address for `ramdisk_len` bytes, read-only to the
        // kernel for the whole boot, and nothing writes it.
        unsafe { core::slice::from_raw_parts(addr as *const u8, boot_info.ramdisk_len as usize) }
    });
    crate::sip::ring3::image::init(ramdisk);
    if let Err(e) = crate::sched::init_this_core() {
        panic!("cannot start the scheduler: {e:?}");
    }
    crate::smp::start_boot_core_monitor();
    serial::init_input();
    keyboard::init();
    route_isa_interrupts(machine);

    x86_64::instructions::interrupts::enable();
    match crate::smp::start_application_processors(regions) {
        Ok(online) => log::info!("{online} of {} core(s) online", crate::cores::cores().len()),
        Err(e) => log::error!("cannot start the other cores ({e:?}): running on the boot core alone"),
    }
    crate::sip::remote::start_services_on_other_cores();
    let frames = memory::frames::stats();
    log::info!(
        "memory: {} MiB usable, {} frames free; boot took {} ms",
        frames.total * 4096 / (1024 * 1024),
        frames.free,
        time::uptime_nanos() / 1_000_000
    );
    crate::console_server::run()
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off (the CPU lacks it)" }
}

/// Masks every I/O APIC input, then routes the keyboard (ISA IRQ 1) and COM1 (ISA IRQ 4) to this core.
fn route_isa_interrupts(machine: &firmware::acpi::Machine) {
    let me = percpu::current().apic_id;
    let mut io_apics = alloc::vec::Vec::new();
    for info in &machine.io_apics {
        match memory::paging::map_mmio(PhysAddr::new(info.address), 4096) {
            // SAFETY: `mapped` is a fresh uncached mapping of this I/O APIC's register page, used only here.
            Ok(mapped) => io_apics.push((info.gsi_base, unsafe { io_apic::IoApic::new(mapped, info.gsi_base) })),
            Err(e) => log::warn!("cannot map the I/O APIC at {:#x}: {e:?}", info.address),
        }
    }
    io_apics.iter_mut().for_each(|(_, a)| a.mask_all());
    for (irq, vector, name) in [(1u8, KEYBOARD_VECTOR, "keyboard"), (4, SERIAL_VECTOR, "serial")] {
        let route = machine.isa_route(irq);
        let serving = io_apics.iter_mut().filter(|(base, _)| *base <= route.gsi).max_by_key(|(base, _)| *base);
        let result = match serving {
            Some((_, io_apic)) => io_apic.route(route.gsi, vector, me, route.polarity, route.trigger),
            None => Err(io_apic::GsiOutOfRange(route.gsi)),
        };
        if let Err(e) = result {
            log::warn!("cannot route {name} input ({e:?}): it stays off");
        }
    }
}

/// How the log says whether the CPU offers a feature.
fn offered(yes: bool) -> &'static str {
    if yes { "offered" } else { "not offered (QEMU TCG does not emulate it)" }
}
