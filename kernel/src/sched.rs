//! The scheduler's mechanism: threads, the run queue, blocking, sleeping and waking, timer
//! preemption, CPU-time accounting and the context switch.
//!
//! Tickless: for each decision a one-shot timer is armed only when it is needed — for the
//! running thread's quantum when other threads are runnable, or for the earliest sleeper — and
//! never while a single thread is runnable and nobody sleeps. The kernel runs with interrupts off
//! except in the idle thread and in ring 3, so the scheduler's lock is never contended on one
//! CPU and never held across a switch.
use crate::arch::apic;
use crate::arch::context::{Context, Start, SwitchPair, switch_to};
use crate::arch::paging::{AddressSpace, MapError, kernel_space};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use spin::Mutex;

/// A thread's index in the thread table.
pub type Tid = usize;

/// Shortest quantum: below it, switching costs dominate.
pub const QUANTUM_FLOOR_NS: u64 = 100_000;
/// Longest quantum.
pub const QUANTUM_CEILING_NS: u64 = 1_000_000;

/// The quantum for a core with `runnable` threads: the ceiling shared out, never below the
/// floor.
pub fn quantum_ns(runnable: usize) -> u64 {
    (QUANTUM_CEILING_NS / runnable.max(1) as u64).clamp(QUANTUM_FLOOR_NS, QUANTUM_CEILING_NS)
}

/// What a thread is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// In the run queue.
    Runnable,
    /// On the CPU.
    Running,
    /// Waiting for a wake-up.
    Blocked,
    /// Finished; its resources go back at the next switch.
    Dead,
}

struct Thread {
    ctx: Context,
    state: State,
    /// When it last became runnable (for the waiting-time measurement).
    runnable_since: u64,
    /// Nanoseconds of CPU time used.
    cpu_ns: u64,
    /// The address space it runs in (none: the kernel's).
    space: Option<Arc<AddressSpace>>,
    /// The process it belongs to.
    pid: Option<crate::process::Pid>,
}

struct Scheduler {
    threads: Vec<Option<Box<Thread>>>,
    queue: VecDeque<Tid>,
    current: Tid,
    idle: Tid,
    /// A dead thread whose kernel stack was in use at its last switch; freed at the next one.
    reap: Option<Tid>,
    /// Blocked threads with a wake-up time.
    sleepers: Vec<(u64, Tid)>,
    /// When the running thread was dispatched.
    dispatched_at: u64,
    /// When the running thread's quantum ends (`None`: it runs until it blocks or yields).
    quantum_end: Option<u64>,
}

static SCHED: Mutex<Option<Scheduler>> = Mutex::new(None);

/// Measurements the scheduler keeps for its tests and the shell.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Dispatches ended by the timer (preemptions).
    pub preemptions: u64,
    /// Shortest and longest run that ended in a preemption, in ns.
    pub preempted_run_min: u64,
    /// See `preempted_run_min`.
    pub preempted_run_max: u64,
    /// Longest time a thread spent runnable before it was dispatched, in ns.
    pub longest_wait: u64,
    /// The thread that waited longest, and the process it belongs to.
    pub longest_waiter: (Tid, Option<crate::process::Pid>),
}

static STATS: Mutex<Stats> = Mutex::new(Stats {
    preemptions: 0,
    preempted_run_min: u64::MAX,
    preempted_run_max: 0,
    longest_wait: 0,
    longest_waiter: (0, None),
});

/// The measurements since the last [`reset_stats`].
pub fn stats() -> Stats {
    *STATS.lock()
}

/// When the measurements were last reset: waits that began earlier count from here.
static STATS_SINCE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Starts the measurements afresh.
pub fn reset_stats() {
    STATS_SINCE.store(apic::now_ns(), core::sync::atomic::Ordering::Relaxed);
    *STATS.lock() = Stats {
        preempted_run_min: u64::MAX,
        ..Stats::default()
    };
}

fn thread(
    ctx: Context,
    state: State,
    space: Option<Arc<AddressSpace>>,
    pid: Option<crate::process::Pid>,
) -> Box<Thread> {
    Box::new(Thread {
        ctx,
        state,
        runnable_since: apic::now_ns(),
        cpu_ns: 0,
        space,
        pid,
    })
}

