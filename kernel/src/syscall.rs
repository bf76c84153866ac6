//! System-call dispatch: every call is decoded and checked first, then performed. Results go
//! back in the trap frame: status in `rax` (0 or an `abi::Error` code), value in `rdx`.
//!
//! Handles are looked up in the calling process's table with the rights the call needs
//! (`InvalidHandle` for a forged, stale or given-away handle, `WrongType`, `NoRights`). Calls that
//! move handles are all-or-nothing: on any failure every handle is back where it was.
use crate::arch::idt::TrapFrame;
use crate::arch::paging::AddressSpace;
use crate::arch::usermem::UserSlice;
use crate::device::sys as device;
use crate::ipc::{Charge, Endpoint, Msg, Object, Park, Port, Sent, Taken};
use crate::process::{self, Death, SpawnOptions};
use crate::sched;
use crate::thread;
use abi::syscall::{
    DEADLINE_NEVER, DEADLINE_NOW, MAX_LOG_BYTES, MAX_PANIC_TEXT, MAX_PATH, MAX_WAIT_ITEMS,
    SpawnRequest, Sys, WaitItem,
};
use abi::{Error, Handle, Rights};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use channel::{INLINE_BYTES, Payload};

/// Entry from `arch::syscall`. The calls' bodies stay out of line (`inline(never)`), so the
/// dispatcher itself saves few registers and the short calls stay short.
#[inline]
pub fn dispatch(frame: &mut TrapFrame) {
    let f = &*frame;
    let a = |i: usize| match i {
        0 => f.rdi,
        1 => f.rsi,
        2 => f.rdx,
        3 => f.r10,
        4 => f.r8,
        _ => f.r9,
    };
    let result = match Sys::from_number_inline(frame.rax) {
        Some(Sys::Null) => Ok(0),
        Some(Sys::Log) => log(a(0), a(1)),
        Some(Sys::Exit) => end(Death::Exit(a(0) as i64)),
        Some(Sys::Yield) => {
            sched::yield_now();
            Ok(0)
        }
        Some(Sys::ChannelCreate) => channel_create(),
        Some(Sys::Close) => close(a(0)),
        Some(Sys::Send) => send(a(0), a(1), a(2), a(3), a(4)),
        Some(Sys::Recv) => recv(a(0), a(1), a(2), a(3), a(4), a(5)),
        Some(Sys::SendRecv) => {
            // The message-passing fast path: its arguments read from the frame and its result
            // stored there by the call itself.
            send_recv_frame(frame);
            return_flags(frame);
            return;
        }
        Some(Sys::SendRecvReceive) => recv(a(0), a(3), a(4), 0, 0, a(5)),
        Some(Sys::ThreadSpawner) => thread::spawner(),
        Some(Sys::ThreadCreate) => {
            // The one call whose error carries a reason in `rdx`.
            let r = thread::create(a(0), a(1), a(2), a(3), a(4), a(5));
            sched::on_return_to_user();
            let (rax, rdx) = match r {
                Ok(v) => (0, v),
                Err((e, why)) => (e as u64, why),
            };
            frame.rax = rax;
            frame.rdx = rdx;
            return;
        }
        Some(Sys::ThreadJoin) => thread::join(a(0)),
        Some(Sys::ThreadExitCode) => thread::exit_code(a(0)),
        Some(Sys::ThreadExit) => process::exit_thread(a(0) as i64),
        Some(Sys::FsBaseGet) => Ok(sched::fs_base()),
        Some(Sys::FsBaseSet) => thread::set_fs_base(a(0)),
        Some(Sys::ParkWait) => crate::park::wait(a(0), a(1) as u32, a(2)),
        Some(Sys::ParkWake) => crate::park::wake(a(0), a(1)),
        Some(Sys::Ledger) => thread::ledger(a(0), a(1)),
        Some(Sys::ThreadSelf) => thread::thread_self(),
        Some(Sys::PortalCall) => {
            // Both portal calls set the whole frame themselves: the server's entry, or the
            // caller's registers with the results.
            crate::portal::call(frame);
            return_flags(frame);
            return;
        }
        Some(Sys::PortalReturn) => {
            crate::portal::ret(frame);
            return_flags(frame);
            return;
        }
        Some(Sys::PortalCreate) => crate::portal::create(a(0), a(1)),
        Some(Sys::PortalRevoke) => crate::portal::revoke(a(0)),
        Some(Sys::Wait) => wait(a(0), a(1), a(2)),
        Some(Sys::Spawn) => spawn(a(0)),
        Some(Sys::Kill) => kill(a(0)),
        Some(Sys::Panic) => panic(a(0), a(1)),
        Some(Sys::Now) => Ok(crate::arch::apic::now_ns()),
        Some(Sys::Sleep) => sleep(a(0)),
        Some(Sys::CpuTime) => Ok(sched::cpu_time(sched::current_ref()).unwrap_or(0)),
        Some(Sys::DeviceInfo) => device::device_info(a(0), a(1), a(2)),
        Some(Sys::ConfigRead) => device::config_read(a(0), a(1)),
        Some(Sys::ConfigWrite) => device::config_write(a(0), a(1), a(2)),
        Some(Sys::MapBar) => device::map_bar(a(0), a(1)),
        Some(Sys::DmaAlloc) => device::dma_alloc(a(0), a(1), a(2)),
        Some(Sys::DmaFree) => device::dma_free(a(0), a(1)),
        Some(Sys::IrqBind) => device::irq_bind(a(0), a(1)),
        Some(Sys::SystemProcesses) => crate::system::processes(a(0), a(1), a(2)),
        Some(Sys::SystemKill) => crate::system::kill(a(0), a(1)),
        Some(Sys::SystemMemory) => crate::system::memory(a(0), a(1)),
        Some(Sys::SystemPowerOff) => crate::system::power_off(a(0)),
        Some(Sys::ConsoleAttach) => crate::system::console_attach(a(0)),
        Some(Sys::ConsoleWrite) => crate::system::console_write(a(0), a(1), a(2)),
        Some(Sys::HandleDuplicate) => crate::system::duplicate(a(0), a(1)),
        Some(Sys::SystemRootRestart) => crate::system::root_restart(a(0)),
        Some(Sys::SystemSuspend) => crate::suspend::sys_suspend(a(0), a(1)),
        Some(Sys::ProcessSuspend) => crate::suspend::sys_process_suspend(a(0)),
        Some(Sys::SystemResume) => crate::suspend::sys_resume(a(0), a(1), a(2), a(3)),
        Some(Sys::SystemImages) => crate::suspend::sys_images(a(0), a(1), a(2)),
        Some(Sys::SystemDiscard) => crate::suspend::sys_discard(a(0), a(1)),
        Some(Sys::SystemMigrate) => crate::suspend::sys_migrate(a(0), a(1), a(2), a(3)),
        None => Err(Error::BadSyscall),
    };
    // The common return: no flag raised on this core (one load).
    if sched::nothing_to_do_on_return() {
        store(frame, result);
        return;
    }
    // Killed from another core meanwhile, or a tighter deadline woke: act before ring 3.
    sched::on_return_to_user();
    // Asked to freeze for a suspend: stop here, with the result stored, or with the frame
    // pointing back at a call that was cut short (made again on resume).
    let freeze = sched::freeze_due();
    match freeze {
        Some(true) => make_again(frame),
        _ => store(frame, result),
    }
    if freeze.is_some() {
        sched::freeze_current();
    }
    // A server on the thread's chain of portal calls died: back to that call's caller.
    crate::portal::on_user_return(frame);
}

