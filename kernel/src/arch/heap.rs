//! The kernel heap: `linked_list_allocator` over pages mapped at `KERNEL_HEAP_BASE`.
use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Hands the allocator `size` bytes at `base`.
///
/// # Safety
///
/// `base..base+size` must be mapped read-write, unused by anything else, for the kernel's life;
/// called once.
pub unsafe fn init(base: u64, size: u64) {
    // SAFETY: guaranteed by the caller.
    unsafe { HEAP.lock().init(base as *mut u8, size as usize) };
}

/// Bytes in use and bytes free.
pub fn usage() -> (usize, usize) {
    let h = HEAP.lock();
    (h.used(), h.free())
}

/// Hands the heap range that `mm::heap` has just mapped to the allocator (once).
pub fn init_mapped(base: u64, size: u64) {
    use core::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: `mm::heap` mapped `base..base+size` read-write with fresh frames reserved for the
    // heap alone, and `DONE` makes this run once.
    unsafe { init(base, size) };
}
