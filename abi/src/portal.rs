//! Portals: migrating-thread calls into a server (see `docs/portals.md`).
//!
//! A server creates a portal (`portal_create(entry, badge)`) and passes its handle on like any
//! handle. A thread that calls it (`portal_call(portal, a0, a1, a2, a3)`) leaves its process and
//! runs the server's `entry` in the server's address space, on a stack of its own in the
//! visitor-stack window ([`crate::layout::VISIT_STACKS_BASE`]), with these registers:
//!
//! | register | value |
//! |---|---|
//! | `rdi`, `rsi`, `rdx`, `r10` | the four argument words `a0`..`a3` |
//! | `r8` | the portal's badge |
//! | `r9` | the caller's pid (the process whose handle made the call) |
//! | `rax` | the calling thread's id (its scheduler slot) |
//! | `rsp` | the top of the thread's visitor stack, less 8 (as if called) |
//! | `rcx`, `r11` | what `sysret` leaves there (the entry point, the flags) |
//! | everything else | zero; FS base zero; x87/SSE registers and MXCSR in their initial state |
//!
//! The entry ends the call with `portal_return(r0, r1)`: the caller's `portal_call` returns
//! with status 0, `r0` in `rdx` and `r1` in `rsi`; `rbx`, `rbp`, `rsp`, `r12`–`r15` (the
//! registers the System V ABI has a callee keep) as they were; `rdi`, `r8`, `r9`, `r10` zero;
//! `rcx` and `r11` clobbered (as by any system call); the x87/SSE registers and MXCSR in their
//! initial state. Nothing of the server's crosses but the two words. A call that fails before
//! it enters (a bad handle, a revoked portal, ...) returns like any system call: the status
//! in `rax`, `rdx` zero, the other registers as they were (but `r9` may be zero).

/// Most portal calls one thread can have open (nested) at once.
pub const MAX_DEPTH: usize = 8;

/// The visitor-stack slot of thread `tid`: `(lowest stack address, top)`, or `None` past the
/// window.
pub const fn visit_stack(tid: u64) -> Option<(u64, u64)> {
    use crate::layout::{VISIT_STACK_MAX, VISIT_STACK_SLOT, VISIT_STACK_SLOTS, VISIT_STACKS_BASE};
    if tid >= VISIT_STACK_SLOTS {
        return None;
    }
    let top = VISIT_STACKS_BASE + (tid + 1) * VISIT_STACK_SLOT;
    Some((top - VISIT_STACK_MAX, top))
}

/// True when `addr` lies in the visitor-stack window.
pub const fn in_visit_window(addr: u64) -> bool {
    use crate::layout::{VISIT_STACK_SLOT, VISIT_STACK_SLOTS, VISIT_STACKS_BASE};
    addr >= VISIT_STACKS_BASE && addr < VISIT_STACKS_BASE + VISIT_STACK_SLOTS * VISIT_STACK_SLOT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitor_stacks_fit_the_window_and_the_user_half() {
        let (lo, top) = visit_stack(0).unwrap();
        assert!(in_visit_window(lo) && in_visit_window(top - 1));
        let (_, last) = visit_stack(crate::layout::VISIT_STACK_SLOTS - 1).unwrap();
        assert!(last <= crate::layout::USER_END);
        assert!(!in_visit_window(last));
        assert!(visit_stack(crate::layout::VISIT_STACK_SLOTS).is_none());
        const _: () = assert!(
            crate::layout::STACKS_BASE + 16 * crate::layout::STACK_SLOT
                <= crate::layout::VISIT_STACKS_BASE
        );
    }
}
