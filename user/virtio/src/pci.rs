//! PCI configuration access for `virtio-drivers` through the device handle.
//!
//! The kernel lets a driver read its own function's 256 bytes and write only the command
//! register. `virtio-drivers` sizes BARs the standard way (write all ones, read the mask back,
//! write the old value), so writes to a BAR are played here instead: while a BAR is "being
//! sized", reading it returns the mask that its size (from `device_info`) implies.
use abi::Handle;
use abi::device::{BAR_COUNT, BarKind, DeviceInfo};
use moxie_rt::dev;
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};

/// Configuration access to the one function a device handle names.
pub struct ConfigAccess {
    dev: Handle,
    info: DeviceInfo,
    sizing: [bool; BAR_COUNT],
}

impl ConfigAccess {
    /// Access through `dev`, described by `info`.
    pub fn new(dev: Handle, info: DeviceInfo) -> ConfigAccess {
        ConfigAccess {
            dev,
            info,
            sizing: [false; BAR_COUNT],
        }
    }

    /// The function, as `virtio-drivers` names it.
    pub fn function(&self) -> DeviceFunction {
        DeviceFunction {
            bus: self.info.bus,
            device: self.info.dev,
            function: self.info.func,
        }
    }

    fn ours(&self, f: DeviceFunction) -> bool {
        f == self.function()
    }

    /// What BAR `i` reads as while it is being sized.
    fn size_mask(&self, i: usize) -> u32 {
        let bar = self.info.bars[i];
        let mask = |size: u64| !(size.max(1) - 1);
        match bar.kind {
            BarKind::None => 0,
            BarKind::Io => mask(bar.size) as u32 & 0xffff_fffc | 1,
            BarKind::Memory32 | BarKind::Memory64 => {
                let flags = if bar.kind == BarKind::Memory64 {
                    0b100
                } else {
                    0
                } | if bar.prefetchable { 0b1000 } else { 0 };
                mask(bar.size) as u32 & 0xffff_fff0 | flags
            }
            BarKind::Upper => match i.checked_sub(1).map(|j| self.info.bars[j]) {
                Some(low) => (mask(low.size) >> 32) as u32,
                None => 0,
            },
        }
    }
}

fn bar_index(offset: u8) -> Option<usize> {
    (0x10..0x28)
        .contains(&offset)
        .then(|| usize::from(offset - 0x10) / 4)
}

impl ConfigurationAccess for ConfigAccess {
    fn read_word(&self, f: DeviceFunction, offset: u8) -> u32 {
        if !self.ours(f) {
            return u32::MAX;
        }
        if let Some(i) = bar_index(offset)
            && self.sizing[i]
        {
            return self.size_mask(i);
        }
        dev::config_read(self.dev, u64::from(offset)).unwrap_or(u32::MAX)
    }

    fn write_word(&mut self, f: DeviceFunction, offset: u8, data: u32) {
        if !self.ours(f) {
            return;
        }
        match bar_index(offset) {
            Some(i) => self.sizing[i] = data == u32::MAX,
            // Anything but the command register is refused by the kernel, and the trait
            // cannot report it.
            None => {
                let _ = dev::config_write(self.dev, u64::from(offset), u64::from(data));
            }
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        ConfigAccess {
            dev: self.dev,
            info: self.info,
            sizing: self.sizing,
        }
    }
}
