//! Host unit tests: the formulas (quantum, round, deadline span, relative deadline, waiting bound)
//! against their documented tables and shapes, each run-queue operation on its own, and a
//! property test that drives random call sequences (any order, unknown ids, backwards clocks)
//! against a small model, checking that nothing panics and the counts and states agree.

extern crate std;

use super::*;
use alloc::vec::Vec;
use proptest::prelude::*;
use std::collections::BTreeMap;

const P: Policy = Policy::DEFAULT;
const MS: u64 = 1_000_000;
const US: u64 = 1_000;

// ---- formulas ----

#[test]
fn policy_new_validates_its_limits() {
    assert_eq!(Policy::new(100 * US, MS), Some(Policy::DEFAULT));
    assert_eq!(Policy::default(), Policy::DEFAULT);
    assert_eq!(Policy::new(0, MS), None);
    assert_eq!(Policy::new(MS + 1, MS), None);
    assert_eq!(Policy::new(1, Policy::MAX_CEILING_NS + 1), None);
    let p = Policy::new(1, Policy::MAX_CEILING_NS).unwrap();
    assert_eq!((p.floor_ns(), p.ceiling_ns()), (1, Policy::MAX_CEILING_NS));
    assert!(Policy::new(7, 7).is_some());
}

#[test]
fn quantum_table() {
    let table = [
        (0, MS),
        (1, MS),
        (2, 500 * US),
        (3, 333_333),
        (4, 250 * US),
        (5, 200 * US),
        (8, 125 * US),
        (10, 100 * US),
        (11, 100 * US),
        (32, 100 * US),
        (usize::MAX, 100 * US),
    ];
    for (n, q) in table {
        assert_eq!(P.quantum(n), q, "quantum({n})");
    }
}

#[test]
fn round_table() {
    for n in 0..=10 {
        assert_eq!(P.round(n), MS);
    }
    assert_eq!(P.round(11), 1_100 * US);
    assert_eq!(P.round(16), 1_600 * US);
    assert_eq!(P.round(32), 3_200 * US);
    assert_eq!(P.round(usize::MAX), u64::MAX);
}

#[test]
fn deadline_span_table_and_strictly_decreasing_by_default() {
    assert_eq!(P.deadline_span(Priority::NORMAL), MS);
    assert_eq!(P.deadline_span(Priority(1)), 500 * US);
    assert_eq!(P.deadline_span(Priority(3)), 250 * US);
    assert_eq!(P.deadline_span(Priority(9)), 100 * US);
    assert_eq!(P.deadline_span(Priority::MAX), 3_906);
    for p in 0..u8::MAX {
        assert!(P.deadline_span(Priority(p)) > P.deadline_span(Priority(p + 1)));
    }
}

#[test]
fn relative_deadline_table() {
    let table: [(u8, [u64; 3]); 5] = [
        (0, [MS, 1_600 * US, 3_200 * US]),
        (1, [500 * US, 800 * US, 1_600 * US]),
        (3, [250 * US, 400 * US, 800 * US]),
        (9, [100 * US, 160 * US, 320 * US]),
        (255, [3_906, 6_249, 12_499]),
    ];
    for (p, row) in table {
        for n in 1..=10 {
            assert_eq!(P.relative_deadline(Priority(p), n), row[0], "p={p} n={n}");
        }
        assert_eq!(P.relative_deadline(Priority(p), 16), row[1], "p={p} n=16");
        assert_eq!(P.relative_deadline(Priority(p), 32), row[2], "p={p} n=32");
    }
}

