//! Devices as kernel objects: what a user-space driver gets, each by handle (DESIGN §2).
//!
//! At boot the core walks the PCI buses once and records every function: its ids, its BARs
//! (sized with decoding off) and its MSI-X capability. A [`Device`] object names one of those
//! functions; at most one exists per function at a time (a claim), and the core hands it to
//! the driver at spawn with [`abi::Rights::DEVICE_ALL`] (never the transfer right: a device stays
//! with its driver). Through it the driver reads its own configuration space, maps its memory
//! BARs (`io`), allocates DMA memory (`io`) and binds its interrupt to a channel (`irq`); the
//! system calls are in `sys`.
//!
//! When the object goes (the handle closed, or the driver died) the device stops: its interrupt
//! is unbound and masked, bus mastering is turned off so it can no longer reach memory, its BARs
//! are unmapped from the driver, and the claim is released. DMA memory belongs to the process and
//! goes with its address space.
mod io;
pub mod irq;
pub mod sys;

use crate::arch::mmio::Mmio;
use crate::arch::pci::{self, Function};
use crate::ipc::Endpoint;
use crate::process::Pid;
use abi::device::{BAR_COUNT, Bar, BarKind, DeviceInfo};
use alloc::sync::Arc;
use alloc::vec::Vec;
use spin::{Mutex, Once};

pub use io::process_ended;

/// The MSI-X capability of a function.
#[derive(Clone, Copy, Debug)]
pub struct Msix {
    /// Offset of the capability in configuration space.
    pub cap: u8,
    /// Table entries.
    pub entries: u16,
    /// BAR holding the table, and the table's offset in it.
    pub table: (u8, u32),
    /// BAR holding the pending-bit array, and its offset.
    pub pba: (u8, u32),
}

impl Msix {
    /// The byte ranges (BAR, start, end) the kernel keeps for itself: the table and the PBA.
    fn kept(&self) -> [(u8, u64, u64); 2] {
        let table_len = u64::from(self.entries) * 16;
        let pba_len = u64::from(self.entries).div_ceil(64) * 8;
        [
            (
                self.table.0,
                u64::from(self.table.1),
                u64::from(self.table.1) + table_len,
            ),
            (
                self.pba.0,
                u64::from(self.pba.1),
                u64::from(self.pba.1) + pba_len,
            ),
        ]
    }
}

/// One PCI function as the boot scan found it.
pub struct Found {
    /// Where it is.
    pub func: Function,
    /// What `device_info` reports.
    pub info: DeviceInfo,
    /// Its MSI-X capability, if any.
    pub msix: Option<Msix>,
    /// Its MSI-X table, mapped for the kernel at boot (so binding an interrupt later allocates
    /// nothing).
    table: Option<Mmio>,
}

static FOUND: Once<Vec<Found>> = Once::new();
static CLAIMED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn found() -> &'static [Found] {
    FOUND.get().map_or(&[], Vec::as_slice)
}

/// Walks the PCI buses (from bus 0 through bridges) and records every function. Once, at boot.
pub fn init() {
    let list = FOUND.call_once(|| {
        let mut list = Vec::new();
        scan_bus(0, 0, &mut list);
        list
    });
    for d in list {
        ::log::debug!(
            "pci {}: {:04x}:{:04x} class {:02x}{:02x}{}",
            d.func,
            d.info.vendor,
            d.info.device,
            d.info.class[0],
            d.info.class[1],
            if d.msix.is_some() { " msi-x" } else { "" }
        );
        for (i, b) in d.info.bars.iter().enumerate() {
            if b.kind != BarKind::None {
                ::log::debug!("    bar {i}: {:?} {:#x} size {:#x}", b.kind, b.phys, b.size);
            }
        }
        if let Some(m) = d.msix {
            ::log::debug!("    {m:?}");
        }
    }
    ::log::info!("pci: {} functions", list.len());
}

fn scan_bus(bus: u8, depth: u32, out: &mut Vec<Found>) {
    for dev in 0..32 {
        let Some(f0) = Function::new(bus, dev, 0) else {
            continue;
        };
        if pci::read32(f0, 0) & 0xffff == 0xffff {
            continue;
        }
        let functions = if pci::read32(f0, 0x0c) & (0x80 << 16) != 0 {
            8
        } else {
            1
        };
        for func in 0..functions {
            let Some(f) = Function::new(bus, dev, func) else {
                continue;
            };
            let id = pci::read32(f, 0);
            if id & 0xffff == 0xffff {
                continue;
            }
            let header = (pci::read32(f, 0x0c) >> 16) as u8 & 0x7f;
            if header == 1 && depth < 8 {
                let secondary = (pci::read32(f, 0x18) >> 8) as u8;
                if secondary > bus {
                    scan_bus(secondary, depth + 1, out);
                }
            }
            out.push(describe(f, id, header));
        }
    }
}