/// `sleep(deadline)`.
#[inline(never)]
fn sleep(deadline: u64) -> Result<u64, Error> {
    // A thread killed while it sleeps is woken to end (see `sched::kill`).
    while crate::arch::apic::now_ns() < deadline && !sched::current_doomed() && !sched::unwinding()
    {
        sched::block_until(deadline);
        if sched::freeze_asked() {
            break;
        }
    }
    if sched::freeze_asked() {
        Err(cut_short())
    } else {
        Ok(0)
    }
}

/// Points a frame whose system call was cut short by a freeze back at its `syscall`
/// instruction (2 bytes), with the call number still in `rax`. A `send_recv` was cut short in
/// its receive (the send is done): it becomes `send_recv_receive`, so it does not send twice.
fn make_again(frame: &mut TrapFrame) {
    frame.rip -= 2;
    if frame.rax == Sys::SendRecv as u64 {
        frame.rax = Sys::SendRecvReceive as u64;
    }
}

/// Ends a wait for a freeze (see [`sched::cut_short`]): the result is never seen, the call is
/// made again.
fn cut_short() -> Error {
    sched::cut_short();
    Error::Failed
}

/// The return flags' work for a call that set its whole frame itself (one load when no flag
/// is raised).
#[inline(always)]
fn return_flags(frame: &mut TrapFrame) {
    if !sched::nothing_to_do_on_return() {
        sched::on_return_to_user();
        crate::portal::on_user_return(frame);
    }
}

