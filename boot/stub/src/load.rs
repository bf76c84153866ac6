//! Decompresses the core into scratch memory and loads its ELF segments into fresh frames.
use crate::StubError;
use bootinfo::{MemoryKind, MemoryMap};
use elf::{ElfBytes, abi, endian::LittleEndian};

const MIB: u64 = 1 << 20;
const LOW_4G: u64 = 1 << 32;
/// Most loadable segments the core may have.
pub const MAX_SEGMENTS: usize = 8;

/// One loaded segment: where it lives physically and where the core expects it.
#[derive(Clone, Copy, Default)]
pub struct Segment {
    /// Page-aligned virtual start.
    pub virt: u64,
    /// Page-aligned physical start.
    pub phys: u64,
    /// Bytes, a multiple of the page size.
    pub len: u64,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

/// The loaded core.
pub struct CoreImage {
    /// Entry point (virtual).
    pub entry: u64,
    /// Its segments.
    pub segments: [Segment; MAX_SEGMENTS],
    /// How many of `segments` are used.
    pub count: usize,
}

/// Verifies the container and decompresses it into freshly allocated scratch memory.
pub fn decompress(map: &mut MemoryMap, image: &[u8]) -> Result<&'static [u8], StubError> {
    let (header, _) = coreimg::Header::parse(image).map_err(StubError::Core)?;
    if header.uncompressed_len == 0 || header.uncompressed_len > 256 * MIB {
        return Err(StubError::Elf("the header states an implausible core size"));
    }
    let len = header.uncompressed_len;
    let at = map
        .allocate(
            len.next_multiple_of(4096),
            4096,
            MIB,
            LOW_4G,
            MemoryKind::CoreScratch,
        )
        .ok_or(StubError::NoMemory("the decompressed core"))?;
    // SAFETY: `at..at+len` was just painted `CoreScratch`: identity-mapped RAM nothing else uses.
    let out = unsafe { core::slice::from_raw_parts_mut(at as *mut u8, len as usize) };
    let n = coreimg::unpack_into(image, out).map_err(StubError::Core)?;
    Ok(&out[..n])
}

/// Loads every `PT_LOAD` segment of the core ELF into new frames (zeroing the bss part).
pub fn load_segments(map: &mut MemoryMap, core: &[u8]) -> Result<CoreImage, StubError> {
    let file = ElfBytes::<LittleEndian>::minimal_parse(core)
        .map_err(|_| StubError::Elf("not an ELF file"))?;
    if file.ehdr.class != elf::file::Class::ELF64 || file.ehdr.e_machine != abi::EM_X86_64 {
        return Err(StubError::Elf("not an x86_64 ELF64 file"));
    }
    let phdrs = file
        .segments()
        .ok_or(StubError::Elf("no program headers"))?;
    let mut img = CoreImage {
        entry: file.ehdr.e_entry,
        segments: [Segment::default(); MAX_SEGMENTS],
        count: 0,
    };
    for ph in phdrs
        .iter()
        .filter(|p| p.p_type == abi::PT_LOAD && p.p_memsz > 0)
    {
        if img.count == MAX_SEGMENTS {
            return Err(StubError::Elf("too many loadable segments"));
        }
        let write = ph.p_flags & abi::PF_W != 0;
        let exec = ph.p_flags & abi::PF_X != 0;
        if write && exec {
            return Err(StubError::Elf("a segment is writable and executable (W^X)"));
        }
        if ph.p_vaddr < abi_layout::KERNEL_BASE || ph.p_filesz > ph.p_memsz {
            return Err(StubError::Elf(
                "a segment lies outside the kernel's top 2 GiB",
            ));
        }
        let end = ph
            .p_vaddr
            .checked_add(ph.p_memsz)
            .ok_or(StubError::Elf("a segment wraps around"))?;
        let file_end = ph
            .p_offset
            .checked_add(ph.p_filesz)
            .filter(|&e| e <= core.len() as u64)
            .ok_or(StubError::Elf("a segment extends past the end of the file"))?;
        let virt = ph.p_vaddr & !0xfff;
        let len = end.next_multiple_of(4096) - virt;
        if img.segments[..img.count]
            .iter()
            .any(|s| virt < s.virt + s.len && s.virt < virt + len)
        {
            return Err(StubError::Elf("two segments share a page"));
        }
        let phys = map
            .allocate(len, 4096, MIB, LOW_4G, MemoryKind::KernelImage)
            .ok_or(StubError::NoMemory("the core's segments"))?;
        // SAFETY: `phys..phys+len` was just painted `KernelImage`: identity-mapped RAM that
        // nothing else uses.
        let dst = unsafe { core::slice::from_raw_parts_mut(phys as *mut u8, len as usize) };
        dst.fill(0);
        let off = (ph.p_vaddr - virt) as usize;
        dst[off..off + ph.p_filesz as usize]
            .copy_from_slice(&core[ph.p_offset as usize..file_end as usize]);
        img.segments[img.count] = Segment {
            virt,
            phys,
            len,
            write,
            exec,
        };
        img.count += 1;
    }
    if !img.segments[..img.count]
        .iter()
        .any(|s| s.exec && s.virt <= img.entry && img.entry < s.virt + s.len)
    {
        return Err(StubError::Elf(
            "the entry point is not in an executable segment",
        ));
    }
    Ok(img)
}

use ::abi::layout as abi_layout;
