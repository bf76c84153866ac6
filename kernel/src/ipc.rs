//! Channels as kernel objects (the water law): an [`Endpoint`] is one side of a channel whose
//! state machine is the host-tested `channel` crate; this module adds what only the kernel can
//! do — waking the threads that wait on an endpoint, and closing an endpoint when the last
//! reference to it goes away (a closed handle, a dead process, a dropped message).
//!
//! Lock order: the process table, then a channel, then the scheduler. Objects that leave a
//! channel (messages drained at close) are dropped only after its lock is released, because they
//! may hold endpoints of the same channel.
use crate::sched::{self, Tid};
use abi::Error;
use abi::syscall::signal;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use channel::{Channel, Limits, Message, RecvError, SendError, Side};
use spin::Mutex;

/// A kernel object a handle can name.
pub enum Object {
    /// One side of a channel.
    Endpoint(Endpoint),
    /// A process (kill right, later suspend right).
    Process(crate::process::Pid),
    /// A PCI function a driver holds (see `crate::device`).
    Device(Arc<crate::device::Device>),
}

/// A message as the kernel moves it: bytes and objects.
pub type Msg = Message<Object>;

struct Shared {
    core: Channel<Object>,
    /// Threads waiting for something on each side (readable, writable, peer closed).
    waiters: [Vec<Tid>; 2],
    /// For each queued message, in queue order: who sent it and how many bytes it charged to
    /// that process's ledger (refunded when the message leaves the queue).
    charges: [VecDeque<Charge>; 2],
}

/// A ledger charge carried by a queued message.
#[derive(Clone, Copy, Debug)]
pub struct Charge {
    /// The sending process (none: the kernel).
    pub payer: Option<crate::process::Pid>,
    /// Bytes charged.
    pub bytes: usize,
}

/// One side of a channel, owned: what a handle or a message holds. Dropping it closes that side.
pub struct Endpoint(Port);

/// A reference to one side of a channel that does not own it (dropping it closes nothing): what
/// a system call works through after it has looked the handle up.
#[derive(Clone)]
pub struct Port {
    chan: Arc<Mutex<Shared>>,
    side: Side,
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
        let chan = Arc::new(Mutex::new(Shared {
            core: Channel::new(Limits::default()),
            waiters: [Vec::new(), Vec::new()],
            charges: [VecDeque::new(), VecDeque::new()],
        }));
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

    /// Checks whether a message of this size could be sent now (`Full`, `Closed`, `TooBig`).
    pub fn check_send(&self, bytes: usize, handles: usize) -> Result<(), Error> {
        self.chan
            .lock()
            .core
            .check_send(self.side, bytes, handles)
            .map_err(Error::from)
    }

    /// Sends without blocking; on failure the message comes back in the error. (Callers refuse
    /// to move an endpoint through its own channel, which could keep it alive with no holder.)
    pub fn send(&self, msg: Msg) -> Result<(), SendError<Object>> {
        self.send_charged(
            msg,
            Charge {
                payer: None,
                bytes: 0,
            },
        )
    }

    /// Sends a message whose bytes were charged to `charge.payer`'s ledger; the charge is
    /// refunded when the message is received or dropped at close.
    pub fn send_charged(&self, msg: Msg, charge: Charge) -> Result<(), SendError<Object>> {
        let woken = {
            let mut s = self.chan.lock();
            s.core.send(self.side, msg)?;
            s.charges[idx(self.side.peer())].push_back(charge);
            core::mem::take(&mut s.waiters[idx(self.side.peer())])
        };
        woken.into_iter().for_each(sched::wake);
        Ok(())
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
        let (msg, woken, charge) = {
            let mut s = self.chan.lock();
            let m = s.core.recv(self.side)?;
            let charge = s.charges[idx(self.side)].pop_front();
            (
                m,
                core::mem::take(&mut s.waiters[idx(self.side.peer())]),
                charge,
            )
        };
        woken.into_iter().for_each(sched::wake);
        if let Some(c) = charge {
            crate::process::refund(c);
        }
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
        let me = sched::current();
        let mut s = self.chan.lock();
        let w = &mut s.waiters[idx(self.side)];
        if !w.contains(&me) {
            w.push(me);
        }
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

impl Drop for Endpoint {
    fn drop(&mut self) {
        let (drained, woken, charges) = {
            let mut s = self.0.chan.lock();
            let drained = s.core.close(self.0.side);
            let charges = core::mem::take(&mut s.charges[idx(self.0.side)]);
            let mut woken = core::mem::take(&mut s.waiters[0]);
            woken.append(&mut s.waiters[1]);
            (drained, woken, charges)
        };
        // Dropping the drained messages closes the endpoints they carried.
        drop(drained);
        charges.into_iter().for_each(crate::process::refund);
        woken.into_iter().for_each(sched::wake);
    }
}