#[test]
fn wait_bound_examples() {
    // Equal priorities: (n - 1) ceilings.
    for n in 1..40 {
        let own = Priority(n as u8 % 4);
        assert_eq!(P.wait_bound(own, own, n), (n as u64 - 1) * MS);
    }
    assert_eq!(P.wait_bound(Priority::NORMAL, Priority::NORMAL, 0), 0);
    // A looser `tightest` than `own` counts as `own`.
    assert_eq!(P.wait_bound(Priority(3), Priority(1), 5), 4 * MS);
    // Normal waiting while priority-1 threads arrive, 4 runnable: 500 µs head start (+1 ns of
    // clock rounding allowance) on top of 3 ceilings.
    assert_eq!(
        P.wait_bound(Priority::NORMAL, Priority(1), 4),
        500 * US + 1 + 3 * MS
    );
    // At 32 runnable the head start stretches with the round (3.2 ms / 1 ms).
    assert_eq!(
        P.wait_bound(Priority::NORMAL, Priority(1), 32),
        1_600 * US + 1 + 31 * MS
    );
    // No promise when the clock's rounding could stall it.
    assert_eq!(
        P.wait_bound(Priority::NORMAL, Priority(1), usize::MAX),
        u64::MAX
    );
}

proptest! {
    #[test]
    fn quantum_within_limits_and_non_increasing(
        floor in 1u64..=2_000_000,
        extra in 0u64..=50_000_000,
        n in 0usize..100_000,
    ) {
        let p = Policy::new(floor, floor + extra).unwrap();
        let q = p.quantum(n);
        prop_assert!(p.floor_ns() <= q && q <= p.ceiling_ns());
        prop_assert!(p.quantum(n + 1) <= q);
        prop_assert!(p.round(n + 1) >= p.round(n));
        prop_assert!(p.round(n) >= p.ceiling_ns());
    }

    #[test]
    fn relative_deadline_tighter_with_priority_looser_with_contention(
        floor in 1u64..=2_000_000,
        extra in 0u64..=50_000_000,
        pr in 0u8..u8::MAX,
        n in 0usize..100_000,
    ) {
        let p = Policy::new(floor, floor + extra).unwrap();
        let d = p.relative_deadline(Priority(pr), n);
        prop_assert!(p.relative_deadline(Priority(pr + 1), n) <= d);
        prop_assert!(p.relative_deadline(Priority(pr), n + 1) >= d);
        prop_assert!(d <= p.round(n));
        prop_assert!(p.deadline_span(Priority(pr + 1)) <= p.deadline_span(Priority(pr)));
    }

    #[test]
    fn wait_bound_grows_with_contention_and_tighter_competition(
        own in 0u8..=u8::MAX,
        tight in 0u8..u8::MAX,
        n in 1usize..5_000,
    ) {
        let b = P.wait_bound(Priority(own), Priority(tight), n);
        prop_assert!(b >= (n as u64 - 1) * MS);
        prop_assert!(P.wait_bound(Priority(own), Priority(tight), n + 1) >= b);
        prop_assert!(P.wait_bound(Priority(own), Priority(tight + 1), n) >= b);
    }
}

// ---- run queue operations ----

fn q() -> RunQueue<u32> {
    RunQueue::new(P)
}

#[test]
fn empty_queue_picks_nothing() {
    let mut q = q();
    assert_eq!(q.pick(10), None);
    assert!(q.is_empty());
    assert_eq!(
        (q.len(), q.known(), q.running(), q.next_expiry()),
        (0, 0, None, None)
    );
}

#[test]
fn a_lone_thread_gets_no_timer_and_the_ceiling_quantum() {
    let mut q = q();
    assert_eq!(q.insert(7, Priority(3), 100), Ok(Wake::Pick));
    let d = q.pick(100).unwrap();
    assert_eq!(
        d,
        Decision {
            id: 7,
            timer: None,
            quantum_ns: MS,
            runnable: 1
        }
    );
    assert_eq!(q.running(), Some(7));
    assert_eq!(q.next_expiry(), None);
    assert_eq!(q.state(7), Some(ThreadState::Running));
}

#[test]
fn two_runnable_threads_get_a_timer_and_alternate() {
    let mut q = q();
    q.insert(1, Priority::NORMAL, 0).unwrap();
    q.insert(2, Priority::NORMAL, 0).unwrap();
    let d = q.pick(0).unwrap();
    assert_eq!(
        (d.id, d.timer, d.quantum_ns, d.runnable),
        (1, Some(500 * US), 500 * US, 2)
    );
    assert_eq!(q.next_expiry(), Some(500 * US));
    let c = q.preempted(1, 500 * US).unwrap();
    assert_eq!(
        c,
        Charge {
            used_ns: 500 * US,
            unused_ns: 0,
            cpu_time_ns: 500 * US
        }
    );
    let d = q.pick(500 * US).unwrap();
    assert_eq!((d.id, d.timer), (2, Some(MS)));
    q.preempted(2, MS).unwrap();
    assert_eq!(q.pick(MS).unwrap().id, 1);
}

