//! The block cache on an in-memory device: writes stay in the cache until flush or eviction,
//! the least recently used block is the one evicted, sequential misses read ahead, neighbouring
//! dirty blocks go to the device in one request, the boot block reaches the device before any
//! other change, a short last block works, and many blocks stay findable (the hash index).
use fatserve::{BLOCK_BYTES, BlockCache, BlockDevice};

/// Blocks one device request moves (the block protocol's largest message).
const RUN: usize = blkproto::MAX_DATA / BLOCK_BYTES;
/// The smallest cache: two requests' worth of blocks.
const SMALL: usize = 2 * RUN;

/// A RAM disk that logs every request as (kind, first sector, sectors).
struct Mem {
    data: Vec<u8>,
    log: Vec<(char, u64, usize)>,
}

impl Mem {
    fn new(sectors: usize) -> Mem {
        Mem {
            data: (0..sectors * 512).map(|i| (i / 512) as u8).collect(),
            log: Vec::new(),
        }
    }
}

impl BlockDevice for Mem {
    fn sectors(&mut self) -> Result<u64, blkproto::Error> {
        Ok(self.data.len() as u64 / 512)
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), blkproto::Error> {
        assert!(buf.len() <= blkproto::MAX_DATA && buf.len().is_multiple_of(512));
        let at = sector as usize * 512;
        buf.copy_from_slice(&self.data[at..at + buf.len()]);
        self.log.push(('r', sector, buf.len() / 512));
        Ok(())
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), blkproto::Error> {
        assert!(buf.len() <= blkproto::MAX_DATA && buf.len().is_multiple_of(512));
        let at = sector as usize * 512;
        self.data[at..at + buf.len()].copy_from_slice(buf);
        self.log.push(('w', sector, buf.len() / 512));
        Ok(())
    }
    fn flush(&mut self) -> Result<(), blkproto::Error> {
        self.log.push(('f', 0, 0));
        Ok(())
    }
    fn read_framed(&mut self, sector: u64, frame: &mut [u8]) -> Result<(), blkproto::Error> {
        // The room before the data is the device's: scribbled on, as a reply's header would.
        let (room, data) = frame.split_at_mut(blkproto::HEADER_LEN);
        room.fill(0xEE);
        self.read(sector, data)
    }
    fn write_framed(&mut self, sector: u64, frame: &mut [u8]) -> Result<(), blkproto::Error> {
        let (room, data) = frame.split_at_mut(blkproto::HEADER_LEN);
        room.fill(0xEE);
        self.write(sector, data)
    }
}

fn writes(c: &mut BlockCache<Mem>) -> Vec<u64> {
    c.device()
        .log
        .iter()
        .filter(|e| e.0 == 'w')
        .map(|e| e.1)
        .collect()
}

#[test]
fn writes_wait_for_flush() {
    let mut c = BlockCache::new(Mem::new(1024), 16).unwrap();
    c.write_at(100, b"hello").unwrap();
    c.write_at(9 * BLOCK_BYTES as u64, &[7; 5000]).unwrap();
    assert!(writes(&mut c).is_empty(), "written before flush");
    let mut back = [0; 5];
    c.read_at(100, &mut back).unwrap();
    assert_eq!(&back, b"hello");
    c.flush().unwrap();
    // In block order (blocks 9 and 10 in one request), then the device flush.
    assert_eq!(writes(&mut c), [0, 72]);
    assert!(c.device().log.contains(&('w', 72, 16)));
    assert_eq!(c.device().log.last(), Some(&('f', 0, 0)));
    assert_eq!(&c.device().data[100..105], b"hello");
    // A whole-block write needs no read first.
    let reads = c.stats().device_reads;
    c.write_at(20 * BLOCK_BYTES as u64, &[1; BLOCK_BYTES])
        .unwrap();
    assert_eq!(c.stats().device_reads, reads);
}

