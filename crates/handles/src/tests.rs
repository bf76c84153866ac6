//! Host tests for the handle table: unit tests for each operation, and a property test that runs
//! random operation sequences against a map model (stale handles never resolve, no two live
//! handles share a slot, counts agree, failed batch operations leave the table unchanged).

extern crate std;

use super::*;
use alloc::vec;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const RW: Rights = Rights(Rights::SEND.0 | Rights::RECV.0);

fn snapshot(t: &HandleTable<u32>) -> Vec<(Handle, u32, Rights)> {
    t.iter().map(|(h, v, r)| (h, *v, r)).collect()
}

#[test]
fn first_insert_is_the_parent_handle() {
    let mut t = HandleTable::new(4);
    assert_eq!(t.insert(10u32, Rights::CHANNEL_ALL), Ok(Handle::PARENT));
    assert_eq!(t.insert(11, RW), Ok(Handle::new(1, 0)));
    assert_eq!(t.get(Handle::PARENT), Ok((&10, Rights::CHANNEL_ALL)));
    assert_eq!((t.len(), t.free_slots(), t.capacity()), (2, 2, 4));
}

#[test]
fn a_watched_table_counts_removals_rights_changes_and_mutable_access() {
    let mut t = HandleTable::new(8);
    let a = t.insert(1u32, RW).unwrap();
    let b = t.insert(2u32, RW).unwrap();
    assert!(t.watcher().is_none());
    let start = t.watch();
    let w = t.watcher().unwrap();
    let seen = |w: &Arc<AtomicU64>| w.load(Ordering::Acquire);
    assert_eq!(seen(&w), start);
    // Looking and inserting leave look-ups valid.
    let _ = t.check(a, Rights::SEND);
    let c = t.insert(3u32, RW).unwrap();
    assert_eq!(seen(&w), start);
    assert_eq!(t.watch(), start);
    assert!(Arc::ptr_eq(&w, &t.watcher().unwrap()));
    let _ = t.remove(c);
    assert_ne!(seen(&w), start);
    let v = seen(&w);
    let _ = t.reduce_rights(b, Rights::SEND);
    assert_ne!(seen(&w), v);
    let v = seen(&w);
    let _ = t.get_mut(a);
    assert_ne!(seen(&w), v);
    let v = seen(&w);
    let _ = t.remove_many(&[a], Rights::NONE);
    assert_ne!(seen(&w), v);
    let v = seen(&w);
    let _: Vec<_> = t.drain().collect();
    assert_ne!(seen(&w), v);
}

#[test]
fn new_allocates_nothing_and_clamps_capacity() {
    let t: HandleTable<u32> = HandleTable::new(usize::MAX);
    assert_eq!(t.capacity(), MAX_HANDLES);
    assert!(t.is_empty());
    assert_eq!(t.slots.capacity(), 0);
}

#[test]
fn removed_handles_are_stale_and_slots_are_reused_lowest_first() {
    let mut t = HandleTable::new(4);
    let a = t.insert(1u32, RW).unwrap();
    let b = t.insert(2, RW).unwrap();
    assert_eq!(t.remove(a), Ok((1, RW)));
    assert_eq!(t.remove(a), Err(InvalidHandle));
    assert_eq!(t.get(a), Err(InvalidHandle));
    let c = t.insert(3, RW).unwrap();
    assert_eq!(
        c,
        Handle::new(0, 1),
        "slot 0 reused with the next generation"
    );
    assert_eq!(t.get(a), Err(InvalidHandle), "the old handle stays stale");
    assert_eq!(t.get(b), Ok((&2, RW)));
    assert_eq!(t.get(c), Ok((&3, RW)));
}

#[test]
fn out_of_range_and_never_issued_handles_are_invalid() {
    let mut t = HandleTable::new(4);
    t.insert(1u32, RW).unwrap();
    for h in [
        Handle::new(1, 0),
        Handle::new(3, 0),
        Handle::new(999, 0),
        Handle(u32::MAX),
    ] {
        assert_eq!(t.get(h), Err(InvalidHandle));
        assert_eq!(t.get_mut(h), Err(InvalidHandle));
        assert_eq!(t.check(h, Rights::NONE), Err(Error::InvalidHandle));
        assert_eq!(t.remove(h), Err(InvalidHandle));
        assert_eq!(t.reduce_rights(h, RW), Err(InvalidHandle));
        assert!(!t.contains(h));
    }
    assert_eq!(
        t.get(Handle::new(0, 1)),
        Err(InvalidHandle),
        "future generation"
    );
}

