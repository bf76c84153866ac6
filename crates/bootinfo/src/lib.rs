//! The boot-info structure passed from the boot stub to the kernel core.
//!
//! It is `#[repr(C)]`, fixed-size and pointer-free, so the stub can build it in one physical frame
//! and the core can read it through the direct map. The memory map in it is exhaustive: every
//! byte the stub used (core image, page tables, boot stack, this structure) and every byte the
//! bootloader placed (modules, command line) is carved out of the usable regions under its own
//! kind, so the core's frame allocator never hands it out.
#![no_std]
#![forbid(unsafe_code)]

pub mod cmdline;
pub mod memmap;

pub use cmdline::{Cmdline, CmdlineError, LogLevel};
pub use memmap::{MemoryKind, MemoryMap, MemoryRegion};

/// Marks a valid [`BootInfo`] ("MOXIEBI1").
pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"MOXIEBI1");
/// Most modules the stub passes on.
pub const MAX_MODULES: usize = 8;
/// Longest module name (the bootloader's per-module string), in bytes.
pub const MODULE_NAME_LEN: usize = 64;
/// Longest kernel command line, in bytes; a longer one is cut and flagged.
pub const CMDLINE_LEN: usize = 512;

/// How the bootloader entered the stub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum BootProtocol {
    /// Multiboot v1 (`qemu -kernel`, with the a.out-kludge address fields).
    Multiboot1 = 1,
    /// Multiboot2 (GRUB's `multiboot2` command).
    Multiboot2 = 2,
}

/// A module the bootloader loaded (the boot bundle is one).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Module {
    /// Physical address of the first byte.
    pub phys_start: u64,
    /// Length in bytes.
    pub len: u64,
    name: [u8; MODULE_NAME_LEN],
    name_len: u32,
}

impl Module {
    /// An empty slot.
    pub const EMPTY: Module = Module {
        phys_start: 0,
        len: 0,
        name: [0; MODULE_NAME_LEN],
        name_len: 0,
    };

    /// A module record; a name longer than [`MODULE_NAME_LEN`] is cut.
    pub fn new(phys_start: u64, len: u64, name: &[u8]) -> Module {
        let mut m = Module {
            phys_start,
            len,
            ..Module::EMPTY
        };
        let n = name.len().min(MODULE_NAME_LEN);
        m.name[..n].copy_from_slice(&name[..n]);
        m.name_len = n as u32;
        m
    }

    /// The bootloader's string for this module (its command line), lossily as UTF-8.
    pub fn name(&self) -> &str {
        let bytes = &self.name[..(self.name_len as usize).min(MODULE_NAME_LEN)];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

/// Time-stamp-counter readings the stub takes on its way, for `cargo xtask bench`.
/// Under QEMU `-icount shift=0` one TSC tick is one guest instruction.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct BootTimings {
    /// First instruction of the stub's 32-bit entry.
    pub stub_entry: u64,
    /// Just before the core is decompressed.
    pub decompress_start: u64,
    /// Just after.
    pub decompress_end: u64,
    /// Just before the jump to the core's entry.
    pub core_jump: u64,
}

/// CPU protections the stub switched on (each only where CPUID reports it).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Protections {
    /// EFER.NXE: no-execute pages.
    pub nx: bool,
    /// CR4.SMEP: the kernel cannot execute user pages.
    pub smep: bool,
    /// CR4.SMAP: the kernel cannot touch user pages outside `stac`/`clac`.
    pub smap: bool,
    /// CR4.UMIP: user mode cannot run `sgdt`, `sidt` and friends.
    pub umip: bool,
}

/// Everything the core learns from the stub.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct BootInfo {
    /// [`BOOT_INFO_MAGIC`].
    pub magic: u64,
    /// How the stub was entered.
    pub protocol: BootProtocol,
    /// The physical memory map, exhaustive and sorted, with the stub's allocations carved out.
    pub memory: MemoryMap,
    modules: [Module; MAX_MODULES],
    modules_len: u32,
    cmdline: [u8; CMDLINE_LEN],
    cmdline_len: u32,
    /// True when the bootloader's command line was longer than [`CMDLINE_LEN`] and was cut.
    pub cmdline_truncated: bool,
    /// Virtual base of the direct map of physical memory.
    pub phys_map_base: u64,
    /// Highest physical address (exclusive) that the direct map covers.
    pub phys_map_end: u64,
    /// Physical address of the top-level page table the stub built (CR3).
    pub pml4_phys: u64,
    /// Sizes of the core image, compressed and as decompressed.
    pub core_compressed_size: u64,
    /// Uncompressed size of the core ELF.
    pub core_uncompressed_size: u64,
    /// TSC readings along the boot path.
    pub timings: BootTimings,
    /// What the stub enabled.
    pub protections: Protections,
    /// Physical address of the ACPI RSDP the bootloader handed over (multiboot2), or 0: the
    /// core then searches the BIOS areas for it.
    pub rsdp: u64,
}

