//! Property tests of the scheduling policy against a simulated core (see `sim/mod.rs`): random
//! workloads of 1 to 32 threads with random priorities and run/block/yield patterns, checked for
//! the promises the crate documents — quanta within [100 µs, 1 ms], a timer exactly when two or
//! more threads are runnable, no wait beyond `Policy::wait_bound` (and `(n - 1)` ceilings with
//! equal priorities), tighter deadlines first, more dispatches for higher priorities, the rest
//! of a quantum handed over at once on a block, and CPU time that adds up to the busy time.

mod sim;

use proptest::prelude::*;
use schedpolicy::{Policy, Priority};
use sim::{After, Burst, EndKind, Spec, Trace, simulate};

const P: Policy = Policy::DEFAULT;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const HORIZON: u64 = 40 * MS;

fn burst() -> impl Strategy<Value = Burst> {
    let run = prop_oneof![1u64..=50 * US, 1u64..=3 * MS];
    let after = prop_oneof![
        3 => (0u64..=3 * MS).prop_map(After::Block),
        1 => Just(After::Yield),
    ];
    (run, after).prop_map(|(run, after)| Burst { run, after })
}

fn spec(priority: impl Strategy<Value = u8>) -> impl Strategy<Value = Spec> {
    (
        priority,
        0u64..=2 * MS,
        proptest::collection::vec(burst(), 1..5),
    )
        .prop_map(|(p, arrive, bursts)| Spec {
            priority: Priority(p),
            arrive,
            bursts,
        })
}

/// Priorities mostly normal, some raised, now and then the maximum.
fn mixed_priority() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(0u8), 4 => 1u8..=4, 1 => Just(u8::MAX)]
}

fn mixed_workload() -> impl Strategy<Value = Vec<Spec>> {
    proptest::collection::vec(spec(mixed_priority()), 1..=32)
}

fn equal_workload() -> impl Strategy<Value = Vec<Spec>> {
    (any::<u8>(), 1usize..=32).prop_flat_map(|(p, n)| proptest::collection::vec(spec(Just(p)), n))
}

/// Threads that never block (one long burst, then a yield), all arriving at time 0.
fn cpu_bound(priorities: &[u8]) -> Vec<Spec> {
    priorities
        .iter()
        .map(|&p| Spec {
            priority: Priority(p),
            arrive: 0,
            bursts: vec![Burst {
                run: u64::MAX / 4,
                after: After::Yield,
            }],
        })
        .collect()
}

fn waited(w: &sim::Wait) -> u64 {
    w.to.unwrap_or(HORIZON) - w.from
}

