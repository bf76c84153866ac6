//! `probe`: a test program. The spawn argument selects what it does, and the in-kernel suite
//! checks the outcome (exit code, fault report, error codes).
#![no_std]
#![no_main]

use abi::Error;
use moxie_rt::println;

/// What each argument does.
mod behaviour {
    pub const EXIT_42: u64 = 0;
    pub const NULL_DEREF: u64 = 1;
    pub const GP_FAULT: u64 = 2;
    pub const INVALID_OPCODE: u64 = 3;
    pub const DIVIDE_BY_ZERO: u64 = 4;
    pub const STACK_OVERFLOW: u64 = 5;
    pub const PANIC: u64 = 6;
    pub const BAD_POINTERS: u64 = 7;
    pub const YIELD_LOOP: u64 = 8;
    pub const SSE_STATE: u64 = 9;
    pub const BENCH_NULL_SYSCALL: u64 = 10;
    pub const ECHO: u64 = 11;
    pub const HOSTILE: u64 = 12;
    pub const BACKPRESSURE_SENDER: u64 = 13;
    pub const PARENT_DIES: u64 = 14;
    pub const ORPHAN: u64 = 15;
    pub const KILLER: u64 = 16;
    pub const YIELD_FOREVER: u64 = 17;
    pub const ARENA: u64 = 18;
    pub const PONG: u64 = 19;
    pub const BENCH_CHANNEL: u64 = 20;
    pub const BENCH_SPAWN: u64 = 21;
    pub const LEDGER: u64 = 22;
    pub const BUSY: u64 = 23;
    pub const SLEEP: u64 = 24;
    pub const RECV_TIMEOUT: u64 = 25;
    pub const BLOCK_SOON: u64 = 26;
    pub const SLEEP_LATENESS: u64 = 27;
    pub const PINGER: u64 = 28;
    pub const PONG_ON: u64 = 29;
    pub const WORK: u64 = 30;
    pub const YIELDER: u64 = 31;
    pub const PONG_CALL: u64 = 32;
    pub const SEND_RECV: u64 = 33;
    pub const DEVICE_HOSTILE: u64 = 36;
    pub const DEVICE_CLOSE_UNMAPS: u64 = 37;
    pub const DEVICE_HOLD: u64 = 38;
    pub const ALLOC_CHURN: u64 = 34;
    pub const SYSTEM: u64 = 35;
    pub const THREADS_BASIC: u64 = 39;
    pub const THREADS_REFUSED: u64 = 40;
    pub const THREADS_JOIN: u64 = 41;
    pub const THREADS_PARK: u64 = 42;
    pub const THREADS_EXIT_WITH_WAITERS: u64 = 43;
    pub const THREADS_FAULT: u64 = 44;
    pub const THREADS_PARALLEL: u64 = 45;
    pub const BENCH_THREADS: u64 = 46;
    pub const PORTAL_SERVER: u64 = 47;
    pub const PORTAL_CLIENT: u64 = 48;
    pub const SUSPEND_COUNTER: u64 = 49;
    pub const SUSPEND_TREE: u64 = 50;
    pub const SUSPEND_THREADS: u64 = 51;
    pub const FLICKER: u64 = 52;
}

mod device;
mod portals;
mod suspend;
mod threads;

/// Yields `n` times; the first of a pair prints instructions per round trip (two yields: one
/// by each of the two threads on the core).
fn yielder(n: u64, report: bool) -> i32 {
    for _ in 0..100 {
        let _ = moxie_rt::yield_now();
    }
    let t0 = tsc();
    for _ in 0..n {
        let _ = moxie_rt::yield_now();
    }
    let t1 = tsc();
    if report {
        println!("bench: yield_rt {} instr", (t1 - t0) / n);
    }
    0
}

/// Sends `n` numbered messages on handle 1 and checks each comes back, in order.
fn pinger(n: u64) -> i32 {
    let h = Handle::new(1, 0);
    let mut buf = [0u8; 8];
    for i in 0..n {
        if chan::send(h, &i.to_le_bytes(), &[]).is_err() {
            return 2;
        }
        match chan::recv(h, &mut buf, &mut [], DEADLINE_NEVER) {
            Ok((8, 0)) if u64::from_le_bytes(buf) == i => {}
            _ => return 3,
        }
    }
    0
}

/// Echoes every message on handle `h` until the channel closes.
fn pong_on(h: u32) -> i32 {
    let h = Handle::new(h as u16, 0);
    let mut buf = alloc::vec![0u8; 4096];
    loop {
        match chan::recv(h, &mut buf, &mut [], DEADLINE_NEVER) {
            Ok((n, _)) => {
                if chan::send(h, &buf[..n], &[]).is_err() {
                    return 0;
                }
            }
            Err(_) => return 0,
        }
    }
}

/// Waits for a message on the parent channel, then does a fixed amount of arithmetic:
/// `millions` million steps of a linear congruential generator.
fn work(millions: u64) -> i32 {
    let mut go = [0u8; 8];
    let _ = chan::recv(PARENT, &mut go, &mut [], DEADLINE_NEVER);
    let start = moxie_rt::cpu_time();
    let mut x = core::hint::black_box(1u64);
    for _ in 0..millions * 1_000_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
    let _ = core::hint::black_box(x);
    // The exit code is the CPU time the work took, in microseconds.
    ((moxie_rt::cpu_time() - start) / 1_000).min(i32::MAX as u64) as i32
}

