//! A virtio-blk device on the modern PCI transport that sleeps on its interrupt channel while
//! the device works: each read or write is submitted without blocking, polled briefly, and then
//! waited for on the channel the kernel sends the device's MSI-X interrupts to.
use crate::hal::{self, MoxieHal};
use crate::pci::ConfigAccess;
use abi::Handle;
use abi::device::IrqMessage;
use abi::syscall::DEADLINE_NOW;
use moxie_rt::{chan, dev};
use virtio_drivers::device::blk::{BlkReq, BlkResp, SECTOR_SIZE, VirtIOBlk};
use virtio_drivers::transport::pci::bus::PciRoot;
use virtio_drivers::transport::pci::{PciTransport, VirtioPciError};

/// What the device or `virtio-drivers` reports for a failed request.
pub use virtio_drivers::Error as DeviceError;

/// Why a block device could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// A system call refused.
    Sys(abi::Error),
    /// The device's BARs or access could not be set up.
    Hal(hal::OpenError),
    /// The PCI transport refused the device.
    Transport(VirtioPciError),
    /// The virtio-blk initialisation failed.
    Virtio(virtio_drivers::Error),
    /// The queue's interrupt could not be routed to an MSI-X entry.
    NoInterruptRoute,
}

impl From<abi::Error> for OpenError {
    fn from(e: abi::Error) -> Self {
        OpenError::Sys(e)
    }
}

/// Checks of the used ring before sleeping on the interrupt channel.
const POLLS: u32 = 100;
/// Longest sleep on the interrupt channel before looking at the ring again (a lost message
/// costs at most this).
const WAIT_NS: u64 = 100_000_000;

/// Counters of how completions were noticed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Requests completed.
    pub requests: u64,
    /// Interrupt messages received.
    pub interrupts: u64,
    /// Completions found while polling, before any sleep.
    pub polled: u64,
    /// Sleeps that ended without an interrupt message.
    pub timeouts: u64,
}

/// An open virtio-blk device.
pub struct Block {
    blk: VirtIOBlk<MoxieHal, PciTransport>,
    irq: Handle,
    req: BlkReq,
    resp: BlkResp,
    stats: Stats,
}

/// Offset of `queue_select` in the common configuration structure (virtio 1.x, 4.1.4.3).
const QUEUE_SELECT: u64 = 22;
/// Offset of `queue_msix_vector`.
const QUEUE_MSIX_VECTOR: u64 = 26;

/// Where the device's common configuration structure is mapped, from its vendor capability.
fn common_cfg(access: &ConfigAccess) -> Option<u64> {
    use virtio_drivers::transport::pci::bus::ConfigurationAccess;
    const VENDOR: u32 = 0x09;
    const COMMON_CFG: u32 = 1;
    let f = access.function();
    let mut at = (access.read_word(f, 0x34) & 0xfc) as u8;
    for _ in 0..48 {
        if at < 0x40 {
            return None;
        }
        let head = access.read_word(f, at);
        if head & 0xff == VENDOR && (head >> 24) & 0xff == COMMON_CFG {
            let bar = (access.read_word(f, at + 4) & 0xff) as usize;
            let offset = u64::from(access.read_word(f, at + 8));
            let length = u64::from(access.read_word(f, at + 12));
            let (va, size) = hal::bar(bar)?;
            return (length >= QUEUE_MSIX_VECTOR + 2 && offset + length <= size)
                .then_some(va + offset);
        }
        at = ((head >> 8) & 0xfc) as u8;
    }
    None
}

/// Sends queue `queue`'s interrupts to MSI-X table entry `entry` (the kernel points every entry
/// at the vector it routes to this driver); true when the device accepted it.
fn route_queue(common: u64, queue: u16, entry: u16) -> bool {
    let select = (common + QUEUE_SELECT) as *mut u16;
    let vector = (common + QUEUE_MSIX_VECTOR) as *mut u16;
    // SAFETY: `common` lies in the device BAR the kernel mapped for this process (checked by
    // `common_cfg` against the BAR's size); these two 16-bit registers are the ones the virtio
    // specification defines at these offsets, and no Rust reference covers device memory.
    unsafe {
        core::ptr::write_volatile(select, queue);
        core::ptr::write_volatile(vector, entry);
        core::ptr::read_volatile(vector) == entry
    }
}

