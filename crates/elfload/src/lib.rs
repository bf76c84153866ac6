//! The moxie module loader's logic, free of any kernel state so that it is tested on the host.
//!
//! A moxie module is an ELF64 x86_64 *shared object* (`ET_DYN`, linked `-shared -e _start`) built
//! from a `user/` crate. Every module is loaded at the same fixed base,
//! [`abi::layout::MODULE_BASE`]; its undefined symbols are resolved by name against the kernel
//! export table. Loading takes three steps, the kernel doing the mapping in between:
//!
//! 1. [`plan`] validates the file and describes the image: the loadable segments (their pages,
//!    their file bytes, their permissions), the entry point and the total span.
//! 2. The kernel maps `plan.span()` bytes at `plan.base()` and fills them with [`load`] (or
//!    copies each segment's file bytes itself and zeroes the rest).
//! 3. [`relocate`] applies the dynamic relocations to those bytes, resolving imports through a
//!    caller-supplied lookup. The kernel then sets each segment's page permissions
//!    ([`Segment::perms`]) and may make [`Plan::relro`] read-only.
//!
//! Only program headers and the dynamic section are read; section headers are ignored, so a
//! module stripped of them loads the same. Parsing uses the `elf` crate's zero-copy tables.
//!
//! Nothing here panics on any input (a randomized test feeds it millions of corrupted modules)
//! and every size and address computation is checked.
#![no_std]
#![forbid(unsafe_code)]

mod error;
mod reloc;

use core::ops::Range;

use abi::layout::{MODULE_MAX_SIZE, PAGE_SIZE, USER_END};
use elf::abi as ea;
use elf::endian::LittleEndian;
use elf::file::{Class, FileHeader};
use elf::segment::SegmentTable;

pub use error::{LoadError, SYMBOL_NAME_MAX, SymbolName};
pub use reloc::relocate;

/// The most non-empty `PT_LOAD` segments a module may have.
pub const MAX_SEGMENTS: usize = 8;

/// The four bytes every ELF file starts with.
const MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
/// Size of an ELF64 file header.
const EHDR_SIZE: usize = 64;
/// Size of an ELF64 program header.
const PHDR_SIZE: usize = 56;

/// A segment's page permissions. Reading is always allowed (x86_64 pages cannot be execute-only
/// or write-only), so `PF_X` alone gives [`Perms::RX`], `PF_W` alone [`Perms::RW`], and no flag
/// at all [`Perms::R`]. Writable *and* executable is refused ([`LoadError::WritableExecutable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Perms {
    /// Read-only data.
    R,
    /// Read-write data.
    RW,
    /// Read-only, executable code.
    RX,
}

impl Perms {
    /// Whether the pages are writable.
    pub const fn writable(self) -> bool {
        matches!(self, Perms::RW)
    }

    /// Whether the pages are executable.
    pub const fn executable(self) -> bool {
        matches!(self, Perms::RX)
    }
}

/// One loadable segment of a [`Plan`].
///
/// Its memory is `[vaddr, vaddr + mem_size)`; the first `file_size` bytes come from the file at
/// `file_offset`, the rest are zero. The kernel maps whole [`pages`](Segment::pages), which
/// never share a page with another segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Segment {
    vaddr: u64,
    offset: u64,
    mem_size: u64,
    file_offset: u64,
    file_size: u64,
    perms: Perms,
}

impl Segment {
    /// Absolute address of the segment's first byte (`base + p_vaddr`; not necessarily
    /// page-aligned).
    pub const fn vaddr(&self) -> u64 {
        self.vaddr
    }

    /// Bytes of memory the segment occupies from [`vaddr`](Segment::vaddr) (`p_memsz`, never 0).
    pub const fn mem_size(&self) -> u64 {
        self.mem_size
    }

    /// Offset in the file of the bytes to copy (`p_offset`).
    pub const fn file_offset(&self) -> u64 {
        self.file_offset
    }