#[test]
fn full_table_hands_the_object_back() {
    let mut t = HandleTable::new(1);
    t.insert(1u32, RW).unwrap();
    assert_eq!(
        t.insert(2, RW),
        Err(Refused {
            error: InsertError::Full,
            value: 2
        })
    );
    let mut z: HandleTable<u32> = HandleTable::new(0);
    assert_eq!(
        z.insert(7, RW),
        Err(Refused {
            error: InsertError::Full,
            value: 7
        })
    );
    assert_eq!(z.reserve(0), Ok(()));
}

#[test]
fn check_distinguishes_missing_rights() {
    let mut t = HandleTable::new(2);
    let h = t.insert(5u32, Rights::SEND).unwrap();
    assert_eq!(t.check(h, Rights::SEND), Ok(&5));
    assert_eq!(t.check(h, Rights::NONE), Ok(&5));
    assert_eq!(t.check(h, RW), Err(Error::NoRights));
    assert_eq!(t.check_mut(h, Rights::RECV), Err(Error::NoRights));
    *t.check_mut(h, Rights::SEND).unwrap() = 6;
    *t.get_mut(h).unwrap().0 += 1;
    assert_eq!(t.get(h), Ok((&7, Rights::SEND)));
}

#[test]
fn rights_only_shrink() {
    let mut t = HandleTable::new(2);
    let h = t.insert(0u32, RW).unwrap();
    assert_eq!(t.reduce_rights(h, Rights::CHANNEL_ALL), Ok(RW));
    assert_eq!(
        t.reduce_rights(h, Rights::SEND.union(Rights::KILL)),
        Ok(Rights::SEND)
    );
    assert_eq!(t.reduce_rights(h, Rights::CHANNEL_ALL), Ok(Rights::SEND));
    assert_eq!(t.get(h).unwrap().1, Rights::SEND);
}

#[test]
fn insert_many_is_all_or_nothing() {
    let mut t = HandleTable::new(5);
    let a = t.insert(100u32, RW).unwrap();
    let _b = t.insert(101, RW).unwrap();
    t.remove(a).unwrap();
    let before = snapshot(&t);

    // Four objects do not fit in four free slots... they do; five do not.
    let five: Vec<(u32, Rights)> = (0..5).map(|i| (i, RW)).collect();
    let refused = t.insert_many(five.clone()).unwrap_err();
    assert_eq!(
        refused,
        Refused {
            error: InsertError::Full,
            value: five
        }
    );
    assert_eq!(snapshot(&t), before);

    let nine: Vec<(u32, Rights)> = (0..9).map(|i| (i, RW)).collect();
    let refused = t.insert_many(nine.clone()).unwrap_err();
    assert_eq!(
        refused,
        Refused {
            error: InsertError::TooMany,
            value: nine
        }
    );
    assert_eq!(snapshot(&t), before);

    let got = t
        .insert_many(vec![(1, RW), (2, Rights::SEND), (3, RW)])
        .unwrap();
    assert_eq!(
        got.as_slice(),
        &[Handle::new(0, 1), Handle::new(2, 0), Handle::new(3, 0)]
    );
    assert_eq!(t.get(got[1]), Ok((&2, Rights::SEND)));
    assert_eq!(t.len(), 4);
    assert!(t.insert_many(Vec::new()).unwrap().is_empty());
}

#[test]
fn reserve_guarantees_the_next_inserts() {
    let mut t = HandleTable::new(3);
    assert_eq!(t.reserve(4), Err(InsertError::Full));
    assert_eq!(t.reserve(3), Ok(()));
    assert!(t.is_empty(), "reserving adds no objects");
    for i in 0..3u32 {
        t.insert(i, RW).unwrap();
    }
    assert_eq!(t.reserve(1), Err(InsertError::Full));
    assert_eq!(t.reserve(0), Ok(()));
}

