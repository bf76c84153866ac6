//! The final page tables the core starts on, and the switch into the core.
//!
//! Built with the `x86_64` crate's mapper over identity-mapped frames from a pool carved out of
//! the memory map: the direct map of physical memory at `PHYS_MAP_BASE` (2 MiB pages, no-execute),
//! the core's segments at their link addresses with their own permissions (4 KiB pages, W^X), the
//! boot stack with an unmapped guard page below it, and the stub's own pages identity-mapped so
//! that the instructions after the `mov cr3` still exist.
use crate::StubError;
use crate::load::CoreImage;
use abi::layout::{BOOT_STACK_SIZE, BOOT_STACK_TOP, PHYS_MAP_BASE};
use bootinfo::Protections;
use bootinfo::{MemoryKind, MemoryMap};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags, Efer, EferFlags};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as F, PhysFrame,
    Size2MiB, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Where the tables ended up.
pub struct Tables {
    /// Physical address of the PML4.
    pub pml4: u64,
    /// End of the direct map.
    pub phys_map_end: u64,
}

/// Page-table frames handed out in order from a pre-carved range.
struct Pool {
    next: u64,
    end: u64,
}

// SAFETY: every frame handed out lies in a range painted `PageTables` in the memory map, is
// identity-mapped, zeroed before use and handed out once.
unsafe impl FrameAllocator<Size4KiB> for Pool {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        if self.next >= self.end {
            return None;
        }
        let f = self.next;
        self.next += 4096;
        // SAFETY: see the impl's comment: the frame is ours and identity-mapped.
        unsafe { core::ptr::write_bytes(f as *mut u8, 0, 4096) };
        Some(PhysFrame::containing_address(PhysAddr::new(f)))
    }
}

/// True when EFER.NXE was switched on by the entry code.
pub fn nx_enabled() -> bool {
    Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE)
}

/// Builds the core's page tables.
pub fn build(
    map: &mut MemoryMap,
    core: &CoreImage,
    stub: (u64, u64),
    nx: bool,
) -> Result<Tables, StubError> {
    // Cover every byte the firmware calls memory of any kind but plain "reserved" (which can be
    // a terabyte-sized PCI window), and never less than 4 GiB so the local APIC, the I/O APIC
    // and 32-bit device windows are reachable through the direct map.
    let ram_end = map
        .regions()
        .iter()
        .filter(|r| r.kind != MemoryKind::Reserved)
        .map(|r| r.end)
        .max()
        .unwrap_or(0);
    let phys_map_end = ram_end.max(4 * GIB).next_multiple_of(2 * MIB);

    let kernel_pages: u64 = core.segments[..core.count]
        .iter()
        .map(|s| s.len / 4096)
        .sum();
    let stub_pages = (stub.1 - stub.0) / 4096;
    let pool_frames = 8
        + phys_map_end.div_ceil(GIB)
        + phys_map_end.div_ceil(512 * GIB)
        + (kernel_pages + stub_pages + BOOT_STACK_SIZE / 4096) / 512
        + 3 * (core.count as u64 + 2);
    let pool_start = map
        .allocate(
            pool_frames * 4096,
            4096,
            MIB,
            1 << 32,
            MemoryKind::PageTables,
        )
        .ok_or(StubError::NoMemory("page tables"))?;
    let mut pool = Pool {
        next: pool_start,
        end: pool_start + pool_frames * 4096,
    };
    let pml4_frame = pool
        .allocate_frame()
        .ok_or(StubError::NoMemory("page tables"))?;
    let pml4_addr = pml4_frame.start_address().as_u64();
    // SAFETY: the frame was just zeroed and is identity-mapped; the mapper is the only user of
    // these tables until the core takes them over.
    let mut mapper =
        unsafe { OffsetPageTable::new(&mut *(pml4_addr as *mut PageTable), VirtAddr::new(0)) };
    let nx_flag = if nx { F::NO_EXECUTE } else { F::empty() };

    for p in (0..phys_map_end).step_by(2 * MIB as usize) {
        let page = Page::<Size2MiB>::containing_address(VirtAddr::new(PHYS_MAP_BASE + p));
        let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(p));
        // SAFETY: the direct map aliases physical memory at a virtual range nothing else uses.
        unsafe { mapper.map_to(page, frame, F::PRESENT | F::WRITABLE | nx_flag, &mut pool) }
            .map_err(|_| StubError::NoMemory("page tables"))?
            .ignore();
    }

    let mut map_4k = |virt: u64, phys: u64, len: u64, flags: F| -> Result<(), StubError> {
        for off in (0..len).step_by(4096) {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt + off));
            let frame = PhysFrame::containing_address(PhysAddr::new(phys + off));
            // SAFETY: each virtual page is mapped once, to a frame owned by the core image, the
            // boot stack or the stub, as its range in the memory map says.
            unsafe { mapper.map_to(page, frame, flags, &mut pool) }
                .map_err(|_| StubError::NoMemory("page tables"))?
                .ignore();
        }
        Ok(())
    };
    for s in &core.segments[..core.count] {
        let mut flags = F::PRESENT | F::GLOBAL;
        if s.write {
            flags |= F::WRITABLE;
        }
        if !s.exec {
            flags |= nx_flag;
        }
        map_4k(s.virt, s.phys, s.len, flags)?;
    }

    let stack_phys = map
        .allocate(BOOT_STACK_SIZE, 4096, MIB, 1 << 32, MemoryKind::BootStack)
        .ok_or(StubError::NoMemory("the boot stack"))?;
    map_4k(
        BOOT_STACK_TOP - BOOT_STACK_SIZE,
        stack_phys,
        BOOT_STACK_SIZE,
        F::PRESENT | F::WRITABLE | nx_flag,
    )?;
    // The stub's own pages, identity-mapped, executable: only until the core drops them.
    map_4k(stub.0, stub.0, stub.1 - stub.0, F::PRESENT | F::WRITABLE)?;

    Ok(Tables {
        pml4: pml4_addr,
        phys_map_end,
    })
}