/// Turns the boot code into thread 0 and creates the idle thread.
pub fn init() -> Result<(), MapError> {
    let boot = thread(Context::current_boot(), State::Running, None, None);
    let idle = thread(
        Context::new(Start::Kernel {
            entry: idle_loop,
            arg: 0,
        })?,
        State::Blocked,
        None,
        None,
    );
    *SCHED.lock() = Some(Scheduler {
        threads: alloc::vec![Some(boot), Some(idle)],
        queue: VecDeque::new(),
        current: 0,
        idle: 1,
        reap: None,
        sleepers: Vec::new(),
        dispatched_at: apic::now_ns(),
        quantum_end: None,
    });
    Ok(())
}

extern "C" fn idle_loop(_: u64) -> ! {
    loop {
        crate::arch::cpu::wait_for_interrupt();
        x86_64::instructions::interrupts::disable();
        yield_now();
    }
}

fn with<R>(f: impl FnOnce(&mut Scheduler) -> R) -> R {
    f(SCHED.lock().as_mut().expect("scheduler initialised"))
}

/// Creates a runnable thread in `space` for process `pid` starting at `start`.
pub fn spawn(
    start: Start,
    space: Option<Arc<AddressSpace>>,
    pid: Option<crate::process::Pid>,
) -> Result<Tid, MapError> {
    let ctx = Context::new(start)?;
    Ok(with(|s| {
        let t = thread(ctx, State::Runnable, space, pid);
        let tid = match s.threads.iter().position(Option::is_none) {
            Some(i) => {
                s.threads[i] = Some(t);
                i
            }
            None => {
                s.threads.push(Some(t));
                s.threads.len() - 1
            }
        };
        s.make_runnable(tid);
        tid
    }))
}

/// The running thread.
pub fn current() -> Tid {
    with(|s| s.current)
}

/// The process of the running thread.
pub fn current_pid() -> Option<crate::process::Pid> {
    with(|s| s.threads[s.current].as_ref().and_then(|t| t.pid))
}

/// CPU time a thread has used, in nanoseconds (the running thread's includes its current run).
pub fn cpu_time(tid: Tid) -> Option<u64> {
    with(|s| {
        let t = s.threads.get(tid)?.as_ref()?;
        let running = if tid == s.current {
            apic::now_ns() - s.dispatched_at
        } else {
            0
        };
        Some(t.cpu_ns + running)
    })
}

impl Scheduler {
    fn make_runnable(&mut self, tid: Tid) {
        if let Some(t) = self.threads.get_mut(tid).and_then(Option::as_mut)
            && t.state == State::Blocked
        {
            t.state = State::Runnable;
            t.runnable_since = apic::now_ns();
        }
        if !self.queue.contains(&tid) && tid != self.idle {
            self.queue.push_back(tid);
        }
        // A newly runnable thread next to a running one: the running one now needs a quantum.
        if self.current != self.idle && self.quantum_end.is_none() {
            let end = apic::now_ns() + quantum_ns(self.queue.len() + 1);
            self.quantum_end = Some(end);
        }
        self.program_timer();
    }

    /// Arms the timer for the nearest event (quantum end or sleeper), or disarms it.
    fn program_timer(&self) {
        let sleeper = self.sleepers.iter().map(|(d, _)| *d).min();
        let next = match (self.quantum_end, sleeper) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match next {
            Some(t) => apic::arm(t),
            None => apic::disarm(),
        }
    }

    fn wake_sleepers(&mut self, now: u64) {
        let mut due = Vec::new();
        self.sleepers.retain(|&(d, t)| {
            if d <= now {
                due.push(t);
                false
            } else {
                true
            }
        });
        for t in due {
            if self
                .threads
                .get(t)
                .and_then(Option::as_ref)
                .is_some_and(|th| th.state == State::Blocked)
            {
                self.make_runnable(t);
            }
        }
    }
}

/// Makes a blocked thread runnable.
pub fn wake(tid: Tid) {
    with(|s| {
        if s.threads
            .get(tid)
            .and_then(Option::as_ref)
            .is_some_and(|t| t.state == State::Blocked)
            && tid != s.idle
        {
            s.sleepers.retain(|&(_, t)| t != tid);
            s.make_runnable(tid);
        }
    });
}

