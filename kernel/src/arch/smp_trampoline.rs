//! The application-processor trampoline: 16-bit real mode to 64-bit long mode, then a jump into the kernel.
//!
//! A STARTUP IPI starts an AP in real mode at `page << 12`, with CS = `page << 8` and IP = 0, so the code must
//! sit in a page below 1 MiB. The code below is assembled into the kernel image and copied by [`install`] to the
//! fixed page [`PAGE`] (0x8000: usable in both firmwares' memory maps, `boot-facts.md`), which must also be
//! identity-mapped in the kernel's page tables while APs start, because the AP turns paging on while executing
//! there. The steps:
//!
//! 1. real mode: set the "started" byte, load a small GDT kept in the page, set CR0.PE, far-jump to 32-bit code;
//! 2. protected mode: CR4.PAE, CR3 = the boot core's level-4 table (it must lie below 4 GiB: a 32-bit `mov`),
//!    EFER.LME and EFER.NXE (the bootloader's page tables use NX: without NXE those entries are reserved-bit
//!    violations and the AP triple-faults), CR0.PG|WP, far-jump to 64-bit code;
//! 3. long mode: data segments, GS base = the AP's per-CPU record (so `percpu::current` works from the first
//!    line of Rust), RSP = the AP's own stack, then `call` the Rust entry with the record as argument.
//!
//! The parameters live in a data block at [`DATA_OFFSET`] in the page, written by the boot core before each
//! start ([`Parameters`]). APs start one at a time, so one block serves all of them.
//!
//! Invariant: nothing but the boot core writes the page while no AP is starting, and the boot core does not
//! rewrite the parameters until the AP it started has either reported itself online or been sent INIT again.

use core::arch::global_asm;

/// Physical (and, while APs start, identity-mapped virtual) address of the trampoline page.
pub const PAGE: u64 = 0x8000;
/// The STARTUP IPI's vector: the page number.
pub const STARTUP_VECTOR: u8 = (PAGE >> 12) as u8;
/// Where in the page the parameter block starts; the code must end before it.
pub const DATA_OFFSET: u64 = 0xf00;

const CR3: u64 = 0;
const STACK: u64 = 8;
const ENTRY: u64 = 16;
const PERCPU: u64 = 24;
const STARTED: u64 = 32;

global_asm!(
    ".pushsection .text.plurality_ap_trampoline, \"ax\"",
    ".global plurality_ap_trampoline_start",
    ".global plurality_ap_trampoline_end",
    ".code16",
    "plurality_ap_trampoline_start:",
    "cli",
    "cld",
    "mov %cs, %ax",
    "mov %ax, %ds",
    "movb $1, {started16}",
    "lgdtl .Lplurality_ap_gdtr - plurality_ap_trampoline_start",
    "mov %cr0, %eax",
    "or $1, %eax",
    "mov %eax, %cr0",
    "ljmpl $0x08, $({page} + .Lplurality_ap_protected - plurality_ap_trampoline_start)",
    ".code32",
    ".Lplurality_ap_protected:",
    "mov $0x10, %ax",
    "mov %ax, %ds",
    "mov %ax, %es",
    "mov %ax, %ss",
    "mov %cr4, %eax",
    "or $0x20, %eax", // PAE
    "mov %eax, %cr4",
    "mov {cr3}, %eax",
    "mov %eax, %cr3",
    "mov $0xc0000080, %ecx", // IA32_EFER
    "rdmsr",
    "or $0x900, %eax", // LME | NXE
    "wrmsr",
    "mov %cr0, %eax",
    "or $0x80010000, %eax", // PG | WP
    "mov %eax, %cr0",
    "ljmpl $0x18, $({page} + .Lplurality_ap_long - plurality_ap_trampoline_start)",
    ".code64",
    ".Lplurality_ap_long:",
    "mov $0x10, %ax",
    "mov %ax, %ds",
    "mov %ax, %es",
    "mov %ax, %ss",
    "xor %eax, %eax",
    "mov %ax, %fs",
    "mov %ax, %gs", // loading GS zeroes its base: do it before writing the base
    "mov $0xc0000101, %ecx", // IA32_GS_BASE
    "mov {percpu}, %eax",
    "mov {percpu_high}, %edx",
    "wrmsr",
    "mov {stack}, %rsp",
    "mov {percpu}, %rdi",
    "mov {entry}, %rax",
    "call *%rax",
    "ud2",
    ".balign 8",
    ".Lplurality_ap_gdt:",
    ".quad 0",
    ".quad 0x00cf9a000000ffff", // 0x08: 32-bit code
    ".quad 0x00cf92000000ffff", // 0x10: data
    ".quad 0x00af9a000000ffff", // 0x18: 64-bit code
    ".Lplurality_ap_gdtr:",
    ".word 31",
    ".long {page} + .Lplurality_ap_gdt - plurality_ap_trampoline_start",
    "plurality_ap_trampoline_end:",
    ".popsection",
    page = const PAGE,
    started16 = const DATA_OFFSET + STARTED,
    cr3 = const PAGE + DATA_OFFSET + CR3,
    stack = const PAGE + DATA_OFFSET + STACK,
    entry = const PAGE + DATA_OFFSET + ENTRY,
    percpu = const PAGE + DATA_OFFSET + PERCPU,
    percpu_high = const PAGE + DATA_OFFSET + PERCPU + 4,
    options(att_syntax)
);

