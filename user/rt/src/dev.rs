//! Devices: safe wrappers over the system calls a driver makes through its device handle
//! (see `abi::device` and the project's `docs/drivers.md`).
use crate::Handle;
use abi::Error;
use abi::device::{DeviceInfo, DmaRegion};
use abi::syscall::Sys;

fn call(n: Sys, a: [u64; 6]) -> Result<u64, Error> {
    crate::syscall6(n as u64, a)
}

/// The device's description: ids, BARs, MSI-X entries.
pub fn info(dev: Handle) -> Result<DeviceInfo, Error> {
    let mut buf = [0u8; DeviceInfo::SIZE];
    call(
        Sys::DeviceInfo,
        [
            dev.0 as u64,
            buf.as_mut_ptr() as u64,
            buf.len() as u64,
            0,
            0,
            0,
        ],
    )?;
    DeviceInfo::from_bytes(&buf).ok_or(Error::Failed)
}

/// `device_info` with a raw output buffer (for tests of the kernel's checks).
pub fn info_raw(dev: u64, out: u64, len: u64) -> Result<u64, Error> {
    call(Sys::DeviceInfo, [dev, out, len, 0, 0, 0])
}

/// The 32-bit register at `offset` of the device's PCI configuration space.
pub fn config_read(dev: Handle, offset: u64) -> Result<u32, Error> {
    call(Sys::ConfigRead, [dev.0 as u64, offset, 0, 0, 0, 0]).map(|v| v as u32)
}

/// Writes the 32-bit register at `offset` (the kernel allows the command/status register only).
pub fn config_write(dev: Handle, offset: u64, value: u64) -> Result<(), Error> {
    call(Sys::ConfigWrite, [dev.0 as u64, offset, value, 0, 0, 0]).map(|_| ())
}

/// Maps memory BAR `index` into this process (uncached, not executable); returns its address.
pub fn map_bar(dev: Handle, index: u64) -> Result<u64, Error> {
    call(Sys::MapBar, [dev.0 as u64, index, 0, 0, 0, 0])
}

/// `pages` physically contiguous zeroed pages for the device to reach by DMA.
pub fn dma_alloc(dev: Handle, pages: u64) -> Result<DmaRegion, Error> {
    let mut out = [0u8; DmaRegion::SIZE];
    dma_alloc_raw(dev.0 as u64, pages, out.as_mut_ptr() as u64)?;
    Ok(DmaRegion::from_bytes(&out))
}

/// `dma_alloc` with a raw output pointer (for tests of the kernel's checks).
pub fn dma_alloc_raw(dev: u64, pages: u64, out: u64) -> Result<(), Error> {
    call(Sys::DmaAlloc, [dev, pages, out, 0, 0, 0]).map(|_| ())
}

/// Gives back the DMA region that starts at `va`.
pub fn dma_free(dev: Handle, va: u64) -> Result<(), Error> {
    call(Sys::DmaFree, [dev.0 as u64, va, 0, 0, 0, 0]).map(|_| ())
}

/// Hands `endpoint` to the kernel, which sends an `abi::device::IrqMessage` on it for every
/// interrupt of the device; receive them on the channel's other end.
pub fn irq_bind(dev: Handle, endpoint: Handle) -> Result<(), Error> {
    call(Sys::IrqBind, [dev.0 as u64, endpoint.0 as u64, 0, 0, 0, 0]).map(|_| ())
}
