//! Per-CPU data reached through the GS base: the current thread's kernel stack top (loaded by
//! the syscall entry), a scratch slot for the user stack pointer, the running thread as the
//! scheduler recorded it, the FS base the CPU holds, and the flags a return to ring 3 checks.
//!
//! In ring 0 `GS_BASE` points here; in ring 3 it holds the user's value and `KERNEL_GS_BASE`
//! points here, and `swapgs` on every entry and exit swaps the two.
use core::cell::UnsafeCell;
use core::sync::atomic::AtomicU8;
use x86_64::VirtAddr;
use x86_64::registers::model_specific::{GsBase, KernelGsBase};

/// Byte offsets the assembly uses; checked against the struct below at compile time.
pub const OFF_KERNEL_RSP: usize = 8;
/// See [`OFF_KERNEL_RSP`].
pub const OFF_CPU_ID: usize = 24;
/// See [`OFF_KERNEL_RSP`].
pub const OFF_USER_RSP: usize = 16;

/// One CPU's block.
#[repr(C)]
pub struct PerCpu {
    self_ptr: u64,
    kernel_rsp: u64,
    user_rsp: u64,
    cpu_id: u64,
    /// The running thread and its process (`u64::MAX`: none), kept by the scheduler so the
    /// system-call paths can ask without taking its lock.
    current_tid: u64,
    current_pid: u64,
    /// The running thread's slot generation (see `sched::ThreadRef`).
    current_gen: u64,
    /// The process the running thread acts for: its own, or the server it visits through a
    /// portal (`u64::MAX`: none).
    acting_pid: u64,
    /// The address of this CPU's TSS field for the ring-0 stack (`privilege_stack_table[0]`),
    /// written with `kernel_rsp` at every switch.
    tss_rsp0: u64,
    /// The FS base this CPU's register holds (see `cpu::set_fs_base`).
    fs_base: u64,
    /// The scheduler's "look before returning to ring 3" flags for this CPU: set by any CPU
    /// (atomically, through [`return_flags`]), read by this one in one load.
    return_flags: AtomicU8,
    /// The scheduler's "dead threads of this core wait to be freed" flag, the same way
    /// ([`reap_flag`]).
    reap_flag: AtomicU8,
}

/// See [`OFF_KERNEL_RSP`].
pub const OFF_CURRENT_TID: usize = 32;
/// See [`OFF_KERNEL_RSP`].
pub const OFF_CURRENT_PID: usize = 40;
/// See [`OFF_KERNEL_RSP`].
pub const OFF_CURRENT_GEN: usize = 48;
/// See [`OFF_KERNEL_RSP`].
pub const OFF_ACTING_PID: usize = 56;
/// See [`OFF_KERNEL_RSP`].
pub const OFF_TSS_RSP0: usize = 64;
/// See [`OFF_KERNEL_RSP`].
pub const OFF_FS_BASE: usize = 72;
/// See [`OFF_KERNEL_RSP`].
pub const OFF_RETURN_FLAGS: usize = 80;
/// See [`OFF_KERNEL_RSP`].
pub const OFF_REAP_FLAG: usize = 81;

const _: () = {
    assert!(core::mem::offset_of!(PerCpu, kernel_rsp) == OFF_KERNEL_RSP);
    assert!(core::mem::offset_of!(PerCpu, user_rsp) == OFF_USER_RSP);
    assert!(core::mem::offset_of!(PerCpu, cpu_id) == OFF_CPU_ID);
    assert!(core::mem::offset_of!(PerCpu, current_tid) == OFF_CURRENT_TID);
    assert!(core::mem::offset_of!(PerCpu, current_pid) == OFF_CURRENT_PID);
    assert!(core::mem::offset_of!(PerCpu, current_gen) == OFF_CURRENT_GEN);
    assert!(core::mem::offset_of!(PerCpu, acting_pid) == OFF_ACTING_PID);
    assert!(core::mem::offset_of!(PerCpu, tss_rsp0) == OFF_TSS_RSP0);
    assert!(core::mem::offset_of!(PerCpu, fs_base) == OFF_FS_BASE);
    assert!(core::mem::offset_of!(PerCpu, return_flags) == OFF_RETURN_FLAGS);
    assert!(core::mem::offset_of!(PerCpu, reap_flag) == OFF_REAP_FLAG);
};

struct Cell(UnsafeCell<PerCpu>);
// SAFETY: each CPU touches only its own block, with interrupts disabled.
unsafe impl Sync for Cell {}

const MAX_CPUS: usize = super::acpi::MAX_CPUS;

