//! `probe`: a test program. The spawn argument selects what it does, and the in-kernel suite
//! checks the outcome (exit code, fault report, error codes).
#![no_std]
#![no_main]

use abi::Error;
use moxie_rt::println;

/// What each argument does.
mod behaviour {
    pub const EXIT_42: u64 = 0;
    pub const NULL_DEREF: u64 = 1;
    pub const GP_FAULT: u64 = 2;
    pub const INVALID_OPCODE: u64 = 3;
    pub const DIVIDE_BY_ZERO: u64 = 4;
    pub const STACK_OVERFLOW: u64 = 5;
    pub const PANIC: u64 = 6;
    pub const BAD_POINTERS: u64 = 7;
    pub const YIELD_LOOP: u64 = 8;
    pub const SSE_STATE: u64 = 9;
    pub const BENCH_NULL_SYSCALL: u64 = 10;
}

/// Prints the instructions per null system call (the TSC counts instructions under icount).
fn bench_null() -> i32 {
    const N: u64 = 10_000;
    // Warm up the path (TLB, caches of the emulator) before measuring.
    for _ in 0..100 {
        let _ = moxie_rt::null();
    }
    // SAFETY: rdtsc only reads the time-stamp counter, which ring 3 may read.
    let t0 = unsafe { core::arch::x86_64::_rdtsc() };
    for _ in 0..N {
        let _ = moxie_rt::null();
    }
    // SAFETY: as above.
    let t1 = unsafe { core::arch::x86_64::_rdtsc() };
    println!("bench: null_syscall {} instr", (t1 - t0) / N);
    0
}

#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    let pad = core::hint::black_box([n; 32]);
    recurse(n + 1) + pad[3]
}

/// Each bad pointer must give `BadAddress`; returns the number of checks that passed, or exits
/// with the index of the first that did not.
fn bad_pointers() -> i32 {
    let cases: [(u64, u64); 6] = [
        (0, 8),                         // null
        (0xffff_8000_0000_0000, 8),     // kernel half
        (0x7fff_ffff_fff0, 64),         // runs into the kernel half
        (u64::MAX - 4, 16),             // overflows
        (0x5000_0000_0000, 8),          // unmapped
        (abi::layout::USER_END - 1, 2), // straddles the end of the user half
    ];
    for (i, (p, n)) in cases.iter().enumerate() {
        if moxie_rt::log_raw(*p, *n) != Err(Error::BadAddress) {
            return 100 + i as i32;
        }
    }
    if moxie_rt::log_raw(0x1000, (abi::syscall::MAX_LOG_BYTES + 1) as u64) != Err(Error::TooBig) {
        return 120;
    }
    if moxie_rt::syscall6(0xdead, [0; 6]) != Err(Error::BadSyscall) {
        return 121;
    }
    0
}

/// Puts a value in xmm0, yields to other threads many times, and checks it survived.
fn sse_state(arg: u64) -> i32 {
    let mark = 0x5151_0000_0000_0000u64 | arg;
    // SAFETY: writes xmm0, which no Rust code in this soft-float program uses.
    unsafe { core::arch::asm!("movq xmm0, {}", in(reg) mark) };
    for _ in 0..50 {
        let _ = moxie_rt::yield_now();
    }
    let got: u64;
    // SAFETY: reads xmm0 back.
    unsafe { core::arch::asm!("movq {}, xmm0", out(reg) got) };
    if got == mark { 0 } else { 1 }
}

/// Entry, called by the runtime.
#[unsafe(no_mangle)]
pub extern "C" fn main(arg: u64) -> i32 {
    use behaviour::*;
    match arg & 0xff {
        EXIT_42 => 42,
        NULL_DEREF => {
            // SAFETY: deliberately not: the fault is the test.
            unsafe {
                core::ptr::read_volatile(core::hint::black_box(
                    core::ptr::without_provenance::<u64>(8),
                )) as i32
            }
        }
        GP_FAULT => {
            // SAFETY: deliberately not: a non-canonical address raises #GP.
            unsafe {
                core::ptr::read_volatile(core::hint::black_box(
                    0x8000_0000_0000_0000u64 as *const u64,
                )) as i32
            }
        }
        INVALID_OPCODE => {
            // SAFETY: deliberately not: ud2 raises #UD.
            unsafe { core::arch::asm!("ud2") };
            0
        }
        DIVIDE_BY_ZERO => {
            let zero = core::hint::black_box(0u64);
            // SAFETY: deliberately not: div by zero raises #DE (asm, so Rust's check is bypassed).
            unsafe {
                core::arch::asm!("div {}", in(reg) zero, inout("rax") 1u64 => _, inout("rdx") 0u64 => _)
            };
            0
        }
        STACK_OVERFLOW => recurse(0) as i32,
        PANIC => panic!("probe panics on purpose"),
        BAD_POINTERS => bad_pointers(),
        YIELD_LOOP => {
            for i in 0..(arg >> 8) {
                println!("probe: yield {}", i);
                let _ = moxie_rt::yield_now();
            }
            7
        }
        SSE_STATE => sse_state(arg >> 8),
        BENCH_NULL_SYSCALL => bench_null(),
        other => {
            println!("probe: unknown behaviour {}", other);
            1
        }
    }
}
