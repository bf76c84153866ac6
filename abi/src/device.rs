//! What a user-space driver learns about its device and receives from the kernel, as bytes:
//! the device description (`device_info`), a DMA region (`dma_alloc`) and the interrupt message
//! (the channel message the kernel sends for each interrupt after `irq_bind`).
//!
//! All fields are little-endian at fixed offsets, so both ends parse them without `unsafe`.

/// Bytes of a function's PCI configuration space a driver can read (the legacy 256).
pub const CONFIG_SPACE_SIZE: u64 = 256;
/// BARs of a PCI function (type 0 header).
pub const BAR_COUNT: usize = 6;

/// What one BAR is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u32)]
pub enum BarKind {
    /// Not implemented by the device (or not assigned an address).
    #[default]
    None = 0,
    /// Memory, 32-bit address.
    Memory32 = 1,
    /// Memory, 64-bit address (the next BAR is its upper half).
    Memory64 = 2,
    /// I/O ports (`map_bar` refuses these).
    Io = 3,
    /// The upper half of the 64-bit BAR before it.
    Upper = 4,
}

impl BarKind {
    fn from_u32(v: u32) -> Option<BarKind> {
        Some(match v {
            0 => BarKind::None,
            1 => BarKind::Memory32,
            2 => BarKind::Memory64,
            3 => BarKind::Io,
            4 => BarKind::Upper,
            _ => return None,
        })
    }

    /// True for a memory BAR (one that `map_bar` maps).
    pub fn is_memory(self) -> bool {
        matches!(self, BarKind::Memory32 | BarKind::Memory64)
    }
}

/// One BAR as the kernel found it at boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bar {
    /// What it is.
    pub kind: BarKind,
    /// Prefetchable memory.
    pub prefetchable: bool,
    /// Its physical (bus) address.
    pub phys: u64,
    /// Its size in bytes (a power of two).
    pub size: u64,
}

/// A device as `device_info` describes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// PCI vendor id.
    pub vendor: u16,
    /// PCI device id.
    pub device: u16,
    /// Class, subclass, programming interface, revision.
    pub class: [u8; 4],
    /// Bus, device, function.
    pub bus: u8,
    /// Device number on the bus.
    pub dev: u8,
    /// Function number.
    pub func: u8,
    /// MSI-X table entries (0: the function has no MSI-X, so `irq_bind` is refused).
    pub msix_vectors: u16,
    /// Its BARs.
    pub bars: [Bar; BAR_COUNT],
}

impl DeviceInfo {
    /// Its size on the wire.
    pub const SIZE: usize = 16 + BAR_COUNT * 24;

    /// The description as bytes.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..2].copy_from_slice(&self.vendor.to_le_bytes());
        b[2..4].copy_from_slice(&self.device.to_le_bytes());
        b[4..8].copy_from_slice(&self.class);
        b[8] = self.bus;
        b[9] = self.dev;
        b[10] = self.func;
        b[12..14].copy_from_slice(&self.msix_vectors.to_le_bytes());
        for (i, bar) in self.bars.iter().enumerate() {
            let at = 16 + i * 24;
            b[at..at + 4].copy_from_slice(&(bar.kind as u32).to_le_bytes());
            b[at + 4..at + 8].copy_from_slice(&u32::from(bar.prefetchable).to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&bar.phys.to_le_bytes());
            b[at + 16..at + 24].copy_from_slice(&bar.size.to_le_bytes());
        }
        b
    }

    /// Parses a description; `None` for anything malformed.
    pub fn from_bytes(b: &[u8]) -> Option<DeviceInfo> {
        if b.len() != Self::SIZE {
            return None;
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from(u32_at(i)) | u64::from(u32_at(i + 4)) << 32;
        let mut bars = [Bar::default(); BAR_COUNT];
        for (i, bar) in bars.iter_mut().enumerate() {
            let at = 16 + i * 24;
            *bar = Bar {
                kind: BarKind::from_u32(u32_at(at))?,
                prefetchable: u32_at(at + 4) != 0,
                phys: u64_at(at + 8),
                size: u64_at(at + 16),
            };
        }
        Some(DeviceInfo {
            vendor: u16_at(0),
            device: u16_at(2),
            class: [b[4], b[5], b[6], b[7]],
            bus: b[8],
            dev: b[9],
            func: b[10],
            msix_vectors: u16_at(12),
            bars,
        })
    }
}

