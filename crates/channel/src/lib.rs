//! The channel state machine: two endpoints, each with a bounded receive queue holding the
//! messages the other side sent (the water law: backpressure is buffer state; a send never
//! blocks).
//!
//! The kernel owns one [`Channel`] per `channel_create` and drives it from the system calls; the
//! logic lives here so the host can test it. It is generic over the handle payload `H` (the
//! kernel moves kernel-object references in messages, tests use integers) and over `M`, what
//! else travels with each message without the channel looking at it (the kernel keeps the
//! sender's ledger charge there). Payloads of up to [`INLINE_BYTES`] live inside the message
//! itself, so small messages cost no allocation.
//!
//! Guarantees of [`Channel`]:
//! - **Never blocks, never panics.** Every operation returns at once with a result; no input
//!   makes it panic. Queue storage grows with fallible allocation ([`SendErrorKind::NoMemory`]).
//! - **FIFO, no loss, no duplication.** Each endpoint delivers the messages sent to it in the
//!   order they were sent, each once. Messages queued for an endpoint are still delivered after
//!   the peer closes.
//! - **Bounded.** An endpoint's queue never holds more than [`Limits::max_messages`] messages
//!   nor more than [`Limits::max_bytes`] payload bytes; a send that would exceed either fails
//!   with [`SendErrorKind::Full`] exactly at capacity.
//! - **Handles are moved, never leaked or duplicated.** A message (with its handles) is, at every
//!   moment, in exactly one place: the caller's hands, a queue, a [`SendError`] handed back, a
//!   [`Channel::recv`] result, or the list [`Channel::close`] returns. Dropping a `Channel` drops
//!   what is still queued; the kernel closes both endpoints first.
//! - **Suspension is not closure.** A suspended endpoint still accepts sends into its queue; its
//!   peer's receives report [`RecvError::PeerSuspended`] once the queue is empty.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use abi::Error;
use abi::limits::{
    CHANNEL_MAX_BYTES, CHANNEL_MAX_MESSAGES, MAX_MESSAGE_BYTES, MAX_MESSAGE_HANDLES,
};
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use smallvec::SmallVec;

/// Payloads up to this size are stored inline in the [`Message`].
pub const INLINE_BYTES: usize = 32;

/// A message payload: inline up to [`INLINE_BYTES`], on the heap beyond.
pub type Payload = SmallVec<[u8; INLINE_BYTES]>;

/// One of a channel's two endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The first endpoint (`h0` of `channel_create`).
    A,
    /// The second endpoint (`h1` of `channel_create`).
    B,
}

impl Side {
    /// Both sides, `A` first.
    pub const BOTH: [Side; 2] = [Side::A, Side::B];

    /// The other endpoint.
    pub const fn peer(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    const fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// How much one endpoint's receive queue holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Most messages queued at once.
    pub max_messages: usize,
    /// Most payload bytes queued at once (handles are not counted). A single message larger
    /// than this can never fit and is refused as [`SendErrorKind::TooBig`].
    pub max_bytes: usize,
}

impl Limits {
    /// The ABI's limits: [`abi::limits::CHANNEL_MAX_MESSAGES`] and
    /// [`abi::limits::CHANNEL_MAX_BYTES`].
    pub const DEFAULT: Limits = Limits {
        max_messages: CHANNEL_MAX_MESSAGES,
        max_bytes: CHANNEL_MAX_BYTES,
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// A message: payload bytes, the handle payloads it moves, and what travels with it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Message<H, M = ()> {
    /// The payload; at most [`abi::limits::MAX_MESSAGE_BYTES`] to be sent.
    pub bytes: Payload,
    /// The moved objects; at most [`abi::limits::MAX_MESSAGE_HANDLES`] to be sent.
    pub handles: Vec<H>,
    /// Carried along untouched (the kernel: who pays for the queued bytes).
    pub meta: M,
}

impl<H, M: Default> Message<H, M> {
    /// A message from its parts (a payload that fits inline moves there).
    pub fn new(bytes: Vec<u8>, handles: Vec<H>) -> Message<H, M> {
        Message {
            bytes: Payload::from_vec(bytes),
            handles,
            meta: M::default(),
        }
    }
}

impl<H, M> Message<H, M> {
    /// A message whose payload is copied from `bytes` (inline when it fits).
    pub fn from_slice(bytes: &[u8], handles: Vec<H>, meta: M) -> Message<H, M> {
        Message {
            bytes: Payload::from_slice(bytes),
            handles,
            meta,
        }
    }
}

/// Why a send failed. Converts to the [`abi::Error`] of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SendErrorKind {
    /// The payload exceeds [`abi::limits::MAX_MESSAGE_BYTES`] or the queue's byte limit, or
    /// the message carries more than [`abi::limits::MAX_MESSAGE_HANDLES`] handles.
    TooBig,
    /// The peer's queue has no room for this message (by message count or by bytes).
    Full,
    /// The peer endpoint is closed (or the sending endpoint itself is).
    Closed,
    /// The peer's queue storage could not grow.
    NoMemory,
}

impl From<SendErrorKind> for Error {
    fn from(kind: SendErrorKind) -> Error {
        match kind {
            SendErrorKind::TooBig => Error::TooBig,
            SendErrorKind::Full => Error::Full,
            SendErrorKind::Closed => Error::Closed,
            SendErrorKind::NoMemory => Error::NoMemory,
        }
    }
}

/// A refused send: why, and the message handed back whole, so its handles are neither leaked
/// nor duplicated. (There is deliberately no `From<SendError<H>> for abi::Error`: converting
/// would drop the handles; use [`SendError::error`] and take the message back.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendError<H, M = ()> {
    /// Why the send failed.
    pub kind: SendErrorKind,
    /// The message that was not sent.
    pub message: Message<H, M>,
}

