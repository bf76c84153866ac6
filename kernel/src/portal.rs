//! Portals: migrating-thread calls (DESIGN.md §8, `docs/portals.md`, system calls 27–30).
//!
//! A portal names an entry point in a server process and a badge. A thread that calls it
//! keeps its scheduler record (priority, deadline, CPU-time accounting) and changes only what
//! it acts for: the scheduler pushes a call on the thread's record (`arch::portal_path`) with
//! the registers the caller keeps, its address space and FS base, switches the thread to the
//! server's space, and the trap frame is rewritten to enter the server. `portal_return` pops
//! the call and puts the caller's registers back with the results. A server that dies (fault,
//! exit, kill) while threads are inside it has them unwound: each returns `Closed` to the
//! caller of the outermost dead server on its chain, at its next return to ring 3.
//!
//! This is the general path. The common call and return never come here: the fast path in
//! `arch::portal_path` repeats a thread's last call from its own process without the trap
//! frame, from what the general path cached (see `docs/portals.md`).
use crate::arch::idt::TrapFrame;
use crate::arch::paging::AddressSpace;
use crate::arch::portal_path::{CacheTarget, Fill, Visits};
use crate::ipc::Object;
use crate::process::{self, Pid};
use crate::sched::{self, EnterError, Target};
use crate::syscall::handle;
use abi::{Error, Rights};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;

/// What every portal into one server shares: a call finds the server's space and whether it
/// died here, without looking the process up.
struct Server {
    pid: Pid,
    space: Arc<AddressSpace>,
    /// Set by [`server_died`] before the visitors are evicted (see `arch::portal_path` for
    /// the ordering with a call).
    dead: AtomicBool,
}

/// The live servers: processes that created a portal and have not died.
static SERVERS: Mutex<Vec<Arc<Server>>> = Mutex::new(Vec::new());

/// A portal: the server, where calls enter it, and the word they carry.
pub struct Portal {
    server: Arc<Server>,
    entry: u64,
    badge: u64,
    revoked: AtomicBool,
}

impl Portal {
    /// Whether its server is gone (died, or left the process table for a suspend).
    pub fn is_dead(&self) -> bool {
        self.server.dead.load(Ordering::Acquire)
    }
}

impl CacheTarget for Portal {
    fn revoked(&self) -> &AtomicBool {
        &self.revoked
    }

    fn dead(&self) -> &AtomicBool {
        &self.server.dead
    }
}

impl core::fmt::Debug for Portal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Portal(server {}, badge {:#x})",
            self.server.pid, self.badge
        )
    }
}

/// The shared record of the calling process as a server (made at its first portal); `None`
/// once it has died.
fn this_server() -> Option<Arc<Server>> {
    let pid = sched::current_pid()?;
    let mut servers = SERVERS.lock();
    if let Some(s) = servers.iter().find(|s| s.pid == pid) {
        return Some(s.clone());
    }
    // Looked up under the registry's lock: a death after this finds the record and marks it.
    let space = process::space_of(pid)?;
    let s = Arc::new(Server {
        pid,
        space,
        dead: AtomicBool::new(false),
    });
    servers.push(s.clone());
    Some(s)
}

/// `portal_create(entry, badge) -> portal`.
pub fn create(entry: u64, badge: u64) -> Result<u64, Error> {
    if !abi::thread::user_canonical(entry) {
        return Err(Error::Failed);
    }
    let server = this_server().ok_or(Error::Failed)?;
    let portal = Arc::new(Portal {
        server,
        entry,
        badge,
        revoked: AtomicBool::new(false),
    });
    let h = process::with_handles(|t| t.insert(Object::Portal(portal), Rights::PORTAL_ALL))
        .ok_or(Error::Failed)?
        .map_err(|r| Error::from(r.error))?;
    Ok(h.0 as u64)
}

/// `portal_revoke(portal)`.
pub fn revoke(h: u64) -> Result<u64, Error> {
    let h = handle(h)?;
    process::with_handles(|t| match t.check(h, Rights::REVOKE)? {
        Object::Portal(p) => {
            p.revoked.store(true, Ordering::Release);
            Ok(0)
        }
        _ => Err(Error::WrongType),
    })
    .ok_or(Error::Failed)?
}

/// `portal_call(portal, a0, a1, a2, a3)`: on success the frame enters the server; on an
/// error the caller gets it back in `rax` as from any call.
#[inline(never)]
pub fn call(frame: &mut TrapFrame) {
    if let Err(e) = enter(frame) {
        frame.rax = e as u64;
        frame.rdx = 0;
    }
}

