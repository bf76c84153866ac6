//! `fs`: the filesystem driver. Handle 0 is its parent channel, handle 1 a channel to the block
//! driver; it mounts the FAT volume there and serves the filesystem protocol on its parent
//! channel and on every channel handed to it by a connect message (`docs/fs-protocol.md`). All
//! the logic is `fatserve`'s, tested on the host; this program only moves messages.
#![no_std]
#![no_main]

extern crate alloc;

use abi::syscall::{DEADLINE_NEVER, DEADLINE_NOW, MAX_WAIT_ITEMS, WaitItem, signal};
use abi::{Error, Handle};
use alloc::vec;
use alloc::vec::Vec;
use fatserve::{BlockDevice, FatServer};
use moxie_rt::chan;
use moxie_rt::println;

const PARENT: Handle = Handle(0);
const BLOCK: Handle = Handle(1);

/// Exit code when the volume does not mount.
const EXIT_NO_VOLUME: i32 = 2;

/// The block driver, reached by the block protocol over a channel: one request at a time.
struct ChanDevice {
    h: Handle,
    next_id: u32,
    msg: Vec<u8>,
    reply: Vec<u8>,
}

impl ChanDevice {
    /// Sends one request and waits for its reply; `f` reads the reply.
    fn call<T>(
        &mut self,
        req: blkproto::Request<'_>,
        f: impl FnOnce(blkproto::Reply<'_>) -> Result<T, blkproto::Error>,
    ) -> Result<T, blkproto::Error> {
        let len = req
            .encode(&mut self.msg)
            .map_err(|_| blkproto::Error::BadRequest)?;
        let n = exchange(self.h, &self.msg[..len], &mut self.reply)?;
        let reply = blkproto::Reply::decode(&self.reply[..n]).map_err(|_| blkproto::Error::Io)?;
        if reply.id() != req.id() {
            return Err(blkproto::Error::Io);
        }
        f(reply)
    }

    fn id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }
}

impl BlockDevice for ChanDevice {
    fn sectors(&mut self) -> Result<u64, blkproto::Error> {
        let id = self.id();
        self.call(blkproto::Request::Capacity { id }, |r| match r {
            blkproto::Reply::Capacity { result, .. } => result,
            _ => Err(blkproto::Error::Io),
        })
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), blkproto::Error> {
        let id = self.id();
        let count = (buf.len() / blkproto::SECTOR_SIZE) as u32;
        let req = blkproto::Request::Read { id, sector, count };
        self.call(req, |r| match r {
            blkproto::Reply::Read { result, .. } => {
                let data = result?;
                if data.len() != buf.len() {
                    return Err(blkproto::Error::Io);
                }
                buf.copy_from_slice(data);
                Ok(())
            }
            _ => Err(blkproto::Error::Io),
        })
    }

    fn read_framed(&mut self, sector: u64, frame: &mut [u8]) -> Result<(), blkproto::Error> {
        // The reply is received into the frame whole: its data lands where it belongs.
        let id = self.id();
        let len = frame.len() - blkproto::HEADER_LEN;
        let count = (len / blkproto::SECTOR_SIZE) as u32;
        let req = blkproto::Request::Read { id, sector, count };
        let n = req
            .encode(&mut self.msg)
            .map_err(|_| blkproto::Error::BadRequest)?;
        let got = match exchange(self.h, &self.msg[..n], frame) {
            Ok(got) => got,
            Err(e) => {
                // A reply too big for the frame is not the one asked for; take it off the
                // channel so that it does not answer the next request.
                let _ = chan::recv(self.h, &mut self.reply, &mut [], DEADLINE_NOW);
                return Err(e);
            }
        };
        match blkproto::Reply::decode(&frame[..got]) {
            Ok(blkproto::Reply::Read { id: r, result }) if r == id => match result {
                Ok(data) if data.len() == len => Ok(()),
                Ok(_) => Err(blkproto::Error::Io),
                Err(e) => Err(e),
            },
            _ => Err(blkproto::Error::Io),
        }
    }

    fn write_framed(&mut self, sector: u64, frame: &mut [u8]) -> Result<(), blkproto::Error> {
        // The request is built around the data where it lies and sent from there.
        let id = self.id();
        let len = frame.len() - blkproto::HEADER_LEN;
        let n = blkproto::Request::encode_write_in_place(frame, id, sector, len)
            .map_err(|_| blkproto::Error::BadRequest)?;
        let got = exchange(self.h, &frame[..n], &mut self.reply)?;
        match blkproto::Reply::decode(&self.reply[..got]) {
            Ok(blkproto::Reply::Write { id: r, result }) if r == id => result,
            _ => Err(blkproto::Error::Io),
        }
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), blkproto::Error> {
        let id = self.id();
        let req = blkproto::Request::Write {
            id,
            sector,
            data: buf,
        };
        self.call(req, |r| match r {
            blkproto::Reply::Write { result, .. } => result,
            _ => Err(blkproto::Error::Io),
        })
    }

