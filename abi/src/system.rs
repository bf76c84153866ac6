//! The records the system handle's calls write: a process list entry and the memory figures.
//! Both travel as little-endian bytes of a fixed size, so the kernel and user code agree
//! without sharing memory layouts.

/// A live process, as `system_processes` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: u64,
    /// The pid of the process that spawned it (0: the kernel).
    pub parent: u64,
    /// One of the `STATE_*` values.
    pub state: u32,
    /// Its threads.
    pub threads: u32,
    /// Bytes of arena mapped for it (pages touched, times the page size).
    pub arena_bytes: u64,
    /// CPU time its threads have used, in nanoseconds.
    pub cpu_ns: u64,
    /// Bytes of `name` in use.
    pub name_len: u32,
    /// The module it was spawned from (its last path component), UTF-8.
    pub name: [u8; NAME_BYTES],
}

/// Bytes of a module name a [`ProcessInfo`] carries.
pub const NAME_BYTES: usize = 32;

/// At least one thread is running or ready to run.
pub const STATE_RUNNING: u32 = 1;
/// Every thread is waiting (for a message, a deadline, a wake-up).
pub const STATE_BLOCKED: u32 = 2;
/// It has died; the kernel has not yet forgotten it.
pub const STATE_DEAD: u32 = 3;

/// A state's name, for shells and logs.
pub fn state_name(state: u32) -> &'static str {
    match state {
        STATE_RUNNING => "running",
        STATE_BLOCKED => "blocked",
        STATE_DEAD => "dead",
        _ => "?",
    }
}

impl ProcessInfo {
    /// Its size on the wire.
    pub const RECORD: usize = 48 + NAME_BYTES;

    /// A record for `name` (cut at [`NAME_BYTES`] on a character boundary).
    pub fn new(pid: u64, parent: u64, name: &str) -> ProcessInfo {
        let mut n = name.len().min(NAME_BYTES);
        while !name.is_char_boundary(n) {
            n -= 1;
        }
        let mut bytes = [0; NAME_BYTES];
        bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
        ProcessInfo {
            pid,
            parent,
            state: STATE_RUNNING,
            threads: 0,
            arena_bytes: 0,
            cpu_ns: 0,
            name_len: n as u32,
            name: bytes,
        }
    }

    /// The module name.
    pub fn name(&self) -> &str {
        let n = (self.name_len as usize).min(NAME_BYTES);
        core::str::from_utf8(&self.name[..n]).unwrap_or("?")
    }

    /// The record as bytes.
    pub fn to_bytes(&self) -> [u8; Self::RECORD] {
        let mut b = [0u8; Self::RECORD];
        b[0..8].copy_from_slice(&self.pid.to_le_bytes());
        b[8..16].copy_from_slice(&self.parent.to_le_bytes());
        b[16..20].copy_from_slice(&self.state.to_le_bytes());
        b[20..24].copy_from_slice(&self.threads.to_le_bytes());
        b[24..32].copy_from_slice(&self.arena_bytes.to_le_bytes());
        b[32..40].copy_from_slice(&self.cpu_ns.to_le_bytes());
        b[40..44].copy_from_slice(&self.name_len.to_le_bytes());
        b[48..].copy_from_slice(&self.name);
        b
    }

    /// Parses a record; `None` for a wrong size or a name length past the name.
    pub fn from_bytes(b: &[u8]) -> Option<ProcessInfo> {
        if b.len() != Self::RECORD {
            return None;
        }
        let r = ProcessInfo {
            pid: u64_at(b, 0),
            parent: u64_at(b, 8),
            state: u32_at(b, 16),
            threads: u32_at(b, 20),
            arena_bytes: u64_at(b, 24),
            cpu_ns: u64_at(b, 32),
            name_len: u32_at(b, 40),
            name: b[48..].try_into().ok()?,
        };
        (r.name_len as usize <= NAME_BYTES).then_some(r)
    }
}

/// The memory figures `system_memory` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryInfo {
    /// Usable physical frames (4 KiB) the frame allocator manages.
    pub total_frames: u64,
    /// Of those, free now.
    pub free_frames: u64,
    /// Kernel heap bytes in use.
    pub heap_used: u64,
    /// Kernel heap bytes free (within what the heap has mapped).
    pub heap_free: u64,
    /// Channel-buffer bytes queued and not yet received, summed over every process's ledger.
    pub channel_bytes: u64,
    /// Live processes.
    pub processes: u64,
}

impl MemoryInfo {
    /// Its size on the wire.
    pub const SIZE: usize = 48;

    /// As bytes.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        for (i, v) in [
            self.total_frames,
            self.free_frames,
            self.heap_used,
            self.heap_free,
            self.channel_bytes,
            self.processes,
        ]
        .iter()
        .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// From bytes; `None` for a wrong size.
    pub fn from_bytes(b: &[u8]) -> Option<MemoryInfo> {
        (b.len() == Self::SIZE).then(|| MemoryInfo {
            total_frames: u64_at(b, 0),
            free_frames: u64_at(b, 8),
            heap_used: u64_at(b, 16),
            heap_free: u64_at(b, 24),
            channel_bytes: u64_at(b, 32),
            processes: u64_at(b, 40),
        })
    }
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// init's spawn argument when the core gives it a channel to the root filesystem's driver as
/// handle 3 (`docs/boot.md`); without it (argument 0) init runs its built-in RAM-disk
/// configuration.
pub const INIT_HAS_ROOT_FS: u64 = 1;
/// The handle on which init holds its channel to the root filesystem.
pub const INIT_ROOT_FS_HANDLE: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_info_round_trips_and_cuts_names() {
        let mut p = ProcessInfo::new(7, 1, "shell");
        p.threads = 1;
        p.arena_bytes = 8192;
        p.cpu_ns = 123;
        p.state = STATE_BLOCKED;
        let b = p.to_bytes();
        assert_eq!(ProcessInfo::from_bytes(&b), Some(p));
        assert_eq!(p.name(), "shell");
        assert_eq!(ProcessInfo::from_bytes(&b[1..]), None);
        let mut bad = b;
        bad[40] = 33;
        assert_eq!(ProcessInfo::from_bytes(&bad), None);
        let long = "é".repeat(20);
        let q = ProcessInfo::new(1, 0, &long);
        assert_eq!(q.name().len(), 32);
        assert_eq!(state_name(STATE_DEAD), "dead");
    }

    #[test]
    fn memory_info_round_trips() {
        let m = MemoryInfo {
            total_frames: 1,
            free_frames: 2,
            heap_used: 3,
            heap_free: 4,
            channel_bytes: 5,
            processes: 6,
        };
        assert_eq!(MemoryInfo::from_bytes(&m.to_bytes()), Some(m));
        assert_eq!(MemoryInfo::from_bytes(&[0; 47]), None);
    }
}
