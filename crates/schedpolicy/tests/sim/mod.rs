//! A discrete-event simulation of one core driven by a [`RunQueue`], the way the kernel drives
//! it: threads with run/block/yield patterns, a virtual clock in nanoseconds, and the kernel's
//! loop (pick → run until the timer fires, the thread blocks or yields, or a wake-up preempts it
//! → account → pick again at the same instant). It records what the properties need: every
//! decision, every wait from becoming runnable to dispatch, every end of a dispatch, and the
//! busy time it measured itself.
//!
//! Guarantees: the simulation follows the queue's instructions exactly (it picks whenever the
//! core is free, arms every requested timer, preempts on [`Wake::Preempt`]), so the queue's
//! promises apply to it; it panics if the queue asks for something inconsistent (a
//! [`Wake::Pick`] while a thread runs, an accounting call refused, a timer in the past).

use schedpolicy::{Charge, Decision, Policy, Priority, RunQueue, Wake};

/// What a thread does when it has run a burst's CPU time.
#[derive(Clone, Copy, Debug)]
pub enum After {
    /// Block for this long, then become runnable again.
    Block(u64),
    /// Yield the core and stay runnable.
    Yield,
}

/// One step of a thread's cyclic pattern: run `run` nanoseconds of CPU time, then `after`.
#[derive(Clone, Copy, Debug)]
pub struct Burst {
    /// CPU time of the burst (at least 1 ns, so the simulation always moves forward).
    pub run: u64,
    /// What the thread does at the end of the burst.
    pub after: After,
}

/// A simulated thread: its priority, when it first becomes runnable, and its pattern (repeated).
#[derive(Clone, Debug)]
pub struct Spec {
    /// The priority it is inserted with.
    pub priority: Priority,
    /// When it first becomes runnable.
    pub arrive: u64,
    /// Its bursts, in a cycle; must not be empty.
    pub bursts: Vec<Burst>,
}

/// A scheduling decision and the queued threads it passed over.
#[derive(Clone, Debug)]
pub struct Pick {
    /// When it was made.
    pub at: u64,
    /// What the queue decided.
    pub decision: Decision<usize>,
    /// When the chosen thread became runnable.
    pub chosen_queued_at: u64,
    /// The chosen thread's place in the order threads became runnable (see [`Wait::order`]).
    pub chosen_order: u64,
    /// The other queued threads: (id, priority, when it became runnable, its order).
    pub passed_over: Vec<(usize, Priority, u64, u64)>,
}

/// One stretch of time a thread spent runnable but not running.
#[derive(Clone, Copy, Debug)]
pub struct Wait {
    /// The thread.
    pub id: usize,
    /// Its priority.
    pub priority: Priority,
    /// When it became runnable (inserted, or put back after a preemption or a yield).
    pub from: u64,
    /// How many waits began before this one: the order in which threads became runnable, also
    /// among those that did at the same instant.
    pub order: u64,
    /// When it was dispatched; `None` if still waiting when the simulation stopped.
    pub to: Option<u64>,
    /// Runnable threads right after it became runnable, itself included.
    pub runnable_at_start: usize,
    /// The most runnable threads at any moment of the wait.
    pub max_runnable: usize,
    /// The highest priority with which any thread became runnable during the wait (its own
    /// included).
    pub tightest: Priority,
}

/// Why a dispatch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndKind {
    /// The thread blocked.
    Block,
    /// The thread yielded.
    Yield,
    /// Its timer fired.
    Timer,
    /// A wake-up said [`Wake::Preempt`].
    WakePreempt,
    /// The simulation stopped.
    Horizon,
}

/// The end of one dispatch.
#[derive(Clone, Copy, Debug)]
pub struct End {
    /// When it ended.
    pub at: u64,
    /// The thread.
    pub id: usize,
    /// Why.
    pub kind: EndKind,
    /// The decision that started the dispatch, and when.
    pub decision: Decision<usize>,
    /// When the dispatch started.
    pub since: u64,
    /// What the queue charged.
    pub charge: Charge,
    /// Runnable threads once everything at this instant was processed.
    pub runnable_after: usize,
    /// When the next dispatch started, if any did before the simulation stopped.
    pub next_pick_at: Option<u64>,
}

