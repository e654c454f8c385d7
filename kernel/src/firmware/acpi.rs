//! ACPI: the MADT (cores and their APIC IDs, I/O APICs, ISA interrupt overrides) and S5 power-off.
//!
//! The `acpi` crate finds and validates the tables; they are read through the bootloader's physical-memory
//! window. The parsed result is kept in [`Machine`], read-only after boot. Power-off needs the \_S5 sleep type
//! from the DSDT's AML; instead of an AML interpreter, the one `Name(_S5_, Package{...})` object is decoded by
//! hand, which is what every small kernel does and enough for QEMU and common firmware.

use crate::arch::io_apic::{Polarity, Trigger};
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping, fadt::Fadt};
use alloc::vec::Vec;
use core::ptr::NonNull;
use x86_64::PhysAddr;
use x86_64::instructions::port::Port;

/// One processor named by the MADT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Processor {
    /// ACPI processor UID.
    pub acpi_id: u32,
    /// Local APIC ID.
    pub apic_id: u32,
    /// Whether firmware marks it usable (enabled or online-capable).
    pub usable: bool,
}

/// One I/O APIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApicInfo {
    /// Physical address of its registers.
    pub address: u64,
    /// First global system interrupt it serves.
    pub gsi_base: u32,
}

/// How an ISA IRQ reaches the I/O APIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsaRoute {
    /// Global system interrupt.
    pub gsi: u32,
    /// Pin polarity.
    pub polarity: Polarity,
    /// Trigger mode.
    pub trigger: Trigger,
}

/// The machine as the MADT describes it.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Every processor entry, in MADT order.
    pub processors: Vec<Processor>,
    /// Every I/O APIC.
    pub io_apics: Vec<IoApicInfo>,
    /// Physical address of the local APICs.
    pub local_apic_address: u64,
    overrides: Vec<(u8, IsaRoute)>,
    power_off: Option<PowerOff>,
}

#[derive(Debug, Clone, Copy)]
struct PowerOff {
    pm1a_port: u16,
    pm1b_port: Option<u16>,
    slp_typ_a: u16,
    slp_typ_b: u16,
}

