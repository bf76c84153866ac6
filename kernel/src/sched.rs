//! The scheduler's mechanism: threads, one run queue per core, blocking, sleeping and waking,
//! timer preemption, cross-core wake-ups by IPI, CPU-time accounting and the context switch.
//!
//! Tickless: after every decision a core arms its one-shot timer only when it is needed — for
//! the running thread's quantum when other threads are runnable on that core, or for the
//! earliest sleeper of that core — and never while a single thread is runnable and nobody
//! sleeps. The kernel runs with interrupts off except in idle threads and in ring 3.
//!
//! Locks, in the order they may be taken: the process table, a channel, the scheduler (one lock
//! for every core's state), a CPU's APIC. The scheduler's lock is never held across a switch.
use crate::arch::apic;
use crate::arch::context::{Context, Start, SwitchPair, switch_to};
use crate::arch::paging::{AddressSpace, MapError, Root, kernel_space};
use crate::arch::percpu::cpu_id;
use crate::arch::portal_path::{Fill, Visits};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use schedpolicy::{Policy, Priority, RunQueue, Wake};
use spin::Mutex;

/// A thread's index in the thread table (a slot: reused after the thread is gone).
pub type Tid = usize;

/// The generation every process has: pids are never reused while the kernel runs, so a pid
/// alone names one process; the field exists so that a process re-created under its old pid
/// (resumed from an image) can be told apart from its earlier life.
pub const PROCESS_GEN: u32 = 1;

/// Names one thread for anything that may wake it or write a result for it — a channel waiter,
/// a sleep or timer, a join, a park, a process-exit wait. A slot's generation changes each
/// time a new thread takes it, so a record aimed at a thread that is gone is *stale*: waking
/// it does nothing (it is counted, [`Stats::stale_wakes`]) and never reaches the slot's new
/// thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadRef {
    /// The process (0: a kernel thread).
    pub pid: crate::process::Pid,
    /// The process's generation ([`PROCESS_GEN`]).
    pub process_gen: u32,
    /// The slot.
    pub tid: Tid,
    /// The slot's generation when this thread took it.
    pub thread_gen: u32,
}

/// Shortest quantum: below it, switching costs dominate.
pub const QUANTUM_FLOOR_NS: u64 = 100_000;
/// Longest quantum.
pub const QUANTUM_CEILING_NS: u64 = 1_000_000;

/// The quantum for a core with `runnable` threads (the `schedpolicy` formula: the ceiling
/// shared out, never below the floor).
pub fn quantum_ns(runnable: usize) -> u64 {
    Policy::DEFAULT.quantum(runnable)
}

/// What a thread is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// In its core's run queue.
    Runnable,
    /// On a CPU.
    Running,
    /// Waiting for a wake-up.
    Blocked,
    /// Finished; its resources go back at its core's next switch.
    Dead,
    /// Stopped for a suspend at its way back to ring 3 (`crate::suspend`): the trap frame at
    /// the top of its kernel stack holds every user register. Wake-ups pass it by; only
    /// [`thaw`] or [`kill`] moves it.
    Frozen,
}

struct Thread {
    ctx: Context,
    /// Its slot's generation (see [`ThreadRef`]).
    generation: u32,
    /// The FS base it runs with in ring 3 (written to the CPU at every switch to it).
    fs_base: u64,
    state: State,
    /// The core it runs on (its affinity).
    core: usize,
    /// When it last became runnable (for the waiting-time measurement).
    runnable_since: u64,
    /// Nanoseconds of CPU time used.
    cpu_ns: u64,
    /// Killed while running on another core: it ends at its next trap.
    doomed: bool,
    /// Deadline tightness (0 normal, higher runs sooner and more often).
    priority: Priority,
    /// A wake-up arrived while it was still running (between registering as a waiter and
    /// blocking, possibly from another core): its next block returns at once.
    wake_pending: bool,
    /// The address space it runs in (none: the kernel's).
    space: Option<Arc<AddressSpace>>,
    /// The process it belongs to.
    pid: Option<crate::process::Pid>,
    /// Its portal calls and the space and process it runs in for them, from its first call
    /// on (`crate::portal`); until then it runs in `space` for its own process.
    visits: Option<Box<Visits>>,
    /// A server on its chain of calls died: unwind at its next return to ring 3.
    unwind: bool,
    /// Asked to freeze for a suspend: it stops at its next way back to ring 3.
    freeze: bool,
    /// Its system call was cut short by the freeze: the call is made again when it resumes.
    rewind: bool,
}

struct Core {
    /// The policy's run queue: every runnable thread of this core, the running one included
    /// (never the idle thread).
    rq: RunQueue<Tid>,
    current: Tid,
    idle: Tid,
    /// Dead threads of this core whose records (and kernel stacks) are freed on this core the
    /// next time it switches: a kernel stack is unmapped only by the CPU that used it, so no
    /// other CPU can hold a stale translation for it.
    reap: Vec<Tid>,
    /// Wake-ups due at a time: (when, slot, generation). An entry whose thread is gone is
    /// stale and dropped when due.
    sleepers: Vec<(u64, Tid, u32)>,
    /// When the running thread was dispatched.
    dispatched_at: u64,
    /// When the running thread's quantum ends (`None`: it runs until it blocks or yields).
    quantum_end: Option<u64>,
    /// The core's local APIC id, for IPIs.
    apic_id: u32,
    /// A thread with a tighter deadline became runnable: the running one yields its turn at
    /// the next interrupt or system-call return.
    need_resched: bool,
    /// What this core's timer was last set to (`None`: disarmed), so that a decision that
    /// keeps the same deadline does not reprogram it. Forgotten when the timer fires.
    armed: Option<u64>,
}

impl Core {
    /// Runnable threads other than the running one.
    fn waiting(&self) -> usize {
        self.rq.len() - usize::from(self.rq.running().is_some())
    }
}

struct Scheduler {
    threads: Vec<Option<Box<Thread>>>,
    /// Each slot's generation: bumped whenever a new thread takes the slot.
    gens: Vec<u32>,
    cores: Vec<Core>,
    /// Measurements since the last [`reset_stats`] (kept under the scheduler's lock, which
    /// every switch holds anyway).
    stats: Stats,
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
    /// Switches made by [`hand_off`] (a core passed straight from a sender to its receiver).
    pub hand_offs: u64,
    /// Wake-ups and timers aimed at a thread that is gone (a stale [`ThreadRef`]), dropped.
    pub stale_wakes: u64,
}

