//! The fixed virtual address layout of the kernel half.
//!
//! The lower half (user space) is described here too as later issues fill it; the kernel half is
//! what the boot stub builds and the core relies on.

/// Size of a small page.
pub const PAGE_SIZE: u64 = 4096;

/// Base of the direct map: physical address `p` is visible at `PHYS_MAP_BASE + p`.
/// It is the first address of the kernel half, and covers all physical memory the map reports.
pub const PHYS_MAP_BASE: u64 = 0xffff_8000_0000_0000;

/// The kernel core is linked in the top 2 GiB (`-mcmodel=kernel`).
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;

/// The kernel heap's virtual range (grown on demand by the core, never beyond its end).
pub const KERNEL_HEAP_BASE: u64 = 0xffff_c000_0000_0000;
/// Upper bound of the kernel heap range.
pub const KERNEL_HEAP_END: u64 = KERNEL_HEAP_BASE + (1 << 30);

/// Device registers the core itself uses (MSI-X tables), mapped uncached on demand.
pub const KERNEL_MMIO_BASE: u64 = 0xffff_c800_0000_0000;
/// Upper bound of the kernel's device-register range.
pub const KERNEL_MMIO_END: u64 = KERNEL_MMIO_BASE + (1 << 30);

/// Kernel stacks (boot stack, IST stacks, later per-thread kernel stacks) live here, each with an
/// unmapped guard page below it.
pub const KERNEL_STACKS_BASE: u64 = 0xffff_d000_0000_0000;

/// Size of the boot CPU's initial kernel stack, built by the stub.
pub const BOOT_STACK_SIZE: u64 = 64 * 1024;

/// Top of the boot stack: the stub maps `BOOT_STACK_SIZE` bytes below it, and leaves the page
/// below those unmapped as a guard.
pub const BOOT_STACK_TOP: u64 = KERNEL_STACKS_BASE + BOOT_STACK_SIZE + PAGE_SIZE;

/// First address of the kernel half; every user pointer must lie below it.
pub const KERNEL_HALF: u64 = PHYS_MAP_BASE;

// ---- The user half: the same for every process (see docs/decisions.md) ----

/// Below this, nothing is mapped: null-pointer dereferences fault.
pub const USER_NULL_GUARD_END: u64 = 0x1_0000;
/// The kernel export page: the export table and the system-call stubs, read-only and executable.
pub const EXPORT_BASE: u64 = 0x1_0000;
/// Size of the export region.
pub const EXPORT_SIZE: u64 = 0x1_0000;
/// Where every module image is loaded.
pub const MODULE_BASE: u64 = 0x40_0000;
/// Largest module image (its loaded span).
pub const MODULE_MAX_SIZE: u64 = 256 << 20;
/// Start of the arena: mapped on demand, up to the ceiling the parent sets at spawn.
pub const ARENA_BASE: u64 = 0x1_0000_0000;
/// The largest arena ceiling a parent may set.
pub const ARENA_MAX: u64 = 64 << 30;
/// Thread stacks: slot `n` spans `[STACKS_BASE + n * STACK_SLOT, + STACK_SLOT)`; the stack is
/// at the top of its slot and the page below the stack is a guard that is never mapped.
pub const STACKS_BASE: u64 = 0x7000_0000_0000;
/// Size of one thread's stack slot.
pub const STACK_SLOT: u64 = 64 << 20;
/// Largest stack a thread can ask for (its slot less the guard page).
pub const STACK_MAX: u64 = STACK_SLOT - PAGE_SIZE;
/// Device registers (BARs) a driver maps with `map_bar`: uncached, never executable, placed by
/// the kernel at the lowest free page-aligned address of this window.
pub const DEVICE_MMIO_BASE: u64 = 0x6000_0000_0000;
/// Size of the device-register window.
pub const DEVICE_MMIO_SIZE: u64 = 64 << 30;
/// DMA memory a driver allocates with `dma_alloc`: physically contiguous, zeroed, never
/// executable, placed by the kernel at the lowest free address of this window.
pub const DMA_BASE: u64 = 0x6100_0000_0000;
/// Size of the DMA window.
pub const DMA_SIZE: u64 = 64 << 30;
/// Visitor stacks: while a thread runs inside a server through a portal, its stack is in the
/// server's space at slot `tid` (the thread's scheduler slot) of this window: slot `n` spans
/// `[VISIT_STACKS_BASE + n * VISIT_STACK_SLOT, + VISIT_STACK_SLOT)`, the stack is the top
/// [`VISIT_STACK_MAX`] bytes of it, mapped page by page on demand, and the rest is a guard
/// that is never mapped.
pub const VISIT_STACKS_BASE: u64 = 0x7800_0000_0000;
/// Size of one visitor-stack slot.
pub const VISIT_STACK_SLOT: u64 = 1 << 20;
/// Largest visitor stack (the top of its slot).
pub const VISIT_STACK_MAX: u64 = 256 << 10;
/// Visitor-stack slots: a thread in a higher scheduler slot cannot call a portal.
pub const VISIT_STACK_SLOTS: u64 = 1 << 16;
/// The end of the user half (exclusive).
pub const USER_END: u64 = 0x0000_8000_0000_0000;