#[test]
fn least_recently_used_is_evicted_and_written_back() {
    let n = SMALL as u64;
    let mut c = BlockCache::new(Mem::new(4096), SMALL).unwrap();
    let mut b = [0u8; 1];
    // Blocks 0..n (non-sequential order so there is no read-ahead), block 3 dirty.
    for blk in (0..n).rev() {
        c.read_at(blk * BLOCK_BYTES as u64, &mut b).unwrap();
    }
    c.write_at(3 * BLOCK_BYTES as u64, b"d").unwrap();
    // Touch everything but block n - 1 (the oldest read), then miss on block 100.
    for blk in 0..n - 1 {
        c.read_at(blk * BLOCK_BYTES as u64, &mut b).unwrap();
    }
    let misses = c.stats().misses;
    c.read_at(100 * BLOCK_BYTES as u64, &mut b).unwrap();
    assert_eq!(c.stats().misses, misses + 1);
    c.read_at(3 * BLOCK_BYTES as u64, &mut b).unwrap();
    assert_eq!(
        c.stats().misses,
        misses + 1,
        "block 3 was evicted, not n - 1"
    );
    c.read_at((n - 1) * BLOCK_BYTES as u64, &mut b).unwrap();
    assert_eq!(c.stats().misses, misses + 2, "block n - 1 is still cached");
    // Fill with other blocks until the dirty one goes: it reaches the device then.
    for blk in 200..200 + n + 4 {
        c.read_at(blk * BLOCK_BYTES as u64 * 2, &mut b).unwrap();
    }
    assert_eq!(writes(&mut c), [24]);
    assert_eq!(c.device().data[3 * BLOCK_BYTES], b'd');
}

#[test]
fn sequential_misses_read_ahead() {
    let mut c = BlockCache::new(Mem::new(8192), 64).unwrap();
    let mut buf = vec![0; 64 * BLOCK_BYTES];
    c.read_at(0, &mut buf).unwrap();
    // The first miss reads one block, the following ones a request's worth at a time.
    assert_eq!(c.stats().device_reads, 1 + 63usize.div_ceil(RUN) as u64);
    assert!(c.device().log.iter().all(|e| e.2 <= RUN * 8));
    for (i, chunk) in buf.chunks(512).enumerate() {
        assert!(chunk.iter().all(|&x| x == i as u8), "sector {i}");
    }
}

#[test]
fn boot_block_reaches_the_device_first() {
    let mut c = BlockCache::new(Mem::new(4096), SMALL).unwrap();
    c.write_at(70 * BLOCK_BYTES as u64, b"data").unwrap();
    c.write_at(65, &[1]).unwrap();
    // Evict block 70 (the oldest) by reading all the other slots' worth of blocks.
    let mut b = [0u8; 1];
    for blk in (100..100 + 2 * (SMALL as u64 - 1)).step_by(2) {
        c.read_at(blk * BLOCK_BYTES as u64, &mut b).unwrap();
    }
    assert_eq!(writes(&mut c), [0, 560]);
}

#[test]
fn short_last_block() {
    // 13 sectors: one whole block and a 5-sector one.
    let mut c = BlockCache::new(Mem::new(13), 16).unwrap();
    assert_eq!(c.len(), 13 * 512);
    let mut buf = vec![0; 10_000];
    assert_eq!(c.read_at(0, &mut buf).unwrap(), 13 * 512);
    assert_eq!(c.write_at(13 * 512 - 2, b"abcd").unwrap(), 2);
    assert_eq!(c.write_at(13 * 512, b"x").unwrap(), 0);
    c.flush().unwrap();
    assert_eq!(&c.device().data[13 * 512 - 2..], b"ab");
    assert!(c.device().log.contains(&('w', 8, 5)));
}

/// The device's write requests as (first sector, sectors).
fn write_requests(c: &mut BlockCache<Mem>) -> Vec<(u64, usize)> {
    c.device()
        .log
        .iter()
        .filter(|e| e.0 == 'w')
        .map(|e| (e.1, e.2))
        .collect()
}

#[test]
fn neighbouring_dirty_blocks_are_written_together() {
    let mut c = BlockCache::new(Mem::new(8192), 64).unwrap();
    // Blocks 5..=7, 9, and RUN + 4 from 20 on (more than one request holds), written out of
    // order.
    let last = 20 + RUN as u64 + 3;
    for blk in [9u64, 6, 5, 7].into_iter().chain((20..=last).rev()) {
        c.write_at(blk * BLOCK_BYTES as u64 + 10, &[blk as u8; 3])
            .unwrap();
    }
    c.flush().unwrap();
    assert_eq!(
        write_requests(&mut c),
        [
            (40, 24),
            (72, 8),
            (160, RUN * 8),
            (160 + RUN as u64 * 8, 32)
        ]
    );
    for blk in [5u64, 6, 7, 9, 20, 25, last] {
        let at = (blk * BLOCK_BYTES as u64 + 10) as usize;
        assert_eq!(c.device().data[at..at + 3], [blk as u8; 3], "block {blk}");
    }
    // Nothing is left dirty.
    c.flush().unwrap();
    assert_eq!(write_requests(&mut c).len(), 4);
}