#[test]
fn earliest_deadline_first_and_fifo_among_equals() {
    let mut q = q();
    for id in [5, 3, 9] {
        q.insert(id, Priority::NORMAL, 0).unwrap();
    }
    q.insert(4, Priority(2), 0).unwrap();
    q.insert(8, Priority(1), 0).unwrap();
    let mut order = Vec::new();
    for _ in 0..5 {
        let d = q.pick(0).unwrap();
        order.push(d.id);
        q.blocked(d.id, 0).unwrap();
    }
    assert_eq!(order, [4, 8, 5, 3, 9]);
}

#[test]
fn an_earlier_deadline_preempts_a_later_one() {
    let mut q = q();
    q.insert(1, Priority::NORMAL, 0).unwrap();
    q.insert(2, Priority::NORMAL, 0).unwrap();
    assert_eq!(q.pick(0).unwrap().id, 1);
    // Normal priority at 100 µs: deadline 1.1 ms, later than thread 1's 1 ms: wait.
    assert_eq!(q.insert(3, Priority::NORMAL, 100 * US), Ok(Wake::Wait));
    // Priority 1 at 100 µs: deadline 600 µs, earlier: preempt.
    assert_eq!(q.insert(4, Priority(1), 100 * US), Ok(Wake::Preempt));
    let c = q.preempted(1, 100 * US).unwrap();
    assert_eq!((c.used_ns, c.unused_ns), (100 * US, 400 * US));
    let d = q.pick(100 * US).unwrap();
    assert_eq!((d.id, d.runnable, d.quantum_ns), (4, 4, 250 * US));
}

#[test]
fn a_blocking_thread_returns_the_rest_of_its_quantum() {
    let mut q = q();
    for id in 0..4 {
        q.insert(id, Priority::NORMAL, 0).unwrap();
    }
    let d = q.pick(0).unwrap();
    assert_eq!(d.quantum_ns, 250 * US);
    let c = q.blocked(d.id, 70 * US).unwrap();
    assert_eq!(
        c,
        Charge {
            used_ns: 70 * US,
            unused_ns: 180 * US,
            cpu_time_ns: 70 * US
        }
    );
    assert_eq!(q.state(d.id), Some(ThreadState::Blocked));
    assert_eq!(q.len(), 3);
    let next = q.pick(70 * US).unwrap();
    assert_eq!(
        (next.id, next.timer, next.quantum_ns),
        (1, Some(70 * US + 333_333), 333_333)
    );
    // Yielding returns time too, and the yielder goes behind its equals.
    let c = q.yielded(1, 100 * US).unwrap();
    assert_eq!(c.unused_ns, 333_333 - 30 * US);
    assert_eq!(q.pick(100 * US).unwrap().id, 2);
}

#[test]
fn a_woken_thread_keeps_its_cpu_time_and_gets_its_new_priority() {
    let mut q = q();
    q.insert(1, Priority::NORMAL, 0).unwrap();
    q.pick(0).unwrap();
    q.blocked(1, 40).unwrap();
    assert_eq!(q.cpu_time(1), Some(40));
    assert_eq!(q.insert(1, Priority(6), 100), Ok(Wake::Pick));
    assert_eq!(q.priority(1), Some(Priority(6)));
    q.pick(100).unwrap();
    let c = q.preempted(1, 160).unwrap();
    assert_eq!(c.cpu_time_ns, 100);
    q.set_priority(1, Priority(2)).unwrap();
    assert_eq!(q.priority(1), Some(Priority(2)));
}