impl BootInfo {
    /// An empty boot info for `protocol`, ready to be filled.
    pub const fn new(protocol: BootProtocol) -> BootInfo {
        BootInfo {
            magic: BOOT_INFO_MAGIC,
            protocol,
            memory: MemoryMap::new(),
            modules: [Module::EMPTY; MAX_MODULES],
            modules_len: 0,
            cmdline: [0; CMDLINE_LEN],
            cmdline_len: 0,
            cmdline_truncated: false,
            phys_map_base: 0,
            phys_map_end: 0,
            pml4_phys: 0,
            core_compressed_size: 0,
            core_uncompressed_size: 0,
            timings: BootTimings {
                stub_entry: 0,
                decompress_start: 0,
                decompress_end: 0,
                core_jump: 0,
            },
            protections: Protections {
                nx: false,
                smep: false,
                smap: false,
                umip: false,
            },
            rsdp: 0,
        }
    }

    /// Records a module; returns `false` (and drops it) when all slots are taken.
    pub fn push_module(&mut self, module: Module) -> bool {
        let n = self.modules_len as usize;
        if n >= MAX_MODULES {
            return false;
        }
        self.modules[n] = module;
        self.modules_len += 1;
        true
    }

    /// The modules, in the bootloader's order.
    pub fn modules(&self) -> &[Module] {
        &self.modules[..(self.modules_len as usize).min(MAX_MODULES)]
    }

    /// Stores the command line, cutting it at [`CMDLINE_LEN`] bytes (and flagging the cut).
    pub fn set_cmdline(&mut self, text: &[u8]) {
        let n = text.len().min(CMDLINE_LEN);
        self.cmdline[..n].copy_from_slice(&text[..n]);
        self.cmdline_len = n as u32;
        self.cmdline_truncated = text.len() > CMDLINE_LEN;
    }

    /// The command line as text (invalid UTF-8 is cut at the first bad byte).
    pub fn cmdline(&self) -> &str {
        let bytes = &self.cmdline[..(self.cmdline_len as usize).min(CMDLINE_LEN)];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_are_cut_not_overflowed() {
        let long = [b'x'; 100];
        let m = Module::new(0x1000, 5, &long);
        assert_eq!(m.name().len(), MODULE_NAME_LEN);
        let m = Module::new(0x1000, 5, b"bundle");
        assert_eq!(m.name(), "bundle");
    }

    #[test]
    fn module_slots_are_bounded() {
        let mut bi = BootInfo::new(BootProtocol::Multiboot2);
        for i in 0..MAX_MODULES {
            assert!(bi.push_module(Module::new(i as u64, 1, b"m")));
        }
        assert!(!bi.push_module(Module::new(99, 1, b"overflow")));
        assert_eq!(bi.modules().len(), MAX_MODULES);
    }

    #[test]
    fn cmdline_is_cut_and_flagged() {
        let mut bi = BootInfo::new(BootProtocol::Multiboot1);
        bi.set_cmdline(b"log=debug root=virtio-blk0");
        assert_eq!(bi.cmdline(), "log=debug root=virtio-blk0");
        assert!(!bi.cmdline_truncated);
        bi.set_cmdline(&[b'a'; CMDLINE_LEN + 10]);
        assert_eq!(bi.cmdline().len(), CMDLINE_LEN);
        assert!(bi.cmdline_truncated);
    }

    #[test]
    fn invalid_utf8_is_cut_at_the_first_bad_byte() {
        let mut bi = BootInfo::new(BootProtocol::Multiboot1);
        bi.set_cmdline(b"log=info \xff tail");
        assert_eq!(bi.cmdline(), "log=info ");
    }
}
