//! In-kernel tests of threads inside one process (the in-process threading contract): the
//! probe's thread behaviours (39–46) with the outcomes checked here, and the scheduler's
//! generation-checked thread references checked directly.
use crate::arch::apic;
use crate::arch::context::Start;
use crate::ensure;
use crate::process::{self, Death, FaultKind, SpawnOptions};
use crate::sched;
use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};

const PROBE: &str = "bin/probe";

fn run(arg: u64, opts: SpawnOptions) -> Result<Death, String> {
    let pid = process::spawn(PROBE, arg, opts).map_err(|e| format!("spawn: {e}"))?;
    process::wait(pid).ok_or_else(|| format!("process {pid} vanished"))
}

fn expect_exit(arg: u64, opts: SpawnOptions, code: i64, what: &str) -> Result<(), String> {
    let d = run(arg, opts)?;
    ensure!(
        d == Death::Exit(code),
        "{what}: the probe ended with {d:?} (a non-zero exit is the number of the failed check)"
    );
    Ok(())
}

/// Two threads share the address space and handles, each with its own FS base; one joins the
/// other; the last thread (not the main one) ends the process with its code, 33.
pub fn threads_share_space_and_last_exit_ends_process() -> Result<(), String> {
    expect_exit(39, SpawnOptions::default(), 33, "threads basic")
}

/// Every `Failed` and `Overloaded` creation, with the ledger unchanged.
pub fn thread_create_refusals_roll_back() -> Result<(), String> {
    expect_exit(
        40,
        SpawnOptions::default(),
        0,
        "bad arguments, full handle table",
    )?;
    let limited = SpawnOptions {
        thread_limit: 3,
        ..SpawnOptions::default()
    };
    expect_exit(40 | 1 << 8, limited, 0, "thread limit")?;
    let budget = SpawnOptions {
        kernel_stack_pages: 2 * abi::thread::KERNEL_STACK_PAGES,
        ..SpawnOptions::default()
    };
    expect_exit(40 | 2 << 8, budget, 0, "kernel-stack budget")?;
    // The parent's limits are checked too.
    for (limit, pages) in [(0, 64), (17, 64), (16, 3), (16, 68)] {
        let opts = SpawnOptions {
            thread_limit: limit,
            kernel_stack_pages: pages,
            ..SpawnOptions::default()
        };
        ensure!(
            process::spawn(PROBE, 0, opts).is_err(),
            "a spawn with thread limit {limit} and budget {pages} was accepted"
        );
    }
    Ok(())
}

/// Every join rule, detach by release before and after exit, a pending join pinning.
pub fn thread_join_rules() -> Result<(), String> {
    expect_exit(41, SpawnOptions::default(), 0, "join rules")
}

/// Park and wake: changed word, deadline, wake, nobody to wake, bad addresses.
pub fn park_wait_wake_and_timeout() -> Result<(), String> {
    let before = crate::park::parked_count();
    expect_exit(42, SpawnOptions::default(), 0, "park")?;
    ensure!(
        crate::park::parked_count() == before,
        "park entries left behind: {} (was {before})",
        crate::park::parked_count()
    );
    Ok(())
}

/// A process exits while threads are parked, joining and sleeping: frames, ledgers and park
/// entries all come back.
pub fn process_exit_cleans_up_waiting_threads() -> Result<(), String> {
    // A first run warms the kernel heap (thread table, waiter lists) up to its working size.
    expect_exit(43, SpawnOptions::default(), 5, "warm-up run")?;
    let frames = super::steady_free_frames();
    let (bytes, _) = process::ledger_totals();
    expect_exit(43, SpawnOptions::default(), 5, "exit with waiters")?;
    let after = super::settled_free_frames(frames);
    ensure!(
        after == frames,
        "free frames {after} after the exit, {frames} before"
    );
    ensure!(
        crate::park::parked_count() == 0,
        "{} park entries survive the process",
        crate::park::parked_count()
    );
    let (bytes_after, _) = process::ledger_totals();
    ensure!(
        bytes_after == bytes,
        "channel ledgers hold {bytes_after} bytes, {bytes} before"
    );
    Ok(())
}

/// A fault in one thread ends the whole process with that fault while another is parked.
pub fn fault_in_a_thread_ends_the_process() -> Result<(), String> {
    let d = run(44, SpawnOptions::default())?;
    ensure!(
        matches!(
            d,
            Death::Fault {
                kind: FaultKind::PageFault,
                addr: 16,
                ..
            }
        ),
        "the process ended with {d:?}"
    );
    ensure!(
        crate::park::parked_count() == 0,
        "the parked thread's entry survives"
    );
    Ok(())
}

/// On two cores the threads of one process run in parallel.
pub fn smp_threads_run_in_parallel() -> Result<(), String> {
    let opts = SpawnOptions {
        core: Some(0),
        ..SpawnOptions::default()
    };
    expect_exit(45, opts, 0, "parallel threads")
}

static WOKEN: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_wakes(_: u64) -> ! {
    loop {
        sched::block();
        WOKEN.fetch_add(1, Ordering::SeqCst);
    }
}

extern "C" fn end_at_once(_: u64) -> ! {
    sched::exit_current()
}

fn settle() {
    for _ in 0..5 {
        sched::block_until(apic::now_ns() + 1_000_000);
    }
}

/// A thread ends and its slot is reused by a new thread: a wake-up and a timer aimed at the old
/// thread's reference do not reach the new one (they are counted as stale), while its own
/// reference does.
pub fn stale_thread_refs_do_not_reach_a_reused_slot() -> Result<(), String> {
    let here = Some(crate::arch::percpu::cpu_id());
    let spawn = |entry| {
        sched::spawn_on(
            Start::Kernel { entry, arg: 0 },
            None,
            None,
            here,
            schedpolicy::Priority::NORMAL,
        )
        .map_err(|_| String::from("no memory for a thread"))
    };
    let old = spawn(end_at_once)?;
    settle();
    ensure!(!sched::is_running(old), "the first thread has not ended");
    let new = spawn(count_wakes)?;
    settle();
    ensure!(
        new.tid == old.tid,
        "the slot was not reused (old {}, new {}); the test needs it",
        old.tid,
        new.tid
    );
    ensure!(
        new.thread_gen != old.thread_gen,
        "the reused slot kept its generation"
    );
    let woken = WOKEN.load(Ordering::SeqCst);
    let stale = sched::stats().stale_wakes;
    sched::wake(old);
    settle();
    ensure!(
        WOKEN.load(Ordering::SeqCst) == woken,
        "a wake-up for the old thread reached the new one"
    );
    sched::wake_at(old, apic::now_ns() + 1_000_000);
    sched::block_until(apic::now_ns() + 5_000_000);
    settle();
    ensure!(
        WOKEN.load(Ordering::SeqCst) == woken,
        "a timer for the old thread reached the new one"
    );
    ensure!(
        sched::stats().stale_wakes >= stale + 2,
        "the stale wake-up and timer were not counted ({} -> {})",
        stale,
        sched::stats().stale_wakes
    );
    // The new thread's own reference works, by wake and by timer.
    sched::wake(new);
    settle();
    ensure!(
        WOKEN.load(Ordering::SeqCst) == woken + 1,
        "the new thread's own wake-up did not reach it"
    );
    sched::wake_at(new, apic::now_ns() + 1_000_000);
    sched::block_until(apic::now_ns() + 5_000_000);
    settle();
    ensure!(
        WOKEN.load(Ordering::SeqCst) == woken + 2,
        "the new thread's own timer did not reach it"
    );
    sched::kill(new);
    Ok(())
}
