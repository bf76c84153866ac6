//! The per-core run queue: which thread runs next (earliest deadline first; ties to the higher
//! priority, then first-in first-out), whether a one-shot timer is needed and when it expires,
//! and the time accounting of the running thread.
//!
//! Guarantees of [`RunQueue`]:
//! - No method panics, whatever the call sequence: an unknown id or a call that does not fit the
//!   thread's state is a [`SchedError`] and leaves the queue unchanged; storage grows with
//!   fallible allocation ([`SchedError::NoMemory`]). A `now` earlier than one already seen is
//!   taken as the latest time seen (the clock never runs backwards inside the queue).
//! - At most one thread is running; [`RunQueue::len`] counts the queued threads plus the running
//!   one; a thread is in exactly one of the [`ThreadState`]s.
//! - Every [`Decision`] has `quantum_ns` within the policy's `[floor, ceiling]`, and
//!   `timer == Some(at + quantum_ns)` (saturating) exactly when `runnable >= 2`.
//! - Each thread's CPU time is the sum of the `used_ns` of its [`Charge`]s: the time from each
//!   dispatch to the call that ended it.

use crate::policy::{CLOCK_FRACTION_BITS, Policy, Priority};
use alloc::vec::Vec;

/// Why a [`RunQueue`] call was refused (the queue is unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedError {
    /// The id is not known to this run queue.
    UnknownThread,
    /// [`RunQueue::insert`]: the thread is already runnable (queued or running) here.
    AlreadyRunnable,
    /// [`RunQueue::preempted`] / [`RunQueue::yielded`]: the thread is not the running one.
    NotRunning,
    /// [`RunQueue::blocked`]: the thread is already blocked.
    NotRunnable,
    /// The queue's storage could not grow.
    NoMemory,
    /// [`RunQueue::hand_off`]: other threads are runnable, so the choice is the policy's.
    OthersRunnable,
}

/// Where a thread known to a [`RunQueue`] stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThreadState {
    /// Runnable and waiting for the core.
    Queued,
    /// Dispatched by the last [`RunQueue::pick`] and not accounted since.
    Running,
    /// Known (its CPU time is kept) but not runnable; [`RunQueue::insert`] makes it runnable.
    Blocked,
}

/// What the kernel must do after [`RunQueue::insert`] made a thread runnable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wake {
    /// No thread is running on the core: call [`RunQueue::pick`] now.
    Pick,
    /// The running thread must give up the core now: account it with
    /// [`RunQueue::preempted`], then call [`RunQueue::pick`]. Said when the new thread's deadline
    /// is earlier than the running thread's, or when the running thread was alone and so has no
    /// timer (the pick arms one; it may choose the same thread again, which then needs no
    /// context switch).
    Preempt,
    /// The running thread keeps the core until its timer fires; the new thread waits its turn.
    Wait,
}

/// One scheduling decision: run `id` now, and arm a one-shot timer at `timer` if it is `Some`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision<Id> {
    /// The thread to run.
    pub id: Id,
    /// Absolute expiry (`now + quantum_ns`, saturating) of the one-shot timer to arm, or `None`
    /// when `id` is the only runnable thread: it runs until it blocks, yields, or a
    /// [`Wake::Preempt`] says otherwise.
    pub timer: Option<u64>,
    /// The quantum granted: [`Policy::quantum`] of `runnable`.
    pub quantum_ns: u64,
    /// How many threads were runnable when the decision was made, `id` included.
    pub runnable: usize,
}

/// The accounting of one dispatch, returned when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Charge {
    /// Time the thread ran in this dispatch: `now - dispatch time`.
    pub used_ns: u64,
    /// Quantum left over, `quantum_ns - used_ns` (0 if the thread ran its whole quantum, or
    /// longer): the time the thread gives back to the core, which goes to the next thread at
    /// once. Nonzero after a block, a yield, or a preemption before the timer.
    pub unused_ns: u64,
    /// The thread's CPU time on this queue so far, this dispatch included.
    pub cpu_time_ns: u64,
}

#[derive(Clone, Copy, Debug)]
enum Slot {
    Queued,
    Running {
        since: u64,
        quantum_ns: u64,
        timer: Option<u64>,
    },
    Blocked,
}

#[derive(Clone, Copy, Debug)]
struct Thread<Id> {
    id: Id,
    priority: Priority,
    /// `deadline_span(priority)`, kept with the priority (no division per insertion).
    span: u64,
    slot: Slot,
    /// The pick order, smallest first: absolute deadline on the contention clock (fixed point),
    /// then `u8::MAX - priority` (the tighter priority first), then the insertion sequence
    /// number (first in, first out). Meaningful while queued or running.
    key: (u128, u8, u64),
    cpu_ns: u64,
}