const FRESH_STATS: Stats = Stats {
    preemptions: 0,
    preempted_run_min: u64::MAX,
    preempted_run_max: 0,
    longest_wait: 0,
    longest_waiter: (0, None),
    hand_offs: 0,
    stale_wakes: 0,
};

/// When the measurements were last reset: waits that began earlier count from here.
static STATS_SINCE: AtomicU64 = AtomicU64::new(0);

/// The measurements since the last [`reset_stats`].
pub fn stats() -> Stats {
    with(|s| s.stats)
}

/// Starts the measurements afresh.
pub fn reset_stats() {
    STATS_SINCE.store(apic::now_ns(), Ordering::Relaxed);
    with(|s| s.stats = FRESH_STATS);
}

// Per-CPU "look at the scheduler before returning to ring 3" flags, in one byte of the CPU's
// own block so that the common system-call return is a single load and takes no lock.

/// The running thread must yield (a tighter deadline woke); cleared by the switch.
const ATTENTION: u8 = 1 << 0;
/// Some thread of this core was killed from another core and has not ended yet.
const DOOM_PENDING: u8 = 1 << 1;
/// Some thread of this core must unwind portal calls into a dead server (`crate::portal`).
const UNWIND_PENDING: u8 = 1 << 2;
/// Some thread of this core is asked to freeze for a suspend (`crate::suspend`).
const FREEZE_PENDING: u8 = 1 << 3;

fn raise(cpu: usize, flag: u8) {
    crate::arch::percpu::return_flags(cpu).fetch_or(flag, Ordering::AcqRel);
}

fn lower(cpu: usize, flag: u8) {
    crate::arch::percpu::return_flags(cpu).fetch_and(!flag, Ordering::AcqRel);
}

fn raised(cpu: usize, flag: u8) -> bool {
    debug_assert_eq!(cpu, cpu_id());
    crate::arch::percpu::return_flags_here() & flag != 0
}

/// Per-CPU: the core has dead threads whose records wait to be freed (so that the check after
/// every switch takes no lock when there are none); a byte of the CPU's own block.
fn reap_pending(cpu: usize) -> &'static core::sync::atomic::AtomicU8 {
    crate::arch::percpu::reap_flag(cpu)
}

/// Set on a core while the timer is the reason for its switch.
static PREEMPTING: [AtomicBool; crate::arch::acpi::MAX_CPUS] =
    [const { AtomicBool::new(false) }; crate::arch::acpi::MAX_CPUS];

fn thread(
    ctx: Context,
    state: State,
    core: usize,
    space: Option<Arc<AddressSpace>>,
    pid: Option<crate::process::Pid>,
) -> Box<Thread> {
    Box::new(Thread {
        ctx,
        generation: 0,
        fs_base: 0,
        state,
        core,
        runnable_since: apic::now_ns(),
        cpu_ns: 0,
        doomed: false,
        priority: Priority::NORMAL,
        wake_pending: false,
        space,
        pid,
        visits: None,
        unwind: false,
        freeze: false,
        rewind: false,
    })
}

fn add_thread(s: &mut Scheduler, mut t: Box<Thread>) -> Tid {
    let i = match s.threads.iter().position(Option::is_none) {
        Some(i) => i,
        None => {
            s.threads.push(None);
            s.gens.push(0);
            s.threads.len() - 1
        }
    };
    s.gens[i] = s.gens[i].wrapping_add(1);
    t.generation = s.gens[i];
    s.threads[i] = Some(t);
    i
}

impl Scheduler {
    /// The thread `r` names, if it is still that thread.
    fn live(&self, r: ThreadRef) -> Option<&Thread> {
        self.threads
            .get(r.tid)?
            .as_deref()
            .filter(|t| t.generation == r.thread_gen && t.pid.unwrap_or(0) == r.pid)
    }

    fn live_mut(&mut self, r: ThreadRef) -> Option<&mut Thread> {
        self.threads
            .get_mut(r.tid)?
            .as_deref_mut()
            .filter(|t| t.generation == r.thread_gen && t.pid.unwrap_or(0) == r.pid)
    }

    /// The reference naming the thread in slot `tid` now.
    fn ref_of(&self, tid: Tid) -> Option<ThreadRef> {
        let t = self.threads.get(tid)?.as_deref()?;
        Some(ThreadRef {
            pid: t.pid.unwrap_or(0),
            process_gen: PROCESS_GEN,
            tid,
            thread_gen: t.generation,
        })
    }
}

fn new_core(current: Tid, idle: Tid, apic_id: u32) -> Core {
    let mut rq = RunQueue::new(Policy::DEFAULT);
    if current != idle {
        // The code that is running (the boot thread) is this core's first runnable thread.
        let now = apic::now_ns();
        let _ = rq.insert(current, Priority::NORMAL, now);
        let _ = rq.pick(now);
    }
    Core {
        rq,
        current,
        idle,
        reap: Vec::new(),
        sleepers: Vec::new(),
        dispatched_at: apic::now_ns(),
        quantum_end: None,
        apic_id,
        need_resched: false,
        armed: None,
    }
}

/// Turns the boot code into thread 0 on core 0 and creates core 0's idle thread.
pub fn init() -> Result<(), MapError> {
    let idle_ctx = Context::new(Start::Kernel {
        entry: idle_loop,
        arg: 0,
    })?;
    let mut s = Scheduler {
        threads: Vec::new(),
        gens: Vec::new(),
        cores: Vec::new(),
        stats: FRESH_STATS,
    };
    let boot = add_thread(
        &mut s,
        thread(Context::current_boot(), State::Running, 0, None, None),
    );
    let idle = add_thread(&mut s, thread(idle_ctx, State::Blocked, 0, None, None));
    s.cores.push(new_core(boot, idle, apic::id()));
    let generation = s.gens[boot];
    *SCHED.lock() = Some(s);
    crate::arch::percpu::set_current(boot, generation, None);
    Ok(())
}

