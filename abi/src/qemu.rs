//! How moxie stops QEMU: the `isa-debug-exit` device at I/O port `0xf4`.
//!
//! Writing a value `v` to the port makes QEMU exit with status `(v << 1) | 1`. The harness in
//! `xtask` maps the statuses back to outcomes.

/// The I/O port of the `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Why the machine stops; the value written to the debug-exit port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Orderly power-off, or every in-kernel test passed.
    Success = 0x10,
    /// A kernel bug: an unexpected exception or a panic (the report is on the serial console).
    Failure = 0x11,
    /// The stub refused to boot (for example a corrupt compressed core).
    BootFailure = 0x12,
}

impl ExitCode {
    /// The status QEMU's process exits with after this code is written.
    pub const fn qemu_status(self) -> i32 {
        ((self as u32 as i32) << 1) | 1
    }
}

/// Size of the scratch disk the test harness attaches as a virtio-blk device (8 MiB).
pub const SCRATCH_DISK_BYTES: u64 = 8 << 20;

/// Byte `offset` (0–511) of sector `sector` of a fresh scratch disk: each sector starts with
/// `MOXIEBLK` and its number (little-endian), then a pattern that differs per sector, so a read
/// of the wrong sector or a shifted buffer shows.
pub const fn scratch_disk_byte(sector: u64, offset: usize) -> u8 {
    const MAGIC: &[u8; 8] = b"MOXIEBLK";
    if offset < 8 {
        MAGIC[offset]
    } else if offset < 16 {
        (sector >> ((offset - 8) * 8)) as u8
    } else {
        (sector.wrapping_mul(31) as u8) ^ (offset as u8).wrapping_mul(7)
    }
}

/// Where the block-driver case writes on the scratch disk (sectors), and how many; the harness
/// finds [`scratch_written_byte`] there in the image file after the boot.
pub const SCRATCH_WRITE_AT: (u64, u64) = (2000, 8);

/// Byte `i` of what the block-driver case writes at [`SCRATCH_WRITE_AT`].
pub const fn scratch_written_byte(i: usize) -> u8 {
    (i.wrapping_mul(13) + 5) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_distinct_and_never_zero_or_one() {
        let s = [
            ExitCode::Success.qemu_status(),
            ExitCode::Failure.qemu_status(),
            ExitCode::BootFailure.qemu_status(),
        ];
        assert_eq!(s, [33, 35, 37]);
        // 0 and 1 are QEMU's own exits (normal quit, error); ours must not collide with them.
        assert!(s.iter().all(|&v| v > 1));
    }

    #[test]
    fn scratch_sectors_differ() {
        let sector = |s: u64| -> [u8; 512] { core::array::from_fn(|i| scratch_disk_byte(s, i)) };
        assert_eq!(&sector(3)[..8], b"MOXIEBLK");
        assert_eq!(sector(0x0102)[8..16], [2, 1, 0, 0, 0, 0, 0, 0]);
        assert_ne!(sector(1)[16..], sector(2)[16..]);
    }
}
