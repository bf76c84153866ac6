//! Per-process device memory: the BAR mappings in the device window and the DMA regions in the
//! DMA window (`abi::layout`), with the DMA ledger.
//!
//! Device registers are mapped uncached and marked as not owned, so tearing the space down never
//! hands them to the frame allocator. DMA regions are ordinary owned pages of the space: the
//! teardown at death frees them with the rest, and `dma_free` earlier. Addresses are the lowest
//! free ones in each window, so the same calls in the same order give the same layout.
use crate::arch::frames::{self, KernelTables};
use crate::arch::paging::{AddressSpace, Perms};
use crate::arch::phys::Frame;
use crate::process::{self, Pid};
use abi::Error;
use abi::device::DmaRegion;
use abi::layout::{DEVICE_MMIO_BASE, DEVICE_MMIO_SIZE, DMA_BASE, DMA_SIZE, PAGE_SIZE};
use alloc::sync::Arc;
use alloc::vec::Vec;
use spin::Mutex;

#[derive(Default)]
struct Io {
    pid: Pid,
    /// BAR mappings: (address, pages).
    mmio: Vec<(u64, u64)>,
    /// DMA regions: (address, physical address, pages).
    dma: Vec<(u64, u64, u64)>,
    /// Bytes of DMA memory held (the ledger).
    dma_bytes: u64,
}

static IO: Mutex<Vec<Io>> = Mutex::new(Vec::new());

fn with_io<R>(pid: Pid, f: impl FnOnce(&mut Io) -> R) -> R {
    let mut all = IO.lock();
    let i = match all.iter().position(|io| io.pid == pid) {
        Some(i) => i,
        None => {
            all.push(Io {
                pid,
                ..Io::default()
            });
            all.len() - 1
        }
    };
    f(&mut all[i])
}

/// The lowest address in `[base, base + size)` where `bytes` fit between the `used` ranges.
fn first_fit(mut used: Vec<(u64, u64)>, base: u64, size: u64, bytes: u64) -> Option<u64> {
    used.sort_unstable();
    let mut at = base;
    for (start, len) in used {
        if at.checked_add(bytes)? <= start {
            break;
        }
        at = at.max(start + len);
    }
    (at.checked_add(bytes)? <= base + size).then_some(at)
}

/// The calling process's address space.
pub fn current_space() -> Result<(Pid, Arc<AddressSpace>), Error> {
    let pid = crate::sched::current_pid().ok_or(Error::Failed)?;
    Ok((pid, process::space_of(pid).ok_or(Error::Failed)?))
}

/// Maps device pages into `pid`'s device window, contiguously; `None` entries (registers the
/// kernel keeps) stay unmapped holes. Returns the address of the first page.
pub fn map_mmio(pid: Pid, space: &AddressSpace, pages: &[Option<u64>]) -> Result<u64, Error> {
    with_io(pid, |io| {
        let bytes = pages.len() as u64 * PAGE_SIZE;
        let va = first_fit(io.mmio.clone(), DEVICE_MMIO_BASE, DEVICE_MMIO_SIZE, bytes)
            .ok_or(Error::Overloaded)?;
        for (i, phys) in pages.iter().enumerate() {
            let Some(phys) = phys else { continue };
            if space
                .map_device(va + i as u64 * PAGE_SIZE, *phys, true, &mut KernelTables)
                .is_err()
            {
                for j in 0..i as u64 {
                    let _ = space.unmap(va + j * PAGE_SIZE);
                }
                return Err(Error::NoMemory);
            }
        }
        io.mmio.push((va, bytes));
        Ok(va)
    })
}

/// Unmaps a BAR mapping (the device object went away); nothing to do once `pid` has died.
/// In a process with several live threads the mapping stays until the process ends: another
/// core may hold a translation for it and there is no TLB shootdown yet (decision 45).
pub fn unmap_mmio(pid: Pid, va: u64, pages: u64) {
    let space = process::space_of(pid).filter(|_| process::live_threads(pid) <= 1);
    let mut all = IO.lock();
    let Some(io) = all.iter_mut().find(|io| io.pid == pid) else {
        return;
    };
    io.mmio.retain(|&(a, _)| a != va);
    if let Some(space) = space {
        for i in 0..pages {
            // A hole (a kept page) is simply not mapped.
            let _ = space.unmap(va + i * PAGE_SIZE);
        }
    }
}

/// Allocates `pages` contiguous zeroed frames and maps them into `pid`'s DMA window, charged to
/// its ledger.
pub fn dma_alloc(pid: Pid, space: &AddressSpace, pages: u64) -> Result<DmaRegion, Error> {
    with_io(pid, |io| {
        let bytes = pages * PAGE_SIZE;
        if io.dma_bytes + bytes > abi::limits::LEDGER_DMA_BYTES {
            ::log::debug!(
                "process {pid}: DMA ledger full ({} of {} bytes held)",
                io.dma_bytes,
                abi::limits::LEDGER_DMA_BYTES
            );
            return Err(Error::Overloaded);
        }
        let used = io
            .dma
            .iter()
            .map(|&(va, _, n)| (va, n * PAGE_SIZE))
            .collect();
        let va = first_fit(used, DMA_BASE, DMA_SIZE, bytes).ok_or(Error::Overloaded)?;
        let frames: Vec<u64> = frames::alloc_contiguous_zeroed(pages)
            .ok_or(Error::NoMemory)?
            .into_iter()
            .map(Frame::into_phys)
            .collect();
        for (i, &phys) in frames.iter().enumerate() {
            let at = va + i as u64 * PAGE_SIZE;
            if space
                .map(at, phys, Perms::ReadWrite, true, &mut KernelTables)
                .is_err()
            {
                for j in 0..i as u64 {
                    let _ = space.unmap(va + j * PAGE_SIZE);
                }
                for &p in &frames {
                    let _ = frames::free_phys(p);
                }
                return Err(Error::NoMemory);
            }
        }
        io.dma.push((va, frames[0], pages));
        io.dma_bytes += bytes;
        Ok(DmaRegion {
            va,
            phys: frames[0],
        })
    })
}

/// Unmaps and frees the DMA region that starts at `va`, refunding the ledger. `Failed` in a
/// process with several live threads: another core may still hold a translation for the
/// frames and there is no TLB shootdown yet (decision 45); they go back at its end.
pub fn dma_free(pid: Pid, space: &AddressSpace, va: u64) -> Result<(), Error> {
    if process::live_threads(pid) > 1 {
        ::log::debug!("dma_free in a multi-threaded process {pid}: refused (no TLB shootdown)");
        return Err(Error::Failed);
    }
    with_io(pid, |io| {
        let i = io
            .dma
            .iter()
            .position(|&(a, _, _)| a == va)
            .ok_or(Error::NotFound)?;
        let (_, _, pages) = io.dma.remove(i);
        for p in 0..pages {
            if let Ok(phys) = space.unmap(va + p * PAGE_SIZE) {
                let _ = frames::free_phys(phys);
            }
        }
        io.dma_bytes -= pages * PAGE_SIZE;
        Ok(())
    })
}

/// Forgets a dead process's device memory (its address space, DMA frames included, is gone).
pub fn process_ended(pid: Pid) {
    IO.lock().retain(|io| io.pid != pid);
}
