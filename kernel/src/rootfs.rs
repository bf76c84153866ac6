//! The root filesystem as the core sees it: the block driver and the filesystem driver it
//! started from the boot bundle for the `root=` device, and a small client of the filesystem
//! protocol (`docs/fs-protocol.md`) that reads whole module files for the ELF loader.
//!
//! The core keeps a client channel of its own to the filesystem driver and never sends requests
//! on it: every read opens its own connection (`MXFSCONN` with a new channel end sent there),
//! so concurrent spawns on several cores never share a channel, and a request is answered on
//! the channel it came on. The driver's parent channel (its death report) goes to init, which
//! supervises the driver and restarts it through the system handle ([`restart`]). The calling thread blocks while it waits for a reply,
//! with a deadline, so a stuck driver makes a spawn fail rather than hang.
use crate::ipc::{Endpoint, Object};
use crate::process::Pid;
use abi::Rights;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use fsproto::{Kind, Reply, Request};
use spin::Mutex;

/// The largest module the core reads from disk (a bigger file is refused before any of it is
/// read).
pub const MAX_MODULE_BYTES: u64 = 16 << 20;
/// How long one request may wait for its reply.
const REPLY_TIMEOUT_NS: u64 = 20_000_000_000;

/// The filesystem driver the core started, once it has.
struct Root {
    /// The device it serves, as `root=` named it.
    device: String,
    /// Its number among the virtio-blk functions.
    index: usize,
    /// The block driver's pid.
    blk_pid: Pid,
    /// The filesystem driver's pid.
    fs_pid: Pid,
    /// The core's client channel to the driver, on which it sends a connect message for
    /// each read (the driver accepts them on any channel).
    conn: Endpoint,
    /// The core's end of the driver's parent channel until init takes it.
    parent: Option<Endpoint>,
}

static ROOT: Mutex<Option<Root>> = Mutex::new(None);

/// Why a file could not be read from the root filesystem.
#[derive(Debug)]
pub enum ReadError {
    /// There is no root filesystem (no device, or it did not start).
    NoRoot,
    /// No such file (or it is a directory).
    NotFound,
    /// The file is larger than [`MAX_MODULE_BYTES`].
    TooBig(u64),
    /// The driver failed, went away, did not answer in time, or answered nonsense.
    Io(String),
}

impl core::fmt::Display for ReadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReadError::NoRoot => write!(f, "there is no root filesystem"),
            ReadError::NotFound => write!(f, "no such file"),
            ReadError::TooBig(n) => write!(
                f,
                "{n} bytes is larger than the {MAX_MODULE_BYTES}-byte module limit"
            ),
            ReadError::Io(why) => write!(f, "I/O error on the root filesystem: {why}"),
        }
    }
}

/// Parses a `root=` value: `virtio-blkN`, the Nth virtio-blk function in PCI scan order.
pub fn parse_device(root: &str) -> Option<usize> {
    root.strip_prefix("virtio-blk")?.parse().ok()
}

/// Starts the block driver for `root` and the filesystem driver on it, both from the boot
/// bundle. On success the core reads modules from that filesystem from now on.
pub fn start(root: &str) -> Result<(), String> {
    let index = parse_device(root).ok_or_else(|| {
        alloc::format!("root={root} is not a device name (virtio-blkN, e.g. virtio-blk0)")
    })?;
    let (blk_pid, fs_pid) = start_drivers(root, index)?;
    ::log::info!(
        "root filesystem: {root} (block driver pid {blk_pid}, filesystem driver pid {fs_pid})"
    );
    Ok(())
}

/// Starts `bin/blk` for virtio-blk function `index` and `bin/fs` on it, makes them the root
/// filesystem, and checks that the volume is mounted (a first look-up of `/`). A claim that
/// is still `Busy` (the previous block driver is still on its way out) is tried again for
/// up to a second.
fn start_drivers(device: &str, index: usize) -> Result<(Pid, Pid), String> {
    use crate::process::{self, SpawnOptions};
    let mut tries = 0;
    let blk = loop {
        match crate::device::start_block_at(index, false) {
            Ok(b) => break b,
            Err(e) if e.contains("Busy") && tries < 100 => {
                tries += 1;
                crate::sched::block_until(crate::arch::apic::now_ns() + 10_000_000);
            }
            Err(e) => return Err(e),
        }
    };
    // The block driver's death report goes into a void: a dead block driver shows up as I/O
    // errors from the filesystem driver, and it ends by itself when the filesystem driver
    // (its only client) is gone.
    drop(blk.parent);
    let blk_pid = blk.pid;
    let gifts = alloc::vec![(Object::Endpoint(blk.client), Rights::CHANNEL_ALL)];
    let (fs_pid, parent) = process::spawn_with("bin/fs", 0, SpawnOptions::default(), gifts)
        .map_err(|(e, _)| {
            if process::is_live(blk_pid) {
                process::die(blk_pid, crate::process::Death::Killed);
            }
            alloc::format!("cannot start bin/fs: {e}")
        })?;
    let (conn, theirs) = Endpoint::pair();
    let hello = channel::Message::new(
        fsproto::CONNECT.to_vec(),
        alloc::vec![Object::Endpoint(theirs)],
    );
    let sent = parent.send(hello).is_ok();
    *ROOT.lock() = Some(Root {
        device: device.to_string(),
        index,
        blk_pid,
        fs_pid,
        conn,
        parent: Some(parent),
    });
    // The driver mounts the volume before it serves: a first look-up shows whether it did.
    let checked = if sent {
        lookup("/")
    } else {
        Err(ReadError::Io("the filesystem driver is gone".into()))
    };
    match checked {
        Ok(_) => Ok((blk_pid, fs_pid)),
        Err(e) => {
            *ROOT.lock() = None;
            for pid in [fs_pid, blk_pid] {
                if process::is_live(pid) {
                    process::die(pid, crate::process::Death::Killed);
                }
            }
            Err(alloc::format!(
                "{device} holds no volume the filesystem driver serves: {e}"
            ))
        }
    }
}

