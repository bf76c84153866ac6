//! The boot bundle: the cpio "newc" archive the bootloader loaded as the first module, read with
//! the `cpio_reader` crate. Modules are looked up by path (`bin/init`) in an index of the
//! archive's entries made once at boot: walking the archive costs about 2.3 M instructions
//! with the probe in it (every header's fields are parsed again), and spawns and resumes look
//! modules up often.
use alloc::vec::Vec;
use spin::Once;

/// Every file of the bundle: (path, bytes), in archive order.
static INDEX: Once<Vec<(&'static str, &'static [u8])>> = Once::new();

/// Records the bundle's bytes (from the first boot module) and indexes its files.
pub fn init(bytes: &'static [u8]) {
    INDEX.call_once(|| {
        cpio_reader::iter_files(bytes)
            .map(|e| (e.name(), e.file()))
            .collect()
    });
}

/// The file at `path` in the bundle.
pub fn file(path: &str) -> Option<&'static [u8]> {
    INDEX
        .get()?
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, bytes)| *bytes)
}