/// Sleeps `ms` milliseconds and exits with how late it woke, in microseconds.
fn sleep_lateness(ms: u64) -> i32 {
    let target = moxie_rt::now() + ms * 1_000_000;
    moxie_rt::sleep_until(target);
    ((moxie_rt::now().saturating_sub(target)) / 1_000).min(i32::MAX as u64) as i32
}

/// Burns `ms` milliseconds of its own CPU time.
fn busy(ms: u64) -> i32 {
    while moxie_rt::cpu_time() < ms * 1_000_000 {
        core::hint::spin_loop();
    }
    0
}

/// Sleeps `ms` milliseconds; fails if it woke early or more than 1 ms late.
fn sleep(ms: u64) -> i32 {
    let t0 = moxie_rt::now();
    let target = t0 + ms * 1_000_000;
    moxie_rt::sleep_until(target);
    let t1 = moxie_rt::now();
    if t1 < target {
        1
    } else if t1 > target + 1_000_000 {
        2
    } else {
        0
    }
}

/// A receive with a 3 ms deadline on a silent channel times out after 3 ms (not much later).
fn recv_timeout() -> i32 {
    let Ok((_a, b)) = chan::channel_create() else {
        return 1;
    };
    let t0 = moxie_rt::now();
    let deadline = t0 + 3_000_000;
    let mut buf = [0u8; 8];
    if chan::recv(b, &mut buf, &mut [], deadline) != Err(Error::Timeout) {
        return 2;
    }
    let t1 = moxie_rt::now();
    if t1 < deadline {
        3
    } else if t1 > deadline + 1_000_000 {
        4
    } else {
        0
    }
}

/// Works a few microseconds, then blocks on its parent channel until it closes.
/// Never ends, and is seldom in one state for long: spins a few microseconds, sleeps one, yields
/// (so a killer on another core finds it running, blocked or runnable, and it changes meanwhile).
fn flicker() -> i32 {
    let mut spin = 1_000u64;
    loop {
        let t0 = moxie_rt::now();
        while moxie_rt::now() < t0 + spin {
            core::hint::spin_loop();
        }
        moxie_rt::sleep_until(moxie_rt::now() + 1_000);
        let _ = moxie_rt::yield_now();
        spin = (spin * 7 + 1_300) % 9_000;
    }
}

fn block_soon() -> i32 {
    let t0 = moxie_rt::now();
    while moxie_rt::now() < t0 + 20_000 {
        core::hint::spin_loop();
    }
    let mut buf = [0u8; 8];
    let _ = chan::recv(PARENT, &mut buf, &mut [], DEADLINE_NEVER);
    0
}

/// Queues 64 KiB messages nobody reads until the channel-buffer ledger (1 MiB) refuses with
/// `Overloaded`; a receive refunds its bytes; closing refunds the rest.
fn ledger() -> i32 {
    let msg = alloc::vec![7u8; abi::limits::MAX_MESSAGE_BYTES];
    let mut ends = alloc::vec::Vec::new();
    for _ in 0..5 {
        match chan::channel_create() {
            Ok(p) => ends.push(p),
            Err(_) => return 1,
        }
    }
    let per_channel = abi::limits::CHANNEL_MAX_BYTES / msg.len();
    let budget = abi::limits::LEDGER_CHANNEL_BYTES / msg.len();
    let mut sent = 0;
    for (a, _) in &ends[..budget / per_channel] {
        for _ in 0..per_channel {
            if chan::send(*a, &msg, &[]).is_err() {
                return 2;
            }
            sent += 1;
        }
    }
    if sent != budget {
        return 3;
    }
    let (spare, _) = ends[budget / per_channel];
    if chan::send(spare, &msg, &[]) != Err(Error::Overloaded) {
        return 4;
    }
    let mut buf = alloc::vec![0u8; msg.len()];
    if chan::recv(ends[0].1, &mut buf, &mut [], DEADLINE_NOW) != Ok((msg.len(), 0)) {
        return 5;
    }
    if chan::send(spare, &msg, &[]).is_err() {
        return 6;
    }
    if chan::send(spare, &msg, &[]) != Err(Error::Overloaded) {
        return 7;
    }
    for (a, b) in &ends {
        let _ = chan::close(*b);
        let _ = chan::close(*a);
    }
    // Everything queued was dropped with the channels: the whole budget is free again.
    let Ok((a, _b)) = chan::channel_create() else {
        return 8;
    };
    for _ in 0..per_channel {
        if chan::send(a, &msg, &[]).is_err() {
            return 9;
        }
    }
    0
}

fn tsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter, which ring 3 may read.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Returns every message on the parent channel unchanged, until the channel closes.
fn pong() -> i32 {
    let mut buf = alloc::vec![0u8; 4096];
    loop {
        match chan::recv(PARENT, &mut buf, &mut [], DEADLINE_NEVER) {
            Ok((n, _)) => {
                if chan::send(PARENT, &buf[..n], &[]).is_err() {
                    return 2;
                }
            }
            Err(_) => return 0,
        }
    }
}

