//! `ramblk`: a block driver whose disk is memory. The spawn argument is the size in MiB (0:
//! 40 MiB, enough for FAT32 with 512-byte clusters); at start the disk is formatted empty by
//! `fatserve::format` (FAT32 from about 33 MiB, a smaller FAT below). It serves the block
//! protocol (`docs/block-protocol.md`) on its parent channel and on every channel handed to
//! it by a connect message (`blkproto::CONNECT` with endpoints attached).
//!
//! The disk is sparse: 4 KiB blocks that were never written, or were written with zeros, take
//! no memory and read as zeros. Its contents live as long as the process: a restarted ramblk
//! starts with a new, empty volume.
#![no_std]
#![no_main]

extern crate alloc;

use abi::Handle;
use abi::syscall::{DEADLINE_NEVER, MAX_WAIT_ITEMS, WaitItem, signal};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use blkproto::{Reply, Request, SECTOR_SIZE};
use fatserve::BlockDevice;
use moxie_rt::{chan, println};

const PARENT: Handle = Handle(0);
const BLOCK: usize = 4096;
const DEFAULT_MIB: u64 = 40;
/// Exit code when formatting fails.
const EXIT_FORMAT: i32 = 2;

/// The sparse disk.
struct RamDisk {
    sectors: u64,
    blocks: BTreeMap<u64, Box<[u8; BLOCK]>>,
}

impl RamDisk {
    fn in_range(&self, sector: u64, bytes: usize) -> bool {
        sector
            .checked_add((bytes / SECTOR_SIZE) as u64)
            .is_some_and(|end| end <= self.sectors)
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) {
        let mut done = 0;
        while done < buf.len() {
            let at = pos + done as u64;
            let (b, off) = (at / BLOCK as u64, (at % BLOCK as u64) as usize);
            let n = (BLOCK - off).min(buf.len() - done);
            match self.blocks.get(&b) {
                Some(block) => buf[done..done + n].copy_from_slice(&block[off..off + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
    }

    fn write_at(&mut self, pos: u64, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            let at = pos + done as u64;
            let (b, off) = (at / BLOCK as u64, (at % BLOCK as u64) as usize);
            let n = (BLOCK - off).min(data.len() - done);
            let part = &data[done..done + n];
            let zeros = part.iter().all(|&x| x == 0);
            match self.blocks.get_mut(&b) {
                Some(block) => {
                    block[off..off + n].copy_from_slice(part);
                    if zeros && block.iter().all(|&x| x == 0) {
                        self.blocks.remove(&b);
                    }
                }
                None if zeros => {}
                None => {
                    let mut block = Box::new([0u8; BLOCK]);
                    block[off..off + n].copy_from_slice(part);
                    self.blocks.insert(b, block);
                }
            }
            done += n;
        }
    }
}

impl BlockDevice for RamDisk {
    fn sectors(&mut self) -> Result<u64, blkproto::Error> {
        Ok(self.sectors)
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), blkproto::Error> {
        if !self.in_range(sector, buf.len()) {
            return Err(blkproto::Error::OutOfRange);
        }
        self.read_at(sector * SECTOR_SIZE as u64, buf);
        Ok(())
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), blkproto::Error> {
        if !self.in_range(sector, buf.len()) {
            return Err(blkproto::Error::OutOfRange);
        }
        self.write_at(sector * SECTOR_SIZE as u64, buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), blkproto::Error> {
        Ok(())
    }
}

/// Answers one request into `out`; returns the reply's length.
fn serve(disk: &mut RamDisk, msg: &[u8], out: &mut [u8]) -> usize {
    let reply = match Request::decode(msg) {
        Ok(Request::Read { id, sector, count }) => {
            let len = count as usize * SECTOR_SIZE;
            let data = &mut out[blkproto::HEADER_LEN..blkproto::HEADER_LEN + len];
            match disk.read(sector, data) {
                Ok(()) => match Reply::encode_read_in_place(out, id, len) {
                    Ok(n) => return n,
                    Err(_) => Reply::Read {
                        id,
                        result: Err(blkproto::Error::TooBig),
                    },
                },
                Err(e) => Reply::Read { id, result: Err(e) },
            }
        }
        Ok(Request::Write { id, sector, data }) => Reply::Write {
            id,
            result: disk.write(sector, data),
        },
        Ok(Request::Flush { id }) => Reply::Flush { id, result: Ok(()) },
        Ok(Request::Capacity { id }) => Reply::Capacity {
            id,
            result: Ok(disk.sectors),
        },
        Err(e) => Reply::Rejected {
            id: blkproto::peek_id(msg).unwrap_or(0),
            error: e.reply_error(),
        },
    };
    reply.encode(out).unwrap_or(0)
}

/// Entry, called by the runtime.
#[unsafe(no_mangle)]
pub extern "C" fn main(arg: u64) -> i32 {
    let mib = if arg == 0 { DEFAULT_MIB } else { arg };
    let disk = RamDisk {
        sectors: (mib << 20) / SECTOR_SIZE as u64,
        blocks: BTreeMap::new(),
    };
    let mut disk = match fatserve::format(disk, b"MOXIE RAM  ") {
        Ok(d) => d,
        Err(e) => {
            println!("ramblk: cannot format the RAM disk: {:?}", e);
            return EXIT_FORMAT;
        }
    };
    println!(
        "ramblk: {} MiB RAM disk, formatted FAT{}",
        mib,
        if disk.sectors >= fatserve::FAT32_MIN_SECTORS {
            "32"
        } else {
            ""
        }
    );
    let mut clients: Vec<Handle> = vec![PARENT];
    let mut msg = vec![0u8; blkproto::MAX_MESSAGE];
    let mut out = vec![0u8; blkproto::MAX_MESSAGE];
    let mut gifts = [Handle(0); abi::limits::MAX_MESSAGE_HANDLES];
    while !clients.is_empty() {
        let mut items: Vec<WaitItem> = clients
            .iter()
            .map(|h| WaitItem {
                handle: h.0,
                wanted: signal::READABLE | signal::PEER_CLOSED,
                ..WaitItem::default()
            })
            .collect();
        if chan::wait(&mut items, DEADLINE_NEVER).is_err() {
            return 0;
        }
        let mut gone = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let h = clients[i];
            if item.observed & signal::READABLE == 0 {
                if item.observed & signal::PEER_CLOSED != 0 {
                    gone.push(h);
                }
                continue;
            }
            let Ok((n, k)) = chan::recv(h, &mut msg, &mut gifts, DEADLINE_NEVER) else {
                gone.push(h);
                continue;
            };
            if &msg[..n] == blkproto::CONNECT {
                for g in &gifts[..k] {
                    if clients.len() < MAX_WAIT_ITEMS {
                        clients.push(*g);
                    } else {
                        let _ = chan::close(*g);
                    }
                }
                continue;
            }
            for g in &gifts[..k] {
                let _ = chan::close(*g);
            }
            let len = serve(&mut disk, &msg[..n], &mut out);
            if chan::send(h, &out[..len], &[]).is_err() {
                gone.push(h);
            }
        }
        for h in gone {
            clients.retain(|&c| c != h);
            if h != PARENT {
                let _ = chan::close(h);
            }
        }
    }
    0
}
