//! Fault-safe memory access: instructions listed in the exception table may fault, and the trap
//! handler resumes at their fixup instead of reporting a kernel bug.
//!
//! Each entry is a pair (faulting instruction, fixup). On a page fault or general-protection
//! fault at a listed instruction the handler sets `rax` to the faulting address (CR2; 0 for #GP),
//! `rdx` to the vector, and jumps to the fixup. This is the mechanism behind probing memory in
//! tests and, later, every copy from or to user memory.

/// One exception-table entry.
#[repr(C)]
#[derive(Clone, Copy)]
struct Entry {
    fault: u64,
    fixup: u64,
}

unsafe extern "C" {
    static __extable_start: Entry;
    static __extable_end: Entry;
}

/// The fixup for a faulting instruction at `rip`, if it is listed.
pub fn fixup_for(rip: u64) -> Option<u64> {
    let start = &raw const __extable_start;
    let end = &raw const __extable_end;
    let len = (end as usize - start as usize) / core::mem::size_of::<Entry>();
    // SAFETY: the linker script brackets the `.moxie_extable` section with these symbols; the
    // section holds only `Entry` pairs emitted by the assembly below, and is read-only.
    let table = unsafe { core::slice::from_raw_parts(start, len) };
    table.iter().find(|e| e.fault == rip).map(|e| e.fixup)
}

/// A fault met by a probe: its address (CR2 for a page fault, 0 for #GP) and vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The faulting address.
    pub addr: u64,
    /// The exception vector (14 page fault, 13 general protection).
    pub vector: u64,
}

core::arch::global_asm!(
    r#"
    .section .text.moxie_probe, "ax"
    .global moxie_probe_read_u64
moxie_probe_read_u64:
    xor edx, edx
.Lprobe_read:
    mov rax, [rdi]
.Lprobe_read_fixup:
    ret
    .global moxie_probe_write_u64
moxie_probe_write_u64:
    xor edx, edx
.Lprobe_write:
    mov [rdi], rsi
    xor eax, eax
.Lprobe_write_fixup:
    ret
    .section .moxie_extable, "a"
    .balign 8
    .quad .Lprobe_read, .Lprobe_read_fixup
    .quad .Lprobe_write, .Lprobe_write_fixup
    .previous
    "#
);

#[repr(C)]
struct ProbeResult {
    value: u64,
    vector: u64,
}

unsafe extern "C" {
    fn moxie_probe_read_u64(addr: u64) -> ProbeResult;
    fn moxie_probe_write_u64(addr: u64, value: u64) -> ProbeResult;
}

fn result(r: ProbeResult) -> Result<u64, Fault> {
    if r.vector == 0 {
        Ok(r.value)
    } else {
        Err(Fault {
            addr: r.value,
            vector: r.vector,
        })
    }
}

/// Reads 8 bytes at `addr`, reporting a fault instead of taking the kernel down.
pub fn probe_read_u64(addr: u64) -> Result<u64, Fault> {
    // SAFETY: the load is listed in the exception table, so a fault resumes at the fixup with
    // the fault in rax/rdx; a successful load reads memory the page tables allow.
    result(unsafe { moxie_probe_read_u64(addr) })
}

/// Writes 8 bytes at `addr`, reporting a fault instead of taking the kernel down.
///
/// Only for memory no Rust reference covers (a probe of an unmapped page, a test page); a write
/// through this into live kernel data would be as wrong as any raw write.
pub fn probe_write_u64(addr: u64, value: u64) -> Result<(), Fault> {
    // SAFETY: as for reads; callers aim it only at memory they own and no reference aliases.
    result(unsafe { moxie_probe_write_u64(addr, value) }).map(|_| ())
}
