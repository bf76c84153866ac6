//! The IDT and the trap entry path.
//!
//! Every vector has a 16-byte entry stub that pushes a zero error code (when the CPU pushes
//! none) and the vector number, then jumps to `trap_common`, which saves every general register
//! into a [`TrapFrame`] (swapping GS when it came from ring 3) and calls [`crate::trap::handle`].
//! Double fault, NMI and machine check run on their own IST stacks.
use super::gdt;
use spin::Once;
use x86_64::VirtAddr;
use x86_64::structures::idt::InterruptDescriptorTable;

/// The registers saved on every trap, in stack order (lowest address first).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// The vector number pushed by the entry stub.
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors without one.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    /// True when the trap interrupted ring 3.
    pub fn from_user(&self) -> bool {
        self.cs & 3 == 3
    }

    /// Copies `src` over this frame as one string move (a portal call saves and restores whole
    /// frames; a `memcpy` call costs half as much again).
    #[inline(always)]
    pub fn copy_from(&mut self, src: &TrapFrame) {
        const WORDS: usize = core::mem::size_of::<TrapFrame>() / 8;
        // SAFETY: `self` and `src` are distinct (one is borrowed mutably), valid, 8-aligned
        // frames of `WORDS` words; the kernel always runs with the direction flag clear.
        unsafe {
            core::arch::asm!(
                "rep movsq",
                inout("rcx") WORDS => _,
                inout("rdi") self as *mut TrapFrame => _,
                inout("rsi") src as *const TrapFrame => _,
                options(nostack, preserves_flags)
            );
        }
    }
}

/// The general registers, pushed in the order that makes the stack a [`TrapFrame`] (`rax`
/// highest): shared by the interrupt entry and the syscall entry, which must agree with it.
macro_rules! save_gprs {
    () => {
        "push rax\npush rbx\npush rcx\npush rdx\npush rsi\npush rdi\npush rbp\npush r8\npush r9\npush r10\npush r11\npush r12\npush r13\npush r14\npush r15\n"
    };
}
pub(crate) use save_gprs;

/// The inverse of [`save_gprs`].
macro_rules! restore_gprs {
    () => {
        "pop r15\npop r14\npop r13\npop r12\npop r11\npop r10\npop r9\npop r8\npop rbp\npop rdi\npop rsi\npop rdx\npop rcx\npop rbx\npop rax\n"
    };
}
pub(crate) use restore_gprs;

/// Size of one entry stub; the stubs form an array indexed by vector.
const STUB_SIZE: u64 = 16;

core::arch::global_asm!(
    r#"
    .section .text.moxie_traps, "ax"
    .balign 16
    .global moxie_trap_stubs
moxie_trap_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp moxie_trap_common
    .set vec, vec + 1
    .endr
    "#,
    options(att_syntax)
);

core::arch::global_asm!(
    r#"
    .section .text.moxie_traps, "ax"
moxie_trap_common:
    test byte ptr [rsp + 24], 3
    jz .Lentry_from_kernel
    swapgs
.Lentry_from_kernel:
    "#,
    save_gprs!(),
    r#"
    mov rdi, rsp
    cld
    call {dispatch}
    .global moxie_trap_return
moxie_trap_return:
    "#,
    restore_gprs!(),
    r#"
    test byte ptr [rsp + 24], 3
    jz .Lexit_to_kernel
    swapgs
.Lexit_to_kernel:
    add rsp, 16
    iretq
    "#,
    dispatch = sym trap_dispatch,
);

unsafe extern "C" {
    static moxie_trap_stubs: u8;
}

extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    crate::trap::handle(frame);
}

static IDT: Once<InterruptDescriptorTable> = Once::new();

fn stub(vector: u8) -> VirtAddr {
    VirtAddr::new(&raw const moxie_trap_stubs as u64 + vector as u64 * STUB_SIZE)
}

/// Builds and loads the IDT on the boot CPU.
pub fn init() {
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        macro_rules! set {
            ($field:ident, $vec:expr) => {
                // SAFETY: the address is the entry stub for this vector, which saves the full
                // register state, handles the error code and returns with iretq.
                unsafe { idt.$field.set_handler_addr(stub($vec)) };
            };
            ($field:ident, $vec:expr, ist $ist:expr) => {
                // SAFETY: as above; the IST index names a stack the TSS provides.
                unsafe {
                    idt.$field
                        .set_handler_addr(stub($vec))
                        .set_stack_index($ist)
                };
            };
        }
        set!(divide_error, 0);
        set!(debug, 1);
        set!(non_maskable_interrupt, 2, ist gdt::IST_NMI);
        set!(breakpoint, 3);
        set!(overflow, 4);
        set!(bound_range_exceeded, 5);
        set!(invalid_opcode, 6);
        set!(device_not_available, 7);
        set!(double_fault, 8, ist gdt::IST_DOUBLE_FAULT);
        set!(invalid_tss, 10);
        set!(segment_not_present, 11);
        set!(stack_segment_fault, 12);
        set!(general_protection_fault, 13);
        set!(page_fault, 14);
        set!(x87_floating_point, 16);
        set!(alignment_check, 17);
        set!(machine_check, 18, ist gdt::IST_MACHINE_CHECK);
        set!(simd_floating_point, 19);
        set!(virtualization, 20);
        set!(cp_protection_exception, 21);
        set!(hv_injection_exception, 28);
        set!(vmm_communication_exception, 29);
        set!(security_exception, 30);
        for v in 32..=255u8 {
            // SAFETY: as above.
            unsafe { idt[v].set_handler_addr(stub(v)) };
        }
        idt
    });
    idt.load();
}

/// Loads the (already built) IDT on an application processor.
pub fn load() {
    if let Some(idt) = IDT.get() {
        idt.load();
    }
}