#[test]
fn eviction_writes_the_run_after_the_victim() {
    let mut c = BlockCache::new(Mem::new(8192), SMALL).unwrap();
    // A sequential write of 64 blocks through the smallest cache.
    let data: Vec<u8> = (0..64 * BLOCK_BYTES).map(|i| (i / 4093) as u8).collect();
    c.write_at(0, &data).unwrap();
    c.flush().unwrap();
    let w = write_requests(&mut c);
    // Block 0 on its own (it goes first), then requests of a run each.
    assert_eq!(w[0], (0, 8));
    assert!(w.len() <= 1 + 63usize.div_ceil(RUN) + 1, "{w:?}");
    assert_eq!(c.device().data[..data.len()], data[..]);
}

#[test]
fn many_blocks_stay_findable() {
    let mut c = BlockCache::new(Mem::new(1 << 16), 256).unwrap();
    let mut b = [0u8; 1];
    // Strided blocks, so that the hash chains see many neighbours and collisions.
    let blocks: Vec<u64> = (0..256u64).map(|i| (i * 37) % 8192).collect();
    for &blk in &blocks {
        c.write_at(blk * BLOCK_BYTES as u64, &[blk as u8]).unwrap();
    }
    let misses = c.stats().misses;
    for &blk in blocks.iter().rev() {
        c.read_at(blk * BLOCK_BYTES as u64, &mut b).unwrap();
        assert_eq!(b[0], blk as u8);
    }
    assert_eq!(c.stats().misses, misses, "every block still cached");
    // Replacing them all keeps every chain sound.
    for blk in 4096..4096 + 300u64 {
        c.read_at(blk * BLOCK_BYTES as u64, &mut b).unwrap();
    }
    for &blk in &blocks {
        c.read_at(blk * BLOCK_BYTES as u64, &mut b).unwrap();
        assert_eq!(b[0], blk as u8, "block {blk} after eviction");
    }
}

#[test]
fn whole_sector_writes_are_not_read_first() {
    let mut c = BlockCache::new(Mem::new(1024), 16).unwrap();
    let base = 10 * BLOCK_BYTES as u64;
    // Sectors 2 and 3 of block 10, whole: nothing is read.
    c.write_at(base + 1024, &[0xaa; 1024]).unwrap();
    assert_eq!(c.stats().device_reads, 0);
    let mut back = [0u8; 1024];
    c.read_at(base + 1024, &mut back).unwrap();
    assert_eq!(back, [0xaa; 1024]);
    assert_eq!(
        c.stats().device_reads,
        0,
        "written sectors read back from the cache"
    );
    // Written back alone: the device's other sectors of the block stay as they were.
    c.flush().unwrap();
    assert_eq!(write_requests(&mut c), [(82, 2)]);
    let dev = &c.device().data;
    assert_eq!(
        dev[base as usize + 1024..base as usize + 2048],
        [0xaa; 1024]
    );
    assert!(
        dev[base as usize..base as usize + 1024]
            .iter()
            .all(|&b| b == 80 || b == 81)
    );
    assert!(
        dev[base as usize + 2048..base as usize + 4096]
            .iter()
            .all(|&b| b >= 84)
    );
    // Reading a sector that was never loaded fetches the block, keeping what was written.
    let mut s0 = [0u8; 512];
    c.read_at(base, &mut s0).unwrap();
    assert_eq!(s0, [80; 512]);
    assert_eq!(c.stats().device_reads, 1);
    c.read_at(base + 1024, &mut back).unwrap();
    assert_eq!(back, [0xaa; 1024]);
}