    /// Bytes to copy from the file (`p_filesz`, at most [`mem_size`](Segment::mem_size)); the
    /// rest of the segment is zero.
    pub const fn file_size(&self) -> u64 {
        self.file_size
    }

    /// The page permissions.
    pub const fn perms(&self) -> Perms {
        self.perms
    }

    /// The page-aligned absolute address range the segment's pages cover.
    pub const fn pages(&self) -> Range<u64> {
        // `plan` checked that the rounded end neither overflows nor leaves the module range.
        let end = self.vaddr + self.mem_size;
        (self.vaddr & !(PAGE_SIZE - 1))..((end + PAGE_SIZE - 1) & !(PAGE_SIZE - 1))
    }

    /// The file bytes to copy, as a range of the file `plan` was given (`plan` checked that it
    /// lies inside that file).
    pub const fn file_range(&self) -> Range<usize> {
        // Both ends are at most the file's length, so they fit in a usize.
        (self.file_offset as usize)..((self.file_offset + self.file_size) as usize)
    }

    /// Where the file bytes go, as a range of the image (whose byte 0 is at the plan's base):
    /// `p_vaddr .. p_vaddr + p_filesz`.
    pub const fn image_range(&self) -> Range<usize> {
        // Below MODULE_MAX_SIZE (256 MiB), so they fit in a usize.
        (self.offset as usize)..((self.offset + self.file_size) as usize)
    }

    /// Whether the absolute range `[addr, addr + len)` lies inside the segment's memory
    /// (not its page padding).
    fn contains(&self, addr: u64, len: u64) -> bool {
        match addr.checked_sub(self.vaddr) {
            Some(rel) => rel <= self.mem_size && len <= self.mem_size - rel,
            None => false,
        }
    }
}

/// A validated module image: what [`plan`] found, and what [`load`] and [`relocate`] use.
///
/// Only [`plan`] makes one, so its contents always satisfy the checks listed there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    base: u64,
    entry: u64,
    span: u64,
    segments: [Segment; MAX_SEGMENTS],
    count: usize,
    /// File range of `PT_DYNAMIC`, if any (checked to lie inside the file).
    dynamic: Option<(u64, u64)>,
    relro: Option<(u64, u64)>,
}

impl Plan {
    /// The absolute load address: byte 0 of the image, where link-time address 0 lands.
    pub const fn base(&self) -> u64 {
        self.base
    }

    /// The absolute entry point (`base + e_entry`), inside an executable segment.
    pub const fn entry(&self) -> u64 {
        self.entry
    }

    /// Bytes from [`base`](Plan::base) to the end of the last segment's last page: the length
    /// of the image buffer [`load`] and [`relocate`] work on. A multiple of the page size, at
    /// most `MODULE_MAX_SIZE`.
    pub const fn span(&self) -> u64 {
        self.span
    }

    /// The loadable segments, in ascending address order (at most [`MAX_SEGMENTS`]).
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }

    /// The page-aligned absolute range that holds only relocation-time data (`PT_GNU_RELRO`),
    /// which the kernel may make read-only once [`relocate`] is done. The region is rounded out
    /// to page boundaries where it meets the edge of its segment and in elsewhere; `None` when
    /// the module has no `PT_GNU_RELRO` or it covers no whole page.
    pub fn relro(&self) -> Option<Range<u64>> {
        self.relro.map(|(start, end)| start..end)
    }

    /// Whether a writable segment's memory holds the absolute range `[addr, addr + len)`.
    fn writable_contains(&self, addr: u64, len: u64) -> bool {
        self.segments()
            .iter()
            .any(|s| s.perms.writable() && s.contains(addr, len))
    }
}

const fn page_down(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

fn page_up(x: u64) -> Option<u64> {
    Some(x.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1))
}

/// The file slice `[offset, offset + len)`, or `None` when it overflows or leaves the file.
fn file_slice(file: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    file.get(start..end)
}