#[test]
fn a_lone_thread_is_preempted_when_another_arrives() {
    let mut q = q();
    q.insert(1, Priority(9), 0).unwrap();
    q.pick(0).unwrap();
    // Even a looser thread makes the kernel reschedule: the lone thread needs a timer now.
    assert_eq!(q.insert(2, Priority::NORMAL, 50 * MS), Ok(Wake::Preempt));
    q.preempted(1, 50 * MS).unwrap();
    // The tighter thread wins again, this time with a timer.
    let d = q.pick(50 * MS).unwrap();
    assert_eq!((d.id, d.timer), (1, Some(50 * MS + 500 * US)));
}

#[test]
fn refusals_leave_the_queue_unchanged() {
    let mut q = q();
    assert_eq!(q.preempted(1, 0), Err(SchedError::UnknownThread));
    assert_eq!(q.yielded(1, 0), Err(SchedError::UnknownThread));
    assert_eq!(q.blocked(1, 0), Err(SchedError::UnknownThread));
    assert_eq!(q.remove(1, 0), Err(SchedError::UnknownThread));
    assert_eq!(
        q.set_priority(1, Priority(1)),
        Err(SchedError::UnknownThread)
    );
    q.insert(1, Priority::NORMAL, 0).unwrap();
    q.insert(2, Priority::NORMAL, 0).unwrap();
    assert_eq!(
        q.insert(1, Priority::NORMAL, 0),
        Err(SchedError::AlreadyRunnable)
    );
    assert_eq!(q.preempted(1, 0), Err(SchedError::NotRunning));
    q.pick(0).unwrap();
    assert_eq!(
        q.insert(1, Priority::NORMAL, 0),
        Err(SchedError::AlreadyRunnable)
    );
    assert_eq!(q.yielded(2, 0), Err(SchedError::NotRunning));
    q.blocked(2, 0).unwrap();
    assert_eq!(q.blocked(2, 0), Err(SchedError::NotRunnable));
    assert_eq!(q.cpu_time(3), None);
    assert_eq!(q.state(3), None);
    assert_eq!(q.priority(3), None);
    assert_eq!((q.len(), q.known(), q.running()), (1, 2, Some(1)));
}

#[test]
fn blocking_a_queued_thread_just_takes_it_out() {
    let mut q = q();
    q.insert(1, Priority::NORMAL, 0).unwrap();
    q.insert(2, Priority::NORMAL, 0).unwrap();
    assert_eq!(
        q.blocked(1, 10),
        Ok(Charge {
            used_ns: 0,
            unused_ns: 0,
            cpu_time_ns: 0
        })
    );
    assert_eq!(q.pick(10).unwrap().id, 2);
}

#[test]
fn remove_charges_a_running_thread_and_keeps_indices_right() {
    let mut q = q();
    for id in 0..4 {
        q.insert(id, Priority::NORMAL, 0).unwrap();
    }
    q.blocked(2, 0).unwrap();
    q.pick(0).unwrap(); // 0 runs
    // Removing thread 0 (index 0) moves the last thread into its place.
    assert_eq!(q.remove(0, 30), Ok(30));
    assert_eq!((q.len(), q.known(), q.running()), (2, 3, None));
    assert_eq!(q.pick(30).unwrap().id, 1);
    // Removing another thread while 1 runs keeps 1 the running one.
    assert_eq!(q.remove(3, 40), Ok(0));
    assert_eq!(q.running(), Some(1));
    assert_eq!(q.remove(2, 40), Ok(0));
    assert_eq!(q.running(), Some(1));
    assert_eq!(q.preempted(1, 50).unwrap().cpu_time_ns, 20);
    let mut ids: Vec<u32> = q.runnable_ids().collect();
    ids.sort();
    assert_eq!(ids, [1]);
}

#[test]
fn pick_while_running_accounts_the_running_thread() {
    let mut q = q();
    q.insert(1, Priority::NORMAL, 0).unwrap();
    q.insert(2, Priority::NORMAL, 0).unwrap();
    q.pick(0).unwrap();
    let d = q.pick(100).unwrap();
    assert_eq!(d.id, 2);
    assert_eq!(q.cpu_time(1), Some(100));
    assert_eq!(q.state(1), Some(ThreadState::Queued));
}