/// An application processor joins: its start-up context becomes its idle thread. Never
/// returns.
pub fn ap_main(cpu: usize) -> ! {
    with(|s| {
        while s.cores.len() < cpu {
            // Cores register in order; a gap means an earlier AP failed: leave a dead slot.
            let n = s.cores.len();
            s.cores.push(new_core(usize::MAX, usize::MAX, u32::MAX));
            log::warn!("core {n} is missing");
        }
        let idle = add_thread(
            s,
            thread(Context::current_boot(), State::Running, cpu, None, None),
        );
        s.cores.push(new_core(idle, idle, apic::id()));
    });
    log::debug!("cpu {cpu} online (APIC id {})", apic::id());
    idle_loop(0)
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

/// Cores that are running the scheduler.
pub fn cores() -> usize {
    with(|s| s.cores.iter().filter(|c| c.idle != usize::MAX).count())
}

/// The core a thread runs on.
pub fn core_of(r: ThreadRef) -> Option<usize> {
    with(|s| s.live(r).map(|t| t.core))
}

/// The core with the fewest runnable threads (ties: the lowest index).
fn least_loaded(s: &Scheduler) -> usize {
    (0..s.cores.len())
        .filter(|&c| s.cores[c].idle != usize::MAX)
        .min_by_key(|&c| s.cores[c].rq.len())
        .unwrap_or(0)
}

/// Creates a runnable thread in `space` for process `pid` starting at `start`, on `core`
/// (`None`: the least loaded core).
pub fn spawn_on(
    start: Start,
    space: Option<Arc<AddressSpace>>,
    pid: Option<crate::process::Pid>,
    core: Option<usize>,
    priority: Priority,
) -> Result<ThreadRef, MapError> {
    let r = create_on(start, space, pid, core, priority, 0)?;
    self::start(r);
    Ok(r)
}

/// Creates a thread like [`spawn_on`] (with FS base `fs_base`) but leaves it blocked: it runs
/// only after [`start`], or is thrown away by [`discard`]. A new process is entered in the
/// process table between the two, so that its thread — which may start at once on another
/// core — never runs before the kernel knows its process.
pub fn create_on(
    start: Start,
    space: Option<Arc<AddressSpace>>,
    pid: Option<crate::process::Pid>,
    core: Option<usize>,
    priority: Priority,
    fs_base: u64,
) -> Result<ThreadRef, MapError> {
    let ctx = Context::new(start)?;
    Ok(with(|s| {
        let c = core
            .filter(|&c| c < s.cores.len() && s.cores[c].idle != usize::MAX)
            .unwrap_or_else(|| least_loaded(s));
        let mut t = thread(ctx, State::Blocked, c, space, pid);
        t.priority = priority;
        t.fs_base = fs_base;
        let tid = add_thread(s, t);
        s.ref_of(tid).expect("just added")
    }))
}

/// True when `core` names a core that runs the scheduler.
pub fn core_exists(core: usize) -> bool {
    with(|s| core < s.cores.len() && s.cores[core].idle != usize::MAX)
}

/// Sets the first argument registers of a thread made by [`create_on`] for ring 3 that has not
/// started (its id is known only once it has a slot).
pub fn set_start_args(r: ThreadRef, args: [u64; 3]) {
    with(|s| {
        if let Some(t) = s.live_mut(r)
            && t.state == State::Blocked
        {
            t.ctx.set_user_args(args);
        }
    });
}

/// Makes a thread made by [`create_on`] runnable.
pub fn start(r: ThreadRef) {
    with(|s| {
        if s.live(r).is_some() {
            s.make_runnable(r.tid);
        }
    });
}

/// Throws away a thread made by [`create_on`] that never started (a creation rolled back).
pub fn discard(r: ThreadRef) {
    let freed = with(|s| {
        let ok = s.live(r).is_some_and(|t| t.state == State::Blocked);
        if ok { s.threads[r.tid].take() } else { None }
    });
    drop(freed);
}

/// The running thread on this CPU (from the per-CPU block: no lock).
pub fn current() -> Tid {
    crate::arch::percpu::current().0
}

/// The reference naming the running thread (from the per-CPU block: no lock).
#[inline]
pub fn current_ref() -> ThreadRef {
    let (tid, pid) = crate::arch::percpu::current();
    ThreadRef {
        pid: pid.unwrap_or(0),
        process_gen: PROCESS_GEN,
        tid,
        thread_gen: crate::arch::percpu::current_gen(),
    }
}

/// The running thread's FS base (out of line: the dispatcher stays small).
#[inline(never)]
pub fn fs_base() -> u64 {
    with(|s| {
        let cur = s.cores[cpu_id()].current;
        s.threads[cur].as_ref().map_or(0, |t| {
            // Inside a portal call: the one it has there.
            t.visits
                .as_ref()
                .and_then(|v| v.fs_in_call())
                .unwrap_or(t.fs_base)
        })
    })
}

/// Sets the running thread's FS base, in its record (restored at each switch to it) and in
/// the CPU at once.
pub fn set_fs_base(value: u64) {
    with(|s| {
        let cur = s.cores[cpu_id()].current;
        if let Some(t) = s.threads[cur].as_mut()
            && !t.visits.as_ref().is_some_and(|v| v.set_fs_in_call(value))
        {
            t.fs_base = value;
        }
    });
    crate::arch::cpu::set_fs_base(value);
}

/// The process the running thread acts for — its own, or the server it visits through a
/// portal — for handles, faults and logs (from the per-CPU block: no lock).
pub fn current_pid() -> Option<crate::process::Pid> {
    crate::arch::percpu::acting()
}

/// True when a thread is on a CPU or in a run queue (for the system handle's process list).
pub fn is_running(r: ThreadRef) -> bool {
    with(|s| {
        s.live(r)
            .is_some_and(|t| matches!(t.state, State::Running | State::Runnable))
    })
}

/// The time all cores together spent idle since boot, in nanoseconds (a core idle now counts
/// its current idle stretch): busy time over an interval is elapsed time × cores minus this
/// one's growth, which under `-icount shift=0` is the instructions executed (the benchmarks').
pub fn idle_ns() -> u64 {
    with(|s| {
        let now = apic::now_ns();
        s.cores
            .iter()
            .filter(|c| c.idle != usize::MAX)
            .map(|c| {
                let ran = s.threads[c.idle].as_ref().map_or(0, |t| t.cpu_ns);
                ran + if c.current == c.idle {
                    now.saturating_sub(c.dispatched_at)
                } else {
                    0
                }
            })
            .sum()
    })
}

/// CPU time a thread has used, in nanoseconds (a running thread's includes its current run).
pub fn cpu_time(r: ThreadRef) -> Option<u64> {
    let tid = r.tid;
    with(|s| {
        let t = s.live(r)?;
        let core = &s.cores[t.core];
        let running = if core.current == tid {
            apic::now_ns() - core.dispatched_at
        } else {
            0
        };
        Some(t.cpu_ns + running)
    })
}

impl Scheduler {
    /// Ends thread `tid`, which is not on any CPU: it becomes `Dead` where it stopped (its
    /// kernel stack is dropped unrun) and its core frees the record at its next switch, or at
    /// once through an IPI.
    fn bury(&mut self, tid: Tid) {
        let Some(t) = self.threads.get_mut(tid).and_then(Option::as_mut) else {
            return;
        };
        t.state = State::Dead;
        let (c, was_doomed) = (t.core, core::mem::take(&mut t.doomed));
        if was_doomed
            && !self
                .threads
                .iter()
                .flatten()
                .any(|o| o.core == c && o.doomed && o.state != State::Dead)
        {
            // No other thread of that core waits to end: its returns need not look.
            lower(c, DOOM_PENDING);
        }
        let core = &mut self.cores[c];
        let _ = core.rq.remove(tid, apic::now_ns());
        core.sleepers.retain(|&(_, x, _)| x != tid);
        core.reap.push(tid);
        reap_pending(c).store(1, Ordering::Release);
        if c != cpu_id() {
            // Let that core free it now rather than at its next switch.
            apic::send_ipi(core.apic_id, apic::RESCHEDULE_VECTOR);
        }
    }

    /// Puts `tid` on its core's queue; kicks that core if it is another one.
    fn make_runnable(&mut self, tid: Tid) {
        let Some(t) = self.threads.get_mut(tid).and_then(Option::as_mut) else {
            return;
        };
        if t.state != State::Blocked {
            return;
        }
        let now = apic::now_ns();
        t.state = State::Runnable;
        t.runnable_since = now;
        let (c, prio) = (t.core, t.priority);
        let core = &mut self.cores[c];
        let wake = core.rq.insert(tid, prio, now);
        if matches!(wake, Ok(Wake::Preempt)) && core.current != core.idle {
            // A tighter deadline than the running thread's, or company for a thread that ran
            // alone (with no timer): the running thread's turn ends at once — in the interrupt
            // or system call that made this thread runnable (`timer_interrupt`,
            // `preempt_if_needed`), or by the IPI below on another core.
            core.need_resched = true;
            raise(c, ATTENTION);
        }
        if c == cpu_id() {
            program_timer(core);
        } else {
            apic::send_ipi(core.apic_id, apic::RESCHEDULE_VECTOR);
        }
    }
}

/// Arms this core's timer for its nearest event (quantum end or sleeper), or disarms it;
/// nothing when it is already set that way.
fn program_timer(core: &mut Core) {
    let sleeper = core.sleepers.iter().map(|(d, _, _)| *d).min();
    let next = match (core.quantum_end, sleeper) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if next == core.armed {
        return;
    }
    core.armed = next;
    match next {
        Some(t) => apic::arm(t),
        None => apic::disarm(),
    }
}

/// Makes a blocked thread runnable (on its own core); a stale reference (the thread is gone,
/// its slot perhaps taken by another) wakes nobody.
pub fn wake(r: ThreadRef) {
    with(|s| {
        let tid = r.tid;
        let Some(t) = s.live(r) else {
            s.stats.stale_wakes += 1;
            return;
        };
        let c = t.core;
        match t.state {
            State::Blocked if s.cores[c].idle != tid => {
                s.cores[c].sleepers.retain(|&(_, x, _)| x != tid);
                s.make_runnable(tid);
            }
            State::Running | State::Runnable => {
                if let Some(t) = s.threads[tid].as_mut() {
                    t.wake_pending = true;
                }
            }
            _ => {}
        }
    });
}

/// Puts the running thread at the back of its queue and runs the next one.
pub fn yield_now() {
    schedule(State::Runnable);
}

/// Blocks the running thread until [`wake`].
pub fn block() {
    schedule(State::Blocked);
}

/// Blocks the running thread until [`wake`] or until `deadline_ns` on the monotonic clock.
pub fn block_until(deadline_ns: u64) {
    wake_at(current_ref(), deadline_ns);
    schedule(State::Blocked);
}

/// Arms a timer that wakes `r` at `deadline_ns` (on its core); dropped when due if `r` is stale
/// by then, or when `r` is woken earlier.
pub fn wake_at(r: ThreadRef, deadline_ns: u64) {
    with(|s| {
        let Some(c) = s.live(r).map(|t| t.core) else {
            s.stats.stale_wakes += 1;
            return;
        };
        let core = &mut s.cores[c];
        core.sleepers.push((deadline_ns, r.tid, r.thread_gen));
        if c == cpu_id() {
            program_timer(core);
        } else {
            apic::send_ipi(core.apic_id, apic::RESCHEDULE_VECTOR);
        }
    });
}

/// This core's timer fired (or another core kicked it): wake sleepers that are due, and
/// preempt the running thread if its quantum is over and another thread is waiting.
pub fn timer_interrupt() {
    let preempt = with(|s| {
        let now = apic::now_ns();
        let cpu = cpu_id();
        // A one-shot timer that fired is disarmed; an IPI may have come instead, so the timer
        // state is unknown either way: program it afresh below.
        s.cores[cpu].armed = None;
        let mut due = Vec::new();
        s.cores[cpu].sleepers.retain(|&(d, t, g)| {
            if d <= now {
                due.push((t, g));
                false
            } else {
                true
            }
        });
        for (t, g) in due {
            if s.threads
                .get(t)
                .and_then(Option::as_deref)
                .is_some_and(|x| x.generation == g)
            {
                s.make_runnable(t);
            } else {
                s.stats.stale_wakes += 1;
            }
        }
        let core = &mut s.cores[cpu];
        let expired = core.quantum_end.is_some_and(|e| e <= now) || core.need_resched;
        if expired && core.waiting() == 0 {
            // The others left meanwhile: run on alone, without a timer.
            core.quantum_end = None;
        }
        program_timer(core);
        (expired && core.waiting() > 0) || (core.current == core.idle && !core.rq.is_empty())
    });
    if preempt {
        PREEMPTING[cpu_id()].store(true, Ordering::Relaxed);
        schedule(State::Runnable);
    }
}

/// Called before a system call returns to ring 3: ends the thread if it was killed from another
/// core, yields the CPU if a thread with a tighter deadline became runnable. One load when
/// there is nothing to do.
#[inline]
pub fn on_return_to_user() {
    on_return_flags();
}

/// True when no return flag (doom, attention, portal unwind) is raised on this core: the
/// system-call return then has nothing to do but store the result. One load.
#[inline(always)]
pub fn nothing_to_do_on_return() -> bool {
    crate::arch::percpu::return_flags_here() == 0
}

#[inline]
fn on_return_flags() {
    let flags = crate::arch::percpu::return_flags_here();
    if flags == 0 {
        return;
    }
    if flags & DOOM_PENDING != 0 && current_doomed() {
        exit_current();
    }
    if flags & ATTENTION != 0 {
        preempt_if_needed();
    }
}

/// Yields the CPU if a thread with a tighter deadline became runnable meanwhile.
pub fn preempt_if_needed() {
    if !raised(cpu_id(), ATTENTION) {
        return;
    }
    // The flag is set only with `need_resched` and another runnable thread; should they have
    // gone meanwhile, the policy picks this thread again and `schedule` returns at once.
    PREEMPTING[cpu_id()].store(true, Ordering::Relaxed);
    schedule(State::Runnable);
}

/// A reschedule IPI from another core (a wake-up, a kill, a thread to free).
pub fn reschedule_ipi() {
    reap_now();
    timer_interrupt();
}

/// True when the running thread was killed from another core (it must end now).
pub fn current_doomed() -> bool {
    let cpu = cpu_id();
    if !raised(cpu, DOOM_PENDING) {
        return false;
    }
    with(|s| {
        let cur = s.cores[cpu].current;
        s.threads[cur].as_ref().is_some_and(|t| t.doomed)
    })
}

/// Ends the running thread.
pub fn exit_current() -> ! {
    schedule(State::Dead);
    unreachable!("a dead thread was scheduled again");
}

/// Ends a thread that is not the caller. A thread running on another core is marked and kicked;
/// it ends at its next trap, and this returns only once it is off that CPU. A stale reference
/// or a thread already ending does nothing.
pub fn kill(r: ThreadRef) {
    let tid = r.tid;
    let running_elsewhere = with(|s| {
        let Some(t) = s.live(r) else {
            return false;
        };
        if t.state == State::Dead {
            return false;
        }
        let c = t.core;
        let t = s.threads[tid].as_mut().expect("live");
        if s.cores[c].current == tid {
            if c == cpu_id() {
                return false;
            }
            t.doomed = true;
            raise(c, DOOM_PENDING);
            apic::send_ipi(s.cores[c].apic_id, apic::RESCHEDULE_VECTOR);
            return true;
        }
        s.bury(tid);
        false
    });
    if running_elsewhere {
        // Wait for it to leave its CPU. It ends at its next interrupt or system-call return;
        // if it blocks in a system call or is preempted instead, it is buried where it stopped,
        // like a thread that was not running. It must not be woken to unwind its call: the
        // caller tears its address space down next, and a woken thread would switch into a
        // retired space on its core (CR3 0: a triple fault).
        while with(|s| {
            let Some(t) = s.live(r) else {
                return false;
            };
            match t.state {
                State::Running => true,
                State::Blocked | State::Runnable | State::Frozen => {
                    s.bury(tid);
                    false
                }
                State::Dead => false,
            }
        }) {
            core::hint::spin_loop();
        }
    }
}

fn schedule(now_state: State) {
    let cpu = cpu_id();
    let pair = {
        let mut guard = SCHED.lock();
        let s = guard.as_mut().expect("scheduler initialised");
        let cur = s.cores[cpu].current;
        if now_state == State::Blocked
            && let Some(t) = s.threads[cur].as_mut()
            && t.wake_pending
        {
            // Woken before it got here: do not sleep through that wake-up.
            t.wake_pending = false;
            return;
        }
        if let Some(t) = s.threads[cur].as_mut() {
            t.wake_pending = false;
        }
        let preempting = PREEMPTING[cpu].swap(false, Ordering::Relaxed);
        let now = apic::now_ns();
        let core = &mut s.cores[cpu];
        let reap = core::mem::take(&mut core.reap);
        // Account the running thread with the policy.
        if cur != core.idle {
            let _ = match now_state {
                State::Runnable if preempting => core.rq.preempted(cur, now).map(|_| ()),
                State::Runnable => core.rq.yielded(cur, now).map(|_| ()),
                State::Blocked | State::Frozen => core.rq.blocked(cur, now).map(|_| ()),
                State::Dead | State::Running => core.rq.remove(cur, now).map(|_| ()),
            };
        }
        core.need_resched = false;
        lower(cpu, ATTENTION);
        let decision = core.rq.pick(now);
        let next = decision.as_ref().map_or(core.idle, |d| d.id);
        core.quantum_end = decision.and_then(|d| d.timer);
        program_timer(core);
        // Records freed after the lock is released (dropping a kernel stack unmaps it).
        let freed: Vec<Box<Thread>> = if reap.is_empty() {
            Vec::new()
        } else {
            reap.iter().filter_map(|&r| s.threads[r].take()).collect()
        };
        let core = &mut s.cores[cpu];
        if next == cur {
            drop(guard);
            drop(freed);
            return;
        }
        if now_state == State::Dead {
            core.reap.push(cur);
            reap_pending(cpu).store(1, Ordering::Release);
        }
        if now_state == State::Dead
            && s.threads[cur].as_ref().is_some_and(|t| t.doomed)
            && !s.threads.iter().enumerate().any(|(i, t)| {
                i != cur
                    && t.as_ref()
                        .is_some_and(|t| t.core == cpu && t.doomed && t.state != State::Dead)
            })
        {
            lower(cpu, DOOM_PENDING);
        }
        if next != core.idle
            && let Some(t) = s.threads[next].as_ref()
        {
            // How long the next thread waited (a hand-off's waited nothing).
            let st = &mut s.stats;
            let since = t.runnable_since.max(STATS_SINCE.load(Ordering::Relaxed));
            if now.saturating_sub(since) > st.longest_wait {
                st.longest_wait = now.saturating_sub(since);
                st.longest_waiter = (next, t.pid);
            }
        }
        let Scheduler {
            threads,
            cores,
            stats,
            ..
        } = s;
        let core = &mut cores[cpu];
        let Ok([Some(from), Some(to)]) = threads.get_disjoint_mut([cur, next]) else {
            unreachable!("the current and the next thread are distinct live records");
        };
        let pair = switch(core, stats, from, to, next, now, now_state, preempting);
        (pair, freed)
    };
    let (pair, freed) = pair;
    drop(freed);
    switch_to(pair);
    // Back on this thread: free what died on this core meanwhile (its stack is no longer in use).
    reap_now();
}

/// The running thread blocks and `to` (blocked, on this core) runs at once in its place, with
/// the policy's one-pass [`RunQueue::hand_off`] instead of a wake-up, a block and a pick: the
/// message-passing fast path. Returns false, with nothing changed, whenever the policy must
/// choose or the caller must not block — another thread is runnable here, `to` is on another
/// core or not blocked, the caller has a wake-up pending or was killed: the caller then wakes
/// `to` and blocks the ordinary way. True once the caller has been woken and runs again.
pub fn hand_off(to: ThreadRef) -> bool {
    let cpu = cpu_id();
    if raised(cpu, DOOM_PENDING) {
        return false;
    }
    let pair = {
        let mut guard = SCHED.lock();
        let s = guard.as_mut().expect("scheduler initialised");
        let core = &mut s.cores[cpu];
        let cur = core.current;
        let to_ref = to;
        let to = to.tid;
        if cur == core.idle || to == core.idle {
            return false;
        }
        // Distinct live records (`to == cur` fails here too), `to` still the thread named.
        let Ok([Some(me), Some(them)]) = s.threads.get_disjoint_mut([cur, to]) else {
            return false;
        };
        if them.generation != to_ref.thread_gen || them.pid.unwrap_or(0) != to_ref.pid {
            return false;
        };
        if me.wake_pending || them.state != State::Blocked || them.core != cpu {
            return false;
        }
        let now = apic::now_ns();
        if core.rq.hand_off(cur, to, them.priority, now).is_err() {
            return false;
        }
        them.runnable_since = now;
        if !core.sleepers.is_empty() {
            core.sleepers.retain(|&(_, x, _)| x != to);
        }
        core.need_resched = false;
        if raised(cpu, ATTENTION) {
            lower(cpu, ATTENTION);
        }
        // Alone before and after: no quantum timer, only the sleepers'.
        core.quantum_end = None;
        if core.armed.is_some() || !core.sleepers.is_empty() {
            program_timer(core);
        }
        s.stats.hand_offs += 1;
        switch(core, &mut s.stats, me, them, to, now, State::Blocked, false)
    };
    switch_to(pair);
    reap_now();
    true
}

/// Makes `next` (record `to`) the running thread of `core` in place of the current one
/// (record `from`), which becomes `now_state`: the bookkeeping, the address space, and the pair
/// of contexts for [`switch_to`] (called after the lock is released).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn switch(
    core: &mut Core,
    stats: &mut Stats,
    from: &mut Thread,
    to: &mut Thread,
    next: Tid,
    now: u64,
    now_state: State,
    preempting: bool,
) -> SwitchPair {
    let cur = core.current;
    let used = now - core.dispatched_at;
    core.dispatched_at = now;
    core.current = next;
    let idle = core.idle;
    if preempting && cur != idle {
        stats.preemptions += 1;
        stats.preempted_run_min = stats.preempted_run_min.min(used);
        stats.preempted_run_max = stats.preempted_run_max.max(used);
    }
    from.state = if cur == idle {
        State::Blocked
    } else {
        now_state
    };
    from.cpu_ns += used;
    if now_state == State::Runnable {
        from.runnable_since = now;
    }
    to.state = State::Running;
    crate::arch::percpu::set_current(next, to.generation, to.pid);
    match (&to.visits, &to.space) {
        // Where its portal calls took it.
        (Some(visits), _) => visits.resume(to.fs_base),
        (None, Some(space)) => {
            space.activate();
            // FS base is the thread's own, even between threads of one address space.
            crate::arch::cpu::set_fs_base(to.fs_base);
        }
        (None, None) => kernel_space().activate(),
    }
    SwitchPair::new(&mut from.ctx, &to.ctx)
}

