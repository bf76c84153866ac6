//! The core's client of the filesystem protocol (`docs/fs-protocol.md`): whole-file reads for
//! the module loader and the suspended-process images, and the writes, listings and removals
//! of those images.
//!
//! Every call opens a connection of its own ([`super::connect`]), sends one request at a time
//! and blocks the calling kernel thread on each reply for at most 20 s. Every call that
//! changes the volume ends with an `fsync`, so it returns only once the change is on the
//! device: a driver that dies (or a machine that stops) afterwards loses nothing of it.
use super::{MAX_MODULE_BYTES, gone};
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use fsproto::{Kind, Reply, Request};

/// Requests a whole-file read or write keeps in flight: the driver finds the next one queued
/// when it has answered one, so neither side goes to sleep and is woken again per request.
const IN_FLIGHT: usize = 2;

/// How long one request may wait for its reply, unless [`wait_without_deadline`] was called.
const REPLY_TIMEOUT_NS: u64 = 20_000_000_000;

/// Whether requests wait for their replies without a deadline (test boots).
static NO_DEADLINE: AtomicBool = AtomicBool::new(false);

/// Makes every request from now on wait for its reply as long as it takes. For the in-kernel
/// tests: under `-icount` guest time jumps ahead to the next timer whenever the guest idles,
/// also while the host works on a disk request, so any deadline in guest time is arbitrary
/// there; the harness's own timeout catches a driver that hangs.
pub fn wait_without_deadline() {
    NO_DEADLINE.store(true, Ordering::Relaxed);
}
/// Most entries [`list_dir`] accepts: more than a FAT directory can hold (65,536 slots of 32
/// bytes), so only a driver that keeps answering nonsense reaches it.
const MAX_DIR_ENTRIES: usize = 65_536;

/// Why a call on the root filesystem failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsError {
    /// There is no root filesystem (no device, or it did not start).
    NoRoot,
    /// No such file or directory (for reads: also a directory, or a path that cannot name a
    /// file).
    NotFound,
    /// The directory that would hold the new file does not exist.
    NoParent,
    /// A component of the path is a file where a directory is needed.
    NotADirectory,
    /// The path names a directory where a file is needed.
    IsADirectory,
    /// The directory to remove still has entries.
    NotEmpty,
    /// The path is not valid, too long, or holds a name FAT cannot store (the protocol's
    /// `BadPath`, `NameTooLong` or `InvalidName`).
    BadPath(fsproto::Error),
    /// The file is larger than the caller's limit (nothing of it was read).
    TooBig {
        /// The file's size.
        size: u64,
        /// The limit the caller gave.
        limit: u64,
    },
    /// The volume is full.
    Full,
    /// The driver failed, went away, did not answer in time, or answered nonsense.
    Io(String),
}

impl core::fmt::Display for FsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FsError::NoRoot => write!(
                f,
                "there is no root filesystem (boot with root=virtio-blkN naming a disk that holds a FAT volume)"
            ),
            FsError::NotFound => write!(f, "no such file or directory"),
            FsError::NoParent => write!(
                f,
                "the directory to hold the file does not exist (create it first)"
            ),
            FsError::NotADirectory => {
                write!(f, "a component of the path is a file, not a directory")
            }
            FsError::IsADirectory => write!(f, "the path names a directory, not a file"),
            FsError::NotEmpty => {
                write!(f, "the directory is not empty (remove what it holds first)")
            }
            FsError::BadPath(why) => write!(
                f,
                "not a usable path ({why}): absolute, at most {} bytes, names of at most 255 characters, none of \"*:<>?\\| or control characters",
                fsproto::path::MAX_PATH
            ),
            FsError::TooBig { size, limit } => {
                write!(f, "{size} bytes is larger than the {limit}-byte limit")
            }
            FsError::Full => write!(
                f,
                "the root filesystem is full (remove files to make room, then try again)"
            ),
            FsError::Io(why) => write!(f, "I/O error on the root filesystem: {why}"),
        }
    }
}

