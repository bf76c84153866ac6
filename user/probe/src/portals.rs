//! The probe's portal behaviours (47: a server, 48: a client running one scenario), checked by
//! the in-kernel portal cases; numbered checks like `threads`.
use abi::Error::*;
use abi::syscall::{DEADLINE_NEVER, DeathReport};
use abi::{Handle, Rights};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use moxie_rt::portal::{self, Call};
use moxie_rt::thread;
use moxie_rt::{chan, println};

const PARENT: Handle = Handle::PARENT;
/// The badge every probe server's portal carries.
pub const BADGE: u64 = 0xb0;

/// Server operations (`a0`).
mod op {
    pub const ADD: u64 = 0;
    pub const WHO: u64 = 1;
    pub const INFO: u64 = 2;
    pub const TOGETHER: u64 = 3;
    pub const READ: u64 = 4;
    pub const CRASH: u64 = 5;
    pub const NESTED: u64 = 6;
    pub const WAIT: u64 = 7;
    pub const RECV: u64 = 8;
    pub const VECTORS: u64 = 9;
    pub const FS: u64 = 10;
}

static INSIDE: AtomicU32 = AtomicU32::new(0);
static PEAK: AtomicU32 = AtomicU32::new(0);
static NESTED: AtomicU64 = AtomicU64::new(u64::MAX);

fn handler(c: &Call) -> (u64, u64) {
    let [a0, a1, a2, a3] = c.args;
    match a0 {
        op::ADD => (a1.wrapping_add(a2), a3 ^ c.badge),
        op::WHO => (c.caller, c.tid),
        op::INFO => {
            let local = 0u64;
            (c.badge, core::ptr::addr_of!(local) as u64)
        }
        op::TOGETHER => {
            // The most visitors inside at once, as each entering one sees it; stay until it
            // reached two (or two seconds pass), so the first waits for the second.
            let now = INSIDE.fetch_add(1, Ordering::AcqRel) + 1;
            PEAK.fetch_max(now, Ordering::AcqRel);
            let end = moxie_rt::now() + 2_000_000_000;
            while PEAK.load(Ordering::Acquire) < 2 && moxie_rt::now() < end {
                core::hint::spin_loop();
            }
            INSIDE.fetch_sub(1, Ordering::AcqRel);
            (PEAK.load(Ordering::Acquire) as u64, 0)
        }
        // SAFETY: deliberately reads an address of the caller's (it must fault here).
        op::READ => (unsafe { core::ptr::read_volatile(a1 as *const u64) }, 0),
        op::CRASH => {
            // SAFETY: deliberately faults.
            unsafe {
                core::ptr::read_volatile(core::hint::black_box(
                    core::ptr::without_provenance::<u64>(8),
                ))
            };
            (0, 0)
        }
        op::NESTED => match portal::call(
            Handle(NESTED.load(Ordering::Acquire) as u32),
            [a1, a2, a3, 0],
        ) {
            Ok((r0, r1)) => (0, r0 ^ r1),
            Err(e) => (e as u64, 0),
        },
        op::WAIT => {
            // a1: a deadline; a2: 1 sleeps (a blocked visitor), 0 spins (a running one).
            if a2 == 1 {
                moxie_rt::sleep_until(a1);
            } else {
                while moxie_rt::now() < a1 {
                    core::hint::spin_loop();
                }
            }
            (1, 0)
        }
        op::RECV => {
            // Blocks in a wait that nothing ever ends (both channel ends stay here): a1 says
            // which: 0 a receive, 1 a send-and-receive, 2 a multi-wait, 3 a park, 4 a join.
            let Ok((a, b)) = chan::channel_create() else {
                return (2, 0);
            };
            let mut buf = [0u8; 8];
            let r = match a1 {
                0 => chan::recv(a, &mut buf, &mut [], DEADLINE_NEVER).map(drop),
                1 => {
                    // The peer end's receive side fills up with nothing: the send goes into
                    // b's queue, nobody answers on a.
                    chan::send_recv(a, b"x", &mut buf, DEADLINE_NEVER).map(drop)
                }
                2 => {
                    let mut items = [abi::syscall::WaitItem {
                        handle: a.0,
                        wanted: abi::syscall::signal::READABLE,
                        observed: 0,
                        reserved: 0,
                    }];
                    chan::wait(&mut items, DEADLINE_NEVER).map(drop)
                }
                3 => {
                    static WORD: AtomicU32 = AtomicU32::new(0);
                    thread::park_wait(&WORD, 0, DEADLINE_NEVER).map(drop)
                }
                _ => {
                    // A join of a thread of C's that never ends.
                    static WORD: AtomicU32 = AtomicU32::new(0);
                    match thread::spawn(|| {
                        let _ = thread::park_wait(&WORD, 0, DEADLINE_NEVER);
                        0
                    }) {
                        Ok(t) => t.join().map(drop).map_err(|_| Failed),
                        Err(_) => Err(Failed),
                    }
                }
            };
            let _ = (chan::close(a), chan::close(b));
            (3, r.is_ok() as u64)
        }
        op::VECTORS => {
            // What the caller left in the vector registers (seen on entry), then a secret of
            // the server's in all of them for the return.
            let seen = vectors::holding(a1);
            vectors::fill(a2);
            if a3 == 1 {
                // Dies holding them: the caller is unwound.
                // SAFETY: deliberately faults.
                unsafe {
                    core::ptr::read_volatile(core::hint::black_box(
                        core::ptr::without_provenance::<u64>(8),
                    ))
                };
            }
            (seen as u64, 0)
        }
        op::FS => {
            // The FS base the visitor has here (a1 = 1: set one first, and read through it).
            if a1 == 1 {
                static MARK: [u64; 1] = [0xf5_f5];
                if thread::set_fs_base(MARK.as_ptr() as u64).is_err() {
                    return (u64::MAX, 0);
                }
                return (thread::fs_base(), thread::fs_self());
            }
            (thread::fs_base(), 0)
        }
        _ => (u64::MAX, 0),
    }
}