#[test]
fn a_clock_running_backwards_is_clamped() {
    let mut q = q();
    q.insert(1, Priority::NORMAL, 1_000).unwrap();
    q.pick(1_000).unwrap();
    let c = q.blocked(1, 10).unwrap();
    assert_eq!(c.used_ns, 0);
    q.insert(1, Priority::NORMAL, 5).unwrap();
    let d = q.pick(3).unwrap();
    assert_eq!(d.timer, None);
    q.insert(2, Priority::NORMAL, 0).unwrap();
    q.preempted(1, 0).unwrap();
    let d = q.pick(0).unwrap();
    assert_eq!((d.id, d.timer), (2, Some(1_000 + 500 * US)));
}

#[test]
fn timers_saturate_at_the_end_of_time() {
    let mut q = q();
    q.insert(1, Priority::NORMAL, u64::MAX - 10).unwrap();
    q.insert(2, Priority::NORMAL, u64::MAX - 10).unwrap();
    let d = q.pick(u64::MAX - 10).unwrap();
    assert_eq!(d.timer, Some(u64::MAX));
    let c = q.preempted(d.id, u64::MAX).unwrap();
    assert_eq!(c.used_ns, 10);
}

#[test]
fn reserve_makes_room() {
    let mut q = q();
    assert_eq!(q.reserve(64), Ok(()));
    assert_eq!(q.reserve(usize::MAX), Err(SchedError::NoMemory));
}

// ---- random call sequences against a model ----

#[derive(Clone, Debug)]
enum Op {
    Insert(u8, u8),
    Pick,
    Preempted(u8),
    Yielded(u8),
    Blocked(u8),
    Remove(u8),
    SetPriority(u8, u8),
}

fn op() -> impl Strategy<Value = (Op, u64)> {
    let id = 0u8..8;
    let o = prop_oneof![
        3 => (id.clone(), any::<u8>()).prop_map(|(i, p)| Op::Insert(i, p)),
        3 => Just(Op::Pick),
        2 => id.clone().prop_map(Op::Preempted),
        1 => id.clone().prop_map(Op::Yielded),
        2 => id.clone().prop_map(Op::Blocked),
        1 => id.clone().prop_map(Op::Remove),
        1 => (id, any::<u8>()).prop_map(|(i, p)| Op::SetPriority(i, p)),
    ];
    // Mostly forward steps, sometimes a step backwards or a huge jump.
    let dt = prop_oneof![8 => 0u64..3 * MS, 1 => Just(u64::MAX / 4), 1 => Just(0)];
    (o, dt)
}