/// Maps an error the driver answered with.
fn fs_error(e: fsproto::Error) -> FsError {
    use fsproto::Error as E;
    match e {
        E::NotFound => FsError::NotFound,
        E::NotADirectory => FsError::NotADirectory,
        E::IsADirectory => FsError::IsADirectory,
        E::NotEmpty => FsError::NotEmpty,
        E::NoSpace => FsError::Full,
        E::BadPath | E::InvalidName | E::NameTooLong => FsError::BadPath(e),
        other => FsError::Io(String::from(other.as_str())),
    }
}

fn encode_error(e: fsproto::EncodeError) -> FsError {
    FsError::Io(alloc::format!("cannot encode a request: {e:?}"))
}

/// Checks `path` before anything is sent, so that a bad one costs no round trip.
fn check(path: &str) -> Result<(), FsError> {
    fsproto::path::check(path).map_err(FsError::BadPath)
}

/// One connection and its request ids.
struct Client {
    chan: crate::ipc::Endpoint,
    next_id: u32,
    buf: Vec<u8>,
}

impl Client {
    fn new() -> Result<Client, FsError> {
        Ok(Client {
            chan: super::connect()?,
            next_id: 0,
            buf: alloc::vec![0; fsproto::MAX_MESSAGE],
        })
    }

