//! Single instructions and registers: the time-stamp counter, halting, stopping QEMU, CR2/CR3.
use abi::qemu::{DEBUG_EXIT_PORT, ExitCode};

/// The time-stamp counter. Under QEMU `-icount shift=0` it counts guest instructions.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads a counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Stops QEMU through `isa-debug-exit`; without that device, halts this CPU forever.
pub fn exit_qemu(code: ExitCode) -> ! {
    // SAFETY: a port write to the debug-exit device (ignored when absent) and `cli; hlt`, which
    // touch no memory.
    unsafe {
        x86_64::instructions::port::Port::<u32>::new(DEBUG_EXIT_PORT).write(code as u32);
    }
    halt_forever()
}

/// Halts this CPU with interrupts off, forever.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Waits for the next interrupt with interrupts enabled.
pub fn wait_for_interrupt() {
    x86_64::instructions::interrupts::enable_and_hlt();
}

/// The faulting address of the last page fault.
pub fn cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// The current top-level page table's physical address.
pub fn cr3() -> u64 {
    x86_64::registers::control::Cr3::read()
        .0
        .start_address()
        .as_u64()
}

/// Executes `int3`; the breakpoint handler returns to the next instruction.
pub fn breakpoint() {
    x86_64::instructions::interrupts::int3();
}

/// The current frame pointer (the kernel is built with frame pointers).
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let rbp: u64;
    // SAFETY: reads a register.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags))
    };
    rbp
}

/// Remaps the legacy 8259 PICs to vectors 0x20–0x2f and masks every line: moxie takes its
/// interrupts from the local and I/O APICs, and an unmapped PIC would deliver the PIT's IRQ 0 as
/// vector 8, indistinguishable from a double fault.
pub fn disable_legacy_pic() {
    // SAFETY: the PIC I/O ports exist on every PC and QEMU machine; 0x20–0x2f are free vectors,
    // and initialising and masking the PICs only changes which interrupts they deliver (none).
    unsafe {
        let mut pics = pic8259::ChainedPics::new_contiguous(0x20);
        pics.initialize();
        pics.write_masks(0xff, 0xff);
    }
}

/// Writes the FS base register (the running thread's thread-local block in ring 3; the kernel
/// never uses FS), unless it already holds `value` (`wrmsr` is slow on real hardware, and most
/// switches go between threads whose FS base is the same: zero, for every single-threaded
/// process). The caller has checked that `value` is a canonical user address.
#[inline]
pub fn set_fs_base(value: u64) {
    if super::percpu::fs_base_loaded() == value {
        return;
    }
    x86_64::registers::model_specific::FsBase::write(x86_64::VirtAddr::new_truncate(value));
    super::percpu::set_fs_base_loaded(value);
}
