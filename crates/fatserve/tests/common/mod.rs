//! Shared helpers of the FAT tests: a file-backed block device (with injectable failures), the
//! host's FAT tools (`mkfs.fat`, mtools, `fsck.fat`), deterministic file contents, and a client
//! that talks to the server in protocol bytes, as `user/fs`'s clients do.
#![allow(dead_code)]

use fatserve::{BlockDevice, FatServer};
use fsproto::{DirEntry, Error, Kind, MAX_DATA, MAX_MESSAGE, Reply, Request, Stat};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A disk image file as a block device; `fail_*` make the next requests fail.
pub struct FileDevice {
    pub file: File,
    pub sectors: u64,
    pub fail_reads: bool,
    pub fail_writes: bool,
    pub writes: u64,
}

impl FileDevice {
    pub fn open(path: &Path) -> FileDevice {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let sectors = file.metadata().unwrap().len() / 512;
        FileDevice {
            file,
            sectors,
            fail_reads: false,
            fail_writes: false,
            writes: 0,
        }
    }
}

impl BlockDevice for FileDevice {
    fn sectors(&mut self) -> Result<u64, blkproto::Error> {
        Ok(self.sectors)
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), blkproto::Error> {
        assert!(
            buf.len().is_multiple_of(512) && buf.len() <= blkproto::MAX_DATA && !buf.is_empty()
        );
        if self.fail_reads {
            return Err(blkproto::Error::Io);
        }
        if sector + (buf.len() / 512) as u64 > self.sectors {
            return Err(blkproto::Error::OutOfRange);
        }
        self.file.read_exact_at(buf, sector * 512).unwrap();
        Ok(())
    }

    fn read_framed(&mut self, sector: u64, frame: &mut [u8]) -> Result<(), blkproto::Error> {
        // As a block-protocol client does: the room before the data gets the reply's header
        // (here: bytes no file has), so a read that trusted those bytes would show it.
        let (room, data) = frame.split_at_mut(blkproto::HEADER_LEN);
        room.fill(0xEE);
        self.read(sector, data)
    }

    fn write_framed(&mut self, sector: u64, frame: &mut [u8]) -> Result<(), blkproto::Error> {
        // As a block-protocol client does: the request's header goes in the room before the
        // data, so a write that left bytes it still needs there would show it.
        let (room, data) = frame.split_at_mut(blkproto::HEADER_LEN);
        room.fill(0xEE);
        self.write(sector, data)
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), blkproto::Error> {
        assert!(
            buf.len().is_multiple_of(512) && buf.len() <= blkproto::MAX_DATA && !buf.is_empty()
        );
        if self.fail_writes {
            return Err(blkproto::Error::Io);
        }
        if sector + (buf.len() / 512) as u64 > self.sectors {
            return Err(blkproto::Error::OutOfRange);
        }
        self.writes += 1;
        self.file.write_all_at(buf, sector * 512).unwrap();
        Ok(())
    }

    fn flush(&mut self) -> Result<(), blkproto::Error> {
        if self.fail_writes {
            return Err(blkproto::Error::Io);
        }
        self.file.sync_data().unwrap();
        Ok(())
    }
}

/// Finds a host tool in PATH or the sbin folders. Missing tools fail the test under CI=true;
/// elsewhere the test is skipped with a message (`cargo xtask test` installs them first).
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{name} is missing (install dosfstools and mtools; cargo xtask test does)");
        }
        eprintln!("skipped: {name} is missing (install dosfstools and mtools)");
    }
    found
}

/// Whether every tool the FAT tests need is present (see [`tool`]).
pub fn have_tools() -> bool {
    ["mkfs.fat", "fsck.fat", "mcopy", "mmd", "mdir"]
        .iter()
        .all(|t| tool(t).is_some())
}

/// Runs a host tool; panics with its output if it fails.
pub fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(tool(name).expect("tool present"))
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} {args:?} failed:\n{text}");
    text
}

