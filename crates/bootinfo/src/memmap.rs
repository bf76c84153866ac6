//! A fixed-capacity physical memory map: sorted, non-overlapping regions, each with a kind.
//!
//! The stub builds it from the firmware's map, then *paints* every range it uses with a kind of
//! its own; allocation during boot is painting a piece of a usable region. Painting keeps the
//! invariants (sorted, disjoint, adjacent regions of one kind merged) or fails without changing
//! anything when the map is full.

/// What a physical range holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum MemoryKind {
    /// Free RAM: the core's frame allocator may hand it out.
    Usable = 1,
    /// Firmware-reserved, device memory, or anything the firmware did not call RAM.
    Reserved = 2,
    /// ACPI tables, reclaimable once parsed.
    AcpiReclaimable = 3,
    /// ACPI non-volatile storage.
    AcpiNvs = 4,
    /// RAM the firmware reports defective.
    Defective = 5,
    /// Below 1 MiB: kept out of the allocator (real-mode trampolines live here).
    LowMemory = 6,
    /// The boot stub's own image, with the compressed core inside it (reclaimable once the core
    /// no longer needs the stub's identity mapping).
    BootStub = 7,
    /// The bootloader's multiboot information and command line.
    BootloaderInfo = 8,
    /// A module the bootloader loaded (the boot bundle).
    Module = 9,
    /// The decompressed core ELF (scratch; reclaimable after boot).
    CoreScratch = 10,
    /// The kernel core's loaded segments.
    KernelImage = 11,
    /// Page tables built by the stub.
    PageTables = 12,
    /// The boot CPU's kernel stack.
    BootStack = 13,
    /// The [`crate::BootInfo`] structure.
    BootInfo = 14,
    /// Allocated by the core for its own bookkeeping (for example the frame bitmap).
    KernelData = 15,
}

/// One region `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct MemoryRegion {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// What it holds.
    pub kind: MemoryKind,
}

impl MemoryRegion {
    /// Length in bytes.
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    /// True for an empty region (never stored in a map).
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// Most regions a map holds.
pub const MAX_REGIONS: usize = 128;

/// Why painting failed; the map is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The range is empty or wraps around.
    BadRange,
    /// Painting would need more than [`MAX_REGIONS`] regions.
    Full,
}

/// A sorted, disjoint, merged list of regions.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct MemoryMap {
    regions: [MemoryRegion; MAX_REGIONS],
    len: u32,
}

const EMPTY_REGION: MemoryRegion = MemoryRegion {
    start: 0,
    end: 0,
    kind: MemoryKind::Reserved,
};

impl Default for MemoryMap {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryMap {
    /// An empty map.
    pub const fn new() -> MemoryMap {
        MemoryMap {
            regions: [EMPTY_REGION; MAX_REGIONS],
            len: 0,
        }
    }

    /// The regions, sorted by address.
    pub fn regions(&self) -> &[MemoryRegion] {
        &self.regions[..(self.len as usize).min(MAX_REGIONS)]
    }

    /// Total bytes of `kind`.
    pub fn total(&self, kind: MemoryKind) -> u64 {
        self.regions()
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.len())
            .sum()
    }

    /// One past the highest byte of any region (0 for an empty map).
    pub fn end(&self) -> u64 {
        self.regions().last().map_or(0, |r| r.end)
    }

    /// The kind at `addr`, if any region covers it.
    pub fn kind_at(&self, addr: u64) -> Option<MemoryKind> {
        self.regions()
            .iter()
            .find(|r| r.start <= addr && addr < r.end)
            .map(|r| r.kind)
    }

