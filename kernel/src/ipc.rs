//! Channels as kernel objects (the water law): an [`Endpoint`] is one side of a channel whose
//! state machine is the host-tested `channel` crate; this module adds what only the kernel can
//! do — waking the threads that wait on an endpoint, and closing an endpoint when the last
//! reference to it goes away (a closed handle, a dead process, a dropped message).
//!
//! **Single-copy delivery.** A thread that waits on an endpoint with nothing queued (a `recv`
//! or `send_recv` about to block) leaves its buffer and address space with the channel
//! ([`Parked`]). A sender of bytes that finds it there, with nothing queued before it, writes
//! the message straight into that buffer ([`AddressSpace::write_user`]) instead of queueing it,
//! and wakes the receiver, or hands it its core: the message is received the moment it is
//! sent, and the receiver returns without looking its handle up again ([`Port::collect`]).
//! Anything else (handles, a bad or unmapped buffer, something queued, a suspended or closed
//! endpoint, a full ledger) takes the queue as before.
//!
//! Lock order: the process table, then a channel, then an address space or the scheduler.
//! Objects that leave a channel (messages drained at close, a parked receiver's address space)
//! are dropped only after its lock is released, because they may hold endpoints of the same
//! channel.
use crate::arch::paging::{AddressSpace, Translation};
use crate::process::Ledger;
use crate::sched::{self, ThreadRef};
use abi::Error;
use abi::syscall::signal;
use alloc::sync::Arc;
use alloc::vec::Vec;
use channel::{Channel, Limits, Message, Payload, RecvError, SendError, Side};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// A kernel object a handle can name.
pub enum Object {
    /// One side of a channel.
    Endpoint(Endpoint),
    /// A process (kill right, later suspend right).
    Process(crate::process::Pid),
    /// A PCI function a driver holds (see `crate::device`).
    Device(Arc<crate::device::Device>),
    /// The system: process list, kill by pid, memory figures, power off (`crate::system`).
    /// The rights it carries are the ones it travels with inside a message.
    System(abi::Rights),
    /// The serial console: input as channel messages, raw output (`crate::console`). The
    /// rights it carries are the ones it travels with inside a message.
    Console(abi::Rights),
    /// The process's thread spawner (`crate::thread`): creates threads in the process that
    /// holds it; never travels.
    ThreadSpawner,
    /// One thread of the holding process (join, exit code); never travels. Closing the
    /// handle detaches the thread or drops its retained status.
    Thread(crate::sched::ThreadRef),
    /// A portal into a server (`crate::portal`); handles to it may be duplicated and moved.
    Portal(alloc::sync::Arc<crate::portal::Portal>),
}

/// A message as the kernel moves it: bytes, objects, and the ledger charge for its bytes.
pub type Msg = Message<Object, Charge>;

struct Shared {
    core: Channel<Object, Charge>,
    /// Threads waiting for something on each side (readable, writable, peer closed).
    waiters: [Vec<ThreadRef>; 2],
    /// On each side, the one receiver that waits with its buffer for a message to be written
    /// into it (when [`Parked::live`]); it counts among the side's waiters (woken, once, with
    /// them). The record stays after the wait, so that the same thread parks again without
    /// touching the address space's reference count; it goes when the endpoint closes.
    parked: [Option<Parked>; 2],
}

/// A channel: its state under a lock, and what a parked receiver reads without it.
struct Chan {
    shared: Mutex<Shared>,
    /// Per side: one more than the length of a message written into the buffer of the receiver
    /// parked there, until it collects it (0: none). Set by the sender under the lock, together
    /// with ending the receiver's wait ([`Parked::live`]); read and cleared by the receiver
    /// without the lock. A side with an uncollected delivery parks nobody else.
    delivered: [AtomicU64; 2],
}

impl Chan {
    fn lock(&self) -> spin::MutexGuard<'_, Shared> {
        self.shared.lock()
    }
}

/// A receiver waiting with its buffer (see the module's single-copy delivery).
struct Parked {
    tid: ThreadRef,
    buf: u64,
    cap: usize,
    space: Arc<AddressSpace>,
    /// The buffer's page as a sender last found it (kept across waits in the same space).
    seen: Translation,
    /// Waiting now (else the record is left over from an earlier wait).
    live: bool,
    /// Woken already (by something other than a message written for it): not again.
    woken: bool,
}