/// Frees the records of threads that died on this core, if it is not running one of them.
#[inline(always)]
fn reap_now() {
    if crate::arch::percpu::reap_flag_here() != 0 {
        reap(cpu_id());
    }
}

#[inline(never)]
fn reap(cpu: usize) {
    let freed: Vec<Box<Thread>> = with(|s| {
        reap_pending(cpu).store(0, Ordering::Release);
        let cur = s.cores[cpu].current;
        let reap = core::mem::take(&mut s.cores[cpu].reap);
        let (keep, free): (Vec<Tid>, Vec<Tid>) = reap.into_iter().partition(|&r| r == cur);
        if !keep.is_empty() {
            reap_pending(cpu).store(1, Ordering::Release);
        }
        s.cores[cpu].reap = keep;
        free.into_iter()
            .filter_map(|r| s.threads[r].take())
            .collect()
    });
    drop(freed);
}

// ---- Portal calls (`crate::portal`): the thread's stack of calls and its unwinding ----
//
// A thread's calls live in its `Visits` record (`arch::portal_path`), which only the thread
// itself writes while it runs (the fast path does so without this lock); the general path
// below writes it as the running thread under this lock, and other CPUs read it under this
// lock. A server's death (`portal_evict`) sets the server's death mark before it looks, and a
// call checks the mark after it has published itself: see `arch::portal_path`.