/// Puts the running thread at the back of the queue and runs the next one.
pub fn yield_now() {
    schedule(State::Runnable);
}

/// Blocks the running thread until [`wake`].
pub fn block() {
    schedule(State::Blocked);
}

/// Blocks the running thread until [`wake`] or until `deadline_ns` on the monotonic clock.
pub fn block_until(deadline_ns: u64) {
    with(|s| {
        let me = s.current;
        s.sleepers.push((deadline_ns, me));
    });
    schedule(State::Blocked);
}

/// The timer fired: wake sleepers that are due and preempt the running thread if its quantum
/// is over and another thread is waiting.
pub fn timer_interrupt() {
    let preempt = with(|s| {
        let now = apic::now_ns();
        s.wake_sleepers(now);
        let expired = s.quantum_end.is_some_and(|e| e <= now);
        if expired && s.queue.is_empty() {
            s.quantum_end = None;
        }
        s.program_timer();
        (expired && !s.queue.is_empty()) || (s.current == s.idle && !s.queue.is_empty())
    });
    if preempt {
        schedule_preempted();
    }
}

fn schedule_preempted() {
    PREEMPTING.store(true, core::sync::atomic::Ordering::Relaxed);
    schedule(State::Runnable);
}

/// Set while the timer is the reason for the switch (so the run length counts as a quantum).
static PREEMPTING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Ends the running thread.
pub fn exit_current() -> ! {
    schedule(State::Dead);
    unreachable!("a dead thread was scheduled again");
}

/// Marks a thread that is not running as dead and takes it off the queue.
pub fn kill(tid: Tid) {
    with(|s| {
        if tid == s.current {
            return;
        }
        s.queue.retain(|&q| q != tid);
        s.sleepers.retain(|&(_, t)| t != tid);
        if let Some(slot) = s.threads.get_mut(tid) {
            *slot = None;
        }
    });
}

fn schedule(now_state: State) {
    let pair = {
        let mut guard = SCHED.lock();
        let s = guard.as_mut().expect("scheduler initialised");
        if let Some(r) = s.reap.take() {
            s.threads[r] = None;
        }
        let cur = s.current;
        let next = match s.queue.pop_front() {
            Some(n) => n,
            None if now_state == State::Runnable && cur != s.idle => {
                // Alone: run on with no quantum and (unless someone sleeps) no timer.
                s.quantum_end = None;
                s.program_timer();
                return;
            }
            None => s.idle,
        };
        if next == cur {
            return;
        }
        if now_state == State::Runnable && cur != s.idle {
            s.queue.push_back(cur);
            if let Some(t) = s.threads[cur].as_mut() {
                t.runnable_since = apic::now_ns();
            }
        }
        if now_state == State::Dead {
            s.reap = Some(cur);
        }
        let now = apic::now_ns();
        let used = now - s.dispatched_at;
        s.dispatched_at = now;
        {
            let mut st = STATS.lock();
            if PREEMPTING.swap(false, core::sync::atomic::Ordering::Relaxed) && cur != s.idle {
                st.preemptions += 1;
                st.preempted_run_min = st.preempted_run_min.min(used);
                st.preempted_run_max = st.preempted_run_max.max(used);
            }
            if next != s.idle
                && let Some(t) = s.threads[next].as_ref()
            {
                let since = t
                    .runnable_since
                    .max(STATS_SINCE.load(core::sync::atomic::Ordering::Relaxed));
                if now.saturating_sub(since) > st.longest_wait {
                    st.longest_wait = now.saturating_sub(since);
                    st.longest_waiter = (next, t.pid);
                }
            }
        }
        s.current = next;
        // The next thread gets a quantum only if others wait behind it.
        s.quantum_end = if s.queue.is_empty() || next == s.idle {
            None
        } else {
            Some(now + quantum_ns(s.queue.len() + 1))
        };
        s.program_timer();
        let Ok([Some(from), Some(to)]) = s.threads.get_disjoint_mut([cur, next]) else {
            unreachable!("the current and the next thread are distinct live records");
        };
        from.state = now_state;
        from.cpu_ns += used;
        to.state = State::Running;
        match &to.space {
            Some(space) => space.activate(),
            None => kernel_space().activate(),
        }
        SwitchPair::new(&mut from.ctx, &to.ctx)
    };
    switch_to(pair);
}
