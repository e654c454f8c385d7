//! The ring-3 image: the ELF the bootloader carries in its ramdisk (`sip-runtime/ring3-image`), checked at boot
//! and loaded into a ring-3 SIP's slot at each spawn.
//!
//! The image is a static position-independent executable. At boot the kernel builds its pages once, as templates:
//! each page of its `PT_LOAD` segments (pages shared by two segments get both's contents) with the segments'
//! permissions (writable pages are never executable; a page that would be both is refused), and each page's
//! relocations, which must all be `R_X86_64_RELATIVE` (the only kind a static PIE has). Loading the image at a
//! slot's start maps the read-only pages without relocations as they are, the same frames in every SIP (code and
//! constant data: most of the image), and copies the others, applying their relocations for the slot's address
//! before mapping them. Contents are written through the kernel's physical window: ring-3 pages are never written
//! through their user addresses, and a read-only page is never writable, not even briefly.
//!
//! Every offset and size read from the ELF is checked against the image and the slot: a broken image is an error
//! at boot (logged) and at spawn, never a kernel fault.

use crate::memory::frames;
use crate::memory::user_spaces::{UserSpace, copy_of_frame};
use alloc::vec::Vec;
use x86_64::VirtAddr;
use x86_64::structures::paging::{PageTableFlags as Flags, PhysFrame, Size4KiB};
use xmas_elf::ElfFile;
use xmas_elf::header::{Class, Machine, Type};
use xmas_elf::program::Type as SegmentType;
use xmas_elf::sections::{SectionData, ShType};

/// Most bytes the image may span in a slot (its code and data; the heap and the stack come after).
pub const MAX_SPAN: u64 = 256 << 20;

/// `R_X86_64_RELATIVE`: write the slot's base plus the addend.
const RELATIVE: u32 = 8;

/// Why the image cannot be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageError {
    /// The boot ramdisk held no image.
    Missing,
    /// The ELF is not what the kernel loads; says what is wrong.
    Invalid(&'static str),
    /// No memory for its pages.
    OutOfMemory,
}

/// The names of the services built into the image (read from its manifests at boot).
static SERVICES: spin::Once<Vec<alloc::string::String>> = spin::Once::new();

/// The linker section that holds the image's manifests (`sip_runtime::MANIFESTS`, a linkme slice).
const MANIFESTS_SECTION: &str = "linkme_MANIFESTS";

/// Takes the image the bootloader left at `bytes` (its ramdisk, mapped for the whole boot) and checks it; an
/// image that does not check is logged and not used.
pub fn init(bytes: Option<&'static [u8]>) {
    let Some(bytes) = bytes else {
        log::warn!("ring 3: no image in the boot ramdisk; ring-3 programs cannot start");
        return;
    };
    match check(bytes) {
        Ok(span) => {
            let prebuilt = match prebuild(bytes, span) {
                Ok(prebuilt) => prebuilt,
                Err(e) => {
                    log::error!("ring 3: the image in the boot ramdisk cannot be loaded: {e:?}");
                    return;
                }
            };
            let shared = prebuilt.pages.iter().flatten().filter(|p| p.shared()).count();
            let services = match service_names(bytes) {
                Ok(names) => names,
                Err(e) => {
                    log::error!("ring 3: the image's services cannot be read ({e:?}): none will start in ring 3");
                    Vec::new()
                }
            };
            log::info!(
                "ring 3: image of {} KiB, {} KiB in a slot ({shared} pages shared), services: {}",
                bytes.len() / 1024,
                span / 1024,
                if services.is_empty() { alloc::string::String::from("none") } else { services.join(", ") }
            );
            SERVICES.call_once(|| services);
            PREBUILT.call_once(|| prebuilt);
        }
        Err(e) => log::error!("ring 3: the image in the boot ramdisk is refused: {e:?}"),
    }
}

/// Whether the image has a build of service `name`.
pub fn has_service(name: &str) -> bool {
    SERVICES.get().is_some_and(|names| names.iter().any(|n| n == name))
}