/// Checks the identification and file header and parses the latter.
fn header(file: &[u8]) -> Result<FileHeader<LittleEndian>, LoadError> {
    let n = file.len().min(MAGIC.len());
    if file[..n] != MAGIC[..n] {
        return Err(LoadError::BadMagic);
    }
    let Some(ident) = file.get(..ea::EI_NIDENT) else {
        return Err(LoadError::Truncated("ELF identification"));
    };
    if ident[ea::EI_CLASS] != ea::ELFCLASS64 {
        return Err(LoadError::WrongClass(ident[ea::EI_CLASS]));
    }
    if ident[ea::EI_DATA] != ea::ELFDATA2LSB {
        return Err(LoadError::WrongEndian(ident[ea::EI_DATA]));
    }
    if ident[ea::EI_VERSION] != ea::EV_CURRENT {
        return Err(LoadError::BadHeader("unknown ELF identification version"));
    }
    let Some(tail) = file.get(ea::EI_NIDENT..EHDR_SIZE) else {
        return Err(LoadError::Truncated("file header"));
    };
    let parsed = elf::file::parse_ident::<LittleEndian>(ident)
        .map_err(|_| LoadError::BadHeader("ELF identification"))?;
    let hdr =
        FileHeader::parse_tail(parsed, tail).map_err(|_| LoadError::Truncated("file header"))?;
    if hdr.e_machine != ea::EM_X86_64 {
        return Err(LoadError::WrongMachine(hdr.e_machine));
    }
    if hdr.e_type != ea::ET_DYN {
        return Err(LoadError::NotPositionIndependent(hdr.e_type));
    }
    if hdr.version != u32::from(ea::EV_CURRENT) {
        return Err(LoadError::BadHeader("unknown ELF version"));
    }
    Ok(hdr)
}

/// The program header table of a checked file header.
fn program_headers<'a>(
    file: &'a [u8],
    hdr: &FileHeader<LittleEndian>,
) -> Result<SegmentTable<'a, LittleEndian>, LoadError> {
    if hdr.e_phnum == 0 {
        return Err(LoadError::NoSegments);
    }
    if hdr.e_phnum == ea::PN_XNUM {
        return Err(LoadError::BadHeader(
            "extended program header count (PN_XNUM)",
        ));
    }
    if usize::from(hdr.e_phentsize) != PHDR_SIZE {
        return Err(LoadError::BadHeader("program header entry size is not 56"));
    }
    let size = (PHDR_SIZE * usize::from(hdr.e_phnum)) as u64;
    let table =
        file_slice(file, hdr.e_phoff, size).ok_or(LoadError::Truncated("program headers"))?;
    Ok(SegmentTable::new(LittleEndian, Class::ELF64, table))
}