/// Why a portal call cannot enter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnterError {
    /// The server is the thread's own process or already on its chain of calls.
    Reentry,
    /// [`abi::portal::MAX_DEPTH`] calls are open.
    TooDeep,
    /// The thread is being unwound (a server on its chain died).
    Unwinding,
    /// The server has died.
    Dead,
}

/// Where a portal call goes.
pub struct Target<'a> {
    /// The server.
    pub server: crate::process::Pid,
    /// Its address space.
    pub root: Root,
    /// Its death mark (set by `crate::portal::server_died` before the eviction looks).
    pub dead: &'a AtomicBool,
}

/// The running thread enters `to.server` through a portal: the registers its caller keeps
/// (from `saved`), its space and FS base are pushed, and it runs in the server's space, for
/// the server, with FS base zero (the thread's own FS base stays in its record). A call from
/// the thread's own process is remembered for the fast path with what `fill` gives (`None`:
/// the cache holds it already). Returns the process it acted for before (the caller) and the
/// thread's slot.
#[inline(always)]
pub fn portal_enter(
    saved: &crate::arch::idt::TrapFrame,
    to: Target<'_>,
    fill: impl FnOnce(&Visits) -> Option<Fill>,
) -> Result<(crate::process::Pid, Tid), EnterError> {
    let cur = current();
    // The lock taken here rather than through `with`, so that all of it inlines.
    let mut guard = SCHED.lock();
    let s = guard.as_mut().expect("scheduler initialised");
    let t = s
        .threads
        .get_mut(cur)
        .and_then(Option::as_deref_mut)
        .ok_or(EnterError::Unwinding)?;
    if t.unwind {
        return Err(EnterError::Unwinding);
    }
    if t.pid == Some(to.server) {
        return Err(EnterError::Reentry);
    }
    let visits = match &mut t.visits {
        Some(v) => v,
        None => {
            // The first call: the record, for as long as the thread lives (out of line).
            let own = t
                .space
                .as_ref()
                .map_or_else(|| kernel_space().root_of(), |s| s.root_of());
            t.visits.insert(first_visit(own))
        }
    };
    if visits.servers().any(|p| p == to.server) {
        return Err(EnterError::Reentry);
    }
    let depth = visits.depth();
    if depth >= abi::portal::MAX_DEPTH {
        return Err(EnterError::TooDeep);
    }
    // The process the thread acts for now (its own, or the server of its innermost call).
    let caller = crate::arch::percpu::acting().unwrap_or(0);
    visits
        .push(saved, to.server, to.dead)
        .map_err(|_| EnterError::Dead)?;
    visits.enter(to.server, to.root);
    if depth == 0
        && let Some(f) = fill(visits)
    {
        visits.cache(f);
    }
    Ok((caller, cur))
}

