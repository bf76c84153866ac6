//! moxie's scheduling policy, as a pure crate the kernel applies and the host tests: one
//! [`RunQueue`] per core decides which thread runs next, for how long, and whether a one-shot timer
//! must be armed; [`Policy`] holds the formulas. Nothing here touches hardware, takes a lock or
//! reads a clock: the kernel passes `now` (nanoseconds of a monotonic clock) into every call.
//!
//! Guarantees: no function panics on any input or call sequence (refusals are [`SchedError`]s);
//! every quantum handed out lies in `[floor, ceiling]`; a timer is requested exactly when two or
//! more threads are runnable; runnable threads are served earliest-deadline-first (ties to the
//! higher priority, then first-in first-out), so no runnable thread waits longer than
//! [`Policy::wait_bound`]; each thread's CPU time is exactly the sum of its dispatches.
//!
//! # The model
//!
//! Preemptive, tickless, deadline-based (DESIGN.md §5). A thread that becomes runnable gets an
//! absolute deadline; [`RunQueue::pick`] runs the runnable thread with the earliest one for a
//! quantum that shrinks as the core gets busier, and asks for a one-shot timer at the end of
//! it, unless the thread is alone on the core, in which case no timer is set at all. When the
//! timer fires the thread is [preempted](RunQueue::preempted) and goes back with a fresh
//! deadline; when it [blocks](RunQueue::blocked) or [yields](RunQueue::yielded) early, the rest of
//! its quantum is returned to the core (the next thread starts at once) and reported in the
//! [`Charge`]. Priority is deadline tightness: a higher [`Priority`] gets a shorter deadline (it
//! is picked sooner and more often), never a longer quantum.
//!
//! ## Quantum
//!
//! `quantum(n) = clamp(ceiling / n, floor, ceiling)` for `n` runnable threads (the running one
//! included; `n = 0` counts as 1). With [`Policy::DEFAULT`] (floor 100 µs, ceiling 1 ms):
//!
//! | runnable `n` | 1    | 2      | 3          | 4      | 5      | 8      | 10 and more |
//! |--------------|------|--------|------------|--------|--------|--------|-------------|
//! | quantum      | 1 ms | 500 µs | 333.333 µs | 250 µs | 200 µs | 125 µs | 100 µs      |
//!
//! ## Relative deadline
//!
//! `round(n) = max(ceiling, n * floor)` is the time `n` threads take to run one quantum each.
//! A thread of priority `p` that becomes runnable while `n` threads are runnable gets the
//! relative deadline
//!
//! `relative_deadline(p, n) = round(n) / (p + 1)` (exactly: `deadline_span(p) * round(n) / ceiling`
//! with `deadline_span(p) = ceiling / (p + 1)`; see [`Policy::relative_deadline`]).
//!
//! With [`Policy::DEFAULT`]:
//!
//! | priority `p`     | `n` = 1..=10 | `n` = 16 | `n` = 32 |
//! |------------------|--------------|----------|----------|
//! | 0 (normal)       | 1 ms         | 1.6 ms   | 3.2 ms   |
//! | 1                | 500 µs       | 800 µs   | 1.6 ms   |
//! | 3                | 250 µs       | 400 µs   | 800 µs   |
//! | 9                | 100 µs       | 160 µs   | 320 µs   |
//! | 255 (max)        | 3.906 µs     | 6.249 µs | 12.499 µs|
//!
//! Since a quantum is `round(n) / n`, a relative deadline is `n / (p + 1)` quanta whatever the
//! contention. Between equal deadlines the higher priority goes first, then the thread that
//! became runnable first.
//!
//! ### What priority buys
//!
//! Latency first: a thread becoming runnable with priority `p` is ordered before every thread of
//! a looser priority `l` that became runnable less than `relative_deadline(l, n) -
//! relative_deadline(p, n)` earlier (exactly so on the contention clock below; in real time
//! while `n` stays put), and if its deadline is earlier than the running thread's it
//! preempts it ([`Wake::Preempt`]). Then throughput, with a cap: a CPU-bound thread goes back
//! with a deadline only `relative_deadline(p, n)` ahead, so it can pass a looser thread only
//! while that one has waited less than the difference, which is under one round: no priority
//! starves anything (see the waiting bound). Measured with the default policy, a CPU-bound
//! thread of priority `p` among `k` normal CPU-bound threads is dispatched this many times as
//! often as each of them (the test `dispatch_share_matches_the_documented_table` checks it):
//!
//! | `k` normals | `p` = 1 | `p` = 3 | `p` = 7 | `p` = 255 |
//! |-------------|---------|---------|---------|-----------|
//! | 1           | 2.0     | 2.0     | 2.0     | 2.0       |
//! | 3           | 2.0     | 3.0     | 3.0     | 3.0       |
//! | 7           | 2.0     | 3.0     | 3.5     | 3.5       |
//! | 19          | 2.05    | 3.24    | 4.09    | 5.11      |
//! | 31          | 2.13    | 3.64    | 5.23    | 6.47      |
//!
//! ### The contention clock
//!
//! Computing `now + relative_deadline(p, n)` directly would let the runnable count at insertion
//! reorder threads: a normal thread queued while the core was busy (long round) would be passed
//! by a normal thread queued later when the core was calmer, and of two threads becoming
//! runnable at the same instant the one inserted second (with `n` one higher) could get the later
//! deadline despite a higher priority. So each run queue keeps a *contention clock* that
//! advances at `ceiling / round(n)` of real speed while `n` threads are runnable: real speed
//! while `n <= ceiling / floor` (10 with the default policy, including when idle), slower beyond.
//! A thread's absolute deadline is `clock(now) + deadline_span(p)`, which in real time is
//! `relative_deadline(p, n)` ahead while `n` stays put. Consequences: threads of equal priority
//! are served strictly first-in first-out; of threads becoming runnable at the same instant the
//! higher priority always comes first; while a core never holds more than `ceiling / floor`
//! runnable threads, the clock equals real time and deadlines are literally
//! `now + relative_deadline`. The clock is kept with 32 bits of fraction; [`Policy::wait_bound`]
//! accounts for its rounding.
//!
//! ## The waiting bound
//!
//! A thread that becomes runnable is dispatched within [`Policy::wait_bound`]:
//! `stretch + (N - 1) * ceiling`, where `N` is the most threads runnable meanwhile and
//! `stretch`, about `(deadline_span(p) - deadline_span(tightest)) * round(N) / ceiling`, is the
//! head start that threads of tighter priority becoming runnable meanwhile can take; it is 0
//! when no tighter priority shows up. In particular, with equal priorities a thread that becomes
//! runnable with `n` threads runnable (itself included) waits at most `(n - 1) * ceiling`.
//! The bound holds when the kernel follows the queue: it calls [`RunQueue::pick`] whenever the
//! core is free and a thread is runnable, arms the timers decisions ask for, and preempts when
//! [`RunQueue::insert`] answers [`Wake::Preempt`].
//!
//! # Driving it (per core)
//!
//! ```
//! use schedpolicy::{Policy, Priority, RunQueue, Wake};
//!
//! let mut q: RunQueue<u32> = RunQueue::new(Policy::DEFAULT);
//! // Thread 1 becomes runnable on an idle core: pick, no timer (it is alone).
//! assert_eq!(q.insert(1, Priority::NORMAL, 0), Ok(Wake::Pick));
//! let d = q.pick(0).unwrap();
//! assert_eq!((d.id, d.timer), (1, None));
//! // Thread 2 wakes at 5 µs: the lone thread loses the core, a 500 µs timer is armed.
//! assert_eq!(q.insert(2, Priority::NORMAL, 5_000), Ok(Wake::Preempt));
//! q.preempted(1, 5_000).unwrap();
//! let d = q.pick(5_000).unwrap();
//! assert_eq!((d.id, d.timer, d.quantum_ns), (2, Some(505_000), 500_000));
//! // Thread 2 blocks 200 µs in: 300 µs are returned and thread 1 runs at once.
//! let c = q.blocked(2, 205_000).unwrap();
//! assert_eq!((c.used_ns, c.unused_ns), (200_000, 300_000));
//! let d = q.pick(205_000).unwrap();
//! assert_eq!((d.id, d.timer), (1, None));
//! ```
//!
//! Affinity and cross-core wakes are the kernel's business: a thread is inserted into the run
//! queue of the core it should run on, and [`RunQueue::remove`] takes it out to move it.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod policy;
mod queue;

pub use policy::{Policy, Priority};
pub use queue::{Charge, Decision, RunQueue, SchedError, ThreadState, Wake};

#[cfg(test)]
mod tests;
