//! Reads the bootloader's multiboot (v1) or multiboot2 information into the boot-info structure:
//! the firmware memory map, the modules, the command line; and paints everything the bootloader
//! placed in memory so that no later allocation overwrites it.
use crate::StubError;
use bootinfo::{BootInfo, BootProtocol, MemoryKind, Module};

const MIB: u64 = 1 << 20;

/// Fills `bi` from the information structure at `addr`.
pub fn read(protocol: BootProtocol, addr: u32, bi: &mut BootInfo) -> Result<(), StubError> {
    match protocol {
        BootProtocol::Multiboot1 => read_mb1(addr, bi)?,
        BootProtocol::Multiboot2 => read_mb2(addr, bi)?,
    }
    // Low memory stays out of every allocator (trampolines, BIOS data).
    paint(bi, 0, MIB, MemoryKind::LowMemory)?;
    if bi.memory.total(MemoryKind::Usable) == 0 {
        return Err(StubError::BadBootInfo("the memory map has no usable RAM"));
    }
    Ok(())
}

fn paint(bi: &mut BootInfo, start: u64, end: u64, kind: MemoryKind) -> Result<(), StubError> {
    if end <= start {
        return Ok(());
    }
    bi.memory
        .paint(start & !0xfff, end.next_multiple_of(4096), kind)
        .map_err(|_| StubError::BadBootInfo("more memory regions than the map holds"))
}

fn firmware_kind(code: u32) -> MemoryKind {
    match code {
        1 => MemoryKind::Usable,
        3 => MemoryKind::AcpiReclaimable,
        4 => MemoryKind::AcpiNvs,
        5 => MemoryKind::Defective,
        _ => MemoryKind::Reserved,
    }
}

fn add_firmware(bi: &mut BootInfo, start: u64, len: u64, code: u32) -> Result<(), StubError> {
    let Some(end) = start.checked_add(len) else {
        return Err(StubError::BadBootInfo("a memory region wraps around"));
    };
    if len == 0 {
        return Ok(());
    }
    let kind = firmware_kind(code);
    // Usable RAM shrinks inwards to whole pages; anything else grows outwards.
    let (s, e) = if kind == MemoryKind::Usable {
        (start.next_multiple_of(4096), end & !0xfff)
    } else {
        (start & !0xfff, end.next_multiple_of(4096))
    };
    if e <= s {
        return Ok(());
    }
    bi.memory
        .add_firmware(s, e, kind)
        .map_err(|_| StubError::BadBootInfo("more memory regions than the map holds"))
}

/// Identity-mapped physical memory, as the `multiboot` crate wants it.
struct Identity;

impl multiboot::information::MemoryManagement for Identity {
    unsafe fn paddr_to_slice(&self, addr: u64, length: usize) -> Option<&'static [u8]> {
        if addr == 0 || addr.checked_add(length as u64)? > 1 << 32 {
            return None;
        }
        // SAFETY: the low 4 GiB are identity-mapped by `entry.rs`, and the caller (the crate)
        // asks only for ranges the bootloader described.
        Some(unsafe { core::slice::from_raw_parts(addr as *const u8, length) })
    }
    unsafe fn allocate(&mut self, _length: usize) -> Option<(u64, &mut [u8])> {
        None
    }
    unsafe fn deallocate(&mut self, _addr: u64) {}
}

fn read_mb1(addr: u32, bi: &mut BootInfo) -> Result<(), StubError> {
    let mut mm = Identity;
    // SAFETY: a multiboot v1 loader passed `addr` in ebx with the matching magic in eax.
    let mb = unsafe { multiboot::information::Multiboot::from_ptr(addr as u64, &mut mm) }.ok_or(
        StubError::BadBootInfo("the multiboot information pointer is null"),
    )?;
    let regions = mb
        .memory_regions()
        .ok_or(StubError::BadBootInfo("the loader gave no memory map"))?;
    for r in regions {
        add_firmware(bi, r.base_address(), r.length(), r.memory_type() as u32)?;
    }
    if let Some(cmdline) = mb.command_line() {
        // QEMU's multiboot loader puts the kernel's file name first; it is not an option.
        let cmdline = match cmdline.split_once(' ') {
            Some((first, rest)) if !first.contains('=') => rest,
            None if !cmdline.contains('=') => "",
            _ => cmdline,
        };
        bi.set_cmdline(cmdline.as_bytes());
    }
    if let Some(modules) = mb.modules() {
        for m in modules {
            let name = m.string.unwrap_or("");
            bi.push_module(Module::new(
                m.start,
                m.end.saturating_sub(m.start),
                name.as_bytes(),
            ));
            paint(bi, m.start, m.end, MemoryKind::Module)?;
        }
    }
    // The fixed part of the information structure (the pieces it points to are in low memory
    // on QEMU, which stays reserved; the command line and module names are copied above).
    paint(
        bi,
        addr as u64,
        addr as u64 + 116,
        MemoryKind::BootloaderInfo,
    )
}

fn read_mb2(addr: u32, bi: &mut BootInfo) -> Result<(), StubError> {
    // SAFETY: a multiboot2 loader passed `addr` in ebx with the matching magic in eax; the
    // structure lies in identity-mapped low memory.
    let mb = unsafe {
        multiboot2::BootInformation::load(addr as *const multiboot2::BootInformationHeader)
    }
    .map_err(|_| StubError::BadBootInfo("the multiboot2 information does not parse"))?;
    let areas = mb
        .memory_map_tag()
        .ok_or(StubError::BadBootInfo("the loader gave no memory map"))?;
    for a in areas.memory_areas() {
        let code = match a.typ() {
            multiboot2::MemoryAreaType::Available => 1,
            multiboot2::MemoryAreaType::AcpiAvailable => 3,
            multiboot2::MemoryAreaType::ReservedHibernate => 4,
            multiboot2::MemoryAreaType::Defective => 5,
            _ => 2,
        };
        add_firmware(bi, a.start_address(), a.size(), code)?;
    }
    if let Some(Ok(cmdline)) = mb.command_line_tag().map(|t| t.cmdline()) {
        bi.set_cmdline(cmdline.as_bytes());
    }
    for m in mb.module_tags() {
        let (start, end) = (m.start_address() as u64, m.end_address() as u64);
        let name = m.cmdline().unwrap_or("");
        bi.push_module(Module::new(
            start,
            end.saturating_sub(start),
            name.as_bytes(),
        ));
        paint(bi, start, end, MemoryKind::Module)?;
    }
    // GRUB copies the RSDP into its tag; the copy stays valid (the information structure is
    // painted below and never reused), 8 bytes past the tag header.
    if let Some(tag) = mb.rsdp_v2_tag() {
        bi.rsdp = core::ptr::from_ref(tag) as *const u8 as u64 + 8;
    } else if let Some(tag) = mb.rsdp_v1_tag() {
        bi.rsdp = core::ptr::from_ref(tag) as *const u8 as u64 + 8;
    }
    paint(
        bi,
        mb.start_address() as u64,
        mb.end_address() as u64,
        MemoryKind::BootloaderInfo,
    )
}
