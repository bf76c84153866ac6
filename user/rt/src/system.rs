//! The system and console handles: safe wrappers over the calls that need them (process list,
//! kill by pid, memory figures, power off, console input and output, duplicating a handle,
//! suspend, resume, migrate and the suspended images). Only init receives these handles from
//! the core; it passes copies to whom it chooses.
use crate::Handle;
use abi::Error;
use abi::suspend::{CORE_KEEP, ResumeInfo};
use abi::syscall::Sys;
use abi::system::{MemoryInfo, ProcessInfo};
use alloc::vec;
use alloc::vec::Vec;

fn call(n: Sys, a: [u64; 6]) -> Result<u64, Error> {
    crate::syscall6(n as u64, a)
}

/// Every process the kernel knows, in pid order.
pub fn processes(system: Handle) -> Result<Vec<ProcessInfo>, Error> {
    let mut cap = 16;
    loop {
        let mut buf = vec![0u8; cap * ProcessInfo::RECORD];
        let n = processes_raw(system, buf.as_mut_ptr() as u64, buf.len() as u64)? as usize;
        if n <= cap {
            return Ok(buf
                .chunks_exact(ProcessInfo::RECORD)
                .take(n)
                .filter_map(ProcessInfo::from_bytes)
                .collect());
        }
        cap = n + 8;
    }
}

/// `system_processes` with a raw buffer (for tests of the kernel's checks).
pub fn processes_raw(system: Handle, buf: u64, cap: u64) -> Result<u64, Error> {
    call(Sys::SystemProcesses, [system.0 as u64, buf, cap, 0, 0, 0])
}

/// Ends process `pid`.
pub fn kill(system: Handle, pid: u64) -> Result<(), Error> {
    call(Sys::SystemKill, [system.0 as u64, pid, 0, 0, 0, 0]).map(|_| ())
}

/// Starts the root filesystem's drivers again; returns the new filesystem driver's parent
/// channel (`system_root_restart`).
pub fn root_restart(system: Handle) -> Result<Handle, Error> {
    call(Sys::SystemRootRestart, [system.0 as u64, 0, 0, 0, 0, 0]).map(|h| Handle(h as u32))
}

/// The memory figures.
pub fn memory(system: Handle) -> Result<MemoryInfo, Error> {
    let mut b = [0u8; MemoryInfo::SIZE];
    call(
        Sys::SystemMemory,
        [system.0 as u64, b.as_mut_ptr() as u64, 0, 0, 0, 0],
    )?;
    MemoryInfo::from_bytes(&b).ok_or(Error::Failed)
}

/// Stops the machine; returns only if refused.
pub fn power_off(system: Handle) -> Error {
    match call(Sys::SystemPowerOff, [system.0 as u64, 0, 0, 0, 0, 0]) {
        Err(e) => e,
        Ok(_) => Error::Failed,
    }
}

/// Attaches to the console's input: returns a channel on which typed bytes arrive.
pub fn console_attach(console: Handle) -> Result<Handle, Error> {
    call(Sys::ConsoleAttach, [console.0 as u64, 0, 0, 0, 0, 0]).map(|h| Handle(h as u32))
}

/// Writes bytes to the console as they are; longer texts go in several calls.
pub fn console_write(console: Handle, bytes: &[u8]) -> Result<(), Error> {
    for chunk in bytes.chunks(abi::syscall::MAX_LOG_BYTES) {
        call(
            Sys::ConsoleWrite,
            [
                console.0 as u64,
                chunk.as_ptr() as u64,
                chunk.len() as u64,
                0,
                0,
                0,
            ],
        )?;
    }
    Ok(())
}

/// A second handle to the same system or console object, with at most `rights`.
pub fn duplicate(h: Handle, rights: abi::Rights) -> Result<Handle, Error> {
    call(
        Sys::HandleDuplicate,
        [h.0 as u64, rights.0 as u64, 0, 0, 0, 0],
    )
    .map(|h| Handle(h as u32))
}

/// Suspends process `pid` and every live process it spawned, as one image; returns the image's
/// id (`/sys/suspended/<id>.img`).
pub fn suspend(system: Handle, pid: u64) -> Result<u64, Error> {
    call(Sys::SystemSuspend, [system.0 as u64, pid, 0, 0, 0, 0])
}

/// Suspends the process a process handle (with the suspend right) names, and its tree; returns
/// the image's id.
pub fn suspend_process(process: Handle) -> Result<u64, Error> {
    call(Sys::ProcessSuspend, [process.0 as u64, 0, 0, 0, 0, 0])
}

/// Resumes image `id` on `core` (`None`: each thread on the core it ran on); the image is
/// removed once the processes run again.
pub fn resume(system: Handle, id: u64, core: Option<u32>) -> Result<ResumeInfo, Error> {
    let core = core.map_or(CORE_KEEP, u64::from);
    with_info(|out| call(Sys::SystemResume, [system.0 as u64, id, core, out, 0, 0]))
}

/// Moves process `pid` and its tree to `core` through the disk (suspend, then resume there).
pub fn migrate(system: Handle, pid: u64, core: u32) -> Result<ResumeInfo, Error> {
    with_info(|out| {
        call(
            Sys::SystemMigrate,
            [system.0 as u64, pid, u64::from(core), out, 0, 0],
        )
    })
}

/// Runs a call that writes a [`ResumeInfo`] to the address it is given.
fn with_info(f: impl FnOnce(u64) -> Result<u64, Error>) -> Result<ResumeInfo, Error> {
    let mut b = [0u8; ResumeInfo::SIZE];
    let pid = f(b.as_mut_ptr() as u64)?;
    let info = ResumeInfo::from_bytes(&b);
    // The pid comes back twice; the register is the one every call has.
    Ok(ResumeInfo { pid, ..info })
}

/// The ids of the suspended images, ascending.
pub fn images(system: Handle) -> Result<Vec<u64>, Error> {
    let mut cap = 16;
    loop {
        let mut ids = vec![0u64; cap];
        let n = images_raw(system, ids.as_mut_ptr() as u64, cap as u64)? as usize;
        if n <= cap {
            ids.truncate(n);
            return Ok(ids);
        }
        // More appeared than fit: ask again with room for them.
        cap = n + 8;
    }
}

/// `system_images` with a raw buffer of `cap` ids (for tests of the kernel's checks).
pub fn images_raw(system: Handle, buf: u64, cap: u64) -> Result<u64, Error> {
    call(Sys::SystemImages, [system.0 as u64, buf, cap, 0, 0, 0])
}

/// Removes image `id`; the dormant endpoints kept for it close (their peers see `Closed`).
pub fn discard(system: Handle, id: u64) -> Result<(), Error> {
    call(Sys::SystemDiscard, [system.0 as u64, id, 0, 0, 0, 0]).map(|_| ())
}
