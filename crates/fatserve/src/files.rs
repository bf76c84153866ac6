//! The open-file cache: lamfat files kept open between requests, so that a write that starts
//! where the previous one on the same file ended continues from the cluster reached instead of
//! walking the cluster chain from the start of the file, and reads go through a map of the
//! file's clusters. Sequential reading or writing of a file thus costs time proportional to its
//! length, not to the square of it.
//!
//! What is cached: at most [`MAX_OPEN`] files, least recently used replaced first, each under
//! its canonical path (every component's stored long name, ASCII lower-cased: FAT compares
//! names without ASCII case), so the short-name alias of a path finds the same open file and
//! a file is never open twice. A request whose path is, without ASCII case, the canonical path
//! of an open file skips the path walk as well; a stat of a file opens it.
//!
//! Reads: the first read that needs it maps the file: one walk records where its clusters lie
//! on the device, as runs of neighbouring clusters (lamfat's `runs`), and every read the map
//! covers goes to the block cache from there, split into device requests by the driver itself,
//! each read in place into the reply (`OpenFile::read_framed`). The map stays right while the
//! file is open: its clusters only change by truncation, removal or renaming (which close the
//! file); a write that grows the file adds clusters after the mapped ones, which the next read
//! that needs them maps again. A file in more pieces than the map keeps is read through lamfat.
//!
//! Consistency: reads and writes of a cached file go through its one open file, which writes
//! its directory entry (size, modification time) after every write, so lookups, stats and
//! directory listings read the same entry from the block cache. Every request that changes
//! the tree or a size in another way (create, mkdir, remove, rename, truncate) closes every
//! open file first, and so does fsync (it remounts the volume); a failed read or write closes
//! its file. Nothing here touches durability: the data and entries go to the block cache, or
//! past it to the device, as before, and fsync still writes everything to the device.
use crate::ops::{Entry, Fs, fs_error, resolve_keyed, storage_error};
use crate::{SharedCache, Storage};
use alloc::string::String;
use alloc::vec::Vec;
use fsproto::Error;

/// A lamfat file on the mounted volume.
pub(crate) type File<'a> =
    lamfat::File<'a, Storage, lamfat::DefaultTimeProvider, lamfat::LossyOemCpConverter>;

/// Most files kept open.
pub const MAX_OPEN: usize = 8;
/// Most runs a file's map keeps (24 bytes each); a file in more pieces is mapped up to there.
const MAX_RUNS: usize = 1024;

/// What reads and writes that bypass lamfat need: the block cache.
pub(crate) struct Disk {
    cache: SharedCache,
}

impl Disk {
    /// Writes `frame[ROOM..]` at byte `pos` of the device through the cache
    /// (`BlockCache::write_through_framed`).
    pub fn write_framed(&self, pos: u64, frame: &mut [u8]) -> Result<(), crate::StorageError> {
        self.cache.borrow_mut().write_through_framed(pos, frame)
    }
}

/// Clusters of a file that lie one after another on the device.
#[derive(Clone, Copy)]
struct Run {
    /// Where the run starts in the file.
    file: u64,
    /// Where it starts on the device.
    disk: u64,
    /// Its bytes (whole clusters).
    len: u64,
}

/// One open file.
pub(crate) struct OpenFile<'a> {
    /// The canonical path, ASCII lower-cased.
    key: String,
    /// The file's size (lamfat keeps it too, but does not show it).
    pub size: u64,
    /// When it was last used (the open files' clock).
    used: u64,
    /// The file, positioned where the last request left it.
    pub file: File<'a>,
    /// Where its first clusters lie, once a random read has asked (empty before).
    map: Vec<Run>,
}

/// The open files of a mounted volume.
pub(crate) struct OpenFiles<'a> {
    files: Vec<OpenFile<'a>>,
    clock: u64,
    disk: Disk,
}

