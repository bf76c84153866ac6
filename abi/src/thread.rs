//! Threads inside one process (DESIGN.md §9, the in-process threading contract): the start
//! register convention, creation flags, the limits and why a creation was `Overloaded`, the
//! process ledger record, and park results.
//!
//! The contract's three interfaces map onto system calls:
//!
//! - `ThreadSpawner.create` is [`crate::syscall::Sys::ThreadCreate`] on a spawner handle that
//!   [`crate::syscall::Sys::ThreadSpawner`] gives; a spawner creates threads only in the
//!   process that holds it and never travels (it has no transfer right).
//! - `ThreadHandle.join` / `exitCode` are [`crate::syscall::Sys::ThreadJoin`] /
//!   [`crate::syscall::Sys::ThreadExitCode`]; closing the handle releases it.
//! - `ThreadControl` acts on the calling thread: [`crate::syscall::Sys::FsBaseGet`],
//!   [`crate::syscall::Sys::FsBaseSet`], [`crate::syscall::Sys::ThreadExit`].
//!
//! # Start registers
//!
//! A created thread starts in ring 3 at `entry` with `rdi = arg`, `rsi = tid`, `rdx = pid`,
//! the FS base it was created with, and `rsp = stack_top - 8` (as if `entry` had been called:
//! `stack_top` must be 16-byte aligned, so the entry sees the System V alignment). Every other
//! general-purpose register is zero and the FPU/SSE state is the initial one. `entry` must not
//! return: a thread ends with `thread_exit` (or the process's `exit`). The main thread of a
//! process starts with `rdi = arg`, `rsi = pid` and an FS base of zero.

/// Most thread records a process holds at once: live threads, and exited ones whose status is
/// still retained (a handle or a pending join can observe it). The main thread counts.
pub const THREAD_LIMIT: u64 = 16;

/// Kernel-stack pages each thread is charged (the size of one kernel stack).
pub const KERNEL_STACK_PAGES: u64 = 4;

/// A process's default kernel-stack budget: enough for [`THREAD_LIMIT`] threads.
pub const KERNEL_STACK_BUDGET: u64 = THREAD_LIMIT * KERNEL_STACK_PAGES;

/// Creation flag: run the thread on the core in bits 8..16 of the flags (the least loaded core
/// otherwise). A core that does not exist is `Failed`.
pub const FLAG_ON_CORE: u64 = 1 << 0;
/// Where [`FLAG_ON_CORE`] finds the core number.
pub const FLAG_CORE_SHIFT: u64 = 8;
/// Every flag bit that means something; any other bit set is `Failed`.
pub const FLAGS_KNOWN: u64 = FLAG_ON_CORE | (0xff << FLAG_CORE_SHIFT);

/// Why `thread_create` said `Overloaded` (in `rdx` beside the error). Nothing was created and
/// every reservation was given back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Overload {
    /// The process holds [`THREAD_LIMIT`] (or its parent's lower limit) thread records.
    Threads = 1,
    /// The kernel-stack budget has no room for another stack.
    KernelStackBudget = 2,
    /// The handle table is full: there is no slot for the thread's handle.
    HandleSlots = 3,
    /// The kernel could not allocate the stack (out of memory).
    KernelStackMemory = 4,
}

impl Overload {
    /// The reason with this code.
    pub fn from_code(code: u64) -> Option<Overload> {
        [
            Overload::Threads,
            Overload::KernelStackBudget,
            Overload::HandleSlots,
            Overload::KernelStackMemory,
        ]
        .into_iter()
        .find(|o| *o as u64 == code)
    }

    /// What to tell the user.
    pub fn message(self) -> &'static str {
        match self {
            Overload::Threads => "thread limit reached: too many live or unjoined threads",
            Overload::KernelStackBudget => "kernel-stack budget exhausted",
            Overload::HandleSlots => "handle table full: no slot for the thread handle",
            Overload::KernelStackMemory => "out of memory for a kernel stack",
        }
    }
}

/// What `park_wait` returns when it did not park: the word no longer held the expected value.
pub const PARK_VALUE_CHANGED: u64 = 1;
/// What `park_wait` returns when a `park_wake` woke it.
pub const PARK_WOKEN: u64 = 0;

/// A process's resource ledger, as `ledger(out)` writes it (little-endian `u64`s in this
/// order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Ledger {
    /// Thread records held (live threads and retained exit statuses).
    pub thread_records: u64,
    /// The most it may hold.
    pub thread_records_max: u64,
    /// Kernel-stack pages charged.
    pub kernel_stack_pages: u64,
    /// The budget.
    pub kernel_stack_pages_max: u64,
    /// Handle slots in use.
    pub handles: u64,
    /// Handle slots in all.
    pub handles_max: u64,
    /// Bytes of its messages sitting in channel buffers.
    pub channel_bytes: u64,
    /// Arena pages mapped.
    pub arena_pages: u64,
}

impl Ledger {
    /// Size of the wire form.
    pub const SIZE: usize = 64;

    /// The wire form.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        let fields = [
            self.thread_records,
            self.thread_records_max,
            self.kernel_stack_pages,
            self.kernel_stack_pages_max,
            self.handles,
            self.handles_max,
            self.channel_bytes,
            self.arena_pages,
        ];
        for (chunk, v) in out.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Parses the wire form.
    pub fn from_bytes(b: &[u8]) -> Option<Ledger> {
        if b.len() < Self::SIZE {
            return None;
        }
        let f = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        Some(Ledger {
            thread_records: f(0),
            thread_records_max: f(1),
            kernel_stack_pages: f(2),
            kernel_stack_pages_max: f(3),
            handles: f(4),
            handles_max: f(5),
            channel_bytes: f(6),
            arena_pages: f(7),
        })
    }
}

/// True when `v` is a canonical lower-half (user) address.
pub const fn user_canonical(v: u64) -> bool {
    v < crate::layout::USER_END
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_round_trips() {
        let l = Ledger {
            thread_records: 1,
            thread_records_max: 16,
            kernel_stack_pages: 4,
            kernel_stack_pages_max: 64,
            handles: 3,
            handles_max: 1024,
            channel_bytes: 77,
            arena_pages: 9,
        };
        assert_eq!(Ledger::from_bytes(&l.to_bytes()), Some(l));
        assert_eq!(Ledger::from_bytes(&[0; 63]), None);
    }

    #[test]
    fn overload_codes_round_trip_and_zero_is_none() {
        for o in [
            Overload::Threads,
            Overload::KernelStackBudget,
            Overload::HandleSlots,
            Overload::KernelStackMemory,
        ] {
            assert_eq!(Overload::from_code(o as u64), Some(o));
            assert!(!o.message().is_empty());
        }
        assert_eq!(Overload::from_code(0), None);
        assert_eq!(Overload::from_code(5), None);
    }

    #[test]
    fn user_canonical_is_the_lower_half() {
        assert!(user_canonical(0x7fff_ffff_ffff));
        assert!(!user_canonical(0x8000_0000_0000));
        assert!(!user_canonical(0xffff_8000_0000_0000));
    }

    #[test]
    fn the_core_field_fits_the_known_flags() {
        assert_eq!(FLAGS_KNOWN & !0xff01, 0);
        assert_eq!((3 << FLAG_CORE_SHIFT) & !FLAGS_KNOWN, 0);
    }
}
