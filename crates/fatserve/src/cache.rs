//! The block cache between the FAT code and the block device: fixed-size blocks of sectors,
//! least-recently-used replacement, write-back. Dirty blocks reach the device when they are
//! evicted or on [`BlockCache::flush`], which then flushes the device, so after a flush every
//! write is durable. A sequential run of misses reads ahead in one device request, and a dirty
//! block goes to the device together with the dirty blocks cached right after it, up to the
//! largest request (`blkproto::MAX_DATA`): each request costs a round trip to the block
//! driver. A block written in whole sectors is not read from the device first (a file's new
//! clusters are written so); each block knows which of its sectors hold data. Blocks are found
//! through a hash index (lamfat reads the FAT a sector at a time, each read a look-up).
//!
//! Large transfers bypass the blocks: [`BlockCache::read_through`] and
//! [`BlockCache::write_through`] move the whole sectors of a stretch of at least [`DIRECT_MIN`]
//! bytes between the device and the caller's buffer in requests as large as the protocol
//! allows, keeping cached copies right (dirty ones are written before a read; a write updates
//! or drops them), so a file's data is copied once on its way rather than into blocks and out
//! again. Their framed forms let the device use the room before each request's data for the
//! message header ([`BlockDevice::read_framed`], [`BlockDevice::write_framed`]): no copy at
//! all on this side.
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
/// Most blocks one device request moves (the block protocol's largest message).
const MAX_RUN: u64 = (blkproto::MAX_DATA / BLOCK_BYTES) as u64;
/// Marks an empty slot.
const EMPTY: u64 = u64::MAX;
/// Ends a hash chain.
const NONE: u32 = u32::MAX;

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
    /// The next slot in the same hash chain.
    next: u32,
    /// The neighbours in the recency list.
    newer: u32,
    older: u32,
    /// Sectors (bit k: sector k) holding the device's bytes or newer ones. The others are
    /// undefined: a block written in whole sectors is not read first.
    valid: u8,
    dirty: bool,
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
    /// The first slot of each hash chain.
    index: Vec<u32>,
    /// Shift that takes a block's hash to its chain (64 − log2 of the chains).
    shift: u32,
    /// A device request's bytes when it moves more than one block.
    run: Vec<u8>,
    sectors: u64,
    /// Ends of the recency list, which runs through every slot (empty ones at the old end).
    newest: u32,
    oldest: u32,
    last_miss: u64,
    stats: CacheStats,
    // Last, so that a cache can be seen as `BlockCache<dyn BlockDevice>`.
    dev: D,
}