/// Validates `file` as a moxie module to be loaded at `base` and describes its image.
///
/// Checks, each with its own [`LoadError`]: the magic; class ELF64; little endian; current
/// version; machine x86_64; type `ET_DYN` (`ET_EXEC` is refused: modules must be
/// position-independent); 56-byte program headers inside the file; `base` page-aligned; for
/// every `PT_LOAD` with a non-zero `p_memsz` (empty ones are ignored): `p_filesz <= p_memsz`,
/// file bytes inside the file, not writable and executable, pages inside
/// `[base, base + MODULE_MAX_SIZE)` and below `USER_END`, no page shared with another segment,
/// at most [`MAX_SEGMENTS`] of them and at least one; `PT_DYNAMIC` (at most one) inside the file;
/// `PT_GNU_RELRO` inside one writable segment; no `PT_TLS` or `PT_INTERP`; the
/// entry point inside an executable segment's file bytes. Other program headers (`PT_PHDR`,
/// `PT_NOTE`, `PT_GNU_STACK`, `PT_GNU_EH_FRAME`...) are ignored. All arithmetic is checked.
pub fn plan(file: &[u8], base: u64) -> Result<Plan, LoadError> {
    let hdr = header(file)?;
    let phdrs = program_headers(file, &hdr)?;
    if !base.is_multiple_of(PAGE_SIZE) {
        return Err(LoadError::BadBase(base));
    }
    let limit = base.saturating_add(MODULE_MAX_SIZE).min(USER_END);

    let empty = Segment {
        vaddr: 0,
        offset: 0,
        mem_size: 0,
        file_offset: 0,
        file_size: 0,
        perms: Perms::R,
    };
    let mut plan = Plan {
        base,
        entry: 0,
        span: 0,
        segments: [empty; MAX_SEGMENTS],
        count: 0,
        dynamic: None,
        relro: None,
    };
    let mut relro = None;

    for ph in phdrs.iter() {
        match ph.p_type {
            ea::PT_LOAD => {
                if ph.p_memsz == 0 {
                    continue;
                }
                if ph.p_filesz > ph.p_memsz {
                    return Err(LoadError::BadHeader(
                        "segment file size exceeds its memory size",
                    ));
                }
                if file_slice(file, ph.p_offset, ph.p_filesz).is_none() {
                    return Err(LoadError::Truncated("segment data"));
                }
                let perms = match (ph.p_flags & ea::PF_W != 0, ph.p_flags & ea::PF_X != 0) {
                    (true, true) => return Err(LoadError::WritableExecutable(ph.p_vaddr)),
                    (true, false) => Perms::RW,
                    (false, true) => Perms::RX,
                    (false, false) => Perms::R,
                };
                let out_of_range = LoadError::SegmentOutOfRange(ph.p_vaddr);
                let start = base.checked_add(ph.p_vaddr).ok_or(out_of_range)?;
                let end = start.checked_add(ph.p_memsz).ok_or(out_of_range)?;
                let page_end = page_up(end).ok_or(out_of_range)?;
                if page_end > limit {
                    return Err(out_of_range);
                }
                let seg = Segment {
                    vaddr: start,
                    offset: ph.p_vaddr,
                    mem_size: ph.p_memsz,
                    file_offset: ph.p_offset,
                    file_size: ph.p_filesz,
                    perms,
                };
                let pages = seg.pages();
                for other in plan.segments() {
                    let o = other.pages();
                    if pages.start < o.end && o.start < pages.end {
                        return Err(LoadError::SegmentsOverlap(pages.start.max(o.start)));
                    }
                }
                if plan.count == MAX_SEGMENTS {
                    return Err(LoadError::TooManySegments);
                }
                // Insert in address order (segments are disjoint, so the order is total).
                let mut i = plan.count;
                while i > 0 && plan.segments[i - 1].vaddr > seg.vaddr {
                    plan.segments[i] = plan.segments[i - 1];
                    i -= 1;
                }
                plan.segments[i] = seg;
                plan.count += 1;
                plan.span = plan.span.max(page_end - base);
            }
            ea::PT_DYNAMIC => {
                if plan.dynamic.is_some() {
                    return Err(LoadError::BadDynamic("more than one PT_DYNAMIC"));
                }
                if file_slice(file, ph.p_offset, ph.p_filesz).is_none() {
                    return Err(LoadError::Truncated("dynamic section"));
                }
                plan.dynamic = Some((ph.p_offset, ph.p_filesz));
            }
            ea::PT_GNU_RELRO => relro = Some((ph.p_vaddr, ph.p_memsz)),
            ea::PT_TLS | ea::PT_INTERP => return Err(LoadError::UnsupportedSegment(ph.p_type)),
            _ => {}
        }
    }
    if plan.count == 0 {
        return Err(LoadError::NoSegments);
    }

    if let Some((vaddr, memsz)) = relro {
        let bad = LoadError::BadHeader("PT_GNU_RELRO outside a writable segment");
        let start = base.checked_add(vaddr).ok_or(bad)?;
        let end = start.checked_add(memsz).ok_or(bad)?;
        if memsz > 0 {
            let seg = plan
                .segments()
                .iter()
                .find(|s| s.perms.writable() && s.contains(start, memsz))
                .ok_or(bad)?;
            // Round outwards only where the region meets its segment's edge (the rest of that
            // page belongs to no other segment), inwards elsewhere.
            let start = if start == seg.vaddr {
                page_down(start)
            } else {
                page_up(start).ok_or(bad)?
            };
            let end = if end == seg.vaddr + seg.mem_size {
                page_up(end).ok_or(bad)?
            } else {
                page_down(end)
            };
            if start < end {
                plan.relro = Some((start, end));
            }
        }
    }

    let entry = base
        .checked_add(hdr.e_entry)
        .ok_or(LoadError::EntryOutsideCode(hdr.e_entry))?;
    let in_code = plan
        .segments()
        .iter()
        .any(|s| s.perms.executable() && entry >= s.vaddr && entry - s.vaddr < s.file_size);
    if !in_code {
        return Err(LoadError::EntryOutsideCode(hdr.e_entry));
    }
    plan.entry = entry;
    Ok(plan)
}

