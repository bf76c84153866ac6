//! The boot bundle: the cpio "newc" archive the bootloader loaded as the first module, read with
//! the `cpio_reader` crate. Modules are looked up by path (`bin/init`) in an index that grows as
//! the archive is walked: `cpio_reader` sums every byte of every file it passes (about 2.3
//! instructions a byte, 15 M for the whole 6 MiB bundle), so the walk goes only as far as the
//! files asked for so far, and each entry is passed once per boot however often it is spawned.
//! The bundle never changes during a boot, so each file's CRC-32C (the module fingerprint,
//! `process::Module`) is computed once too.
use alloc::boxed::Box;
use alloc::vec::Vec;
use spin::{Mutex, Once};

/// A file of the bundle.
struct Entry {
    path: &'static str,
    bytes: &'static [u8],
    crc: Once<u32>,
}

/// The files met so far, in archive order, and the rest of the walk.
struct Index {
    met: Vec<&'static Entry>,
    rest: Box<dyn Iterator<Item = cpio_reader::Entry<'static>> + Send>,
}

static INDEX: Once<Mutex<Index>> = Once::new();

/// Records the bundle's bytes (from the first boot module).
pub fn init(bytes: &'static [u8]) {
    INDEX.call_once(|| {
        Mutex::new(Index {
            met: Vec::new(),
            rest: Box::new(cpio_reader::iter_files(bytes)),
        })
    });
}

/// The entry at `path`, walking the archive further if it was not met yet.
fn entry(path: &str) -> Option<&'static Entry> {
    let mut index = INDEX.get()?.lock();
    if let Some(e) = index.met.iter().find(|e| e.path == path) {
        return Some(e);
    }
    while let Some(e) = index.rest.next() {
        // Entries live for the boot (the bundle does): leaked once each, never freed.
        let e: &'static Entry = Box::leak(Box::new(Entry {
            path: e.name(),
            bytes: e.file(),
            crc: Once::new(),
        }));
        index.met.push(e);
        if e.path == path {
            return Some(e);
        }
    }
    None
}

/// The file at `path` in the bundle.
pub fn file(path: &str) -> Option<&'static [u8]> {
    entry(path).map(|e| e.bytes)
}

/// The CRC-32C of `bytes` when they are a file of the bundle (the very slice [`file`] gave),
/// computed at its first request; `None` for any other bytes.
pub fn crc_of(bytes: &[u8]) -> Option<u32> {
    let e = INDEX
        .get()?
        .lock()
        .met
        .iter()
        .copied()
        .find(|e| core::ptr::eq(e.bytes, bytes))?;
    Some(*e.crc.call_once(|| crate::arch::crc::crc32c(e.bytes)))
}