impl<H, M> SendError<H, M> {
    /// The system-call error for this failure.
    pub fn error(&self) -> Error {
        self.kind.into()
    }

    /// The message that was not sent.
    pub fn into_message(self) -> Message<H, M> {
        self.message
    }
}

/// Why a receive returned no message. Converts to the [`abi::Error`] of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecvError {
    /// Nothing is queued and the peer is open: try later (or block, in the kernel).
    Empty,
    /// Nothing is queued and the peer is closed (or this endpoint is): nothing will ever come.
    Closed,
    /// Nothing is queued and the peer is suspended.
    PeerSuspended,
}

impl From<RecvError> for Error {
    fn from(e: RecvError) -> Error {
        match e {
            RecvError::Empty => Error::Empty,
            RecvError::Closed => Error::Closed,
            RecvError::PeerSuspended => Error::PeerSuspended,
        }
    }
}

/// The endpoint named in a [`Channel::suspend`] or [`Channel::resume`] is closed. Converts to
/// [`abi::Error::Closed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointClosed;

impl From<EndpointClosed> for Error {
    fn from(_: EndpointClosed) -> Error {
        Error::Closed
    }
}

/// An endpoint's life-cycle state. `Open ⇄ Suspended`, and either `→ Closed` for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndpointState {
    /// Active.
    Open,
    /// Dormant: its process is suspended. It still accepts sends into its queue.
    Suspended,
    /// Closed: it accepts nothing and its queue is empty.
    Closed,
}

/// Room left in an endpoint's receive queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Room {
    /// How many more messages fit.
    pub messages: usize,
    /// How many more payload bytes fit.
    pub bytes: usize,
}

/// One endpoint: its state and the queue of messages sent to it.
#[derive(Debug)]
struct Endpoint<H, M> {
    state: EndpointState,
    queue: VecDeque<Message<H, M>>,
    /// Sum of the payload lengths in `queue`.
    bytes: usize,
}

impl<H, M> Endpoint<H, M> {
    const fn new() -> Endpoint<H, M> {
        Endpoint {
            state: EndpointState::Open,
            queue: VecDeque::new(),
            bytes: 0,
        }
    }
}

/// A channel: two endpoints, each with a bounded receive queue. See the crate docs for what it
/// guarantees.
#[derive(Debug)]
pub struct Channel<H, M = ()> {
    ends: [Endpoint<H, M>; 2],
    limits: Limits,
}

impl<H, M> Default for Channel<H, M> {
    fn default() -> Channel<H, M> {
        Channel::new(Limits::DEFAULT)
    }
}

impl<H, M> Channel<H, M> {
    /// A channel with both endpoints open and empty, each queue bounded by `limits`. Allocates
    /// nothing (queues grow on demand).
    pub const fn new(limits: Limits) -> Channel<H, M> {
        Channel {
            ends: [Endpoint::new(), Endpoint::new()],
            limits,
        }
    }

