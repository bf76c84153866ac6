//! Host tests for the channel state machine: unit tests for each rule, and a property test that
//! runs random interleavings of send/recv/close/suspend/resume on both sides against a queue
//! model (FIFO, no loss, no duplication, `Full` exactly at capacity, every handle accounted for
//! exactly once).

extern crate std;

use super::*;
use alloc::vec;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn msg(bytes: usize, handles: &[u32]) -> Message<u32> {
    Message::new(vec![0xAB; bytes], handles.to_vec())
}

fn small(max_messages: usize, max_bytes: usize) -> Channel<u32> {
    Channel::new(Limits {
        max_messages,
        max_bytes,
    })
}

#[test]
fn messages_flow_both_ways_in_order() {
    let mut c = Channel::default();
    c.send(Side::A, msg(1, &[1])).unwrap();
    c.send(Side::A, msg(2, &[2, 3])).unwrap();
    c.send(Side::B, msg(3, &[])).unwrap();
    assert_eq!(c.queued_messages(Side::B), 2);
    assert_eq!(c.queued_bytes(Side::B), 3);
    assert_eq!(c.peek(Side::B), Some(&msg(1, &[1])));
    assert_eq!(c.recv(Side::B), Ok(msg(1, &[1])));
    assert_eq!(c.recv(Side::B), Ok(msg(2, &[2, 3])));
    assert_eq!(c.recv(Side::B), Err(RecvError::Empty));
    assert_eq!(c.recv(Side::A), Ok(msg(3, &[])));
    assert_eq!(c.recv(Side::A), Err(RecvError::Empty));
    assert_eq!(
        (c.queued_bytes(Side::B), c.queued_messages(Side::B)),
        (0, 0)
    );
    assert_eq!(c.peek(Side::A), None);
}

#[test]
fn full_exactly_at_the_message_count() {
    let mut c: Channel<u32> = Channel::default();
    for i in 0..CHANNEL_MAX_MESSAGES {
        assert!(c.writable(Side::A));
        c.send(Side::A, msg(0, &[i as u32])).unwrap();
    }
    assert!(!c.writable(Side::A));
    let err = c.send(Side::A, msg(0, &[99])).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Full);
    assert_eq!(err.error(), Error::Full);
    assert_eq!(err.into_message(), msg(0, &[99]));
    assert!(c.writable(Side::B), "the other direction is independent");
    c.recv(Side::B).unwrap();
    assert!(c.writable(Side::A));
    c.send(Side::A, msg(0, &[])).unwrap();
}

#[test]
fn full_exactly_at_the_byte_count() {
    let mut c: Channel<u32> = Channel::default();
    let per = MAX_MESSAGE_BYTES;
    for _ in 0..CHANNEL_MAX_BYTES / per {
        c.send(Side::B, msg(per, &[])).unwrap();
    }
    assert_eq!(c.queued_bytes(Side::A), CHANNEL_MAX_BYTES);
    assert_eq!(c.room(Side::A).bytes, 0);
    assert!(!c.writable(Side::B));
    assert_eq!(c.check_send(Side::B, 1, 0), Err(SendErrorKind::Full));
    assert_eq!(
        c.send(Side::B, msg(1, &[])).unwrap_err().kind,
        SendErrorKind::Full
    );
    // A payload-free message still fits: only the count bounds it.
    assert_eq!(c.check_send(Side::B, 0, 0), Ok(()));

    let mut c = small(10, 100);
    c.send(Side::A, msg(60, &[])).unwrap();
    assert_eq!(c.check_send(Side::A, 41, 0), Err(SendErrorKind::Full));
    c.send(Side::A, msg(40, &[])).unwrap();
    assert_eq!(
        c.room(Side::B),
        Room {
            messages: 8,
            bytes: 0
        }
    );
}

