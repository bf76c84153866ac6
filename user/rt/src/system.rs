//! The system and console handles: safe wrappers over the calls that need them (process list,
//! kill by pid, memory figures, power off, console input and output, duplicating a handle).
//! Only init receives these handles from the core; it passes copies to whom it chooses.
use crate::Handle;
use abi::Error;
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
