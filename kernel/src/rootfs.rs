//! The root filesystem as the core sees it: the block driver and the filesystem driver it
//! started from the boot bundle for the `root=` device, and a small client of the filesystem
//! protocol (`docs/fs-protocol.md`, [`client`]) that reads module files for the ELF loader and
//! reads, writes, lists and removes the files of suspended processes.
//!
//! The core keeps a client channel of its own to the filesystem driver and never sends requests
//! on it: every call opens its own connection (`MXFSCONN` with a new channel end sent there),
//! so concurrent calls on several cores never share a channel, and a request is answered on
//! the channel it came on. The driver's parent channel (its death report) goes to init, which
//! supervises the driver and restarts it through the system handle ([`restart`]). The calling
//! thread blocks while it waits for a reply, with a deadline, so a stuck driver makes a call
//! fail rather than hang.
use crate::ipc::{Endpoint, Object};
use crate::process::Pid;
use abi::Rights;
use alloc::string::{String, ToString};
use spin::Mutex;

mod client;

pub use client::{
    FsError, list_dir, lookup, mkdir_all, read_file, read_file_limited, read_file_with, remove,
    wait_without_deadline, write_file, write_file_with,
};

/// The largest module the core reads from disk (a bigger file is refused before any of it is
/// read).
pub const MAX_MODULE_BYTES: u64 = 16 << 20;
/// The largest suspended-process image the core reads from disk.
pub const MAX_IMAGE_BYTES: u64 = 64 << 20;

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
        Err(FsError::Io("the filesystem driver is gone".into()))
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

/// Whether the core has a root filesystem.
pub fn mounted() -> bool {
    ROOT.lock().is_some()
}

/// Ends the root filesystem's drivers and forgets them: from then on the core has no root
/// filesystem. Nothing is lost: every call of [`client`] that changes the volume has synced
/// it before returning. The in-kernel tests mount a volume of their own and end it here, so
/// that the next case finds the device unclaimed.
pub fn unmount() {
    let Some(root) = ROOT.lock().take() else {
        return;
    };
    // The filesystem driver first: the block driver is its only server.
    for pid in [root.fs_pid, root.blk_pid] {
        if crate::process::is_live(pid) {
            crate::process::die(pid, crate::process::Death::Killed);
        }
        crate::process::wait(pid);
    }
}

/// A new client channel to the filesystem driver (the driver gets the other end through a
/// connect message on the core's own channel to it).
pub fn connect() -> Result<Endpoint, FsError> {
    let root = ROOT.lock();
    let root = root.as_ref().ok_or(FsError::NoRoot)?;
    let (mine, theirs) = Endpoint::pair();
    let msg = channel::Message::new(
        fsproto::CONNECT.to_vec(),
        alloc::vec![Object::Endpoint(theirs)],
    );
    match root.conn.send(msg) {
        Ok(()) => Ok(mine),
        Err(_) => Err(FsError::Io(alloc::format!(
            "the filesystem driver for {} (pid {}) is gone{}",
            root.device,
            root.fs_pid,
            root.parent.as_ref().map(death_of).unwrap_or_default()
        ))),
    }
}

/// "the filesystem driver is gone", with how it ended when the core still holds its parent
/// channel and the death report is there.
fn gone() -> String {
    let how = ROOT
        .lock()
        .as_ref()
        .and_then(|r| r.parent.as_ref())
        .map(death_of)
        .unwrap_or_default();
    alloc::format!("the filesystem driver is gone{how}")
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
