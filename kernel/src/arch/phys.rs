//! Access to physical memory through the direct map the stub built.
//!
//! A [`Frame`] is an owned 4 KiB physical frame: the frame allocator hands each one out once, so
//! holding a `Frame` is what makes touching its bytes sound.
use core::sync::atomic::{AtomicU64, Ordering};

static PHYS_MAP_BASE: AtomicU64 = AtomicU64::new(abi::layout::PHYS_MAP_BASE);
static PHYS_MAP_END: AtomicU64 = AtomicU64::new(0);

/// Size of a frame.
pub const FRAME_SIZE: u64 = 4096;

/// Records the direct map's extent (from the boot info).
pub fn init(base: u64, end: u64) {
    PHYS_MAP_BASE.store(base, Ordering::Relaxed);
    PHYS_MAP_END.store(end, Ordering::Relaxed);
}

/// The virtual address of physical address `phys` in the direct map.
pub fn to_virt(phys: u64) -> u64 {
    PHYS_MAP_BASE.load(Ordering::Relaxed) + phys
}

/// The physical address behind a direct-map virtual address, if it is one.
pub fn from_virt(virt: u64) -> Option<u64> {
    let base = PHYS_MAP_BASE.load(Ordering::Relaxed);
    let p = virt.checked_sub(base)?;
    (p < PHYS_MAP_END.load(Ordering::Relaxed)).then_some(p)
}

/// An owned physical frame.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame(u64);

impl Frame {
    /// Takes ownership of the frame at `phys`.
    ///
    /// # Safety
    ///
    /// `phys` must be frame-aligned RAM inside the direct map that nothing else uses or will use
    /// until the `Frame` is given back (the frame allocator's guarantee).
    pub unsafe fn from_phys(phys: u64) -> Frame {
        Frame(phys)
    }

    /// Gives up ownership and returns the physical address (to free it or to keep it in a page
    /// table).
    pub fn into_phys(self) -> u64 {
        self.0
    }

    /// The physical address.
    pub fn phys(&self) -> u64 {
        self.0
    }

    /// The frame's bytes, through the direct map.
    pub fn bytes_mut(&mut self) -> &mut [u8; FRAME_SIZE as usize] {
        // SAFETY: the frame is owned (see `from_phys`), lies in the direct map and is 4 KiB
        // aligned, so no other reference to these bytes exists.
        unsafe { &mut *(to_virt(self.0) as *mut [u8; FRAME_SIZE as usize]) }
    }

    /// The frame's bytes, read-only.
    pub fn bytes(&self) -> &[u8; FRAME_SIZE as usize] {
        // SAFETY: as for `bytes_mut`; a shared borrow of the owner gives a shared view.
        unsafe { &*(to_virt(self.0) as *const [u8; FRAME_SIZE as usize]) }
    }
}

/// A run of `len` bytes of physical memory viewed read-only through the direct map (for
/// bootloader modules, which the memory map reserves for as long as the core keeps them).
pub fn reserved_bytes(phys: u64, len: u64) -> Option<&'static [u8]> {
    let end = phys.checked_add(len)?;
    if end > PHYS_MAP_END.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: the range lies in the direct map; callers pass ranges the memory map marks as
    // modules, which nothing writes.
    Some(unsafe { core::slice::from_raw_parts(to_virt(phys) as *const u8, len as usize) })
}

/// A `'static` mutable slice of `words` u64s at `phys`, for the frame bitmap.
///
/// # Safety
///
/// The range must be RAM the memory map reserves for this use alone, for the life of the kernel.
pub unsafe fn claim_words(phys: u64, words: usize) -> &'static mut [u64] {
    // SAFETY: guaranteed by the caller; the direct map covers it and it is 8-byte aligned.
    unsafe { core::slice::from_raw_parts_mut(to_virt(phys) as *mut u64, words) }
}