#[inline(never)]
fn first_visit(own: Root) -> Box<Visits> {
    Visits::new_for_running(own)
}

impl Thread {
    /// Pops the calls from index `i` on and restores the state of the outermost popped one's
    /// caller, its registers into `frame` (this thread must be the running one); false, with
    /// nothing changed, when fewer calls are open.
    #[inline(always)]
    fn pop_calls(&mut self, i: usize, frame: &mut crate::arch::idt::TrapFrame) -> bool {
        self.visits.as_ref().is_some_and(|v| v.pop(i, frame))
    }

    /// The servers of its open calls, outermost first.
    fn servers(&self) -> impl Iterator<Item = crate::process::Pid> + '_ {
        self.visits.iter().flat_map(|v| v.servers())
    }
}

/// The running thread leaves its innermost portal call: its caller's state comes back and
/// the caller's kept registers are written to `frame` (the others zero). False when it is not
/// in a call.
#[inline(always)]
pub fn portal_leave(frame: &mut crate::arch::idt::TrapFrame) -> bool {
    let cur = current();
    let mut guard = SCHED.lock();
    let s = guard.as_mut().expect("scheduler initialised");
    let Some(t) = s.threads.get_mut(cur).and_then(Option::as_deref_mut) else {
        return false;
    };
    match t.visits.as_ref().map_or(0, |v| v.depth()).checked_sub(1) {
        Some(n) => t.pop_calls(n, frame),
        None => false,
    }
}