/// What `dma_alloc` writes through its output pointer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaRegion {
    /// Where the memory is mapped in the caller (in the DMA window).
    pub va: u64,
    /// Its physical address (what the device is told).
    pub phys: u64,
}

impl DmaRegion {
    /// Its size on the wire.
    pub const SIZE: usize = 16;

    /// As bytes.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..8].copy_from_slice(&self.va.to_le_bytes());
        b[8..].copy_from_slice(&self.phys.to_le_bytes());
        b
    }

    /// Parses one.
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> DmaRegion {
        let mut va = [0u8; 8];
        let mut phys = [0u8; 8];
        va.copy_from_slice(&b[..8]);
        phys.copy_from_slice(&b[8..]);
        DmaRegion {
            va: u64::from_le_bytes(va),
            phys: u64::from_le_bytes(phys),
        }
    }
}

/// The message the kernel sends on the bound endpoint for each device interrupt. When the
/// driver's buffer is full the message is dropped (the count still advances), so a driver
/// handles every completion it finds, not one per message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqMessage {
    /// Interrupts taken since `irq_bind`, this one included.
    pub count: u64,
}

impl IrqMessage {
    /// Marks an interrupt message ("IRQ!").
    pub const MAGIC: u32 = u32::from_le_bytes(*b"IRQ!");
    /// Its size on the wire.
    pub const SIZE: usize = 16;

    /// As bytes.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..4].copy_from_slice(&Self::MAGIC.to_le_bytes());
        b[8..].copy_from_slice(&self.count.to_le_bytes());
        b
    }

    /// Parses one; `None` for anything else.
    pub fn from_bytes(b: &[u8]) -> Option<IrqMessage> {
        if b.len() != Self::SIZE || b[..4] != Self::MAGIC.to_le_bytes() {
            return None;
        }
        let mut c = [0u8; 8];
        c.copy_from_slice(&b[8..]);
        Some(IrqMessage {
            count: u64::from_le_bytes(c),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_info_round_trips() {
        let mut d = DeviceInfo {
            vendor: 0x1af4,
            device: 0x1042,
            class: [1, 0, 0, 1],
            bus: 0,
            dev: 3,
            func: 0,
            msix_vectors: 2,
            bars: [Bar::default(); BAR_COUNT],
        };
        d.bars[1] = Bar {
            kind: BarKind::Memory32,
            prefetchable: false,
            phys: 0xfebd_1000,
            size: 0x1000,
        };
        d.bars[4] = Bar {
            kind: BarKind::Memory64,
            prefetchable: true,
            phys: 0xfe00_0000,
            size: 0x4000,
        };
        d.bars[5].kind = BarKind::Upper;
        assert_eq!(DeviceInfo::from_bytes(&d.to_bytes()), Some(d));
        assert_eq!(DeviceInfo::from_bytes(&d.to_bytes()[1..]), None);
        let mut bad = d.to_bytes();
        bad[16] = 9;
        assert_eq!(DeviceInfo::from_bytes(&bad), None);
    }

    #[test]
    fn dma_region_and_irq_message_round_trip() {
        let r = DmaRegion {
            va: 0x6100_0000_0000,
            phys: 0x123_4000,
        };
        assert_eq!(DmaRegion::from_bytes(&r.to_bytes()), r);
        let m = IrqMessage { count: 7 };
        assert_eq!(IrqMessage::from_bytes(&m.to_bytes()), Some(m));
        assert_eq!(IrqMessage::from_bytes(&[0; 16]), None);
        assert_eq!(IrqMessage::from_bytes(&m.to_bytes()[..8]), None);
    }
}
