//! The block cache between the FAT code and the block device: fixed-size blocks of sectors,
//! least-recently-used replacement, write-back. Dirty blocks reach the device when they are
//! evicted or on [`BlockCache::flush`], which then flushes the device, so after a flush every
//! write is durable. A sequential run of misses reads ahead in one device request.
//!
//! [`Storage`] is the byte-addressed view lamfat reads and writes (its `Read + Write + Seek`);
//! several can share one cache, which is what lets the server unmount and remount the volume on
//! fsync without giving up its cached blocks.
use crate::BlockDevice;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use blkproto::SECTOR_SIZE;
use core::cell::RefCell;

/// Sectors per cache block.
const BLOCK_SECTORS: u64 = 8;
/// Bytes per cache block.
pub const BLOCK_BYTES: usize = BLOCK_SECTORS as usize * SECTOR_SIZE;
/// Most blocks one device request moves (the block protocol's 32 KiB).
const MAX_RUN: u64 = (blkproto::MAX_DATA / BLOCK_BYTES) as u64;
/// Marks an empty slot.
const EMPTY: u64 = u64::MAX;

/// Why storage access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageError {
    /// The device answered with an error.
    Device(blkproto::Error),
    /// Access past the end of the device (the volume's structures point outside it).
    UnexpectedEof,
    /// A write made no progress.
    WriteZero,
}

impl lamfat::IoError for StorageError {
    fn is_interrupted(&self) -> bool {
        false
    }

    fn new_unexpected_eof_error() -> Self {
        StorageError::UnexpectedEof
    }

    fn new_write_zero_error() -> Self {
        StorageError::WriteZero
    }
}

struct Slot {
    block: u64,
    dirty: bool,
    used: u64,
    data: Vec<u8>,
}

/// Counters, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Block lookups answered from the cache.
    pub hits: u64,
    /// Block lookups that went to the device.
    pub misses: u64,
    /// Device read requests.
    pub device_reads: u64,
    /// Device write requests.
    pub device_writes: u64,
    /// Device flush requests.
    pub device_flushes: u64,
}

/// A write-back LRU cache of blocks over a [`BlockDevice`].
pub struct BlockCache<D: BlockDevice + ?Sized> {
    slots: Vec<Slot>,
    sectors: u64,
    clock: u64,
    last_miss: u64,
    stats: CacheStats,
    // Last, so that a cache can be seen as `BlockCache<dyn BlockDevice>`.
    dev: D,
}

impl<D: BlockDevice> BlockCache<D> {
    /// A cache of `blocks` blocks (at least 2·[`MAX_RUN`]) over `dev`, whose size it asks once.
    pub fn new(mut dev: D, blocks: usize) -> Result<Self, StorageError> {
        let sectors = dev.sectors().map_err(StorageError::Device)?;
        let blocks = blocks.max(2 * MAX_RUN as usize);
        let slots = (0..blocks)
            .map(|_| Slot {
                block: EMPTY,
                dirty: false,
                used: 0,
                data: vec![0; BLOCK_BYTES],
            })
            .collect();
        Ok(BlockCache {
            slots,
            sectors,
            clock: 0,
            last_miss: EMPTY,
            stats: CacheStats::default(),
            dev,
        })
    }

    /// The device, giving up the cache (dirty blocks are not written).
    pub fn into_device(self) -> D {
        self.dev
    }
}

impl<D: BlockDevice + ?Sized> BlockCache<D> {
    /// The device's size in bytes.
    pub fn len(&self) -> u64 {
        self.sectors * SECTOR_SIZE as u64
    }

