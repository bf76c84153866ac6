//! ACPI, as far as the core needs it: the MADT's list of processors (local APIC ids) and I/O
//! APICs, read with the `acpi` crate through the direct map.
use super::phys;
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use core::ptr::NonNull;

/// Most CPUs the core tracks.
pub const MAX_CPUS: usize = 16;

/// Physical memory is always mapped: a "mapping" is the direct-map address.
#[derive(Clone, Copy)]
struct DirectMap;

impl AcpiHandler for DirectMap {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let virt = phys::to_virt(physical_address as u64) as *mut T;
        // SAFETY: the direct map covers every physical address the firmware tables use (the low
        // 4 GiB at least), and the mapping is never unmapped; the crate reads through it only.
        unsafe {
            PhysicalMapping::new(
                physical_address,
                NonNull::new(virt).expect("the direct map is above 0"),
                size,
                size,
                *self,
            )
        }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// What the MADT says about the machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct Topology {
    /// Local APIC ids of the usable processors; the boot CPU first.
    pub apic_ids: [u32; MAX_CPUS],
    /// How many of `apic_ids` are used.
    pub cpus: usize,
    /// Physical address of the first I/O APIC (0 if none).
    pub ioapic: u64,
    /// Processors the MADT listed beyond `MAX_CPUS`.
    pub ignored: usize,
}

/// Finds the RSDP (`rsdp` from the bootloader, else a BIOS-area search) and reads the MADT.
pub fn topology(rsdp: u64, boot_apic_id: u32) -> Result<Topology, acpi::AcpiError> {
    // SAFETY: either the bootloader's RSDP copy or the BIOS areas, all in the direct map; the
    // crate validates signatures and checksums before it trusts anything.
    let tables = unsafe {
        if rsdp != 0 {
            AcpiTables::from_rsdp(DirectMap, rsdp as usize)?
        } else {
            AcpiTables::search_for_rsdp_bios(DirectMap)?
        }
    };
    let madt = tables.find_table::<Madt>()?;
    let mut t = Topology::default();
    t.apic_ids[0] = boot_apic_id;
    t.cpus = 1;
    for entry in madt.get().entries() {
        let id = match entry {
            MadtEntry::LocalApic(e) if e.flags & 0b11 != 0 => u32::from(e.apic_id),
            MadtEntry::LocalX2Apic(e) if e.flags & 0b11 != 0 => e.x2apic_id,
            MadtEntry::IoApic(e) => {
                if t.ioapic == 0 {
                    t.ioapic = u64::from(e.io_apic_address);
                }
                continue;
            }
            _ => continue,
        };
        if id == boot_apic_id {
            continue;
        }
        if t.cpus == MAX_CPUS {
            t.ignored += 1;
        } else {
            t.apic_ids[t.cpus] = id;
            t.cpus += 1;
        }
    }
    Ok(t)
}

static TOPOLOGY: spin::Once<Topology> = spin::Once::new();

/// Records what [`topology`] found (once, at boot).
pub fn set_topology(t: Topology) {
    TOPOLOGY.call_once(|| t);
}

/// The machine's processors as found at boot (just the boot CPU if ACPI was unusable).
pub fn cpus() -> Topology {
    TOPOLOGY.get().copied().unwrap_or(Topology {
        cpus: 1,
        ..Topology::default()
    })
}
