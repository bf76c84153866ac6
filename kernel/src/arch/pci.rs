//! PCI configuration space through the legacy mechanism (ports `0xCF8`/`0xCFC`), which every
//! PC chipset and QEMU's `q35` provide; the first 256 bytes of each function are all a driver
//! needs. One lock serialises the address/data port pair across CPUs.
//!
//! Writes are narrow on purpose: the command register, BAR sizing (which puts the original value
//! back), and an MSI-X message-control word. Nothing here can move a BAR, so no caller can make a
//! device decode addresses that belong to RAM.
use spin::Mutex;
use x86_64::instructions::port::Port;

const ADDRESS: u16 = 0xcf8;
const DATA: u16 = 0xcfc;

static LOCK: Mutex<()> = Mutex::new(());

/// A PCI function: bus, device (0–31), function (0–7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    /// Bus number.
    pub bus: u8,
    /// Device number.
    pub dev: u8,
    /// Function number.
    pub func: u8,
}

impl Function {
    /// The function, if `dev` and `func` are in range.
    pub fn new(bus: u8, dev: u8, func: u8) -> Option<Function> {
        (dev < 32 && func < 8).then_some(Function { bus, dev, func })
    }

    fn address(self, offset: u8) -> u32 {
        1 << 31
            | u32::from(self.bus) << 16
            | u32::from(self.dev) << 11
            | u32::from(self.func) << 8
            | u32::from(offset & 0xfc)
    }
}

impl core::fmt::Display for Function {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.dev, self.func)
    }
}

fn read_locked(f: Function, offset: u8) -> u32 {
    // SAFETY: the configuration-address and -data ports; the caller holds `LOCK`, so no other
    // CPU moves the address between the two accesses. Reads have no side effects.
    unsafe {
        Port::<u32>::new(ADDRESS).write(f.address(offset));
        Port::<u32>::new(DATA).read()
    }
}

fn write_locked(f: Function, offset: u8, value: u32) {
    // SAFETY: as for `read_locked`; every caller in this module writes a register whose new
    // value cannot remap device memory (see the module comment).
    unsafe {
        Port::<u32>::new(ADDRESS).write(f.address(offset));
        Port::<u32>::new(DATA).write(value);
    }
}

/// Reads the 32-bit register at `offset` (rounded down to a multiple of 4).
pub fn read32(f: Function, offset: u8) -> u32 {
    let _g = LOCK.lock();
    read_locked(f, offset)
}

/// Command-register bits a driver may change: I/O and memory decoding, bus mastering (DMA),
/// and the legacy interrupt disable.
pub const COMMAND_DRIVER_BITS: u16 = 0b0000_0100_0000_0111;
/// Command register: bus master enable (the device may do DMA).
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Command register: memory space decoding.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Command register: legacy INTx disabled.
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;

/// Writes the command/status register: the command bits outside `keep_mask` keep their value;
/// status bits written as 1 are cleared (they are write-one-to-clear).
pub fn write_command(f: Function, value: u32, keep_mask: u16) {
    let _g = LOCK.lock();
    let old = read_locked(f, 4) as u16;
    let command = (old & !keep_mask) | (value as u16 & keep_mask);
    write_locked(f, 4, (value & 0xffff_0000) | u32::from(command));
}

/// What sizing a BAR found: its raw original value (the upper half too, for 64-bit BARs) and
/// the size mask read back.
#[derive(Clone, Copy, Debug, Default)]
pub struct BarProbe {
    /// The BAR's value (low dword, and the high dword for a 64-bit memory BAR).
    pub value: u64,
    /// The bits that stuck when all ones were written (same layout).
    pub mask: u64,
}

/// Sizes BAR `index` (0–5) the standard way, with decoding off meanwhile, and puts the original
/// value and the command register back.
pub fn probe_bar(f: Function, index: u8) -> BarProbe {
    let at = 0x10 + 4 * index.min(5);
    let _g = LOCK.lock();
    let command = read_locked(f, 4);
    write_locked(f, 4, command & !u32::from(COMMAND_MEMORY | 1) & 0xffff);
    let low = read_locked(f, at);
    write_locked(f, at, 0xffff_ffff);
    let low_mask = read_locked(f, at);
    write_locked(f, at, low);
    let mut probe = BarProbe {
        value: u64::from(low),
        mask: u64::from(low_mask),
    };
    if low & 1 == 0 && low & 0b110 == 0b100 && index < 5 {
        let high = read_locked(f, at + 4);
        write_locked(f, at + 4, 0xffff_ffff);
        let high_mask = read_locked(f, at + 4);
        write_locked(f, at + 4, high);
        probe.value |= u64::from(high) << 32;
        probe.mask |= u64::from(high_mask) << 32;
    }
    write_locked(f, 4, command & 0xffff);
    probe
}

/// Writes the message-control word of the MSI-X capability at `cap` (enable, function mask);
/// the table entries themselves live in device memory.
pub fn write_msix_control(f: Function, cap: u8, control: u16) {
    let _g = LOCK.lock();
    let dword = read_locked(f, cap);
    write_locked(f, cap, (dword & 0xffff) | u32::from(control) << 16);
}