    /// Marks `[start, end)` as `kind`, whatever it was before (gaps included).
    pub fn paint(&mut self, start: u64, end: u64, kind: MemoryKind) -> Result<(), MapError> {
        if end <= start {
            return Err(MapError::BadRange);
        }
        let mut out = [EMPTY_REGION; MAX_REGIONS];
        let mut n = 0usize;
        let mut push = |r: MemoryRegion| -> Result<(), MapError> {
            if r.is_empty() {
                return Ok(());
            }
            if n > 0 && out[n - 1].end == r.start && out[n - 1].kind == r.kind {
                out[n - 1].end = r.end;
                return Ok(());
            }
            if n == MAX_REGIONS {
                return Err(MapError::Full);
            }
            out[n] = r;
            n += 1;
            Ok(())
        };
        let new = MemoryRegion { start, end, kind };
        let mut placed = false;
        for &r in self.regions() {
            if r.end <= start {
                push(r)?;
                continue;
            }
            if r.start >= end {
                if !placed {
                    push(new)?;
                    placed = true;
                }
                push(r)?;
                continue;
            }
            // Overlap: keep the parts of `r` outside [start, end).
            push(MemoryRegion {
                end: r.end.min(start),
                ..r
            })?;
            if !placed {
                push(new)?;
                placed = true;
            }
            push(MemoryRegion {
                start: r.start.max(end),
                ..r
            })?;
        }
        if !placed {
            push(new)?;
        }
        self.regions = out;
        self.len = n as u32;
        Ok(())
    }

    /// Adds a firmware region without letting usable RAM override anything already known:
    /// firmware maps may overlap, and the safe reading of an overlap is "not usable".
    pub fn add_firmware(&mut self, start: u64, end: u64, kind: MemoryKind) -> Result<(), MapError> {
        if kind != MemoryKind::Usable {
            return self.paint(start, end, kind);
        }
        // Paint only the gaps inside [start, end).
        let mut cursor = start;
        while cursor < end {
            match self
                .regions()
                .iter()
                .find(|r| r.end > cursor && r.start < end)
                .copied()
            {
                Some(r) if r.start <= cursor => cursor = r.end,
                Some(r) => {
                    self.paint(cursor, r.start, kind)?;
                    cursor = r.end;
                }
                None => {
                    self.paint(cursor, end, kind)?;
                    cursor = end;
                }
            }
        }
        Ok(())
    }