#[test]
fn remove_many_is_all_or_nothing() {
    let mut t = HandleTable::new(8);
    let a = t.insert(1u32, Rights::CHANNEL_ALL).unwrap();
    let b = t.insert(2, RW).unwrap();
    let c = t.insert(3, Rights::CHANNEL_ALL).unwrap();
    let before = snapshot(&t);

    assert_eq!(
        t.remove_many(&[a, b], Rights::TRANSFER),
        Err(Error::NoRights)
    );
    assert_eq!(
        t.remove_many(&[a, c, a], Rights::TRANSFER),
        Err(Error::InvalidHandle)
    );
    assert_eq!(
        t.remove_many(&[a, Handle::new(7, 0)], Rights::NONE),
        Err(Error::InvalidHandle)
    );
    assert_eq!(snapshot(&t), before);

    let taken = t.remove_many(&[c, a], Rights::TRANSFER).unwrap();
    assert_eq!(
        taken,
        vec![(3, Rights::CHANNEL_ALL), (1, Rights::CHANNEL_ALL)]
    );
    assert_eq!(t.len(), 1);
    assert!(!t.contains(a) && !t.contains(c) && t.contains(b));
    assert_eq!(t.remove_many(&[], Rights::TRANSFER), Ok(Vec::new()));
}

#[test]
fn restore_rolls_back_a_removal_only_while_the_slot_stayed_free() {
    let mut t = HandleTable::new(4);
    let a = t.insert(1u32, RW).unwrap();
    let b = t.insert(2, RW).unwrap();
    let moved = t.remove_many(&[a, b], Rights::NONE).unwrap();
    for (h, (obj, rights)) in [a, b].into_iter().zip(moved) {
        t.restore(h, obj, rights).unwrap();
    }
    assert_eq!(t.get(a), Ok((&1, RW)));
    assert_eq!(t.get(b), Ok((&2, RW)));
    assert_eq!(t.len(), 2);

    // Occupied slot.
    assert_eq!(
        t.restore(a, 9, RW),
        Err(Refused {
            error: InsertError::NotRestorable,
            value: 9
        })
    );
    // The slot was reused (and freed again) since `a` was removed.
    t.remove(a).unwrap();
    let a2 = t.insert(3, RW).unwrap();
    t.remove(a2).unwrap();
    assert_eq!(
        t.restore(a, 9, RW),
        Err(Refused {
            error: InsertError::NotRestorable,
            value: 9
        })
    );
    // Never-materialized slot, and a handle that was never removed.
    assert!(t.restore(Handle::new(200, 0), 9, RW).is_err());
    assert!(t.restore(Handle::new(2, 0), 9, RW).is_err());
    assert_eq!(t.len(), 1);
}

#[test]
fn drain_takes_everything_and_leaves_stale_handles() {
    let mut t = HandleTable::new(8);
    let hs: Vec<Handle> = (0..5u32).map(|i| t.insert(i, RW).unwrap()).collect();
    t.remove(hs[2]).unwrap();
    let drained: Vec<(Handle, u32, Rights)> = t.drain().collect();
    assert_eq!(
        drained,
        vec![
            (hs[0], 0, RW),
            (hs[1], 1, RW),
            (hs[3], 3, RW),
            (hs[4], 4, RW)
        ]
    );
    assert!(t.is_empty());
    assert_eq!(t.free_slots(), 8);
    for h in hs {
        assert_eq!(t.get(h), Err(InvalidHandle));
    }
    assert_eq!(t.insert(9, RW), Ok(Handle::new(0, 1)));
}

#[test]
fn a_dropped_drain_leaves_the_rest() {
    let mut t = HandleTable::new(4);
    let hs: Vec<Handle> = (0..3u32).map(|i| t.insert(i, RW).unwrap()).collect();
    let first = t.drain().next();
    assert_eq!(first, Some((hs[0], 0, RW)));
    assert_eq!(t.len(), 2);
    assert!(!t.contains(hs[0]) && t.contains(hs[1]) && t.contains(hs[2]));
}