/// Puts a call's result in the trap frame: status in `rax`, value in `rdx`.
#[inline(always)]
fn store(frame: &mut TrapFrame, result: Result<u64, Error>) {
    match result {
        Ok(v) => {
            frame.rax = 0;
            frame.rdx = v;
        }
        Err(e) => {
            frame.rax = e as u64;
            frame.rdx = 0;
        }
    }
}

/// The handle a system-call argument names (`InvalidHandle` when it does not fit 32 bits).
pub(crate) fn handle(raw: u64) -> Result<Handle, Error> {
    u32::try_from(raw)
        .map(Handle)
        .map_err(|_| Error::InvalidHandle)
}

/// Runs `f` on the caller's handle table; kernel threads have none.
fn table<R>(f: impl FnOnce(&mut handles::HandleTable<Object>) -> R) -> Result<R, Error> {
    process::with_handles(f).ok_or(Error::Failed)
}

/// A non-owning reference to the endpoint `h` names, checked for `rights`; it outlives the
/// table lock (the table keeps owning the endpoint).
fn endpoint(h: Handle, rights: Rights) -> Result<Port, Error> {
    table(|t| match t.check(h, rights)? {
        Object::Endpoint(e) => Ok(e.port()),
        _ => Err(Error::WrongType),
    })?
}

#[inline(never)]
fn log(ptr: u64, len: u64) -> Result<u64, Error> {
    if len > MAX_LOG_BYTES as u64 {
        return Err(Error::TooBig);
    }
    let mut buf = [0u8; MAX_LOG_BYTES];
    UserSlice::new(ptr, len as usize)?.read_into(&mut buf[..len as usize])?;
    let text = core::str::from_utf8(&buf[..len as usize]).unwrap_or("<invalid utf-8>");
    let pid = sched::current_pid().unwrap_or(0);
    let name = process::name(pid).unwrap_or_default();
    crate::println!("[{pid} {name}] {text}");
    Ok(0)
}

#[inline(never)]
fn end(how: Death) -> Result<u64, Error> {
    if let Some(pid) = sched::current_pid() {
        process::die(pid, how);
    }
    Err(Error::Failed)
}

#[inline(never)]
fn panic(ptr: u64, len: u64) -> Result<u64, Error> {
    let len = (len as usize).min(MAX_PANIC_TEXT);
    let mut buf = [0u8; MAX_PANIC_TEXT];
    let text = match UserSlice::new(ptr, len).and_then(|s| s.read_into(&mut buf[..len])) {
        Ok(()) => alloc::string::String::from_utf8_lossy(&buf[..len]).into_owned(),
        Err(_) => "<panic text unreadable>".into(),
    };
    end(Death::Panic(text))
}

#[inline(never)]
fn channel_create() -> Result<u64, Error> {
    let (a, b) = Endpoint::pair();
    let items = vec![
        (Object::Endpoint(a), Rights::CHANNEL_ALL),
        (Object::Endpoint(b), Rights::CHANNEL_ALL),
    ];
    let hs = table(|t| t.insert_many(items).map_err(|r| r.error))?.map_err(Error::from)?;
    Ok(hs[0].0 as u64 | (hs[1].0 as u64) << 32)
}

#[inline(never)]
fn close(h: u64) -> Result<u64, Error> {
    let h = handle(h)?;
    let (obj, _) = table(|t| t.remove(h))?.map_err(Error::from)?;
    if let Object::Thread(r) = obj {
        process::thread_handle_closed(r);
    }
    drop(obj);
    Ok(0)
}