    fn flush(&mut self) -> Result<(), blkproto::Error> {
        let id = self.id();
        self.call(blkproto::Request::Flush { id }, |r| match r {
            blkproto::Reply::Flush { result, .. } => result,
            _ => Err(blkproto::Error::Io),
        })
    }
}

/// Sends `req` on `h` and receives the reply into `reply`, in one system call when the
/// block driver's buffer has room (else after waiting for it); returns the reply's length.
fn exchange(h: Handle, req: &[u8], reply: &mut [u8]) -> Result<usize, blkproto::Error> {
    match chan::send_recv(h, req, reply, DEADLINE_NEVER) {
        Ok(n) => Ok(n),
        Err(Error::Full) => {
            send(h, req).map_err(|_| blkproto::Error::Io)?;
            chan::recv(h, reply, &mut [], DEADLINE_NEVER)
                .map(|(n, _)| n)
                .map_err(|_| blkproto::Error::Io)
        }
        Err(_) => Err(blkproto::Error::Io),
    }
}

/// Sends, waiting for room when the peer's buffer is full (a send never blocks, so the wait
/// is ours to do).
fn send(h: Handle, bytes: &[u8]) -> Result<(), Error> {
    loop {
        match chan::send(h, bytes, &[]) {
            Err(Error::Full) => {
                let mut item = [WaitItem {
                    handle: h.0,
                    wanted: signal::WRITABLE | signal::PEER_CLOSED,
                    ..WaitItem::default()
                }];
                chan::wait(&mut item, DEADLINE_NEVER)?;
            }
            r => return r,
        }
    }
}

/// Entry, called by the runtime.
#[unsafe(no_mangle)]
pub extern "C" fn main(_arg: u64) -> i32 {
    let dev = ChanDevice {
        h: BLOCK,
        next_id: 0,
        msg: vec![0; blkproto::MAX_MESSAGE],
        reply: vec![0; blkproto::MAX_MESSAGE],
    };
    let mut srv = match FatServer::mount(dev) {
        Ok(s) => s,
        Err(e) => {
            println!("fs: no volume on the block device: {e}");
            return EXIT_NO_VOLUME;
        }
    };
    println!("fs: volume mounted");
    serve(&mut srv);
    0
}

/// Serves every channel it holds until none is left open.
fn serve<D: BlockDevice>(srv: &mut FatServer<D>) {
    let mut clients: Vec<Handle> = vec![PARENT];
    let mut msg = vec![0u8; fsproto::MAX_MESSAGE];
    let mut out = vec![0u8; fsproto::MAX_MESSAGE];
    let mut gifts = [Handle(0); abi::limits::MAX_MESSAGE_HANDLES];
    // Kept from one round to the next: a request is served without allocating.
    let (mut items, mut gone, mut joined) = (Vec::new(), Vec::new(), Vec::new());
    while !clients.is_empty() {
        items.clear();
        items.extend(clients.iter().map(|h| WaitItem {
            handle: h.0,
            wanted: signal::READABLE | signal::PEER_CLOSED,
            ..WaitItem::default()
        }));
        if chan::wait(&mut items, DEADLINE_NEVER).is_err() {
            return;
        }
        for (i, item) in items.iter().enumerate() {
            let h = clients[i];
            if item.observed & signal::READABLE == 0 {
                if item.observed & signal::PEER_CLOSED != 0 {
                    gone.push(h);
                }
                continue;
            }
            let (n, k) = match chan::recv(h, &mut msg, &mut gifts, DEADLINE_NEVER) {
                Ok(r) => r,
                Err(_) => {
                    gone.push(h);
                    continue;
                }
            };
            if &msg[..n] == fsproto::CONNECT {
                joined.extend_from_slice(&gifts[..k]);
                continue;
            }
            // Requests carry no handles; any that came along are not kept.
            for g in &gifts[..k] {
                let _ = chan::close(*g);
            }
            let len = srv.serve(&mut msg[..n], &mut out);
            if send(h, &out[..len]).is_err() {
                gone.push(h);
            }
        }
        for h in gone.drain(..) {
            clients.retain(|&c| c != h);
            // The parent channel stays open for death reports of nothing; clients are closed.
            if h != PARENT {
                let _ = chan::close(h);
            }
        }
        for h in joined.drain(..) {
            if clients.len() < MAX_WAIT_ITEMS {
                clients.push(h);
            } else {
                println!("fs: too many clients; refusing a connection");
                let _ = chan::close(h);
            }
        }
    }
}