/// One core's run queue: the threads that may run on the core, which runs next, and their CPU
/// time. `Id` names a thread (the kernel's thread reference); ids are compared for equality only.
///
/// Each call is `O(t)` in the number of threads the queue knows (runnable and blocked): a
/// linear scan over one vector, which is what a core with a few dozen threads wants. A
/// [`RunQueue::hand_off`] between two threads that take turns (a message ping-pong), and the
/// wake-up of the thread that blocked last, find their threads without a scan.
#[derive(Clone, Debug)]
pub struct RunQueue<Id> {
    policy: Policy,
    threads: Vec<Thread<Id>>,
    /// Index into `threads` of the running thread.
    running: Option<usize>,
    /// Queued threads plus the running one.
    runnable: usize,
    /// The contention clock, in nanoseconds with `CLOCK_FRACTION_BITS` bits of fraction.
    clock: u128,
    /// The latest `now` seen.
    last: u64,
    /// Next insertion sequence number (ties between equal deadlines go to the lower).
    seq: u64,
    /// Index into `threads` of the thread that blocked last: in a message ping-pong it is the
    /// one the next hand-off wakes, found without a scan. Checked before use.
    hint: usize,
}

impl<Id: Copy + Eq> RunQueue<Id> {
    /// An empty run queue with the given policy. Allocates nothing.
    pub const fn new(policy: Policy) -> RunQueue<Id> {
        RunQueue {
            policy,
            threads: Vec::new(),
            running: None,
            runnable: 0,
            clock: 0,
            last: 0,
            seq: 0,
            hint: 0,
        }
    }

    /// Makes room for `additional` more threads, so that as many inserts of new ids cannot fail
    /// with [`SchedError::NoMemory`].
    pub fn reserve(&mut self, additional: usize) -> Result<(), SchedError> {
        self.threads
            .try_reserve(additional)
            .map_err(|_| SchedError::NoMemory)
    }

    /// The queue's policy.
    pub const fn policy(&self) -> Policy {
        self.policy
    }

    /// How many threads are runnable: queued ones plus the running one.
    pub const fn len(&self) -> usize {
        self.runnable
    }

    /// Whether no thread is runnable (the core is idle).
    pub const fn is_empty(&self) -> bool {
        self.runnable == 0
    }

    /// How many threads the queue knows, blocked ones included.
    pub fn known(&self) -> usize {
        self.threads.len()
    }

    /// The running thread, if any.
    pub fn running(&self) -> Option<Id> {
        self.running.and_then(|i| self.threads.get(i)).map(|t| t.id)
    }

    /// The expiry of the running thread's timer: `None` when nothing runs or the running thread
    /// has no timer.
    pub fn next_expiry(&self) -> Option<u64> {
        match self.running.and_then(|i| self.threads.get(i)) {
            Some(Thread {
                slot: Slot::Running { timer, .. },
                ..
            }) => *timer,
            _ => None,
        }
    }