#[test]
fn too_big_is_refused_first_and_handed_back() {
    let mut c: Channel<u32> = Channel::default();
    let big = msg(MAX_MESSAGE_BYTES + 1, &[1]);
    let err = c.send(Side::A, big.clone()).unwrap_err();
    assert_eq!((err.kind, err.message), (SendErrorKind::TooBig, big));
    let many: Vec<u32> = (0..=MAX_MESSAGE_HANDLES as u32).collect();
    assert_eq!(
        c.send(Side::A, msg(0, &many)).unwrap_err().kind,
        SendErrorKind::TooBig
    );
    c.send(
        Side::A,
        msg(MAX_MESSAGE_BYTES, &many[..MAX_MESSAGE_HANDLES]),
    )
    .unwrap();
    // Bigger than the whole queue: it could never fit, so it is too big, not full.
    assert_eq!(
        small(4, 10).check_send(Side::A, 11, 0),
        Err(SendErrorKind::TooBig)
    );
    c.close(Side::B);
    assert_eq!(
        c.check_send(Side::A, MAX_MESSAGE_BYTES + 1, 0),
        Err(SendErrorKind::TooBig)
    );
}

#[test]
fn direct_delivery_only_past_an_empty_queue_between_open_endpoints() {
    let mut c = small(2, 16);
    assert!(c.can_deliver(Side::A, 16));
    assert!(
        !c.can_deliver(Side::A, 17),
        "larger than the queue could ever hold"
    );
    // Something queued for B: a direct delivery would overtake it.
    c.send(Side::A, msg(1, &[])).unwrap();
    assert!(!c.can_deliver(Side::A, 1));
    // The other direction is independent.
    assert!(c.can_deliver(Side::B, 1));
    assert_eq!(c.recv(Side::B), Ok(msg(1, &[])));
    assert!(c.can_deliver(Side::A, 1));
    // A suspended receiver keeps its messages queued; closed endpoints take nothing.
    c.suspend(Side::B).unwrap();
    assert!(!c.can_deliver(Side::A, 1));
    c.resume(Side::B).unwrap();
    assert!(c.can_deliver(Side::A, 1));
    let _ = c.close(Side::A);
    assert!(!c.can_deliver(Side::A, 1));
    assert!(!c.can_deliver(Side::B, 1));
    let mut zero = small(0, 16);
    assert!(
        !zero.can_deliver(Side::A, 1),
        "no room at all: Full, not delivered"
    );
    let _ = zero.close(Side::B);
}

#[test]
fn direct_delivery_agrees_with_check_send() {
    for (max_messages, max_bytes) in [(0, 16), (1, 0), (1, 16), (4, 10), (4, MAX_MESSAGE_BYTES)] {
        for state in 0..4 {
            let mut c = small(max_messages, max_bytes);
            match state {
                1 => c.suspend(Side::B).unwrap(),
                2 => drop(c.close(Side::B)),
                3 => drop(c.close(Side::A)),
                _ => {}
            }
            for bytes in [
                0,
                1,
                9,
                10,
                11,
                16,
                17,
                MAX_MESSAGE_BYTES,
                MAX_MESSAGE_BYTES + 1,
            ] {
                let expected = c.peek(Side::B).is_none()
                    && state == 0
                    && c.check_send(Side::A, bytes, 0).is_ok();
                assert_eq!(
                    c.can_deliver(Side::A, bytes),
                    expected,
                    "limits ({max_messages}, {max_bytes}), state {state}, {bytes} bytes"
                );
            }
        }
    }
}