/// Everything a run recorded.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// Every decision, in order.
    pub picks: Vec<Pick>,
    /// Every wait, in the order they began.
    pub waits: Vec<Wait>,
    /// Every end of a dispatch, in order.
    pub ends: Vec<End>,
    /// Time some thread was running, measured by the simulation.
    pub busy: u64,
    /// CPU time per thread, measured by the simulation.
    pub ran: Vec<u64>,
    /// CPU time per thread, as the queue reports it at the end.
    pub cpu_time: Vec<u64>,
    /// Dispatches per thread.
    pub dispatches: Vec<u64>,
}

struct Sim {
    specs: Vec<Spec>,
    q: RunQueue<usize>,
    trace: Trace,
    /// Per thread: index of the current burst and CPU time left in it.
    burst: Vec<(usize, u64)>,
    /// Per thread: when it next becomes runnable, if blocked (or not yet arrived).
    wake_at: Vec<Option<u64>>,
    /// Per thread: index into `trace.waits` of its open wait.
    open_wait: Vec<Option<usize>>,
    /// The running thread: id, dispatch start, decision.
    current: Option<(usize, u64, Decision<usize>)>,
    /// Ends whose `next_pick_at` is still unknown.
    pending_ends: Vec<usize>,
}

impl Sim {
    fn started_wait(&mut self, id: usize, at: u64) {
        let p = self.specs[id].priority;
        let n = self.q.len();
        for w in self.open_wait.iter().flatten() {
            let w = &mut self.trace.waits[*w];
            w.tightest = w.tightest.max(p);
        }
        let order = self.trace.waits.len() as u64;
        self.open_wait[id] = Some(self.trace.waits.len());
        self.trace.waits.push(Wait {
            id,
            priority: p,
            from: at,
            order,
            to: None,
            runnable_at_start: n,
            max_runnable: n,
            tightest: p,
        });
    }

    fn note_runnable(&mut self) {
        let n = self.q.len();
        for w in self.open_wait.iter().flatten() {
            let w = &mut self.trace.waits[*w];
            w.max_runnable = w.max_runnable.max(n);
        }
    }

    /// Ends the running dispatch at `at` for `kind`, making the accounting call it calls for.
    fn end(&mut self, at: u64, kind: EndKind) {
        let (id, since, decision) = self.current.take().expect("a thread is running");
        let used = at - since;
        self.trace.busy += used;
        self.trace.ran[id] += used;
        let charge = match kind {
            EndKind::Block => self.q.blocked(id, at),
            EndKind::Yield => self.q.yielded(id, at),
            EndKind::Timer | EndKind::WakePreempt | EndKind::Horizon => self.q.preempted(id, at),
        }
        .expect("accounting the running thread");
        let (b, left) = self.burst[id];
        let spec = &self.specs[id];
        let after = spec.bursts[b].after;
        if used == left {
            let next = (b + 1) % spec.bursts.len();
            self.burst[id] = (next, spec.bursts[next].run);
        } else {
            self.burst[id].1 = left - used;
        }
        match (kind, after) {
            (EndKind::Block, After::Block(sleep)) => self.wake_at[id] = Some(at + sleep),
            (EndKind::Block, After::Yield) => unreachable!("a yielding burst blocked"),
            _ => self.started_wait(id, at),
        }
        self.note_runnable();
        self.pending_ends.push(self.trace.ends.len());
        self.trace.ends.push(End {
            at,
            id,
            kind,
            decision,
            since,
            charge,
            runnable_after: 0,
            next_pick_at: None,
        });
    }