fn describe(f: Function, id: u32, header: u8) -> Found {
    let class = pci::read32(f, 0x08).to_le_bytes();
    let mut info = DeviceInfo {
        vendor: id as u16,
        device: (id >> 16) as u16,
        class: [class[3], class[2], class[1], class[0]],
        bus: f.bus,
        dev: f.dev,
        func: f.func,
        msix_vectors: 0,
        bars: [Bar::default(); BAR_COUNT],
    };
    if header == 0 {
        info.bars = bars(f);
    }
    let msix = find_msix(f);
    info.msix_vectors = msix.map_or(0, |m| m.entries);
    let table = msix.and_then(|m| {
        let bar = info.bars.get(usize::from(m.table.0))?;
        bar.kind.is_memory().then_some(())?;
        Mmio::map(bar.phys + u64::from(m.table.1), u64::from(m.entries) * 16)
    });
    Found {
        func: f,
        info,
        msix,
        table,
    }
}

fn bars(f: Function) -> [Bar; BAR_COUNT] {
    let mut out = [Bar::default(); BAR_COUNT];
    let mut i = 0;
    while i < BAR_COUNT {
        let p = pci::probe_bar(f, i as u8);
        let lowest = |mask: u64| (mask != 0).then(|| 1u64 << mask.trailing_zeros());
        if p.value & 1 == 1 {
            if let Some(size) = lowest(p.mask & 0xffff_fffc) {
                out[i] = Bar {
                    kind: BarKind::Io,
                    prefetchable: false,
                    phys: p.value & 0xffff_fffc,
                    size,
                };
            }
            i += 1;
            continue;
        }
        let wide = p.value & 0b110 == 0b100 && i < 5;
        let phys = p.value & !0xf;
        if let Some(size) = lowest(p.mask & !0xf)
            && phys != 0
        {
            out[i] = Bar {
                kind: if wide {
                    BarKind::Memory64
                } else {
                    BarKind::Memory32
                },
                prefetchable: p.value & 0b1000 != 0,
                phys,
                size,
            };
        }
        if wide {
            out[i + 1].kind = BarKind::Upper;
            i += 1;
        }
        i += 1;
    }
    out
}

fn find_msix(f: Function) -> Option<Msix> {
    const CAPABILITIES_LIST: u32 = 1 << 20;
    const MSIX: u32 = 0x11;
    if pci::read32(f, 0x04) & CAPABILITIES_LIST == 0 {
        return None;
    }
    let mut at = (pci::read32(f, 0x34) & 0xfc) as u8;
    for _ in 0..48 {
        if at < 0x40 {
            return None;
        }
        let head = pci::read32(f, at);
        if head & 0xff == MSIX {
            let table = pci::read32(f, at + 4);
            let pba = pci::read32(f, at + 8);
            return Some(Msix {
                cap: at,
                entries: ((head >> 16) & 0x7ff) as u16 + 1,
                table: ((table & 7) as u8, table & !7),
                pba: ((pba & 7) as u8, pba & !7),
            });
        }
        at = ((head >> 8) & 0xfc) as u8;
    }
    None
}

/// The first function with this vendor and device id.
pub fn find(vendor: u16, device: u16) -> Option<Function> {
    found()
        .iter()
        .find(|d| d.info.vendor == vendor && d.info.device == device)
        .map(|d| d.func)
}

/// The first function of this class and subclass.
pub fn find_class(class: u8, subclass: u8) -> Option<Function> {
    found()
        .iter()
        .find(|d| d.info.class[0] == class && d.info.class[1] == subclass)
        .map(|d| d.func)
}

/// Why a device cannot be claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimError {
    /// No such function was found at boot.
    NotFound,
    /// Another device object names it.
    Busy,
}

/// A device object: one claimed PCI function and what its driver has done with it.
pub struct Device {
    index: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The process that first used it (device handles do not move, but the check is cheap).
    owner: Option<Pid>,
    /// Where each BAR is mapped in the owner: (address, pages).
    mapped: [Option<(u64, u64)>; BAR_COUNT],
    /// The interrupt binding: the vector and the endpoint the kernel sends on.
    irq: Option<(u8, Endpoint)>,
}

