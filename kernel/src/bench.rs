//! In-kernel benchmarks for `cargo xtask bench`: each prints `bench: NAME VALUE UNIT`.
//!
//! Under QEMU `-icount shift=0,sleep=off` the TSC advances one tick per guest instruction, so
//! TSC differences are instruction counts, exact and repeatable.
use crate::arch::cpu;
use abi::qemu::ExitCode;
use bootinfo::BootInfo;

/// Prints the boot-path figures and stops QEMU.
pub fn run(which: &str, bi: &BootInfo, core_entry_tsc: u64) -> ! {
    let t = bi.timings;
    let wanted = |name: &str| which == "all" || which.split(',').any(|w| w == name);
    if wanted("boot") {
        crate::println!(
            "bench: stub_entry_to_core_entry {} instr",
            core_entry_tsc - t.stub_entry
        );
        crate::println!(
            "bench: decompress_core {} instr",
            t.decompress_end - t.decompress_start
        );
        crate::println!(
            "bench: stub_after_decompress {} instr",
            t.core_jump - t.decompress_end
        );
        crate::println!(
            "bench: core_entry_to_bench {} instr",
            cpu::rdtsc() - core_entry_tsc
        );
        crate::println!(
            "bench: core_compressed_size {} bytes",
            bi.core_compressed_size
        );
        crate::println!(
            "bench: core_uncompressed_size {} bytes",
            bi.core_uncompressed_size
        );
    }
    // The probe measures in ring 3 and prints its own `bench:` lines.
    for (name, arg) in [("syscall", 10), ("channel", 20), ("spawn", 21)] {
        if wanted(name) {
            match crate::process::spawn("bin/probe", arg, crate::process::SpawnOptions::default()) {
                Ok(pid) => {
                    crate::process::wait(pid);
                }
                Err(e) => crate::println!("bench: cannot spawn the probe: {e}"),
            }
        }
    }
    crate::println!("bench: done");
    cpu::exit_qemu(ExitCode::Success)
}
