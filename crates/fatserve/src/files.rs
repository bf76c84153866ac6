//! The open-file cache: lamfat files kept open between requests, so that a read or write that
//! starts where the previous one on the same file ended continues from the cluster reached
//! instead of walking the cluster chain from the start of the file (lamfat's seek walks it from
//! the first cluster). Sequential reading or writing of a file thus costs time proportional to
//! its length, not to the square of it.
//!
//! What is cached: at most [`MAX_OPEN`] files, least recently used replaced first, each under
//! its canonical path (every component's stored long name, ASCII lower-cased: FAT compares
//! names without ASCII case), so the short-name alias of a path finds the same open file and
//! a file is never open twice. A request whose path is, without ASCII case, the canonical path
//! of an open file skips the path walk as well.
//!
//! Consistency: reads and writes of a cached file go through its one open file, which writes
//! its directory entry (size, modification time) after every write, so lookups, stats and
//! directory listings read the same entry from the block cache. Every request that changes
//! the tree or a size in another way (create, mkdir, remove, rename, truncate) closes every
//! open file first, and so does fsync (it remounts the volume); a failed read or write closes
//! its file. Nothing here touches durability: the data and entries go to the block cache as
//! before, and fsync still writes everything to the device.
use crate::Storage;
use crate::ops::{Entry, Fs, fs_error, resolve_keyed};
use alloc::string::String;
use alloc::vec::Vec;
use fsproto::Error;

/// A lamfat file on the mounted volume.
pub(crate) type File<'a> =
    lamfat::File<'a, Storage, lamfat::DefaultTimeProvider, lamfat::LossyOemCpConverter>;

/// Most files kept open.
pub const MAX_OPEN: usize = 8;

/// One open file.
pub(crate) struct OpenFile<'a> {
    /// The canonical path, ASCII lower-cased.
    key: String,
    /// The file's size (lamfat keeps it too, but does not show it).
    pub size: u64,
    /// When it was last used (a tick of [`OpenFiles::clock`]).
    used: u64,
    /// The file, positioned where the last request left it.
    pub file: File<'a>,
}

/// The open files of a mounted volume.
pub(crate) struct OpenFiles<'a> {
    files: Vec<OpenFile<'a>>,
    clock: u64,
}

impl<'a> OpenFiles<'a> {
    pub fn new() -> Self {
        OpenFiles {
            files: Vec::with_capacity(MAX_OPEN),
            clock: 0,
        }
    }

    /// Closes every open file (lamfat writes a changed directory entry when a file is
    /// dropped; after a write the entry is already written, so this writes nothing).
    pub fn clear(&mut self) {
        self.files.clear();
    }

    /// Runs `op` on the open file at checked path `p`, opening it first if needed. A failure
    /// closes the file: its position or lamfat's view of it may be half-changed.
    pub fn with<T>(
        &mut self,
        fs: &'a Fs,
        p: &str,
        op: impl FnOnce(&mut OpenFile<'a>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let i = self.open(fs, p)?;
        self.clock += 1;
        self.files[i].used = self.clock;
        let r = op(&mut self.files[i]);
        if r.is_err() {
            self.files.swap_remove(i);
        }
        r
    }

    /// The index of the open file for `p`.
    fn open(&mut self, fs: &'a Fs, p: &str) -> Result<usize, Error> {
        if let Some(i) = self.find(p) {
            return Ok(i);
        }
        let (entry, key): (Entry<'a>, String) = resolve_keyed(fs, p)?;
        if entry.is_dir() {
            return Err(Error::IsADirectory);
        }
        if let Some(i) = self.find(&key) {
            // Another spelling of an open file's path.
            return Ok(i);
        }
        if self.files.len() >= MAX_OPEN {
            let lru = (0..self.files.len())
                .min_by_key(|&i| self.files[i].used)
                .unwrap_or(0);
            self.files.swap_remove(lru);
        }
        self.files.push(OpenFile {
            key,
            size: entry.len(),
            used: 0,
            file: entry.to_file(),
        });
        Ok(self.files.len() - 1)
    }

    fn find(&self, p: &str) -> Option<usize> {
        self.files
            .iter()
            .position(|f| f.key.eq_ignore_ascii_case(p))
    }
}

/// Positions `f` at `offset`, which is at most its size. lamfat's seek does nothing when the
/// file is already there and walks the chain from the first cluster otherwise.
pub(crate) fn seek(f: &mut File<'_>, offset: u64) -> Result<(), Error> {
    lamfat::Seek::seek(f, lamfat::SeekFrom::Start(offset)).map_err(fs_error)?;
    Ok(())
}