/// Claims the function `f` for a new device object (one at a time per function).
pub fn claim(f: Function) -> Result<Arc<Device>, ClaimError> {
    let index = found()
        .iter()
        .position(|d| d.func == f)
        .ok_or(ClaimError::NotFound)?;
    let mut claimed = CLAIMED.lock();
    if claimed.contains(&index) {
        return Err(ClaimError::Busy);
    }
    claimed.push(index);
    Ok(Arc::new(Device {
        index,
        state: Mutex::new(State::default()),
    }))
}

/// Device objects that exist now.
pub fn claimed() -> usize {
    CLAIMED.lock().len()
}

impl Device {
    fn found(&self) -> &'static Found {
        &found()[self.index]
    }

    /// The PCI function.
    pub fn function(&self) -> Function {
        self.found().func
    }

    /// What `device_info` reports.
    pub fn info(&self) -> DeviceInfo {
        self.found().info
    }

    /// Binds the device to `pid` on first use; a device used by another process is refused.
    fn check_owner(state: &mut State, pid: Pid) -> Result<(), abi::Error> {
        match state.owner {
            Some(o) if o != pid => Err(abi::Error::Failed),
            _ => {
                state.owner = Some(pid);
                Ok(())
            }
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let f = self.function();
        let state = core::mem::take(self.state.get_mut());
        if let Some((vector, endpoint)) = state.irq {
            if let Some(m) = self.found().msix {
                irq::disable(self.found(), &m);
            }
            irq::unbind(vector);
            drop(endpoint);
        }
        // No more DMA: the memory it could reach goes back with the driver's address space.
        pci::write_command(f, 0, pci::COMMAND_BUS_MASTER);
        if let Some(pid) = state.owner {
            for (va, pages) in state.mapped.iter().flatten() {
                io::unmap_mmio(pid, *va, *pages);
            }
        }
        CLAIMED.lock().retain(|&i| i != self.index);
        ::log::debug!("device {f} released");
    }
}

/// The virtio-blk function on the modern PCI transport (vendor 0x1af4, device 0x1042).
pub const VIRTIO_BLK: (u16, u16) = (0x1af4, 0x1042);
/// How many virtio-blk functions the boot scan found (`root=virtio-blkN` counts them from 0).
pub fn block_devices() -> usize {
    found()
        .iter()
        .filter(|d| (d.info.vendor, d.info.device) == VIRTIO_BLK)
        .count()
}

/// A running block driver as the core started it.
pub struct BlockDriver {
    /// Its process.
    pub pid: Pid,
    /// The parent's end of its parent channel (its death report arrives here).
    pub parent: Endpoint,
    /// The client's end of its service channel (the block protocol).
    pub client: Endpoint,
}

/// Starts `bin/blk` for the first virtio-blk function: claims the device and gives the driver
/// the device handle (handle 1, every device right) and the server end of a new service channel
/// (handle 2). `watched`: the kernel will `process::wait` for it.
pub fn start_block(watched: bool) -> Result<BlockDriver, alloc::string::String> {
    start_block_at(0, watched)
}

/// Like [`start_block`], for the `index`th virtio-blk function in scan order (0 first: the
/// device `root=virtio-blkN` names).
pub fn start_block_at(index: usize, watched: bool) -> Result<BlockDriver, alloc::string::String> {
    use crate::ipc::Object;
    use crate::process::{self, SpawnOptions};
    use abi::Rights;
    let f = found()
        .iter()
        .filter(|d| d.info.vendor == VIRTIO_BLK.0 && d.info.device == VIRTIO_BLK.1)
        .nth(index)
        .map(|d| d.func)
        .ok_or_else(|| alloc::format!("no virtio-blk device number {index}"))?;
    let dev = claim(f).map_err(|e| alloc::format!("cannot claim {f}: {e:?}"))?;
    let (server, client) = Endpoint::pair();
    let gifts = alloc::vec![
        (Object::Device(dev), Rights::DEVICE_ALL),
        (Object::Endpoint(server), Rights::CHANNEL_ALL),
    ];
    let spawn = if watched {
        process::spawn_watched
    } else {
        process::spawn_with
    };
    let (pid, parent) = spawn("bin/blk", 0, SpawnOptions::default(), gifts)
        .map_err(|(e, _)| alloc::format!("cannot start bin/blk: {e}"))?;
    Ok(BlockDriver {
        pid,
        parent,
        client,
    })
}