#[test]
fn close_drains_its_own_queue_and_peers_still_receive() {
    let mut c: Channel<u32> = Channel::default();
    c.send(Side::A, msg(1, &[1])).unwrap();
    c.send(Side::A, msg(2, &[2])).unwrap();
    c.send(Side::B, msg(3, &[3])).unwrap();
    assert_eq!(c.close(Side::A), vec![msg(3, &[3])]);
    assert_eq!(c.state(Side::A), EndpointState::Closed);
    assert!(c.peer_closed(Side::B));
    assert!(!c.writable(Side::B));
    assert_eq!(
        c.send(Side::B, msg(4, &[4])).unwrap_err().kind,
        SendErrorKind::Closed
    );
    assert_eq!(
        c.send(Side::A, msg(4, &[4])).unwrap_err().kind,
        SendErrorKind::Closed
    );
    // What A sent before closing is still delivered, then `Closed`.
    assert!(c.readable(Side::B));
    assert_eq!(c.recv(Side::B), Ok(msg(1, &[1])));
    assert_eq!(c.recv(Side::B), Ok(msg(2, &[2])));
    assert_eq!(c.recv(Side::B), Err(RecvError::Closed));
    assert_eq!(c.recv(Side::A), Err(RecvError::Closed));
    assert!(!c.is_dead());
    assert_eq!(
        c.close(Side::A),
        Vec::new(),
        "closing twice returns nothing"
    );
    assert_eq!(c.close(Side::B), Vec::new());
    assert!(c.is_dead());
    assert_eq!(c.suspend(Side::A), Err(EndpointClosed));
    assert_eq!(c.resume(Side::B), Err(EndpointClosed));
}

#[test]
fn closing_with_undelivered_messages_both_ways() {
    let mut c: Channel<u32> = Channel::default();
    c.send(Side::A, msg(1, &[1])).unwrap();
    c.send(Side::B, msg(1, &[2])).unwrap();
    assert_eq!(c.close(Side::B), vec![msg(1, &[1])]);
    assert_eq!(c.close(Side::A), vec![msg(1, &[2])]);
    assert!(c.is_dead());
    assert_eq!(c.queued_bytes(Side::A) + c.queued_bytes(Side::B), 0);
}

#[test]
fn suspended_peers_accept_sends_and_report_on_empty_receive() {
    let mut c: Channel<u32> = Channel::default();
    c.suspend(Side::B).unwrap();
    c.suspend(Side::B).unwrap();
    assert_eq!(c.state(Side::B), EndpointState::Suspended);
    assert!(c.peer_suspended(Side::A) && !c.peer_closed(Side::A));
    assert!(c.writable(Side::A));
    c.send(Side::A, msg(5, &[7])).unwrap();
    c.send(Side::A, msg(6, &[])).unwrap();
    assert_eq!(c.queued_messages(Side::B), 2);
    // The image of the suspended side lists its queue, oldest first, without taking it.
    let listed: Vec<usize> = c.queued(Side::B).map(|m| m.bytes.len()).collect();
    assert_eq!(listed, [5, 6]);
    assert_eq!(c.queued(Side::A).count(), 0);
    assert_eq!(c.queued_messages(Side::B), 2);
    assert_eq!(c.recv(Side::A), Err(RecvError::PeerSuspended));
    c.resume(Side::B).unwrap();
    assert!(!c.peer_suspended(Side::A));
    assert_eq!(c.recv(Side::A), Err(RecvError::Empty));
    assert_eq!(c.recv(Side::B), Ok(msg(5, &[7])));
    assert_eq!(c.recv(Side::B), Ok(msg(6, &[])));
    // A suspended endpoint can be closed (its process dies while suspended).
    c.suspend(Side::A).unwrap();
    assert_eq!(c.close(Side::A), Vec::new());
    assert_eq!(c.recv(Side::B), Err(RecvError::Closed));
}

#[test]
fn zero_limits_refuse_without_panicking() {
    let mut c = small(0, 0);
    assert_eq!(
        c.send(Side::A, msg(0, &[1])).unwrap_err().kind,
        SendErrorKind::Full
    );
    assert_eq!(
        c.send(Side::A, msg(1, &[1])).unwrap_err().kind,
        SendErrorKind::TooBig
    );
    assert!(!c.writable(Side::A));
    let mut c = Channel::new(Limits {
        max_messages: usize::MAX,
        max_bytes: usize::MAX,
    });
    c.send(Side::A, msg(MAX_MESSAGE_BYTES, &[])).unwrap();
    c.ends[1].bytes = usize::MAX - 1; // Pretend the queue is (impossibly) near the top.
    assert_eq!(c.check_send(Side::A, 2, 0), Err(SendErrorKind::Full));
}