    /// The per-queue limits.
    pub const fn limits(&self) -> Limits {
        self.limits
    }

    const fn end(&self, side: Side) -> &Endpoint<H, M> {
        &self.ends[side.index()]
    }

    const fn end_mut(&mut self, side: Side) -> &mut Endpoint<H, M> {
        &mut self.ends[side.index()]
    }

    /// Whether a message of `bytes` payload bytes and `handles` handles sent from `from` would
    /// be accepted now, without sending anything. In order: [`SendErrorKind::TooBig`] for a
    /// message over the limits, [`SendErrorKind::Closed`] when either endpoint is closed,
    /// [`SendErrorKind::Full`] when the peer's queue lacks room. A subsequent
    /// [`send`](Self::send) of such a message succeeds unless the queue's storage cannot grow
    /// ([`SendErrorKind::NoMemory`]).
    pub fn check_send(
        &self,
        from: Side,
        bytes: usize,
        handles: usize,
    ) -> Result<(), SendErrorKind> {
        if bytes > MAX_MESSAGE_BYTES
            || bytes > self.limits.max_bytes
            || handles > MAX_MESSAGE_HANDLES
        {
            return Err(SendErrorKind::TooBig);
        }
        let peer = self.end(from.peer());
        if self.end(from).state == EndpointState::Closed || peer.state == EndpointState::Closed {
            return Err(SendErrorKind::Closed);
        }
        let fits_bytes = peer
            .bytes
            .checked_add(bytes)
            .is_some_and(|total| total <= self.limits.max_bytes);
        if peer.queue.len() >= self.limits.max_messages || !fits_bytes {
            return Err(SendErrorKind::Full);
        }
        Ok(())
    }

    /// Queues `msg` for the peer of `from` and returns at once. Fails as
    /// [`check_send`](Self::check_send) says, or with [`SendErrorKind::NoMemory`]; on failure
    /// the message is handed back inside the error and the channel is unchanged. A suspended
    /// peer accepts the message.
    pub fn send(&mut self, from: Side, msg: Message<H, M>) -> Result<(), SendError<H, M>> {
        if let Err(kind) = self.check_send(from, msg.bytes.len(), msg.handles.len()) {
            return Err(SendError { kind, message: msg });
        }
        let peer = self.end_mut(from.peer());
        if peer.queue.try_reserve(1).is_err() {
            return Err(SendError {
                kind: SendErrorKind::NoMemory,
                message: msg,
            });
        }
        // `check_send` ruled out overflow.
        peer.bytes += msg.bytes.len();
        peer.queue.push_back(msg);
        Ok(())
    }

    /// Whether a message of `bytes` payload bytes and no handles sent from `from` may skip the
    /// queue and go straight to a receiver waiting on the peer: the send would be accepted
    /// ([`check_send`](Self::check_send)), nothing is queued for the peer (so FIFO order
    /// holds), and both endpoints are open (a suspended peer keeps its messages queued). Such
    /// a message is received the moment it is sent; the channel never holds it.
    pub fn can_deliver(&self, from: Side, bytes: usize) -> bool {
        let peer = self.end(from.peer());
        // With nothing queued for the peer, `check_send` comes down to the size limits and a
        // queue that has room for a message at all (written out: the message-passing fast
        // path asks this on every send).
        peer.queue.is_empty()
            && peer.state == EndpointState::Open
            && self.end(from).state == EndpointState::Open
            && bytes <= MAX_MESSAGE_BYTES
            && peer
                .bytes
                .checked_add(bytes)
                .is_some_and(|total| total <= self.limits.max_bytes)
            && self.limits.max_messages > 0
    }

    /// The oldest message queued for `side`, if any, without taking it: the kernel sizes its
    /// copy-out and reserves handle-table slots before it receives.
    pub fn peek(&self, side: Side) -> Option<&Message<H, M>> {
        self.end(side).queue.front()
    }