/// The SSE registers as a portal call leaves them (see `docs/portals.md`).
mod vectors {
    /// Writes `v` into both halves of xmm0..xmm15.
    #[inline(always)]
    pub fn fill(v: u64) {
        // SAFETY: only writes vector registers, which the calling convention lets any call
        // clobber.
        unsafe {
            core::arch::asm!(
                "movq xmm0, {v}", "punpcklqdq xmm0, xmm0",
                "movdqa xmm1, xmm0", "movdqa xmm2, xmm0", "movdqa xmm3, xmm0",
                "movdqa xmm4, xmm0", "movdqa xmm5, xmm0", "movdqa xmm6, xmm0",
                "movdqa xmm7, xmm0", "movdqa xmm8, xmm0", "movdqa xmm9, xmm0",
                "movdqa xmm10, xmm0", "movdqa xmm11, xmm0", "movdqa xmm12, xmm0",
                "movdqa xmm13, xmm0", "movdqa xmm14, xmm0", "movdqa xmm15, xmm0",
                v = in(reg) v,
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                options(nostack, nomem)
            );
        }
    }

    /// How many of xmm0..xmm15 hold `v` in their low half right now.
    #[inline(always)]
    pub fn holding(v: u64) -> u32 {
        let mut out = [0u64; 16];
        // SAFETY: stores the sixteen registers' low halves into `out`, 16 words.
        unsafe {
            core::arch::asm!(
                "movq [{o}], xmm0", "movq [{o} + 8], xmm1", "movq [{o} + 16], xmm2",
                "movq [{o} + 24], xmm3", "movq [{o} + 32], xmm4", "movq [{o} + 40], xmm5",
                "movq [{o} + 48], xmm6", "movq [{o} + 56], xmm7", "movq [{o} + 64], xmm8",
                "movq [{o} + 72], xmm9", "movq [{o} + 80], xmm10", "movq [{o} + 88], xmm11",
                "movq [{o} + 96], xmm12", "movq [{o} + 104], xmm13", "movq [{o} + 112], xmm14",
                "movq [{o} + 120], xmm15",
                o = in(reg) out.as_mut_ptr(),
                options(nostack)
            );
        }
        out.iter().filter(|&&x| x == v).count() as u32
    }

