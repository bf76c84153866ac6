//! The device system calls (numbers 32–38): each decodes and checks its arguments — the handle
//! (`InvalidHandle`), its type (`WrongType`), its rights (`NoRights`), then the values — before
//! it changes anything. `docs/drivers.md` lists every error.
use super::{Device, io, irq};
use crate::arch::mmio::is_device_memory;
use crate::arch::pci;
use crate::arch::usermem::UserSlice;
use crate::ipc::Object;
use crate::process;
use crate::syscall::handle;
use abi::device::{BAR_COUNT, BarKind, CONFIG_SPACE_SIZE, DeviceInfo, DmaRegion};
use abi::layout::PAGE_SIZE;
use abi::{Error, Rights};
use alloc::sync::Arc;
use alloc::vec::Vec;

/// The largest BAR `map_bar` maps.
pub const MAX_BAR_BYTES: u64 = 256 << 20;

/// The device `raw` names in the caller's table, checked for `rights` (after its type).
fn device(raw: u64, rights: Rights) -> Result<Arc<Device>, Error> {
    let h = handle(raw)?;
    process::with_handles(|t| {
        let (obj, have) = t.get(h)?;
        let Object::Device(d) = obj else {
            return Err(Error::WrongType);
        };
        if !have.contains(rights) {
            return Err(Error::NoRights);
        }
        Ok(d.clone())
    })
    .ok_or(Error::Failed)?
}

fn config_offset(offset: u64) -> Result<u8, Error> {
    if offset >= CONFIG_SPACE_SIZE || !offset.is_multiple_of(4) {
        return Err(Error::Failed);
    }
    Ok(offset as u8)
}

/// `device_info(dev, out, len) -> bytes`.
pub fn device_info(dev: u64, out: u64, len: u64) -> Result<u64, Error> {
    let d = device(dev, Rights::CONFIG)?;
    if len < DeviceInfo::SIZE as u64 {
        return Err(Error::TooBig);
    }
    UserSlice::new(out, DeviceInfo::SIZE)?.write_from(&d.info().to_bytes())?;
    Ok(DeviceInfo::SIZE as u64)
}

/// `config_read(dev, offset) -> value`.
pub fn config_read(dev: u64, offset: u64) -> Result<u64, Error> {
    let d = device(dev, Rights::CONFIG)?;
    let offset = config_offset(offset)?;
    Ok(u64::from(pci::read32(d.function(), offset)))
}

/// `config_write(dev, offset, value)`: only the command/status register, and in the command
/// only decoding, bus mastering and the INTx disable bit.
pub fn config_write(dev: u64, offset: u64, value: u64) -> Result<u64, Error> {
    let d = device(dev, Rights::CONFIG)?;
    let offset = config_offset(offset)?;
    let value = u32::try_from(value).map_err(|_| Error::Failed)?;
    if offset != 4 {
        return Err(Error::NoRights);
    }
    pci::write_command(d.function(), value, pci::COMMAND_DRIVER_BITS);
    Ok(0)
}

/// `map_bar(dev, index) -> va`.
pub fn map_bar(dev: u64, index: u64) -> Result<u64, Error> {
    let d = device(dev, Rights::MMIO)?;
    if index >= BAR_COUNT as u64 {
        return Err(Error::Failed);
    }
    let i = index as usize;
    let bar = d.info().bars[i];
    match bar.kind {
        BarKind::None | BarKind::Upper => return Err(Error::NotFound),
        BarKind::Io => return Err(Error::Failed),
        BarKind::Memory32 | BarKind::Memory64 => {}
    }
    if bar.size > MAX_BAR_BYTES {
        return Err(Error::TooBig);
    }
    // A BAR smaller than a page could share its page with another device's registers.
    if !bar.phys.is_multiple_of(PAGE_SIZE) || bar.size < PAGE_SIZE {
        return Err(Error::Failed);
    }
    let (pid, space) = io::current_space()?;
    let mut state = d.state.lock();
    Device::check_owner(&mut state, pid)?;
    if let Some((va, _)) = state.mapped[i] {
        return Ok(va);
    }
    let kept = d.found().msix.map(|m| m.kept());
    let pages: Vec<Option<u64>> = (0..bar.size / PAGE_SIZE)
        .map(|p| {
            let (start, end) = (p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
            let keep = kept
                .iter()
                .flatten()
                .any(|&(b, s, e)| usize::from(b) == i && s < end && start < e);
            (!keep).then_some(bar.phys + start)
        })
        .collect();
    if pages.iter().all(Option::is_none) {
        // All of it is the MSI-X table and PBA, which the kernel programs.
        return Err(Error::NoRights);
    }
    if !pages.iter().flatten().all(|&p| is_device_memory(p)) {
        return Err(Error::Failed);
    }
    let va = io::map_mmio(pid, &space, &pages)?;
    state.mapped[i] = Some((va, pages.len() as u64));
    Ok(va)
}

/// `dma_alloc(dev, pages, out)`.
pub fn dma_alloc(dev: u64, pages: u64, out: u64) -> Result<u64, Error> {
    let d = device(dev, Rights::DMA)?;
    if pages == 0 {
        return Err(Error::Failed);
    }
    if pages > abi::limits::MAX_DMA_PAGES {
        return Err(Error::TooBig);
    }
    let out = UserSlice::new(out, DmaRegion::SIZE)?;
    // Check the output is writable before allocating anything.
    out.write_from(&[0; DmaRegion::SIZE])?;
    let (pid, space) = io::current_space()?;
    Device::check_owner(&mut d.state.lock(), pid)?;
    let region = io::dma_alloc(pid, &space, pages)?;
    if let Err(e) = out.write_from(&region.to_bytes()) {
        let _ = io::dma_free(pid, &space, region.va);
        return Err(e);
    }
    Ok(0)
}

/// `dma_free(dev, va)`.
pub fn dma_free(dev: u64, va: u64) -> Result<u64, Error> {
    let _d = device(dev, Rights::DMA)?;
    let (pid, space) = io::current_space()?;
    io::dma_free(pid, &space, va)?;
    Ok(0)
}

/// `irq_bind(dev, endpoint)`: takes the endpoint (it needs send and transfer).
pub fn irq_bind(dev: u64, endpoint: u64) -> Result<u64, Error> {
    let d = device(dev, Rights::IRQ)?;
    let h = handle(endpoint)?;
    let (pid, _) = io::current_space()?;
    let found = d.found();
    let msix = found.msix.ok_or(Error::Failed)?;
    let mut state = d.state.lock();
    Device::check_owner(&mut state, pid)?;
    if state.irq.is_some() {
        return Err(Error::Failed);
    }
    let needed = Rights::SEND.union(Rights::TRANSFER);
    let (obj, rights) = process::with_handles(|t| {
        let (obj, have) = t.get(h)?;
        let Object::Endpoint(_) = obj else {
            return Err(Error::WrongType);
        };
        if !have.contains(needed) {
            return Err(Error::NoRights);
        }
        Ok(t.remove(h)?)
    })
    .ok_or(Error::Failed)??;
    let Object::Endpoint(ep) = obj else {
        return Err(Error::WrongType);
    };
    let give_back = |ep| {
        let refused = process::with_handles(|t| t.restore(h, Object::Endpoint(ep), rights).err());
        drop(refused);
    };
    let Some(vector) = irq::bind(ep.port()) else {
        give_back(ep);
        return Err(Error::Overloaded);
    };
    if let Err(e) = irq::enable(found, &msix, vector) {
        irq::unbind(vector);
        give_back(ep);
        return Err(e);
    }
    state.irq = Some((vector, ep));
    Ok(0)
}