/// What a receiver about to wait offers its senders: where a message may be written for it.
#[derive(Clone, Copy)]
pub struct Park<'a> {
    /// The receive buffer (a user address in `space`).
    pub buf: u64,
    /// Its size.
    pub cap: usize,
    /// The receiving process's address space.
    pub space: &'a Arc<AddressSpace>,
}

/// Messages written straight into a waiting receiver's buffer since boot.
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// How many messages went straight into a waiting receiver's buffer since boot (for tests).
pub fn direct_deliveries() -> u64 {
    DELIVERIES.load(Ordering::Relaxed)
}

/// What [`Port::send_bytes`] did besides sending.
#[derive(Default)]
pub struct Sent {
    /// A receiver the caller must run: hand its core to it ([`sched::hand_off`]) when
    /// [`Sent::waits`], or wake it.
    pub wake: Option<ThreadRef>,
    /// The caller, who asked to wait for an answer, is registered as a waiter and nothing is
    /// queued for it: it may block.
    pub waits: bool,
    /// ... and it parked its buffer: once woken it asks [`Port::collect`] for the answer.
    pub parked: bool,
}

/// The ledger charge a queued message carries for its bytes: refunded when the message goes
/// away — received, drained at close, or handed back by a failed send.
#[derive(Debug, Default)]
pub struct Charge {
    /// The sending process's ledger (none: the kernel sent it, or nothing is charged).
    ledger: Option<Arc<Ledger>>,
    /// Bytes charged.
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(l) = &self.ledger {
            l.refund(self.bytes);
        }
    }
}

/// What [`Port::take`] found.
pub enum Taken {
    /// A message of this many bytes, copied out and removed from the queue.
    Bytes(usize),
    /// The oldest message carries handles: the caller takes it the long way
    /// ([`Port::try_recv`]), after making room for them in its table.
    HasHandles,
    /// Nothing queued (the caller was registered as a waiter if it asked to be, and parked
    /// its buffer when it is `true`: once woken it asks [`Port::collect`]).
    Empty(bool),
}

/// One side of a channel, owned: what a handle or a message holds. Dropping it closes that side.
pub struct Endpoint(Port);

/// A reference to one side of a channel that does not own it (dropping it closes nothing): what
/// a system call works through after it has looked the handle up.
#[derive(Clone)]
pub struct Port {
    chan: Arc<Chan>,
    side: Side,
}

impl Shared {
    /// Wakes every thread waiting on side `i`, the parked one included. Under the channel lock
    /// (the scheduler's lock comes after a channel's), which keeps the list's memory for the
    /// next waiter.
    fn wake_all(&mut self, i: usize) {
        for t in self.waiters[i].drain(..) {
            sched::wake(t);
        }
        if let Some(p) = self.parked[i].as_mut()
            && p.live
            && !p.woken
        {
            p.woken = true;
            sched::wake(p.tid);
        }
    }

    fn add_waiter(&mut self, i: usize, t: ThreadRef) {
        if !self.waiters[i].contains(&t) {
            self.waiters[i].push(t);
        }
    }

    /// Parks `park` for thread `t` on side `i`, else (another thread is parked there, or
    /// `pending`: a delivery not collected yet) makes `t` an ordinary waiter; true when it
    /// parked.
    #[inline(always)]
    fn park_or_wait(&mut self, i: usize, t: ThreadRef, park: Park<'_>, pending: bool) -> bool {
        match &mut self.parked[i] {
            Some(p) if p.live && p.tid != t => {}
            _ if pending => {}
            // The same address space as last time: no new reference.
            Some(p) if Arc::ptr_eq(&p.space, park.space) => {
                p.tid = t;
                p.buf = park.buf;
                p.cap = park.cap;
                p.live = true;
                p.woken = false;
                return true;
            }
            slot => {
                // (An old record's address space goes under the lock: it holds no endpoint.)
                *slot = Some(Parked {
                    tid: t,
                    buf: park.buf,
                    cap: park.cap,
                    space: park.space.clone(),
                    seen: Translation::default(),
                    live: true,
                    woken: false,
                });
                return true;
            }
        }
        self.add_waiter(i, t);
        false
    }

