//! The kernel heap: `talc` (binned free lists, near-constant-time allocation) over pages mapped
//! at `KERNEL_HEAP_BASE`. Message buffers and thread records come from here on the IPC path, so
//! its speed shows in every channel round trip.
use talc::TalcLock;
use talc::source::Manual;

#[global_allocator]
static HEAP: TalcLock<spin::mutex::SpinMutex<()>, Manual> = TalcLock::new(Manual);

/// Hands the allocator `size` bytes at `base`.
///
/// # Safety
///
/// `base..base+size` must be mapped read-write, unused by anything else, for the kernel's life;
/// called once.
pub unsafe fn init(base: u64, size: u64) {
    // SAFETY: guaranteed by the caller.
    let claimed = unsafe { HEAP.lock().claim(base as *mut u8, size as usize) };
    assert!(claimed.is_some(), "the kernel heap range is too small");
}

/// Bytes in use and bytes free.
pub fn usage() -> (usize, usize) {
    let c = *HEAP.lock().counters();
    (c.allocated_bytes, c.available_bytes)
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