    /// Calls portal `h` with operation `op` and `a1 = mine`, `a2 = theirs`, with `mine` in
    /// every vector register at the `syscall` and the registers read right after it: (status,
    /// r0, how many registers hold `theirs` after the return).
    pub fn call(h: u64, op: u64, mine: u64, theirs: u64, a3: u64) -> (u64, u64, u32) {
        let (status, r0): (u64, u64);
        let mut out = [0u64; 16];
        // SAFETY: `mine` into every vector register, then the portal_call system call with the
        // registers its ABI names (the kernel keeps rbx, rbp, rsp, r12-r15; everything else is
        // declared clobbered), then the vector registers' low halves are stored into `out`, 16
        // words.
        unsafe {
            core::arch::asm!(
                "movq xmm0, rdx", "punpcklqdq xmm0, xmm0",
                "movdqa xmm1, xmm0", "movdqa xmm2, xmm0", "movdqa xmm3, xmm0",
                "movdqa xmm4, xmm0", "movdqa xmm5, xmm0", "movdqa xmm6, xmm0",
                "movdqa xmm7, xmm0", "movdqa xmm8, xmm0", "movdqa xmm9, xmm0",
                "movdqa xmm10, xmm0", "movdqa xmm11, xmm0", "movdqa xmm12, xmm0",
                "movdqa xmm13, xmm0", "movdqa xmm14, xmm0", "movdqa xmm15, xmm0",
                "syscall",
                "movq [{o}], xmm0", "movq [{o} + 8], xmm1", "movq [{o} + 16], xmm2",
                "movq [{o} + 24], xmm3", "movq [{o} + 32], xmm4", "movq [{o} + 40], xmm5",
                "movq [{o} + 48], xmm6", "movq [{o} + 56], xmm7", "movq [{o} + 64], xmm8",
                "movq [{o} + 72], xmm9", "movq [{o} + 80], xmm10", "movq [{o} + 88], xmm11",
                "movq [{o} + 96], xmm12", "movq [{o} + 104], xmm13", "movq [{o} + 112], xmm14",
                "movq [{o} + 120], xmm15",
                o = in(reg) out.as_mut_ptr(),
                inout("rax") abi::syscall::Sys::PortalCall as u64 => status,
                inout("rdi") h => _,
                inout("rsi") op => _,
                inout("rdx") mine => r0,
                inout("r10") theirs => _,
                inout("r8") a3 => _,
                out("r9") _, out("rcx") _, out("r11") _,
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                options(nostack)
            );
        }
        (
            status,
            r0,
            out.iter().filter(|&&x| x == theirs).count() as u32,
        )
    }
}

/// Behaviour 47: creates a portal, sends it to the parent, then serves; a message `nest`
/// carrying a portal stores it for `NESTED`, `revoke` revokes the portal; ends when the parent
/// channel closes.
pub fn server() -> i32 {
    portal::serve(handler);
    let Ok(p) = portal::create(BADGE) else {
        return 1;
    };
    let Ok(give) = portal::duplicate(p, Rights::SEND.union(Rights::TRANSFER)) else {
        return 2;
    };
    if chan::send(PARENT, b"portal", &[give]).is_err() {
        return 3;
    }
    let mut buf = [0u8; 64];
    let mut hs = [Handle(0); 1];
    loop {
        match chan::recv(PARENT, &mut buf, &mut hs, DEADLINE_NEVER) {
            Ok((n, k)) if &buf[..n] == b"nest" && k == 1 => {
                NESTED.store(hs[0].0 as u64, Ordering::Release);
                let _ = chan::send(PARENT, b"ok", &[]);
            }
            Ok((n, _)) if &buf[..n] == b"revoke" => {
                let r = portal::revoke(p);
                let _ = chan::send(PARENT, if r.is_ok() { b"ok" } else { b"no" }, &[]);
            }
            Ok(_) => {}
            Err(_) => return 0,
        }
    }
}

struct Steps(i32);

impl Steps {
    fn check(&mut self, ok: bool, what: &str) -> Result<(), i32> {
        self.0 += 1;
        if ok {
            Ok(())
        } else {
            println!("probe portals: check {} failed: {}", self.0, what);
            Err(self.0)
        }
    }
}

/// A server child (arena ceiling 1 MiB): its channel, process handle and portal.
fn spawn_server() -> Option<(Handle, Handle, Handle)> {
    let (ch, proc_h) = chan::spawn_with_ceiling("bin/probe", 47, &[], 1 << 20).ok()?;
    let mut buf = [0u8; 16];
    let mut hs = [Handle(0); 1];
    match chan::recv(ch, &mut buf, &mut hs, DEADLINE_NEVER) {
        Ok((6, 1)) => Some((ch, proc_h, hs[0])),
        _ => None,
    }
}

