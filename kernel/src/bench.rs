//! In-kernel benchmarks for `cargo xtask bench`: each prints `bench: NAME VALUE UNIT`.
//!
//! Under QEMU `-icount shift=0,sleep=off` the TSC advances one tick per guest instruction, so
//! TSC differences are instruction counts, exact and repeatable.
use crate::arch::{apic, cpu};
use crate::process::{self, SpawnOptions};
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
    for (name, arg) in [
        ("syscall", 10),
        ("channel", 20),
        ("spawn", 21),
        ("threads", 46),
        ("portal", 48 | 6 << 8),
    ] {
        if wanted(name) {
            match crate::process::spawn("bin/probe", arg, crate::process::SpawnOptions::default()) {
                Ok(pid) => {
                    crate::process::wait(pid);
                }
                Err(e) => crate::println!("bench: cannot spawn the probe: {e}"),
            }
        }
    }
    if wanted("sched") {
        sched_benchmarks();
    }
    if wanted("crosscore") {
        cross_core_wake();
    }
    if which.split(',').any(|w| w == "suspend") {
        suspend_round_trips();
    }
    crate::println!("bench: done");
    cpu::exit_qemu(ExitCode::Success)
}

fn spawn_on(arg: u64, core: usize) -> Option<u64> {
    let opts = SpawnOptions {
        core: Some(core),
        ..SpawnOptions::default()
    };
    match process::spawn("bin/probe", arg, opts) {
        Ok(pid) => Some(pid),
        Err(e) => {
            crate::println!("bench: cannot spawn the probe: {e}");
            None
        }
    }
}

/// Context switch (yield ping-pong between two processes on one core) and timer interrupts per
/// second with 1, 2 and 8 busy threads on one core.
fn sched_benchmarks() {
    const N: u64 = 20_000;
    let pids: alloc::vec::Vec<u64> = [31 | (1 << 8) | (N << 9), 31 | (N << 9)]
        .into_iter()
        .filter_map(|arg| spawn_on(arg, 0))
        .collect();
    for pid in pids {
        process::wait(pid);
    }
    for k in [1usize, 2, 8] {
        let before = apic::timer_interrupts();
        let t0 = apic::now_ns();
        let pids: alloc::vec::Vec<u64> =
            (0..k).filter_map(|_| spawn_on(23 | (50 << 8), 0)).collect();
        for pid in pids {
            process::wait(pid);
        }
        let ns = apic::now_ns() - t0;
        let irqs = apic::timer_interrupts() - before;
        crate::println!(
            "bench: timer_irqs_per_s_{k}_runnable {} per_s",
            u128::from(irqs) * 1_000_000_000 / u128::from(ns.max(1))
        );
    }
}

/// A message from core 0 to a receiver blocked on core 1 and back: the round trip across cores.
fn cross_core_wake() {
    if crate::sched::cores() < 2 {
        crate::println!("bench: cross-core wake needs two CPUs");
        return;
    }
    let (a, b) = crate::ipc::Endpoint::pair();
    let opts = SpawnOptions {
        core: Some(1),
        ..SpawnOptions::default()
    };
    let Ok((pong, _)) = process::spawn_watched(
        "bin/probe",
        29 | (1 << 8),
        opts,
        alloc::vec![(crate::ipc::Object::Endpoint(a), abi::Rights::CHANNEL_ALL)],
    ) else {
        crate::println!("bench: cannot spawn the echoer");
        return;
    };
    const N: u64 = 2_000;
    let msg = || crate::ipc::Msg::new(alloc::vec![0u8; 8], alloc::vec::Vec::new());
    for _ in 0..50 {
        let _ = b.send(msg());
        let _ = b.recv_blocking(abi::syscall::DEADLINE_NEVER);
    }
    let t0 = cpu::rdtsc();
    for _ in 0..N {
        let _ = b.send(msg());
        let _ = b.recv_blocking(abi::syscall::DEADLINE_NEVER);
    }
    let t1 = cpu::rdtsc();
    crate::println!("bench: cross_core_rt_8 {} instr", (t1 - t0) / N);
    drop(b);
    process::wait(pong);
}

/// Suspend + serialize + resume of the probe's counter with 64 KiB, 1 MiB and 16 MiB more of
/// its arena filled, on the last virtio-blk disk (a FAT volume the harness attaches) mounted
/// as the root filesystem; each phase as the CPU time all cores spent on it (instructions under
/// `-icount shift=0`, the waits for the disk left out) and as the monotonic clock's advance
/// (wall time without `-icount`).
fn suspend_round_trips() {
    use crate::suspend::{PHASES, phase};
    // Under `-icount` guest time jumps over the host's disk work (a busy host made the 16 MiB
    // read miss the 20 s reply deadline once): the boot's own timeout is the guard here.
    crate::rootfs::wait_without_deadline();
    let n = crate::device::block_devices();
    if !crate::rootfs::mounted()
        && (n == 0 || crate::rootfs::start(&alloc::format!("virtio-blk{}", n - 1)).is_err())
    {
        crate::println!("bench: suspend needs a FAT volume as the last disk");
        return;
    }
    for (label, bytes) in [("64k", 64u64 << 10), ("1m", 1 << 20), ("16m", 16 << 20)] {
        let opts = SpawnOptions {
            arena_ceiling: 64 << 20,
            ..SpawnOptions::default()
        };
        let Ok((pid, ep)) = process::spawn_with("bin/probe", 49, opts, alloc::vec::Vec::new())
        else {
            crate::println!("bench: cannot spawn the counter");
            return;
        };
        let ask = |v: u64| {
            let m = crate::ipc::Msg::new(v.to_le_bytes().to_vec(), alloc::vec::Vec::new());
            let _ = ep.send(m);
        };
        ask(1 << 62 | bytes);
        ask(1);
        let _ = ep.recv_blocking(abi::syscall::DEADLINE_NEVER);
        let id = match crate::suspend::suspend(pid) {
            Ok(id) => id,
            Err(e) => {
                crate::println!("bench: the {label} suspend failed: {e}");
                return;
            }
        };
        let r = match crate::suspend::resume(id, None) {
            Ok(r) => r,
            Err(e) => {
                crate::println!("bench: the {label} resume failed: {e}");
                return;
            }
        };
        ask(2);
        let _ = ep.recv_blocking(abi::syscall::DEADLINE_NEVER);
        let p = *PHASES.lock();
        let cores = crate::sched::cores() as u64;
        // (busy, elapsed): CPU time all cores spent on the phase (instructions under
        // `-icount`: the disk's waits left out) and the clock's advance.
        let span = |a: usize, b: usize| {
            let elapsed = p[b].ns - p[a].ns;
            let idle = p[b].idle_ns - p[a].idle_ns;
            ((elapsed * cores).saturating_sub(idle), elapsed)
        };
        let mut total = (0, 0);
        for (name, (a, b)) in [
            ("suspend", (phase::SUSPEND, phase::SERIALIZED)),
            ("write", (phase::SERIALIZED, phase::WRITTEN)),
            ("read", (phase::RESUME, phase::READ)),
            ("resume", (phase::READ, phase::RUNNING)),
        ] {
            let (busy, elapsed) = span(a, b);
            total = (total.0 + busy, total.1 + elapsed);
            crate::println!("bench: suspend_{label}_{name} {busy} instr");
            crate::println!("bench: suspend_{label}_{name}_ns {elapsed} ns");
        }
        crate::println!("bench: suspend_{label}_round_trip {} instr", total.0);
        crate::println!("bench: suspend_{label}_round_trip_ns {} ns", total.1);
        process::die(r.info.pid, process::Death::Killed);
    }
}