/// Returns every message on the parent channel unchanged with `send_recv` (reply, then wait
/// for the next one), until the channel closes.
fn pong_call() -> i32 {
    let mut buf = alloc::vec![0u8; 4096];
    let Ok((mut n, _)) = chan::recv(PARENT, &mut buf, &mut [], DEADLINE_NEVER) else {
        return 0;
    };
    let mut reply = alloc::vec![0u8; 4096];
    loop {
        reply[..n].copy_from_slice(&buf[..n]);
        match chan::send_recv(PARENT, &reply[..n], &mut buf, DEADLINE_NEVER) {
            Ok(m) => n = m,
            Err(_) => return 0,
        }
    }
}

/// `send_recv`'s contract, numbered like `hostile`: a send error returns at once and receives
/// nothing; `DEADLINE_NOW` does not wait; a message carrying handles stays queued (`TooBig`); a
/// bad receive buffer loses nothing; a closed peer is `Closed`; a deadline passes; a process
/// handle lacks the rights (`NoRights`); 300 calls of changing sizes to a `pong_call` child (the core
/// handed back and forth, each message written straight into the buffer its receiver waits
/// with) all come back intact; and an answer for a caller waiting with a buffer it may not write
/// stays queued (`BadAddress`) for a receive with a good one. Returns the first failed check, or
/// 0.
fn send_recv_checks() -> i32 {
    use Error::*;
    let mut step = 0;
    let mut check = |ok: bool| {
        step += 1;
        if ok { Ok(()) } else { Err(step) }
    };
    let mut run = || -> Result<(), i32> {
        let mut buf = [0u8; 64];
        let Ok((a, b)) = chan::channel_create() else {
            return Err(100);
        };
        // 1-2: nothing to receive and no waiting: the send happened, the receive times out.
        check(chan::send_recv(a, b"x", &mut buf, DEADLINE_NOW) == Err(Timeout))?;
        check(chan::recv(b, &mut buf, &mut [], DEADLINE_NOW) == Ok((1, 0)) && buf[0] == b'x')?;
        // 3-4: an answer already queued is received at once.
        check(chan::send(b, b"reply", &[]).is_ok())?;
        check(chan::send_recv(a, b"y", &mut buf, DEADLINE_NOW) == Ok(5) && &buf[..5] == b"reply")?;
        let _ = chan::recv(b, &mut buf, &mut [], DEADLINE_NOW);
        // 5-7: a message with a handle stays queued for `recv`.
        let Ok((c, _d)) = chan::channel_create() else {
            return Err(101);
        };
        check(chan::send(b, b"h", &[c]).is_ok())?;
        check(chan::send_recv(a, b"z", &mut buf, DEADLINE_NOW) == Err(TooBig))?;
        let mut hs = [Handle(0); 1];
        check(chan::recv(a, &mut buf, &mut hs, DEADLINE_NOW) == Ok((1, 1)))?;
        let _ = chan::recv(b, &mut buf, &mut [], DEADLINE_NOW);
        // 8-9: a bad receive buffer is `BadAddress` and the message is still there.
        check(chan::send(b, b"kept", &[]).is_ok())?;
        let bad = moxie_rt::syscall6(
            abi::syscall::Sys::SendRecv as u64,
            [a.0 as u64, b"w".as_ptr() as u64, 1, 8, 64, DEADLINE_NOW],
        );
        check(bad == Err(BadAddress))?;
        check(
            chan::recv(a, &mut buf, &mut [], DEADLINE_NOW) == Ok((4, 0)) && &buf[..4] == b"kept",
        )?;
        let _ = chan::recv(b, &mut buf, &mut [], DEADLINE_NOW);
        // 10-11: a full peer: the send fails and nothing is received.
        check(chan::send(b, b"stays", &[]).is_ok())?;
        while chan::send(a, b"fill", &[]).is_ok() {}
        check(
            chan::send_recv(a, b"v", &mut buf, DEADLINE_NOW) == Err(Full)
                && chan::recv(a, &mut buf, &mut [], DEADLINE_NOW) == Ok((5, 0)),
        )?;
        // 12: a deadline passes.
        while chan::recv(b, &mut buf, &mut [], DEADLINE_NOW).is_ok() {}
        let deadline = moxie_rt::now() + 2_000_000;
        check(
            chan::send_recv(a, b"t", &mut buf, deadline) == Err(Timeout)
                && moxie_rt::now() >= deadline,
        )?;
        // 13: a closed peer.
        let _ = chan::close(b);
        check(chan::send_recv(a, b"u", &mut buf, DEADLINE_NEVER) == Err(Closed))?;
        // 14-15: a process handle is the wrong type; a pong_call child answers 300 calls.
        let Ok((ch, proc_h)) = chan::spawn("bin/probe", behaviour::PONG_CALL, &[]) else {
            return Err(102);
        };
        check(chan::send_recv(proc_h, b"p", &mut buf, DEADLINE_NOW) == Err(NoRights))?;
        let mut big = alloc::vec![0u8; 4096];
        let mut ok = true;
        for i in 0..300usize {
            let n = (i * 37) % 4096 + 1;
            let msg: alloc::vec::Vec<u8> = (0..n).map(|k| (k + i) as u8).collect();
            let r = chan::send_recv(ch, &msg, &mut big, DEADLINE_NEVER);
            if r != Ok(n) || big[..n] != msg[..] {
                println!("send_recv: call {} of {} bytes came back as {:?}", i, n, r);
                ok = false;
                break;
            }
        }
        check(ok)?;
        // 16-17: waiting for the answer with a buffer the process may not write (in its
        // read-only image): the answer cannot be written straight into it, so it is queued, the
        // call says `BadAddress`, and the answer is still there for a receive with a good
        // buffer.
        static READ_ONLY: [u8; 8] = *b"readonly";
        let bad = moxie_rt::syscall6(
            abi::syscall::Sys::SendRecv as u64,
            [
                ch.0 as u64,
                b"ro".as_ptr() as u64,
                2,
                READ_ONLY.as_ptr() as u64,
                READ_ONLY.len() as u64,
                DEADLINE_NEVER,
            ],
        );
        check(bad == Err(BadAddress))?;
        check(chan::recv(ch, &mut buf, &mut [], DEADLINE_NOW) == Ok((2, 0)) && &buf[..2] == b"ro")?;
        let _ = chan::close(ch);
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(n) => n,
    }
}

