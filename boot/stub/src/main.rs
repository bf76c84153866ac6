//! The moxie boot stub: from the bootloader's 32-bit entry to the kernel core's 64-bit entry.
//!
//! Flow: `entry.rs` reaches long mode on temporary identity tables; [`stub_main`] then reads the
//! multiboot information (v1 or v2) into a [`bootinfo::BootInfo`], verifies and decompresses the
//! LZ4 core carried in the `.core` section, loads its segments, builds the final page tables
//! (kernel in the top 2 GiB, a direct map of physical memory, the stub itself identity-mapped),
//! enables the protections the CPU has (NX, SMEP, SMAP, UMIP, WP) and jumps to the core with the
//! boot info. Any failure is printed on COM1 and stops QEMU with [`ExitCode::BootFailure`].
#![no_std]
#![no_main]

mod entry;
mod info;
mod load;
mod paging;
mod serial;

use abi::qemu::ExitCode;
use bootinfo::{BootInfo, BootProtocol, MemoryKind};
use core::fmt::Write;
use serial::Console;

/// What multiboot v1 loaders put in `eax`.
const MB1_BOOT_MAGIC: u32 = 0x2BAD_B002;
/// What multiboot2 loaders put in `eax`.
const MB2_BOOT_MAGIC: u32 = 0x36D7_6289;

const CORE_LEN: usize = include_bytes!(concat!(env!("OUT_DIR"), "/core.img")).len();

/// The compressed core, packed by `cargo xtask` (see `coreimg`).
#[unsafe(link_section = ".core")]
#[used]
static CORE_IMAGE: [u8; CORE_LEN] = *include_bytes!(concat!(env!("OUT_DIR"), "/core.img"));

unsafe extern "C" {
    static __stub_start: u8;
    static __stub_end: u8;
}

/// A reason the stub cannot boot, printed before it stops.
pub enum StubError {
    /// The loader is not multiboot.
    UnknownMagic(u32),
    /// The multiboot information is unreadable.
    BadBootInfo(&'static str),
    /// The compressed core failed verification or decompression.
    Core(coreimg::CoreError),
    /// The core ELF is not loadable.
    Elf(&'static str),
    /// No room in the memory map for `what`.
    NoMemory(&'static str),
}

impl core::fmt::Display for StubError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StubError::UnknownMagic(m) => write!(
                f,
                "entered with boot magic {m:#x}; boot moxie with a multiboot (v1) or multiboot2 loader"
            ),
            StubError::BadBootInfo(what) => {
                write!(f, "the multiboot information is unusable: {what}")
            }
            StubError::Core(e) => write!(
                f,
                "the compressed kernel core is corrupt: {e}; rebuild it with `cargo xtask build`"
            ),
            StubError::Elf(what) => write!(f, "the kernel core ELF cannot be loaded: {what}"),
            StubError::NoMemory(what) => write!(f, "not enough memory below 4 GiB for {what}"),
        }
    }
}

fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Where the physical range of the stub's own image starts and ends.
fn stub_range() -> (u64, u64) {
    // Only the addresses of the linker-defined symbols are taken, never their contents.
    (&raw const __stub_start as u64, &raw const __stub_end as u64)
}

/// Called by `entry.rs` in 64-bit mode with the bootloader's `eax` and `ebx`.
#[unsafe(no_mangle)]
extern "C" fn stub_main(magic: u32, info_addr: u32) -> ! {
    let mut con = Console::com1();
    match boot(&mut con, magic, info_addr) {
        Ok(never) => match never {},
        Err(e) => {
            let _ = writeln!(con, "moxie stub: cannot boot: {e}");
            serial::exit(ExitCode::BootFailure)
        }
    }
}

fn boot(
    con: &mut Console,
    magic: u32,
    info_addr: u32,
) -> Result<core::convert::Infallible, StubError> {
    // SAFETY: `_start32` wrote the counter before anything else ran; nothing writes it since.
    let entry_tsc = unsafe { (&raw const entry::STUB_ENTRY_TSC).read_volatile() };
    let protocol = match magic {
        MB1_BOOT_MAGIC => BootProtocol::Multiboot1,
        MB2_BOOT_MAGIC => BootProtocol::Multiboot2,
        other => return Err(StubError::UnknownMagic(other)),
    };
    let _ = writeln!(
        con,
        "moxie stub: entered via {}",
        match protocol {
            BootProtocol::Multiboot1 => "multiboot",
            BootProtocol::Multiboot2 => "multiboot2",
        }
    );

    let mut bi = BootInfo::new(protocol);
    bi.timings.stub_entry = entry_tsc;
    info::read(protocol, info_addr, &mut bi)?;
    let (stub_start, stub_end) = stub_range();
    bi.memory
        .paint(stub_start, stub_end, MemoryKind::BootStub)
        .map_err(|_| StubError::NoMemory("the memory map"))?;

    bi.timings.decompress_start = rdtsc();
    let core = load::decompress(&mut bi.memory, &CORE_IMAGE)?;
    bi.timings.decompress_end = rdtsc();
    bi.core_compressed_size = CORE_LEN as u64;
    bi.core_uncompressed_size = core.len() as u64;

    let image = load::load_segments(&mut bi.memory, core)?;
    let nx = paging::nx_enabled();
    let tables = paging::build(&mut bi.memory, &image, (stub_start, stub_end), nx)?;
    bi.pml4_phys = tables.pml4;
    bi.phys_map_base = abi::layout::PHYS_MAP_BASE;
    bi.phys_map_end = tables.phys_map_end;

    let bi_size = core::mem::size_of::<BootInfo>() as u64;
    let bi_phys = bi
        .memory
        .allocate(
            bi_size.next_multiple_of(4096),
            4096,
            1 << 20,
            1 << 32,
            MemoryKind::BootInfo,
        )
        .ok_or(StubError::NoMemory("the boot information"))?;

    bi.protections = paging::enable_protections(nx);
    let _ = writeln!(
        con,
        "moxie stub: core {} -> {} bytes, entry {:#x}; NX {} SMEP {} SMAP {} UMIP {}",
        bi.core_compressed_size,
        bi.core_uncompressed_size,
        image.entry,
        bi.protections.nx,
        bi.protections.smep,
        bi.protections.smap,
        bi.protections.umip
    );
    bi.timings.core_jump = rdtsc();
    // SAFETY: `bi_phys` is a fresh allocation of at least `size_of::<BootInfo>()` bytes, painted
    // `BootInfo` in the map (so nothing else uses it), identity-mapped, and suitably aligned.
    unsafe { (bi_phys as *mut BootInfo).write(bi) };
    // SAFETY: the tables map the core's segments, the boot stack, the direct map (where the boot
    // info lies) and this code's own pages, so execution continues across the CR3 switch and
    // lands in the core's entry with a valid stack and argument.
    unsafe {
        paging::enter_core(
            tables.pml4,
            image.entry,
            abi::layout::PHYS_MAP_BASE + bi_phys,
        )
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut con = Console::com1();
    let _ = writeln!(con, "moxie stub: panic: {info}");
    serial::exit(ExitCode::BootFailure)
}
