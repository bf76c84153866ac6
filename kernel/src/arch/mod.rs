//! The x86_64 hardware layer: the only part of the core allowed to use `unsafe`.
//!
//! Everything above it (memory management policy, logging, tests, benchmarks) works through the
//! safe functions and types exported here; each `unsafe` block below states why it is sound.
#![allow(unsafe_code)]

pub mod acpi;
pub mod apic;
pub mod context;
pub mod cpu;
pub mod crc;
pub mod entry;
pub mod export;
pub mod extable;
pub mod frames;
pub mod gdt;
pub mod heap;
pub mod idt;
pub mod mmio;
pub mod paging;
pub mod pci;
pub mod percpu;
pub mod phys;
pub mod portal_path;
pub mod serial;
pub mod smp;
pub mod syscall;
pub mod usermem;
