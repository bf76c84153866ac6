//! The global physical frame allocator: the `frames` crate's bitmap over the boot memory map.
//! It lives in `arch` because it mints [`Frame`] ownership tokens; its logic is host-tested in
//! the `frames` crate.
//!
//! Only regions the map calls `Usable` are ever freed into it, so the kernel image, the modules,
//! the boot stub's tables and stack, the boot info and firmware ranges are never handed out.
//! After the core has left the stub behind, the stub image and the decompression scratch are
//! reclaimed explicitly ([`reclaim_boot_memory`]).
use super::paging::TableFrames;
use super::phys::{self, Frame};
use bootinfo::{MemoryKind, MemoryMap};
use frames::{FrameAllocator, FrameError, words_for};
use spin::Mutex;

static ALLOC: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);
static MAP: Mutex<MemoryMap> = Mutex::new(MemoryMap::new());

/// Why the allocator could not be built.
#[derive(Debug)]
pub enum InitError {
    /// No usable region can hold the bitmap.
    NoRoomForBitmap,
}

/// Builds the allocator from the boot memory map. The bitmap lives in a usable region, carved
/// out of the core's copy of the map as `KernelData`.
pub fn init(boot_map: &MemoryMap) -> Result<(), InitError> {
    let mut map = boot_map.clone();
    let end = map.end();
    let words = words_for(end.div_ceil(phys::FRAME_SIZE));
    let bytes = (words as u64 * 8).next_multiple_of(phys::FRAME_SIZE);
    let at = map
        .allocate(
            bytes,
            phys::FRAME_SIZE,
            1 << 20,
            u64::MAX,
            MemoryKind::KernelData,
        )
        .ok_or(InitError::NoRoomForBitmap)?;
    // SAFETY: `at..at+bytes` was just carved out of the map as `KernelData` for this bitmap.
    let storage = unsafe { phys::claim_words(at, words) };
    let mut alloc = FrameAllocator::new(storage, 0, end).map_err(|_| InitError::NoRoomForBitmap)?;
    for r in map
        .regions()
        .iter()
        .filter(|r| r.kind == MemoryKind::Usable)
    {
        alloc.add_region(r.start, r.end);
    }
    *ALLOC.lock() = Some(alloc);
    *MAP.lock() = map;
    Ok(())
}

/// Frees the boot stub's image and the decompressed-core scratch buffer into the allocator.
/// Call only after the identity mapping of the stub is gone.
pub fn reclaim_boot_memory() -> u64 {
    let mut map = MAP.lock();
    let mut alloc = ALLOC.lock();
    let Some(alloc) = alloc.as_mut() else {
        return 0;
    };
    let before = alloc.free_frames();
    let regions: heapless_regions::Regions = map
        .regions()
        .iter()
        .filter(|r| matches!(r.kind, MemoryKind::BootStub | MemoryKind::CoreScratch))
        .map(|r| (r.start, r.end))
        .collect();
    for (s, e) in regions.iter() {
        alloc.add_region(s, e);
        let _ = map.paint(s, e, MemoryKind::Usable);
    }
    alloc.free_frames() - before
}

mod heapless_regions {
    //! A tiny fixed-capacity list, so reclaiming needs no heap.
    /// Up to 16 `(start, end)` pairs.
    #[derive(Default)]
    pub struct Regions {
        items: [(u64, u64); 16],
        len: usize,
    }
    impl FromIterator<(u64, u64)> for Regions {
        fn from_iter<I: IntoIterator<Item = (u64, u64)>>(iter: I) -> Self {
            let mut r = Regions::default();
            for item in iter.into_iter().take(16) {
                r.items[r.len] = item;
                r.len += 1;
            }
            r
        }
    }
    impl Regions {
        /// The pairs.
        pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
            self.items[..self.len].iter().copied()
        }
    }
}

/// One free frame, or `None` when memory is exhausted.
pub fn alloc() -> Option<Frame> {
    let phys = ALLOC.lock().as_mut()?.alloc()?;
    // SAFETY: the allocator hands each frame out once, and only RAM the map called usable.
    Some(unsafe { Frame::from_phys(phys) })
}

/// One zeroed free frame.
pub fn alloc_zeroed() -> Option<Frame> {
    let mut f = alloc()?;
    f.bytes_mut().fill(0);
    Some(f)
}

/// `count` physically contiguous zeroed frames, lowest address first (for DMA), or `None`.
pub fn alloc_contiguous_zeroed(count: u64) -> Option<alloc::vec::Vec<Frame>> {
    let first = ALLOC
        .lock()
        .as_mut()?
        .alloc_contiguous(count, phys::FRAME_SIZE)?;
    let frames = (0..count)
        .map(|i| {
            // SAFETY: the allocator just handed out this run of usable RAM, once.
            let mut f = unsafe { Frame::from_phys(first + i * phys::FRAME_SIZE) };
            f.bytes_mut().fill(0);
            f
        })
        .collect();
    Some(frames)
}

/// Gives a frame back.
pub fn free(frame: Frame) -> Result<(), FrameError> {
    let phys = frame.into_phys();
    ALLOC
        .lock()
        .as_mut()
        .map_or(Err(FrameError::OutOfRange(phys)), |a| a.free(phys))
}

/// Gives back a frame known only by its address (one taken out of a page table).
pub fn free_phys(phys: u64) -> Result<(), FrameError> {
    ALLOC
        .lock()
        .as_mut()
        .map_or(Err(FrameError::OutOfRange(phys)), |a| a.free(phys))
}

/// Frames currently free.
pub fn free_frames() -> u64 {
    ALLOC.lock().as_ref().map_or(0, |a| a.free_frames())
}

/// True when the frame at `phys` is currently free.
pub fn is_free(phys: u64) -> bool {
    ALLOC.lock().as_ref().is_some_and(|a| a.is_free_addr(phys))
}

/// The kind of memory at `phys` in the core's map.
pub fn kind_at(phys: u64) -> Option<MemoryKind> {
    MAP.lock().kind_at(phys)
}

/// A copy of the core's memory map.
pub fn memory_map() -> MemoryMap {
    MAP.lock().clone()
}

/// Intermediate page tables for kernel mappings, paid from the global pool.
pub struct KernelTables;

impl TableFrames for KernelTables {
    fn alloc_table(&mut self) -> Option<u64> {
        alloc_zeroed().map(Frame::into_phys)
    }
}