#[test]
fn partial_sector_write_on_an_unloaded_sector_loads_it() {
    let mut c = BlockCache::new(Mem::new(1024), 16).unwrap();
    let base = 3 * BLOCK_BYTES as u64;
    c.write_at(base, &[1; 512]).unwrap();
    assert_eq!(c.stats().device_reads, 0);
    // Ten bytes inside sector 1, never loaded: the rest of it must come from the device.
    c.write_at(base + 700, &[2; 10]).unwrap();
    assert_eq!(c.stats().device_reads, 1);
    let mut all = vec![0u8; BLOCK_BYTES];
    c.read_at(base, &mut all).unwrap();
    assert_eq!(all[..512], [1; 512]);
    assert!(all[512..700].iter().all(|&b| b == 25));
    assert_eq!(all[700..710], [2; 10]);
    assert!(all[710..1024].iter().all(|&b| b == 25));
    assert!(
        all[1024..]
            .chunks(512)
            .enumerate()
            .all(|(k, s)| s.iter().all(|&b| b == 26 + k as u8))
    );
    c.flush().unwrap();
    assert_eq!(c.device().data[base as usize..][..BLOCK_BYTES], all[..]);
}

#[test]
fn scattered_whole_sectors_are_completed_before_write_back() {
    let mut c = BlockCache::new(Mem::new(1024), 16).unwrap();
    let base = 5 * BLOCK_BYTES as u64;
    c.write_at(base + 512, &[7; 512]).unwrap();
    c.write_at(base + 5 * 512, &[8; 512]).unwrap();
    assert_eq!(c.stats().device_reads, 0);
    c.flush().unwrap();
    // Sectors 1 and 5 are not one stretch: the block is read, then written whole.
    assert_eq!(c.stats().device_reads, 1);
    assert_eq!(write_requests(&mut c), [(40, 8)]);
    let dev = &c.device().data[base as usize..][..BLOCK_BYTES];
    for (k, s) in dev.chunks(512).enumerate() {
        let want = match k {
            1 => 7,
            5 => 8,
            k => 40 + k as u8,
        };
        assert!(s.iter().all(|&b| b == want), "sector {k}");
    }
}

#[test]
fn a_sequential_write_in_sectors_reads_nothing() {
    let mut c = BlockCache::new(Mem::new(8192), 16).unwrap();
    // 512 bytes at a time, as lamfat writes the clusters of a file on 512-byte clusters.
    let data: Vec<u8> = (0..64 * BLOCK_BYTES).map(|i| (i / 511) as u8).collect();
    for (k, s) in data.chunks(512).enumerate() {
        c.write_at(BLOCK_BYTES as u64 + (k * 512) as u64, s)
            .unwrap();
    }
    c.flush().unwrap();
    assert_eq!(c.stats().device_reads, 0);
    assert!(write_requests(&mut c).len() <= 64 / 8 + 2);
    assert_eq!(c.device().data[BLOCK_BYTES..][..data.len()], data[..]);
}

#[test]
fn write_through_sends_whole_sectors_at_once_after_the_boot_block() {
    let mut c = BlockCache::new(Mem::new(1024), 16).unwrap();
    c.write_at(0, b"dirty flag").unwrap();
    // A request's worth of sectors and 18 more from sector 9, 100 bytes before them and 10
    // after.
    let sectors = RUN * 8 + 18;
    let data: Vec<u8> = (0..100 + sectors * 512 + 10)
        .map(|i| (i % 251) as u8)
        .collect();
    let pos = 9 * 512 - 100;
    assert_eq!(c.write_through(pos, &data).unwrap(), data.len());
    // The boot block first, then the sectors in requests of at most a run; the edges wait in
    // the cache.
    let reqs: Vec<_> = c
        .device()
        .log
        .iter()
        .filter(|e| e.0 == 'w')
        .copied()
        .collect();
    let second = 9 + RUN as u64 * 8;
    assert_eq!(reqs, [('w', 0, 8), ('w', 9, RUN * 8), ('w', second, 18)]);
    let mut back = vec![0; data.len()];
    c.read_at(pos, &mut back).unwrap();
    assert_eq!(back, data);
    c.flush().unwrap();
    let at = pos as usize;
    assert_eq!(&c.device().data[at..at + data.len()], &data[..]);
}