    /// The one thread waiting on side `i`, taken from the waiters to be run at once, if exactly
    /// one waits.
    fn sole_waiter(&mut self, i: usize) -> Option<ThreadRef> {
        match (&mut self.parked[i], self.waiters[i].len()) {
            (Some(p), 0) if p.live && !p.woken => {
                p.woken = true;
                Some(p.tid)
            }
            (Some(p), 1) if !p.live => self.waiters[i].pop(),
            (None, 1) => self.waiters[i].pop(),
            _ => None,
        }
    }
}

impl core::ops::Deref for Endpoint {
    type Target = Port;
    fn deref(&self) -> &Port {
        &self.0
    }
}

fn idx(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

impl Endpoint {
    /// A new channel's two endpoints.
    pub fn pair() -> (Endpoint, Endpoint) {
        let chan = Arc::new(Chan {
            shared: Mutex::new(Shared {
                core: Channel::new(Limits::default()),
                waiters: [Vec::new(), Vec::new()],
                parked: [None, None],
            }),
            delivered: [AtomicU64::new(0), AtomicU64::new(0)],
        });
        (
            Endpoint(Port {
                chan: chan.clone(),
                side: Side::A,
            }),
            Endpoint(Port {
                chan,
                side: Side::B,
            }),
        )
    }

    /// A non-owning reference to this endpoint.
    pub fn port(&self) -> Port {
        self.0.clone()
    }
}

impl Port {
    /// True when `other` is an endpoint of the same channel.
    pub fn same_channel(&self, other: &Port) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }

    /// Names the channel for as long as this reference lives (the two ends of one channel have
    /// the same key): how a suspend finds the channels inside a process tree.
    pub fn channel_key(&self) -> usize {
        Arc::as_ptr(&self.chan) as usize
    }

    /// Which side of its channel this is (0 or 1).
    pub fn side_index(&self) -> u8 {
        idx(self.side) as u8
    }

    /// True when the other side is closed.
    pub fn peer_closed(&self) -> bool {
        self.chan.lock().core.peer_closed(self.side)
    }

    /// Marks this side dormant (its process is suspended: the peer's sends are queued, its
    /// receives say `PeerSuspended`) or active again, and wakes the peer's waiters so that
    /// they look again.
    pub fn set_dormant(&self, dormant: bool) {
        let mut s = self.chan.lock();
        let _ = if dormant {
            s.core.suspend(self.side)
        } else {
            s.core.resume(self.side)
        };
        s.wake_all(idx(self.side.peer()));
    }

    /// True when a message queued for this side carries handles (what a suspend cannot put in
    /// an image yet).
    pub fn queued_carry_handles(&self) -> bool {
        let s = self.chan.lock();
        s.core.queued(self.side).any(|m| !m.handles.is_empty())
    }

    /// The payloads of the messages queued for this side, oldest first, copied (what a
    /// suspend writes into the image).
    pub fn queued_copy(&self) -> Vec<Vec<u8>> {
        let s = self.chan.lock();
        s.core.queued(self.side).map(|m| m.bytes.to_vec()).collect()
    }

    /// Queues `bytes` for this side as if its peer had sent them (a resume replaying the
    /// messages of an image; nobody is charged).
    pub fn enqueue(&self, bytes: &[u8]) -> Result<(), Error> {
        let mut s = self.chan.lock();
        let msg = Message::from_slice(bytes, Vec::new(), Charge::default());
        s.core.send(self.side.peer(), msg).map_err(|e| e.error())?;
        s.wake_all(idx(self.side));
        Ok(())
    }

    /// Checks whether a message of this size could be sent now (`Full`, `Closed`, `TooBig`).
    pub fn check_send(&self, bytes: usize, handles: usize) -> Result<(), Error> {
        self.chan
            .lock()
            .core
            .check_send(self.side, bytes, handles)
            .map_err(Error::from)
    }

    /// Sends a message from the kernel without blocking; on failure the message comes back in
    /// the error. (Callers refuse to move an endpoint through its own channel, which could keep
    /// it alive with no holder.)
    pub fn send(&self, msg: Msg) -> Result<(), SendError<Object, Charge>> {
        let mut s = self.chan.lock();
        s.core.send(self.side, msg)?;
        s.wake_all(idx(self.side.peer()));
        Ok(())
    }

    /// Sends a message whose bytes are charged to `ledger` (refunded when it is received or
    /// dropped at close), under one lock: `Overloaded` from the ledger, then `Full`, `Closed`,
    /// `TooBig` from the channel. On failure the message comes back, uncharged.
    pub fn send_from(&self, mut msg: Msg, ledger: Arc<Ledger>) -> Result<(), (Error, Msg)> {
        let bytes = msg.bytes.len();
        if let Err(e) = ledger.charge(bytes) {
            return Err((e, msg));
        }
        msg.meta = Charge {
            ledger: Some(ledger),
            bytes,
        };
        let mut s = self.chan.lock();
        if let Err(e) = s.core.send(self.side, msg) {
            let kind = e.error();
            drop(s);
            let mut msg = e.into_message();
            // Dropping the charge refunds it.
            msg.meta = Charge::default();
            return Err((kind, msg));
        }
        s.wake_all(idx(self.side.peer()));
        Ok(())
    }

    /// Sends the message of bytes in `bytes` (taken from there when it is queued) charged to
    /// `ledger` (refunded when it is received or dropped at close), under one lock: written straight into the buffer of a receiver parked on the
    /// peer when it can be (nothing charged, nothing queued), else queued with `Overloaded`
    /// from the ledger, then `Full`, `Closed`, `TooBig` from the channel. A plain send wakes
    /// the peer's waiters. With `reply` (a `send_recv` that will wait for the answer) the
    /// calling thread also registers as a waiter on this side under the same lock, parks its
    /// buffer when nothing is queued for it, and the receiver to run — the one written to, or
    /// the peer's only waiter — comes back in [`Sent::wake`] instead of being woken, so that
    /// the caller can hand its core straight to it.
    pub fn send_bytes(
        &self,
        bytes: &mut Payload,
        ledger: &Arc<Ledger>,
        reply: Option<Park<'_>>,
        out: &mut Sent,
    ) -> Result<(), Error> {
        self.send_bytes_inline(bytes, ledger, reply, out)
    }

    /// [`Port::send_bytes`], inline: `send_recv`'s fast path, whose outcome then stays in
    /// registers.
    #[inline(always)]
    pub fn send_bytes_inline(
        &self,
        bytes: &mut Payload,
        ledger: &Arc<Ledger>,
        reply: Option<Park<'_>>,
        out: &mut Sent,
    ) -> Result<(), Error> {
        let len = bytes.len();
        let side = self.side;
        let (mine, peer) = (idx(side), idx(side.peer()));
        let mut guard = self.chan.lock();
        let s = &mut *guard;
        if let Some(p) = s.parked[peer].as_mut()
            && p.live
            && len <= p.cap
            && s.core.can_deliver(side, len)
            && ledger.fits(len)
            && p.space.write_user(p.buf, bytes, &mut p.seen)
        {
            // Received: the wait ends, and the receiver finds the length without the lock.
            p.live = false;
            let to = p.tid;
            self.chan.delivered[peer].store(len as u64 + 1, Ordering::Release);
            DELIVERIES.fetch_add(1, Ordering::Relaxed);
            let Some(park) = reply else {
                sched::wake(to);
                return Ok(());
            };
            // Both endpoints are open (`can_deliver`): the caller waits unless something is
            // queued for it already.
            let me = sched::current_ref();
            let waits = s.core.peek(side).is_none();
            let parked = if waits {
                let pending = self.chan.delivered[mine].load(Ordering::Acquire) != 0;
                s.park_or_wait(mine, me, park, pending)
            } else {
                s.add_waiter(mine, me);
                false
            };
            *out = Sent {
                wake: Some(to),
                waits,
                parked,
            };
            return Ok(());
        }
        queue_bytes(s, side, bytes, ledger)?;
        let Some(park) = reply else {
            s.wake_all(peer);
            return Ok(());
        };
        let waits = s.core.peek(side).is_none()
            && !s.core.peer_closed(side)
            && !s.core.peer_suspended(side);
        let me = sched::current_ref();
        let parked = if waits {
            let pending = self.chan.delivered[mine].load(Ordering::Acquire) != 0;
            s.park_or_wait(mine, me, park, pending)
        } else {
            s.add_waiter(mine, me);
            false
        };
        let wake = match s.sole_waiter(peer) {
            Some(t) => Some(t),
            None => {
                s.wake_all(peer);
                None
            }
        };
        *out = Sent {
            wake,
            waits,
            parked,
        };
        Ok(())
    }

    /// After a wait that [`Sent::parked`] or [`Taken::Empty`]`(true)` began: unparks the
    /// calling thread and returns the length of the message a sender wrote into its buffer
    /// meanwhile, if one did (it is received). `None`: woken for another reason; look again.
    #[inline]
    pub fn collect(&self) -> Option<usize> {
        // The fast way: written, and the record already gone with the sender.
        let v = self.chan.delivered[idx(self.side)].swap(0, Ordering::AcqRel);
        if v != 0 {
            return Some(v as usize - 1);
        }
        self.collect_slow()
    }

    #[inline(never)]
    fn collect_slow(&self) -> Option<usize> {
        let delivered = &self.chan.delivered[idx(self.side)];
        let me = sched::current_ref();
        let i = idx(self.side);
        {
            let mut s = self.chan.lock();
            if let Some(p) = s.parked[i].as_mut()
                && p.live
                && p.tid == me
            {
                // Still parked: nothing was written.
                p.live = false;
                return None;
            }
        }
        // The wait ended meanwhile: with a message (stored before the lock we took was
        // released), or with the endpoint leaving its holder (nothing stored).
        let v = delivered.swap(0, Ordering::AcqRel);
        (v != 0).then(|| v as usize - 1)
    }

    /// Forgets a receiver parked on this side: the endpoint is leaving its holder's table (it
    /// travels in a message), so nothing may be written for that holder any more. The thread
    /// stays a waiter and looks its handle up again when woken.
    pub fn unpark(&self) {
        let i = idx(self.side);
        let mut s = self.chan.lock();
        if let Some(p) = s.parked[i].as_mut()
            && p.live
        {
            p.live = false;
            let (t, woken) = (p.tid, p.woken);
            if !woken {
                s.add_waiter(i, t);
            }
        }
    }

    /// The common receive, under one lock: the oldest message, if it has no handles and fits
    /// `cap` bytes (`TooBig` otherwise), goes through `copy` (a failed copy leaves it queued)
    /// and leaves the queue. With nothing queued: `Closed` or `PeerSuspended` when the peer is
    /// gone or suspended, else [`Taken::Empty`] after registering the calling thread as a
    /// waiter when `watch` is set, and parking `park` (registering under the same lock as the
    /// look means no send can slip in between unseen).
    pub fn take(
        &self,
        cap: usize,
        copy: impl FnOnce(&[u8]) -> Result<(), Error>,
        watch: bool,
        park: Option<Park<'_>>,
    ) -> Result<Taken, Error> {
        let mut s = self.chan.lock();
        let side = self.side;
        let Some(m) = s.core.peek(side) else {
            if s.core.peer_closed(side) {
                return Err(Error::Closed);
            }
            if s.core.peer_suspended(side) {
                return Err(Error::PeerSuspended);
            }
            let mut parked = false;
            if watch {
                let me = sched::current_ref();
                match park {
                    Some(park) => {
                        let pending = self.chan.delivered[idx(side)].load(Ordering::Acquire) != 0;
                        parked = s.park_or_wait(idx(side), me, park, pending);
                    }
                    None => s.add_waiter(idx(side), me),
                }
            }
            return Ok(Taken::Empty(parked));
        };
        if !m.handles.is_empty() {
            return Ok(Taken::HasHandles);
        }
        let len = m.bytes.len();
        if len > cap {
            return Err(Error::TooBig);
        }
        copy(&m.bytes)?;
        let was_full = !s.core.writable(side.peer());
        let msg = s.core.recv(side).map_err(Error::from)?;
        if was_full {
            // The peer can write again: wake its waiters (only then: a peer waiting for an
            // answer must not be woken by the receipt of its own request).
            s.wake_all(idx(side.peer()));
        }
        drop(s);
        // Dropping the message refunds its charge.
        drop(msg);
        Ok(Taken::Bytes(len))
    }

    /// Messages queued for this endpoint.
    pub fn queued_messages(&self) -> usize {
        self.chan.lock().core.queued_messages(self.side)
    }

    /// Bytes and handle count of the oldest queued message, if any.
    pub fn peek_size(&self) -> Option<(usize, usize)> {
        self.chan
            .lock()
            .core
            .peek(self.side)
            .map(|m| (m.bytes.len(), m.handles.len()))
    }

    /// Runs `f` on the oldest queued message's bytes, if any.
    pub fn peek_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.chan.lock().core.peek(self.side).map(|m| f(&m.bytes))
    }

    /// Takes the oldest message without blocking.
    pub fn try_recv(&self) -> Result<Msg, RecvError> {
        let mut msg = {
            let mut s = self.chan.lock();
            let was_full = !s.core.writable(self.side.peer());
            let m = s.core.recv(self.side)?;
            if was_full {
                s.wake_all(idx(self.side.peer()));
            }
            m
        };
        // Received: the sender's ledger gets the bytes back now (dropping the charge).
        msg.meta = Charge::default();
        Ok(msg)
    }

    /// The signals this endpoint shows now (`abi::syscall::signal`).
    pub fn signals(&self) -> u32 {
        let s = self.chan.lock();
        let mut bits = 0;
        if s.core.readable(self.side) {
            bits |= signal::READABLE;
        }
        if s.core.writable(self.side) {
            bits |= signal::WRITABLE;
        }
        if s.core.peer_closed(self.side) {
            bits |= signal::PEER_CLOSED;
        }
        if s.core.peer_suspended(self.side) {
            bits |= signal::PEER_SUSPENDED;
        }
        bits
    }

    /// Registers the running thread to be woken at the next change on this endpoint.
    pub fn watch(&self) {
        let me = sched::current_ref();
        self.chan.lock().add_waiter(idx(self.side), me);
    }

    /// Receives, blocking the calling thread until a message arrives or the deadline (on the
    /// monotonic clock; `DEADLINE_NOW`, `DEADLINE_NEVER`) passes (`Timeout`).
    pub fn recv_blocking(&self, deadline: u64) -> Result<Msg, Error> {
        loop {
            match self.try_recv() {
                Ok(m) => return Ok(m),
                Err(RecvError::Empty) => {}
                Err(e) => return Err(e.into()),
            }
            if deadline == abi::syscall::DEADLINE_NOW || crate::arch::apic::now_ns() >= deadline {
                return Err(Error::Timeout);
            }
            // Register first, then look again: a send in between (possibly from another core)
            // either shows up now or wakes the block below.
            self.watch();
            if self.signals() & (abi::syscall::signal::READABLE | abi::syscall::signal::PEER_CLOSED)
                != 0
            {
                continue;
            }
            if deadline == abi::syscall::DEADLINE_NEVER {
                sched::block();
            } else {
                sched::block_until(deadline);
            }
        }
    }
}

