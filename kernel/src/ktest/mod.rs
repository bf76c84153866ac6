//! In-kernel tests: each case runs inside the booted core and reports over the serial console in
//! a line format the harness (`cargo xtask test`) parses:
//!
//! ```text
//! ktest: start NAME
//! ktest: ok NAME
//! ktest: FAIL NAME: reason
//! ktest: done P passed, F failed
//! ```
//!
//! `test=all` runs every case in order; `test=a,b` runs the named ones; `test-skip=N` skips the
//! first N selected cases (the harness reboots past a case that crashed the machine).
use crate::arch::cpu;
use abi::qemu::ExitCode;
use alloc::string::String;

mod blk_cases;
mod cases;
mod channel_cases;
mod device_cases;
mod portal_cases;
mod process_cases;
mod rootfs_cases;
mod sched_cases;
mod smp_cases;
mod suspend_cases;
mod system_cases;
mod thread_cases;

/// One in-kernel test case.
pub struct Case {
    /// Stable name, used on the command line and in reports.
    pub name: &'static str,
    /// The test; `Err` carries the reason it failed.
    pub run: fn() -> Result<(), String>,
    /// CPUs the case needs; with fewer it is reported as skipped (`ktest: skip NAME: why`).
    pub min_cpus: usize,
}

/// The free-frame count once it stops changing: a thread that died on another CPU is freed by
/// that CPU a moment after its death is reported, so frame accounting waits (at most 100 ms)
/// for the count to reach `expected`.
pub fn settled_free_frames(expected: u64) -> u64 {
    let give_up = crate::arch::apic::now_ns() + 100_000_000;
    loop {
        let now = crate::arch::frames::free_frames();
        if now == expected || crate::arch::apic::now_ns() > give_up {
            return now;
        }
        crate::sched::block_until(crate::arch::apic::now_ns() + 1_000_000);
    }
}

/// Free frames once the count has not moved for 5 ms (at most 100 ms): the starting figure of
/// a case that checks every frame comes back. Other cores free dead threads' kernel stacks at
/// their next switch, so right after an earlier process ended the count may still rise.
pub fn steady_free_frames() -> u64 {
    let give_up = crate::arch::apic::now_ns() + 100_000_000;
    let mut last = crate::arch::frames::free_frames();
    loop {
        crate::sched::block_until(crate::arch::apic::now_ns() + 5_000_000);
        let now = crate::arch::frames::free_frames();
        if now == last || crate::arch::apic::now_ns() > give_up {
            return now;
        }
        last = now;
    }
}

/// Fails the current case with a formatted reason unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(alloc::format!($($msg)*));
        }
    };
}

static HOST_CPUS: spin::Once<usize> = spin::Once::new();

/// Host CPUs running the emulator, as `host-cpus=` said (unknown: as many as this machine has).
pub fn host_cpus() -> usize {
    HOST_CPUS.get().copied().unwrap_or(usize::MAX)
}

/// Runs the selected cases and stops QEMU with success only if all passed.
pub fn run(filter: &str, skip: usize, host_cpus: Option<usize>) -> ! {
    if let Some(n) = host_cpus {
        HOST_CPUS.call_once(|| n);
    }
    let matches = |name: &str| {
        filter == "all"
            || filter.split(',').any(|n| match n.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => n == name,
            })
    };
    // Under -icount guest time runs ahead of the host's disk I/O while the guest idles: a
    // deadline on the filesystem driver's replies would expire at random.
    crate::rootfs::wait_without_deadline();
    let selected = cases::CASES.iter().filter(|c| matches(c.name));
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut any = false;
    let cpus = crate::sched::cores();
    for case in selected.skip(skip) {
        any = true;
        crate::println!("ktest: start {}", case.name);
        if cpus < case.min_cpus {
            skipped += 1;
            crate::println!(
                "ktest: skip {}: needs {} CPUs, this boot has {cpus}",
                case.name,
                case.min_cpus
            );
            continue;
        }
        match (case.run)() {
            Ok(()) => {
                passed += 1;
                crate::println!("ktest: ok {}", case.name);
            }
            Err(why) => {
                failed += 1;
                crate::println!("ktest: FAIL {}: {}", case.name, why);
            }
        }
    }
    if !any && skip == 0 {
        crate::println!("ktest: no case matches \"{filter}\"");
        failed += 1;
    }
    crate::println!("ktest: done {passed} passed, {failed} failed, {skipped} skipped");
    cpu::exit_qemu(if failed == 0 {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}
