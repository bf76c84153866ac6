//! Per-CPU data reached through the GS base: the current thread's kernel stack top (loaded by
//! the syscall entry) and a scratch slot for the user stack pointer.
//!
//! In ring 0 `GS_BASE` points here; in ring 3 it holds the user's value and `KERNEL_GS_BASE`
//! points here, and `swapgs` on every entry and exit swaps the two.
use core::cell::UnsafeCell;
use x86_64::VirtAddr;
use x86_64::registers::model_specific::{GsBase, KernelGsBase};

/// Byte offsets the assembly uses; checked against the struct below at compile time.
pub const OFF_KERNEL_RSP: usize = 8;
/// See [`OFF_KERNEL_RSP`].
pub const OFF_USER_RSP: usize = 16;

/// One CPU's block.
#[repr(C)]
pub struct PerCpu {
    self_ptr: u64,
    kernel_rsp: u64,
    user_rsp: u64,
    cpu_id: u64,
}

const _: () = {
    assert!(core::mem::offset_of!(PerCpu, kernel_rsp) == OFF_KERNEL_RSP);
    assert!(core::mem::offset_of!(PerCpu, user_rsp) == OFF_USER_RSP);
};

struct Cell(UnsafeCell<PerCpu>);
// SAFETY: each CPU touches only its own block, with interrupts disabled.
unsafe impl Sync for Cell {}

static BOOT_CPU: Cell = Cell(UnsafeCell::new(PerCpu {
    self_ptr: 0,
    kernel_rsp: 0,
    user_rsp: 0,
    cpu_id: 0,
}));

/// Points GS at the boot CPU's block.
pub fn init_boot_cpu() {
    let p = BOOT_CPU.0.get();
    // SAFETY: boot, one CPU, interrupts off: nothing else touches the block yet.
    unsafe { (*p).self_ptr = p as u64 };
    GsBase::write(VirtAddr::new(p as u64));
    KernelGsBase::write(VirtAddr::new(0));
}

/// Records the kernel stack the next syscall from ring 3 on this CPU must use.
pub fn set_kernel_rsp(top: u64) {
    // SAFETY: this CPU's block, written with interrupts off (callers switch threads with
    // interrupts disabled); the syscall entry reads it only on this CPU.
    unsafe { (&raw mut (*BOOT_CPU.0.get()).kernel_rsp).write_volatile(top) };
    super::gdt::set_kernel_stack(top);
}