#[inline(always)]
fn enter(frame: &mut TrapFrame) -> Result<(), Error> {
    let h = handle(frame.rdi)?;
    // The thread's visitor stack: its slot, at the same place in every server.
    let (_, top) = abi::portal::visit_stack(sched::current() as u64).ok_or(Error::Overloaded)?;
    // Entered under the look-up's lock (the process table before the scheduler), so the
    // portal needs no reference of its own beyond the one the fast path keeps.
    let (caller, tid, entry, badge) = process::with_handles(|t| {
        // The table's change counter, read under its lock: the fast path repeats this call
        // while it is unchanged.
        let seen = t.watch();
        let t = &*t;
        let p = match t.check(h, Rights::SEND)? {
            Object::Portal(p) if p.revoked.load(Ordering::Acquire) => return Err(Error::Closed),
            Object::Portal(p) => p,
            _ => return Err(Error::WrongType),
        };
        let s = &p.server;
        let to = Target {
            server: s.pid,
            root: s.space.root_of(),
            dead: &s.dead,
        };
        // For the fast path, unless it has this call already.
        let fill = |v: &Visits| {
            if v.caches(h.0, seen, &p.revoked) {
                return None;
            }
            Some(Fill {
                handle: h.0,
                changes: (t.watcher()?, seen),
                portal: p.clone(),
                server: s.pid,
                root: s.space.root_of(),
                entry: p.entry,
                badge: p.badge,
                stack: top - 8,
            })
        };
        let (caller, tid) = sched::portal_enter(frame, to, fill).map_err(|e| match e {
            EnterError::Reentry => Error::Failed,
            EnterError::TooDeep => Error::Overloaded,
            EnterError::Unwinding | EnterError::Dead => Error::Closed,
        })?;
        Ok((caller, tid, p.entry, p.badge))
    })
    .ok_or(Error::Failed)??;
    let args = [frame.rsi, frame.rdx, frame.r10, frame.r8];
    *frame = TrapFrame {
        rdi: args[0],
        rsi: args[1],
        rdx: args[2],
        r10: args[3],
        r8: badge,
        r9: caller,
        rax: tid as u64,
        rip: entry,
        rsp: top - 8,
        rflags: 0x202,
        cs: frame.cs,
        ss: frame.ss,
        vector: frame.vector,
        ..TrapFrame::default()
    };
    // Nothing of the caller's crosses in the vector registers either.
    crate::arch::context::clear_fpu();
    Ok(())
}

/// `portal_return(r0, r1)`: back to the caller with the results (the registers it keeps
/// restored, the others zero); `Failed` outside a call.
#[inline(never)]
pub fn ret(frame: &mut TrapFrame) {
    let (r0, r1) = (frame.rdi, frame.rsi);
    if sched::portal_leave(frame) {
        // Nor anything of the server's on the way back.
        crate::arch::context::clear_fpu();
        frame.rax = 0;
        frame.rdx = r0;
        frame.rsi = r1;
    } else {
        frame.rax = Error::Failed as u64;
        frame.rdx = 0;
    }
}

/// Before any return to ring 3: a thread whose chain of calls holds a dead server returns
/// `Closed` to the caller of the outermost dead one. One load when nothing is pending.
#[inline]
pub fn on_user_return(frame: &mut TrapFrame) {
    if sched::unwind_raised() {
        unwind(frame);
    }
}

#[inline(never)]
fn unwind(frame: &mut TrapFrame) {
    let Some(servers) = sched::take_unwind() else {
        return;
    };
    let Some(i) = servers.iter().position(|&p| !process::is_live(p)) else {
        return;
    };
    if sched::portal_unwind_from(i, frame) {
        crate::arch::context::clear_fpu();
        frame.rax = Error::Closed as u64;
        frame.rdx = 0;
    }
}

/// `server` died: no call enters it any more, and the threads inside it are unwound (see
/// [`sched::portal_evict`]). Called by `process::die` before the server's space is torn down.
pub fn server_died(server: Pid) {
    let mut servers = SERVERS.lock();
    if let Some(i) = servers.iter().position(|s| s.pid == server) {
        // Sequentially consistent: see `arch::portal_path` (a call publishes itself, then reads
        // this; the eviction below reads calls after this store).
        servers.swap_remove(i).dead.store(true, Ordering::SeqCst);
    }
    drop(servers);
    sched::portal_evict(server);
}

/// A page fault at `addr` in `pid`'s visitor-stack window: maps a fresh page when it lies in
/// the stack of the running thread and that thread is visiting `pid`; `false` otherwise.
pub fn stack_page(pid: Pid, addr: u64) -> bool {
    if sched::current_pid() != Some(pid) || sched::current_ref().pid == pid {
        return false;
    }
    abi::portal::visit_stack(sched::current() as u64)
        .is_some_and(|(lo, top)| (lo..top).contains(&addr))
}

/// The rule suspend follows (a later issue): a process can be suspended only when none of
/// its threads is inside another process through a portal and no other process's thread is
/// inside it. Suspend refuses (`Failed`) otherwise; the caller may try again later.
pub fn can_suspend(pid: Pid) -> Result<(), Error> {
    match sched::portal_presence(pid) {
        (0, 0) => Ok(()),
        _ => Err(Error::Failed),
    }
}

/// (threads inside `pid` as visitors, threads of `pid` away in a server): for tests.
pub fn presence(pid: Pid) -> (usize, usize) {
    sched::portal_presence(pid)
}