/// Round trips (send + receive both ways) with a child on the same core, for 8 B, 256 B and
/// 4 KiB messages: with separate `send` and `recv` calls on both sides (`channel_rt_*`), then
/// with `send_recv` on both sides (`channel_call_rt_*`).
fn bench_channel() -> i32 {
    let r = bench_round_trips(behaviour::PONG, "channel_rt", |ch, msg, buf| {
        chan::send(ch, msg, &[])?;
        chan::recv(ch, buf, &mut [], DEADLINE_NEVER).map(|(n, _)| n)
    });
    if r != 0 {
        return r;
    }
    bench_round_trips(behaviour::PONG_CALL, "channel_call_rt", |ch, msg, buf| {
        chan::send_recv(ch, msg, buf, DEADLINE_NEVER)
    })
}

fn bench_round_trips(
    partner: u64,
    name: &str,
    round_trip: impl Fn(Handle, &[u8], &mut [u8]) -> Result<usize, Error>,
) -> i32 {
    let Ok((ch, _proc)) = chan::spawn("bin/probe", partner, &[]) else {
        return 1;
    };
    let mut buf = alloc::vec![0u8; 4096];
    for size in [8usize, 256, 4096] {
        let msg = alloc::vec![0xa5u8; size];
        const N: u64 = 2000;
        for _ in 0..50 {
            let _ = round_trip(ch, &msg, &mut buf);
        }
        let t0 = tsc();
        for _ in 0..N {
            if round_trip(ch, &msg, &mut buf) != Ok(size) {
                return 2;
            }
        }
        let t1 = tsc();
        println!("bench: {}_{} {} instr", name, size, (t1 - t0) / N);
    }
    let _ = chan::close(ch);
    0
}

/// Spawn a child that exits at once, and receive its death report.
fn bench_spawn() -> i32 {
    const N: u64 = 100;
    let mut buf = [0u8; abi::syscall::DeathReport::SIZE];
    let t0 = tsc();
    for _ in 0..N {
        let Ok((ch, ph)) = chan::spawn("bin/probe", behaviour::EXIT_42, &[]) else {
            return 1;
        };
        if chan::recv(ch, &mut buf, &mut [], DEADLINE_NEVER).is_err() {
            return 2;
        }
        let _ = chan::close(ch);
        let _ = chan::close(ph);
    }
    let t1 = tsc();
    println!("bench: spawn_exit {} instr", (t1 - t0) / N);
    0
}

extern crate alloc;

use abi::Handle;
use abi::syscall::{DEADLINE_NEVER, DEADLINE_NOW, WaitItem, signal};
use behaviour::{ORPHAN, YIELD_FOREVER};
use moxie_rt::chan;

const PARENT: Handle = Handle::PARENT;

/// Echoes every message on the parent channel back with an `echo:` prefix until `exit`.
fn echo() -> i32 {
    let mut buf = [0u8; 256];
    loop {
        let Ok((n, _)) = chan::recv(PARENT, &mut buf, &mut [], DEADLINE_NEVER) else {
            return 2;
        };
        if &buf[..n] == b"exit" {
            return 0;
        }
        let mut out = alloc::vec::Vec::from(&b"echo:"[..]);
        out.extend_from_slice(&buf[..n]);
        if chan::send(PARENT, &out, &[]).is_err() {
            return 3;
        }
    }
}