#[test]
fn errors_map_to_the_abi() {
    assert_eq!(Error::from(SendErrorKind::TooBig), Error::TooBig);
    assert_eq!(Error::from(SendErrorKind::Full), Error::Full);
    assert_eq!(Error::from(SendErrorKind::Closed), Error::Closed);
    assert_eq!(Error::from(SendErrorKind::NoMemory), Error::NoMemory);
    assert_eq!(Error::from(RecvError::Empty), Error::Empty);
    assert_eq!(Error::from(RecvError::Closed), Error::Closed);
    assert_eq!(Error::from(RecvError::PeerSuspended), Error::PeerSuspended);
    assert_eq!(Error::from(EndpointClosed), Error::Closed);
    assert_eq!(Limits::default(), Limits::DEFAULT);
    assert_eq!(Side::A.peer(), Side::B);
    assert_eq!(Side::B.peer(), Side::A);
}

#[derive(Clone, Debug)]
enum Op {
    Send {
        from: Side,
        bytes: usize,
        handles: usize,
    },
    Recv(Side),
    Close(Side),
    Suspend(Side),
    Resume(Side),
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::A), Just(Side::B)]
}

fn op() -> impl Strategy<Value = Op> {
    let bytes = prop_oneof![
        12 => 0usize..48,
        1 => Just(MAX_MESSAGE_BYTES + 1),
    ];
    prop_oneof![
        10 => (side(), bytes, 0usize..=MAX_MESSAGE_HANDLES + 1)
            .prop_map(|(from, bytes, handles)| Op::Send { from, bytes, handles }),
        8 => side().prop_map(Op::Recv),
        1 => side().prop_map(Op::Close),
        1 => side().prop_map(Op::Suspend),
        1 => side().prop_map(Op::Resume),
    ]
}

/// The model of one endpoint: its state and the messages queued for it.
#[derive(Clone)]
struct End {
    state: EndpointState,
    queue: std::collections::VecDeque<Message<u32>>,
}

impl End {
    fn bytes(&self) -> usize {
        self.queue.iter().map(|m| m.bytes.len()).sum()
    }
}

/// Where each handle ended up; each must be counted exactly once.
#[derive(Default)]
struct Ledger {
    issued: u32,
    seen: BTreeMap<u32, usize>,
}

impl Ledger {
    fn fresh(&mut self, n: usize) -> Vec<u32> {
        (0..n)
            .map(|_| {
                self.issued += 1;
                self.issued
            })
            .collect()
    }

    fn account(&mut self, m: &Message<u32>) {
        for h in &m.handles {
            *self.seen.entry(*h).or_default() += 1;
        }
    }
}

