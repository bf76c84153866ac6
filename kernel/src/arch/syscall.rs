//! The `syscall`/`sysret` entry path.
//!
//! `syscall` arrives with interrupts masked and the direction flag clear (SFMASK clears IF
//! and DF, as Rust code expects), user RIP in `rcx` and RFLAGS in `r11`. The entry swaps GS, saves the user stack pointer, moves to the current thread's kernel
//! stack, builds a [`TrapFrame`] identical in layout to an interrupt's (vector
//! [`SYSCALL_VECTOR`]) and calls [`crate::syscall::dispatch`]. The return path reloads the
//! frame (the dispatcher may have changed it: results in rax/rdx, or a new thread's state) and
//! leaves with `sysretq`. `portal_call` and `portal_return` go to the portal fast path first
//! (`portal_path`), which comes back here when it cannot take the call.
use super::gdt::Selectors;
use super::idt::TrapFrame;
use super::percpu::{OFF_KERNEL_RSP, OFF_USER_RSP};
use x86_64::VirtAddr;
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;

/// The pseudo-vector recorded in a syscall's trap frame.
pub const SYSCALL_VECTOR: u64 = 0x100;

core::arch::global_asm!(
    r#"
    .section .text.moxie_syscall, "ax"
    .global moxie_syscall_entry
moxie_syscall_entry:
    swapgs
    mov gs:[{user_rsp}], rsp
    mov rsp, gs:[{kernel_rsp}]
    // portal_call and portal_return first try the fast path (arch::portal_path); every call
    // below them pays this one test.
    cmp rax, {portal_call}
    jae moxie_portal_fast
    .global moxie_syscall_general
moxie_syscall_general:
    push {user_ss}
    push qword ptr gs:[{user_rsp}]
    push r11
    push {user_cs}
    push rcx
    push 0
    push {vector}
    "#,
    super::idt::save_gprs!(),
    r#"
    mov rdi, rsp
    call {dispatch}
    "#,
    super::idt::restore_gprs!(),
    r#"
    add rsp, 16
    pop rcx
    add rsp, 8
    pop r11
    pop rsp
    swapgs
    sysretq
    "#,
    user_rsp = const OFF_USER_RSP,
    kernel_rsp = const OFF_KERNEL_RSP,
    user_ss = const 0x1b,
    user_cs = const 0x23,
    vector = const SYSCALL_VECTOR,
    portal_call = const abi::syscall::Sys::PortalCall as u64,
    dispatch = sym syscall_dispatch,
);

unsafe extern "C" {
    fn moxie_syscall_entry();
}

extern "C" fn syscall_dispatch(frame: &mut TrapFrame) {
    crate::syscall::dispatch(frame);
    // sysret would fault in ring 0 on a non-canonical RIP; the kernel only ever stores user
    // addresses it validated, so this is a bug check, not a user-reachable path.
    debug_assert!(frame.rip < abi::layout::USER_END);
}

/// Programs the syscall MSRs on this CPU.
pub fn init(sel: &Selectors) {
    // The entry hard-codes the user selectors; make sure the GDT agrees.
    assert_eq!(sel.user_data.0, 0x1b, "user data selector");
    assert_eq!(sel.user_code.0, 0x23, "user code selector");
    Star::write(
        sel.user_code,
        sel.user_data,
        sel.kernel_code,
        sel.kernel_data,
    )
    .expect("GDT order fits syscall/sysret");
    LStar::write(VirtAddr::new(moxie_syscall_entry as *const () as u64));
    SFMask::write(RFlags::INTERRUPT_FLAG | RFlags::DIRECTION_FLAG | RFlags::TRAP_FLAG);
    // SAFETY: enabling the syscall instruction; the entry point above is installed.
    unsafe { Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
}