    /// The runnable threads (queued and running), in no particular order.
    pub fn runnable_ids(&self) -> impl Iterator<Item = Id> + '_ {
        self.threads
            .iter()
            .filter(|t| !matches!(t.slot, Slot::Blocked))
            .map(|t| t.id)
    }

    /// Where `id` stands, or `None` if the queue does not know it.
    pub fn state(&self, id: Id) -> Option<ThreadState> {
        self.find(id).map(|i| match self.threads[i].slot {
            Slot::Queued => ThreadState::Queued,
            Slot::Running { .. } => ThreadState::Running,
            Slot::Blocked => ThreadState::Blocked,
        })
    }

    /// The priority `id` was last given, or `None` if unknown.
    pub fn priority(&self, id: Id) -> Option<Priority> {
        self.find(id).map(|i| self.threads[i].priority)
    }

    /// The CPU time `id` has used on this queue, up to the end of its last accounted dispatch
    /// (a running thread's current dispatch is not included until it ends), or `None` if unknown.
    pub fn cpu_time(&self, id: Id) -> Option<u64> {
        self.find(id).map(|i| self.threads[i].cpu_ns)
    }

    /// Changes `id`'s priority. A queued or running thread keeps its current deadline; the new
    /// priority applies from its next insertion, preemption or yield.
    pub fn set_priority(&mut self, id: Id, priority: Priority) -> Result<(), SchedError> {
        let i = self.find(id).ok_or(SchedError::UnknownThread)?;
        self.set_prio(i, priority);
        Ok(())
    }

    /// `id` becomes runnable at `now` with `priority`: a new thread, or a blocked one waking.
    /// Its absolute deadline is `clock(now) + deadline_span(priority)`. Says whether the running
    /// thread must be preempted ([`Wake`]).
    ///
    /// Errors: [`SchedError::AlreadyRunnable`] if `id` is queued or running;
    /// [`SchedError::NoMemory`] if a new id finds no room.
    pub fn insert(&mut self, id: Id, priority: Priority, now: u64) -> Result<Wake, SchedError> {
        let i = match self.find_hinted(id) {
            Some(i) if matches!(self.threads[i].slot, Slot::Blocked) => i,
            Some(_) => return Err(SchedError::AlreadyRunnable),
            None => self.push_blocked(id, priority)?,
        };
        self.advance(now);
        self.set_prio(i, priority);
        self.enqueue(i);
        self.runnable += 1;
        let Some(r) = self.running else {
            return Ok(Wake::Pick);
        };
        let current = &self.threads[r];
        let alone = matches!(current.slot, Slot::Running { timer: None, .. });
        Ok(if alone || self.threads[i].key < current.key {
            Wake::Preempt
        } else {
            Wake::Wait
        })
    }

    /// Chooses the thread to run at `now`: the queued thread with the earliest deadline, ties
    /// going to the higher priority, then to the one queued first. Its quantum is
    /// [`Policy::quantum`] of the runnable count; a timer is requested unless it is the only
    /// runnable thread. `None` when nothing is runnable (the core idles until an insert says
    /// [`Wake::Pick`]).
    ///
    /// If a thread is still running (no accounting call since the last pick), it is first
    /// accounted as [`RunQueue::preempted`] at `now`; call that yourself to get its [`Charge`].
    pub fn pick(&mut self, now: u64) -> Option<Decision<Id>> {
        let now = self.advance(now);
        if let Some(r) = self.running {
            self.requeue(r, now);
        }
        let mut best: Option<usize> = None;
        for (i, t) in self.threads.iter().enumerate() {
            if matches!(t.slot, Slot::Queued) && best.is_none_or(|b| t.key < self.threads[b].key) {
                best = Some(i);
            }
        }
        let i = best?;
        let runnable = self.runnable;
        let quantum_ns = self.policy.quantum(runnable);
        let timer = (runnable >= 2).then(|| now.saturating_add(quantum_ns));
        self.threads[i].slot = Slot::Running {
            since: now,
            quantum_ns,
            timer,
        };
        self.running = Some(i);
        Some(Decision {
            id: self.threads[i].id,
            timer,
            quantum_ns,
            runnable,
        })
    }

    /// The running thread `id` was preempted at `now` (its timer fired, or a [`Wake::Preempt`]):
    /// it is charged and goes back to the queue with a fresh deadline,
    /// `clock(now) + deadline_span(priority)`. The core is free: call [`RunQueue::pick`].
    ///
    /// Errors: [`SchedError::UnknownThread`], or [`SchedError::NotRunning`] if `id` is not the
    /// running thread.
    pub fn preempted(&mut self, id: Id, now: u64) -> Result<Charge, SchedError> {
        let i = self.running_index(id)?;
        let now = self.advance(now);
        Ok(self.requeue(i, now))
    }

    /// The running thread `from` blocks at `now` and hands the core to the blocked thread `to`
    /// (made runnable with `priority`), which runs at once: exactly [`RunQueue::blocked`] of
    /// `from`, [`RunQueue::insert`] of `to` and [`RunQueue::pick`] at the same `now`, in one
    /// pass. Allowed only while `from` is the one runnable thread, so that the pick could not
    /// have chosen anyone else: the earliest-deadline order is kept. The message-passing fast
    /// path (a thread that sends and then waits for the answer).
    ///
    /// Errors (the queue unchanged): [`SchedError::UnknownThread`] for an unknown `from` (`to`
    /// may be new: it is added); [`SchedError::NotRunning`] when `from` is not running;
    /// [`SchedError::AlreadyRunnable`] when `to` is not blocked; [`SchedError::OthersRunnable`]
    /// when another thread is queued; [`SchedError::NoMemory`].
    #[inline(always)]
    pub fn hand_off(
        &mut self,
        from: Id,
        to: Id,
        priority: Priority,
        now: u64,
    ) -> Result<(Charge, Decision<Id>), SchedError> {
        // The running thread, without a scan: `running` is its index.
        let f = match self.running {
            Some(f) if self.threads.get(f).is_some_and(|t| t.id == from) => f,
            _ if self.find(from).is_some() => return Err(SchedError::NotRunning),
            _ => return Err(SchedError::UnknownThread),
        };
        if self.runnable != 1 {
            return Err(SchedError::OthersRunnable);
        }
        let t = match self.find_hinted(to) {
            Some(t) if matches!(self.threads[t].slot, Slot::Blocked) => t,
            Some(_) => return Err(SchedError::AlreadyRunnable),
            None => self.push_blocked(to, priority)?,
        };
        // The same steps as `blocked`, `insert` and `pick`, written out (this is the
        // message-passing fast path: every instruction counts). `f` and `t` are distinct (one
        // running, one blocked) and in range, so nothing below can fail.
        //
        // blocked(from): the clock runs at the one-thread rate up to `now` (with one runnable
        // thread the round is the ceiling: real speed).
        if now > self.last {
            // No overflow: the clock counts at most 2^64 ns with 32 fraction bits.
            let dt = (now - self.last) as u128;
            self.clock = self.clock.wrapping_add(dt << CLOCK_FRACTION_BITS);
            self.last = now;
        }
        let now = self.last;
        let charge = match self.threads.get_mut(f) {
            Some(ft) => {
                let (used_ns, unused_ns) = match ft.slot {
                    Slot::Running {
                        since, quantum_ns, ..
                    } => {
                        let used = now.saturating_sub(since);
                        (used, quantum_ns.saturating_sub(used))
                    }
                    _ => (0, 0),
                };
                ft.cpu_ns = ft.cpu_ns.saturating_add(used_ns);
                ft.slot = Slot::Blocked;
                Charge {
                    used_ns,
                    unused_ns,
                    cpu_time_ns: ft.cpu_ns,
                }
            }
            None => Charge {
                used_ns: 0,
                unused_ns: 0,
                cpu_time_ns: 0,
            },
        };
        // insert(to): a fresh deadline; the runnable count stays one. pick: the only queued
        // thread, alone, so no timer.
        let quantum_ns = self.policy.quantum(1);
        self.set_prio(t, priority);
        let (clock, seq) = (self.clock, self.seq);
        if let Some(tt) = self.threads.get_mut(t) {
            // No overflow: the clock is below 2^96 and a span below 2^62.
            let span = (tt.span as u128) << CLOCK_FRACTION_BITS;
            tt.key = (clock.wrapping_add(span), u8::MAX - priority.0, seq);
            tt.slot = Slot::Running {
                since: now,
                quantum_ns,
                timer: None,
            };
        }
        self.seq = seq.wrapping_add(1);
        self.running = Some(t);
        self.hint = f;
        Ok((
            charge,
            Decision {
                id: to,
                timer: None,
                quantum_ns,
                runnable: 1,
            },
        ))
    }

    /// The running thread `id` yielded at `now`: accounted exactly like
    /// [`RunQueue::preempted`] (charged, back in the queue with a fresh deadline); the unused
    /// quantum in the [`Charge`] goes to the next thread at once.
    ///
    /// Errors: as for [`RunQueue::preempted`].
    pub fn yielded(&mut self, id: Id, now: u64) -> Result<Charge, SchedError> {
        self.preempted(id, now)
    }

    /// `id` blocked at `now` (or was suspended): it stops being runnable and stays known. If it
    /// was running it is charged, the rest of its quantum is returned to the core
    /// ([`Charge::unused_ns`]) and the core is free: call [`RunQueue::pick`] at the same `now`.
    /// A queued thread just leaves the queue (a zero [`Charge`]).
    ///
    /// Errors: [`SchedError::UnknownThread`], or [`SchedError::NotRunnable`] if it is already
    /// blocked.
    pub fn blocked(&mut self, id: Id, now: u64) -> Result<Charge, SchedError> {
        let i = self.find(id).ok_or(SchedError::UnknownThread)?;
        if matches!(self.threads[i].slot, Slot::Blocked) {
            return Err(SchedError::NotRunnable);
        }
        let now = self.advance(now);
        let charge = match self.threads[i].slot {
            Slot::Blocked => return Err(SchedError::NotRunnable),
            Slot::Queued => Charge {
                used_ns: 0,
                unused_ns: 0,
                cpu_time_ns: self.threads[i].cpu_ns,
            },
            Slot::Running { .. } => {
                self.running = None;
                self.charge(i, now)
            }
        };
        self.threads[i].slot = Slot::Blocked;
        self.hint = i;
        self.runnable -= 1;
        Ok(charge)
    }

    /// Forgets `id` (it exited, or moves to another core) at `now`, returning its total CPU time
    /// on this queue. A running thread is charged first and the core is free: call
    /// [`RunQueue::pick`].
    ///
    /// Errors: [`SchedError::UnknownThread`].
    pub fn remove(&mut self, id: Id, now: u64) -> Result<u64, SchedError> {
        let i = self.find(id).ok_or(SchedError::UnknownThread)?;
        let now = self.advance(now);
        match self.threads[i].slot {
            Slot::Blocked => {}
            Slot::Queued => self.runnable -= 1,
            Slot::Running { .. } => {
                self.charge(i, now);
                self.running = None;
                self.runnable -= 1;
            }
        }
        let last = self.threads.len() - 1;
        let gone = self.threads.swap_remove(i);
        if self.running == Some(last) {
            self.running = Some(i);
        }
        Ok(gone.cpu_ns)
    }

    fn find(&self, id: Id) -> Option<usize> {
        self.threads.iter().position(|t| t.id == id)
    }

    /// [`Self::find`], trying the thread that blocked last first.
    #[inline(always)]
    fn find_hinted(&self, id: Id) -> Option<usize> {
        match self.threads.get(self.hint) {
            Some(t) if t.id == id => Some(self.hint),
            _ => self.find(id),
        }
    }

    /// Gives thread `i` `priority` and its deadline span (computed only when it changes).
    #[inline(always)]
    fn set_prio(&mut self, i: usize, priority: Priority) {
        let policy = self.policy;
        if let Some(t) = self.threads.get_mut(i)
            && t.priority != priority
        {
            t.priority = priority;
            t.span = policy.deadline_span(priority);
        }
    }

    /// Adds `id`, blocked, with `priority`; returns its index.
    fn push_blocked(&mut self, id: Id, priority: Priority) -> Result<usize, SchedError> {
        self.reserve(1)?;
        self.threads.push(Thread {
            id,
            priority,
            span: self.policy.deadline_span(priority),
            slot: Slot::Blocked,
            key: (0, 0, 0),
            cpu_ns: 0,
        });
        Ok(self.threads.len() - 1)
    }

    fn running_index(&self, id: Id) -> Result<usize, SchedError> {
        let i = self.find(id).ok_or(SchedError::UnknownThread)?;
        if self.running == Some(i) {
            Ok(i)
        } else {
            Err(SchedError::NotRunning)
        }
    }

    /// Moves the contention clock to `now` (clamped to the latest time seen) at the rate the
    /// current runnable count gives, and returns the clamped `now`. Called before anything that
    /// changes the runnable count or reads the clock.
    fn advance(&mut self, now: u64) -> u64 {
        if now > self.last {
            let dt = (now - self.last) as u128;
            let ceiling = self.policy.ceiling_ns() as u128;
            let round = self.policy.round(self.runnable) as u128;
            // dt < 2^64, ceiling <= 2^30: the product shifted by 32 bits is below 2^126. With
            // up to ceiling/floor runnable threads the round is the ceiling and the clock runs
            // at real speed: the same value without a 128-bit division (the common case, on
            // every switch).
            let step = if round == ceiling {
                dt << CLOCK_FRACTION_BITS
            } else {
                ((dt * ceiling) << CLOCK_FRACTION_BITS) / round
            };
            self.clock = self.clock.saturating_add(step);
            self.last = now;
        }
        self.last
    }

    /// Gives thread `i` a fresh deadline from the clock's current value and marks it queued.
    fn enqueue(&mut self, i: usize) {
        let priority = self.threads[i].priority;
        let span = (self.threads[i].span as u128) << CLOCK_FRACTION_BITS;
        self.threads[i].key = (
            self.clock.saturating_add(span),
            u8::MAX - priority.0,
            self.seq,
        );
        self.seq = self.seq.wrapping_add(1);
        self.threads[i].slot = Slot::Queued;
    }

    /// Ends the running thread `i`'s dispatch and puts it back in the queue.
    fn requeue(&mut self, i: usize, now: u64) -> Charge {
        let charge = self.charge(i, now);
        self.running = None;
        self.enqueue(i);
        charge
    }

    /// Charges the running thread `i` for its dispatch up to `now`.
    fn charge(&mut self, i: usize, now: u64) -> Charge {
        let t = &mut self.threads[i];
        let (used_ns, unused_ns) = match t.slot {
            Slot::Running {
                since, quantum_ns, ..
            } => {
                let used = now.saturating_sub(since);
                (used, quantum_ns.saturating_sub(used))
            }
            _ => (0, 0),
        };
        t.cpu_ns = t.cpu_ns.saturating_add(used_ns);
        Charge {
            used_ns,
            unused_ns,
            cpu_time_ns: t.cpu_ns,
        }
    }
}
