//! The block cache on an in-memory device: writes stay in the cache until flush or eviction,
//! the least recently used block is the one evicted, sequential misses read ahead, the boot
//! block reaches the device before any other change, a short last block works.
use fatserve::{BLOCK_BYTES, BlockCache, BlockDevice};

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
    // In block order, then the device flush.
    assert_eq!(writes(&mut c), [0, 72, 80]);
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
    let mut c = BlockCache::new(Mem::new(4096), 16).unwrap();
    let mut b = [0u8; 1];
    // Blocks 0..16 (non-sequential order so there is no read-ahead), block 3 dirty.
    for blk in (0..16u64).rev() {
        c.read_at(blk * BLOCK_BYTES as u64, &mut b).unwrap();
    }
    c.write_at(3 * BLOCK_BYTES as u64, b"d").unwrap();
    // Touch everything but block 15 (the oldest read), then miss on block 100.
    for blk in 0..15u64 {
        c.read_at(blk * BLOCK_BYTES as u64, &mut b).unwrap();
    }
    let misses = c.stats().misses;
    c.read_at(100 * BLOCK_BYTES as u64, &mut b).unwrap();
    assert_eq!(c.stats().misses, misses + 1);
    c.read_at(3 * BLOCK_BYTES as u64, &mut b).unwrap();
    assert_eq!(c.stats().misses, misses + 1, "block 3 was evicted, not 15");
    c.read_at(15 * BLOCK_BYTES as u64, &mut b).unwrap();
    assert_eq!(c.stats().misses, misses + 2, "block 15 is still cached");
    // Fill with other blocks until the dirty one goes: it reaches the device then.
    for blk in 200..220u64 {
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
    // The first miss reads one block, the following ones 32 KiB at a time.
    assert_eq!(c.stats().device_reads, 1 + 63usize.div_ceil(8) as u64);
    assert!(c.device().log.iter().all(|e| e.2 <= 64));
    for (i, chunk) in buf.chunks(512).enumerate() {
        assert!(chunk.iter().all(|&x| x == i as u8), "sector {i}");
    }
}

#[test]
fn boot_block_reaches_the_device_first() {
    let mut c = BlockCache::new(Mem::new(4096), 16).unwrap();
    c.write_at(70 * BLOCK_BYTES as u64, b"data").unwrap();
    c.write_at(65, &[1]).unwrap();
    // Evict block 70 (the oldest) by reading 15 others.
    let mut b = [0u8; 1];
    for blk in (100..130u64).step_by(2) {
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