fn check_len(len: usize) -> Result<(), virtio_drivers::Error> {
    if len == 0 || !len.is_multiple_of(SECTOR_SIZE) {
        Err(virtio_drivers::Error::InvalidParam)
    } else {
        Ok(())
    }
}

impl Block {
    /// Opens the virtio-blk device `dev` names: maps its BARs, turns on decoding and bus
    /// mastering, initialises it, binds its interrupt and routes its request queue there.
    pub fn open(dev: Handle) -> Result<Block, OpenError> {
        let info = hal::open(dev).map_err(OpenError::Hal)?;
        let command = dev::config_read(dev, 4)?;
        dev::config_write(dev, 4, u64::from(command & 0xffff) | 0b110)?;
        let access = ConfigAccess::new(dev, info);
        let f = access.function();
        let common = common_cfg(&access).ok_or(OpenError::NoInterruptRoute)?;
        let mut root = PciRoot::new(access);
        let transport =
            PciTransport::new::<MoxieHal, _>(&mut root, f).map_err(OpenError::Transport)?;
        let blk = VirtIOBlk::new(transport).map_err(OpenError::Virtio)?;
        let (give, keep) = chan::channel_create()?;
        dev::irq_bind(dev, give)?;
        if !route_queue(common, 0, 0) {
            return Err(OpenError::NoInterruptRoute);
        }
        Ok(Block {
            blk,
            irq: keep,
            req: BlkReq::default(),
            resp: BlkResp::default(),
            stats: Stats::default(),
        })
    }

    /// The device's size in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.blk.capacity()
    }

    /// True when the device refuses writes.
    pub fn readonly(&self) -> bool {
        self.blk.readonly()
    }

    /// How completions were noticed so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Returns once the request `token` is in the used ring. It never gives up: the request's
    /// buffers stay lent to the device until then.
    fn wait(&mut self, token: u16) {
        let mut polls = 0;
        let mut msg = [0u8; IrqMessage::SIZE];
        loop {
            if self.blk.peek_used() == Some(token) {
                if polls < POLLS {
                    self.stats.polled += 1;
                }
                self.stats.requests += 1;
                return;
            }
            if polls < POLLS {
                polls += 1;
                core::hint::spin_loop();
                continue;
            }
            let deadline = moxie_rt::now() + WAIT_NS;
            match chan::recv(self.irq, &mut msg, &mut [], deadline) {
                Ok(_) => {
                    self.stats.interrupts += 1;
                    // Later interrupts of the same burst carry no news: drop them.
                    while chan::recv(self.irq, &mut msg, &mut [], DEADLINE_NOW).is_ok() {
                        self.stats.interrupts += 1;
                    }
                }
                Err(abi::Error::Timeout) => self.stats.timeouts += 1,
                // The interrupt channel is gone (never expected): fall back to sleeping.
                Err(_) => moxie_rt::sleep_until(moxie_rt::now() + 1_000_000),
            }
        }
    }

    /// Reads `buf.len()` bytes (whole sectors) from `sector` on.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), virtio_drivers::Error> {
        check_len(buf.len())?;
        // SAFETY: `self.req`, `buf` and `self.resp` stay borrowed by this call until `wait`
        // has seen the request complete, and nothing else touches them meanwhile.
        let token = unsafe {
            self.blk
                .read_blocks_nb(sector as usize, &mut self.req, buf, &mut self.resp)?
        };
        self.wait(token);
        // SAFETY: the same buffers as were passed with `token`.
        unsafe {
            self.blk
                .complete_read_blocks(token, &self.req, buf, &mut self.resp)
        }
    }

    /// Writes `buf` (whole sectors) from `sector` on.
    pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), virtio_drivers::Error> {
        check_len(buf.len())?;
        // SAFETY: as in `read`.
        let token = unsafe {
            self.blk
                .write_blocks_nb(sector as usize, &mut self.req, buf, &mut self.resp)?
        };
        self.wait(token);
        // SAFETY: the same buffers as were passed with `token`.
        unsafe {
            self.blk
                .complete_write_blocks(token, &self.req, buf, &mut self.resp)
        }
    }

    /// Makes completed writes durable. `virtio-drivers` has no non-blocking flush, so this one
    /// polls the ring until the device answers (flushes are rare: at a client's fsync).
    pub fn flush(&mut self) -> Result<(), virtio_drivers::Error> {
        self.blk.flush()
    }
}