/// Why ACPI information is missing.
#[derive(Debug)]
pub enum AcpiError {
    /// The bootloader found no RSDP.
    NoRsdp,
    /// The tables are malformed or absent (the `acpi` crate's reason).
    Tables(#[allow(dead_code, reason = "shown through Debug in the boot panic")] acpi::AcpiError),
    /// No MADT, or it names no processor or I/O APIC.
    NoMadt,
    /// `power_off` was called before `init`, or the FADT/DSDT give no S5 information.
    NoPowerOff,
}

static MACHINE: spin::Once<Machine> = spin::Once::new();

/// Maps ACPI tables through the physical-memory window (nothing to unmap).
#[derive(Clone, Copy)]
struct WindowHandler;

impl AcpiHandler for WindowHandler {
    unsafe fn map_physical_region<T>(&self, physical_address: usize, size: usize) -> PhysicalMapping<Self, T> {
        let virt = crate::memory::phys_to_virt(PhysAddr::new(physical_address as u64));
        let ptr = NonNull::new(virt.as_mut_ptr::<T>()).unwrap_or_else(|| panic!("window maps nothing at 0"));
        // SAFETY: the window maps all physical memory for the whole boot; the acpi crate asks only for table
        // regions the firmware described.
        unsafe { PhysicalMapping::new(physical_address, ptr, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// Reads the MADT (and FADT/DSDT for power-off) from the tables at `rsdp`.
pub fn init(rsdp: Option<u64>) -> Result<&'static Machine, AcpiError> {
    let rsdp = rsdp.ok_or(AcpiError::NoRsdp)?;
    // SAFETY: the bootloader found and passed this RSDP address; the handler maps it through the window.
    let tables = unsafe { AcpiTables::from_rsdp(WindowHandler, rsdp as usize) }.map_err(AcpiError::Tables)?;
    let madt = tables.find_table::<Madt>().map_err(|_| AcpiError::NoMadt)?;
    let mut machine = Machine {
        processors: Vec::new(),
        io_apics: Vec::new(),
        local_apic_address: u64::from(madt.get().local_apic_address),
        overrides: Vec::new(),
        power_off: None,
    };
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(e) => machine.processors.push(Processor {
                acpi_id: u32::from(e.processor_id),
                apic_id: u32::from(e.apic_id),
                usable: e.flags & 0b11 != 0,
            }),
            MadtEntry::LocalX2Apic(e) => machine.processors.push(Processor {
                acpi_id: e.processor_uid,
                apic_id: e.x2apic_id,
                usable: e.flags & 0b11 != 0,
            }),
            MadtEntry::IoApic(e) => machine
                .io_apics
                .push(IoApicInfo { address: u64::from(e.io_apic_address), gsi_base: e.global_system_interrupt_base }),
            MadtEntry::InterruptSourceOverride(e) if e.bus == 0 => {
                let flags = e.flags;
                let polarity = if flags & 0b11 == 0b11 { Polarity::ActiveLow } else { Polarity::ActiveHigh };
                let trigger = if (flags >> 2) & 0b11 == 0b11 { Trigger::Level } else { Trigger::Edge };
                machine.overrides.push((e.irq, IsaRoute { gsi: e.global_system_interrupt, polarity, trigger }));
            }
            MadtEntry::LocalApicAddressOverride(e) => machine.local_apic_address = e.local_apic_address,
            _ => {}
        }
    }
    if machine.processors.is_empty() || machine.io_apics.is_empty() {
        return Err(AcpiError::NoMadt);
    }
    machine.power_off = find_power_off(&tables);
    Ok(MACHINE.call_once(|| machine))
}

/// The parsed machine description, once [`init`] succeeded.
pub fn machine() -> Option<&'static Machine> {
    MACHINE.get()
}

impl Machine {
    /// How ISA `irq` is wired to the I/O APIC (identity unless the MADT overrides it).
    pub fn isa_route(&self, irq: u8) -> IsaRoute {
        self.overrides.iter().find(|(i, _)| *i == irq).map_or(
            IsaRoute { gsi: u32::from(irq), polarity: Polarity::ActiveHigh, trigger: Trigger::Edge },
            |(_, route)| *route,
        )
    }