proptest! {
    #[test]
    fn random_call_sequences_never_panic_and_agree_with_a_model(
        ops in proptest::collection::vec((op(), any::<bool>()), 0..200),
    ) {
        let mut q: RunQueue<u8> = RunQueue::new(P);
        // Model: id -> (state, priority, cpu).
        let mut model: BTreeMap<u8, (ThreadState, Priority, u64)> = BTreeMap::new();
        let mut running: Option<(u8, u64)> = None;
        let mut now = 0u64;
        for ((op, dt), backwards) in ops {
            let call_now = if backwards { now.saturating_sub(dt) } else { now.saturating_add(dt) };
            let seen = now.max(call_now);
            // Refused calls leave the queue (and its latest time) unchanged.
            let mut ok = true;
            match op {
                Op::Insert(id, p) => {
                    let r = q.insert(id, Priority(p), call_now);
                    match model.get(&id).map(|m| m.0) {
                        Some(ThreadState::Queued | ThreadState::Running) => {
                            ok = false;
                            prop_assert_eq!(r, Err(SchedError::AlreadyRunnable));
                        }
                        _ => {
                            let wake = r.unwrap();
                            prop_assert_eq!(wake == Wake::Pick, running.is_none());
                            let cpu = model.get(&id).map_or(0, |m| m.2);
                            model.insert(id, (ThreadState::Queued, Priority(p), cpu));
                        }
                    }
                }
                Op::Pick => {
                    if let Some((r, since)) = running.take() {
                        let m = model.get_mut(&r).unwrap();
                        m.0 = ThreadState::Queued;
                        m.2 += seen - since;
                    }
                    let runnable = model.values().filter(|m| m.0 != ThreadState::Blocked).count();
                    match q.pick(call_now) {
                        None => prop_assert_eq!(runnable, 0),
                        Some(d) => {
                            prop_assert_eq!(d.runnable, runnable);
                            prop_assert_eq!(d.quantum_ns, P.quantum(runnable));
                            prop_assert_eq!(d.timer.is_some(), runnable >= 2);
                            let m = model.get_mut(&d.id).unwrap();
                            prop_assert_eq!(m.0, ThreadState::Queued);
                            m.0 = ThreadState::Running;
                            running = Some((d.id, seen));
                        }
                    }
                }
                Op::Preempted(id) | Op::Yielded(id) => {
                    let r = if matches!(op, Op::Preempted(_)) {
                        q.preempted(id, call_now)
                    } else {
                        q.yielded(id, call_now)
                    };
                    ok = matches!(running, Some((rid, _)) if rid == id);
                    match (model.get_mut(&id), running) {
                        (None, _) => prop_assert_eq!(r, Err(SchedError::UnknownThread)),
                        (Some(m), Some((rid, since))) if rid == id => {
                            m.0 = ThreadState::Queued;
                            m.2 += seen - since;
                            prop_assert_eq!(r.unwrap().cpu_time_ns, m.2);
                            running = None;
                        }
                        _ => prop_assert_eq!(r, Err(SchedError::NotRunning)),
                    }
                }
                Op::Blocked(id) => {
                    let r = q.blocked(id, call_now);
                    ok = r.is_ok();
                    match model.get_mut(&id) {
                        None => prop_assert_eq!(r, Err(SchedError::UnknownThread)),
                        Some(m) if m.0 == ThreadState::Blocked => {
                            prop_assert_eq!(r, Err(SchedError::NotRunnable));
                        }
                        Some(m) => {
                            if let Some((_, since)) = running.filter(|x| x.0 == id) {
                                m.2 += seen - since;
                                running = None;
                            }
                            m.0 = ThreadState::Blocked;
                            prop_assert_eq!(r.unwrap().cpu_time_ns, m.2);
                        }
                    }
                }
                Op::Remove(id) => {
                    let r = q.remove(id, call_now);
                    ok = r.is_ok();
                    match model.remove(&id) {
                        None => prop_assert_eq!(r, Err(SchedError::UnknownThread)),
                        Some(mut m) => {
                            if let Some((_, since)) = running.filter(|x| x.0 == id) {
                                m.2 += seen - since;
                                running = None;
                            }
                            prop_assert_eq!(r, Ok(m.2));
                        }
                    }
                }
                Op::SetPriority(id, p) => {
                    ok = false;
                    let r = q.set_priority(id, Priority(p));
                    match model.get_mut(&id) {
                        None => prop_assert_eq!(r, Err(SchedError::UnknownThread)),
                        Some(m) => {
                            prop_assert_eq!(r, Ok(()));
                            m.1 = Priority(p);
                        }
                    }
                }
            }
            if ok {
                now = seen;
            }
            // The queue agrees with the model.
            let runnable = model.values().filter(|m| m.0 != ThreadState::Blocked).count();
            prop_assert_eq!(q.len(), runnable);
            prop_assert_eq!(q.known(), model.len());
            prop_assert_eq!(q.running(), running.map(|r| r.0));
            prop_assert_eq!(q.runnable_ids().count(), runnable);
            for (id, m) in &model {
                prop_assert_eq!(q.state(*id), Some(m.0));
                prop_assert_eq!(q.priority(*id), Some(m.1));
                prop_assert_eq!(q.cpu_time(*id), Some(m.2));
            }
        }
    }
}

