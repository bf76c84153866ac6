//! The boot bundle: the cpio "newc" archive the bootloader loaded as the first module, read with
//! the `cpio_reader` crate. Modules are looked up by path (`bin/init`).
use spin::Once;

static BUNDLE: Once<&'static [u8]> = Once::new();

/// Records the bundle's bytes (from the first boot module).
pub fn init(bytes: &'static [u8]) {
    BUNDLE.call_once(|| bytes);
}

/// The file at `path` in the bundle.
pub fn file(path: &str) -> Option<&'static [u8]> {
    let bytes = *BUNDLE.get()?;
    cpio_reader::iter_files(bytes)
        .find(|e| e.name() == path)
        .map(|e| e.file())
}
