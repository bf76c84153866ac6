//! Suspend and resume as programs see them (`docs/suspend.md`): where images live, what
//! `system_resume` reports, and the core value that keeps each thread's own core.
//!
//! The image format itself is the `procimage` crate's (`docs/image-format.md`).

/// The directory of the root filesystem where the core writes images: `<id>.img`, the id in
/// decimal.
pub const SUSPENDED_DIR: &str = "/sys/suspended";

/// The `core` argument of `system_resume` that resumes every thread on the core it ran on
/// (or on the least loaded core when this machine has no such core).
pub const CORE_KEEP: u64 = u64::MAX;

/// `parent` in a [`ResumeInfo`] when the resumer got no handle: the resumed root's parent
/// channel was reattached to the endpoint its parent kept while it was suspended.
pub const NO_PARENT_HANDLE: u32 = u32::MAX;

/// What `system_resume` and `system_migrate` write to their `out` pointer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResumeInfo {
    /// The resumed root's new pid.
    pub pid: u64,
    /// Processes resumed (the root and its descendants).
    pub processes: u32,
    /// Threads started, over all of them.
    pub threads: u32,
    /// A handle (raw `Handle` bits) to the other end of the root's parent channel, given to the
    /// resumer when the old one is gone (the image comes from an earlier boot, or its parent
    /// died or the image was discarded meanwhile); else [`NO_PARENT_HANDLE`].
    pub parent: u32,
    /// Endpoints reattached to a dormant peer the core kept (0 after a reboot).
    pub reattached: u32,
}

impl ResumeInfo {
    /// Its size on the wire.
    pub const SIZE: usize = 24;

    /// As little-endian bytes.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.pid.to_le_bytes());
        b[8..12].copy_from_slice(&self.processes.to_le_bytes());
        b[12..16].copy_from_slice(&self.threads.to_le_bytes());
        b[16..20].copy_from_slice(&self.parent.to_le_bytes());
        b[20..24].copy_from_slice(&self.reattached.to_le_bytes());
        b
    }

    /// From bytes `to_bytes` wrote.
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> ResumeInfo {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut pid = [0u8; 8];
        pid.copy_from_slice(&b[0..8]);
        ResumeInfo {
            pid: u64::from_le_bytes(pid),
            processes: u32_at(8),
            threads: u32_at(12),
            parent: u32_at(16),
            reattached: u32_at(20),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_info_round_trips() {
        let r = ResumeInfo {
            pid: 0x1122_3344_5566_7788,
            processes: 3,
            threads: 5,
            parent: NO_PARENT_HANDLE,
            reattached: 2,
        };
        assert_eq!(ResumeInfo::from_bytes(&r.to_bytes()), r);
        assert_ne!(ResumeInfo::from_bytes(&[0; ResumeInfo::SIZE]), r);
    }
}