    /// Whether the device has no sectors.
    pub fn is_empty(&self) -> bool {
        self.sectors == 0
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// The device, after a [`flush`](Self::flush) if the caller wants the cache's writes on it.
    pub fn device(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Sectors in `block` (the device's last block may be short).
    fn sectors_in(&self, block: u64) -> u64 {
        (self.sectors - block * BLOCK_SECTORS).min(BLOCK_SECTORS)
    }

    fn find(&self, block: u64) -> Option<usize> {
        self.slots.iter().position(|s| s.block == block)
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn write_back(&mut self, i: usize) -> Result<(), StorageError> {
        let s = &self.slots[i];
        if s.dirty && s.block != 0 {
            // Block 0 holds the boot sector with FAT's dirty flag, which lamfat sets in the cache
            // with its first change: the device gets it before any other change, so a crash
            // between two fsyncs leaves a volume marked dirty.
            if let Some(b0) = self.find(0).filter(|&b0| self.slots[b0].dirty) {
                self.write_back(b0)?;
            }
        }
        let s = &self.slots[i];
        if s.dirty {
            let n = self.sectors_in(s.block) as usize * SECTOR_SIZE;
            self.stats.device_writes += 1;
            self.dev
                .write(s.block * BLOCK_SECTORS, &s.data[..n])
                .map_err(StorageError::Device)?;
            self.slots[i].dirty = false;
        }
        Ok(())
    }

    /// A slot to reuse: the least recently used, written back first if dirty.
    fn victim(&mut self) -> Result<usize, StorageError> {
        let i = (0..self.slots.len())
            .min_by_key(|&i| (self.slots[i].block != EMPTY, self.slots[i].used))
            .unwrap_or(0);
        self.write_back(i)?;
        self.slots[i].block = EMPTY;
        Ok(i)
    }

    /// The slot holding `block`, loading it (and, on a sequential miss, the blocks after it)
    /// unless `overwrite` says the caller replaces all of it.
    fn slot(&mut self, block: u64, overwrite: bool) -> Result<usize, StorageError> {
        if let Some(i) = self.find(block) {
            self.stats.hits += 1;
            self.slots[i].used = self.tick();
            return Ok(i);
        }
        self.stats.misses += 1;
        let blocks = self.sectors.div_ceil(BLOCK_SECTORS);
        if block >= blocks {
            return Err(StorageError::UnexpectedEof);
        }
        if overwrite {
            let i = self.victim()?;
            let used = self.tick();
            let s = &mut self.slots[i];
            (s.block, s.used) = (block, used);
            return Ok(i);
        }
        // A miss right after the previous one is a sequential scan: read the following
        // uncached blocks in the same request.
        let mut run = 1;
        if self.last_miss != EMPTY && block == self.last_miss + 1 {
            while run < MAX_RUN && block + run < blocks && self.find(block + run).is_none() {
                run += 1;
            }
        }
        self.last_miss = block + run - 1;
        let sectors = (self.sectors - block * BLOCK_SECTORS).min(run * BLOCK_SECTORS);
        let mut buf = vec![0u8; sectors as usize * SECTOR_SIZE];
        self.stats.device_reads += 1;
        self.dev
            .read(block * BLOCK_SECTORS, &mut buf)
            .map_err(StorageError::Device)?;
        let mut first = 0;
        for (k, chunk) in buf.chunks(BLOCK_BYTES).enumerate() {
            let i = self.victim()?;
            let used = self.tick();
            let s = &mut self.slots[i];
            s.data[..chunk.len()].copy_from_slice(chunk);
            s.data[chunk.len()..].fill(0);
            (s.block, s.used) = (block + k as u64, used);
            if k == 0 {
                first = i;
            }
        }
        // The requested block is the most recently used of the run.
        self.slots[first].used = self.tick();
        Ok(first)
    }

    /// Copies bytes from `pos` into `buf`; fewer at the end of the device.
    pub fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        let len = self.len();
        let n = (buf.len() as u64).min(len.saturating_sub(pos)) as usize;
        let mut done = 0;
        while done < n {
            let p = pos + done as u64;
            let (block, off) = (p / BLOCK_BYTES as u64, (p % BLOCK_BYTES as u64) as usize);
            let take = (n - done).min(BLOCK_BYTES - off);
            let i = self.slot(block, false)?;
            buf[done..done + take].copy_from_slice(&self.slots[i].data[off..off + take]);
            done += take;
        }
        Ok(n)
    }

    /// Copies `buf` to `pos` in the cache (the device gets it on eviction or flush); fewer
    /// bytes at the end of the device.
    pub fn write_at(&mut self, pos: u64, buf: &[u8]) -> Result<usize, StorageError> {
        let len = self.len();
        let n = (buf.len() as u64).min(len.saturating_sub(pos)) as usize;
        let mut done = 0;
        while done < n {
            let p = pos + done as u64;
            let (block, off) = (p / BLOCK_BYTES as u64, (p % BLOCK_BYTES as u64) as usize);
            let take = (n - done).min(BLOCK_BYTES - off);
            let whole = off == 0 && take == self.sectors_in(block) as usize * SECTOR_SIZE;
            let i = self.slot(block, whole)?;
            let s = &mut self.slots[i];
            s.data[off..off + take].copy_from_slice(&buf[done..done + take]);
            s.dirty = true;
            done += take;
        }
        Ok(n)
    }

    /// Writes every dirty block (in block order) and flushes the device.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        let mut dirty: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].dirty)
            .collect();
        dirty.sort_by_key(|&i| self.slots[i].block);
        for i in dirty {
            self.write_back(i)?;
        }
        self.stats.device_flushes += 1;
        self.dev.flush().map_err(StorageError::Device)
    }

    /// Forgets every cached block without writing dirty ones back (what a crash loses).
    pub fn discard(&mut self) {
        for s in &mut self.slots {
            s.block = EMPTY;
            s.dirty = false;
        }
    }
}

/// A block cache shared between the server and the volume, its device's type erased so that
/// the mounted volume, and the open files that borrow it, have one concrete type.
pub type SharedCache = Rc<RefCell<BlockCache<dyn BlockDevice>>>;

/// The byte-addressed view of a shared [`BlockCache`] that lamfat reads and writes.
pub struct Storage {
    cache: SharedCache,
    pos: u64,
}

impl Storage {
    /// A view at position 0.
    pub fn new(cache: SharedCache) -> Self {
        Storage { cache, pos: 0 }
    }
}

impl lamfat::IoBase for Storage {
    type Error = StorageError;
}

impl lamfat::Read for Storage {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, StorageError> {
        let n = self.cache.borrow_mut().read_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl lamfat::Write for Storage {
    fn write(&mut self, buf: &[u8]) -> Result<usize, StorageError> {
        let n = self.cache.borrow_mut().write_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        // Durability is the server's fsync; lamfat's flushes need only reach the cache.
        Ok(())
    }
}

impl lamfat::Seek for Storage {
    fn seek(&mut self, pos: lamfat::SeekFrom) -> Result<u64, StorageError> {
        let len = self.cache.borrow().len();
        let new = match pos {
            lamfat::SeekFrom::Start(p) => Some(p),
            lamfat::SeekFrom::End(d) => len.checked_add_signed(d),
            lamfat::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new.ok_or(StorageError::UnexpectedEof)?;
        Ok(self.pos)
    }
}
