//! The GDT and the TSS, with the interrupt-stack-table stacks for double fault, NMI and machine
//! check: those three must run on a known-good stack even when the current one is broken.
//!
//! Selector order is fixed for `syscall`/`sysret`: kernel code, kernel data, user data, user code.
//! Every CPU has its own GDT, TSS and IST stacks (the TSS holds that CPU's kernel stack for ring-3
//! interrupts); the selectors are the same on all of them.
use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot (1-based in the IDT, 0-based here) for double faults.
pub const IST_DOUBLE_FAULT: u16 = 0;
/// IST slot for non-maskable interrupts.
pub const IST_NMI: u16 = 1;
/// IST slot for machine checks.
pub const IST_MACHINE_CHECK: u16 = 2;

const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; IST_STACK_SIZE]);

const MAX_CPUS: usize = super::acpi::MAX_CPUS;

static mut IST_STACKS: [Stack; 3 * MAX_CPUS] = [const { Stack([0; IST_STACK_SIZE]) }; 3 * MAX_CPUS];

/// The selectors the rest of the core needs.
#[derive(Clone, Copy, Debug)]
pub struct Selectors {
    /// Ring-0 code.
    pub kernel_code: SegmentSelector,
    /// Ring-0 data.
    pub kernel_data: SegmentSelector,
    /// Ring-3 data.
    pub user_data: SegmentSelector,
    /// Ring-3 code.
    pub user_code: SegmentSelector,
    /// The TSS.
    pub tss: SegmentSelector,
}

/// One CPU's TSS. Only that CPU writes it (`percpu::set_kernel_rsp`, through the address of its
/// ring-0 stack field), with interrupts off.
struct TssCell(core::cell::UnsafeCell<TaskStateSegment>);
// SAFETY: each CPU touches only its own TSS, with interrupts disabled (see
// `percpu::set_kernel_rsp`).
unsafe impl Sync for TssCell {}
static TSS: [TssCell; MAX_CPUS] =
    [const { TssCell(core::cell::UnsafeCell::new(TaskStateSegment::new())) }; MAX_CPUS];
static TSS_READY: [Once<()>; MAX_CPUS] = [const { Once::new() }; MAX_CPUS];
static GDT: [Once<(GlobalDescriptorTable, Selectors)>; MAX_CPUS] =
    [const { Once::new() }; MAX_CPUS];

/// Builds and loads the GDT and TSS of CPU `cpu` (an index below `MAX_CPUS`), on that CPU.
pub fn init(cpu: usize) -> Selectors {
    TSS_READY[cpu].call_once(|| {
        // SAFETY: runs once, on CPU `cpu`, before its TSS is loaded: nothing else reads it.
        let tss = unsafe { &mut *TSS[cpu].0.get() };
        for (slot, i) in [IST_DOUBLE_FAULT, IST_NMI, IST_MACHINE_CHECK]
            .into_iter()
            .enumerate()
        {
            // Only the address is taken; the stacks are used by the CPU alone.
            let base = (&raw const IST_STACKS) as u64 + ((cpu * 3 + slot) * IST_STACK_SIZE) as u64;
            tss.interrupt_stack_table[i as usize] = VirtAddr::new(base + IST_STACK_SIZE as u64);
        }
    });
    // SAFETY: the TSS is a static that lives forever; the GDT descriptor only records its
    // address, and later writes go through `percpu::set_kernel_rsp` on this CPU.
    let tss: &'static TaskStateSegment = unsafe { &*TSS[cpu].0.get() };
    // The field the switch writes (an unaligned u64 in the packed TSS: fine on x86).
    let rsp0 = (&raw const tss.privilege_stack_table) as u64;
    super::percpu::set_tss_rsp0_slot(rsp0);
    let (gdt, sel) = GDT[cpu].call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (
            gdt,
            Selectors {
                kernel_code,
                kernel_data,
                user_data,
                user_code,
                tss,
            },
        )
    });
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded, whose descriptors are valid for ring 0.
    unsafe {
        CS::set_reg(sel.kernel_code);
        SS::set_reg(sel.kernel_data);
        DS::set_reg(sel.kernel_data);
        ES::set_reg(sel.kernel_data);
        load_tss(sel.tss);
    }
    *sel
}
