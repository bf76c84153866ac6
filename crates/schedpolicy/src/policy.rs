//! The scheduling formulas: [`Policy`] (quantum floor and ceiling) turns a core's runnable count
//! into a quantum and a round length, and a [`Priority`] into a deadline span; it also states the
//! waiting bound a [`RunQueue`](crate::RunQueue) keeps.
//!
//! Guarantees: a [`Policy`] always has `1 <= floor_ns <= ceiling_ns <= Policy::MAX_CEILING_NS`
//! (its fields are private and [`Policy::new`] refuses anything else), so every formula here is
//! total: no division by zero, no overflow (64-bit results saturate at `u64::MAX` where a product
//! could exceed it), no panic. [`Policy::quantum`] is non-increasing in the runnable count and
//! always within `[floor_ns, ceiling_ns]`; [`Policy::deadline_span`] is non-increasing in the
//! priority; [`Policy::relative_deadline`] is non-increasing in the priority and non-decreasing
//! in the runnable count.

/// Bits of fraction in the contention clock's fixed-point representation (see the crate docs).
pub(crate) const CLOCK_FRACTION_BITS: u32 = 32;

/// A thread's priority, expressed as deadline tightness: `Priority(0)` is normal, and each step
/// up shortens the thread's deadline span (see [`Policy::deadline_span`]), so the thread is
/// scheduled sooner and more often (the crate docs give the figures). It never lengthens the
/// thread's quantum. Between equal deadlines the higher priority goes first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub u8);

impl Priority {
    /// The priority of an ordinary thread: the loosest deadline.
    pub const NORMAL: Priority = Priority(0);
    /// The tightest deadline.
    pub const MAX: Priority = Priority(u8::MAX);
}

/// The quantum limits of a core: every quantum the policy hands out lies in
/// `[floor_ns, ceiling_ns]`. Build one with [`Policy::new`] or use [`Policy::DEFAULT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Policy {
    floor_ns: u64,
    ceiling_ns: u64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy::DEFAULT
    }
}

impl Policy {
    /// 100 µs floor (below it context-switch cost dominates) and 1 ms ceiling.
    pub const DEFAULT: Policy = Policy {
        floor_ns: 100_000,
        ceiling_ns: 1_000_000,
    };

    /// The largest ceiling [`Policy::new`] accepts: one second. The bound keeps the contention
    /// clock's fixed-point arithmetic within 128 bits.
    pub const MAX_CEILING_NS: u64 = 1_000_000_000;

    /// A policy with the given quantum floor and ceiling, or `None` unless
    /// `1 <= floor_ns <= ceiling_ns <= MAX_CEILING_NS`.
    pub const fn new(floor_ns: u64, ceiling_ns: u64) -> Option<Policy> {
        if floor_ns == 0 || floor_ns > ceiling_ns || ceiling_ns > Policy::MAX_CEILING_NS {
            None
        } else {
            Some(Policy {
                floor_ns,
                ceiling_ns,
            })
        }
    }

    /// The shortest quantum, in nanoseconds.
    pub const fn floor_ns(self) -> u64 {
        self.floor_ns
    }

    /// The longest quantum, in nanoseconds.
    pub const fn ceiling_ns(self) -> u64 {
        self.ceiling_ns
    }

    /// The quantum for a core with `runnable` runnable threads (the running one included):
    /// `clamp(ceiling / max(runnable, 1), floor, ceiling)`, integer division. With the default
    /// policy: 1 → 1 ms, 2 → 500 µs, 3 → 333.333 µs, 4 → 250 µs, 10 and more → 100 µs.
    /// Non-increasing in `runnable`.
    pub const fn quantum(self, runnable: usize) -> u64 {
        let n = if runnable == 0 { 1 } else { runnable as u64 };
        let q = self.ceiling_ns / n;
        if q < self.floor_ns { self.floor_ns } else { q }
    }

    /// The round length for `runnable` threads: `max(ceiling, runnable * floor)` (saturating),
    /// the time it takes every runnable thread to run one quantum (for up to
    /// `ceiling / floor` threads the quanta shrink so that a round stays one ceiling; beyond,
    /// every quantum is the floor and the round grows by one floor per thread). Non-decreasing in
    /// `runnable`, never below the ceiling.
    pub const fn round(self, runnable: usize) -> u64 {
        let spread = (runnable as u64).saturating_mul(self.floor_ns);
        if spread > self.ceiling_ns {
            spread
        } else {
            self.ceiling_ns
        }
    }