fn expected_send(
    l: Limits,
    ends: &[End; 2],
    from: Side,
    bytes: usize,
    handles: usize,
) -> Result<(), SendErrorKind> {
    let peer = &ends[from.peer().index()];
    if bytes > MAX_MESSAGE_BYTES || bytes > l.max_bytes || handles > MAX_MESSAGE_HANDLES {
        Err(SendErrorKind::TooBig)
    } else if ends[from.index()].state == EndpointState::Closed
        || peer.state == EndpointState::Closed
    {
        Err(SendErrorKind::Closed)
    } else if peer.queue.len() + 1 > l.max_messages || peer.bytes() + bytes > l.max_bytes {
        Err(SendErrorKind::Full)
    } else {
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random interleavings agree with a queue model, and every handle ends up exactly once in
    /// a delivered message, a refused send, or a close drain.
    #[test]
    fn matches_a_queue_model(
        max_messages in 0usize..6,
        max_bytes in 0usize..160,
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let limits = Limits { max_messages, max_bytes };
        let mut c: Channel<u32> = Channel::new(limits);
        let open = End { state: EndpointState::Open, queue: Default::default() };
        let mut ends = [open.clone(), open];
        let mut ledger = Ledger::default();
        let mut serial = 0u8;

        for op in ops {
            match op {
                Op::Send { from, bytes, handles } => {
                    serial = serial.wrapping_add(1);
                    let m = Message::new(vec![serial; bytes], ledger.fresh(handles));
                    let want = expected_send(limits, &ends, from, bytes, handles);
                    prop_assert_eq!(c.check_send(from, bytes, handles), want);
                    match c.send(from, m.clone()) {
                        Ok(()) => {
                            prop_assert_eq!(want, Ok(()));
                            ends[from.peer().index()].queue.push_back(m);
                        }
                        Err(e) => {
                            prop_assert_eq!(Err(e.kind), want);
                            prop_assert_eq!(&e.message, &m, "the refused message comes back whole");
                            ledger.account(&e.message);
                        }
                    }
                }
                Op::Recv(side) => {
                    let me = &mut ends[side.index()];
                    let want = match me.queue.pop_front() {
                        Some(m) => Ok(m),
                        None if me.state == EndpointState::Closed => Err(RecvError::Closed),
                        None => match ends[side.peer().index()].state {
                            EndpointState::Closed => Err(RecvError::Closed),
                            EndpointState::Suspended => Err(RecvError::PeerSuspended),
                            EndpointState::Open => Err(RecvError::Empty),
                        },
                    };
                    prop_assert_eq!(c.peek(side), want.as_ref().ok());
                    let got = c.recv(side);
                    prop_assert_eq!(&got, &want, "FIFO order and receive status");
                    if let Ok(m) = &got {
                        ledger.account(m);
                    }
                }
                Op::Close(side) => {
                    let me = &mut ends[side.index()];
                    me.state = EndpointState::Closed;
                    let want: Vec<Message<u32>> = me.queue.drain(..).collect();
                    let got = c.close(side);
                    prop_assert_eq!(&got, &want);
                    for m in &got {
                        ledger.account(m);
                    }
                }
                Op::Suspend(side) | Op::Resume(side) => {
                    let to = if matches!(op, Op::Suspend(_)) {
                        EndpointState::Suspended
                    } else {
                        EndpointState::Open
                    };
                    let me = &mut ends[side.index()];
                    let want = if me.state == EndpointState::Closed {
                        Err(EndpointClosed)
                    } else {
                        me.state = to;
                        Ok(())
                    };
                    let got = if to == EndpointState::Suspended { c.suspend(side) } else { c.resume(side) };
                    prop_assert_eq!(got, want);
                }
            }

            for side in Side::BOTH {
                let me = &ends[side.index()];
                let peer = &ends[side.peer().index()];
                prop_assert_eq!(c.state(side), me.state);
                prop_assert_eq!(c.queued_messages(side), me.queue.len());
                prop_assert_eq!(c.queued_bytes(side), me.bytes());
                prop_assert!(c.queued_messages(side) <= max_messages);
                prop_assert!(c.queued_bytes(side) <= max_bytes);
                prop_assert_eq!(c.readable(side), !me.queue.is_empty());
                prop_assert_eq!(c.peer_closed(side), peer.state == EndpointState::Closed);
                prop_assert_eq!(c.peer_suspended(side), peer.state == EndpointState::Suspended);
                let writable = me.state != EndpointState::Closed
                    && peer.state != EndpointState::Closed
                    && peer.queue.len() < max_messages
                    && peer.bytes() < max_bytes;
                prop_assert_eq!(c.writable(side), writable);
                if me.state == EndpointState::Closed {
                    prop_assert!(me.queue.is_empty());
                }
            }
            prop_assert_eq!(
                c.is_dead(),
                ends.iter().all(|e| e.state == EndpointState::Closed)
            );
        }

        // Close what is left: every handle issued must now be accounted for exactly once.
        for side in Side::BOTH {
            for m in c.close(side) {
                ledger.account(&m);
            }
        }
        prop_assert!(c.is_dead());
        prop_assert_eq!(ledger.seen.len() as u32, ledger.issued, "a handle was lost");
        for (h, n) in &ledger.seen {
            prop_assert!(*h >= 1 && *h <= ledger.issued, "an unknown handle appeared");
            prop_assert_eq!(*n, 1, "handle {} seen {} times", h, n);
        }
    }
}