/// Queues a message of bytes charged to `ledger` for the peer of `side`: `Overloaded` from the
/// ledger, then `Full`, `Closed`, `TooBig` from the channel (the message is then dropped,
/// which refunds its charge — under the lock: it holds no endpoint).
#[inline(never)]
fn queue_bytes(
    s: &mut Shared,
    side: Side,
    bytes: &mut Payload,
    ledger: &Arc<Ledger>,
) -> Result<(), Error> {
    let len = bytes.len();
    ledger.charge(len)?;
    let msg = Msg {
        bytes: core::mem::take(bytes),
        handles: Vec::new(),
        meta: Charge {
            ledger: Some(ledger.clone()),
            bytes: len,
        },
    };
    s.core.send(side, msg).map_err(|e| e.error())
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let (drained, woken, parked) = {
            let mut s = self.0.chan.lock();
            let drained = s.core.close(self.0.side);
            let mut woken = core::mem::take(&mut s.waiters[0]);
            woken.append(&mut s.waiters[1]);
            // Nothing is written for a holder that let go (or died); a receiver parked on the
            // other side learns that this one closed.
            let i = idx(self.0.side);
            let parked = s.parked[i].take();
            woken.extend(parked.iter().filter(|p| p.live).map(|p| p.tid));
            if let Some(p) = s.parked[1 - i].as_mut()
                && p.live
                && !p.woken
            {
                p.woken = true;
                woken.push(p.tid);
            }
            (drained, woken, parked)
        };
        // Dropping the drained messages closes the endpoints they carried and refunds their
        // charges.
        drop(drained);
        drop(parked);
        woken.into_iter().for_each(sched::wake);
    }
}