fn check_wait_bound(policy: Policy, trace: &Trace) -> Result<(), TestCaseError> {
    for w in &trace.waits {
        let bound = policy.wait_bound(w.priority, w.tightest, w.max_runnable);
        prop_assert!(
            waited(w) <= bound,
            "{w:?} waited {} > bound {bound}",
            waited(w)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn every_quantum_is_within_floor_and_ceiling(specs in mixed_workload()) {
        let trace = simulate(P, &specs, HORIZON);
        prop_assert!(!trace.picks.is_empty());
        for p in &trace.picks {
            let q = p.decision.quantum_ns;
            prop_assert!((100 * US..=MS).contains(&q), "quantum {q}");
            prop_assert_eq!(q, P.quantum(p.decision.runnable));
        }
    }

    #[test]
    fn a_timer_is_requested_exactly_when_two_or_more_are_runnable(specs in mixed_workload()) {
        let trace = simulate(P, &specs, HORIZON);
        for p in &trace.picks {
            let d = p.decision;
            prop_assert_eq!(d.runnable, p.passed_over.len() + 1);
            if d.runnable == 1 {
                prop_assert_eq!(d.timer, None);
            } else {
                prop_assert_eq!(d.timer, Some(p.at + d.quantum_ns));
            }
        }
        // A lone thread is never cut off by a timer, only by a wake-up that makes two.
        for e in &trace.ends {
            if e.decision.runnable == 1 {
                prop_assert!(e.kind != EndKind::Timer);
            }
        }
    }

    #[test]
    fn no_wait_exceeds_the_promised_bound(specs in mixed_workload()) {
        let trace = simulate(P, &specs, HORIZON);
        for w in &trace.waits {
            prop_assert_eq!(w.priority, specs[w.id].priority);
            prop_assert!(w.tightest >= w.priority);
        }
        check_wait_bound(P, &trace)?;
    }

    #[test]
    fn other_policies_keep_their_promises(
        floor in 1_000u64..=500_000,
        extra in 0u64..=4_000_000,
        specs in mixed_workload(),
    ) {
        let policy = Policy::new(floor, floor + extra).unwrap();
        let trace = simulate(policy, &specs, HORIZON);
        for p in &trace.picks {
            let d = p.decision;
            prop_assert!((policy.floor_ns()..=policy.ceiling_ns()).contains(&d.quantum_ns));
            prop_assert_eq!(d.timer.is_some(), d.runnable >= 2);
        }
        check_wait_bound(policy, &trace)?;
        prop_assert_eq!(trace.cpu_time.iter().sum::<u64>(), trace.busy);
    }

    #[test]
    fn equal_priorities_wait_at_most_n_minus_one_ceilings(specs in equal_workload()) {
        let trace = simulate(P, &specs, HORIZON);
        for w in &trace.waits {
            let bound = (w.runnable_at_start as u64 - 1) * MS;
            prop_assert!(waited(w) <= bound, "{w:?} waited {} > {bound}", waited(w));
        }
        check_wait_bound(P, &trace)?;
    }

    #[test]
    fn simultaneous_arrivals_run_tightest_first(specs in mixed_workload()) {
        let trace = simulate(P, &specs, HORIZON);
        for p in &trace.picks {
            let chosen = specs[p.decision.id].priority;
            for &(id, prio, at, order) in &p.passed_over {
                // Same instant: never a higher priority passed over.
                if at == p.chosen_queued_at {
                    prop_assert!(prio <= chosen, "picked {:?} over {id} ({prio:?})", p.decision);
                }
                // Equal priority: first in, first out, also within one instant.
                if prio == chosen {
                    prop_assert!(
                        (at, order) > (p.chosen_queued_at, p.chosen_order),
                        "FIFO broken at {:?}", p
                    );
                }
            }
        }
    }

    #[test]
    fn higher_priorities_get_at_least_as_many_dispatches(
        prios in proptest::collection::vec(0u8..=5, 2..=24),
    ) {
        let trace = simulate(P, &cpu_bound(&prios), HORIZON);
        for (a, pa) in prios.iter().enumerate() {
            for (b, pb) in prios.iter().enumerate() {
                if pa > pb {
                    prop_assert!(
                        trace.dispatches[a] + 1 >= trace.dispatches[b],
                        "priority {pa} got {} dispatches, priority {pb} {}",
                        trace.dispatches[a], trace.dispatches[b]
                    );
                }
            }
        }
    }

    #[test]
    fn a_raised_priority_among_normals_gets_more_dispatches(p in 1u8..=255, k in 1usize..=31) {
        let mut prios = vec![p];
        prios.extend(std::iter::repeat_n(0, k));
        let trace = simulate(P, &cpu_bound(&prios), HORIZON);
        let most_normal = trace.dispatches[1..].iter().copied().max().unwrap();
        let mean_normal = trace.dispatches[1..].iter().sum::<u64>() as f64 / k as f64;
        prop_assert!(trace.dispatches[0] > most_normal);
        prop_assert!(trace.dispatches[0] as f64 >= 1.9 * mean_normal);
    }

    #[test]
    fn a_block_mid_quantum_hands_over_at_once_and_returns_the_rest(specs in mixed_workload()) {
        let trace = simulate(P, &specs, HORIZON);
        for e in &trace.ends {
            let used = e.at - e.since;
            prop_assert_eq!(e.charge.used_ns, used);
            prop_assert_eq!(e.charge.unused_ns, e.decision.quantum_ns.saturating_sub(used));
            if e.kind == EndKind::Block && e.decision.timer.is_some() {
                prop_assert!(used <= e.decision.quantum_ns);
                if used < e.decision.quantum_ns {
                    prop_assert_eq!(e.charge.unused_ns, e.decision.quantum_ns - used);
                }
            }
            if matches!(e.kind, EndKind::Block | EndKind::Yield) && e.runnable_after > 0 {
                prop_assert_eq!(e.next_pick_at, Some(e.at), "core left idle after {:?}", e);
            }
        }
    }

    #[test]
    fn cpu_time_adds_up_to_the_busy_time(specs in mixed_workload()) {
        let trace = simulate(P, &specs, HORIZON);
        prop_assert_eq!(&trace.cpu_time, &trace.ran);
        prop_assert_eq!(trace.cpu_time.iter().sum::<u64>(), trace.busy);
        prop_assert!(trace.busy <= HORIZON);
        let mut charged = vec![0u64; specs.len()];
        for e in &trace.ends {
            charged[e.id] += e.charge.used_ns;
            prop_assert_eq!(e.charge.cpu_time_ns, charged[e.id]);
        }
        prop_assert_eq!(&charged, &trace.ran);
    }
}

// ---- deterministic scenarios ----

#[test]
fn a_burst_of_arrivals_is_first_dispatched_in_priority_order_then_fifo() {
    let prios = [
        0u8, 3, 1, 0, 255, 3, 2, 0, 1, 7, 0, 4, 0, 0, 2, 6, 0, 5, 1, 0,
    ];
    let trace = simulate(P, &cpu_bound(&prios), HORIZON);
    let mut first: Vec<usize> = Vec::new();
    for p in &trace.picks {
        if !first.contains(&p.decision.id) {
            first.push(p.decision.id);
        }
    }
    let mut expected: Vec<usize> = (0..prios.len()).collect();
    expected.sort_by_key(|&i| std::cmp::Reverse(prios[i]));
    assert_eq!(first, expected);
    // The very first pick is the tightest thread.
    assert_eq!(trace.picks[0].decision.id, 4);
}

/// Dispatches of thread 0 (priority `p`) over the mean of `k` normal CPU-bound threads.
fn share(p: u8, k: usize) -> f64 {
    let mut prios = vec![p];
    prios.extend(std::iter::repeat_n(0, k));
    let trace = simulate(P, &cpu_bound(&prios), 400 * MS);
    let normal = trace.dispatches[1..].iter().sum::<u64>() as f64 / k as f64;
    trace.dispatches[0] as f64 / normal
}

#[test]
fn dispatch_share_matches_the_documented_table() {
    // The table in the crate docs (lib.rs, "What priority buys").
    let table: [(usize, [f64; 4]); 5] = [
        (1, [2.0, 2.0, 2.0, 2.0]),
        (3, [2.0, 3.0, 3.0, 3.0]),
        (7, [2.0, 3.0, 3.5, 3.5]),
        (19, [2.05, 3.24, 4.09, 5.11]),
        (31, [2.13, 3.64, 5.23, 6.47]),
    ];
    for (k, row) in table {
        for (p, want) in [1u8, 3, 7, 255].into_iter().zip(row) {
            let got = share(p, k);
            assert!(
                (got - want).abs() < 0.03,
                "{k} normals, priority {p}: {got:.3}, documented {want}"
            );
        }
    }
}

#[test]
fn a_lone_thread_runs_without_timer_until_company_arrives() {
    let specs = [
        Spec {
            priority: Priority::NORMAL,
            arrive: 0,
            bursts: vec![Burst {
                run: 10 * MS,
                after: After::Block(MS),
            }],
        },
        Spec {
            priority: Priority::NORMAL,
            arrive: 3 * MS,
            bursts: vec![Burst {
                run: 200 * US,
                after: After::Block(10 * MS),
            }],
        },
    ];
    let trace = simulate(P, &specs, 8 * MS);
    let p = &trace.picks;
    assert_eq!(
        (p[0].at, p[0].decision.id, p[0].decision.timer),
        (0, 0, None)
    );
    // Company at 3 ms: thread 0 is preempted at once, thread 1 runs with a 500 µs timer.
    assert_eq!(trace.ends[0].kind, EndKind::WakePreempt);
    assert_eq!(
        (p[1].at, p[1].decision.id, p[1].decision.timer),
        (3 * MS, 1, Some(3 * MS + 500 * US))
    );
    // Thread 1 blocks after 200 µs, returning 300 µs; thread 0 resumes at once, alone again.
    assert_eq!(trace.ends[1].kind, EndKind::Block);
    assert_eq!(trace.ends[1].charge.unused_ns, 300 * US);
    assert_eq!(
        (p[2].at, p[2].decision.id, p[2].decision.timer),
        (3_200 * US, 0, None)
    );
}