#[test]
fn generation_wraps_to_one_and_handle_zero_never_returns() {
    let mut t = HandleTable::new(1);
    let first = t.insert(0u32, RW).unwrap();
    assert_eq!(first, Handle::PARENT);
    t.remove(first).unwrap();
    let mut seen_zero = false;
    let mut last = first;
    for i in 1..=(2 * u16::MAX as u32 + 3) {
        let h = t.insert(i, RW).unwrap();
        assert_eq!(h.index(), 0);
        assert_ne!(h, last);
        seen_zero |= h.generation() == 0;
        if h.generation() != u16::MAX {
            assert_eq!(
                t.get(Handle::new(0, h.generation() + 1)),
                Err(InvalidHandle)
            );
        }
        assert_eq!(t.get(Handle::PARENT), Err(InvalidHandle));
        last = h;
        t.remove(h).unwrap();
    }
    assert!(!seen_zero, "generation 0 is only ever the first occupant's");
    assert_eq!(next_generation(u16::MAX), 1);
    assert_eq!(next_generation(0), 1);
    assert_eq!(next_generation(41), 42);
}

#[test]
fn errors_map_to_the_abi() {
    assert_eq!(Error::from(InvalidHandle), Error::InvalidHandle);
    assert_eq!(Error::from(InsertError::Full), Error::Overloaded);
    assert_eq!(Error::from(InsertError::NoMemory), Error::NoMemory);
    assert_eq!(Error::from(InsertError::TooMany), Error::TooBig);
    assert_eq!(
        Error::from(InsertError::NotRestorable),
        Error::InvalidHandle
    );
}

/// Which handle an operation in the property test uses.
#[derive(Clone, Debug)]
enum Pick {
    /// A live handle (index into the model's live set, modulo its size).
    Live(usize),
    /// A handle that was removed (stale), modulo the dead list's size.
    Dead(usize),
    /// Any 32-bit value.
    Raw(u32),
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u32),
    InsertMany(usize, u32),
    Remove(Pick),
    RemoveMany(Vec<Pick>, u32),
    Restore(usize),
    Get(Pick),
    Check(Pick, u32),
    Reduce(Pick, u32),
    Reserve(usize),
    Drain(usize),
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        4 => any::<usize>().prop_map(Pick::Live),
        2 => any::<usize>().prop_map(Pick::Dead),
        1 => prop_oneof![(0u16..12, 0u16..4).prop_map(|(i, g)| Handle::new(i, g).0), any::<u32>()]
            .prop_map(Pick::Raw),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let rights = 0u32..32;
    prop_oneof![
        6 => rights.clone().prop_map(Op::Insert),
        2 => (0usize..10, rights.clone()).prop_map(|(n, r)| Op::InsertMany(n, r)),
        4 => pick().prop_map(Op::Remove),
        2 => (proptest::collection::vec(pick(), 0..5), rights.clone())
            .prop_map(|(p, r)| Op::RemoveMany(p, r)),
        1 => any::<usize>().prop_map(Op::Restore),
        3 => pick().prop_map(Op::Get),
        2 => (pick(), rights.clone()).prop_map(|(p, r)| Op::Check(p, r)),
        1 => (pick(), rights).prop_map(|(p, r)| Op::Reduce(p, r)),
        1 => (0usize..12).prop_map(Op::Reserve),
        1 => (0usize..4).prop_map(Op::Drain),
    ]
}

/// The model: what is live, what was removed, and which removed handle may be restored.
#[derive(Default)]
struct Model {
    /// Live objects by slot index.
    live: BTreeMap<u16, (Handle, u32, Rights)>,
    dead: Vec<Handle>,
    /// Per slot index, the handle last removed there, while the slot stays free since.
    restorable: BTreeMap<u16, Handle>,
    next_value: u32,
}

impl Model {
    fn resolve(&self, p: &Pick) -> Handle {
        match *p {
            Pick::Live(i) if !self.live.is_empty() => {
                self.live.values().nth(i % self.live.len()).unwrap().0
            }
            Pick::Dead(i) if !self.dead.is_empty() => self.dead[i % self.dead.len()],
            Pick::Raw(v) => Handle(v),
            _ => Handle(u32::MAX),
        }
    }

    fn lowest_free(&self, cap: usize) -> Option<u16> {
        (0..cap as u16).find(|i| !self.live.contains_key(i))
    }