/// Every misuse of handles gets its documented error and changes nothing; returns the number
/// of the first check that failed, or 0.
fn hostile() -> i32 {
    use Error::*;
    let mut step = 0;
    let mut check = |ok: bool| {
        step += 1;
        if ok { Ok(()) } else { Err(step) }
    };
    let mut run = || -> Result<(), i32> {
        // Forged indexes.
        check(chan::close(Handle(0x7777)) == Err(InvalidHandle))?;
        check(chan::send(Handle(500), b"x", &[]) == Err(InvalidHandle))?;
        // Stale generation after close, even once the slot is reused.
        let (a, _b) = chan::channel_create().map_err(|_| 100)?;
        check(chan::close(a).is_ok())?;
        check(chan::send(a, b"x", &[]) == Err(InvalidHandle))?;
        let (c, d) = chan::channel_create().map_err(|_| 101)?;
        check(c.index() == a.index() && c != a)?;
        check(chan::send(a, b"x", &[]) == Err(InvalidHandle))?;
        check(chan::send(c, b"ok", &[]).is_ok())?;
        let mut buf = [0u8; 16];
        check(chan::recv(d, &mut buf, &mut [], DEADLINE_NOW) == Ok((2, 0)))?;
        // Wrong types and missing rights.
        let (pc, ph) = chan::spawn("bin/probe", YIELD_FOREVER, &[]).map_err(|_| 102)?;
        let mut items = [WaitItem {
            handle: ph.0,
            wanted: signal::READABLE,
            ..Default::default()
        }];
        check(chan::wait(&mut items, DEADLINE_NOW) == Err(WrongType))?;
        check(chan::kill(pc) == Err(NoRights))?;
        check(chan::send(ph, b"x", &[]) == Err(NoRights))?;
        check(chan::kill(ph).is_ok())?;
        // A handle given away in a message is gone from the sender.
        let (x, y) = chan::channel_create().map_err(|_| 103)?;
        let (p, q) = chan::channel_create().map_err(|_| 104)?;
        check(chan::send(p, b"take", &[x]).is_ok())?;
        check(chan::send(x, b"x", &[]) == Err(InvalidHandle))?;
        let mut hs = [Handle(0); 1];
        let got = chan::recv(q, &mut buf, &mut hs, DEADLINE_NOW);
        check(got == Ok((4, 1)))?;
        check(chan::send(hs[0], b"hi", &[]).is_ok())?;
        check(chan::recv(y, &mut buf, &mut [], DEADLINE_NOW) == Ok((2, 0)))?;
        // Bad pointers and sizes: refused, nothing sent.
        check(chan::send_raw(p.0 as u64, 0, 8, 0, 0) == Err(BadAddress))?;
        check(chan::send_raw(p.0 as u64, buf.as_ptr() as u64, 1, 0, 1) == Err(BadAddress))?;
        check(chan::send_raw(p.0 as u64, 0xffff_8000_0000_0000, 8, 0, 0) == Err(BadAddress))?;
        check(chan::send_raw(p.0 as u64, buf.as_ptr() as u64, 1 << 20, 0, 0) == Err(TooBig))?;
        check(
            chan::send_raw(p.0 as u64, buf.as_ptr() as u64, 1, buf.as_ptr() as u64, 9)
                == Err(TooBig),
        )?;
        check(chan::recv(q, &mut buf, &mut [], DEADLINE_NOW) == Err(Timeout))?;
        // An endpoint may not travel through its own channel; it stays with the sender.
        check(chan::send(p, b"self", &[q]) == Err(Failed))?;
        check(chan::send(q, b"still mine", &[]).is_ok())?;
        // A receive buffer that is too small leaves the message queued.
        check(chan::send(p, b"0123456789", &[]).is_ok())?;
        let mut small = [0u8; 4];
        check(chan::recv(q, &mut small, &mut [], DEADLINE_NOW) == Err(TooBig))?;
        check(chan::recv(q, &mut buf, &mut [], DEADLINE_NOW) == Ok((10, 0)))?;
        // Receiving into a bad buffer fails and keeps the message.
        check(chan::send(p, b"kept", &[]).is_ok())?;
        check(chan::recv(q, unsafe_bad_buffer(), &mut [], DEADLINE_NOW) == Err(BadAddress))?;
        check(chan::recv(q, read_only_buffer(), &mut [], DEADLINE_NOW) == Err(BadAddress))?;
        check(chan::recv(q, &mut buf, &mut [], DEADLINE_NOW) == Ok((4, 0)))?;
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(step) => step,
    }
}

/// A slice whose pointer is in the kernel half: the kernel must refuse to write there.
fn unsafe_bad_buffer() -> &'static mut [u8] {
    // SAFETY: never dereferenced here; only its address and length reach the kernel, which
    // checks them and refuses.
    unsafe { core::slice::from_raw_parts_mut(0xffff_8000_0000_1000 as *mut u8, 16) }
}

/// A slice over the module's read-only data: the kernel must refuse to write there.
fn read_only_buffer() -> &'static mut [u8] {
    static TEXT: [u8; 16] = *b"read-only bytes!";
    // SAFETY: never written here; the kernel's write to it faults on the read-only page and is
    // turned into `BadAddress`.
    unsafe { core::slice::from_raw_parts_mut(TEXT.as_ptr() as *mut u8, TEXT.len()) }
}

/// Sends 200 numbered messages on the parent channel; on `Full` waits for room. Ends with a
/// `done` message carrying how many sends met `Full`.
fn backpressure_sender() -> i32 {
    let mut fulls = 0u32;
    let mut i = 0u32;
    while i < 200 {
        match chan::send(PARENT, &i.to_le_bytes(), &[]) {
            Ok(()) => i += 1,
            Err(Error::Full) => {
                fulls += 1;
                let mut items = [WaitItem {
                    handle: PARENT.0,
                    wanted: signal::WRITABLE,
                    ..Default::default()
                }];
                if chan::wait(&mut items, DEADLINE_NEVER) != Ok(0) {
                    return 2;
                }
            }
            Err(_) => return 3,
        }
    }
    let mut done = alloc::vec::Vec::from(&b"done"[..]);
    done.extend_from_slice(&fulls.to_le_bytes());
    loop {
        match chan::send(PARENT, &done, &[]) {
            Ok(()) => return 0,
            Err(Error::Full) => {
                let _ = moxie_rt::yield_now();
            }
            Err(_) => return 4,
        }
    }
}