    /// Processors the firmware marks usable.
    pub fn usable_processors(&self) -> impl Iterator<Item = &Processor> {
        self.processors.iter().filter(|p| p.usable)
    }
}

fn find_power_off(tables: &AcpiTables<WindowHandler>) -> Option<PowerOff> {
    let fadt = tables.find_table::<Fadt>().ok()?;
    let port = |gas: acpi::address::GenericAddress| {
        (gas.address_space == acpi::address::AddressSpace::SystemIo).then_some(gas.address as u16)
    };
    let pm1a_port = port(fadt.pm1a_control_block().ok()?)?;
    let pm1b_port = fadt.pm1b_control_block().ok().flatten().and_then(port);
    let dsdt = tables.dsdt().ok()?;
    let virt = crate::memory::phys_to_virt(PhysAddr::new(dsdt.address as u64));
    // SAFETY: the DSDT's AML body lies at `address` for `length` bytes (validated by the acpi crate) and the
    // window maps it for the whole boot.
    let aml = unsafe { core::slice::from_raw_parts(virt.as_ptr::<u8>(), dsdt.length as usize) };
    let (slp_typ_a, slp_typ_b) = decode_s5(aml)?;
    Some(PowerOff { pm1a_port, pm1b_port, slp_typ_a, slp_typ_b })
}

/// Finds `Name(_S5_, Package() { SLP_TYPa, SLP_TYPb, ... })` in AML and returns the two sleep types.
fn decode_s5(aml: &[u8]) -> Option<(u16, u16)> {
    let at = aml.windows(4).position(|w| w == b"_S5_")?;
    // Expect NameOp (0x08) before the name (optionally a root prefix '\'), PackageOp (0x12) after it.
    let before_ok = at >= 1 && (aml[at - 1] == 0x08 || (at >= 2 && aml[at - 1] == b'\\' && aml[at - 2] == 0x08));
    let mut i = at + 4;
    if !before_ok || *aml.get(i)? != 0x12 {
        return None;
    }
    i += 1;
    let pkg_length_bytes = usize::from(aml.get(i)? >> 6) + 1;
    i += pkg_length_bytes + 1; // skip PkgLength and NumElements
    let mut element = || -> Option<u16> {
        let value = match *aml.get(i)? {
            0x0a => {
                i += 1;
                u16::from(*aml.get(i)?) // BytePrefix
            }
            0x00 => 0, // ZeroOp
            0x01 => 1, // OneOp
            other => u16::from(other),
        };
        i += 1;
        Some(value)
    };
    let a = element()?;
    let b = element()?;
    Some((a, b))
}

/// Puts the machine in ACPI S5 (soft off). Returns only on failure.
pub fn power_off() -> Result<(), AcpiError> {
    let off = machine().and_then(|p| p.power_off).ok_or(AcpiError::NoPowerOff)?;
    const SLP_EN: u16 = 1 << 13;
    let mut pm1a = Port::<u16>::new(off.pm1a_port);
    // SAFETY: the FADT names this port as PM1a control; writing SLP_TYP|SLP_EN is the ACPI-defined way to
    // enter the sleep state, here S5, after which nothing runs.
    unsafe { pm1a.write((off.slp_typ_a << 10) | SLP_EN) };
    if let Some(port) = off.pm1b_port {
        let mut pm1b = Port::<u16>::new(port);
        // SAFETY: as above, for the PM1b control block the FADT names.
        unsafe { pm1b.write((off.slp_typ_b << 10) | SLP_EN) };
    }
    Err(AcpiError::NoPowerOff)
}

crate::selftest! {
    /// The MADT names this core, enabled, among distinct APIC IDs, and at least one I/O APIC.
    fn madt_lists_this_core() {
        let machine = machine().ok_or("ACPI was not initialised")?;
        let me = crate::arch::cpu::apic_id_from_cpuid();
        let this = machine.processors.iter().find(|p| p.apic_id == me);
        crate::check!(this.is_some_and(|p| p.usable), "boot core (APIC ID {me}) missing or not usable");
        for (i, p) in machine.processors.iter().enumerate() {
            crate::check!(
                !machine.processors[..i].iter().any(|q| q.apic_id == p.apic_id),
                "APIC ID {} listed twice",
                p.apic_id
            );
        }
        crate::check!(!machine.io_apics.is_empty(), "no I/O APIC");
        crate::check!(machine.local_apic_address == crate::arch::apic::physical_base(), "MADT and MSR disagree on the local APIC address");
        Ok(())
    }
}

crate::selftest! {
    /// The \_S5 decoder reads the encodings firmware uses.
    fn s5_package_decoding() {
        // Name(_S5_, Package(4) { 0x05, Zero, Zero, Zero })
        let byte_prefixed = [0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00];
        crate::check!(decode_s5(&byte_prefixed) == Some((5, 0)), "BytePrefix form misread");
        // Name(\_S5_, Package(2) { One, 0x07 }) with a root prefix
        let rooted = [0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x05, 0x02, 0x01, 0x0a, 0x07];
        crate::check!(decode_s5(&rooted) == Some((1, 7)), "root-prefixed form misread");
        crate::check!(decode_s5(b"no sleep object here").is_none(), "found _S5_ where there is none");
        crate::check!(decode_s5(&[b'_', b'S', b'5', b'_', 0x12]).is_none(), "accepted _S5_ without NameOp");
        Ok(())
    }
}