/// Fills `image` (whose byte 0 is at `plan.base()`) with the module's initial contents: each
/// segment's file bytes at its place, zero everywhere else (bss, padding, gaps between
/// segments).
///
/// `image` must be at least [`Plan::span`] bytes ([`LoadError::ImageTooSmall`]); bytes past the
/// span are zeroed too. `file` must be the file `plan` was made from (a different, shorter file
/// gives [`LoadError::Truncated`]).
pub fn load(file: &[u8], plan: &Plan, image: &mut [u8]) -> Result<(), LoadError> {
    let too_small = LoadError::ImageTooSmall {
        needed: plan.span,
        got: image.len() as u64,
    };
    if (image.len() as u64) < plan.span {
        return Err(too_small);
    }
    image.fill(0);
    for seg in plan.segments() {
        let src = file
            .get(seg.file_range())
            .ok_or(LoadError::Truncated("segment data"))?;
        image
            .get_mut(seg.image_range())
            .ok_or(too_small)?
            .copy_from_slice(src);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_names_are_cut_at_a_character_boundary() {
        let short = SymbolName::new("moxie_sys_log");
        assert_eq!(short.as_str(), "moxie_sys_log");
        assert!(!short.is_truncated());

        let long = "é".repeat(40); // 80 bytes
        let cut = SymbolName::new(&long);
        assert!(cut.is_truncated());
        assert_eq!(cut.as_str(), "é".repeat(32));

        let exact = "x".repeat(SYMBOL_NAME_MAX);
        assert!(!SymbolName::new(&exact).is_truncated());
        let over = "x".repeat(SYMBOL_NAME_MAX + 1);
        let over = SymbolName::new(&over);
        assert!(over.is_truncated());
        assert_eq!(over.as_str().len(), SYMBOL_NAME_MAX);
    }

    #[test]
    fn page_rounding() {
        assert_eq!(page_down(0x1fff), 0x1000);
        assert_eq!(page_up(0x1001), Some(0x2000));
        assert_eq!(page_up(0x2000), Some(0x2000));
        assert_eq!(page_up(u64::MAX), None);
    }

    #[test]
    fn segment_contains_checks_both_ends() {
        let s = Segment {
            vaddr: 0x1000,
            offset: 0x1000,
            mem_size: 0x10,
            file_offset: 0,
            file_size: 0,
            perms: Perms::RW,
        };
        assert!(s.contains(0x1000, 8));
        assert!(s.contains(0x1008, 8));
        assert!(!s.contains(0x1009, 8));
        assert!(!s.contains(0xfff, 8));
        assert!(!s.contains(0x1008, u64::MAX));
        assert_eq!(s.pages(), 0x1000..0x2000);
    }
}
