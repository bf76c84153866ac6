//! The physical frame allocator's logic: a bitmap with one bit per 4 KiB frame.
//!
//! The allocator covers the frame numbers `[base, base + bits)`. A set bit means *free*. It starts
//! with every frame in use; the core then frees exactly the usable regions of the boot memory map,
//! so a frame the map does not call usable (the kernel image, the modules, boot data, firmware
//! ranges, holes) can never be handed out. Freeing a frame that is already free, or one outside the
//! covered range, is refused rather than corrupting the count.
//!
//! The bitmap storage is borrowed: the core places it in RAM it carved out of the map.
#![no_std]
#![forbid(unsafe_code)]

/// Size of one frame.
pub const FRAME_SIZE: u64 = 4096;

/// Why an operation was refused; the allocator is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The address is not frame-aligned.
    Unaligned(u64),
    /// The frame lies outside the range this allocator covers.
    OutOfRange(u64),
    /// The frame is already free: a double free.
    AlreadyFree(u64),
    /// The storage slice is too small for the range.
    StorageTooSmall,
}

/// A bitmap frame allocator over borrowed storage.
#[derive(Debug)]
pub struct FrameAllocator<'a> {
    bitmap: &'a mut [u64],
    base: u64,
    frames: u64,
    free: u64,
    /// Word index where the next search starts (a rotating hint, so allocation is O(1) amortised
    /// on a mostly-free bitmap).
    hint: usize,
}

/// Words of storage needed to cover `frames` frames.
pub const fn words_for(frames: u64) -> usize {
    frames.div_ceil(64) as usize
}

impl<'a> FrameAllocator<'a> {
    /// An allocator for the physical range `[start, end)` (rounded outwards to frames) with every
    /// frame in use.
    pub fn new(storage: &'a mut [u64], start: u64, end: u64) -> Result<Self, FrameError> {
        let base = start / FRAME_SIZE;
        let frames = end.div_ceil(FRAME_SIZE).saturating_sub(base);
        if storage.len() < words_for(frames) {
            return Err(FrameError::StorageTooSmall);
        }
        let bitmap = &mut storage[..words_for(frames)];
        bitmap.fill(0);
        Ok(FrameAllocator {
            bitmap,
            base,
            frames,
            free: 0,
            hint: 0,
        })
    }