    /// Sends `req` (under a new id) and runs `f` on its reply; `f` answers `None` for a reply
    /// of the wrong kind.
    fn call<T>(
        &mut self,
        req: Request<'_>,
        f: impl FnOnce(Reply<'_>) -> Option<Result<T, FsError>>,
    ) -> Result<T, FsError> {
        let id = self.send(req)?;
        self.await_reply(id, f)
    }

    /// Sends `req` under a new id, which it returns; the reply is [`Client::await_reply`]'s.
    fn send(&mut self, mut req: Request<'_>) -> Result<u32, FsError> {
        let id = self.new_id();
        req.set_id(id);
        let len = req.encode(&mut self.buf).map_err(encode_error)?;
        self.send_encoded(self.buf[..len].to_vec())?;
        Ok(id)
    }

    /// The id of the next request.
    fn new_id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Sends the encoded request `msg`.
    fn send_encoded(&mut self, msg: Vec<u8>) -> Result<(), FsError> {
        self.chan
            .send(channel::Message::new(msg, Vec::new()))
            .map_err(|_| FsError::Io(gone()))
    }

    /// Waits for the reply to request `id` (the next one on the channel: the driver answers a
    /// channel's requests in order) and runs `f` on it; `f` answers `None` for a reply of the
    /// wrong kind.
    fn await_reply<T>(
        &mut self,
        id: u32,
        f: impl FnOnce(Reply<'_>) -> Option<Result<T, FsError>>,
    ) -> Result<T, FsError> {
        let deadline = if NO_DEADLINE.load(Ordering::Relaxed) {
            abi::syscall::DEADLINE_NEVER
        } else {
            crate::arch::apic::now_ns().saturating_add(REPLY_TIMEOUT_NS)
        };
        let msg = self.chan.recv_blocking(deadline).map_err(|e| match e {
            abi::Error::Timeout => FsError::Io("no reply from the filesystem driver".into()),
            _ => FsError::Io(gone()),
        })?;
        let reply = Reply::decode(&msg.bytes)
            .map_err(|e| FsError::Io(alloc::format!("a malformed reply: {e:?}")))?;
        if reply.id() != id {
            return Err(FsError::Io("a reply to another request".into()));
        }
        if let Reply::Rejected { error, .. } = reply {
            return Err(FsError::Io(alloc::format!(
                "request refused: {}",
                error.as_str()
            )));
        }
        f(reply).unwrap_or_else(|| Err(FsError::Io("a reply of the wrong kind".into())))
    }

    /// A request whose reply carries only success or an error (create, mkdir, remove): the
    /// outer error is the transport's, the inner one the driver's answer, which some callers
    /// take as success (`Exists` for a directory that is already there).
    fn simple(&mut self, req: Request<'_>) -> Result<Result<(), fsproto::Error>, FsError> {
        self.call(req, |r| match r {
            Reply::Create { result, .. }
            | Reply::Mkdir { result, .. }
            | Reply::Remove { result, .. } => Some(Ok(result)),
            _ => None,
        })
    }

    /// Makes everything written so far durable (the driver writes its cache and flushes the
    /// device).
    fn fsync(&mut self) -> Result<(), FsError> {
        self.call(Request::Fsync { id: 0 }, |r| match r {
            Reply::Fsync { result, .. } => Some(result.map_err(fs_error)),
            _ => None,
        })
    }

    fn lookup(&mut self, path: &str) -> Result<Kind, FsError> {
        self.call(Request::Lookup { id: 0, path }, |r| match r {
            Reply::Lookup { result, .. } => Some(result.map_err(fs_error)),
            _ => None,
        })
    }
}

/// What `path` is on the root filesystem.
pub fn lookup(path: &str) -> Result<Kind, FsError> {
    check(path)?;
    Client::new()?.lookup(path)
}

/// Reads the whole module file at `path` (absolute) into a kernel buffer, at most
/// [`MAX_MODULE_BYTES`].
pub fn read_file(path: &str) -> Result<Vec<u8>, FsError> {
    read_file_limited(path, MAX_MODULE_BYTES)
}

/// The errors of a read: whatever cannot name a file names no file, so the module loader
/// reports it as missing.
fn read_error(e: fsproto::Error) -> FsError {
    match fs_error(e) {
        FsError::NotADirectory | FsError::IsADirectory | FsError::BadPath(_) => FsError::NotFound,
        other => other,
    }
}

/// Reads the whole file at `path` (absolute) into a kernel buffer; a file over `max` bytes is
/// `TooBig` before any of it is read (the kernel heap is small: see [`read_file_with`] for
/// large files).
pub fn read_file_limited(path: &str, max: u64) -> Result<Vec<u8>, FsError> {
    let mut out = Vec::new();
    read_file_with(path, max, |size, _, bytes| {
        if out.capacity() == 0 {
            out.try_reserve_exact(size as usize)
                .map_err(|_| FsError::Io(alloc::format!("no kernel memory for {size} bytes")))?;
        }
        out.extend_from_slice(bytes);
        Ok(())
    })?;
    Ok(out)
}

/// Reads the file at `path` (absolute) in pieces of at most [`fsproto::MAX_DATA`] bytes,
/// handing each in order to `piece(file size, offset, bytes)`, so that the caller can put
/// them where it wants them (frames rather than the heap); an error from `piece` ends the
/// read and is returned. A file over `max` bytes is `TooBig` before any of it is handed over
/// (the first answer tells the size: no `stat` first); returns the file's size. The file must
/// not change while it is read (its size is checked on every reply): a torn read is an
/// error, never a mix of two versions.
pub fn read_file_with(
    path: &str,
    max: u64,
    mut piece: impl FnMut(u64, u64, &[u8]) -> Result<(), FsError>,
) -> Result<u64, FsError> {
    if fsproto::path::check(path).is_err() {
        return Err(FsError::NotFound);
    }
    let mut c = Client::new()?;
    let chunk = fsproto::MAX_DATA as u64;
    // Reads are asked ahead (IN_FLIGHT at a time) and answered in order; the file's size comes
    // with the first answer, so the first ones ask for whole pieces.
    let mut asked: VecDeque<(u32, u64, u32)> = VecDeque::with_capacity(IN_FLIGHT);
    let mut size: Option<u64> = None;
    let mut next = 0u64;
    loop {
        while asked.len() < IN_FLIGHT && size.is_none_or(|s| next < s) {
            let want = size.map_or(chunk, |s| (s - next).min(chunk)) as u32;
            let req = Request::Read {
                id: 0,
                path,
                offset: next,
                len: want,
            };
            asked.push_back((c.send(req)?, next, want));
            next += u64::from(want);
        }
        let Some((id, at, want)) = asked.pop_front() else {
            break;
        };
        let got = c.await_reply(id, |r| match r {
            Reply::Read { result, .. } => Some(match result {
                Ok((data, now)) => {
                    let s = *size.get_or_insert(now);
                    if s > max {
                        Err(FsError::TooBig {
                            size: s,
                            limit: max,
                        })
                    } else if now != s || data.len() > want as usize || (data.is_empty() && at < s)
                    {
                        Err(FsError::Io("the file changed while it was read".into()))
                    } else if data.is_empty() {
                        // Asked past the end before the size was known.
                        Ok(0)
                    } else {
                        piece(s, at, data).map(|()| data.len() as u64)
                    }
                }
                Err(e) => Err(read_error(e)),
            }),
            _ => None,
        })?;
        let s = size.unwrap_or(0);
        if got < u64::from(want) && at + got < s {
            // A short answer: the reads asked after it start at the wrong places.
            while let Some((id, ..)) = asked.pop_front() {
                c.await_reply(id, |_| Some(Ok(())))?;
            }
            next = at + got;
        }
    }
    Ok(size.unwrap_or(0))
}

/// Writes `bytes` as the whole file at `path` (absolute): creates it, or empties an existing
/// one, writes the bytes in requests of [`fsproto::MAX_DATA`], then syncs the volume, so the
/// file is on the device when this returns. The directory must exist (`NoParent` otherwise;
/// see [`mkdir_all`]). When a write fails the partial file is removed if the driver still
/// answers, so that a full volume does not stay full of it.
pub fn write_file(path: &str, bytes: &[u8]) -> Result<(), FsError> {
    // Each piece is copied once, from `bytes` into its message.
    write_whole(path, bytes.len() as u64, |offset, len, msg| {
        let at = offset as usize;
        msg.extend_from_slice(&bytes[at..at + len]);
        Ok(())
    })
}

/// Writes a file of `size` bytes like [`write_file`], asking `fill(offset, buf)` for each
/// piece in order (`buf` is at most [`fsproto::MAX_DATA`] bytes and must be filled whole), so
/// that the bytes need not sit in one kernel buffer; an error from `fill` ends the write (and
/// removes the partial file) and is returned.
pub fn write_file_with(
    path: &str,
    size: u64,
    mut fill: impl FnMut(u64, &mut [u8]) -> Result<(), FsError>,
) -> Result<(), FsError> {
    write_whole(path, size, |offset, len, msg| {
        let at = msg.len();
        msg.resize(at + len, 0);
        fill(offset, &mut msg[at..])
    })
}

/// [`write_file`] with the data of each piece appended to its message by `put(offset, len,
/// message)`, which adds exactly `len` bytes.
fn write_whole(
    path: &str,
    size: u64,
    mut put: impl FnMut(u64, usize, &mut Vec<u8>) -> Result<(), FsError>,
) -> Result<(), FsError> {
    check(path)?;
    let mut c = Client::new()?;
    let create = Request::Create {
        id: 0,
        path,
        flags: fsproto::create::TRUNCATE,
    };
    c.simple(create)?.map_err(|e| match e {
        // The file itself is being created: only its directory can be missing.
        fsproto::Error::NotFound => FsError::NoParent,
        e => fs_error(e),
    })?;
    if let Err(e) = write_pieces(&mut c, path, size, &mut put) {
        if let Ok(Ok(())) = c.simple(Request::Remove { id: 0, path }) {
            let _ = c.fsync();
        }
        return Err(e);
    }
    c.fsync()
}

/// The writes of [`write_whole`], in order from offset 0 into the emptied file; each message
/// is built where it is sent from (header and path, then the data `put` appends).
fn write_pieces(
    c: &mut Client,
    path: &str,
    size: u64,
    put: &mut impl FnMut(u64, usize, &mut Vec<u8>) -> Result<(), FsError>,
) -> Result<(), FsError> {
    // Writes are sent ahead (IN_FLIGHT at a time); the answers come in order.
    let mut asked: VecDeque<(u32, u64)> = VecDeque::with_capacity(IN_FLIGHT);
    let mut offset = 0u64;
    while offset < size || !asked.is_empty() {
        if offset < size && asked.len() < IN_FLIGHT {
            let len = (size - offset).min(fsproto::MAX_DATA as u64) as usize;
            let id = c.new_id();
            let head = Request::encode_write_head(id, path, offset, len, &mut c.buf)
                .map_err(encode_error)?;
            let mut msg = Vec::new();
            msg.try_reserve_exact(head + len)
                .map_err(|_| FsError::Io(alloc::format!("no kernel memory for {len} bytes")))?;
            msg.extend_from_slice(&c.buf[..head]);
            put(offset, len, &mut msg)?;
            if msg.len() != head + len {
                return Err(FsError::Io("a piece of the wrong size".into()));
            }
            c.send_encoded(msg)?;
            offset += len as u64;
            asked.push_back((id, offset));
            continue;
        }
        let Some((id, end)) = asked.pop_front() else {
            break;
        };
        let now = c.await_reply(id, |r| match r {
            Reply::Write { result, .. } => Some(result.map_err(fs_error)),
            _ => None,
        })?;
        if now != end {
            return Err(FsError::Io("the file changed while it was written".into()));
        }
    }
    Ok(())
}

/// Removes the file or empty directory at `path` and syncs the volume, so the removal is on
/// the device when this returns.
pub fn remove(path: &str) -> Result<(), FsError> {
    check(path)?;
    let mut c = Client::new()?;
    c.simple(Request::Remove { id: 0, path })?
        .map_err(fs_error)?;
    c.fsync()
}

/// Every entry of the directory at `path`: name and size, in directory order, all pages of
/// it. A subdirectory is listed too, with size 0 ([`lookup`] tells it from an empty file).
pub fn list_dir(path: &str) -> Result<Vec<(String, u64)>, FsError> {
    check(path)?;
    let mut c = Client::new()?;
    let mut out = Vec::new();
    let mut cursor = 0;
    loop {
        let req = Request::Readdir {
            id: 0,
            path,
            cursor,
        };
        let (next, empty) = c.call(req, |r| match r {
            Reply::Readdir { result, .. } => Some(result.map_err(fs_error).map(|page| {
                out.extend(page.entries().map(|e| (String::from(e.name), e.size)));
                (page.next, page.is_empty())
            })),
            _ => None,
        })?;
        if next == fsproto::END_CURSOR {
            return Ok(out);
        }
        // Each page that is not the last brings at least one entry and moves the cursor on,
        // so a driver answering nonsense cannot keep the core here.
        if empty || next <= cursor || out.len() > MAX_DIR_ENTRIES {
            return Err(FsError::Io("a directory listing that does not end".into()));
        }
        cursor = next;
    }
}

/// Creates the directory at `path` and each missing directory above it; directories that
/// exist already are fine, a file in the way is `NotADirectory`. Syncs the volume when it
/// created anything.
pub fn mkdir_all(path: &str) -> Result<(), FsError> {
    check(path)?;
    let mut c = Client::new()?;
    // Usually the whole path is there already: one look-up instead of a mkdir and a look-up
    // per component.
    match c.lookup(path) {
        Ok(Kind::Dir) => return Ok(()),
        Ok(Kind::File) => return Err(FsError::NotADirectory),
        Err(_) => {}
    }
    let mut created = false;
    let ends = path
        .match_indices('/')
        .skip(1)
        .map(|(i, _)| i)
        .chain(core::iter::once(path.len()));
    let mut result = Ok(());
    for end in ends {
        let dir = &path[..end];
        if dir == "/" {
            continue;
        }
        result = match c.simple(Request::Mkdir { id: 0, path: dir }) {
            Ok(Ok(())) => {
                created = true;
                Ok(())
            }
            Ok(Err(fsproto::Error::Exists)) => match c.lookup(dir) {
                Ok(Kind::Dir) => Ok(()),
                Ok(Kind::File) => Err(FsError::NotADirectory),
                Err(e) => Err(e),
            },
            Ok(Err(e)) => Err(fs_error(e)),
            Err(e) => Err(e),
        };
        if result.is_err() {
            break;
        }
    }
    // What was created is made durable even when a deeper component failed.
    if created {
        let synced = c.fsync();
        result?;
        return synced;
    }
    result
}
