//! The system handle (`Object::System`) and the calls that work through system and console
//! handles (numbers 48–63). The core gives one system handle with every right, and one console
//! handle, to init alone; init passes copies on (`handle_duplicate`, then a spawn or a
//! message). Without such a handle, or without the call's right on it, every call here is
//! refused (`InvalidHandle`, `WrongType`, `NoRights`), so no other process can list, kill or
//! stop anything it was not given.
//!
//! Handles of these objects keep their rights when they travel in a message: the object
//! carries them while it is in transit ([`Object::sealed`], [`Object::arrival_rights`]).
use crate::arch::usermem::UserSlice;
use crate::ipc::Object;
use crate::process::{self, Death};
use crate::syscall::handle;
use abi::syscall::MAX_LOG_BYTES;
use abi::system::{MemoryInfo, ProcessInfo};
use abi::{Error, Rights};
use alloc::vec::Vec;

impl Object {
    /// The rights a handle to this object gets when it arrives out of a message.
    pub fn arrival_rights(&self) -> Rights {
        match self {
            Object::Endpoint(_) => Rights::CHANNEL_ALL,
            Object::Process(_) => Rights::KILL,
            Object::System(r) | Object::Console(r) => *r,
            // Never in a message: a device handle has no transfer right.
            Object::Device(_) => Rights::DEVICE_ALL,
            // Never in a message either: thread handles have no transfer right.
            Object::ThreadSpawner | Object::Thread(_) => Rights::NONE,
            // A portal arrives with what a client needs: call and pass on, never revoke.
            Object::Portal(_) => Rights::SEND.union(Rights::TRANSFER),
        }
    }

    /// The object as it travels in a message, taken from a handle with `rights`.
    pub fn sealed(self, rights: Rights) -> Object {
        match self {
            Object::System(_) => Object::System(rights),
            Object::Console(_) => Object::Console(rights),
            other => other,
        }
    }
}

#[derive(PartialEq)]
enum Kind {
    System,
    Console,
}

/// Checks that the caller's `h` names the system with `needed` (`WrongType`, `NoRights`).
pub fn check_system(h: u64, needed: Rights) -> Result<(), Error> {
    check(h, Kind::System, needed)
}

/// Checks that the caller's `h` names an object of `kind` (else `WrongType`) with `needed`
/// (else `NoRights`).
fn check(h: u64, kind: Kind, needed: Rights) -> Result<(), Error> {
    let h = handle(h)?;
    process::with_handles(|t| {
        let (obj, held) = t.get(h).map_err(Error::from)?;
        match (obj, &kind) {
            (Object::System(_), Kind::System) | (Object::Console(_), Kind::Console) => {}
            _ => return Err(Error::WrongType),
        }
        if held.contains(needed) {
            Ok(())
        } else {
            Err(Error::NoRights)
        }
    })
    .ok_or(Error::Failed)?
}

/// `system_processes(system, buf, cap) -> count`.
pub fn processes(h: u64, buf: u64, cap: u64) -> Result<u64, Error> {
    check(h, Kind::System, Rights::INSPECT)?;
    let list = process::list();
    let fit = (cap as usize / ProcessInfo::RECORD).min(list.len());
    if fit > 0 {
        let bytes: Vec<u8> = list[..fit].iter().flat_map(|p| p.to_bytes()).collect();
        UserSlice::new(buf, bytes.len())?.write_from(&bytes)?;
    }
    Ok(list.len() as u64)
}

/// `system_kill(system, pid)`.
pub fn kill(h: u64, pid: u64) -> Result<u64, Error> {
    check(h, Kind::System, Rights::KILL)?;
    if !process::is_live(pid) {
        return Err(Error::NotFound);
    }
    ::log::info!(
        "process {} killed pid {pid} through the system handle",
        crate::sched::current_pid().unwrap_or(0)
    );
    process::die(pid, Death::Killed);
    Ok(0)
}