/// True when some thread of this core may have portal calls to unwind (one load, no lock).
#[inline]
pub fn unwind_raised() -> bool {
    raised(cpu_id(), UNWIND_PENDING)
}

/// True when the running thread must unwind its portal calls (a blocking loop stops).
pub fn unwinding() -> bool {
    unwind_raised()
        && with(|s| {
            let cur = s.cores[cpu_id()].current;
            s.threads[cur].as_ref().is_some_and(|t| t.unwind)
        })
}

/// Takes the running thread's unwind request: the servers of its open calls, outermost
/// first, or `None` when it has none. Lowers the core's flag when no thread of it has one.
pub fn take_unwind() -> Option<Vec<crate::process::Pid>> {
    let cpu = cpu_id();
    with(|s| {
        let cur = s.cores[cpu].current;
        let mine = s.threads[cur]
            .as_mut()
            .and_then(|t| core::mem::take(&mut t.unwind).then(|| t.servers().collect()));
        let others = s
            .threads
            .iter()
            .flatten()
            .any(|t| t.core == cpu && t.unwind && t.state != State::Dead);
        if !others {
            lower(cpu, UNWIND_PENDING);
        }
        mine
    })
}

/// Pops the running thread's portal calls from index `i` on (the call into the outermost
/// dead server and everything inside it) and writes the registers of that call's caller to
/// `frame`; false when fewer calls are open.
pub fn portal_unwind_from(i: usize, frame: &mut crate::arch::idt::TrapFrame) -> bool {
    let cur = current();
    with(|s| {
        s.threads
            .get_mut(cur)
            .and_then(Option::as_deref_mut)
            .is_some_and(|t| t.pop_calls(i, frame))
    })
}

/// `server` died (its death mark is set): every thread with an open call into it is told to
/// unwind. A visitor that is off its CPU and inside `server` right now leaves the server's
/// space at once (it runs in the kernel's until it unwinds) and is woken if it blocks; one
/// running on another core is kicked, and this returns only once it has unwound, or is off
/// its CPU and moved out, so that the server's space can be torn down. The caller (on this
/// core) unwinds at its own return to ring 3.
pub fn portal_evict(server: crate::process::Pid) {
    // The death mark was stored before this; no call's publication may be read before it
    // (see `arch::portal_path`).
    core::sync::atomic::fence(Ordering::SeqCst);
    let me = cpu_id();
    loop {
        let busy = with(|s| {
            let mut busy = false;
            for tid in 0..s.threads.len() {
                let Some(t) = s.threads[tid].as_mut() else {
                    continue;
                };
                if t.state == State::Dead || !t.servers().any(|p| p == server) {
                    continue;
                }
                let c = t.core;
                t.unwind = true;
                raise(c, UNWIND_PENDING);
                let on_cpu = s.cores[c].current == tid && t.state == State::Running;
                if on_cpu && c != me {
                    // It unwinds at its next trap; wait for that (or for it to leave the CPU).
                    apic::send_ipi(s.cores[c].apic_id, apic::RESCHEDULE_VECTOR);
                    busy = true;
                    continue;
                }
                if let Some(v) = &t.visits
                    && v.acting() == Some(server)
                {
                    // Off its CPU, or the caller here: out of the server's space now.
                    v.move_to(kernel_space().root_of());
                }
                if t.state == State::Blocked && s.cores[c].idle != tid {
                    s.cores[c].sleepers.retain(|&(_, x, _)| x != tid);
                    s.make_runnable(tid);
                }
            }
            busy
        });
        if !busy {
            return;
        }
        core::hint::spin_loop();
    }
}