/// Reads a message payload from user memory into `p` (empty); a small one straight into the
/// message's inline room (no allocation).
#[inline(always)]
fn read_payload(ptr: u64, len: usize, p: &mut Payload) -> Result<(), Error> {
    let src = UserSlice::new(ptr, len)?;
    if len <= INLINE_BYTES {
        *p = Payload::from_buf_and_len([0; INLINE_BYTES], len);
        src.read_into(p)
    } else {
        let mut v = vec![0u8; len];
        src.read_into(&mut v)?;
        *p = Payload::from_vec(v);
        Ok(())
    }
}

fn message(bytes: Payload, handles: Vec<Object>) -> Msg {
    Msg {
        bytes,
        handles,
        meta: Charge::default(),
    }
}

fn read_handles(ptr: u64, count: u64) -> Result<Vec<Handle>, Error> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if count > abi::limits::MAX_MESSAGE_HANDLES as u64 {
        return Err(Error::TooBig);
    }
    let mut raw = vec![0u8; count as usize * 4];
    UserSlice::new(ptr, raw.len())?.read_into(&mut raw)?;
    Ok(raw
        .chunks_exact(4)
        .map(|c| Handle(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect())
}

#[inline(never)]
fn send(h: u64, bytes: u64, len: u64, hptr: u64, hcount: u64) -> Result<u64, Error> {
    let h = handle(h)?;
    if len > abi::limits::MAX_MESSAGE_BYTES as u64 {
        return Err(Error::TooBig);
    }
    let moving = read_handles(hptr, hcount)?;
    let mut data = Payload::new();
    read_payload(bytes, len as usize, &mut data)?;
    // The parent channel of a process whose parent died is inert: sends succeed into a void.
    let inert = h == Handle::PARENT;
    if moving.is_empty() {
        // Bytes only: sent under the look-up's lock, with no reference taken.
        let r = process::with_current(|t, ledger| match t.check(h, Rights::SEND)? {
            Object::Endpoint(e) => e.send_bytes(&mut data, ledger, None, &mut Sent::default()),
            _ => Err(Error::WrongType),
        })
        .ok_or(Error::Failed)?;
        return match r {
            Ok(_) => Ok(0),
            Err(Error::Closed) if inert => Ok(0),
            Err(e) => Err(e),
        };
    }
    // One look-up: the endpoint and the ledger the bytes are charged to.
    let (target, ledger) = process::with_current(|t, ledger| match t.check(h, Rights::SEND)? {
        Object::Endpoint(e) => Ok((e.port(), ledger.clone())),
        _ => Err(Error::WrongType),
    })
    .ok_or(Error::Failed)??;
    match target.check_send(data.len(), moving.len()) {
        Err(Error::Closed) if inert => {}
        r => r?,
    }
    // Take the handles out (all or nothing); refuse to send an endpoint through its own
    // channel, or the sending handle itself.
    let objects = table(|t| {
        for m in &moving {
            match t.get(*m).map_err(Error::from)?.0 {
                Object::Endpoint(e) if e.same_channel(&target) => return Err(Error::Failed),
                _ => {}
            }
        }
        t.remove_many(&moving, Rights::TRANSFER)
    })??;
    unpark_moved(&objects);
    let rights: Vec<Rights> = objects.iter().map(|(_, r)| *r).collect();
    let msg = message(
        data,
        objects.into_iter().map(|(o, r)| o.sealed(r)).collect(),
    );
    match target.send_from(msg, ledger) {
        Ok(()) => Ok(0),
        // Into the void: the message and the handles it carried are dropped (closed).
        Err((Error::Closed, _)) if inert => Ok(0),
        Err((kind, msg)) => {
            restore(msg.handles, rights, moving)?;
            Err(kind)
        }
    }
}

/// Endpoints leaving the caller's table (moved into a message or a child) stop taking messages
/// written for the caller.
fn unpark_moved(objects: &[(Object, Rights)]) {
    for (o, _) in objects {
        if let Object::Endpoint(e) = o {
            e.unpark();
        }
    }
}

/// Blocks the caller until it is woken, or until `deadline` on the monotonic clock.
fn block(deadline: u64) {
    if deadline == DEADLINE_NEVER {
        sched::block();
    } else {
        sched::block_until(deadline);
    }
}

/// Whether a receive with `deadline` may wait now.
fn may_wait(deadline: u64) -> bool {
    deadline == DEADLINE_NEVER
        || (deadline != DEADLINE_NOW && crate::arch::apic::now_ns() < deadline)
}

/// The endpoint `h` names (checked for `rights`) and, when the caller may wait, its address
/// space (for parking its buffer).
fn endpoint_to_wait(
    h: Handle,
    rights: Rights,
    wait: bool,
) -> Result<(Port, Option<Arc<AddressSpace>>), Error> {
    process::with_current_space(|t, _, space| match t.check(h, rights)? {
        Object::Endpoint(e) => Ok((e.port(), wait.then(|| space.clone()))),
        _ => Err(Error::WrongType),
    })
    .ok_or(Error::Failed)?
}

/// `send_recv(h, bytes, len, buf, cap, deadline)`: a send of bytes, then a receive on the same
/// handle, in one call. The fast path: the message is written straight into the buffer of a
/// peer parked on the channel, the caller parks its own buffer for the answer, and its core
/// goes straight to the peer when the peer is on it ([`sched::hand_off`]); the answer is then
/// found written, with no second look-up. Otherwise it is exactly a `send` followed by a `recv`
/// with no handle buffer. The arguments (`rdi, rsi, rdx, r10, r8, r9`) are read from `frame`
/// where they are used (few values live across the send), and the result is stored there.
#[inline(never)]
fn send_recv_frame(frame: &mut TrapFrame) {
    let r = send_recv(frame);
    store(frame, r);
}

#[inline(always)]
fn send_recv(f: &TrapFrame) -> Result<u64, Error> {
    let h = handle(f.rdi)?;
    let len = f.rdx;
    if len > abi::limits::MAX_MESSAGE_BYTES as u64 {
        return Err(Error::TooBig);
    }
    let mut data = Payload::new();
    read_payload(f.rsi, len as usize, &mut data)?;
    let wait = may_wait(f.r9);
    // Sent under the look-up's lock (the lock order allows a channel, an address space and the
    // scheduler inside it); the channel is kept only to collect the answer.
    let mut sent = Sent::default();
    let mut port = None;
    let r = process::with_current_space(|t, ledger, space| {
        let Object::Endpoint(e) = t.check(h, Rights::SEND.union(Rights::RECV))? else {
            return Err(Error::WrongType);
        };
        let park = wait.then_some(Park {
            buf: f.r10,
            cap: f.r8.min(usize::MAX as u64) as usize,
            space,
        });
        e.send_bytes_inline(&mut data, ledger, park, &mut sent)?;
        if sent.parked {
            port = Some(e.port());
        }
        Ok(())
    });
    let deadline = f.r9;
    match r {
        Some(Ok(())) => {
            // Handed over only without a deadline: a thread that waits with one sleeps the
            // ordinary way, so that its deadline is kept.
            let handed =
                sent.waits && deadline == DEADLINE_NEVER && sent.wake.is_some_and(sched::hand_off);
            if !handed {
                if let Some(peer) = sent.wake {
                    sched::wake(peer);
                }
                if sent.waits {
                    block(deadline);
                }
            }
            if let Some(port) = port
                && let Some(n) = port.collect()
            {
                return Ok(n as u64);
            }
            if sched::freeze_asked() {
                return Err(cut_short());
            }
            if sched::unwinding() {
                return Err(Error::Closed);
            }
        }
        // An inert parent channel: the send goes into the void, the receive says `Closed`.
        Some(Err(Error::Closed)) if h == Handle::PARENT => {}
        Some(Err(e)) => return Err(e),
        None => return Err(Error::Failed),
    }
    recv(f.rdi, f.r10, f.r8, 0, 0, f.r9)
}

/// Puts handles taken out for a message that was not sent back in their slots. Objects that
/// cannot go back (never expected: the slots stayed free) are dropped outside the table lock.
fn restore(objects: Vec<Object>, rights: Vec<Rights>, slots: Vec<Handle>) -> Result<(), Error> {
    let refused = table(|t| {
        let mut refused = Vec::new();
        for ((obj, r), h) in objects.into_iter().zip(rights).zip(slots) {
            if let Err(back) = t.restore(h, obj, r) {
                refused.push(back.value);
            }
        }
        refused
    })?;
    drop(refused);
    Ok(())
}

#[inline(never)]
fn recv(h: u64, buf: u64, cap: u64, hptr: u64, hcap: u64, deadline: u64) -> Result<u64, Error> {
    let h = handle(h)?;
    loop {
        let wait = may_wait(deadline);
        let (source, space) = endpoint_to_wait(h, Rights::RECV, wait)?;
        let park = space.as_ref().map(|space| Park {
            buf,
            cap: cap.min(usize::MAX as u64) as usize,
            space,
        });
        let copy = |b: &[u8]| UserSlice::new(buf, b.len())?.write_from(b);
        match source.take(cap.min(usize::MAX as u64) as usize, copy, wait, park)? {
            Taken::Bytes(len) => return Ok(len as u64),
            Taken::HasHandles => {
                if let Some(r) = recv_with_handles(&source, buf, cap, hptr, hcap)? {
                    return Ok(r);
                }
                // Taken by another thread meanwhile: look again.
                continue;
            }
            Taken::Empty(parked) => {
                if !wait {
                    return Err(Error::Timeout);
                }
                block(deadline);
                // Written straight into the buffer meanwhile: received, no second look-up.
                if parked && let Some(n) = source.collect() {
                    return Ok(n as u64);
                }
                if sched::freeze_asked() {
                    return Err(cut_short());
                }
                // A server on its chain of portal calls died: the wait is given up, and the
                // way back to ring 3 unwinds the call (the result is never seen).
                if sched::unwinding() {
                    return Err(Error::Closed);
                }
            }
        }
        // Then look again (the handle may have been closed meanwhile, by another thread).
    }
}

/// Receives a message that carries handles: room in the table first, then the message, so
/// that nothing is lost when the table is full or a buffer is bad. `None`: the queue was empty
/// by the time it looked (another thread of the process took the message).
fn recv_with_handles(
    source: &Port,
    buf: u64,
    cap: u64,
    hptr: u64,
    hcap: u64,
) -> Result<Option<u64>, Error> {
    let Some((len, count)) = source.peek_size() else {
        return Ok(None);
    };
    if len as u64 > cap || count as u64 > hcap {
        return Err(Error::TooBig);
    }
    let out = UserSlice::new(buf, len)?;
    let hout = UserSlice::new(hptr, count * 4)?;
    // Copy the bytes before taking the message, so a bad buffer loses nothing.
    source.peek_bytes(|b| out.write_from(b)).unwrap_or(Ok(()))?;
    hout.write_from(&vec![0u8; count * 4])?;
    table(|t| t.reserve(count))?.map_err(Error::from)?;
    let msg = source.try_recv()?;
    let items: Vec<(Object, Rights)> = msg
        .handles
        .into_iter()
        .map(|o| {
            let r = o.arrival_rights();
            (o, r)
        })
        .collect();
    let hs = table(|t| t.insert_many(items).map_err(|r| r.error))?.map_err(Error::from)?;
    let raw: Vec<u8> = hs.iter().flat_map(|h| h.0.to_le_bytes()).collect();
    hout.write_from(&raw)?;
    Ok(Some(len as u64 | (count as u64) << 32))
}

#[inline(never)]
fn wait(items_ptr: u64, count: u64, deadline: u64) -> Result<u64, Error> {
    if count == 0 || count > MAX_WAIT_ITEMS as u64 {
        return Err(Error::TooBig);
    }
    let size = core::mem::size_of::<WaitItem>();
    let user = UserSlice::new(items_ptr, count as usize * size)?;
    let mut raw = vec![0u8; count as usize * size];
    user.read_into(&mut raw)?;
    let mut items: Vec<WaitItem> = raw
        .chunks_exact(size)
        .map(|c| WaitItem {
            handle: u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            wanted: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            observed: 0,
            reserved: 0,
        })
        .collect();
    loop {
        let mut ready = None;
        let mut ends = Vec::with_capacity(items.len());
        for (i, it) in items.iter_mut().enumerate() {
            let e = endpoint(Handle(it.handle), Rights::NONE)?;
            it.observed = e.signals();
            if it.observed & it.wanted != 0 && ready.is_none() {
                ready = Some(i);
            }
            ends.push(e);
        }
        if let Some(i) = ready {
            // A plain loop: collecting nested `flat_map`s cost ~30 instructions a byte.
            let mut out = Vec::with_capacity(items.len() * size);
            for it in &items {
                for v in [it.handle, it.wanted, it.observed, 0] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            user.write_from(&out)?;
            return Ok(i as u64);
        }
        if deadline == DEADLINE_NOW || crate::arch::apic::now_ns() >= deadline {
            return Err(Error::Timeout);
        }
        // Register first, then look again (see `recv`).
        for e in &ends {
            e.watch();
        }
        if items
            .iter()
            .zip(&ends)
            .any(|(it, e)| e.signals() & it.wanted != 0)
        {
            continue;
        }
        drop(ends);
        if deadline == DEADLINE_NEVER {
            sched::block();
        } else {
            sched::block_until(deadline);
        }
        if sched::freeze_asked() {
            return Err(cut_short());
        }
        if sched::unwinding() {
            return Err(Error::Closed);
        }
    }
}

#[inline(never)]
fn spawn(req_ptr: u64) -> Result<u64, Error> {
    let size = core::mem::size_of::<SpawnRequest>();
    let mut raw = vec![0u8; size];
    UserSlice::new(req_ptr, size)?.read_into(&mut raw)?;
    let f = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&raw[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    };
    let req = SpawnRequest {
        path: f(0),
        path_len: f(1),
        arg: f(2),
        handles: f(3),
        handle_count: f(4),
        arena_ceiling: f(5),
        stack_size: f(6),
        priority: f(7),
        thread_limit: f(8),
        kernel_stack_pages: f(9),
    };
    if req.path_len as usize > MAX_PATH {
        return Err(Error::TooBig);
    }
    let mut path = vec![0u8; req.path_len as usize];
    UserSlice::new(req.path, path.len())?.read_into(&mut path)?;
    let path = core::str::from_utf8(&path).map_err(|_| Error::Failed)?;
    let moving = read_handles(req.handles, req.handle_count)?;
    let gifts = table(|t| t.remove_many(&moving, Rights::TRANSFER))??;
    unpark_moved(&gifts);
    let opts = SpawnOptions {
        arena_ceiling: req.arena_ceiling,
        stack_size: req.stack_size,
        priority: req.priority,
        core: None,
        thread_limit: match f(8) {
            0 => abi::thread::THREAD_LIMIT,
            n => n,
        },
        kernel_stack_pages: match f(9) {
            0 => abi::thread::KERNEL_STACK_BUDGET,
            n => n,
        },
    };
    match process::spawn_with(path, req.arg, opts, gifts) {
        Ok((pid, parent_end)) => {
            let items = vec![
                (Object::Endpoint(parent_end), Rights::CHANNEL_ALL),
                (Object::Process(pid), Rights::KILL.union(Rights::SUSPEND)),
            ];
            let hs = table(|t| t.insert_many(items).map_err(|r| r.error))?.map_err(Error::from)?;
            Ok(hs[0].0 as u64 | (hs[1].0 as u64) << 32)
        }
        Err((e, back)) => {
            ::log::debug!("spawn {path}: {e}");
            let (objects, rights): (Vec<Object>, Vec<Rights>) = back.into_iter().unzip();
            restore(objects, rights, moving)?;
            Err(e.to_abi())
        }
    }
}

#[inline(never)]
fn kill(h: u64) -> Result<u64, Error> {
    let h = handle(h)?;
    let pid = table(|t| match t.check(h, Rights::KILL)? {
        Object::Process(pid) => Ok(*pid),
        _ => Err(Error::WrongType),
    })??;
    process::die(pid, Death::Killed);
    Ok(0)
}
