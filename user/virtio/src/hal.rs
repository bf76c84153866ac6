//! `virtio_drivers::Hal` for a moxie driver process.
//!
//! The trait's functions take no `self`, so what they need lives in statics, set once by
//! [`open`]: the device handle (for `dma_alloc`), the BARs the kernel mapped (for
//! `mmio_phys_to_virt`), and the DMA regions handed out (so that `share` can give the physical
//! address of a buffer that already lies in DMA memory without copying it). A buffer anywhere
//! else is copied through a bounce buffer: a slot of a small DMA page for headers and status
//! bytes, a fresh DMA region for anything larger.
use abi::Handle;
use abi::device::{BAR_COUNT, DeviceInfo};
use abi::layout::PAGE_SIZE;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use moxie_rt::dev;
use spin::Mutex;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// The device handle every DMA allocation goes through.
static DEVICE: AtomicU32 = AtomicU32::new(u32::MAX);

/// A mapped BAR: physical address, size, where it is mapped.
#[derive(Clone, Copy, Default)]
struct Window {
    phys: u64,
    size: u64,
    va: u64,
}

static BARS: Mutex<[Window; BAR_COUNT]> = Mutex::new(
    [Window {
        phys: 0,
        size: 0,
        va: 0,
    }; BAR_COUNT],
);

/// Most DMA regions tracked at once (queues, buffers, bounce regions).
const REGIONS: usize = 32;
/// DMA regions: (address, physical address, bytes).
static DMA: Mutex<[(u64, u64, u64); REGIONS]> = Mutex::new([(0, 0, 0); REGIONS]);
/// Addresses below every DMA region handed out so far, and at or above its end: a buffer
/// outside them (a request header on the stack) is told apart without a look at the table,
/// which each request's buffers cost six times.
static DMA_LOW: AtomicU64 = AtomicU64::new(u64::MAX);
static DMA_HIGH: AtomicU64 = AtomicU64::new(0);

/// Small bounce slots: one DMA page cut in [`SLOTS`] pieces of [`SLOT`] bytes.
const SLOT: usize = 512;
const SLOTS: usize = PAGE_SIZE as usize / SLOT;
/// The page (address, physical address) and which slots are in use.
static SMALL: Mutex<(u64, u64, [bool; SLOTS])> = Mutex::new((0, 0, [false; SLOTS]));

/// Why a device could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// A system call refused (the device handle lacks a right, DMA is exhausted, ...).
    Sys(abi::Error),
    /// The device was opened already.
    AlreadyOpen,
}

impl From<abi::Error> for OpenError {
    fn from(e: abi::Error) -> Self {
        OpenError::Sys(e)
    }
}

/// Takes `dev` as the device this process drives: maps each of its memory BARs (all but those
/// that are wholly the kernel's MSI-X table), and allocates the small bounce page.
pub fn open(dev: Handle) -> Result<DeviceInfo, OpenError> {
    if DEVICE
        .compare_exchange(u32::MAX, dev.0, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(OpenError::AlreadyOpen);
    }
    let info = dev::info(dev)?;
    let mut bars = BARS.lock();
    for (i, bar) in info.bars.iter().enumerate() {
        if !bar.kind.is_memory() {
            continue;
        }
        match dev::map_bar(dev, i as u64) {
            Ok(va) => {
                bars[i] = Window {
                    phys: bar.phys,
                    size: bar.size,
                    va,
                }
            }
            Err(abi::Error::NoRights) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let page = alloc_region(1).ok_or(OpenError::Sys(abi::Error::NoMemory))?;
    let mut small = SMALL.lock();
    small.0 = page.0;
    small.1 = page.1;
    Ok(info)
}

/// The device handle given to [`open`].
pub fn device() -> Handle {
    Handle(DEVICE.load(Ordering::Acquire))
}

/// Where BAR `index` is mapped, and its size.
pub fn bar(index: usize) -> Option<(u64, u64)> {
    let w = *BARS.lock().get(index)?;
    (w.va != 0).then_some((w.va, w.size))
}

/// A DMA region of `pages`, recorded: (address, physical address).
fn alloc_region(pages: usize) -> Option<(u64, u64)> {
    let r = dev::dma_alloc(device(), pages as u64).ok()?;
    let mut regions = DMA.lock();
    match regions.iter_mut().find(|e| e.2 == 0) {
        Some(slot) => {
            *slot = (r.va, r.phys, pages as u64 * PAGE_SIZE);
            DMA_LOW.fetch_min(r.va, Ordering::AcqRel);
            DMA_HIGH.fetch_max(r.va + pages as u64 * PAGE_SIZE, Ordering::AcqRel);
            Some((r.va, r.phys))
        }
        None => {
            drop(regions);
            let _ = dev::dma_free(device(), r.va);
            None
        }
    }
}

fn free_region(va: u64) -> bool {
    let mut regions = DMA.lock();
    let Some(slot) = regions.iter_mut().find(|e| e.0 == va && e.2 != 0) else {
        return false;
    };
    *slot = (0, 0, 0);
    drop(regions);
    dev::dma_free(device(), va).is_ok()
}

/// The physical address of `len` bytes at `va` if they lie in one DMA region.
fn dma_phys(va: u64, len: u64) -> Option<u64> {
    if va < DMA_LOW.load(Ordering::Acquire) || va + len > DMA_HIGH.load(Ordering::Acquire) {
        return None;
    }
    DMA.lock()
        .iter()
        .find(|&&(a, _, n)| n != 0 && va >= a && va + len <= a + n)
        .map(|&(a, p, _)| p + (va - a))
}

/// A DMA buffer of `pages` for the driver's own use (requests received straight into device
/// memory, replies read straight from it); it stays for the life of the process.
pub fn buffer(pages: usize) -> Option<&'static mut [u8]> {
    let (va, _) = alloc_region(pages)?;
    Some(region_bytes(va, pages * PAGE_SIZE as usize))
}

fn region_bytes(va: u64, len: usize) -> &'static mut [u8] {
    // SAFETY: `va..va+len` is a DMA region the kernel mapped for this process (zeroed,
    // writable) and recorded above; it is handed out once and never freed.
    unsafe { core::slice::from_raw_parts_mut(va as *mut u8, len) }
}

