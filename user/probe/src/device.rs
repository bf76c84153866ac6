//! The probe's device behaviours: every misuse of the device system calls (handles 1–3 are
//! the devices the in-kernel suite gave it), a BAR unmapped by closing its handle, and a driver
//! that holds everything a device can give until it is killed.
use abi::Error::{self, *};
use abi::Handle;
use abi::device::{DeviceInfo, IrqMessage};
use abi::layout::{DEVICE_MMIO_BASE, DEVICE_MMIO_SIZE, DMA_BASE, PAGE_SIZE};
use abi::syscall::DEADLINE_NEVER;
use moxie_rt::{chan, dev};

/// The virtio-blk device, with every device right.
const BLK: Handle = Handle::new(1, 0);
/// The AHCI controller, with the config and MMIO rights only.
const AHCI: Handle = Handle::new(2, 0);
/// The host bridge, with no rights at all.
const BRIDGE: Handle = Handle::new(3, 0);

/// Each device call on `h` with otherwise sane arguments, in a fixed order.
fn every_call(h: Handle) -> [Result<(), Error>; 7] {
    let mut buf = [0u8; DeviceInfo::SIZE];
    [
        dev::info_raw(h.0 as u64, buf.as_mut_ptr() as u64, buf.len() as u64).map(|_| ()),
        dev::config_read(h, 0).map(|_| ()),
        dev::config_write(h, 4, 0x6),
        dev::map_bar(h, 4).map(|_| ()),
        dev::dma_alloc(h, 1).map(|_| ()),
        dev::dma_free(h, DMA_BASE),
        dev::irq_bind(h, Handle::PARENT),
    ]
}

/// A buffer in the module's read-only data.
fn read_only() -> u64 {
    static TEXT: [u8; DeviceInfo::SIZE] = [0; DeviceInfo::SIZE];
    TEXT.as_ptr() as u64
}

/// Every misuse of the device calls gets its documented error and changes nothing; returns the
/// number of the first check that failed, or 0.
pub fn hostile() -> i32 {
    let mut step = 0;
    let mut check = |ok: bool| {
        step += 1;
        if ok { Ok(()) } else { Err(step) }
    };
    let mut run = || -> Result<(), i32> {
        // Forged handles, a channel instead of a device, a device without rights.
        check(
            every_call(Handle(0x7777))
                .iter()
                .all(|r| *r == Err(InvalidHandle)),
        )?;
        check(
            every_call(Handle::PARENT)
                .iter()
                .all(|r| *r == Err(WrongType)),
        )?;
        check(every_call(BRIDGE).iter().all(|r| *r == Err(NoRights)))?;
        // The AHCI handle may look and map, but not allocate DMA or take interrupts.
        let ahci = every_call(AHCI);
        check(ahci[4] == Err(NoRights) && ahci[5] == Err(NoRights) && ahci[6] == Err(NoRights))?;
        // A closed handle is stale forever, even once its slot is reused.
        check(chan::close(BRIDGE).is_ok())?;
        check(every_call(BRIDGE).iter().all(|r| *r == Err(InvalidHandle)))?;
        let (x, _y) = chan::channel_create().map_err(|_| 100)?;
        check(x.index() == BRIDGE.index() && x != BRIDGE)?;
        check(dev::config_read(BRIDGE, 0) == Err(InvalidHandle))?;
        check(dev::config_read(x, 0) == Err(WrongType))?;

        // Its own description and configuration space.
        let info = dev::info(BLK).map_err(|_| 101)?;
        check(info.vendor == 0x1af4 && info.device == 0x1042 && info.msix_vectors > 0)?;
        check(dev::config_read(BLK, 0) == Ok(0x1042_1af4))?;
        let mut small = [0u8; 8];
        let len = DeviceInfo::SIZE as u64;
        check(dev::info_raw(1, small.as_mut_ptr() as u64, 8) == Err(TooBig))?;
        check(dev::info_raw(1, 0, len) == Err(BadAddress))?;
        check(dev::info_raw(1, 0xffff_8000_0000_0000, len) == Err(BadAddress))?;
        check(dev::info_raw(1, read_only(), len) == Err(BadAddress))?;
        // Offsets outside the 256 bytes, or not on a register boundary.
        for bad in [256, 2, 0x1001, u64::MAX] {
            check(dev::config_read(BLK, bad) == Err(Failed))?;
            check(dev::config_write(BLK, bad, 0) == Err(Failed))?;
        }
        // Only the command register is the driver's; the BARs and the rest stay put.
        let bar4 = dev::config_read(BLK, 0x20).map_err(|_| 102)?;
        check(dev::config_write(BLK, 0x20, 0xffff_ffff) == Err(NoRights))?;
        check(dev::config_write(BLK, 0, 0) == Err(NoRights))?;
        check(dev::config_write(BLK, 0x98, 0) == Err(NoRights))?;
        check(dev::config_read(BLK, 0x20) == Ok(bar4))?;
        check(dev::config_write(BLK, 4, 1 << 32) == Err(Failed))?;

        // BARs: out of range, absent, the upper half of a 64-bit BAR, all MSI-X, I/O ports.
        check(dev::map_bar(BLK, 6) == Err(Failed))?;
        check(dev::map_bar(BLK, u64::MAX) == Err(Failed))?;
        check(dev::map_bar(BLK, 0) == Err(NotFound))?;
        check(dev::map_bar(BLK, 5) == Err(NotFound))?;
        check(dev::map_bar(BLK, 1) == Err(NoRights))?;
        check(dev::map_bar(AHCI, 4) == Err(Failed))?;
        let va = dev::map_bar(BLK, 4).map_err(|_| 103)?;
        check((DEVICE_MMIO_BASE..DEVICE_MMIO_BASE + DEVICE_MMIO_SIZE).contains(&va))?;
        check(dev::map_bar(BLK, 4) == Ok(va))?;
        let abar = dev::map_bar(AHCI, 5).map_err(|_| 104)?;
        check(abar >= va + info.bars[4].size)?;

        // DMA: zero pages, too many at once, bad output pointers, the ledger.
        check(dev::dma_alloc(BLK, 0).err() == Some(Failed))?;
        check(dev::dma_alloc(BLK, abi::limits::MAX_DMA_PAGES + 1).err() == Some(TooBig))?;
        check(dev::dma_alloc_raw(1, 1, 0) == Err(BadAddress))?;
        check(dev::dma_alloc_raw(1, 1, read_only()) == Err(BadAddress))?;
        let per = abi::limits::MAX_DMA_PAGES;
        let fits = abi::limits::LEDGER_DMA_BYTES / (per * PAGE_SIZE);
        let mut first = None;
        for i in 0..fits {
            let r = dev::dma_alloc(BLK, per).map_err(|_| 200 + i as i32)?;
            check(r.phys != 0 && r.phys.is_multiple_of(PAGE_SIZE) && r.va >= DMA_BASE)?;
            first.get_or_insert(r);
        }
        check(dev::dma_alloc(BLK, 1).err() == Some(Overloaded))?;
        let first = first.ok_or(105)?;
        check(dev::dma_free(BLK, first.va + PAGE_SIZE) == Err(NotFound))?;
        check(dev::dma_free(BLK, 0x1234_5000) == Err(NotFound))?;
        check(dev::dma_free(BLK, first.va).is_ok())?;
        check(dev::dma_free(BLK, first.va) == Err(NotFound))?;
        let again = dev::dma_alloc(BLK, per).map_err(|_| 106)?;
        check(again.va == first.va)?;
        // Fresh DMA memory is zeroed and writable.
        let bytes = dma_bytes(again.va, (per * PAGE_SIZE) as usize);
        check(bytes.iter().all(|&b| b == 0))?;
        bytes.fill(0x5a);
        check(bytes.iter().all(|&b| b == 0x5a))?;

        // Interrupts: the endpoint must be one, with send and transfer; one binding per device.
        let (a, b) = chan::channel_create().map_err(|_| 107)?;
        check(dev::irq_bind(BLK, Handle(0x7777)) == Err(InvalidHandle))?;
        check(dev::irq_bind(BLK, AHCI) == Err(WrongType))?;
        check(dev::irq_bind(BLK, Handle::PARENT) == Err(NoRights))?;
        check(dev::irq_bind(AHCI, a) == Err(NoRights))?;
        check(chan::send(a, b"still here", &[]).is_ok())?;
        check(dev::irq_bind(BLK, a).is_ok())?;
        check(chan::send(a, b"x", &[]) == Err(InvalidHandle))?;
        let (c, _d) = chan::channel_create().map_err(|_| 108)?;
        check(dev::irq_bind(BLK, c) == Err(Failed))?;
        check(chan::send(c, b"kept", &[]).is_ok())?;
        let mut buf = [0u8; 16];
        check(chan::recv(b, &mut buf, &mut [], abi::syscall::DEADLINE_NOW) == Ok((10, 0)))?;
        check(IrqMessage::from_bytes(&buf[..10]).is_none())?;
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(step) => step,
    }
}