    fn fresh(&mut self) -> u32 {
        self.next_value += 1;
        self.next_value
    }

    fn get(&self, h: Handle) -> Option<(u32, Rights)> {
        match self.live.get(&h.index()) {
            Some(&(live, v, r)) if live == h => Some((v, r)),
            _ => None,
        }
    }

    fn list(&self) -> Vec<(Handle, u32, Rights)> {
        self.live.values().copied().collect()
    }

    fn removed(&mut self, h: Handle) {
        self.live.remove(&h.index());
        self.dead.push(h);
        self.restorable.insert(h.index(), h);
    }

    fn inserted(&mut self, h: Handle, v: u32, r: Rights) {
        self.live.insert(h.index(), (h, v, r));
        self.restorable.remove(&h.index());
        self.dead.retain(|d| *d != h);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random operation sequences agree with the map model.
    #[test]
    fn matches_a_map_model(cap in 0usize..10, ops in proptest::collection::vec(op(), 1..200)) {
        let mut t: HandleTable<u32> = HandleTable::new(cap);
        let mut m = Model::default();
        for op in ops {
            match op {
                Op::Insert(r) => {
                    let v = m.fresh();
                    let want = m.lowest_free(cap);
                    match t.insert(v, Rights(r)) {
                        Ok(h) => {
                            prop_assert_eq!(Some(h.index()), want, "lowest free slot");
                            prop_assert!(!m.dead.contains(&h), "a stale handle was reissued");
                            m.inserted(h, v, Rights(r));
                        }
                        Err(e) => {
                            prop_assert_eq!(e, Refused { error: InsertError::Full, value: v });
                            prop_assert_eq!(want, None);
                        }
                    }
                }
                Op::InsertMany(n, r) => {
                    let items: Vec<(u32, Rights)> = (0..n).map(|_| (m.fresh(), Rights(r))).collect();
                    let before = snapshot(&t);
                    match t.insert_many(items.clone()) {
                        Ok(hs) => {
                            prop_assert_eq!(hs.len(), n);
                            for (h, (v, r)) in hs.iter().zip(items) {
                                prop_assert_eq!(Some(h.index()), m.lowest_free(cap));
                                prop_assert!(!m.dead.contains(h));
                                m.inserted(*h, v, r);
                            }
                        }
                        Err(refused) => {
                            let want = if n > MAX_MESSAGE_HANDLES {
                                InsertError::TooMany
                            } else {
                                InsertError::Full
                            };
                            prop_assert_eq!(refused.error, want);
                            prop_assert!(n > cap - m.live.len() || n > MAX_MESSAGE_HANDLES);
                            prop_assert_eq!(refused.value, items);
                            prop_assert_eq!(snapshot(&t), before, "failed batch changed the table");
                        }
                    }
                }
                Op::Remove(p) => {
                    let h = m.resolve(&p);
                    let want = m.get(h);
                    prop_assert_eq!(t.remove(h).ok(), want);
                    if want.is_some() {
                        m.removed(h);
                    }
                }
                Op::RemoveMany(ps, r) => {
                    let hs: Vec<Handle> = ps.iter().map(|p| m.resolve(p)).collect();
                    let needed = Rights(r);
                    let mut want = Ok(());
                    for (i, h) in hs.iter().enumerate() {
                        match m.get(*h) {
                            None => want = Err(Error::InvalidHandle),
                            Some((_, have)) if !have.contains(needed) => want = Err(Error::NoRights),
                            Some(_) if hs[..i].contains(h) => want = Err(Error::InvalidHandle),
                            Some(_) => continue,
                        }
                        break;
                    }
                    let before = snapshot(&t);
                    match t.remove_many(&hs, needed) {
                        Ok(got) => {
                            prop_assert_eq!(want, Ok(()));
                            for (h, entry) in hs.iter().zip(got) {
                                prop_assert_eq!(m.get(*h), Some(entry));
                                m.removed(*h);
                            }
                        }
                        Err(e) => {
                            prop_assert_eq!(want, Err(e));
                            prop_assert_eq!(snapshot(&t), before);
                        }
                    }
                }
                Op::Restore(i) => {
                    if m.dead.is_empty() {
                        continue;
                    }
                    let h = m.dead[i % m.dead.len()];
                    let ok = m.restorable.get(&h.index()) == Some(&h);
                    let v = m.fresh();
                    let got = t.restore(h, v, RW);
                    prop_assert_eq!(got.is_ok(), ok);
                    if ok {
                        m.inserted(h, v, RW);
                    } else {
                        prop_assert_eq!(got.unwrap_err().value, v);
                    }
                }
                Op::Get(p) => {
                    let h = m.resolve(&p);
                    let want = m.get(h).ok_or(InvalidHandle);
                    prop_assert_eq!(t.get(h).map(|(v, r)| (*v, r)), want);
                    prop_assert_eq!(t.contains(h), want.is_ok());
                }
                Op::Check(p, r) => {
                    let h = m.resolve(&p);
                    let want = match m.get(h) {
                        None => Err(Error::InvalidHandle),
                        Some((v, have)) if have.contains(Rights(r)) => Ok(v),
                        Some(_) => Err(Error::NoRights),
                    };
                    prop_assert_eq!(t.check(h, Rights(r)).copied(), want);
                }
                Op::Reduce(p, keep) => {
                    let h = m.resolve(&p);
                    match m.live.get_mut(&h.index()).filter(|e| e.0 == h) {
                        Some((_, _, have)) => {
                            *have = have.intersect(Rights(keep));
                            prop_assert_eq!(t.reduce_rights(h, Rights(keep)), Ok(*have));
                        }
                        None => prop_assert_eq!(t.reduce_rights(h, Rights(keep)), Err(InvalidHandle)),
                    }
                }
                Op::Reserve(n) => {
                    let before = snapshot(&t);
                    let want = if n <= cap - m.live.len() { Ok(()) } else { Err(InsertError::Full) };
                    prop_assert_eq!(t.reserve(n), want);
                    prop_assert_eq!(snapshot(&t), before);
                }
                Op::Drain(k) => {
                    let all = k == 0;
                    let got: Vec<(Handle, u32, Rights)> = if all {
                        t.drain().collect()
                    } else {
                        t.drain().take(k).collect()
                    };
                    let want: Vec<(Handle, u32, Rights)> =
                        m.list().into_iter().take(if all { usize::MAX } else { k }).collect();
                    prop_assert_eq!(&got, &want);
                    for (h, _, _) in got {
                        m.removed(h);
                    }
                }
            }

            // Invariants after every step.
            prop_assert_eq!(snapshot(&t), m.list(), "table and model disagree");
            prop_assert_eq!(t.len(), m.live.len());
            prop_assert_eq!(t.free_slots(), cap - m.live.len());
            let slots: BTreeSet<u16> = t.iter().map(|(h, _, _)| h.index()).collect();
            prop_assert_eq!(slots.len(), t.len(), "two live handles share a slot");
            for h in &m.dead {
                prop_assert_eq!(m.get(*h), None);
                prop_assert_eq!(t.get(*h), Err(InvalidHandle), "a stale handle resolved");
            }
        }
    }
}

#[test]
fn place_puts_objects_at_their_old_handles() {
    let mut t = HandleTable::new(8);
    let far = Handle::new(5, 7);
    t.place(far, 50, Rights::SEND).unwrap();
    t.place(Handle::new(0, 0), 1, Rights::RECV).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t.get(far), Ok((&50, Rights::SEND)));
    // A stale generation of the same slot does not resolve.
    assert!(t.get(Handle::new(5, 6)).is_err());
    // Occupied and out-of-capacity slots are refused, the object handed back.
    let e = t.place(far, 51, Rights::SEND).unwrap_err();
    assert_eq!((e.error, e.value), (InsertError::NotRestorable, 51));
    let e = t.place(Handle::new(8, 0), 52, Rights::SEND).unwrap_err();
    assert_eq!((e.error, e.value), (InsertError::Full, 52));
    // The free slots before it are ordinary free slots.
    assert_eq!(t.insert(2, Rights::SEND).unwrap(), Handle::new(1, 0));
    assert_eq!(t.remove(far), Ok((50, Rights::SEND)));
    assert_eq!(t.insert(3, Rights::SEND).unwrap().index(), 2);
}