#[test]
fn write_through_updates_cached_copies() {
    let mut c = BlockCache::new(Mem::new(1024), 16).unwrap();
    // Blocks 1 (dirty, in part), 2 (clean) and 3 (dirty) cached.
    c.write_at(BLOCK_BYTES as u64, &[1; 100]).unwrap();
    let mut b = [0u8; 1];
    c.read_at(2 * BLOCK_BYTES as u64, &mut b).unwrap();
    c.write_at(3 * BLOCK_BYTES as u64 + 7, &[3; 9]).unwrap();
    // Sectors from the middle of block 1 to the middle of block 3.
    let pos = BLOCK_BYTES as u64 + 4 * 512;
    c.write_through(pos, &[9; 2 * BLOCK_BYTES]).unwrap();
    let mut back = vec![0u8; 4 * BLOCK_BYTES];
    c.read_at(0, &mut back).unwrap();
    let b1 = &back[BLOCK_BYTES..2 * BLOCK_BYTES];
    assert_eq!(&b1[..100], &[1; 100][..]);
    assert!(b1[4 * 512..].iter().all(|&x| x == 9));
    assert!(
        back[2 * BLOCK_BYTES..3 * BLOCK_BYTES]
            .iter()
            .all(|&x| x == 9)
    );
    let b3 = &back[3 * BLOCK_BYTES..];
    assert!(b3[..4 * 512].iter().all(|&x| x == 9));
    // Past the new sectors, block 3 keeps the device's bytes (Mem fills each sector with its
    // number).
    assert_eq!(b3[4 * 512], 3 * 8 + 4);
    c.flush().unwrap();
    let d = &c.device().data;
    assert_eq!(&d[BLOCK_BYTES..BLOCK_BYTES + 100], &[1; 100][..]);
    assert!(
        d[pos as usize..pos as usize + 2 * BLOCK_BYTES]
            .iter()
            .all(|&x| x == 9)
    );
}

#[test]
fn read_through_writes_dirty_blocks_first_and_reads_sectors_at_once() {
    let mut c = BlockCache::new(Mem::new(1024), 16).unwrap();
    c.write_at(5 * BLOCK_BYTES as u64 + 3, b"newer").unwrap();
    let pos = 4 * BLOCK_BYTES as u64 + 200;
    let mut buf = vec![0u8; 3 * BLOCK_BYTES];
    assert_eq!(c.read_through(pos, &mut buf).unwrap(), buf.len());
    let at = 5 * BLOCK_BYTES - (4 * BLOCK_BYTES + 200) + 3;
    assert_eq!(&buf[at..at + 5], b"newer");
    // Sector contents of the device elsewhere (Mem fills each sector with its number).
    assert_eq!(buf[0], (pos / 512) as u8);
    assert_eq!(
        buf[buf.len() - 1],
        ((pos + buf.len() as u64 - 1) / 512) as u8
    );
    // The dirty block went first; the whole sectors came in one request.
    let log = &c.device().log;
    let at = |e| log.iter().position(|x| *x == e);
    assert!(at(('w', 40, 8)) < at(('r', 33, 23)), "{log:?}");
    assert!(at(('w', 40, 8)).is_some(), "{log:?}");
}

#[test]
fn framed_transfers_keep_every_byte() {
    const ROOM: usize = blkproto::HEADER_LEN;
    let mut c = BlockCache::new(Mem::new(1024), SMALL).unwrap();
    // Cached first: block 2 dirty in part, block 5 clean.
    c.write_at(2 * BLOCK_BYTES as u64 + 1000, &[5; 10]).unwrap();
    let mut b = [0u8; 1];
    c.read_at(5 * BLOCK_BYTES as u64, &mut b).unwrap();
    // Two requests' worth and more from the middle of a sector of block 1: three device
    // requests, a cached edge at each end.
    let pos = BLOCK_BYTES as u64 + 300;
    let data: Vec<u8> = (0..2 * blkproto::MAX_DATA + 6000)
        .map(|i| (i * 7 % 253) as u8)
        .collect();
    let mut frame = vec![0u8; ROOM + data.len()];
    frame[ROOM..].copy_from_slice(&data);
    c.write_through_framed(pos, &mut frame).unwrap();
    let writes = c.device().log.iter().filter(|e| e.0 == 'w').count();
    assert_eq!(writes, 3);
    let mut back = vec![0u8; data.len()];
    c.read_at(pos, &mut back).unwrap();
    assert!(back == data, "through the cache");
    let mut frame = vec![0u8; ROOM + data.len()];
    c.read_through_framed(pos, &mut frame).unwrap();
    assert!(frame[ROOM..] == data[..], "read framed");
    c.flush().unwrap();
    let at = pos as usize;
    assert!(
        c.device().data[at..at + data.len()] == data[..],
        "on the device"
    );
    // Past the end of the device: refused, nothing read.
    let mut frame = vec![0u8; ROOM + 4096];
    assert!(c.read_through_framed(1024 * 512 - 100, &mut frame).is_err());
}
