//! The one place user pointers become kernel data: typed user pointers and fault-safe copies.
//!
//! A [`UserSlice`] is a range in the calling process's address space that has passed the cheap
//! checks (not null, no overflow, entirely below the kernel half). Copies then run as a
//! `rep movsq` and a `rep movsb` listed in the exception table, bracketed by `stac`/`clac` when SMAP
//! is on: an unmapped page, or a read-only page written to, ends the copy with
//! [`Error::BadAddress`] instead of a kernel fault. Demand-mapped arena pages are filled in by
//! the page-fault handler before the copy is retried.
use abi::Error;
use core::sync::atomic::{AtomicBool, Ordering};

static SMAP: AtomicBool = AtomicBool::new(false);

/// Records whether SMAP is on (then copies must use `stac`/`clac`).
pub fn init(smap: bool) {
    SMAP.store(smap, Ordering::Relaxed);
}

/// A checked range of user memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserSlice {
    addr: u64,
    len: usize,
}

impl UserSlice {
    /// Checks `addr..addr+len`: null, overflowing, or reaching the kernel half is `BadAddress`.
    /// An empty range is always fine (and never touched).
    pub fn new(addr: u64, len: usize) -> Result<UserSlice, Error> {
        if len == 0 {
            return Ok(UserSlice { addr, len });
        }
        let end = addr.checked_add(len as u64).ok_or(Error::BadAddress)?;
        if addr < abi::layout::USER_NULL_GUARD_END || end > abi::layout::USER_END {
            return Err(Error::BadAddress);
        }
        Ok(UserSlice { addr, len })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty range.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the user bytes into `dst` (whose length must equal the slice's).
    pub fn read_into(&self, dst: &mut [u8]) -> Result<(), Error> {
        if dst.len() != self.len {
            return Err(Error::Failed);
        }
        copy(dst.as_mut_ptr() as u64, self.addr, self.len)
    }

    /// Copies `src` (whose length must equal the slice's) into user memory.
    pub fn write_from(&self, src: &[u8]) -> Result<(), Error> {
        if src.len() != self.len {
            return Err(Error::Failed);
        }
        copy(self.addr, src.as_ptr() as u64, self.len)
    }
}

// Eight bytes at a time, then the rest: under `-icount` every iteration of a `rep` string
// instruction counts, so `rep movsb` alone costs an instruction per byte. Both copy
// instructions are in the exception table; `rdx` is zero at the fixup only after a copy that
// completed (the fault handler puts the vector there).
core::arch::global_asm!(
    r#"
    .section .text.moxie_usercopy, "ax"
    .global moxie_copy_plain
moxie_copy_plain:
    mov rcx, rdx
    shr rcx, 3
    and edx, 7
.Lcopy_plain_q:
    rep movsq
    mov rcx, rdx
    xor edx, edx
.Lcopy_plain:
    rep movsb
    xor eax, eax
.Lcopy_plain_fixup:
    ret

    .global moxie_copy_smap
moxie_copy_smap:
    mov rcx, rdx
    shr rcx, 3
    and edx, 7
    stac
.Lcopy_smap_q:
    rep movsq
    mov rcx, rdx
    xor edx, edx
.Lcopy_smap:
    rep movsb
    xor eax, eax
.Lcopy_smap_fixup:
    clac
    ret

    .section .moxie_extable, "a"
    .balign 8
    .quad .Lcopy_plain_q, .Lcopy_plain_fixup
    .quad .Lcopy_plain, .Lcopy_plain_fixup
    .quad .Lcopy_smap_q, .Lcopy_smap_fixup
    .quad .Lcopy_smap, .Lcopy_smap_fixup
    .previous
    "#
);

#[repr(C)]
struct CopyResult {
    fault_addr: u64,
    vector: u64,
}

unsafe extern "C" {
    fn moxie_copy_plain(dst: u64, src: u64, len: usize) -> CopyResult;
    fn moxie_copy_smap(dst: u64, src: u64, len: usize) -> CopyResult;
}

fn copy(dst: u64, src: u64, len: usize) -> Result<(), Error> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: one side is a kernel buffer of `len` bytes the caller owns; the other a checked
    // user range. The copy instruction is in the exception table, so a fault in the user range
    // ends it with the fault recorded instead of a kernel crash.
    let r = unsafe {
        if SMAP.load(Ordering::Relaxed) {
            moxie_copy_smap(dst, src, len)
        } else {
            moxie_copy_plain(dst, src, len)
        }
    };
    if r.vector == 0 {
        Ok(())
    } else {
        Err(Error::BadAddress)
    }
}