/// Spawns an orphan (moving it handle 1, the test's report channel) and exits at once.
fn parent_dies() -> i32 {
    match chan::spawn("bin/probe", ORPHAN, &[Handle::new(1, 0)]) {
        Ok(_) => 0,
        Err(_) => 1,
    }
}

/// Runs after its parent died: sends on the parent channel must succeed (into a void), and
/// receives must report `Closed`. Tells the test on handle 1.
fn orphan() -> i32 {
    for _ in 0..20 {
        let _ = moxie_rt::yield_now();
    }
    let report = Handle::new(1, 0);
    let sent = chan::send(PARENT, b"anyone?", &[]);
    let mut buf = [0u8; 8];
    let got = chan::recv(PARENT, &mut buf, &mut [], DEADLINE_NOW);
    let verdict: &[u8] = if sent.is_ok() && got == Err(Error::Closed) {
        b"orphan ok"
    } else {
        b"orphan bad"
    };
    let _ = chan::send(report, verdict, &[]);
    0
}

/// Spawns a child that never stops, kills it, and checks the death report says so.
fn killer() -> i32 {
    let Ok((pc, ph)) = chan::spawn("bin/probe", YIELD_FOREVER, &[]) else {
        return 1;
    };
    let _ = moxie_rt::yield_now();
    if chan::kill(ph).is_err() {
        return 2;
    }
    let mut buf = [0u8; abi::syscall::DeathReport::SIZE];
    match chan::recv(pc, &mut buf, &mut [], DEADLINE_NEVER) {
        Ok((n, 0)) => match abi::syscall::DeathReport::from_bytes(&buf[..n]) {
            Some(r) if r.kind == abi::syscall::DEATH_KILLED => {}
            _ => return 3,
        },
        _ => return 4,
    }
    // After the report, the channel is closed.
    if chan::recv(pc, &mut buf, &mut [], DEADLINE_NOW) != Err(Error::Closed) {
        return 5;
    }
    0
}

/// Fills `mib` MiB of the arena through the global allocator.
fn arena(mib: u64) -> i32 {
    let mut v: alloc::vec::Vec<u8> = alloc::vec::Vec::new();
    v.resize((mib << 20) as usize, 0x5a);
    if v.iter().step_by(4096).all(|&b| b == 0x5a) {
        0
    } else {
        1
    }
}

/// 100,000 allocations and frees of mixed sizes (1 B to 16 KiB, a few of 64 KiB) through the
/// global allocator, with up to 64 blocks live at once, each filled with a pattern checked
/// before it is freed. With an allocator that reuses freed blocks the arena stays near the
/// peak live size (about 1 MiB); a bump allocator would need gigabytes and hit the ceiling.
/// Exits 0, or 1 for a corrupted block, 2 when the heap spans more than 3 MiB at the end, 3
/// when blocks are still counted as live after all were freed.
fn alloc_churn() -> i32 {
    use alloc::vec::Vec;
    let start = moxie_rt::arena::usage();
    let mut live: Vec<Option<Vec<u8>>> = (0..64).map(|_| None).collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..100_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let slot = (x % 64) as usize;
        if let Some(old) = live[slot].take() {
            let mark = old.len() as u8;
            if old.iter().any(|&b| b != mark) {
                return 1;
            }
        }
        let size = match (x >> 8) % 100 {
            0 => 64 << 10,
            1..=9 => ((x >> 16) % (16 << 10)) as usize + 1,
            _ => ((x >> 16) % 512) as usize + 1,
        };
        let mut v = Vec::with_capacity(size);
        v.resize(size, size as u8);
        live[slot] = Some(v);
        if i % 25_000 == 0 {
            let u = moxie_rt::arena::usage();
            println!(
                "probe: churn {}: {} B live in {} blocks, heap spans {} KiB",
                i,
                u.allocated,
                u.allocations,
                u.arena >> 10
            );
        }
    }
    drop(live);
    let end = moxie_rt::arena::usage();
    println!(
        "probe: churn done: heap spans {} KiB, {} B still allocated",
        end.arena >> 10,
        end.allocated
    );
    if end.arena > 3 << 20 {
        return 2;
    }
    if end.allocations > start.allocations {
        return 3;
    }
    0
}

