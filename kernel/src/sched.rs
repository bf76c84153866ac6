//! The scheduler's mechanism: threads, one run queue, blocking and waking, the context switch.
//!
//! For now the policy is first-in first-out among runnable threads, switching only when a thread
//! yields, blocks or exits (no timer preemption yet). The kernel runs with interrupts off except
//! in the idle thread, so the scheduler's lock is never contended on one CPU and is never held
//! across a switch.
use crate::arch::context::{Context, Start, SwitchPair, switch_to};
use crate::arch::paging::{AddressSpace, MapError, kernel_space};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use spin::Mutex;

/// A thread's index in the thread table.
pub type Tid = usize;

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
}

static SCHED: Mutex<Option<Scheduler>> = Mutex::new(None);

/// Turns the boot code into thread 0 and creates the idle thread.
pub fn init() -> Result<(), MapError> {
    let boot = Box::new(Thread {
        ctx: Context::current_boot(),
        state: State::Running,
        space: None,
        pid: None,
    });
    let idle = Box::new(Thread {
        ctx: Context::new(Start::Kernel {
            entry: idle_loop,
            arg: 0,
        })?,
        state: State::Blocked,
        space: None,
        pid: None,
    });
    *SCHED.lock() = Some(Scheduler {
        threads: alloc::vec![Some(boot), Some(idle)],
        queue: VecDeque::new(),
        current: 0,
        idle: 1,
        reap: None,
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
        let t = Box::new(Thread {
            ctx,
            state: State::Runnable,
            space,
            pid,
        });
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
        s.queue.push_back(tid);
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

/// Makes a blocked thread runnable.
pub fn wake(tid: Tid) {
    with(|s| {
        if let Some(t) = s.threads.get_mut(tid).and_then(Option::as_mut)
            && t.state == State::Blocked
            && tid != s.idle
        {
            t.state = State::Runnable;
            s.queue.push_back(tid);
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
        if let Some(t) = s.threads.get_mut(tid).and_then(Option::as_mut) {
            t.state = State::Dead;
        }
        s.queue.retain(|&q| q != tid);
        s.threads[tid] = None;
    });
}

fn schedule(now: State) {
    let pair = {
        let mut guard = SCHED.lock();
        let s = guard.as_mut().expect("scheduler initialised");
        if let Some(r) = s.reap.take() {
            s.threads[r] = None;
        }
        let cur = s.current;
        let next = match s.queue.pop_front() {
            Some(n) => n,
            None if now == State::Runnable && cur != s.idle => return,
            None => s.idle,
        };
        if next == cur {
            return;
        }
        if now == State::Runnable && cur != s.idle {
            s.queue.push_back(cur);
        }
        if now == State::Dead {
            s.reap = Some(cur);
        }
        s.current = next;
        let Ok([Some(from), Some(to)]) = s.threads.get_disjoint_mut([cur, next]) else {
            unreachable!("the current and the next thread are distinct live records");
        };
        from.state = now;
        to.state = State::Running;
        match &to.space {
            Some(space) => space.activate(),
            None => kernel_space().activate(),
        }
        SwitchPair::new(&mut from.ctx, &to.ctx)
    };
    switch_to(pair);
}