/// `system_root_restart(system) -> endpoint`: the root filesystem's drivers started again
/// (`crate::rootfs::restart`); the caller gets the new driver's parent channel.
pub fn root_restart(h: u64) -> Result<u64, Error> {
    check(h, Kind::System, Rights::KILL)?;
    let (parent, pid) = crate::rootfs::restart()?;
    let h = process::with_handles(|t| {
        t.insert(Object::Endpoint(parent), Rights::CHANNEL_ALL)
            .map_err(|r| Error::from(r.error))
    })
    .ok_or(Error::Failed)??;
    ::log::info!(
        "process {} restarted the root filesystem (filesystem driver pid {pid})",
        crate::sched::current_pid().unwrap_or(0)
    );
    Ok(h.0 as u64)
}

/// `system_memory(system, out)`.
pub fn memory(h: u64, out: u64) -> Result<u64, Error> {
    check(h, Kind::System, Rights::INSPECT)?;
    let (heap_used, heap_free) = crate::arch::heap::usage();
    let (channel_bytes, processes) = process::ledger_totals();
    let info = MemoryInfo {
        total_frames: crate::arch::frames::memory_map().total(bootinfo::MemoryKind::Usable)
            / abi::layout::PAGE_SIZE,
        free_frames: crate::arch::frames::free_frames(),
        heap_used: heap_used as u64,
        heap_free: heap_free as u64,
        channel_bytes,
        processes,
    };
    UserSlice::new(out, MemoryInfo::SIZE)?.write_from(&info.to_bytes())?;
    Ok(0)
}

/// `system_power_off(system)`: stops QEMU through its debug-exit device with the success
/// status; on a machine without one, halts this CPU.
pub fn power_off(h: u64) -> Result<u64, Error> {
    check(h, Kind::System, Rights::POWER)?;
    ::log::info!(
        "power off requested by process {}",
        crate::sched::current_pid().unwrap_or(0)
    );
    crate::arch::cpu::exit_qemu(abi::qemu::ExitCode::Success)
}

/// `console_attach(console) -> endpoint`.
pub fn console_attach(h: u64) -> Result<u64, Error> {
    check(h, Kind::Console, Rights::RECV)?;
    let end = crate::console::attach()?;
    let h = process::with_handles(|t| {
        t.insert(Object::Endpoint(end), Rights::CHANNEL_ALL)
            .map_err(|r| Error::from(r.error))
    })
    .ok_or(Error::Failed)??;
    Ok(h.0 as u64)
}

/// `console_write(console, ptr, len)`.
pub fn console_write(h: u64, ptr: u64, len: u64) -> Result<u64, Error> {
    check(h, Kind::Console, Rights::SEND)?;
    if len > MAX_LOG_BYTES as u64 {
        return Err(Error::TooBig);
    }
    let mut buf = [0u8; MAX_LOG_BYTES];
    UserSlice::new(ptr, len as usize)?.read_into(&mut buf[..len as usize])?;
    crate::console::write(&buf[..len as usize]);
    Ok(0)
}

/// `handle_duplicate(h, rights) -> h2`.
pub fn duplicate(h: u64, rights: u64) -> Result<u64, Error> {
    let h = handle(h)?;
    let wanted = Rights(u32::try_from(rights).map_err(|_| Error::Failed)?);
    let new = process::with_handles(|t| {
        let (obj, held) = t.get(h).map_err(Error::from)?;
        if !held.contains(Rights::TRANSFER) {
            return Err(Error::NoRights);
        }
        let copy = match obj {
            Object::System(_) => Object::System(Rights::NONE),
            Object::Console(_) => Object::Console(Rights::NONE),
            Object::Portal(p) => Object::Portal(p.clone()),
            _ => return Err(Error::WrongType),
        };
        t.insert(copy, held.intersect(wanted))
            .map_err(|r| Error::from(r.error))
    })
    .ok_or(Error::Failed)??;
    Ok(new.0 as u64)
}