    /// Frees every whole frame inside `[start, end)`: used once per usable region at boot.
    /// Partial frames at either end stay in use. Frames already free are left alone.
    pub fn add_region(&mut self, start: u64, end: u64) {
        let first = start.div_ceil(FRAME_SIZE).max(self.base);
        let last = (end / FRAME_SIZE).min(self.base + self.frames);
        let mut frame = first;
        while frame < last {
            let (w, b) = self.slot(frame);
            if b == 0 && frame + 64 <= last {
                // A whole word at once: boot-time setup of gigabytes stays cheap.
                self.free += u64::from((!self.bitmap[w]).count_ones());
                self.bitmap[w] = u64::MAX;
                frame += 64;
            } else {
                if self.bitmap[w] & (1 << b) == 0 {
                    self.bitmap[w] |= 1 << b;
                    self.free += 1;
                }
                frame += 1;
            }
        }
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Frames covered (free or not).
    pub fn covered_frames(&self) -> u64 {
        self.frames
    }

    /// Takes one free frame and returns its physical address, or `None` when none is left.
    pub fn alloc(&mut self) -> Option<u64> {
        if self.free == 0 {
            return None;
        }
        let words = self.bitmap.len();
        for i in 0..words {
            let w = (self.hint + i) % words;
            let word = self.bitmap[w];
            if word != 0 {
                let b = word.trailing_zeros() as u64;
                self.bitmap[w] &= !(1 << b);
                self.free -= 1;
                self.hint = w;
                return Some((self.base + w as u64 * 64 + b) * FRAME_SIZE);
            }
        }
        None
    }

    /// Takes `count` physically contiguous free frames whose first address is a multiple of
    /// `align` bytes (a power of two, at least [`FRAME_SIZE`]); for DMA buffers and huge pages.
    pub fn alloc_contiguous(&mut self, count: u64, align: u64) -> Option<u64> {
        if count == 0 || !align.is_power_of_two() || count > self.free {
            return None;
        }
        let step = (align / FRAME_SIZE).max(1);
        let mut frame = (self.base.div_ceil(step)) * step;
        while frame + count <= self.base + self.frames {
            match (frame..frame + count).find(|&f| !self.is_free(f)) {
                None => {
                    for f in frame..frame + count {
                        let (w, b) = self.slot(f);
                        self.bitmap[w] &= !(1 << b);
                    }
                    self.free -= count;
                    return Some(frame * FRAME_SIZE);
                }
                Some(used) => frame = (used + 1).div_ceil(step) * step,
            }
        }
        None
    }

    /// Returns the frame at `addr` to the pool.
    pub fn free(&mut self, addr: u64) -> Result<(), FrameError> {
        if !addr.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::Unaligned(addr));
        }
        let frame = addr / FRAME_SIZE;
        if frame < self.base || frame >= self.base + self.frames {
            return Err(FrameError::OutOfRange(addr));
        }
        let (w, b) = self.slot(frame);
        if self.bitmap[w] & (1 << b) != 0 {
            return Err(FrameError::AlreadyFree(addr));
        }
        self.bitmap[w] |= 1 << b;
        self.free += 1;
        Ok(())
    }

    /// True when the frame at `addr` is free (false outside the covered range).
    pub fn is_free_addr(&self, addr: u64) -> bool {
        let frame = addr / FRAME_SIZE;
        frame >= self.base && frame < self.base + self.frames && self.is_free(frame)
    }

    fn is_free(&self, frame: u64) -> bool {
        let (w, b) = self.slot(frame);
        self.bitmap[w] & (1 << b) != 0
    }

    fn slot(&self, frame: u64) -> (usize, u64) {
        let i = frame - self.base;
        ((i / 64) as usize, i % 64)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::vec;
    use std::vec::Vec;

    const MIB: u64 = 1 << 20;

    fn with_alloc<R>(start: u64, end: u64, f: impl FnOnce(&mut FrameAllocator) -> R) -> R {
        let mut store = vec![0u64; words_for(end / FRAME_SIZE + 1)];
        let mut a = FrameAllocator::new(&mut store, start, end).unwrap();
        f(&mut a)
    }

    #[test]
    fn starts_empty_until_regions_are_added() {
        with_alloc(MIB, 2 * MIB, |a| {
            assert_eq!(a.free_frames(), 0);
            assert_eq!(a.alloc(), None);
            a.add_region(MIB, 2 * MIB);
            assert_eq!(a.free_frames(), 256);
        });
    }

    #[test]
    fn exhaust_then_free_all() {
        with_alloc(0, 4 * MIB, |a| {
            a.add_region(MIB, 3 * MIB);
            let n = a.free_frames();
            let mut seen = BTreeSet::new();
            while let Some(f) = a.alloc() {
                assert!(
                    (MIB..3 * MIB).contains(&f),
                    "{f:#x} outside the usable region"
                );
                assert!(seen.insert(f), "frame {f:#x} handed out twice");
            }
            assert_eq!(seen.len() as u64, n);
            for f in &seen {
                a.free(*f).unwrap();
            }
            assert_eq!(a.free_frames(), n);
        });
    }

    #[test]
    fn word_sized_regions_count_each_frame_once() {
        with_alloc(0, 4 * MIB, |a| {
            a.add_region(3 * FRAME_SIZE, 200 * FRAME_SIZE);
            assert_eq!(a.free_frames(), 197);
            // Overlapping re-adds do not double count.
            a.add_region(0, 300 * FRAME_SIZE);
            assert_eq!(a.free_frames(), 300);
            assert!(a.is_free_addr(0) && a.is_free_addr(299 * FRAME_SIZE));
            assert!(!a.is_free_addr(300 * FRAME_SIZE));
        });
    }

    #[test]
    fn partial_frames_at_region_edges_stay_reserved() {
        with_alloc(0, MIB, |a| {
            a.add_region(0x1800, 0x4800);
            // Only 0x2000 and 0x3000 are whole frames inside.
            assert_eq!(a.free_frames(), 2);
            assert!(!a.is_free_addr(0x1000));
            assert!(!a.is_free_addr(0x4000));
        });
    }

    #[test]
    fn bad_frees_are_refused() {
        with_alloc(MIB, 2 * MIB, |a| {
            a.add_region(MIB, 2 * MIB);
            let f = a.alloc().unwrap();
            assert_eq!(a.free(f + 1), Err(FrameError::Unaligned(f + 1)));
            assert_eq!(a.free(0), Err(FrameError::OutOfRange(0)));
            assert_eq!(a.free(8 * MIB), Err(FrameError::OutOfRange(8 * MIB)));
            a.free(f).unwrap();
            assert_eq!(a.free(f), Err(FrameError::AlreadyFree(f)));
            assert_eq!(a.free_frames(), 256);
        });
    }

    #[test]
    fn storage_must_cover_the_range() {
        let mut store = [0u64; 1];
        assert_eq!(
            FrameAllocator::new(&mut store, 0, 65 * FRAME_SIZE).unwrap_err(),
            FrameError::StorageTooSmall
        );
    }

    #[test]
    fn contiguous_respects_alignment_and_holes() {
        with_alloc(0, 8 * MIB, |a| {
            a.add_region(0, 8 * MIB);
            let hole = a.alloc().unwrap(); // takes frame 0
            assert_eq!(hole, 0);
            let c = a.alloc_contiguous(512, 2 * MIB).unwrap();
            assert_eq!(c % (2 * MIB), 0);
            assert_ne!(c, 0, "must skip the used frame 0");
            for f in (c..c + 2 * MIB).step_by(FRAME_SIZE as usize) {
                assert!(!a.is_free_addr(f));
            }
            assert!(a.alloc_contiguous(4096, FRAME_SIZE).is_none());
        });
    }

    proptest! {
        /// Against a set model: never a frame twice, never outside usable regions, counts agree.
        #[test]
        fn matches_a_set_model(
            regions in proptest::collection::vec((0u64..512, 1u64..64), 1..6),
            ops in proptest::collection::vec(0u8..4, 1..400),
        ) {
            let mut store = vec![0u64; words_for(1024)];
            let mut a = FrameAllocator::new(&mut store, 0, 1024 * FRAME_SIZE).unwrap();
            let mut usable = BTreeSet::new();
            for (start, len) in regions {
                a.add_region(start * FRAME_SIZE, (start + len) * FRAME_SIZE);
                usable.extend(start..start + len);
            }
            let mut held: Vec<u64> = Vec::new();
            for op in ops {
                match op {
                    0..=1 => {
                        if let Some(f) = a.alloc() {
                            prop_assert!(usable.contains(&(f / FRAME_SIZE)));
                            prop_assert!(!held.contains(&f));
                            held.push(f);
                        } else {
                            prop_assert_eq!(held.len(), usable.len());
                        }
                    }
                    2 => {
                        if let Some(f) = held.pop() {
                            a.free(f).unwrap();
                        }
                    }
                    _ => {
                        if let Some(c) = a.alloc_contiguous(3, FRAME_SIZE) {
                            for f in (c..c + 3 * FRAME_SIZE).step_by(FRAME_SIZE as usize) {
                                prop_assert!(usable.contains(&(f / FRAME_SIZE)));
                                prop_assert!(!held.contains(&f));
                                held.push(f);
                            }
                        }
                    }
                }
                prop_assert_eq!(a.free_frames(), (usable.len() - held.len()) as u64);
            }
        }
    }
}