/// Hands over the root filesystem driver's parent channel (its death reports), once: init
/// supervises the driver (`docs/init.md`).
pub fn take_parent() -> Option<Endpoint> {
    ROOT.lock().as_mut().and_then(|r| r.parent.take())
}

/// Gives back a parent channel [`take_parent`] handed out (init could not be started).
pub fn put_back_parent(parent: Endpoint) {
    if let Some(r) = ROOT.lock().as_mut() {
        r.parent.get_or_insert(parent);
    }
}

/// Starts the root filesystem's drivers again (`system_root_restart`): ends the previous
/// block and filesystem drivers if they still live, starts both from the boot bundle for the
/// same device, reads modules through the new driver from then on, and returns the new
/// driver's parent channel and pid. `NotFound` when the core never had a root filesystem;
/// `Failed` (logged) when the new drivers do not come up.
pub fn restart() -> Result<(Endpoint, Pid), abi::Error> {
    use crate::process;
    let (device, index, old) = {
        let root = ROOT.lock();
        let r = root.as_ref().ok_or(abi::Error::NotFound)?;
        (r.device.clone(), r.index, [r.fs_pid, r.blk_pid])
    };
    for pid in old {
        if process::is_live(pid) {
            process::die(pid, crate::process::Death::Killed);
        }
    }
    match start_drivers(&device, index) {
        Ok((blk_pid, fs_pid)) => {
            ::log::info!(
                "root filesystem restarted: {device} (block driver pid {blk_pid}, filesystem driver pid {fs_pid})"
            );
            take_parent().map(|p| (p, fs_pid)).ok_or(abi::Error::Failed)
        }
        Err(e) => {
            ::log::error!("cannot restart the root filesystem: {e}");
            // Keep what the core knows of the device, so that init can try again.
            let mut root = ROOT.lock();
            if root.is_none() {
                *root = Some(Root {
                    device,
                    index,
                    blk_pid: old[1],
                    fs_pid: old[0],
                    conn: Endpoint::pair().0,
                    parent: None,
                });
            }
            Err(abi::Error::Failed)
        }
    }
}

/// What `path` is on the root filesystem.
pub fn lookup(path: &str) -> Result<Kind, ReadError> {
    let mut c = Client::new()?;
    c.call(Request::Lookup { id: 0, path }, |r| match r {
        Reply::Lookup { result, .. } => Some(result.map_err(fs_error)),
        _ => None,
    })
}

/// Whether the core has a root filesystem.
pub fn mounted() -> bool {
    ROOT.lock().is_some()
}

/// A new client channel to the filesystem driver (the driver gets the other end through a
/// connect message on the core's own channel to it).
pub fn connect() -> Result<Endpoint, ReadError> {
    let root = ROOT.lock();
    let root = root.as_ref().ok_or(ReadError::NoRoot)?;
    let (mine, theirs) = Endpoint::pair();
    let msg = channel::Message::new(
        fsproto::CONNECT.to_vec(),
        alloc::vec![Object::Endpoint(theirs)],
    );
    match root.conn.send(msg) {
        Ok(()) => Ok(mine),
        Err(_) => Err(ReadError::Io(alloc::format!(
            "the filesystem driver for {} (pid {}) is gone{}",
            root.device,
            root.fs_pid,
            root.parent.as_ref().map(death_of).unwrap_or_default()
        ))),
    }
}

/// ": exited with code N" when the driver's death report is queued on its parent channel.
fn death_of(parent: &Endpoint) -> String {
    parent
        .peek_bytes(|b| abi::syscall::DeathReport::from_bytes(b).map(|r| describe(&r)))
        .flatten()
        .unwrap_or_default()
}