    fn run(mut self, horizon: u64) -> Trace {
        let mut steps = 0u64;
        loop {
            steps += 1;
            assert!(steps < 5_000_000, "runaway simulation");
            // The next instant something happens.
            let mut t = u64::MAX;
            if let Some((id, since, d)) = self.current {
                t = t.min(since + self.burst[id].1);
                if let Some(timer) = d.timer {
                    t = t.min(timer);
                }
            }
            for w in self.wake_at.iter().flatten() {
                t = t.min(*w);
            }
            if t > horizon {
                break;
            }
            // 1. The running thread's burst ends (block or yield), or else its timer fires.
            if let Some((id, since, d)) = self.current {
                if since + self.burst[id].1 == t {
                    let b = self.specs[id].bursts[self.burst[id].0];
                    let kind = match b.after {
                        After::Block(_) => EndKind::Block,
                        After::Yield => EndKind::Yield,
                    };
                    self.end(t, kind);
                } else if d.timer == Some(t) {
                    self.end(t, EndKind::Timer);
                }
            }
            // 2. Threads waking at this instant, in id order.
            for id in 0..self.specs.len() {
                if self.wake_at[id] != Some(t) {
                    continue;
                }
                self.wake_at[id] = None;
                let had_timer = self.current.map(|c| c.2.timer.is_some());
                let wake = self
                    .q
                    .insert(id, self.specs[id].priority, t)
                    .expect("inserting a blocked thread");
                self.started_wait(id, t);
                self.note_runnable();
                match (wake, had_timer) {
                    (Wake::Pick, None) | (Wake::Wait, Some(true)) => {}
                    (Wake::Preempt, Some(_)) => self.end(t, EndKind::WakePreempt),
                    other => panic!("wake answer {other:?} does not fit the core's state"),
                }
            }
            // 3. A free core picks at once.
            if self.current.is_none() {
                let runnable = self.q.len();
                for e in self.pending_ends.drain(..) {
                    self.trace.ends[e].runnable_after = runnable;
                }
                if let Some(d) = self.q.pick(t) {
                    assert!(d.timer.is_none_or(|x| x > t), "timer not in the future");
                    self.dispatch(t, d);
                }
            }
        }
        if self.current.is_some() {
            self.end(horizon, EndKind::Horizon);
        }
        self.trace.cpu_time = (0..self.specs.len())
            .map(|id| self.q.cpu_time(id).unwrap_or(0))
            .collect();
        self.trace
    }

    fn dispatch(&mut self, t: u64, d: Decision<usize>) {
        for e in self.trace.ends.iter_mut().rev() {
            if e.next_pick_at.is_some() {
                break;
            }
            e.next_pick_at = Some(t);
        }
        let w = self.open_wait[d.id]
            .take()
            .expect("a dispatched thread was waiting");
        self.trace.waits[w].to = Some(t);
        let chosen_queued_at = self.trace.waits[w].from;
        let chosen_order = self.trace.waits[w].order;
        let passed_over = self
            .open_wait
            .iter()
            .enumerate()
            .filter_map(|(id, w)| {
                w.map(|w| {
                    let w = &self.trace.waits[w];
                    (id, self.specs[id].priority, w.from, w.order)
                })
            })
            .collect();
        self.trace.picks.push(Pick {
            at: t,
            decision: d,
            chosen_queued_at,
            chosen_order,
            passed_over,
        });
        self.trace.dispatches[d.id] += 1;
        self.current = Some((d.id, t, d));
    }
}

/// Runs `specs` on one core with `policy` from time 0 to `horizon`.
pub fn simulate(policy: Policy, specs: &[Spec], horizon: u64) -> Trace {
    let n = specs.len();
    let sim = Sim {
        q: RunQueue::new(policy),
        trace: Trace {
            ran: vec![0; n],
            dispatches: vec![0; n],
            ..Trace::default()
        },
        burst: specs.iter().map(|s| (0, s.bursts[0].run)).collect(),
        wake_at: specs.iter().map(|s| Some(s.arrive)).collect(),
        open_wait: vec![None; n],
        current: None,
        pending_ends: Vec::new(),
        specs: specs.to_vec(),
    };
    sim.run(horizon)
}
