//! The kernel export page: the system-call stubs every module imports by name.
//!
//! The stubs are assembled into the core (section `.moxie_export`, page-aligned); at boot their
//! bytes are copied into one frame, which every process maps read-only and executable at
//! `abi::layout::EXPORT_BASE`. The ELF loader binds a module's undefined `moxie_sys_*` symbols to
//! their addresses there; an unknown name is refused with its name.
use super::frames;
use super::phys::Frame;
use spin::Once;

core::arch::global_asm!(
    r#"
    .section .rodata.moxie_export, "a"
    .balign 4096
    .global moxie_export_start
moxie_export_start:
moxie_sys_null_stub:
    xor eax, eax
    syscall
    ret
    .balign 16
moxie_sys_log_stub:
    mov eax, 1
    syscall
    ret
    .balign 16
moxie_sys_exit_stub:
    mov eax, 2
    syscall
    ud2
    .balign 16
moxie_sys_yield_stub:
    mov eax, 3
    syscall
    ret
    .balign 16
moxie_syscall6_stub:
    mov rax, rdi
    mov rdi, rsi
    mov rsi, rdx
    mov rdx, rcx
    mov r10, r8
    mov r8, r9
    mov r9, [rsp + 8]
    syscall
    ret
    .balign 16
moxie_sys_portal_call_stub:
    // The call keeps only the callee-saved registers: r9 (where r1 goes) waits on the stack.
    push r9
    mov r10, rcx
    mov eax, 27
    syscall
    pop r9
    test r9, r9
    jz 1f
    mov [r9], rsi
1:
    ret
    .balign 16
moxie_sys_portal_return_stub:
    mov eax, 28
    syscall
    ud2
    .global moxie_export_end
moxie_export_end:

    .section .rodata.moxie_export_offsets, "a"
    .balign 8
    .global moxie_export_offsets
moxie_export_offsets:
    .quad moxie_sys_null_stub - moxie_export_start
    .quad moxie_sys_log_stub - moxie_export_start
    .quad moxie_sys_exit_stub - moxie_export_start
    .quad moxie_sys_yield_stub - moxie_export_start
    .quad moxie_syscall6_stub - moxie_export_start
    .quad moxie_sys_portal_call_stub - moxie_export_start
    .quad moxie_sys_portal_return_stub - moxie_export_start
    "#
);

unsafe extern "C" {
    static moxie_export_start: u8;
    static moxie_export_end: u8;
    static moxie_export_offsets: [u64; 7];
}

/// The exported names, in the order of `moxie_export_offsets`.
const NAMES: [&str; 7] = [
    "moxie_sys_null",
    "moxie_sys_log",
    "moxie_sys_exit",
    "moxie_sys_yield",
    "moxie_syscall6",
    "moxie_sys_portal_call",
    "moxie_sys_portal_return",
];

static PAGE: Once<u64> = Once::new();

/// Copies the stubs into their frame (once) and returns its physical address.
pub fn page() -> u64 {
    *PAGE.call_once(|| {
        let mut frame: Frame = frames::alloc_zeroed().expect("a frame for the export page at boot");
        let start = &raw const moxie_export_start;
        let len = &raw const moxie_export_end as usize - start as usize;
        assert!(len <= 4096, "the export stubs outgrew one page");
        // SAFETY: the stubs are `len` bytes of read-only data in the core image.
        let code = unsafe { core::slice::from_raw_parts(start, len) };
        frame.bytes_mut()[..len].copy_from_slice(code);
        frame.into_phys()
    })
}

/// The user address of an exported name, if it is one.
pub fn resolve(name: &str) -> Option<u64> {
    // SAFETY: a read-only table of seven offsets emitted by the assembly above.
    let offsets = unsafe { moxie_export_offsets };
    NAMES
        .iter()
        .position(|n| *n == name)
        .map(|i| abi::layout::EXPORT_BASE + offsets[i])
}

/// Every exported name.
pub fn names() -> &'static [&'static str] {
    &NAMES
}