/// The DMA region at `va` as bytes.
fn dma_bytes(va: u64, len: usize) -> &'static mut [u8] {
    // SAFETY: `va..va+len` is a DMA region the kernel just mapped into this process, writable,
    // and nothing else refers to it.
    unsafe { core::slice::from_raw_parts_mut(va as *mut u8, len) }
}

/// Maps BAR 4, closes the device handle, then touches where the BAR was: the kernel unmapped
/// it, so this process dies with a page fault at that address.
pub fn close_unmaps() -> i32 {
    let Ok(va) = dev::map_bar(BLK, 4) else {
        return 1;
    };
    // SAFETY: `va` is the start of the mapped BAR: reading a register is harmless.
    let before = unsafe { core::ptr::read_volatile(va as *const u32) };
    let _ = core::hint::black_box(before);
    if chan::close(BLK).is_err() {
        return 2;
    }
    // SAFETY: deliberately not: the mapping is gone and the fault is the test.
    unsafe { core::ptr::read_volatile(va as *const u32) as i32 }
}

/// Takes everything the device gives — its register BAR, bus mastering, 1 MiB of DMA, the interrupt —
/// reports ready on the parent channel, and waits to be killed.
pub fn hold() -> i32 {
    if dev::map_bar(BLK, 4).is_err() {
        return 1;
    }
    // Memory decoding and bus mastering on, as a driver would.
    let Ok(command) = dev::config_read(BLK, 4) else {
        return 7;
    };
    if dev::config_write(BLK, 4, u64::from(command & 0xffff) | 0x6).is_err() {
        return 8;
    }
    for _ in 0..4 {
        if dev::dma_alloc(BLK, 64).is_err() {
            return 2;
        }
    }
    let Ok((a, b)) = chan::channel_create() else {
        return 3;
    };
    if dev::irq_bind(BLK, a).is_err() {
        return 4;
    }
    if chan::send(Handle::PARENT, b"holding", &[]).is_err() {
        return 5;
    }
    let mut buf = [0u8; 16];
    loop {
        if chan::recv(b, &mut buf, &mut [], DEADLINE_NEVER).is_err() {
            return 6;
        }
    }
}