    /// The deadline span of `priority`: `ceiling / (p + 1)`, measured on the run queue's
    /// contention clock (see the crate docs). A thread that becomes runnable gets the absolute
    /// deadline `clock + deadline_span(p)`. Non-increasing in the priority, and strictly
    /// decreasing whenever `ceiling >= 65_792` (true of [`Policy::DEFAULT`]).
    pub const fn deadline_span(self, priority: Priority) -> u64 {
        self.ceiling_ns / (priority.0 as u64 + 1)
    }

    /// The relative deadline in real nanoseconds of a thread of `priority` that becomes runnable
    /// while the core holds `runnable` threads and keeps holding that many:
    /// `deadline_span(p) * round(runnable) / ceiling`, about `round(runnable) / (p + 1)`.
    /// A higher priority gets a proportionally shorter deadline; more contention lengthens every
    /// deadline in proportion to the round. Since the quantum is `round(n) / n` (up to rounding),
    /// a relative deadline is `n / (p + 1)` quanta at any contention: the schedule, counted in
    /// quanta, depends only on the runnable count and the priorities.
    pub const fn relative_deadline(self, priority: Priority, runnable: usize) -> u64 {
        let span = self.deadline_span(priority) as u128;
        // span <= ceiling, so the quotient is <= round(runnable) <= u64::MAX.
        (span * self.round(runnable) as u128 / self.ceiling_ns as u128) as u64
    }

    /// The longest a thread of priority `own` waits between becoming runnable (inserted, or put
    /// back after a preemption or a yield) and being dispatched, given the kernel follows the
    /// run queue's instructions (it picks whenever the core is free, arms the timers the
    /// decisions ask for, and preempts when [`Wake::Preempt`](crate::Wake::Preempt) says so):
    ///
    /// `wait_bound = stretch + (N - 1) * ceiling`, where
    /// - `N = max(max_runnable, 1)`: the most threads runnable on the core (the waiting one and
    ///   the running one included) at any moment of the wait;
    /// - `tightest`: the highest priority with which any thread became runnable on the core
    ///   (was inserted, or put back after a preemption or a yield) during the wait, raised to
    ///   `own` if lower;
    /// - `stretch = 0` when `tightest == own`; otherwise, with `R = round(N)` and
    ///   `Δ = deadline_span(own) - deadline_span(tightest)`,
    ///   `stretch = ceil((Δ * 2^32 + 1) * R / (ceiling * 2^32 - R))`, about `Δ * R / ceiling`.
    ///
    /// Why: the waiting thread's deadline is fixed. A thread becoming runnable later gets a
    /// deadline at least `deadline_span(tightest)` past the contention clock, so once the clock
    /// has advanced `Δ` (which takes at most `stretch` of real time, the clock running at no
    /// less than `ceiling / R` of real speed; the `2^32` and `+ 1` terms cover its fixed-point
    /// rounding and the priority tie-break) nobody new can be ordered first. From then on only
    /// the at most `N - 1` threads already ahead run first, each at most once and for at most
    /// one quantum (`<= ceiling`). Equal priorities never pass each other, so with equal
    /// priorities the stretch is 0 and `N` can be taken as the runnable count when the thread
    /// became runnable: a thread that becomes runnable with `n` runnable threads (itself
    /// included) waits at most `(n - 1) * ceiling`. The bound is conservative, since quanta
    /// shrink as threads are added.
    ///
    /// When `R >= ceiling * 2^32` (tens of thousands of threads on one core) the clock's rounding
    /// could stall it and no bound is promised: the result is `u64::MAX`. The result saturates
    /// at `u64::MAX`.
    pub const fn wait_bound(self, own: Priority, tightest: Priority, max_runnable: usize) -> u64 {
        let n = if max_runnable == 0 { 1 } else { max_runnable };
        let queue = ((n - 1) as u64).saturating_mul(self.ceiling_ns);
        if tightest.0 <= own.0 {
            return queue;
        }
        let ahead = (self.deadline_span(own) - self.deadline_span(tightest)) as u128;
        let round = self.round(n) as u128;
        let rate = (self.ceiling_ns as u128) << CLOCK_FRACTION_BITS;
        if round >= rate {
            return u64::MAX;
        }
        // (span difference * 2^32 + 1 <= 2^62) * (round < 2^64) < 2^126: no overflow.
        let num = ((ahead << CLOCK_FRACTION_BITS) + 1) * round;
        let den = rate - round;
        let stretch = num.div_ceil(den);
        if stretch > u64::MAX as u128 {
            u64::MAX
        } else {
            (stretch as u64).saturating_add(queue)
        }
    }
}
