//! Sets up the kernel heap: maps `HEAP_SIZE` bytes of fresh frames at `KERNEL_HEAP_BASE`.
use crate::arch::frames::{self, KernelTables};
use crate::arch::paging::{MapError, Perms, kernel_space};
use crate::arch::phys::Frame;
use abi::layout::{KERNEL_HEAP_BASE, PAGE_SIZE};

/// Size of the kernel heap.
pub const HEAP_SIZE: u64 = 48 << 20;

/// Maps the heap and hands it to the allocator.
pub fn init() -> Result<(), MapError> {
    for off in (0..HEAP_SIZE).step_by(PAGE_SIZE as usize) {
        let frame = frames::alloc().ok_or(MapError::NoMemory)?;
        kernel_space().map(
            KERNEL_HEAP_BASE + off,
            Frame::into_phys(frame),
            Perms::ReadWrite,
            false,
            &mut KernelTables,
        )?;
    }
    crate::arch::heap::init_mapped(KERNEL_HEAP_BASE, HEAP_SIZE);
    Ok(())
}
