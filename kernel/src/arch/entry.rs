//! The core's entry point, jumped to by the boot stub with `rdi` = the boot info's address in the
//! direct map, on the boot stack, with interrupts off.
use bootinfo::{BOOT_INFO_MAGIC, BootInfo};

/// First Rust code of the core.
#[unsafe(no_mangle)]
extern "C" fn _start(boot_info: u64) -> ! {
    let entry_tsc = super::cpu::rdtsc();
    // SAFETY: the stub wrote a `BootInfo` at this address (8-byte aligned, in a region painted
    // `BootInfo`, which nothing ever frees or writes again), so a shared `'static` view is sound.
    let bi = unsafe { &*(boot_info as *const BootInfo) };
    if bi.magic != BOOT_INFO_MAGIC {
        super::serial::init();
        super::serial::write_fmt(format_args!(
            "moxie core: the boot info at {boot_info:#x} has a bad magic; was the core started by its own stub?\n"
        ));
        super::cpu::exit_qemu(abi::qemu::ExitCode::BootFailure);
    }
    crate::kmain(bi, entry_tsc)
}

/// Deliberately reads `addr` without a fixup: a kernel bug on purpose, for `crash=` boots that
/// test the exception report.
pub fn deliberate_read(addr: u64) -> u64 {
    // SAFETY: not sound by design when `addr` is unmapped: the resulting fault is reported and
    // the machine stops; nothing continues after it.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}
