//! The arena as the global allocator: a bump pointer over the process's arena, which the kernel
//! maps page by page on first touch up to the ceiling the parent set. Nothing is freed one by
//! one: the whole arena goes back to the kernel in one operation when the process dies (the
//! earth law). Allocating past the ceiling faults, and the parent is told.
use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicU64, Ordering};

/// The bump allocator.
pub struct Arena {
    next: AtomicU64,
}

impl Arena {
    /// Bytes handed out so far.
    pub fn used(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }
}

// SAFETY: every block is a distinct, suitably aligned range of the arena (the bump pointer only
// grows, atomically), and the arena is ours alone.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let align = layout.align() as u64;
        let mut cur = self.next.load(Ordering::Relaxed);
        loop {
            let start = (abi::layout::ARENA_BASE + cur).next_multiple_of(align);
            let end = start + layout.size() as u64;
            if end > abi::layout::ARENA_BASE + abi::layout::ARENA_MAX {
                return core::ptr::null_mut();
            }
            match self.next.compare_exchange_weak(
                cur,
                end - abi::layout::ARENA_BASE,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return start as *mut u8,
                Err(now) => cur = now,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

/// The process's allocator.
#[global_allocator]
pub static ARENA: Arena = Arena {
    next: AtomicU64::new(0),
};
