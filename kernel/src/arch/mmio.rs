//! Device registers the core itself touches (a device's MSI-X table): mapped uncached into the
//! kernel's device window (`abi::layout::KERNEL_MMIO_BASE`) and accessed with volatile,
//! bounds-checked 32-bit reads and writes.
//!
//! A mapping is refused for any page the memory map calls RAM, so an [`Mmio`] never aliases
//! memory the frame allocator or the kernel owns. Mappings stay for the life of the kernel
//! (a handful, one per device that uses MSI-X).
use super::frames::{self, KernelTables};
use super::paging::kernel_space;
use abi::layout::{KERNEL_MMIO_BASE, KERNEL_MMIO_END, PAGE_SIZE};
use bootinfo::MemoryKind;
use spin::Mutex;

static NEXT: Mutex<u64> = Mutex::new(KERNEL_MMIO_BASE);

/// True when the page at `phys` may be device memory: the memory map calls it reserved or does
/// not list it at all.
pub fn is_device_memory(phys: u64) -> bool {
    matches!(frames::kind_at(phys), None | Some(MemoryKind::Reserved))
}

/// A mapped range of device registers.
#[derive(Debug)]
pub struct Mmio {
    virt: u64,
    len: u64,
}

impl Mmio {
    /// Maps `len` bytes of device memory at `phys` (not RAM, see [`is_device_memory`]).
    pub fn map(phys: u64, len: u64) -> Option<Mmio> {
        let first = phys & !(PAGE_SIZE - 1);
        let end = phys.checked_add(len)?.next_multiple_of(PAGE_SIZE);
        if len == 0
            || !(first..end)
                .step_by(PAGE_SIZE as usize)
                .all(is_device_memory)
        {
            return None;
        }
        let mut next = NEXT.lock();
        let base = *next;
        if base + (end - first) > KERNEL_MMIO_END {
            return None;
        }
        for (i, p) in (first..end).step_by(PAGE_SIZE as usize).enumerate() {
            let va = base + i as u64 * PAGE_SIZE;
            if kernel_space()
                .map_device(va, p, false, &mut KernelTables)
                .is_err()
            {
                // The window never reuses addresses: what was mapped stays, harmlessly.
                *next = va + PAGE_SIZE;
                return None;
            }
        }
        *next = base + (end - first);
        Some(Mmio {
            virt: base + (phys - first),
            len,
        })
    }

    fn at(&self, offset: u64) -> Option<*mut u32> {
        (offset.is_multiple_of(4) && offset.checked_add(4)? <= self.len)
            .then(|| (self.virt + offset) as *mut u32)
    }

    /// The 32-bit register at `offset`, if inside the range.
    pub fn read32(&self, offset: u64) -> Option<u32> {
        let p = self.at(offset)?;
        // SAFETY: `p` is an aligned address inside this uncached mapping of device registers,
        // which no Rust reference covers.
        Some(unsafe { core::ptr::read_volatile(p) })
    }

    /// Writes the 32-bit register at `offset`; false if outside the range.
    pub fn write32(&self, offset: u64, value: u32) -> bool {
        let Some(p) = self.at(offset) else {
            return false;
        };
        // SAFETY: as for `read32`.
        unsafe { core::ptr::write_volatile(p, value) };
        true
    }
}