/// The system and console calls, numbered like `hostile`: the test gives this probe handle 1,
/// a system handle with only inspect + transfer; handle 2, a console handle with only send;
/// handle 3, a system handle with only kill. Each call is refused without a system or
/// console handle (the parent channel, a forged handle, a closed one) and without its right;
/// rights survive duplication (reduced, never added) and a trip through a channel. Returns
/// the first failed check, or 0.
fn system_checks() -> i32 {
    use Error::*;
    use abi::Rights;
    use moxie_rt::system as sys;
    let inspect = Handle::new(1, 0);
    let console = Handle::new(2, 0);
    let killer = Handle::new(3, 0);
    let mut step = 0;
    let mut check = |ok: bool| {
        step += 1;
        if ok { Ok(()) } else { Err(step) }
    };
    let mut run = || -> Result<(), i32> {
        // 1-8: without a system or console handle, nothing.
        check(sys::processes(PARENT) == Err(WrongType))?;
        check(sys::kill(PARENT, 1) == Err(WrongType))?;
        check(sys::memory(PARENT) == Err(WrongType))?;
        check(sys::power_off(PARENT) == WrongType)?;
        check(sys::console_attach(PARENT) == Err(WrongType))?;
        check(sys::console_write(PARENT, b"x") == Err(WrongType))?;
        check(sys::processes(Handle(0x7777)) == Err(InvalidHandle))?;
        check(sys::power_off(Handle(0x7777)) == InvalidHandle)?;
        // 9-10: a channel endpoint cannot be duplicated; the parent channel lacks transfer.
        let (a, b) = chan::channel_create().map_err(|_| 100)?;
        check(sys::duplicate(a, Rights::CHANNEL_ALL) == Err(WrongType))?;
        check(sys::duplicate(PARENT, Rights::CHANNEL_ALL) == Err(NoRights))?;
        // 11-13: inspect works and shows this process (spawned by the kernel: parent 0).
        let me = sys::processes(inspect).map_err(|_| 11)?;
        check(!me.is_empty())?;
        let mine = me.iter().find(|p| p.name() == "probe" && p.parent == 0);
        check(mine.is_some_and(|p| {
            p.threads == 1 && p.state == abi::system::STATE_RUNNING && p.arena_bytes > 0
        }))?;
        let m = sys::memory(inspect).map_err(|_| 13)?;
        check(m.free_frames > 0 && m.total_frames >= m.free_frames && m.processes >= 1)?;
        // 14-15: but not kill or power off.
        check(sys::kill(inspect, 1) == Err(NoRights))?;
        check(sys::power_off(inspect) == NoRights)?;
        // 16-18: bad buffers; a zero-sized buffer only counts.
        check(sys::processes_raw(inspect, 8, 4096) == Err(BadAddress))?;
        check(sys::processes_raw(inspect, 0, 0) == Ok(me.len() as u64))?;
        check(
            moxie_rt::syscall6(
                abi::syscall::Sys::SystemMemory as u64,
                [1, 0xffff_8000_0000_0000, 0, 0, 0, 0],
            ) == Err(BadAddress),
        )?;
        // 19-21: the console handle writes but cannot attach or be passed on.
        check(sys::console_write(console, b"probe: console output\n").is_ok())?;
        check(sys::console_attach(console) == Err(NoRights))?;
        check(sys::duplicate(console, Rights::CONSOLE_ALL) == Err(NoRights))?;
        // 22-24: a duplicate has at most the rights of the original.
        let dup = sys::duplicate(inspect, abi::Rights::SYSTEM_ALL).map_err(|_| 22)?;
        check(sys::processes(dup).is_ok())?;
        check(sys::kill(dup, 1) == Err(NoRights))?;
        check(sys::duplicate(dup, Rights::INSPECT).is_ok())?;
        // 25-27: a system handle keeps its rights through a channel.
        check(chan::send(a, b"sys", &[dup]).is_ok())?;
        let mut buf = [0u8; 8];
        let mut hs = [Handle(0); 1];
        check(chan::recv(b, &mut buf, &mut hs, DEADLINE_NOW) == Ok((3, 1)))?;
        check(sys::processes(hs[0]).is_ok() && sys::kill(hs[0], 1) == Err(NoRights))?;
        // 28-31: the kill-only handle: no inspect; no such pid; a child killed by pid.
        check(sys::processes(killer) == Err(NoRights))?;
        check(sys::kill(killer, 999_999) == Err(NotFound))?;
        let (child, _ph) = chan::spawn("bin/probe", YIELD_FOREVER, &[]).map_err(|_| 101)?;
        let list = sys::processes(inspect).map_err(|_| 102)?;
        let pid = list.iter().map(|p| p.pid).max().ok_or(103)?;
        check(sys::kill(killer, pid).is_ok())?;
        let mut rep = [0u8; abi::syscall::DeathReport::SIZE];
        let got = chan::recv(child, &mut rep, &mut [], DEADLINE_NEVER);
        check(
            matches!(got, Ok((n, 0)) if abi::syscall::DeathReport::from_bytes(&rep[..n])
            .is_some_and(|r| r.kind == abi::syscall::DEATH_KILLED && r.pid == pid)),
        )?;
        // 32: a closed system handle is gone.
        check(chan::close(inspect).is_ok() && sys::processes(inspect) == Err(InvalidHandle))?;
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(n) => n,
    }
}

/// Prints the instructions per null system call (the TSC counts instructions under icount).
fn bench_null() -> i32 {
    const N: u64 = 10_000;
    // Warm up the path (TLB, caches of the emulator) before measuring.
    for _ in 0..100 {
        let _ = moxie_rt::null();
    }
    // SAFETY: rdtsc only reads the time-stamp counter, which ring 3 may read.
    let t0 = unsafe { core::arch::x86_64::_rdtsc() };
    for _ in 0..N {
        let _ = moxie_rt::null();
    }
    // SAFETY: as above.
    let t1 = unsafe { core::arch::x86_64::_rdtsc() };
    println!("bench: null_syscall {} instr", (t1 - t0) / N);
    0
}

#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    let pad = core::hint::black_box([n; 32]);
    recurse(n + 1) + pad[3]
}