fn cpuid_leaf7() -> (u32, u32) {
    // cpuid is always available in long mode; leaf 0 tells whether leaf 7 exists.
    let max = core::arch::x86_64::__cpuid(0).eax;
    if max < 7 {
        return (0, 0);
    }
    let r = core::arch::x86_64::__cpuid_count(7, 0);
    (r.ebx, r.ecx)
}

/// Switches on write protection for the kernel and, where CPUID has them, SMEP, SMAP and UMIP.
pub fn enable_protections(nx: bool) -> Protections {
    let (ebx, ecx) = cpuid_leaf7();
    let smep = ebx & (1 << 7) != 0;
    let smap = ebx & (1 << 20) != 0;
    let umip = ecx & (1 << 2) != 0;
    // SAFETY: WP makes the kernel honour read-only pages; SMEP/SMAP/UMIP only restrict what
    // user-mode pages and instructions may do, and no user pages exist yet.
    unsafe {
        Cr0::update(|f| f.insert(Cr0Flags::WRITE_PROTECT));
        Cr4::update(|f| {
            f.set(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION, smep);
            f.set(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION, smap);
            f.set(Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION, umip);
        });
    }
    Protections {
        nx,
        smep,
        smap,
        umip,
    }
}

/// Loads the new tables and jumps to the core's entry with `rdi = boot_info`, as if called.
///
/// # Safety
///
/// `pml4` must map this code identically, the core's segments, the boot stack and `boot_info`.
pub unsafe fn enter_core(pml4: u64, entry: u64, boot_info: u64) -> ! {
    // SAFETY: guaranteed by the caller; rbp is cleared so the core's backtraces end here.
    unsafe {
        core::arch::asm!(
            "mov cr3, {pml4}",
            "mov rsp, {stack}",
            "xor ebp, ebp",
            // A zero return address: the entry sees the ABI's call alignment (rsp = 8 mod 16)
            // and backtraces end there.
            "push 0",
            "jmp {entry}",
            pml4 = in(reg) pml4,
            stack = in(reg) BOOT_STACK_TOP,
            entry = in(reg) entry,
            in("rdi") boot_info,
            options(noreturn)
        )
    }
}