static CPUS: [Cell; MAX_CPUS] = [const {
    Cell(UnsafeCell::new(PerCpu {
        self_ptr: 0,
        kernel_rsp: 0,
        user_rsp: 0,
        cpu_id: 0,
        current_tid: u64::MAX,
        current_pid: u64::MAX,
        current_gen: 0,
        acting_pid: u64::MAX,
        tss_rsp0: 0,
        fs_base: 0,
        return_flags: AtomicU8::new(0),
        reap_flag: AtomicU8::new(0),
    }))
}; MAX_CPUS];

/// Points GS at CPU `cpu`'s block (on that CPU, at its start-up).
pub fn init(cpu: usize) {
    let p = CPUS[cpu].0.get();
    // SAFETY: CPU `cpu` starting up, interrupts off: nothing else touches its block.
    unsafe {
        (*p).self_ptr = p as u64;
        (*p).cpu_id = cpu as u64;
    }
    GsBase::write(VirtAddr::new(p as u64));
    KernelGsBase::write(VirtAddr::new(0));
}

/// The index of the CPU running this code (0 is the boot CPU).
#[inline]
pub fn cpu_id() -> usize {
    let id: u64;
    // SAFETY: in ring 0 GS points at this CPU's block (set by `init` before anything calls
    // this); the load reads its `cpu_id` field.
    unsafe {
        core::arch::asm!("mov {}, gs:[{off}]", out(reg) id, off = const OFF_CPU_ID, options(nostack, readonly, preserves_flags));
    }
    id as usize
}

/// Records where this CPU's TSS keeps its ring-0 stack (`gdt::init`, before any switch).
pub fn set_tss_rsp0_slot(addr: u64) {
    // SAFETY: this CPU's block, written once at its start-up with interrupts off.
    unsafe { (&raw mut (*CPUS[cpu_id()].0.get()).tss_rsp0).write_volatile(addr) };
}

/// Records the kernel stack the next syscall from ring 3 on this CPU must use, and the one an
/// interrupt from ring 3 switches to (the TSS's): three instructions through GS.
#[inline]
pub fn set_kernel_rsp(top: u64) {
    // SAFETY: this CPU's block and its own TSS (whose ring-0 stack field `tss_rsp0` points at,
    // set by `gdt::init` before any thread switch), written with interrupts off (callers switch
    // threads with interrupts disabled); the syscall entry reads `kernel_rsp` only on this CPU,
    // and the CPU reads the TSS field only when it takes an interrupt, which cannot happen here.
    unsafe {
        core::arch::asm!(
            "mov gs:[{k}], {top}",
            "mov {p}, gs:[{r}]",
            "mov [{p}], {top}",
            top = in(reg) top,
            p = out(reg) _,
            k = const OFF_KERNEL_RSP,
            r = const OFF_TSS_RSP0,
            options(nostack, preserves_flags)
        );
    }
}

/// The top of the running thread's kernel stack, as the last switch recorded it.
#[inline]
pub fn kernel_rsp() -> u64 {
    let v: u64;
    // SAFETY: reads one field of this CPU's block through GS (see `cpu_id`).
    unsafe {
        core::arch::asm!("mov {}, gs:[{off}]", out(reg) v, off = const OFF_KERNEL_RSP, options(nostack, readonly, preserves_flags));
    }
    v
}

/// Records the thread this CPU is about to run (called by the scheduler at every switch).
#[inline]
pub fn set_current(tid: usize, generation: u32, pid: Option<u64>) {
    let pid = pid.unwrap_or(u64::MAX);
    // SAFETY: four fields of this CPU's block through GS (see `cpu_id`), written with
    // interrupts off by the scheduler of this CPU; only this CPU reads them.
    unsafe {
        core::arch::asm!(
            "mov gs:[{ot}], {t}",
            "mov gs:[{og}], {g}",
            "mov gs:[{op}], {p}",
            "mov gs:[{oa}], {p}",
            t = in(reg) tid as u64,
            g = in(reg) generation as u64,
            p = in(reg) pid,
            ot = const OFF_CURRENT_TID,
            og = const OFF_CURRENT_GEN,
            op = const OFF_CURRENT_PID,
            oa = const OFF_ACTING_PID,
            options(nostack, preserves_flags)
        );
    }
}

/// Records the process the running thread acts for, when it is not its own (a portal call).
#[inline]
pub fn set_acting(pid: Option<u64>) {
    // SAFETY: one field of this CPU's block through GS (see `cpu_id`), written with interrupts
    // off by the thread running on it; only this CPU reads it.
    unsafe {
        core::arch::asm!(
            "mov gs:[{off}], {p}",
            p = in(reg) pid.unwrap_or(u64::MAX),
            off = const OFF_ACTING_PID,
            options(nostack, preserves_flags)
        );
    }
}

