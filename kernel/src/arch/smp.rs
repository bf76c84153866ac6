//! Starting the application processors: a real-mode trampoline copied to a low page, INIT-SIPI-
//! SIPI for each processor the MADT lists, and each AP's own GDT, TSS, per-CPU block, IDT, APIC
//! and syscall set-up before it joins the scheduler.
//!
//! The trampoline runs at physical `TRAMPOLINE` (inside the low megabyte the frame allocator
//! never hands out). It goes 16-bit → 32-bit → 64-bit on a page table that identity-maps the
//! low 2 MiB and shares the kernel half, then jumps to [`ap_entry`] in the kernel with its CPU
//! index and stack from the parameter block at the end of the trampoline.
use super::{apic, context, frames, gdt, idt, paging, percpu, phys, syscall};
use core::sync::atomic::{AtomicUsize, Ordering};

/// Physical address of the trampoline page (vector 0x08 of the start-up IPI).
pub const TRAMPOLINE: u64 = 0x8000;

core::arch::global_asm!(
    r#"
    .section .rodata.moxie_trampoline, "a"
    .balign 16
    .global moxie_trampoline_start
moxie_trampoline_start:
    .code16
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    lgdtl ({base} + tramp_gdt_ptr - moxie_trampoline_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $({base} + tramp32 - moxie_trampoline_start)
    .code32
tramp32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $(1 << 5), %eax
    movl %eax, %cr4
    movl ({base} + tramp_cr3 - moxie_trampoline_start), %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010000, %eax
    movl %eax, %cr0
    ljmpl $0x18, $({base} + tramp64 - moxie_trampoline_start)
    .code64
tramp64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movq ({base} + tramp_stack - moxie_trampoline_start), %rsp
    movq ({base} + tramp_cpu - moxie_trampoline_start), %rdi
    movq ({base} + tramp_entry - moxie_trampoline_start), %rax
    xorl %ebp, %ebp
    pushq $0
    jmpq *%rax

    .balign 8
tramp_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00af9a000000ffff
tramp_gdt_ptr:
    .short 31
    .long {base} + tramp_gdt - moxie_trampoline_start
    .balign 8
    .global moxie_trampoline_params
moxie_trampoline_params:
tramp_cr3: .quad 0
tramp_stack: .quad 0
tramp_cpu: .quad 0
tramp_entry: .quad 0
    .global moxie_trampoline_end
moxie_trampoline_end:
    "#,
    base = const TRAMPOLINE,
    options(att_syntax)
);

unsafe extern "C" {
    static moxie_trampoline_start: u8;
    static moxie_trampoline_params: u8;
    static moxie_trampoline_end: u8;
}

/// The parameter block at the end of the trampoline.
#[repr(C)]
struct Params {
    cr3: u64,
    stack: u64,
    cpu: u64,
    entry: u64,
}

/// The boot CPU's CR4 (SMEP, SMAP, UMIP, SSE bits), which every AP copies.
static BSP_CR4: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// APs that have finished their start-up.
static ONLINE: AtomicUsize = AtomicUsize::new(1);

/// CPUs running (the boot CPU included).
pub fn online() -> usize {
    ONLINE.load(Ordering::Acquire)
}

/// Builds the trampoline's page table: the kernel half of the kernel's, plus the low 2 MiB
/// identity-mapped (executable) for the trampoline itself.
fn trampoline_tables() -> Option<u64> {
    let pml4 = frames::alloc_zeroed()?.into_phys();
    let pdpt = frames::alloc_zeroed()?.into_phys();
    let pd = frames::alloc_zeroed()?.into_phys();
    let kernel = paging::kernel_space().root();
    // SAFETY: three fresh frames owned here, written through the direct map; the kernel's root
    // table is only read (its upper half never changes after boot).
    unsafe {
        let dst = phys::to_virt(pml4) as *mut u64;
        let src = phys::to_virt(kernel) as *const u64;
        for i in 256..512 {
            dst.add(i).write(src.add(i).read());
        }
        dst.write(pdpt | 0b11);
        (phys::to_virt(pdpt) as *mut u64).write(pd | 0b11);
        (phys::to_virt(pd) as *mut u64).write(0x83);
    }
    Some(pml4)
}

/// Starts every AP the MADT lists; returns how many came online (the boot CPU included).
pub fn start_aps() -> usize {
    let topo = super::acpi::cpus();
    if topo.cpus < 2 {
        return 1;
    }
    BSP_CR4.store(
        x86_64::registers::control::Cr4::read_raw(),
        Ordering::Relaxed,
    );
    let Some(cr3) = trampoline_tables() else {
        log::warn!("no memory for the AP start-up tables; running on the boot CPU only");
        return 1;
    };
    let start = &raw const moxie_trampoline_start;
    let len = &raw const moxie_trampoline_end as usize - start as usize;
    let params_off = &raw const moxie_trampoline_params as usize - start as usize;
    // SAFETY: the trampoline page lies in low memory, which the stub painted `LowMemory` and the
    // frame allocator never hands out; nothing else uses it after boot. The code is copied from
    // the core's read-only data.
    unsafe {
        core::ptr::copy_nonoverlapping(start, phys::to_virt(TRAMPOLINE) as *mut u8, len);
    }
    let params = (phys::to_virt(TRAMPOLINE) as usize + params_off) as *mut Params;
    for cpu in 1..topo.cpus {
        let Ok(stack) = context::KernelStack::new() else {
            log::warn!("no memory for CPU {cpu}'s stack");
            break;
        };
        let top = stack.top();
        // The stack becomes the AP's idle thread's; it lives as long as the kernel.
        core::mem::forget(stack);
        let before = online();
        // SAFETY: the parameter block inside the trampoline page copied above; the AP reads it
        // only after the start-up IPI below, and the boot CPU waits for it to come online
        // before it rewrites the block for the next AP.
        unsafe {
            params.write_volatile(Params {
                cr3,
                stack: top,
                cpu: cpu as u64,
                entry: ap_entry as *const () as u64,
            });
        }
        apic::start_ap(topo.apic_ids[cpu], (TRAMPOLINE >> 12) as u8);
        let deadline = apic::now_ns() + 1_000_000_000;
        while online() == before && apic::now_ns() < deadline {
            core::hint::spin_loop();
        }
        if online() == before {
            log::warn!("CPU {cpu} (APIC id {}) did not start", topo.apic_ids[cpu]);
        }
    }
    online()
}

/// The first Rust code of an AP, on its own kernel stack, on the trampoline's page table.
extern "C" fn ap_entry(cpu: u64) -> ! {
    let cpu = cpu as usize;
    paging::kernel_space().activate();
    // SAFETY: the boot CPU's protections (SMEP, SMAP, UMIP) and SSE enables, valid on this CPU
    // of the same machine.
    unsafe { x86_64::registers::control::Cr4::write_raw(BSP_CR4.load(Ordering::Relaxed)) };
    percpu::init(cpu);
    let sel = gdt::init(cpu);
    idt::load();
    syscall::init(&sel);
    context::init_fpu_ap();
    apic::init_ap();
    ONLINE.fetch_add(1, Ordering::Release);
    crate::sched::ap_main(cpu)
}