fn describe(r: &abi::syscall::DeathReport) -> String {
    match r.kind {
        abi::syscall::DEATH_EXIT => alloc::format!(" (it exited with code {})", r.code),
        abi::syscall::DEATH_KILLED => String::from(" (it was killed)"),
        abi::syscall::DEATH_PANIC => alloc::format!(" (it panicked: {})", r.text()),
        _ => String::from(" (it faulted)"),
    }
}

/// One connection and its request ids.
struct Client {
    chan: Endpoint,
    next_id: u32,
    buf: Vec<u8>,
}

impl Client {
    fn new() -> Result<Client, ReadError> {
        Ok(Client {
            chan: connect()?,
            next_id: 0,
            buf: alloc::vec![0; fsproto::MAX_MESSAGE],
        })
    }

    /// Sends `req` (its id replaced) and runs `f` on the reply.
    fn call<T>(
        &mut self,
        mut req: Request<'_>,
        f: impl FnOnce(Reply<'_>) -> Option<Result<T, ReadError>>,
    ) -> Result<T, ReadError> {
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        set_id(&mut req, id);
        let len = req
            .encode(&mut self.buf)
            .map_err(|e| ReadError::Io(alloc::format!("cannot encode a request: {e:?}")))?;
        self.chan
            .send(channel::Message::new(self.buf[..len].to_vec(), Vec::new()))
            .map_err(|_| ReadError::Io("the filesystem driver is gone".into()))?;
        let deadline = crate::arch::apic::now_ns().saturating_add(REPLY_TIMEOUT_NS);
        let msg = self.chan.recv_blocking(deadline).map_err(|e| match e {
            abi::Error::Timeout => ReadError::Io("no reply from the filesystem driver".into()),
            _ => ReadError::Io(alloc::format!(
                "the filesystem driver is gone{}",
                ROOT.lock()
                    .as_ref()
                    .and_then(|r| r.parent.as_ref())
                    .map(death_of)
                    .unwrap_or_default()
            )),
        })?;
        let reply = Reply::decode(&msg.bytes)
            .map_err(|e| ReadError::Io(alloc::format!("a malformed reply: {e:?}")))?;
        if reply.id() != id {
            return Err(ReadError::Io("a reply to another request".into()));
        }
        if let Reply::Rejected { error, .. } = reply {
            return Err(ReadError::Io(alloc::format!(
                "request refused: {}",
                error.as_str()
            )));
        }
        f(reply).unwrap_or_else(|| Err(ReadError::Io("a reply of the wrong kind".into())))
    }
}

fn set_id(req: &mut Request<'_>, new: u32) {
    match req {
        Request::Stat { id, .. } | Request::Read { id, .. } | Request::Lookup { id, .. } => {
            *id = new
        }
        _ => {}
    }
}

/// Maps a filesystem error: a missing file (or a path that cannot name one) is `NotFound`,
/// anything else an I/O error.
fn fs_error(e: fsproto::Error) -> ReadError {
    use fsproto::Error as E;
    match e {
        E::NotFound
        | E::NotADirectory
        | E::IsADirectory
        | E::BadPath
        | E::InvalidName
        | E::NameTooLong => ReadError::NotFound,
        other => ReadError::Io(String::from(other.as_str())),
    }
}

/// Reads the whole file at `path` (absolute) from the root filesystem into a kernel buffer.
pub fn read_file(path: &str) -> Result<Vec<u8>, ReadError> {
    if fsproto::path::check(path).is_err() {
        return Err(ReadError::NotFound);
    }
    let mut c = Client::new()?;
    let stat = c.call(Request::Stat { id: 0, path }, |r| match r {
        Reply::Stat { result, .. } => Some(result.map_err(fs_error)),
        _ => None,
    })?;
    if stat.kind != Kind::File {
        return Err(ReadError::NotFound);
    }
    if stat.size > MAX_MODULE_BYTES {
        return Err(ReadError::TooBig(stat.size));
    }
    let mut out = Vec::new();
    out.try_reserve_exact(stat.size as usize)
        .map_err(|_| ReadError::Io("no kernel memory for the file".into()))?;
    loop {
        let offset = out.len() as u64;
        let (data, size) = c.call(
            Request::Read {
                id: 0,
                path,
                offset,
                len: fsproto::MAX_DATA as u32,
            },
            |r| match r {
                Reply::Read { result, .. } => {
                    Some(result.map(|(d, size)| (d.to_vec(), size)).map_err(fs_error))
                }
                _ => None,
            },
        )?;
        if size > MAX_MODULE_BYTES {
            return Err(ReadError::TooBig(size));
        }
        if data.is_empty() || out.len() + data.len() > size as usize {
            break;
        }
        out.extend_from_slice(&data);
        if out.len() as u64 >= size {
            break;
        }
    }
    Ok(out)
}