    /// The messages queued for `side`, oldest first, without taking them (what a suspended
    /// process's image records).
    pub fn queued(&self, side: Side) -> impl Iterator<Item = &Message<H, M>> + '_ {
        self.end(side).queue.iter()
    }

    /// Takes the oldest message queued for `side`. With nothing queued:
    /// [`RecvError::Closed`] when the peer (or `side` itself) is closed,
    /// [`RecvError::PeerSuspended`] when the peer is suspended, [`RecvError::Empty`] otherwise.
    pub fn recv(&mut self, side: Side) -> Result<Message<H, M>, RecvError> {
        let end = self.end_mut(side);
        if let Some(msg) = end.queue.pop_front() {
            end.bytes = end.bytes.saturating_sub(msg.bytes.len());
            return Ok(msg);
        }
        if end.state == EndpointState::Closed {
            return Err(RecvError::Closed);
        }
        match self.end(side.peer()).state {
            EndpointState::Closed => Err(RecvError::Closed),
            EndpointState::Suspended => Err(RecvError::PeerSuspended),
            EndpointState::Open => Err(RecvError::Empty),
        }
    }

    /// Closes `side` for good and returns the messages that were queued for it, oldest first
    /// (the kernel closes the handles inside them). Messages `side` sent that its peer has not
    /// received stay queued for the peer. Closing a closed endpoint returns nothing. Once both
    /// endpoints are closed the channel is [dead](Self::is_dead) and holds no messages.
    pub fn close(&mut self, side: Side) -> Vec<Message<H, M>> {
        let end = self.end_mut(side);
        end.state = EndpointState::Closed;
        end.bytes = 0;
        Vec::from(core::mem::take(&mut end.queue))
    }

    /// Marks `side` dormant (its process is suspended). Idempotent;
    /// [`EndpointClosed`] if `side` is closed.
    pub fn suspend(&mut self, side: Side) -> Result<(), EndpointClosed> {
        self.set_active(side, EndpointState::Suspended)
    }

    /// Marks `side` active again. Idempotent; [`EndpointClosed`] if `side` is closed.
    pub fn resume(&mut self, side: Side) -> Result<(), EndpointClosed> {
        self.set_active(side, EndpointState::Open)
    }

    fn set_active(&mut self, side: Side, state: EndpointState) -> Result<(), EndpointClosed> {
        let end = self.end_mut(side);
        if end.state == EndpointState::Closed {
            return Err(EndpointClosed);
        }
        end.state = state;
        Ok(())
    }

    /// The state of `side`.
    pub const fn state(&self, side: Side) -> EndpointState {
        self.end(side).state
    }

    /// True when both endpoints are closed: the channel holds nothing and can be freed.
    pub fn is_dead(&self) -> bool {
        self.ends.iter().all(|e| e.state == EndpointState::Closed)
    }

    /// True when a message is queued for `side` (a [`recv`](Self::recv) would return it).
    pub fn readable(&self, side: Side) -> bool {
        !self.end(side).queue.is_empty()
    }

    /// True when `side` may send: both endpoints are not closed and the peer's queue has room
    /// for at least one more message of at least one byte. (A `wait` for writable wakes when
    /// any room appears; a larger message may still get [`SendErrorKind::Full`]: see
    /// [`room`](Self::room).)
    pub fn writable(&self, side: Side) -> bool {
        let room = self.room(side.peer());
        self.end(side).state != EndpointState::Closed
            && self.end(side.peer()).state != EndpointState::Closed
            && room.messages > 0
            && room.bytes > 0
    }

    /// Room left in the receive queue of `side` (what its peer can still send to it).
    pub fn room(&self, side: Side) -> Room {
        let end = self.end(side);
        Room {
            messages: self.limits.max_messages.saturating_sub(end.queue.len()),
            bytes: self.limits.max_bytes.saturating_sub(end.bytes),
        }
    }

    /// True when the peer of `side` is closed.
    pub fn peer_closed(&self, side: Side) -> bool {
        self.end(side.peer()).state == EndpointState::Closed
    }

    /// True when the peer of `side` is suspended.
    pub fn peer_suspended(&self, side: Side) -> bool {
        self.end(side.peer()).state == EndpointState::Suspended
    }

    /// Payload bytes queued for `side` (to charge to a resource ledger).
    pub fn queued_bytes(&self, side: Side) -> usize {
        self.end(side).bytes
    }

    /// Messages queued for `side`.
    pub fn queued_messages(&self, side: Side) -> usize {
        self.end(side).queue.len()
    }
}

#[cfg(test)]
mod tests;