/// Each bad pointer must give `BadAddress`; returns the number of checks that passed, or exits
/// with the index of the first that did not.
fn bad_pointers() -> i32 {
    let cases: [(u64, u64); 6] = [
        (0, 8),                         // null
        (0xffff_8000_0000_0000, 8),     // kernel half
        (0x7fff_ffff_fff0, 64),         // runs into the kernel half
        (u64::MAX - 4, 16),             // overflows
        (0x5000_0000_0000, 8),          // unmapped
        (abi::layout::USER_END - 1, 2), // straddles the end of the user half
    ];
    for (i, (p, n)) in cases.iter().enumerate() {
        if moxie_rt::log_raw(*p, *n) != Err(Error::BadAddress) {
            return 100 + i as i32;
        }
    }
    if moxie_rt::log_raw(0x1000, (abi::syscall::MAX_LOG_BYTES + 1) as u64) != Err(Error::TooBig) {
        return 120;
    }
    if moxie_rt::syscall6(0xdead, [0; 6]) != Err(Error::BadSyscall) {
        return 121;
    }
    0
}

/// Puts a value in xmm0, yields to other threads many times, and checks it survived.
fn sse_state(arg: u64) -> i32 {
    let mark = 0x5151_0000_0000_0000u64 | arg;
    // SAFETY: writes xmm0, which no Rust code in this soft-float program uses.
    unsafe { core::arch::asm!("movq xmm0, {}", in(reg) mark) };
    for _ in 0..50 {
        let _ = moxie_rt::yield_now();
    }
    let got: u64;
    // SAFETY: reads xmm0 back.
    unsafe { core::arch::asm!("movq {}, xmm0", out(reg) got) };
    if got == mark { 0 } else { 1 }
}

/// Entry, called by the runtime.
#[unsafe(no_mangle)]
pub extern "C" fn main(arg: u64) -> i32 {
    use behaviour::*;
    match arg & 0xff {
        EXIT_42 => 42,
        NULL_DEREF => {
            // SAFETY: deliberately not: the fault is the test.
            unsafe {
                core::ptr::read_volatile(core::hint::black_box(
                    core::ptr::without_provenance::<u64>(8),
                )) as i32
            }
        }
        GP_FAULT => {
            // SAFETY: deliberately not: a non-canonical address raises #GP.
            unsafe {
                core::ptr::read_volatile(core::hint::black_box(
                    0x8000_0000_0000_0000u64 as *const u64,
                )) as i32
            }
        }
        INVALID_OPCODE => {
            // SAFETY: deliberately not: ud2 raises #UD.
            unsafe { core::arch::asm!("ud2") };
            0
        }
        DIVIDE_BY_ZERO => {
            let zero = core::hint::black_box(0u64);
            // SAFETY: deliberately not: div by zero raises #DE (asm, so Rust's check is bypassed).
            unsafe {
                core::arch::asm!("div {}", in(reg) zero, inout("rax") 1u64 => _, inout("rdx") 0u64 => _)
            };
            0
        }
        STACK_OVERFLOW => recurse(0) as i32,
        PANIC => panic!("probe panics on purpose"),
        BAD_POINTERS => bad_pointers(),
        YIELD_LOOP => {
            for i in 0..(arg >> 8) {
                println!("probe: yield {}", i);
                let _ = moxie_rt::yield_now();
            }
            7
        }
        SSE_STATE => sse_state(arg >> 8),
        BENCH_NULL_SYSCALL => bench_null(),
        ECHO => echo(),
        HOSTILE => hostile(),
        BACKPRESSURE_SENDER => backpressure_sender(),
        PARENT_DIES => parent_dies(),
        ORPHAN => orphan(),
        KILLER => killer(),
        YIELD_FOREVER => loop {
            let _ = moxie_rt::yield_now();
        },
        ARENA => arena(arg >> 8),
        PONG => pong(),
        BENCH_CHANNEL => bench_channel(),
        BENCH_SPAWN => bench_spawn(),
        LEDGER => ledger(),
        BUSY => busy(arg >> 8),
        SLEEP => sleep(arg >> 8),
        RECV_TIMEOUT => recv_timeout(),
        BLOCK_SOON => block_soon(),
        SLEEP_LATENESS => sleep_lateness(arg >> 8),
        PINGER => pinger(arg >> 8),
        PONG_ON => pong_on((arg >> 8) as u32),
        WORK => work(arg >> 8),
        YIELDER => yielder((arg >> 9) & 0xffff_ffff, arg & (1 << 8) != 0),
        PONG_CALL => pong_call(),
        SEND_RECV => send_recv_checks(),
        DEVICE_HOSTILE => device::hostile(),
        DEVICE_CLOSE_UNMAPS => device::close_unmaps(),
        DEVICE_HOLD => device::hold(),
        ALLOC_CHURN => alloc_churn(),
        SYSTEM => system_checks(),
        THREADS_BASIC => threads::basic(),
        THREADS_REFUSED => threads::refusals(arg >> 8),
        THREADS_JOIN => threads::join_rules(),
        THREADS_PARK => threads::park(),
        THREADS_EXIT_WITH_WAITERS => threads::exit_with_waiters(),
        THREADS_FAULT => threads::fault_in_thread(),
        THREADS_PARALLEL => threads::parallel(),
        BENCH_THREADS => threads::bench(),
        PORTAL_SERVER => portals::server(),
        PORTAL_CLIENT => portals::client(arg >> 8),
        SUSPEND_COUNTER => suspend::counter(),
        SUSPEND_TREE => suspend::tree(),
        SUSPEND_THREADS => suspend::threads(),
        FLICKER => flicker(),
        other => {
            println!("probe: unknown behaviour {}", other);
            1
        }
    }
}