    /// Finds `size` bytes aligned to `align` (a power of two) inside a usable region at or above
    /// `min_addr` and below `max_addr`, the lowest such place, paints it `kind` and returns it.
    pub fn allocate(
        &mut self,
        size: u64,
        align: u64,
        min_addr: u64,
        max_addr: u64,
        kind: MemoryKind,
    ) -> Option<u64> {
        if size == 0 || !align.is_power_of_two() {
            return None;
        }
        let found = self.regions().iter().find_map(|r| {
            if r.kind != MemoryKind::Usable {
                return None;
            }
            let lo = r.start.max(min_addr);
            let start = lo.checked_add(align - 1)? & !(align - 1);
            let end = start.checked_add(size)?;
            (end <= r.end && end <= max_addr).then_some(start)
        })?;
        self.paint(found, found + size, kind).ok()?;
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn check_invariants(m: &MemoryMap) {
        for w in m.regions().windows(2) {
            assert!(w[0].end <= w[1].start, "unsorted or overlapping: {w:?}");
            assert!(
                !(w[0].end == w[1].start && w[0].kind == w[1].kind),
                "unmerged neighbours: {w:?}"
            );
        }
        assert!(m.regions().iter().all(|r| !r.is_empty()));
    }

    #[test]
    fn paint_splits_and_merges() {
        let mut m = MemoryMap::new();
        m.paint(0, 100, MemoryKind::Usable).unwrap();
        m.paint(40, 60, MemoryKind::Module).unwrap();
        assert_eq!(m.regions().len(), 3);
        assert_eq!(m.kind_at(50), Some(MemoryKind::Module));
        assert_eq!(m.kind_at(39), Some(MemoryKind::Usable));
        m.paint(40, 60, MemoryKind::Usable).unwrap();
        assert_eq!(
            m.regions(),
            &[MemoryRegion {
                start: 0,
                end: 100,
                kind: MemoryKind::Usable
            }]
        );
        check_invariants(&m);
    }

    #[test]
    fn empty_range_is_refused() {
        let mut m = MemoryMap::new();
        assert_eq!(m.paint(5, 5, MemoryKind::Usable), Err(MapError::BadRange));
        assert_eq!(m.paint(6, 5, MemoryKind::Usable), Err(MapError::BadRange));
    }

    #[test]
    fn firmware_usable_never_overrides_reserved() {
        let mut m = MemoryMap::new();
        m.add_firmware(0x1000, 0x2000, MemoryKind::Reserved)
            .unwrap();
        m.add_firmware(0, 0x10000, MemoryKind::Usable).unwrap();
        assert_eq!(m.kind_at(0x1800), Some(MemoryKind::Reserved));
        assert_eq!(m.kind_at(0x800), Some(MemoryKind::Usable));
        assert_eq!(m.kind_at(0x8000), Some(MemoryKind::Usable));
        check_invariants(&m);
    }

    #[test]
    fn allocate_respects_alignment_bounds_and_kind() {
        let mut m = MemoryMap::new();
        m.paint(0x1000, 0x9000, MemoryKind::Usable).unwrap();
        m.paint(0x2000, 0x3000, MemoryKind::Module).unwrap();
        let a = m
            .allocate(0x2000, 0x2000, 0, u64::MAX, MemoryKind::PageTables)
            .unwrap();
        assert_eq!(a % 0x2000, 0);
        assert!(a >= 0x3000);
        assert_eq!(m.kind_at(a), Some(MemoryKind::PageTables));
        assert!(
            m.allocate(0x100000, 0x1000, 0, u64::MAX, MemoryKind::BootInfo)
                .is_none()
        );
        assert!(
            m.allocate(0x1000, 0x1000, 0, 0x2000, MemoryKind::BootInfo)
                .is_some()
        );
        assert!(
            m.allocate(0x1000, 3, 0, u64::MAX, MemoryKind::BootInfo)
                .is_none()
        );
        check_invariants(&m);
    }

    #[test]
    fn full_map_is_reported_and_unchanged() {
        let mut m = MemoryMap::new();
        for i in 0..MAX_REGIONS as u64 {
            let kind = if i % 2 == 0 {
                MemoryKind::Usable
            } else {
                MemoryKind::Reserved
            };
            m.paint(i * 10, i * 10 + 10, kind).unwrap();
        }
        let before = m.clone();
        assert_eq!(m.paint(1001, 1002, MemoryKind::Module), Err(MapError::Full));
        assert_eq!(before.regions(), m.regions());
    }

    proptest! {
        /// Painting is last-writer-wins at every address and keeps the invariants.
        #[test]
        fn paint_matches_a_byte_model(ops in proptest::collection::vec((0u64..200, 1u64..50, 1u32..6), 1..40)) {
            let mut m = MemoryMap::new();
            let mut model: Vec<Option<MemoryKind>> = std::vec![None; 300];
            let kinds = [MemoryKind::Usable, MemoryKind::Reserved, MemoryKind::Module, MemoryKind::BootInfo, MemoryKind::PageTables];
            for (start, len, k) in ops {
                let kind = kinds[(k as usize - 1) % kinds.len()];
                m.paint(start, start + len, kind).unwrap();
                for slot in &mut model[start as usize..(start + len) as usize] {
                    *slot = Some(kind);
                }
                check_invariants(&m);
            }
            for (addr, want) in model.iter().enumerate() {
                prop_assert_eq!(m.kind_at(addr as u64), *want);
            }
        }

        /// Allocations never overlap each other or anything that was not usable.
        #[test]
        fn allocations_are_disjoint_and_from_usable_ram(sizes in proptest::collection::vec(1u64..0x3000, 1..30)) {
            let mut m = MemoryMap::new();
            m.add_firmware(0, 0x40000, MemoryKind::Usable).unwrap();
            m.paint(0x8000, 0x9000, MemoryKind::Module).unwrap();
            let mut got: Vec<(u64, u64)> = Vec::new();
            for s in sizes {
                if let Some(a) = m.allocate(s, 0x1000, 0x1000, u64::MAX, MemoryKind::KernelData) {
                    prop_assert!(a + s <= 0x8000 || a >= 0x9000);
                    for &(b, t) in &got {
                        prop_assert!(a + s <= b || b + t <= a);
                    }
                    got.push((a, s));
                }
            }
            check_invariants(&m);
        }
    }
}