/// Every thread with an open portal call into `pid`, and whether one of `pid`'s own threads
/// is inside some server: (visitors inside `pid`, `pid`'s threads away).
pub fn portal_presence(pid: crate::process::Pid) -> (usize, usize) {
    with(|s| {
        let live = s
            .threads
            .iter()
            .flatten()
            .filter(|t| t.state != State::Dead);
        let mut visitors = 0;
        let mut away = 0;
        for t in live {
            if t.servers().any(|p| p == pid) {
                visitors += 1;
            }
            if t.pid == Some(pid) && t.visits.as_ref().is_some_and(|v| v.depth() > 0) {
                away += 1;
            }
        }
        (visitors, away)
    })
}

// ---- Freezing threads for a suspend (`crate::suspend`) ----

/// A frozen thread as the image records it.
pub struct Captured {
    /// Its ring-3 registers (a system call cut short already points back at its `syscall`).
    pub frame: crate::arch::idt::TrapFrame,
    /// Its FPU/SSE state.
    pub fxsave: [u8; 512],
    /// Its FS base.
    pub fs_base: u64,
    /// The core it ran on.
    pub core: usize,
    /// CPU time used, in nanoseconds.
    pub cpu_ns: u64,
}

/// How a thread stands after [`request_freeze`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freeze {
    /// Stopped: it can be captured.
    Frozen,
    /// On its way: it stops at its next return to ring 3.
    Pending,
    /// It has ended (or never existed).
    Gone,
}

/// Asks thread `r` to stop at its next way back to ring 3 and says how it stands. A thread that
/// never ran stops at once; a blocked one is woken so that its wait ends (the wait is made
/// again on resume); a running one is kicked. Asking again kicks again.
pub fn request_freeze(r: ThreadRef) -> Freeze {
    with(|s| {
        let tid = r.tid;
        let Some(t) = s.live(r) else {
            return Freeze::Gone;
        };
        let (c, state, never_ran) = (t.core, t.state, t.ctx.never_ran());
        match state {
            State::Dead => return Freeze::Gone,
            State::Frozen => return Freeze::Frozen,
            _ => {}
        }
        let now = apic::now_ns();
        let core = &mut s.cores[c];
        let stop_now = never_ran && core.current != tid && core.idle != tid;
        if stop_now {
            if state == State::Runnable {
                let _ = core.rq.remove(tid, now);
            }
            core.sleepers.retain(|&(_, x, _)| x != tid);
        }
        let t = s.threads[tid].as_mut().expect("live");
        t.freeze = true;
        if stop_now {
            t.state = State::Frozen;
            return Freeze::Frozen;
        }
        raise(c, FREEZE_PENDING);
        match state {
            State::Blocked => {
                s.cores[c].sleepers.retain(|&(_, x, _)| x != tid);
                s.make_runnable(tid);
            }
            State::Running if c != cpu_id() => {
                apic::send_ipi(s.cores[c].apic_id, apic::RESCHEDULE_VECTOR);
            }
            _ => {}
        }
        Freeze::Pending
    })
}

/// True when the running thread is asked to freeze: a wait it is in must end now, through
/// [`cut_short`]. One load when no thread of this core is asked.
pub fn freeze_asked() -> bool {
    let cpu = cpu_id();
    if !raised(cpu, FREEZE_PENDING) {
        return false;
    }
    with(|s| {
        let cur = s.cores[cpu].current;
        s.threads[cur].as_ref().is_some_and(|t| t.freeze)
    })
}

/// The running thread's system call gives up its wait for a freeze: nothing was done that
/// would be done twice, so the call is made again when the thread resumes.
pub fn cut_short() {
    with(|s| {
        let cur = s.cores[cpu_id()].current;
        if let Some(t) = s.threads[cur].as_mut() {
            t.rewind = true;
        }
    });
}

/// On the way back to ring 3: when the running thread is asked to freeze, says whether its
/// system call was cut short (`Some(true)`: point the frame back at the call) and then
/// [`freeze_current`] must follow; `None` when it is not asked.
pub fn freeze_due() -> Option<bool> {
    if !raised(cpu_id(), FREEZE_PENDING) {
        return None;
    }
    with(|s| {
        let cur = s.cores[cpu_id()].current;
        let t = s.threads[cur].as_mut()?;
        t.freeze.then(|| core::mem::take(&mut t.rewind))
    })
}

/// Stops the running thread, frozen, until [`thaw`] (it returns) or [`kill`] (it never
/// does). Its trap frame must be complete: called on the way back to ring 3 only.
pub fn freeze_current() {
    schedule(State::Frozen);
}

/// Undoes a freeze: a frozen thread runs on (a cut-short call is made again), a pending one
/// is no longer asked.
pub fn thaw(r: ThreadRef) {
    with(|s| {
        let Some(t) = s.live_mut(r) else {
            return;
        };
        t.freeze = false;
        if t.state == State::Frozen {
            t.state = State::Blocked;
            s.make_runnable(r.tid);
        }
    });
}

/// Lowers every core's freeze flag once no thread is asked any more (the suspend is over).
pub fn freeze_over() {
    with(|s| {
        for c in 0..s.cores.len() {
            let asked = s
                .threads
                .iter()
                .flatten()
                .any(|t| t.core == c && t.freeze && t.state != State::Frozen);
            if !asked {
                lower(c, FREEZE_PENDING);
            }
        }
    });
}

/// The registers, FPU state and figures of a frozen thread (`None` unless it is frozen).
pub fn capture(r: ThreadRef) -> Option<Captured> {
    with(|s| {
        let t = s.live(r).filter(|t| t.state == State::Frozen)?;
        Some(Captured {
            frame: t.ctx.user_frame()?,
            fxsave: t.ctx.fxsave_bytes(),
            fs_base: t.fs_base,
            core: t.core,
            cpu_ns: t.cpu_ns,
        })
    })
}