/// A fresh folder under the target directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fatserve")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Makes a FAT image of `kib` KiB with `mkfs.fat -F bits`.
pub fn mkfs(img: &Path, kib: u64, bits: u32) {
    run(
        "mkfs.fat",
        &[
            "-F",
            &bits.to_string(),
            "-C",
            img.to_str().unwrap(),
            &kib.to_string(),
        ],
    );
}

/// `fsck.fat -n` on the image: Ok(its output) if it found nothing to fix.
pub fn fsck(img: &Path) -> Result<String, String> {
    let out = Command::new(tool("fsck.fat").unwrap())
        .args(["-n", img.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // fsck.fat -n exits 0 on a clean volume, 1 when it found errors; the dirty bit is only
    // reported in the text.
    if out.status.success() && !text.contains("Dirty bit") && !text.contains("will be") {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Copies a file out of the image with mcopy.
pub fn mcopy_out(img: &Path, inside: &str, dir: &Path) -> Vec<u8> {
    let dest = dir.join("mcopy-out");
    let _ = std::fs::remove_file(&dest);
    run(
        "mcopy",
        &[
            "-n",
            "-i",
            img.to_str().unwrap(),
            &format!("::{inside}"),
            dest.to_str().unwrap(),
        ],
    );
    std::fs::read(&dest).unwrap()
}

/// Deterministic pseudo-random contents (xorshift64*), different per seed.
pub fn contents(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Talks to a server in protocol bytes, checking that every reply answers its request.
pub struct Client<D: BlockDevice> {
    pub srv: FatServer<D>,
    next_id: u32,
    out: Vec<u8>,
    msg: Vec<u8>,
}

/// A directory entry with an owned name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ent {
    pub name: String,
    pub kind: Kind,
    pub size: u64,
}

impl From<DirEntry<'_>> for Ent {
    fn from(e: DirEntry<'_>) -> Ent {
        Ent {
            name: e.name.to_string(),
            kind: e.kind,
            size: e.size,
        }
    }
}

impl<D: BlockDevice> Client<D> {
    pub fn new(srv: FatServer<D>) -> Self {
        Client {
            srv,
            next_id: 1,
            out: vec![0; MAX_MESSAGE],
            msg: vec![0; MAX_MESSAGE],
        }
    }

    /// Sends raw bytes; returns the raw reply.
    pub fn raw(&mut self, bytes: &[u8]) -> Vec<u8> {
        let n = self.srv.serve(&mut bytes.to_vec(), &mut self.out);
        self.out[..n].to_vec()
    }

    /// Encodes, serves and decodes one request; `f` reads the reply.
    pub fn call<T>(&mut self, mut req: Request<'_>, f: impl FnOnce(Reply<'_>) -> T) -> T {
        let id = self.next_id;
        self.next_id += 1;
        req.set_id(id);
        let len = req.encode(&mut self.msg).expect("request encodes");
        let n = self.srv.serve(&mut self.msg[..len], &mut self.out);
        let reply = Reply::decode(&self.out[..n]).expect("reply decodes");
        assert_eq!(reply.id(), id, "reply to another request");
        f(reply)
    }

    pub fn lookup(&mut self, path: &str) -> Result<Kind, Error> {
        self.call(Request::Lookup { id: 0, path }, |r| match r {
            Reply::Lookup { result, .. } => result,
            r => panic!("{r:?}"),
        })
    }

    pub fn stat(&mut self, path: &str) -> Result<Stat, Error> {
        self.call(Request::Stat { id: 0, path }, |r| match r {
            Reply::Stat { result, .. } => result,
            r => panic!("{r:?}"),
        })
    }

    pub fn read(&mut self, path: &str, offset: u64, len: u32) -> Result<(Vec<u8>, u64), Error> {
        let req = Request::Read {
            id: 0,
            path,
            offset,
            len,
        };
        self.call(req, |r| match r {
            Reply::Read { result, .. } => result.map(|(d, s)| (d.to_vec(), s)),
            r => panic!("{r:?}"),
        })
    }

    /// The whole file, in protocol-sized reads.
    pub fn read_all(&mut self, path: &str) -> Result<Vec<u8>, Error> {
        let mut all = Vec::new();
        loop {
            let (d, size) = self.read(path, all.len() as u64, MAX_DATA as u32)?;
            all.extend_from_slice(&d);
            if d.is_empty() || all.len() as u64 >= size {
                assert_eq!(all.len() as u64, size, "read stopped short of the size");
                return Ok(all);
            }
        }
    }

    pub fn write(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<u64, Error> {
        let req = Request::Write {
            id: 0,
            path,
            offset,
            data,
        };
        self.call(req, |r| match r {
            Reply::Write { result, .. } => result,
            r => panic!("{r:?}"),
        })
    }

    /// Writes `data` at `offset` in protocol-sized pieces.
    pub fn write_all(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<u64, Error> {
        let mut size = 0;
        for (i, chunk) in data.chunks(MAX_DATA).enumerate() {
            size = self.write(path, offset + (i * MAX_DATA) as u64, chunk)?;
        }
        Ok(size)
    }

    pub fn create(&mut self, path: &str, flags: u32) -> Result<(), Error> {
        self.call(Request::Create { id: 0, path, flags }, |r| match r {
            Reply::Create { result, .. } => result,
            r => panic!("{r:?}"),
        })
    }

    /// Creates (or empties) `path` and writes `data` into it.
    pub fn put(&mut self, path: &str, data: &[u8]) -> Result<(), Error> {
        self.create(path, fsproto::create::TRUNCATE)?;
        self.write_all(path, 0, data).map(|_| ())
    }

    pub fn mkdir(&mut self, path: &str) -> Result<(), Error> {
        self.call(Request::Mkdir { id: 0, path }, |r| match r {
            Reply::Mkdir { result, .. } => result,
            r => panic!("{r:?}"),
        })
    }

    /// One page: its entries and the next cursor.
    pub fn readdir(&mut self, path: &str, cursor: u64) -> Result<(Vec<Ent>, u64), Error> {
        let req = Request::Readdir {
            id: 0,
            path,
            cursor,
        };
        self.call(req, |r| match r {
            Reply::Readdir { result, .. } => {
                result.map(|p| (p.entries().map(Ent::from).collect(), p.next))
            }
            r => panic!("{r:?}"),
        })
    }

    /// Every entry, page by page.
    pub fn ls(&mut self, path: &str) -> Result<Vec<Ent>, Error> {
        let mut all = Vec::new();
        let mut cursor = 0;
        loop {
            let (mut page, next) = self.readdir(path, cursor)?;
            all.append(&mut page);
            if next == fsproto::END_CURSOR {
                return Ok(all);
            }
            cursor = next;
        }
    }

    pub fn remove(&mut self, path: &str) -> Result<(), Error> {
        self.call(Request::Remove { id: 0, path }, |r| match r {
            Reply::Remove { result, .. } => result,
            r => panic!("{r:?}"),
        })
    }

    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), Error> {
        self.call(Request::Rename { id: 0, from, to }, |r| match r {
            Reply::Rename { result, .. } => result,
            r => panic!("{r:?}"),
        })
    }

    pub fn truncate(&mut self, path: &str, size: u64) -> Result<(), Error> {
        self.call(Request::Truncate { id: 0, path, size }, |r| match r {
            Reply::Truncate { result, .. } => result,
            r => panic!("{r:?}"),
        })
    }

    pub fn fsync(&mut self) -> Result<(), Error> {
        self.call(Request::Fsync { id: 0 }, |r| match r {
            Reply::Fsync { result, .. } => result,
            r => panic!("{r:?}"),
        })
    }
}

/// Mounts the image through a file-backed device.
pub fn mount(img: &Path) -> Client<FileDevice> {
    Client::new(FatServer::mount(FileDevice::open(img)).expect("mounts"))
}