/// The `Hal` of a moxie driver.
pub struct MoxieHal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned memory mapped for this process alone until
// `dma_dealloc`; `mmio_phys_to_virt` returns addresses inside BARs the kernel mapped for this
// process; `share` returns the physical address of memory the device may use for the duration
// of the sharing (the buffer itself, or a bounce copy kept until `unshare`).
unsafe impl Hal for MoxieHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match alloc_region(pages) {
            Some((va, phys)) => match NonNull::new(va as *mut u8) {
                Some(p) => (phys, p),
                None => (0, NonNull::dangling()),
            },
            // `Dma::new` reads a zero physical address as failure.
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, _pages: usize) -> i32 {
        if free_region(vaddr.as_ptr() as u64) {
            0
        } else {
            -1
        }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let bars = BARS.lock();
        let w = bars
            .iter()
            .find(|w| w.va != 0 && paddr >= w.phys && paddr + size as u64 <= w.phys + w.size)
            .copied();
        drop(bars);
        // The trait allows a panic for a region outside the device's BARs.
        let w = w.expect("virtio register region outside the mapped BARs");
        NonNull::new((w.va + (paddr - w.phys)) as *mut u8).expect("BARs are mapped above 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let va = buffer.as_ptr() as *mut u8 as u64;
        let len = buffer.len();
        if let Some(phys) = dma_phys(va, len as u64) {
            return phys;
        }
        let (bounce_va, phys) = bounce(len);
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the caller guarantees `buffer` is valid for `len` bytes and not accessed
            // by anyone else meanwhile; the bounce memory is ours until `unshare`.
            unsafe {
                core::ptr::copy_nonoverlapping(buffer.as_ptr() as *const u8, bounce_va, len);
            }
        }
        phys
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let va = buffer.as_ptr() as *mut u8 as u64;
        let len = buffer.len();
        if dma_phys(va, len as u64).is_some() {
            return;
        }
        let Some(bounce_va) = bounce_va(paddr, len) else {
            return;
        };
        if direction != BufferDirection::DriverToDevice {
            // SAFETY: as in `share`; the bounce copy holds what the device wrote.
            unsafe {
                core::ptr::copy_nonoverlapping(bounce_va, buffer.as_ptr() as *mut u8, len);
            }
        }
        release_bounce(paddr, bounce_va as u64);
    }
}

/// A bounce buffer of `len` bytes: (address, physical address). Panics when DMA memory is
/// exhausted (the trait has no way to report it; the driver's ledger is far from full).
fn bounce(len: usize) -> (*mut u8, u64) {
    if len <= SLOT {
        let mut small = SMALL.lock();
        if let Some(i) = small.2.iter().position(|used| !used) {
            small.2[i] = true;
            let off = (i * SLOT) as u64;
            return ((small.0 + off) as *mut u8, small.1 + off);
        }
    }
    let pages = len.div_ceil(PAGE_SIZE as usize);
    let (va, phys) = alloc_region(pages).expect("DMA memory for a bounce buffer");
    (va as *mut u8, phys)
}

/// The address of the bounce buffer at `phys`.
fn bounce_va(phys: u64, len: usize) -> Option<*mut u8> {
    let small = SMALL.lock();
    if len <= SLOT && phys >= small.1 && phys < small.1 + PAGE_SIZE {
        return Some((small.0 + (phys - small.1)) as *mut u8);
    }
    drop(small);
    DMA.lock()
        .iter()
        .find(|&&(_, p, n)| n != 0 && p == phys)
        .map(|&(a, _, _)| a as *mut u8)
}

fn release_bounce(phys: u64, va: u64) {
    let mut small = SMALL.lock();
    if phys >= small.1 && phys < small.1 + PAGE_SIZE {
        let i = ((phys - small.1) as usize) / SLOT;
        small.2[i] = false;
        return;
    }
    drop(small);
    free_region(va);
}