unsafe extern "C" {
    static plurality_ap_trampoline_start: u8;
    static plurality_ap_trampoline_end: u8;
}

/// What one AP needs from the trampoline.
#[derive(Debug, Clone, Copy)]
pub struct Parameters {
    /// Physical address of the level-4 page table (below 4 GiB).
    pub cr3: u64,
    /// Initial stack pointer (16-byte aligned).
    pub stack_top: u64,
    /// Address of `extern "sysv64" fn(percpu: u64) -> !`.
    pub entry: u64,
    /// Address of the AP's per-CPU record: its GS base and the entry's argument.
    pub percpu: u64,
}

/// Why the trampoline cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrampolineError {
    /// The code does not fit below the parameter block.
    TooLarge(u64),
    /// The level-4 page table lies above 4 GiB, out of reach of 32-bit code.
    Cr3AboveFourGiB(u64),
}

/// The trampoline page as the boot core sees it (through the physical-memory window).
pub struct Trampoline {
    page: *mut u8,
}

impl Trampoline {
    /// Copies the trampoline code into the page whose window address is `page`.
    ///
    /// # Safety
    /// `page` must be a writable mapping of physical [`PAGE`], which nothing else uses while this value lives
    /// (the frame allocator never hands out memory below 1 MiB).
    pub unsafe fn install(page: *mut u8) -> Result<Self, TrampolineError> {
        let start = &raw const plurality_ap_trampoline_start;
        let end = &raw const plurality_ap_trampoline_end;
        let len = end as u64 - start as u64;
        if len > DATA_OFFSET {
            return Err(TrampolineError::TooLarge(len));
        }
        // SAFETY: [start, end) is the assembled trampoline in the kernel image (read-only code, readable); `page`
        // is a 4 KiB writable page (caller) and `len` is below DATA_OFFSET < 4096, so the copy stays inside it.
        unsafe { core::ptr::copy_nonoverlapping(start, page, len as usize) };
        Ok(Self { page })
    }

    fn field(&self, offset: u64) -> *mut u64 {
        self.page.wrapping_add((DATA_OFFSET + offset) as usize).cast::<u64>()
    }

    /// Writes the parameters for the next AP and clears its "started" byte.
    pub fn prepare(&mut self, p: Parameters) -> Result<(), TrampolineError> {
        if p.cr3 >= 1 << 32 {
            return Err(TrampolineError::Cr3AboveFourGiB(p.cr3));
        }
        for (offset, value) in [(CR3, p.cr3), (STACK, p.stack_top), (ENTRY, p.entry), (PERCPU, p.percpu), (STARTED, 0)]
        {
            // SAFETY: every field lies 8-aligned inside the page (DATA_OFFSET + 40 < 4096); the page is ours
            // (`install`'s contract) and no AP runs the trampoline now (module invariant).
            unsafe { self.field(offset).write_volatile(value) };
        }
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Whether the AP started with the last [`Trampoline::prepare`] has reached the trampoline's first lines.
    pub fn started(&self) -> bool {
        // SAFETY: as in `prepare`; the AP writes this byte, so it is read volatile.
        unsafe { self.field(STARTED).cast::<u8>().read_volatile() != 0 }
    }
}