#[test]
fn hand_off_runs_the_woken_thread_at_once_without_a_timer() {
    let mut q = q();
    q.insert(1, Priority::NORMAL, 0).unwrap();
    q.insert(2, Priority::NORMAL, 0).unwrap();
    assert_eq!(q.pick(0).unwrap().id, 1);
    // 2 is queued: the choice is the policy's, not the caller's.
    assert_eq!(
        q.hand_off(1, 3, Priority::NORMAL, 10),
        Err(SchedError::OthersRunnable)
    );
    q.blocked(2, 10).unwrap();
    assert_eq!(
        q.hand_off(2, 1, Priority::NORMAL, 10),
        Err(SchedError::NotRunning)
    );
    assert_eq!(
        q.hand_off(9, 2, Priority::NORMAL, 10),
        Err(SchedError::UnknownThread)
    );
    assert_eq!(
        q.hand_off(1, 1, Priority::NORMAL, 10),
        Err(SchedError::AlreadyRunnable)
    );
    let (charge, d) = q.hand_off(1, 2, Priority(3), 40).unwrap();
    assert_eq!(charge.used_ns, 40);
    assert_eq!((d.id, d.timer, d.runnable), (2, None, 1));
    assert_eq!(q.state(1), Some(ThreadState::Blocked));
    assert_eq!(q.state(2), Some(ThreadState::Running));
    assert_eq!(q.priority(2), Some(Priority(3)));
    // A thread the queue has not seen yet is added.
    let (_, d) = q.hand_off(2, 7, Priority::NORMAL, 50).unwrap();
    assert_eq!(d.id, 7);
    assert_eq!(q.cpu_time(2), Some(10));
}

proptest! {
    /// `hand_off` is `blocked` + `insert` + `pick` at the same instant: the same decision and
    /// charge, and the two queues behave the same afterwards, whatever came before.
    #[test]
    fn hand_off_equals_block_insert_pick(
        before in proptest::collection::vec(op(), 0..60),
        after in proptest::collection::vec(op(), 0..60),
        from in 0u8..8,
        to in 0u8..8,
        p in any::<u8>(),
        dt in 0u64..3 * MS,
    ) {
        let mut q: RunQueue<u8> = RunQueue::new(P);
        let mut now = 0u64;
        let apply = |q: &mut RunQueue<u8>, (op, dt): (Op, u64), now: &mut u64| {
            *now = now.saturating_add(dt);
            let t = *now;
            let _ = match op {
                Op::Insert(i, p) => q.insert(i, Priority(p), t).map(|_| ()),
                Op::Pick => {
                    q.pick(t);
                    Ok(())
                }
                Op::Preempted(i) => q.preempted(i, t).map(|_| ()),
                Op::Yielded(i) => q.yielded(i, t).map(|_| ()),
                Op::Blocked(i) => q.blocked(i, t).map(|_| ()),
                Op::Remove(i) => q.remove(i, t).map(|_| ()),
                Op::SetPriority(i, p) => q.set_priority(i, Priority(p)),
            };
        };
        for o in before {
            apply(&mut q, o, &mut now);
        }
        now = now.saturating_add(dt);
        let mut slow = q.clone();
        // Mostly the running thread, so that the hand-off is usually allowed.
        let from = if from < 6 { q.running().unwrap_or(from) } else { from };
        match q.hand_off(from, to, Priority(p), now) {
            Ok((charge, decision)) => {
                let c = slow.blocked(from, now).unwrap();
                slow.insert(to, Priority(p), now).unwrap();
                let d = slow.pick(now).unwrap();
                prop_assert_eq!(charge, c);
                prop_assert_eq!(decision, d);
                // Every field alike, down to the tie-breaking sequence numbers.
                prop_assert_eq!(std::format!("{q:?}"), std::format!("{slow:?}"));
            }
            Err(_) => {
                // Refused: unchanged, so both queues go on identically below.
            }
        }
        let mut now2 = now;
        for o in after {
            apply(&mut q, o.clone(), &mut now);
            apply(&mut slow, o, &mut now2);
            prop_assert_eq!(now, now2);
            prop_assert_eq!(q.running(), slow.running());
            prop_assert_eq!(q.len(), slow.len());
            for id in 0u8..8 {
                prop_assert_eq!(q.state(id), slow.state(id));
                prop_assert_eq!(q.cpu_time(id), slow.cpu_time(id));
            }
            prop_assert_eq!(q.pick(now), slow.pick(now2));
        }
    }
}