fn death(ch: Handle) -> Option<DeathReport> {
    let mut buf = [0u8; DeathReport::SIZE];
    loop {
        match chan::recv(ch, &mut buf, &mut [], DEADLINE_NEVER) {
            Ok((n, _)) if n == DeathReport::SIZE => return DeathReport::from_bytes(&buf),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

fn request(ch: Handle, what: &[u8], hs: &[Handle]) -> bool {
    let mut buf = [0u8; 8];
    chan::send(ch, what, hs).is_ok()
        && matches!(chan::recv(ch, &mut buf, &mut [], DEADLINE_NEVER), Ok((2, 0)) if &buf[..2] == b"ok")
}

/// Behaviour 48: scenario `arg`.
pub fn client(arg: u64) -> i32 {
    let r = match arg {
        0 => basics(),
        1 => caller_stack_is_out_of_reach(),
        2 => server_death_mid_call(),
        3 => together(),
        4 => nested(),
        5 => suspend_rule(),
        6 => return bench(),
        7 => blocked_in_c_when_b_dies(),
        8 => vector_registers(),
        9 => repeated_calls(),
        _ => Err(99),
    };
    match r {
        Ok(()) => 0,
        Err(n) => n,
    }
}

fn basics() -> Result<(), i32> {
    let mut s = Steps(0);
    let Some((ch, proc_h, p)) = spawn_server() else {
        return Err(100);
    };
    let r = portal::call(p, [op::ADD, 5, 7, 9]);
    s.check(r == Ok((12, 9 ^ BADGE)), "arguments and results")?;
    let (me, _) = identity();
    let (tid, _) = thread::thread_self();
    let r = portal::call(p, [op::WHO, 0, 0, 0]);
    s.check(
        r == Ok((me, tid)),
        "the server sees the caller's pid and tid",
    )?;
    let r = portal::call(p, [op::INFO, 0, 0, 0]);
    let (lo, top) = abi::portal::visit_stack(tid).unwrap_or((0, 0));
    s.check(
        matches!(r, Ok((BADGE, sp)) if (lo..top).contains(&sp)),
        "the badge, and the handler runs on the thread's visitor stack",
    )?;
    s.check(
        portal::return_raw(1, 2) == Failed,
        "portal_return outside a call",
    )?;
    s.check(
        portal::call(Handle(0x7777), [0; 4]) == Err(InvalidHandle),
        "a forged handle",
    )?;
    s.check(
        portal::call(ch, [0; 4]) == Err(WrongType),
        "a channel is no portal",
    )?;
    s.check(
        portal::revoke(p) == Err(NoRights),
        "a client's handle cannot revoke",
    )?;
    let dup = portal::duplicate(p, Rights::SEND);
    s.check(dup.is_ok(), "a portal handle duplicates")?;
    let dup = dup.unwrap_or(Handle(0));
    s.check(
        portal::call(dup, [op::ADD, 1, 1, 0]).map(|r| r.0) == Ok(2),
        "the copy calls",
    )?;
    s.check(
        portal::duplicate(dup, Rights::SEND) == Err(NoRights),
        "no transfer right",
    )?;
    // Transfer: the portal travels to a second server, which calls through it.
    let Some((ch2, proc2, p2)) = spawn_server() else {
        return Err(101);
    };
    s.check(
        request(ch2, b"nest", &[p]),
        "the portal moves to another process",
    )?;
    s.check(portal::call(p, [0; 4]) == Err(InvalidHandle), "moved away")?;
    let r = portal::call(p2, [op::NESTED, op::ADD, 20, 22]);
    s.check(r == Ok((0, 42 ^ BADGE)), "called through the moved handle")?;
    // Calling into a process already on the chain (here: its own) is refused.
    portal::serve(handler);
    let own = portal::create(1);
    s.check(own.is_ok(), "a portal into itself")?;
    s.check(
        portal::call(own.unwrap_or(Handle(0)), [0; 4]) == Err(Failed),
        "a call into the caller's own process",
    )?;
    s.check(
        portal::create_raw(1 << 63, 0) == Err(Failed),
        "a kernel-half entry",
    )?;
    // Revocation by the server: every handle says Closed.
    s.check(request(ch, b"revoke", &[]), "the server revokes")?;
    s.check(portal::call(dup, [0; 4]) == Err(Closed), "a revoked portal")?;
    s.check(chan::kill(proc2).is_ok(), "kill the second server")?;
    s.check(death(ch2).is_some(), "its death report")?;
    s.check(
        portal::call(p2, [0; 4]) == Err(Closed),
        "a portal whose server is gone",
    )?;
    let _ = (chan::close(ch), proc_h);
    Ok(())
}

/// This process's pid: a raw thread is started with it in `rdx`.
fn identity() -> (u64, ()) {
    static PID: AtomicU64 = AtomicU64::new(0);
    extern "C" fn report(_: u64, _tid: u64, pid: u64) -> ! {
        PID.store(pid, Ordering::Release);
        thread::exit_thread(0)
    }
    let stack = alloc::vec![0u8; 16384];
    let top = (stack.as_ptr() as u64 + stack.len() as u64) & !15;
    if let Ok(h) = thread::create_raw(
        thread::shared_spawner(),
        report as *const () as u64,
        top,
        0,
        0,
        0,
    ) {
        let _ = thread::join(h);
    }
    drop(stack);
    (PID.load(Ordering::Acquire), ())
}

fn caller_stack_is_out_of_reach() -> Result<(), i32> {
    let mut s = Steps(0);
    let Some((ch, _proc, p)) = spawn_server() else {
        return Err(100);
    };
    // A thread whose stack lies beyond the server's 1 MiB arena ceiling (in the caller's
    // arena, past a 4 MiB ballast): the server reading the caller's stack faults and dies.
    static PORTAL: AtomicU64 = AtomicU64::new(0);
    extern "C" fn read_own_stack(_: u64, _tid: u64, _pid: u64) -> ! {
        let secret = 0x5ec2e7u64;
        let at = core::ptr::addr_of!(secret) as u64;
        let p = Handle(PORTAL.load(Ordering::Acquire) as u32);
        let r = portal::call(p, [op::READ, at, 0, 0]);
        core::hint::black_box(&secret);
        let code = if at < abi::layout::ARENA_BASE + (1 << 20) {
            50
        } else {
            match r {
                Err(Closed) => 0,
                Ok((v, _)) => {
                    println!("probe portals: the server read {v:#x}");
                    51
                }
                Err(_) => 52,
            }
        };
        thread::exit_thread(code)
    }
    PORTAL.store(p.0 as u64, Ordering::Release);
    let ballast = alloc::vec![1u8; 4 << 20];
    let top = (ballast.as_ptr() as u64 + ballast.len() as u64) & !15;
    let t = thread::create_raw(
        thread::shared_spawner(),
        read_own_stack as *const () as u64,
        top,
        0,
        0,
        0,
    )
    .map_err(|_| 101)?;
    let code = thread::join(t).map_err(|_| 102)?;
    drop(ballast);
    if code != 0 {
        return Err(code as i32);
    }
    let d = death(ch);
    s.check(
        d.is_some_and(|d| d.kind == abi::syscall::DEATH_FAULT),
        "the server is reported dead of a fault",
    )?;
    s.check(portal::call(p, [0; 4]) == Err(Closed), "then Closed")?;
    Ok(())
}

fn server_death_mid_call() -> Result<(), i32> {
    let mut s = Steps(0);
    // A fault inside the server: the caller gets Closed, the parent a fault report.
    let Some((ch, _proc, p)) = spawn_server() else {
        return Err(100);
    };
    s.check(
        portal::call(p, [op::CRASH, 0, 0, 0]) == Err(Closed),
        "a fault mid-call",
    )?;
    s.check(
        death(ch).is_some_and(|d| d.kind == abi::syscall::DEATH_FAULT),
        "fault report",
    )?;
    // Killed while visitors are inside: one sleeping there, one spinning (on another core
    // when there is one).
    for mode in [1u64, 0] {
        let Some((ch, proc_h, p)) = spawn_server() else {
            return Err(101);
        };
        let t = thread::spawn_on(
            Some(1).filter(|_| mode == 0 && cores() > 1),
            64 << 10,
            move || {
                let end = moxie_rt::now() + 20_000_000_000;
                match portal::call(p, [op::WAIT, end, mode, 0]) {
                    Err(Closed) => 0,
                    _ => 1,
                }
            },
        );
        let Ok(t) = t else {
            return Err(102);
        };
        moxie_rt::sleep_until(moxie_rt::now() + 30_000_000);
        s.check(chan::kill(proc_h).is_ok(), "kill the server")?;
        s.check(t.join() == Ok(0), "the visitor's call returns Closed")?;
        s.check(
            death(ch).is_some_and(|d| d.kind == abi::syscall::DEATH_KILLED),
            "killed report",
        )?;
    }
    Ok(())
}

fn cores() -> usize {
    // The second thread reports its core; a second core exists if placing there works.
    match thread::spawn_on(Some(1), 16 << 10, || 0) {
        Ok(t) => {
            let _ = t.join();
            2
        }
        Err(_) => 1,
    }
}

fn together() -> Result<(), i32> {
    let mut s = Steps(0);
    let Some((_ch, _proc, p)) = spawn_server() else {
        return Err(100);
    };
    let a = thread::spawn_on(Some(0), 64 << 10, move || {
        portal::call(p, [op::TOGETHER, 0, 0, 0]).map_or(-1, |r| r.0 as i64)
    });
    let b = thread::spawn_on(Some(1), 64 << 10, move || {
        portal::call(p, [op::TOGETHER, 0, 0, 0]).map_or(-1, |r| r.0 as i64)
    });
    let (Ok(a), Ok(b)) = (a, b) else {
        return Err(101);
    };
    let (ra, rb) = (a.join(), b.join());
    s.check(
        ra == Ok(2) && rb == Ok(2),
        "two visitors inside the server at once",
    )?;
    Ok(())
}

fn nested() -> Result<(), i32> {
    let mut s = Steps(0);
    let (Some((chb, procb, pb)), Some((chc, _procc, pc))) = (spawn_server(), spawn_server()) else {
        return Err(100);
    };
    s.check(request(chb, b"nest", &[pc]), "B gets C's portal")?;
    let r = portal::call(pb, [op::NESTED, op::ADD, 2, 3]);
    s.check(r == Ok((0, 5 ^ BADGE)), "A -> B -> C and back")?;
    let r = portal::call(pb, [op::NESTED, op::CRASH, 0, 0]);
    match r {
        Ok((a, _)) if a != Closed as u64 => return Err(200 + a as i32),
        Err(e) => return Err(150 + e as i32),
        _ => {}
    }
    s.check(
        r == Ok((Closed as u64, 0)),
        "C dies: B's call returns Closed, B carries on",
    )?;
    s.check(death(chc).is_some(), "C's death report")?;
    s.check(
        portal::call(pb, [op::ADD, 1, 2, 0]).map(|r| r.0) == Ok(3),
        "B still serves",
    )?;
    // B dies while the thread is in C (through B): A's call returns Closed, C lives on.
    let Some((chc, _procc, pc)) = spawn_server() else {
        return Err(101);
    };
    let pc2 = portal::duplicate(pc, Rights::SEND).map_err(|_| 102)?;
    s.check(request(chb, b"nest", &[pc]), "B gets the new C's portal")?;
    let t = thread::spawn(move || {
        let end = moxie_rt::now() + 20_000_000_000;
        match portal::call(pb, [op::NESTED, op::WAIT, end, 1]) {
            Err(Closed) => 0,
            _ => 1,
        }
    })
    .map_err(|_| 103)?;
    moxie_rt::sleep_until(moxie_rt::now() + 30_000_000);
    s.check(chan::kill(procb).is_ok(), "kill B")?;
    s.check(t.join() == Ok(0), "A's call returns Closed")?;
    s.check(death(chb).is_some(), "B's death report")?;
    s.check(
        portal::call(pc2, [op::ADD, 3, 4, 0]).map(|r| r.0) == Ok(7),
        "C lives on",
    )?;
    let _ = chc;
    Ok(())
}

/// A -> B -> C with the thread blocked in a channel receive inside C: B dies, and A's call
/// returns `Closed` (the receive is given up, C lives on).
fn blocked_in_c_when_b_dies() -> Result<(), i32> {
    let mut s = Steps(0);
    let Some((_chc, _procc, pc)) = spawn_server() else {
        return Err(100);
    };
    // A receive, a send-and-receive, a multi-wait, a park, a join.
    for mode in 0..5u64 {
        let Some((chb, procb, pb)) = spawn_server() else {
            return Err(101);
        };
        let pc2 = portal::duplicate(pc, Rights::SEND.union(Rights::TRANSFER)).map_err(|_| 102)?;
        s.check(request(chb, b"nest", &[pc2]), "B gets C's portal")?;
        static DONE: AtomicU64 = AtomicU64::new(0);
        DONE.store(0, Ordering::Release);
        let t = thread::spawn(move || {
            let r = portal::call(pb, [op::NESTED, op::RECV, mode, 0]);
            DONE.store(1, Ordering::Release);
            match r {
                Err(Closed) => 0,
                _ => 1,
            }
        })
        .map_err(|_| 103)?;
        moxie_rt::sleep_until(moxie_rt::now() + 30_000_000);
        s.check(chan::kill(procb).is_ok(), "kill B")?;
        // Not a join: a thread left blocked in C would hang it.
        let end = moxie_rt::now() + 2_000_000_000;
        while DONE.load(Ordering::Acquire) == 0 && moxie_rt::now() < end {
            moxie_rt::sleep_until(moxie_rt::now() + 5_000_000);
        }
        if DONE.load(Ordering::Acquire) == 0 {
            println!("probe portals: wait {mode} in C not given up");
        }
        s.check(
            DONE.load(Ordering::Acquire) == 1,
            "the thread blocked in C came back when B died",
        )?;
        s.check(t.join() == Ok(0), "A's call returns Closed")?;
        s.check(death(chb).is_some(), "B's death report")?;
        s.check(
            portal::call(pc, [op::ADD, 3, 4, 0]).map(|r| r.0) == Ok(7),
            "C lives on",
        )?;
    }
    Ok(())
}

/// Neither side of a call sees the other's vector registers: the server finds none of the
/// caller's values on entry, the caller none of the server's after the return, both on the
/// first call and on the later ones, and when the server dies holding them.
fn vector_registers() -> Result<(), i32> {
    let mut s = Steps(0);
    let Some((_ch, _proc, p)) = spawn_server() else {
        return Err(100);
    };
    const MINE: u64 = 0x0c11_e27e_c2e7_0001;
    const THEIRS: u64 = 0x5e2f_e25e_c2e7_0002;
    for i in 0..3 {
        let (status, seen, leaked) = vectors::call(p.0 as u64, op::VECTORS, MINE, THEIRS, 0);
        if status != 0 {
            println!("probe portals: call {i}: status {status}");
        }
        s.check(status == 0, "the call succeeds")?;
        if seen != 0 || leaked != 0 {
            println!(
                "probe portals: call {i}: the server saw {seen} of the caller's registers, the caller {leaked} of the server's"
            );
        }
        s.check(
            seen == 0,
            "the server sees none of the caller's vector registers",
        )?;
        s.check(
            leaked == 0,
            "the caller sees none of the server's vector registers",
        )?;
    }
    // A server that dies holding a secret in them: the caller is unwound without it.
    let (status, _, leaked) = vectors::call(p.0 as u64, op::VECTORS, MINE, THEIRS, 1);
    s.check(
        status == Closed as u64,
        "the call into a dying server returns Closed",
    )?;
    s.check(
        leaked == 0,
        "the unwound caller sees none of the dead server's registers",
    )?;
    Ok(())
}

/// The same call made again and again (what the kernel's fast path repeats from its cache)
/// follows every change: another handle closed meanwhile, a thread with an FS base of its own
/// (and a server that sets one during the call), the handle moved away, the portal revoked,
/// the server dead.
fn repeated_calls() -> Result<(), i32> {
    let mut s = Steps(0);
    let Some((ch, proc_h, p)) = spawn_server() else {
        return Err(100);
    };
    let again = |n: u64| (0..n).all(|i| portal::call(p, [op::ADD, i, 1, 0]) == Ok((i + 1, BADGE)));
    s.check(again(4), "repeated calls")?;
    let (me, _) = identity();
    let (tid, _) = thread::thread_self();
    s.check(
        (0..3).all(|_| portal::call(p, [op::WHO, 0, 0, 0]) == Ok((me, tid))),
        "the caller's pid and tid on repeated calls",
    )?;
    // Another handle comes and goes (a removal from the table): still the same portal.
    let d = portal::duplicate(p, Rights::SEND).map_err(|_| 101)?;
    s.check(again(2), "with another handle added")?;
    s.check(
        chan::close(d).is_ok() && again(3),
        "with another handle closed",
    )?;
    // A thread with an FS base of its own (its thread block): the server starts with zero,
    // the caller gets its own back, also when the server set one meanwhile.
    let t = thread::spawn(move || {
        let block = thread::fs_self();
        let mut bad = 0;
        for i in 0..6u64 {
            let set = i % 3 == 2;
            let r = portal::call(p, [op::FS, set as u64, 0, 0]);
            let ok = match r {
                Ok((0, 0)) => !set,
                Ok((fs, 0xf5_f5)) => set && fs != 0,
                _ => false,
            };
            if !ok || thread::fs_base() != block || thread::fs_self() != block {
                println!("probe portals: FS call {i}: {r:?}");
                bad += 1;
            }
        }
        bad
    })
    .map_err(|_| 102)?;
    s.check(
        t.join() == Ok(0),
        "FS bases on both sides of repeated calls",
    )?;
    s.check(again(2), "after another thread's calls")?;
    // Moved away: the handle names nothing here any more.
    let Some((ch2, proc2, _)) = spawn_server() else {
        return Err(103);
    };
    s.check(request(ch2, b"nest", &[p]), "the portal moves away")?;
    s.check(
        (0..2).all(|_| portal::call(p, [op::ADD, 1, 1, 0]) == Err(InvalidHandle)),
        "a handle moved away after repeated calls",
    )?;
    // Revoked by the server.
    let Some((ch3, proc3, q)) = spawn_server() else {
        return Err(104);
    };
    s.check(
        (0..3).all(|_| portal::call(q, [op::ADD, 2, 2, 0]).map(|r| r.0) == Ok(4)),
        "repeated calls to another server",
    )?;
    s.check(request(ch3, b"revoke", &[]), "the server revokes")?;
    s.check(
        (0..2).all(|_| portal::call(q, [0; 4]) == Err(Closed)),
        "a portal revoked after repeated calls",
    )?;
    // Dead.
    let Some((ch4, proc4, r)) = spawn_server() else {
        return Err(105);
    };
    s.check(
        (0..3).all(|_| portal::call(r, [op::ADD, 3, 3, 0]).map(|r| r.0) == Ok(6)),
        "repeated calls to a third server",
    )?;
    s.check(chan::kill(proc4).is_ok(), "kill it")?;
    s.check(death(ch4).is_some(), "its death report")?;
    s.check(
        (0..2).all(|_| portal::call(r, [0; 4]) == Err(Closed)),
        "a dead server after repeated calls",
    )?;
    let _ = (ch, proc_h, proc2, proc3);
    Ok(())
}

/// Tells the parent when a thread is inside the server (`in`), waits for `go`, kills the
/// server, tells the parent again (`out`) once the call came back, waits for `end`.
fn suspend_rule() -> Result<(), i32> {
    let mut s = Steps(0);
    let Some((ch, proc_h, p)) = spawn_server() else {
        return Err(100);
    };
    let t = thread::spawn(move || {
        let end = moxie_rt::now() + 20_000_000_000;
        portal::call(p, [op::WAIT, end, 1, 0])
            .err()
            .map_or(1, |e| e as i64)
    })
    .map_err(|_| 101)?;
    moxie_rt::sleep_until(moxie_rt::now() + 30_000_000);
    s.check(
        request(PARENT, b"in", &[]),
        "the parent checked with a visitor inside",
    )?;
    s.check(chan::kill(proc_h).is_ok(), "kill the server")?;
    s.check(t.join() == Ok(Closed as i64), "Closed")?;
    let _ = death(ch);
    s.check(
        request(PARENT, b"out", &[]),
        "the parent checked after the call",
    )?;
    Ok(())
}

fn bench() -> i32 {
    let Some((_ch, _proc, p)) = spawn_server() else {
        return 1;
    };
    const N: u64 = 2000;
    for _ in 0..50 {
        let _ = portal::call(p, [op::ADD, 1, 2, 3]);
    }
    let t0 = crate::tsc();
    for i in 0..N {
        if portal::call(p, [op::ADD, i, 1, 0]) != Ok((i + 1, BADGE)) {
            return 2;
        }
    }
    let t1 = crate::tsc();
    println!("bench: portal_rt {} instr", (t1 - t0) / N);
    0
}