/// The FS base this CPU's register was last given (see `cpu::set_fs_base`).
#[inline]
pub fn fs_base_loaded() -> u64 {
    let v: u64;
    // SAFETY: reads one field of this CPU's block through GS (see `cpu_id`).
    unsafe {
        core::arch::asm!("mov {}, gs:[{off}]", out(reg) v, off = const OFF_FS_BASE, options(nostack, readonly, preserves_flags));
    }
    v
}

/// Records the FS base this CPU's register now holds.
#[inline]
pub fn set_fs_base_loaded(v: u64) {
    // SAFETY: one field of this CPU's block through GS (see `cpu_id`), written by this CPU
    // with interrupts off; only this CPU reads it.
    unsafe {
        core::arch::asm!("mov gs:[{off}], {v}", v = in(reg) v, off = const OFF_FS_BASE, options(nostack, preserves_flags));
    }
}

/// CPU `cpu`'s return flags, for any CPU to set, clear or read atomically.
pub fn return_flags(cpu: usize) -> &'static AtomicU8 {
    let p = CPUS[cpu].0.get();
    // SAFETY: the field is only ever accessed atomically (here, and by this CPU's single-byte
    // load in `return_flags_here`), and the block is a static that lives forever; no other
    // access to the block touches these bytes.
    unsafe { &(*p).return_flags }
}

/// CPU `cpu`'s reap flag (non-zero: dead threads wait to be freed), for any CPU to set or
/// clear atomically.
pub fn reap_flag(cpu: usize) -> &'static AtomicU8 {
    let p = CPUS[cpu].0.get();
    // SAFETY: as in `return_flags`: an atomic field of a static block, only accessed
    // atomically.
    unsafe { &(*p).reap_flag }
}

/// This CPU's reap flag, in one load through GS.
#[inline]
pub fn reap_flag_here() -> u8 {
    let v: u8;
    // SAFETY: as in `return_flags_here`.
    unsafe {
        core::arch::asm!("mov {}, byte ptr gs:[{off}]", out(reg_byte) v, off = const OFF_REAP_FLAG, options(nostack, preserves_flags));
    }
    v
}

/// This CPU's return flags, in one load through GS.
#[inline]
pub fn return_flags_here() -> u8 {
    let v: u8;
    // SAFETY: reads the atomic flag byte of this CPU's block through GS (see `cpu_id`): a
    // single byte load is atomic, an x86 load has acquire ordering, and the block is not
    // marked read-only, so the compiler moves no memory access across it.
    unsafe {
        core::arch::asm!("mov {}, byte ptr gs:[{off}]", out(reg_byte) v, off = const OFF_RETURN_FLAGS, options(nostack, preserves_flags));
    }
    v
}

/// The process the running thread acts for (handles, faults): its own, or a portal's server.
#[inline]
pub fn acting() -> Option<u64> {
    let pid: u64;
    // SAFETY: reads one field of this CPU's block through GS (see `cpu_id`).
    unsafe {
        core::arch::asm!("mov {}, gs:[{off}]", out(reg) pid, off = const OFF_ACTING_PID, options(nostack, readonly, preserves_flags));
    }
    (pid != u64::MAX).then_some(pid)
}

/// The thread running on this CPU and its process, as the scheduler last recorded them.
#[inline]
pub fn current() -> (usize, Option<u64>) {
    let (tid, pid): (u64, u64);
    // SAFETY: reads two fields of this CPU's block through GS (see `cpu_id`).
    unsafe {
        core::arch::asm!(
            "mov {t}, gs:[{ot}]",
            "mov {p}, gs:[{op}]",
            t = out(reg) tid,
            p = out(reg) pid,
            ot = const OFF_CURRENT_TID,
            op = const OFF_CURRENT_PID,
            options(nostack, readonly, preserves_flags)
        );
    }
    (tid as usize, (pid != u64::MAX).then_some(pid))
}

/// The running thread's slot generation, as the scheduler last recorded it.
#[inline]
pub fn current_gen() -> u32 {
    let generation: u64;
    // SAFETY: reads one field of this CPU's block through GS (see `cpu_id`).
    unsafe {
        core::arch::asm!("mov {}, gs:[{off}]", out(reg) generation, off = const OFF_CURRENT_GEN, options(nostack, readonly, preserves_flags));
    }
    generation as u32
}
