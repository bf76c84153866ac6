//! Portals (see `abi::portal` and `docs/portals.md`): create one, call one, and serve calls.
//!
//! A server installs one handler with [`serve`] and creates portals with [`create`] (the
//! entry is this module's trampoline; the badge tells the handler which portal was called).
//! A call runs the handler on the calling thread, on its visitor stack, and the handler's
//! two words go back to the caller.
use crate::{Handle, Ret, result};
use abi::Error;
use abi::syscall::Sys;
use core::sync::atomic::{AtomicUsize, Ordering};

unsafe extern "C" {
    fn moxie_sys_portal_call(h: u64, a0: u64, a1: u64, a2: u64, a3: u64, r1: *mut u64) -> Ret;
    fn moxie_sys_portal_return(r0: u64, r1: u64) -> !;
}

/// What a handler is given: the argument words and who called.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Call {
    /// The caller's four argument words.
    pub args: [u64; 4],
    /// The portal's badge.
    pub badge: u64,
    /// The calling process (the one whose handle made the call).
    pub caller: u64,
    /// The calling thread's id.
    pub tid: u64,
}

/// The handler's two result words, as `extern "C"` returns them (in `rax`, `rdx`).
#[repr(C)]
struct Results(u64, u64);

static HANDLER: AtomicUsize = AtomicUsize::new(0);

core::arch::global_asm!(
    r#"
    .text
    .global moxie_rt_portal_entry
moxie_rt_portal_entry:
    push rax
    push r9
    push r8
    push r10
    push rdx
    push rsi
    push rdi
    mov rdi, rsp
    call {dispatch}
    mov rdi, rax
    mov rsi, rdx
    call {ret}
    ud2
    "#,
    dispatch = sym dispatch,
    ret = sym return_to_caller,
);

unsafe extern "C" {
    fn moxie_rt_portal_entry();
}

extern "C" fn dispatch(call: &Call) -> Results {
    let h = HANDLER.load(Ordering::Acquire);
    if h == 0 {
        return Results(u64::MAX, 0);
    }
    // SAFETY: only `serve` stores into HANDLER, and it stores a `fn(&Call) -> (u64, u64)`.
    let f: fn(&Call) -> (u64, u64) =
        unsafe { core::mem::transmute::<usize, fn(&Call) -> (u64, u64)>(h) };
    let (a, b) = f(call);
    Results(a, b)
}

extern "C" fn return_to_caller(r0: u64, r1: u64) -> ! {
    // SAFETY: the kernel's portal_return stub; it does not come back.
    unsafe { moxie_sys_portal_return(r0, r1) }
}

/// Installs the process's portal handler (one per process; the badge tells portals apart).
pub fn serve(handler: fn(&Call) -> (u64, u64)) {
    HANDLER.store(handler as usize, Ordering::Release);
}

/// A portal into this process, entering [`serve`]'s handler with `badge`.
pub fn create(badge: u64) -> Result<Handle, Error> {
    create_raw(moxie_rt_portal_entry as *const () as u64, badge)
}

/// A portal with a raw entry point (see `abi::portal` for the registers it gets).
pub fn create_raw(entry: u64, badge: u64) -> Result<Handle, Error> {
    crate::syscall6(Sys::PortalCreate as u64, [entry, badge, 0, 0, 0, 0]).map(|h| Handle(h as u32))
}

/// Calls a portal: the thread runs the server's handler and comes back with its two words.
pub fn call(h: Handle, args: [u64; 4]) -> Result<(u64, u64), Error> {
    let mut r1 = 0u64;
    // SAFETY: the kernel's portal_call stub; it writes the second result to `r1`.
    let r =
        unsafe { moxie_sys_portal_call(h.0 as u64, args[0], args[1], args[2], args[3], &mut r1) };
    result(r).map(|r0| (r0, r1))
}

/// Ends the portal call the thread is in from outside the trampoline (`Failed` when it is in
/// none).
pub fn return_raw(r0: u64, r1: u64) -> Error {
    match crate::syscall6(Sys::PortalReturn as u64, [r0, r1, 0, 0, 0, 0]) {
        Err(e) => e,
        Ok(_) => Error::Failed,
    }
}

/// Revokes a portal: every handle to it says `Closed` from now on.
pub fn revoke(h: Handle) -> Result<(), Error> {
    crate::syscall6(Sys::PortalRevoke as u64, [h.0 as u64, 0, 0, 0, 0, 0]).map(|_| ())
}

/// A second handle to the portal with `rights` (at most the original's).
pub fn duplicate(h: Handle, rights: abi::Rights) -> Result<Handle, Error> {
    crate::syscall6(
        Sys::HandleDuplicate as u64,
        [h.0 as u64, rights.0 as u64, 0, 0, 0, 0],
    )
    .map(|h| Handle(h as u32))
}