impl<D: BlockDevice> BlockCache<D> {
    /// A cache of `blocks` blocks (at least 2·[`MAX_RUN`]) over `dev`, whose size it asks once.
    pub fn new(mut dev: D, blocks: usize) -> Result<Self, StorageError> {
        let sectors = dev.sectors().map_err(StorageError::Device)?;
        let blocks = blocks.clamp(2 * MAX_RUN as usize, NONE as usize);
        // Listed from slot 0 (newest) to the last (oldest).
        let slots = (0..blocks)
            .map(|i| Slot {
                block: EMPTY,
                next: NONE,
                newer: if i == 0 { NONE } else { i as u32 - 1 },
                older: if i + 1 == blocks { NONE } else { i as u32 + 1 },
                valid: 0,
                dirty: false,
                data: vec![0; BLOCK_BYTES],
            })
            .collect();
        let chains = (2 * blocks).next_power_of_two();
        Ok(BlockCache {
            slots,
            index: vec![NONE; chains],
            shift: 64 - chains.trailing_zeros(),
            run: vec![0; MAX_RUN as usize * BLOCK_BYTES],
            sectors,
            newest: 0,
            oldest: blocks as u32 - 1,
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

    /// The hash chain of `block` (Fibonacci hashing: consecutive blocks spread out).
    fn chain(&self, block: u64) -> usize {
        (block.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    fn find(&self, block: u64) -> Option<usize> {
        let mut i = self.index[self.chain(block)];
        while i != NONE {
            let s = &self.slots[i as usize];
            if s.block == block {
                return Some(i as usize);
            }
            i = s.next;
        }
        None
    }

    /// Makes slot `i` (empty) hold `block`.
    fn link(&mut self, i: usize, block: u64) {
        let c = self.chain(block);
        let s = &mut self.slots[i];
        (s.block, s.next) = (block, self.index[c]);
        self.index[c] = i as u32;
    }

    /// Empties slot `i`.
    fn unlink(&mut self, i: usize) {
        let block = self.slots[i].block;
        if block == EMPTY {
            return;
        }
        let c = self.chain(block);
        let next = self.slots[i].next;
        if self.index[c] == i as u32 {
            self.index[c] = next;
        } else {
            let mut j = self.index[c] as usize;
            while self.slots[j].next != i as u32 {
                j = self.slots[j].next as usize;
            }
            self.slots[j].next = next;
        }
        let s = &mut self.slots[i];
        (s.block, s.next, s.dirty) = (EMPTY, NONE, false);
        self.make_oldest(i);
    }

    /// Takes slot `i` out of the recency list.
    fn detach(&mut self, i: usize) {
        let (newer, older) = (self.slots[i].newer, self.slots[i].older);
        match newer {
            NONE => self.newest = older,
            n => self.slots[n as usize].older = older,
        }
        match older {
            NONE => self.oldest = newer,
            o => self.slots[o as usize].newer = newer,
        }
    }

    /// Makes slot `i` the most recently used.
    fn touch(&mut self, i: usize) {
        if self.newest == i as u32 {
            return;
        }
        self.detach(i);
        let s = &mut self.slots[i];
        (s.newer, s.older) = (NONE, self.newest);
        self.slots[self.newest as usize].newer = i as u32;
        self.newest = i as u32;
    }

    /// Makes slot `i` the first to be reused.
    fn make_oldest(&mut self, i: usize) {
        if self.oldest == i as u32 {
            return;
        }
        self.detach(i);
        let s = &mut self.slots[i];
        (s.newer, s.older) = (self.oldest, NONE);
        self.slots[self.oldest as usize].older = i as u32;
        self.oldest = i as u32;
    }

    /// Sectors of `block` that exist (the device's last block may be short), as a mask.
    fn full(&self, block: u64) -> u8 {
        ((1u16 << self.sectors_in(block)) - 1) as u8
    }

    /// Reads the sectors of slot `i` that are not valid from the device.
    fn fill(&mut self, i: usize) -> Result<(), StorageError> {
        let block = self.slots[i].block;
        let (n, full) = (
            self.sectors_in(block) as usize * SECTOR_SIZE,
            self.full(block),
        );
        self.stats.device_reads += 1;
        self.dev
            .read(block * BLOCK_SECTORS, &mut self.run[..n])
            .map_err(StorageError::Device)?;
        let s = &mut self.slots[i];
        for (k, (have, dev)) in s
            .data
            .chunks_mut(SECTOR_SIZE)
            .zip(self.run[..n].chunks(SECTOR_SIZE))
            .enumerate()
        {
            if s.valid & (1 << k) == 0 {
                have.copy_from_slice(dev);
            }
        }
        s.valid = full;
        Ok(())
    }

    /// Writes dirty slot `i` to the device, with the dirty blocks cached right after it in
    /// the same request.
    fn write_back(&mut self, i: usize) -> Result<(), StorageError> {
        let s = &self.slots[i];
        if !s.dirty {
            return Ok(());
        }
        let block = s.block;
        if block != 0 {
            // Block 0 holds the boot sector with FAT's dirty flag, which lamfat sets in the cache
            // with its first change: the device gets it before any other change, so a crash
            // between two fsyncs leaves a volume marked dirty.
            if let Some(b0) = self.find(0).filter(|&b0| self.slots[b0].dirty) {
                self.write_back(b0)?;
            }
        }
        let valid = self.slots[i].valid;
        if valid != self.full(block) {
            // Every written sector is valid and no other is: one stretch of them goes alone,
            // else the rest is read in first.
            let (first, count) = (valid.trailing_zeros(), valid.count_ones());
            if valid >> first == ((1u16 << count) - 1) as u8 {
                let bytes = &self.slots[i].data[first as usize * SECTOR_SIZE..];
                self.stats.device_writes += 1;
                self.dev
                    .write(
                        block * BLOCK_SECTORS + u64::from(first),
                        &bytes[..count as usize * SECTOR_SIZE],
                    )
                    .map_err(StorageError::Device)?;
                self.slots[i].dirty = false;
                return Ok(());
            }
            self.fill(i)?;
        }
        let mut run = [i; MAX_RUN as usize];
        // Block 0 goes alone: within one request the device may write sectors in any order.
        let most = if block == 0 { 1 } else { run.len() };
        let mut n = 1;
        while n < most {
            let next = block + n as u64;
            match self.find(next) {
                Some(j) if self.slots[j].dirty && self.slots[j].valid == self.full(next) => {
                    run[n] = j
                }
                _ => break,
            }
            n += 1;
        }
        let bytes = |c: &Self, k: usize| c.sectors_in(block + k as u64) as usize * SECTOR_SIZE;
        let data = if n == 1 {
            &self.slots[i].data[..bytes(self, 0)]
        } else {
            let mut len = 0;
            for (k, &j) in run[..n].iter().enumerate() {
                let b = bytes(self, k);
                self.run[len..len + b].copy_from_slice(&self.slots[j].data[..b]);
                len += b;
            }
            &self.run[..len]
        };
        self.stats.device_writes += 1;
        self.dev
            .write(block * BLOCK_SECTORS, data)
            .map_err(StorageError::Device)?;
        for &j in &run[..n] {
            self.slots[j].dirty = false;
        }
        Ok(())
    }

    /// A slot to reuse: the least recently used, written back first if dirty.
    fn victim(&mut self) -> Result<usize, StorageError> {
        let i = self.oldest as usize;
        self.write_back(i)?;
        self.unlink(i);
        Ok(i)
    }

    /// The slot holding `block`, with the sectors in `touched` (a mask) valid except those in
    /// `overwrite`, which the caller replaces whole: a block that is only written that way is
    /// not read from the device. Other misses load the block (and, on a sequential miss, the
    /// blocks after it).
    fn slot(&mut self, block: u64, touched: u8, overwrite: u8) -> Result<usize, StorageError> {
        let keep = touched & !overwrite;
        if let Some(i) = self.find(block) {
            self.stats.hits += 1;
            self.touch(i);
            if keep & !self.slots[i].valid != 0 {
                self.fill(i)?;
            }
            return Ok(i);
        }
        self.stats.misses += 1;
        let blocks = self.sectors.div_ceil(BLOCK_SECTORS);
        if block >= blocks {
            return Err(StorageError::UnexpectedEof);
        }
        if keep == 0 {
            let i = self.victim()?;
            self.link(i, block);
            self.touch(i);
            self.slots[i].valid = 0;
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
        // The slots first (their write-backs use the run buffer), each taken and marked used
        // so that the next choice passes over it.
        let mut taken = [0usize; MAX_RUN as usize];
        for (k, t) in taken[..run as usize].iter_mut().enumerate() {
            *t = match self.victim() {
                Ok(i) => i,
                Err(e) => {
                    taken[..k].iter().for_each(|&i| self.unlink(i));
                    return Err(e);
                }
            };
            self.link(*t, block + k as u64);
            self.touch(*t);
        }
        let taken = &taken[..run as usize];
        let bytes =
            (self.sectors - block * BLOCK_SECTORS).min(run * BLOCK_SECTORS) as usize * SECTOR_SIZE;
        self.stats.device_reads += 1;
        if let Err(e) = self.dev.read(block * BLOCK_SECTORS, &mut self.run[..bytes]) {
            taken.iter().for_each(|&i| self.unlink(i));
            return Err(StorageError::Device(e));
        }
        for (chunk, &i) in self.run[..bytes].chunks(BLOCK_BYTES).zip(taken) {
            let s = &mut self.slots[i];
            s.data[..chunk.len()].copy_from_slice(chunk);
            s.data[chunk.len()..].fill(0);
            // Every sector the block has (the device's last block may be short).
            s.valid = ((1u16 << (chunk.len() / SECTOR_SIZE)) - 1) as u8;
        }
        // The requested block is the most recently used of the run.
        self.touch(taken[0]);
        Ok(taken[0])
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
            let i = self.slot(block, sectors(off, take).0, 0)?;
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
            let (touched, whole) = sectors(off, take);
            let i = self.slot(block, touched, whole)?;
            let s = &mut self.slots[i];
            s.data[off..off + take].copy_from_slice(&buf[done..done + take]);
            s.valid |= whole;
            s.dirty = true;
            done += take;
        }
        Ok(n)
    }

    /// Like [`read_at`](Self::read_at), but the whole sectors of a stretch of at least
    /// [`DIRECT_MIN`] bytes come from the device straight into `buf` (dirty cached blocks among
    /// them are written first), without passing through cache blocks: a file's data read in
    /// large pieces is read once and copied once. The bytes before and after go through the
    /// cache.
    pub fn read_through(&mut self, pos: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        let n = (buf.len() as u64).min(self.len().saturating_sub(pos)) as usize;
        let Some((a, b)) = direct_span(pos, n) else {
            return self.read_at(pos, &mut buf[..n]);
        };
        let (head, rest) = buf[..n].split_at_mut(a);
        let (mid, tail) = rest.split_at_mut(b - a);
        self.read_direct(pos + a as u64, mid)?;
        self.read_at(pos, head)?;
        self.read_at(pos + b as u64, tail)?;
        Ok(n)
    }

    /// Like [`read_through`](Self::read_through) into `frame[blkproto::HEADER_LEN..]`, every
    /// byte of it inside the device; the device reads its part in place
    /// ([`BlockDevice::read_framed`]), so `frame[..HEADER_LEN]` may be overwritten.
    pub fn read_through_framed(&mut self, pos: u64, frame: &mut [u8]) -> Result<(), StorageError> {
        const ROOM: usize = blkproto::HEADER_LEN;
        let n = frame.len() - ROOM;
        if pos + n as u64 > self.len() {
            return Err(StorageError::UnexpectedEof);
        }
        let Some((a, b)) = direct_span(pos, n) else {
            self.read_at(pos, &mut frame[ROOM..])?;
            return Ok(());
        };
        // The tail, the middle (whose device reads may overwrite the room before them: bytes of
        // the head), then the head.
        self.read_at(pos + b as u64, &mut frame[ROOM + b..])?;
        self.read_direct_framed(pos + a as u64, &mut frame[a..ROOM + b])?;
        self.read_at(pos, &mut frame[ROOM..ROOM + a])?;
        Ok(())
    }

    /// [`read_direct`](Self::read_direct) into `frame[HEADER_LEN..]`, each request's data read
    /// in place by the device; the requests go from the last to the first, since each may
    /// overwrite the bytes before its own (those of the request before it).
    fn read_direct_framed(&mut self, pos: u64, frame: &mut [u8]) -> Result<(), StorageError> {
        const ROOM: usize = blkproto::HEADER_LEN;
        let len = frame.len() - ROOM;
        for block in Self::blocks_of(pos, len) {
            if let Some(i) = self.find(block).filter(|&i| self.slots[i].dirty) {
                self.write_back(i)?;
            }
        }
        let step = blkproto::MAX_DATA;
        for k in (0..len.div_ceil(step)).rev() {
            let (from, to) = (k * step, ((k + 1) * step).min(len));
            self.stats.device_reads += 1;
            self.dev
                .read_framed(
                    (pos + from as u64) / SECTOR_SIZE as u64,
                    &mut frame[from..ROOM + to],
                )
                .map_err(StorageError::Device)?;
        }
        Ok(())
    }

    /// Like [`write_at`](Self::write_at), but the whole sectors of a stretch of at least
    /// [`DIRECT_MIN`] bytes go to the device at once (after a dirty boot block: see
    /// [`write_back`](Self::write_back)) instead of into cache blocks; cached copies of them
    /// are updated or dropped. The bytes before and after go into the cache.
    pub fn write_through(&mut self, pos: u64, buf: &[u8]) -> Result<usize, StorageError> {
        let n = (buf.len() as u64).min(self.len().saturating_sub(pos)) as usize;
        let Some((a, b)) = direct_span(pos, n) else {
            return self.write_at(pos, &buf[..n]);
        };
        self.write_direct(pos + a as u64, &buf[a..b])?;
        self.write_at(pos, &buf[..a])?;
        self.write_at(pos + b as u64, &buf[b..n])?;
        Ok(n)
    }

    /// The blocks that hold some of the `len` bytes from `pos`.
    fn blocks_of(pos: u64, len: usize) -> core::ops::Range<u64> {
        pos / BLOCK_BYTES as u64..(pos + len as u64).div_ceil(BLOCK_BYTES as u64)
    }

    /// Like [`write_through`](Self::write_through) of `frame[blkproto::HEADER_LEN..]`, every
    /// byte of it inside the device; the device is given its part in place
    /// ([`BlockDevice::write_framed`]), each request overwriting the room before its data: the
    /// bytes before go into the cache first, and the requests go from the first to the last.
    pub fn write_through_framed(&mut self, pos: u64, frame: &mut [u8]) -> Result<(), StorageError> {
        const ROOM: usize = blkproto::HEADER_LEN;
        let n = frame.len() - ROOM;
        if pos + n as u64 > self.len() {
            return Err(StorageError::UnexpectedEof);
        }
        let Some((a, b)) = direct_span(pos, n) else {
            self.write_at(pos, &frame[ROOM..])?;
            return Ok(());
        };
        self.write_at(pos, &frame[ROOM..ROOM + a])?;
        self.write_at(pos + b as u64, &frame[ROOM + b..])?;
        // Cached copies of the middle, while its bytes are all still there: a block it covers
        // whole is dropped; one it covers in part takes the new sectors and stays dirty (the
        // device may fail to take them).
        let mid = pos + a as u64;
        let end = pos + b as u64;
        for block in Self::blocks_of(mid, b - a) {
            let Some(i) = self.find(block) else {
                continue;
            };
            let start = block * BLOCK_BYTES as u64;
            let (from, to) = (mid.max(start), end.min(start + BLOCK_BYTES as u64));
            let covered = sectors((from - start) as usize, (to - from) as usize).1;
            if covered == self.full(block) {
                self.unlink(i);
                continue;
            }
            let at = (from - start) as usize;
            let src = ROOM + (from - pos) as usize;
            let s = &mut self.slots[i];
            s.data[at..at + (to - from) as usize]
                .copy_from_slice(&frame[src..src + (to - from) as usize]);
            s.valid |= covered;
            s.dirty = true;
        }
        // The boot block's dirty flag reaches the device before any other change.
        if let Some(b0) = self.find(0).filter(|&b0| self.slots[b0].dirty) {
            self.write_back(b0)?;
        }
        let step = blkproto::MAX_DATA;
        for from in (a..b).step_by(step) {
            let to = (from + step).min(b);
            self.stats.device_writes += 1;
            self.dev
                .write_framed(
                    (pos + from as u64) / SECTOR_SIZE as u64,
                    &mut frame[from..ROOM + to],
                )
                .map_err(StorageError::Device)?;
        }
        Ok(())
    }

    /// Reads whole sectors at `pos` from the device into `buf`, in requests of at most
    /// `blkproto::MAX_DATA`; dirty cached blocks among them are written back first, so the
    /// device has the newest bytes.
    fn read_direct(&mut self, pos: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        for block in Self::blocks_of(pos, buf.len()) {
            if let Some(i) = self.find(block).filter(|&i| self.slots[i].dirty) {
                self.write_back(i)?;
            }
        }
        for (k, chunk) in buf.chunks_mut(blkproto::MAX_DATA).enumerate() {
            let at = pos + (k * blkproto::MAX_DATA) as u64;
            self.stats.device_reads += 1;
            self.dev
                .read(at / SECTOR_SIZE as u64, chunk)
                .map_err(StorageError::Device)?;
        }
        Ok(())
    }

    /// Writes whole sectors at `pos` to the device from `buf`, in requests of at most
    /// `blkproto::MAX_DATA`, then brings cached copies up to date: a block it covers whole is
    /// dropped, one it covers in part takes the new sectors.
    fn write_direct(&mut self, pos: u64, buf: &[u8]) -> Result<(), StorageError> {
        // The boot block's dirty flag reaches the device before any other change.
        if let Some(b0) = self.find(0).filter(|&b0| self.slots[b0].dirty) {
            self.write_back(b0)?;
        }
        for (k, chunk) in buf.chunks(blkproto::MAX_DATA).enumerate() {
            let at = pos + (k * blkproto::MAX_DATA) as u64;
            self.stats.device_writes += 1;
            self.dev
                .write(at / SECTOR_SIZE as u64, chunk)
                .map_err(StorageError::Device)?;
        }
        let end = pos + buf.len() as u64;
        for block in Self::blocks_of(pos, buf.len()) {
            let Some(i) = self.find(block) else {
                continue;
            };
            let start = block * BLOCK_BYTES as u64;
            let from = pos.max(start);
            let to = end.min(start + BLOCK_BYTES as u64);
            let covered = sectors((from - start) as usize, (to - from) as usize).1;
            if covered == self.full(block) {
                self.unlink(i);
                continue;
            }
            let s = &mut self.slots[i];
            let at = (from - start) as usize;
            s.data[at..at + (to - from) as usize]
                .copy_from_slice(&buf[(from - pos) as usize..(to - pos) as usize]);
            s.valid |= covered;
        }
        Ok(())
    }

    /// Writes every dirty block (in block order, runs of neighbours together) and flushes the
    /// device.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        let mut dirty: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].dirty)
            .collect();
        dirty.sort_by_key(|&i| self.slots[i].block);
        for i in dirty {
            // A no-op for blocks already written with the run before them.
            self.write_back(i)?;
        }
        self.stats.device_flushes += 1;
        self.dev.flush().map_err(StorageError::Device)
    }

    /// Forgets every cached block without writing dirty ones back (what a crash loses).
    pub fn discard(&mut self) {
        for s in &mut self.slots {
            (s.block, s.next, s.dirty) = (EMPTY, NONE, false);
        }
        self.index.fill(NONE);
    }
}

/// Bytes from which [`BlockCache::read_through`] and [`BlockCache::write_through`] bypass the
/// cache blocks: a block's worth.
pub const DIRECT_MIN: usize = BLOCK_BYTES;

/// The whole sectors of `len` bytes from `pos`, as offsets into them, when they are at least
/// [`DIRECT_MIN`] bytes.
fn direct_span(pos: u64, len: usize) -> Option<(usize, usize)> {
    let sector = SECTOR_SIZE as u64;
    let a = (pos.next_multiple_of(sector) - pos) as usize;
    let b = ((pos + len as u64) / sector * sector).saturating_sub(pos) as usize;
    (b >= a + DIRECT_MIN).then_some((a, b))
}

/// The sectors of a block that `len` bytes from byte `off` touch, and those they cover whole.
fn sectors(off: usize, len: usize) -> (u8, u8) {
    // Bits `from..to` (none when a short write covers no sector whole).
    let mask = |from: usize, to: usize| ((1u16 << to).saturating_sub(1u16 << from)) as u8;
    let end = off + len;
    (
        mask(off / SECTOR_SIZE, end.div_ceil(SECTOR_SIZE)),
        mask(off.div_ceil(SECTOR_SIZE), end / SECTOR_SIZE),
    )
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
        let n = self.cache.borrow_mut().read_through(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl lamfat::Write for Storage {
    fn write(&mut self, buf: &[u8]) -> Result<usize, StorageError> {
        let n = self.cache.borrow_mut().write_through(self.pos, buf)?;
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
