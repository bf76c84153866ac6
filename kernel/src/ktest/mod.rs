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

mod cases;
mod channel_cases;
mod process_cases;
mod sched_cases;

/// One in-kernel test case.
pub struct Case {
    /// Stable name, used on the command line and in reports.
    pub name: &'static str,
    /// The test; `Err` carries the reason it failed.
    pub run: fn() -> Result<(), String>,
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

/// Runs the selected cases and stops QEMU with success only if all passed.
pub fn run(filter: &str, skip: usize) -> ! {
    let selected = cases::CASES
        .iter()
        .filter(|c| filter == "all" || filter.split(',').any(|n| n == c.name));
    let (mut passed, mut failed) = (0, 0);
    let mut any = false;
    for case in selected.skip(skip) {
        any = true;
        crate::println!("ktest: start {}", case.name);
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
    crate::println!("ktest: done {passed} passed, {failed} failed");
    cpu::exit_qemu(if failed == 0 {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}
