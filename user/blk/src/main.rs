//! `blk`: the virtio-blk driver. The core starts it with the device handle (handle 1) and the
//! server end of its service channel (handle 2); it answers every block-protocol request on that
//! channel (`docs/block-protocol.md`) until the channel closes, one request at a time, sleeping
//! on the device's interrupt channel while the device works.
//!
//! Requests are received straight into DMA memory and read replies are built there, so the
//! device reads and writes the message buffers themselves: no copy between the channel and the
//! disk. Safe Rust: the `unsafe` that `virtio-drivers` needs is in `user/virtio`.
#![no_std]
#![no_main]

use abi::Handle;
use abi::syscall::{DEADLINE_NEVER, WaitItem, signal};
use blkproto::{Error, HEADER_LEN, MAX_DATA, Reply, Request, SECTOR_SIZE};
use moxie_rt::{chan, println};
use moxie_virtio::block::DeviceError;
use moxie_virtio::{Block, hal};

/// The device handle the core gave.
const DEVICE: Handle = Handle::new(1, 0);
/// The service channel (the block protocol).
const SERVICE: Handle = Handle::new(2, 0);
/// Pages of one message buffer: room for the largest channel message.
const BUFFER_PAGES: usize = abi::limits::MAX_MESSAGE_BYTES / abi::layout::PAGE_SIZE as usize;

/// The reply to bytes that do not decode: under their operation when it is known, else a
/// rejection (the client always gets an answer).
fn undecodable(msg: &[u8], error: Error) -> Reply<'static> {
    let id = blkproto::peek_id(msg).unwrap_or(0);
    let op = if msg.first() == Some(&blkproto::MAGIC) {
        msg.get(2).copied()
    } else {
        None
    };
    match op {
        Some(1) => Reply::Read {
            id,
            result: Err(error),
        },
        Some(2) => Reply::Write {
            id,
            result: Err(error),
        },
        Some(3) => Reply::Flush {
            id,
            result: Err(error),
        },
        Some(4) => Reply::Capacity {
            id,
            result: Err(error),
        },
        _ => Reply::Rejected { id, error },
    }
}

/// True when `count` sectors from `sector` on lie inside the device.
fn in_range(blk: &Block, sector: u64, count: u64) -> bool {
    sector
        .checked_add(count)
        .is_some_and(|end| end <= blk.capacity())
}

fn io_error(e: DeviceError) -> Error {
    match e {
        DeviceError::Unsupported => Error::Unsupported,
        _ => Error::Io,
    }
}

/// Serves one request in `msg`; writes the reply into `out` and returns its length.
fn serve(blk: &mut Block, msg: &[u8], out: &mut [u8]) -> usize {
    let reply = match Request::decode(msg) {
        Err(e) => undecodable(msg, e.reply_error()),
        Ok(Request::Read { id, sector, count }) => {
            let len = count as usize * SECTOR_SIZE;
            if !in_range(blk, sector, u64::from(count)) {
                Reply::Read {
                    id,
                    result: Err(Error::OutOfRange),
                }
            } else {
                match blk.read(sector, &mut out[HEADER_LEN..HEADER_LEN + len]) {
                    Ok(()) => {
                        // The data is in place after the header; only the header remains.
                        return Reply::encode_read_in_place(out, id, len).unwrap_or(0);
                    }
                    Err(e) => Reply::Read {
                        id,
                        result: Err(io_error(e)),
                    },
                }
            }
        }
        Ok(Request::Write { id, sector, data }) => {
            let result = if blk.readonly() {
                Err(Error::ReadOnly)
            } else if !in_range(blk, sector, (data.len() / SECTOR_SIZE) as u64) {
                Err(Error::OutOfRange)
            } else {
                blk.write(sector, data).map_err(io_error)
            };
            Reply::Write { id, result }
        }
        Ok(Request::Flush { id }) => Reply::Flush {
            id,
            result: blk.flush().map_err(io_error),
        },
        Ok(Request::Capacity { id }) => Reply::Capacity {
            id,
            result: Ok(blk.capacity()),
        },
    };
    reply.encode(out).unwrap_or(0)
}

/// Sends `reply`, waiting for room when the client's buffer is full; false once the client has
/// gone.
fn send(reply: &[u8]) -> bool {
    loop {
        match chan::send(SERVICE, reply, &[]) {
            Ok(()) => return true,
            Err(abi::Error::Full) => {
                let mut items = [WaitItem {
                    handle: SERVICE.0,
                    wanted: signal::WRITABLE | signal::PEER_CLOSED,
                    ..Default::default()
                }];
                if chan::wait(&mut items, DEADLINE_NEVER).is_err() {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
}

/// Entry, called by the runtime.
#[unsafe(no_mangle)]
pub extern "C" fn main(_arg: u64) -> i32 {
    let mut blk = match Block::open(DEVICE) {
        Ok(b) => b,
        Err(e) => {
            println!("blk: cannot open the device: {:?}", e);
            return 1;
        }
    };
    println!(
        "blk: virtio-blk, {} sectors of {} bytes{}",
        blk.capacity(),
        SECTOR_SIZE,
        if blk.readonly() { ", read-only" } else { "" }
    );
    let (Some(inbuf), Some(outbuf)) = (hal::buffer(BUFFER_PAGES), hal::buffer(BUFFER_PAGES)) else {
        println!("blk: no DMA memory for the message buffers");
        return 2;
    };
    debug_assert!(outbuf.len() >= HEADER_LEN + MAX_DATA);
    let mut handles = [Handle(0); abi::limits::MAX_MESSAGE_HANDLES];
    // The length of a request already received (by the reply's `send_recv`).
    let mut next = None;
    loop {
        let got = match next.take() {
            Some(n) => Ok((n, 0)),
            None => chan::recv(SERVICE, inbuf, &mut handles, DEADLINE_NEVER),
        };
        let n = match got {
            Ok((n, count)) => {
                // The protocol carries no handles: close any that came along.
                for h in &handles[..count] {
                    let _ = chan::close(*h);
                }
                n
            }
            Err(abi::Error::Closed) => {
                let s = blk.stats();
                println!(
                    "blk: client gone after {} requests ({} interrupts, {} polled, {} timeouts)",
                    s.requests, s.interrupts, s.polled, s.timeouts
                );
                return 0;
            }
            Err(e) => {
                println!("blk: receive failed: {}", e);
                return 3;
            }
        };
        let len = serve(&mut blk, &inbuf[..n], outbuf);
        if len == 0 {
            return 0;
        }
        // The reply and the wait for the next request in one system call; when the client's
        // buffer is full, or the next message carries handles, the plain calls instead.
        match chan::send_recv(SERVICE, &outbuf[..len], inbuf, DEADLINE_NEVER) {
            Ok(n) => next = Some(n),
            Err(abi::Error::Full) => {
                if !send(&outbuf[..len]) {
                    return 0;
                }
            }
            // Sent; the next message is left for `recv` (it carries handles, or it is the
            // channel's end).
            Err(abi::Error::TooBig | abi::Error::Closed) => {}
            Err(_) => return 0,
        }
    }
}
