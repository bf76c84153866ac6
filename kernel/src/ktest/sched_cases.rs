//! In-kernel tests of the scheduler: tickless with one thread, quanta within their bounds and
//! bounded waiting with many, sleep and receive deadlines on the monotonic clock, and an
//! immediate hand-over when a thread blocks mid-quantum. The harness runs them under QEMU
//! `-icount`, where guest time is exact, so the bounds can be tight.
use crate::arch::apic;
use crate::ensure;
use crate::process::{self, Death, SpawnOptions};
use crate::sched::{self, QUANTUM_CEILING_NS, QUANTUM_FLOOR_NS, quantum_ns};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

const PROBE: &str = "bin/probe";
const BUSY: u64 = 23;
/// Timer latency and switch costs allowed on top of the policy's bounds.
const SLACK_NS: u64 = 60_000;

fn spawn(arg: u64) -> Result<u64, String> {
    process::spawn(PROBE, arg, SpawnOptions::default()).map_err(|e| format!("spawn: {e}"))
}

fn wait_ok(pid: u64, what: &str) -> Result<(), String> {
    match process::wait(pid) {
        Some(Death::Exit(0)) => Ok(()),
        other => Err(format!("{what} ended with {other:?}")),
    }
}

pub fn one_busy_thread_takes_no_timer_interrupts() -> Result<(), String> {
    let total = || -> u64 {
        apic::TIMER_INTERRUPTS
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    };
    let before = total();
    let t0 = apic::now_ns();
    let pid = spawn(BUSY | (100 << 8))?;
    wait_ok(pid, "the busy probe")?;
    let ran = apic::now_ns() - t0;
    let timers = total() - before;
    ensure!(
        ran >= 100_000_000,
        "the probe finished after {ran} ns, before its 100 ms"
    );
    ensure!(
        timers == 0,
        "{timers} timer interrupts while one thread ran alone for {ran} ns"
    );
    Ok(())
}

fn busy_threads(n: usize) -> Result<(), String> {
    let pids: Vec<u64> = (0..n)
        .map(|_| spawn(BUSY | (10 << 8)))
        .collect::<Result<_, _>>()?;
    // Measure from here: the kernel is not preemptible, so the probes start when this thread
    // blocks in `wait`, all runnable at once.
    sched::reset_stats();
    for pid in pids {
        wait_ok(pid, "a busy probe")?;
    }
    let st = sched::stats();
    let q = quantum_ns(n);
    ensure!(st.preemptions > 0, "{n} busy threads and no preemption");
    ensure!(
        st.preempted_run_min + SLACK_NS >= QUANTUM_FLOOR_NS.min(q),
        "a quantum of {} ns is below the floor ({n} threads)",
        st.preempted_run_min
    );
    ensure!(
        st.preempted_run_max <= QUANTUM_CEILING_NS + SLACK_NS,
        "a quantum of {} ns is above the ceiling ({n} threads)",
        st.preempted_run_max
    );
    // The promise: a runnable thread waits at most for every other runnable thread's quantum;
    // as threads finish the quantum grows, so bound each by the ceiling.
    let bound = (n as u64 - 1) * QUANTUM_CEILING_NS + SLACK_NS;
    ensure!(
        st.longest_wait <= bound,
        "a thread waited {} ns with {n} runnable (bound {bound} ns)",
        st.longest_wait
    );
    Ok(())
}

pub fn quanta_and_waits_within_bounds() -> Result<(), String> {
    for n in [2, 4, 16] {
        busy_threads(n)?;
    }
    Ok(())
}

pub fn sleep_and_receive_deadlines() -> Result<(), String> {
    let a = spawn(24 | (5 << 8))?;
    wait_ok(a, "sleep 5 ms")?;
    let b = spawn(25)?;
    wait_ok(b, "a receive with a 3 ms deadline")?;
    // Sleeping next to a busy thread: the sleeper still wakes on time.
    let busy = spawn(BUSY | (20 << 8))?;
    let c = spawn(24 | (5 << 8))?;
    wait_ok(c, "sleep 5 ms next to a busy thread")?;
    wait_ok(busy, "the busy probe")?;
    Ok(())
}

pub fn blocking_mid_quantum_hands_over_at_once() -> Result<(), String> {
    let (blocker, end) = process::spawn_watched(PROBE, 26, SpawnOptions::default(), Vec::new())
        .map_err(|(e, _)| format!("spawn: {e}"))?;
    let busy = spawn(BUSY | (5 << 8))?;
    sched::reset_stats();
    wait_ok(busy, "the busy probe")?;
    let st = sched::stats();
    // The blocker worked 20 µs and blocked; the busy thread must not have waited for the rest
    // of the blocker's quantum (500 µs with two runnable threads).
    ensure!(
        st.longest_wait < 200_000,
        "thread {:?} waited {} ns although the other blocked after 20 µs (blocker {blocker}, busy {busy})",
        st.longest_waiter,
        st.longest_wait
    );
    drop(end);
    wait_ok(blocker, "the blocker")?;
    Ok(())
}

fn lateness_next_to_busy(priority: u64) -> Result<i64, String> {
    let busy = spawn(BUSY | (20 << 8))?;
    let opts = SpawnOptions {
        priority,
        ..SpawnOptions::default()
    };
    let sleeper = process::spawn(PROBE, 27 | (3 << 8), opts).map_err(|e| format!("spawn: {e}"))?;
    let late = match process::wait(sleeper) {
        Some(Death::Exit(us)) => us,
        other => return Err(format!("the sleeper ended with {other:?}")),
    };
    wait_ok(busy, "the busy probe")?;
    Ok(late)
}

pub fn tighter_deadline_preempts_within_one_quantum() -> Result<(), String> {
    // A priority-9 thread (100 µs deadlines) that wakes next to a busy normal one runs at once;
    // a normal one may wait for the busy thread's quantum (500 µs with two runnable).
    let tight = lateness_next_to_busy(9)?;
    let normal = lateness_next_to_busy(0)?;
    ensure!(
        (tight as u64) * 1_000 < quantum_ns(2),
        "the tight thread woke {tight} µs late (a quantum is {} µs)",
        quantum_ns(2) / 1_000
    );
    ensure!(
        tight <= normal,
        "the tight thread woke later ({tight} µs) than a normal one ({normal} µs)"
    );
    Ok(())
}
