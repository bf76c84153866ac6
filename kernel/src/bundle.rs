//! The boot bundle: the cpio "newc" archive the bootloader loaded as the first module, read with
//! the `cpio_reader` crate. Modules are looked up by path (`bin/init`) in an index of the
//! archive's entries made once at boot: walking the archive costs about 2.3 M instructions
//! with the probe in it (every header's fields are parsed again), and spawns and resumes look
//! modules up often. The bundle never changes during a boot, so each file's CRC-32C (the
//! module fingerprint, `process::Module`) is computed once too.
use alloc::vec::Vec;
use spin::Once;

/// A file of the bundle.
struct Entry {
    path: &'static str,
    bytes: &'static [u8],
    crc: Once<u32>,
}

/// Every file of the bundle, in archive order.
static INDEX: Once<Vec<Entry>> = Once::new();

/// Records the bundle's bytes (from the first boot module) and indexes its files.
pub fn init(bytes: &'static [u8]) {
    INDEX.call_once(|| {
        cpio_reader::iter_files(bytes)
            .map(|e| Entry {
                path: e.name(),
                bytes: e.file(),
                crc: Once::new(),
            })
            .collect()
    });
}

/// The file at `path` in the bundle.
pub fn file(path: &str) -> Option<&'static [u8]> {
    INDEX
        .get()?
        .iter()
        .find(|e| e.path == path)
        .map(|e| e.bytes)
}

/// The CRC-32C of `bytes` when they are a file of the bundle (the very slice [`file`] gave),
/// computed at its first request; `None` for any other bytes.
pub fn crc_of(bytes: &[u8]) -> Option<u32> {
    INDEX
        .get()?
        .iter()
        .find(|e| core::ptr::eq(e.bytes, bytes))
        .map(|e| *e.crc.call_once(|| crate::arch::crc::crc32c(e.bytes)))
}
