//! The I/O APIC: routes legacy device interrupts (keyboard, serial) to a core's local APIC.

use x86_64::VirtAddr;

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const REG_VERSION: u32 = 0x01;
const REG_REDIRECTION_BASE: u32 = 0x10;

/// Pin polarity of an interrupt source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// Asserted high (ISA default).
    ActiveHigh,
    /// Asserted low.
    ActiveLow,
}

/// Trigger mode of an interrupt source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Edge-triggered (ISA default).
    Edge,
    /// Level-triggered.
    Level,
}

/// One mapped I/O APIC.
pub struct IoApic {
    base: VirtAddr,
    gsi_base: u32,
}

/// A global system interrupt outside every I/O APIC's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsiOutOfRange(pub u32);

impl IoApic {
    /// Wraps the I/O APIC mapped (uncached) at `base` that serves GSIs from `gsi_base`.
    ///
    /// # Safety
    /// `base` must be a live uncached mapping of an I/O APIC's register page, used by no one else.
    pub unsafe fn new(base: VirtAddr, gsi_base: u32) -> Self {
        Self { base, gsi_base }
    }

    fn write(&mut self, reg: u32, value: u32) {
        // SAFETY: IOREGSEL/IOWIN lie in the mapped register page (constructor contract); selecting a register
        // and then writing it is the I/O APIC's access protocol, and `&mut self` keeps the pair atomic.
        unsafe {
            (self.base + IOREGSEL).as_mut_ptr::<u32>().write_volatile(reg);
            (self.base + IOWIN).as_mut_ptr::<u32>().write_volatile(value);
        }
    }

    fn read(&mut self, reg: u32) -> u32 {
        // SAFETY: as in `write`.
        unsafe {
            (self.base + IOREGSEL).as_mut_ptr::<u32>().write_volatile(reg);
            (self.base + IOWIN).as_ptr::<u32>().read_volatile()
        }
    }

    /// Number of redirection entries (input pins).
    pub fn pins(&mut self) -> u32 {
        ((self.read(REG_VERSION) >> 16) & 0xff) + 1
    }

    /// Routes global system interrupt `gsi` to `vector` on the core with local APIC ID `apic_id`, unmasked.
    pub fn route(
        &mut self,
        gsi: u32,
        vector: u8,
        apic_id: u32,
        polarity: Polarity,
        trigger: Trigger,
    ) -> Result<(), GsiOutOfRange> {
        let pin = gsi.checked_sub(self.gsi_base).filter(|pin| *pin < self.pins()).ok_or(GsiOutOfRange(gsi))?;
        let mut low = u32::from(vector);
        if polarity == Polarity::ActiveLow {
            low |= 1 << 13;
        }
        if trigger == Trigger::Level {
            low |= 1 << 15;
        }
        let high = apic_id << 24;
        let reg = REG_REDIRECTION_BASE + pin * 2;
        // Write the high half first so the entry never points at a wrong core while unmasked.
        self.write(reg + 1, high);
        self.write(reg, low);
        Ok(())
    }

    /// Masks every input pin (the state before any device is routed).
    pub fn mask_all(&mut self) {
        for pin in 0..self.pins() {
            self.write(REG_REDIRECTION_BASE + pin * 2, 1 << 16);
        }
    }
}