impl<'a> OpenFiles<'a> {
    /// No file open yet on a volume over `cache`.
    pub fn new(cache: SharedCache) -> Self {
        OpenFiles {
            files: Vec::with_capacity(MAX_OPEN),
            clock: 0,
            disk: Disk { cache },
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
        op: impl FnOnce(&mut OpenFile<'a>, &Disk) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let i = self.open(fs, p)?;
        self.clock += 1;
        self.files[i].used = self.clock;
        let r = op(&mut self.files[i], &self.disk);
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
        Ok(self.adopt(entry, key))
    }

    /// The index of the open file for the file `entry` found under canonical path `key`,
    /// opening it if it is not open yet (under another spelling of its path, say).
    pub fn adopt(&mut self, entry: Entry<'a>, key: String) -> usize {
        if let Some(i) = self.find(&key) {
            return i;
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
            map: Vec::new(),
        });
        self.files.len() - 1
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

/// The room a framed read leaves before its data for the device (`BlockDevice::read_framed`).
const ROOM: usize = blkproto::HEADER_LEN;

impl OpenFile<'_> {
    /// Fills `frame[ROOM..]` from `offset` (inside the file), through the map when it covers
    /// the bytes (mapping the file first if it does not), so the device reads into the frame
    /// in place; `frame[..ROOM]` may be overwritten.
    pub fn read_framed(&mut self, disk: &Disk, offset: u64, frame: &mut [u8]) -> Result<(), Error> {
        let len = (frame.len() - ROOM) as u64;
        if !self.covers(offset, len) {
            self.map()?;
        }
        if !self.covers(offset, len) {
            // More pieces than the map keeps: through lamfat.
            return self.read_unmapped(offset, &mut frame[ROOM..]);
        }
        // The runs from the last to the first: a device read may overwrite the room before its
        // bytes, which belong to the run before it (read later) or to the frame's own room.
        let end = offset + len;
        let first = self.map.partition_point(|r| r.file + r.len <= offset);
        let last = self.map.partition_point(|r| r.file < end);
        let mut cache = disk.cache.borrow_mut();
        for r in self.map[first..last].iter().rev() {
            let (from, to) = (offset.max(r.file), end.min(r.file + r.len));
            let (a, b) = ((from - offset) as usize, (to - offset) as usize);
            cache
                .read_through_framed(r.disk + (from - r.file), &mut frame[a..ROOM + b])
                .map_err(storage_error)?;
        }
        Ok(())
    }

    /// Whether the map covers `len` bytes from `offset`.
    fn covers(&self, offset: u64, len: u64) -> bool {
        self.map
            .last()
            .is_some_and(|r| offset + len <= r.file + r.len)
    }

    /// Fills `buf` from `offset` through lamfat (for a file in more pieces than the map
    /// keeps): from the file's position when the read continues there, else after a seek,
    /// which walks the chain from the start.
    fn read_unmapped(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        seek(&mut self.file, offset)?;
        let mut done = 0;
        while done < buf.len() {
            match lamfat::Read::read(&mut self.file, &mut buf[done..]).map_err(fs_error)? {
                // The cluster chain ends before the size says: the volume is inconsistent.
                0 => return Err(Error::Corrupt),
                n => done += n,
            }
        }
        Ok(())
    }

    /// Maps the clusters that hold the file's bytes: one walk of the chain, a run of
    /// neighbouring clusters at a time.
    fn map(&mut self) -> Result<(), Error> {
        self.map.clear();
        let mut file = 0;
        // The runs stop at the size, so a chain that loops cannot keep us here.
        for e in self.file.runs() {
            let e = e.map_err(fs_error)?;
            let len = u64::from(e.size);
            let full = self.map.len() == MAX_RUNS;
            match self.map.last_mut() {
                Some(r) if r.disk + r.len == e.offset => r.len += len,
                _ if full => break,
                _ => self.map.push(Run {
                    file,
                    disk: e.offset,
                    len,
                }),
            }
            file += len;
        }
        Ok(())
    }
}