/// The names of the services built into the image: from its manifests (the same `Manifest` type as the kernel's,
/// built by the same compiler), each name found through the relocation that points its field at the bytes.
/// Checked like everything else read from the image: a layout that does not fit is an error, not a fault.
fn service_names(bytes: &[u8]) -> Result<Vec<alloc::string::String>, ImageError> {
    let elf = ElfFile::new(bytes).map_err(ImageError::Invalid)?;
    let Some(section) = elf.section_iter().find(|s| s.get_name(&elf) == Ok(MANIFESTS_SECTION)) else {
        return Ok(Vec::new());
    };
    let size = core::mem::size_of::<sip_runtime::Manifest>() as u64;
    if section.size() % size != 0 {
        return Err(ImageError::Invalid("the image's manifests are not the kernel's"));
    }
    let mut relocations = alloc::collections::BTreeMap::new();
    for rela in elf.section_iter().filter(|s| s.get_type() == Ok(ShType::Rela)) {
        if let Ok(SectionData::Rela64(entries)) = rela.get_data(&elf) {
            relocations.extend(entries.iter().map(|e| (e.get_offset(), e.get_addend())));
        }
    }
    // The file offset of image address `at`, through the segment that holds it.
    let file_offset = |at: u64, len: u64| {
        elf.program_iter()
            .filter(|p| p.get_type() == Ok(SegmentType::Load))
            .find(|p| at >= p.virtual_addr() && at + len <= p.virtual_addr() + p.file_size())
            .map(|p| (at - p.virtual_addr() + p.offset()) as usize)
    };
    let word = |at: u64| {
        let offset = file_offset(at, 8)?;
        bytes.get(offset..offset + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let name_field = core::mem::offset_of!(sip_runtime::Manifest, name) as u64;
    let mut names = Vec::new();
    for index in 0..section.size() / size {
        let field = section.address() + index * size + name_field;
        // A `&str` is two words, the address (relocated) and the length, in an order Rust does not promise.
        let (pointer, len) = match (relocations.get(&field), relocations.get(&(field + 8))) {
            (Some(pointer), None) => (*pointer, word(field + 8)),
            (None, Some(pointer)) => (*pointer, word(field)),
            _ => return Err(ImageError::Invalid("a manifest's name is not where the kernel's is")),
        };
        let len = len.filter(|len| *len <= 64).ok_or(ImageError::Invalid("a manifest's name is too long"))?;
        let offset = file_offset(pointer, len).ok_or(ImageError::Invalid("a manifest's name is outside the file"))?;
        let name = core::str::from_utf8(&bytes[offset..offset + len as usize])
            .map_err(|_| ImageError::Invalid("a manifest's name is not UTF-8"))?;
        names.push(alloc::string::String::from(name));
    }
    Ok(names)
}

/// Checks the ELF header and the segments; returns the bytes the image spans in a slot.
fn check(bytes: &[u8]) -> Result<u64, ImageError> {
    let elf = ElfFile::new(bytes).map_err(ImageError::Invalid)?;
    let header = &elf.header;
    if header.pt1.class() != Class::SixtyFour {
        return Err(ImageError::Invalid("not a 64-bit ELF"));
    }
    if header.pt2.machine().as_machine() != Machine::X86_64 {
        return Err(ImageError::Invalid("not an x86-64 ELF"));
    }
    if header.pt2.type_().as_type() != Type::SharedObject {
        return Err(ImageError::Invalid("not a position-independent executable"));
    }
    let mut span = 0u64;
    for segment in elf.program_iter() {
        if segment.get_type() != Ok(SegmentType::Load) {
            continue;
        }
        let end = segment.virtual_addr().checked_add(segment.mem_size()).ok_or(ImageError::Invalid("segment wraps"))?;
        let file_end = segment.offset().checked_add(segment.file_size()).ok_or(ImageError::Invalid("segment wraps"))?;
        if file_end > bytes.len() as u64 || segment.file_size() > segment.mem_size() {
            return Err(ImageError::Invalid("segment beyond the file"));
        }
        let flags = segment.flags();
        if flags.is_write() && flags.is_execute() {
            return Err(ImageError::Invalid("a segment is writable and executable"));
        }
        span = span.max(end);
    }
    if span == 0 || span > MAX_SPAN {
        return Err(ImageError::Invalid("no segments, or more than a slot's image region"));
    }
    if header.pt2.entry_point() >= span {
        return Err(ImageError::Invalid("entry point outside the image"));
    }
    Ok(span.next_multiple_of(4096))
}

/// A page of the image as loaded at boot, before relocation: its contents in a frame the kernel keeps for the
/// whole boot, its permissions, and the relocations that fall in it (offset in the page, addend).
struct Template {
    frame: PhysFrame<Size4KiB>,
    write: bool,
    execute: bool,
    relocations: Vec<(u16, u64)>,
    /// For a page that is not shared: its contents relocated for the first slot, where every `ring3-own` SIP
    /// (and the first `ring3` SIP of a core) lives, so a spawn there copies it and applies no relocation.
    at_first_slot: Option<PhysFrame<Size4KiB>>,
}

impl Template {
    /// A read-only page without relocations is the same in every slot: every SIP maps the one frame.
    fn shared(&self) -> bool {
        !self.write && self.relocations.is_empty()
    }
}

/// The image's pages, built once at boot, and its entry point (offset in the image).
struct Prebuilt {
    pages: Vec<Option<Template>>,
    entry: u64,
}

static PREBUILT: spin::Once<Prebuilt> = spin::Once::new();

/// Writes `bytes` at image offset `at` into the template pages (through the physical window).
fn write(pages: &[Option<Template>], at: u64, bytes: &[u8]) -> Result<(), ImageError> {
    let mut done = 0;
    while done < bytes.len() {
        let offset = at + done as u64;
        let page = pages
            .get((offset / 4096) as usize)
            .and_then(Option::as_ref)
            .ok_or(ImageError::Invalid("write outside the segments"))?;
        let within = (offset % 4096) as usize;
        let piece = (4096 - within).min(bytes.len() - done);
        let target = crate::memory::phys_to_virt(page.frame.start_address()).as_mut_ptr::<u8>();
        // SAFETY: the frame is a template being built at boot, this loader's alone; `within + piece` is at most
        // 4096, and the window maps the whole frame.
        unsafe { target.add(within).copy_from_nonoverlapping(bytes[done..].as_ptr(), piece) };
        done += piece;
    }
    Ok(())
}

/// A zeroed frame for a template page: the kernel's memory for the whole boot (it is built at boot, before any
/// SIP, and every ring-3 SIP maps it or copies it).
fn template_frame() -> Option<PhysFrame<Size4KiB>> {
    let frame = frames::allocate(frames::Use::Kernel)?;
    // SAFETY: the frame is fresh from the allocator, so only this code sees it; the window maps all 4096 bytes.
    unsafe { crate::memory::phys_to_virt(frame.start_address()).as_mut_ptr::<u8>().write_bytes(0, 4096) };
    Some(frame)
}

/// Builds the template pages of the image: the segments' contents and permissions, and each page's
/// relocations (all `R_X86_64_RELATIVE`, none straddling two pages). On failure the frames taken are given back.
fn prebuild(bytes: &[u8], span: u64) -> Result<Prebuilt, ImageError> {
    let elf = ElfFile::new(bytes).map_err(ImageError::Invalid)?;
    let mut pages: Vec<Option<Template>> = Vec::new();
    pages.resize_with((span / 4096) as usize, || None);
    let built = fill(&elf, bytes, &mut pages).and_then(|()| relocate_for_first_slot(&mut pages));
    if let Err(e) = built {
        pages.into_iter().flatten().for_each(|page| {
            let _ = frames::deallocate(page.frame);
            if let Some(frame) = page.at_first_slot {
                let _ = frames::deallocate(frame);
            }
        });
        return Err(e);
    }
    Ok(Prebuilt { pages, entry: elf.header.pt2.entry_point() })
}

/// Makes each private page's copy relocated for the first slot (kernel memory, kept for the boot).
fn relocate_for_first_slot(pages: &mut [Option<Template>]) -> Result<(), ImageError> {
    let base = crate::memory::layout::user_slot_start(0);
    for page in pages.iter_mut().flatten().filter(|page| !page.shared()) {
        let frame = template_frame().ok_or(ImageError::OutOfMemory)?;
        copy_frame(page.frame, frame);
        relocate(frame, &page.relocations, base);
        page.at_first_slot = Some(frame);
    }
    Ok(())
}

/// Copies the 4096 bytes of `from` into `to` (a fresh frame only the caller sees).
fn copy_frame(from: PhysFrame<Size4KiB>, to: PhysFrame<Size4KiB>) {
    let (from, to) =
        (crate::memory::phys_to_virt(from.start_address()), crate::memory::phys_to_virt(to.start_address()));
    // SAFETY: `to` is fresh and the caller's alone, `from` is a template only read from; the window maps both
    // whole, and they are distinct frames.
    unsafe { to.as_mut_ptr::<u8>().copy_from_nonoverlapping(from.as_ptr::<u8>(), 4096) };
}

/// Applies `relocations` for an image at `base` to the page in `frame` (fresh, the caller's alone).
fn relocate(frame: PhysFrame<Size4KiB>, relocations: &[(u16, u64)], base: u64) {
    let window = crate::memory::phys_to_virt(frame.start_address()).as_mut_ptr::<u8>();
    for (within, addend) in relocations {
        // One store per relocation (an image with 644: a copy call each cost 8,000 instructions a spawn).
        // SAFETY: the frame is the caller's alone until mapped; `within` is at most 4088 (checked at boot), so
        // the 8 bytes lie inside the frame the window maps; unaligned stores are allowed.
        unsafe { window.add(usize::from(*within)).cast::<u64>().write_unaligned(base.wrapping_add(*addend)) };
    }
}

/// [`prebuild`]'s work on `pages`.
fn fill(elf: &ElfFile<'_>, bytes: &[u8], pages: &mut [Option<Template>]) -> Result<(), ImageError> {
    for segment in elf.program_iter() {
        if segment.get_type() != Ok(SegmentType::Load) {
            continue;
        }
        let (start, end) = (segment.virtual_addr(), segment.virtual_addr() + segment.mem_size());
        let flags = segment.flags();
        for index in (start / 4096)..end.div_ceil(4096) {
            let slot = &mut pages[index as usize];
            if slot.is_none() {
                let frame = template_frame().ok_or(ImageError::OutOfMemory)?;
                *slot = Some(Template {
                    frame,
                    write: false,
                    execute: false,
                    relocations: Vec::new(),
                    at_first_slot: None,
                });
            }
            if let Some(page) = slot.as_mut() {
                page.write |= flags.is_write();
                page.execute |= flags.is_execute();
                if page.write && page.execute {
                    return Err(ImageError::Invalid("two segments make a page writable and executable"));
                }
            }
        }
        let file = &bytes[segment.offset() as usize..(segment.offset() + segment.file_size()) as usize];
        write(pages, start, file)?;
    }
    for section in elf.section_iter() {
        if section.get_type() != Ok(ShType::Rela) {
            continue;
        }
        let Ok(SectionData::Rela64(entries)) = section.get_data(elf) else {
            return Err(ImageError::Invalid("unreadable relocations"));
        };
        for entry in entries {
            if entry.get_type() != RELATIVE {
                return Err(ImageError::Invalid("a relocation other than R_X86_64_RELATIVE"));
            }
            let (offset, within) = (entry.get_offset(), entry.get_offset() % 4096);
            if within > 4096 - 8 {
                return Err(ImageError::Invalid("a relocation straddles two pages"));
            }
            let page = pages
                .get_mut((offset / 4096) as usize)
                .and_then(Option::as_mut)
                .ok_or(ImageError::Invalid("a relocation outside the segments"))?;
            page.relocations.push((within as u16, entry.get_addend()));
        }
    }
    Ok(())
}

/// Loads the image at `base` (a slot's start) of `space`; returns the entry point. Read-only pages without
/// relocations are the boot's template frames, shared by every SIP; the others are private copies with the
/// relocations applied for `base`, made before they are mapped. On failure what was mapped stays, for the
/// caller's cleanup of the slot.
pub fn load(space: &mut UserSpace, base: u64) -> Result<u64, ImageError> {
    let prebuilt = PREBUILT.get().ok_or(ImageError::Missing)?;
    for (index, page) in prebuilt.pages.iter().enumerate() {
        let Some(page) = page else { continue };
        let at = VirtAddr::new(base + index as u64 * 4096);
        let execute = if page.execute { Flags::empty() } else { Flags::NO_EXECUTE };
        if page.shared() {
            space.map_shared(at, page.frame, execute).map_err(|_| ImageError::OutOfMemory)?;
            continue;
        }
        let frame = match page.at_first_slot {
            Some(relocated) if base == crate::memory::layout::user_slot_start(0) => {
                copy_of_frame(relocated).ok_or(ImageError::OutOfMemory)?
            }
            _ => {
                let frame = copy_of_frame(page.frame).ok_or(ImageError::OutOfMemory)?;
                relocate(frame, &page.relocations, base);
                frame
            }
        };
        let write = if page.write { Flags::WRITABLE } else { Flags::empty() };
        if space.map(at, frame, write | execute).is_err() {
            let _ = frames::deallocate(frame);
            return Err(ImageError::OutOfMemory);
        }
    }
    Ok(base + prebuilt.entry)
}
