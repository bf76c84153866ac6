//! The probe's thread behaviours (the in-process threading contract): shared address space
//! and handles with a FS base per thread, the last thread's exit code, every `Failed` and
//! `Overloaded` creation with the ledger unchanged, every join rule, park and wake, clean-up
//! with parked and joining threads, parallel threads on two cores, and the benchmarks.
//!
//! Each checking behaviour numbers its checks and returns the first that failed (0: all
//! passed), printing what it saw.
use abi::Error::*;
use abi::Handle;
use abi::syscall::{DEADLINE_NEVER, DEADLINE_NOW};
use abi::thread::{FLAG_CORE_SHIFT, FLAG_ON_CORE, Ledger, Overload};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use moxie_rt::thread::{self, ThreadError};
use moxie_rt::{chan, println};

/// Numbered checks: `check(cond)` fails the behaviour with the check's number.
struct Steps(i32);

impl Steps {
    fn check(&mut self, ok: bool, what: &str) -> Result<(), i32> {
        self.0 += 1;
        if ok {
            Ok(())
        } else {
            println!("probe threads: check {} failed: {}", self.0, what);
            Err(self.0)
        }
    }
}

fn finish(r: Result<(), i32>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(n) => n,
    }
}

/// What the kernel charges the process for threads, handles and messages: the ledger without
/// its arena pages (those grow with the runtime's own allocations, thread stacks included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Charged(Ledger);

fn ledger() -> Charged {
    let mut l = thread::ledger().unwrap_or_default();
    l.arena_pages = 0;
    Charged(l)
}

impl core::ops::Deref for Charged {
    type Target = Ledger;
    fn deref(&self) -> &Ledger {
        &self.0
    }
}

/// A thread entry that never returns into Rust code: for the raw `create` checks it is never
/// reached (every creation with it is refused) or it ends its thread at once.
extern "C" fn exit_at_once(arg: u64, _tid: u64, _pid: u64) -> ! {
    thread::exit_thread(arg as i64)
}

/// Spins (yielding) until `flag` is set or `ns` pass; true if it was set.
fn wait_for(flag: &AtomicBool, ns: u64) -> bool {
    let give_up = moxie_rt::now() + ns;
    while !flag.load(Ordering::Acquire) {
        if moxie_rt::now() > give_up {
            return false;
        }
        let _ = moxie_rt::yield_now();
    }
    true
}

/// Parks on `word` until it is non-zero.
fn park_until_set(word: &AtomicU32) {
    while word.load(Ordering::Acquire) == 0 {
        let _ = thread::park_wait(word, 0, DEADLINE_NEVER);
    }
}

/// Sets `word` and wakes everyone parked on it.
fn set_and_wake(word: &AtomicU32) {
    word.store(1, Ordering::Release);
    let _ = thread::park_wake(word, u64::MAX);
}

/// Behaviour 39: two threads share the address space and the handles, each keeps its own FS
/// base across switches, one joins the other, and the last thread's exit (33, from a thread
/// that is not the main one) ends the process with its code.
pub fn basic() -> i32 {
    let mut s = Steps(0);
    let r = (|| -> Result<(), i32> {
        let before = ledger();
        s.check(
            before.thread_records == 1 && before.kernel_stack_pages == 4,
            "a fresh process holds one thread record and one kernel stack",
        )?;
        // The main thread's own thread-local block.
        let mut mine = alloc::boxed::Box::new([0u64; 8]);
        let mine_addr = mine.as_ptr() as u64;
        mine[0] = mine_addr;
        s.check(thread::set_fs_base(mine_addr).is_ok(), "set FS base")?;
        s.check(thread::fs_base() == mine_addr, "FS base reads back")?;
        s.check(thread::fs_self() == mine_addr, "fs:[0] is the block")?;
        let (a, b) = chan::channel_create().map_err(|_| 100)?;
        let shared = Arc::new(AtomicU64::new(0x5eed));
        let seen = shared.clone();
        let t = thread::spawn(move || {
            // The same address space: the value the main thread stored.
            let v = seen.load(Ordering::Acquire);
            // The same handles: `a` was created by the main thread.
            if chan::send(a, &v.to_le_bytes(), &[]).is_err() {
                return 1;
            }
            let block = thread::fs_self();
            for _ in 0..200 {
                let _ = moxie_rt::yield_now();
                if thread::fs_self() != block || thread::fs_base() != block {
                    return 2;
                }
            }
            7
        });
        let t = t.map_err(|e| {
            println!("probe threads: spawn: {e}");
            101
        })?;
        let mut buf = [0u8; 8];
        let got = chan::recv(b, &mut buf, &mut [], moxie_rt::now() + 5_000_000_000);
        s.check(
            matches!(got, Ok((8, 0))),
            "the thread's message on a shared handle",
        )?;
        s.check(
            u64::from_le_bytes(buf) == 0x5eed,
            "the value the thread read",
        )?;
        for _ in 0..200 {
            let _ = moxie_rt::yield_now();
            if thread::fs_self() != mine_addr {
                return Err(50);
            }
        }
        s.check(t.block_addr() != mine_addr, "each thread has its own block")?;
        s.check(t.join() == Ok(7), "join returns the thread's code")?;
        // A thread writes memory the main thread then reads: one address space.
        let cell = Arc::new(AtomicU64::new(0));
        let c2 = cell.clone();
        let t = thread::spawn(move || {
            c2.store(0xabcd, Ordering::Release);
            0
        })
        .map_err(|_| 102)?;
        s.check(t.join() == Ok(0), "second join")?;
        s.check(
            cell.load(Ordering::Acquire) == 0xabcd,
            "a write of one thread is seen by the other",
        )?;
        let after = ledger();
        s.check(
            after.thread_records == 1 && after.kernel_stack_pages == 4,
            "joined threads give their records and stacks back",
        )?;
        // The main thread ends first; the last thread's code is the process's.
        let last = thread::spawn(|| {
            moxie_rt::sleep_until(moxie_rt::now() + 20_000_000);
            33
        })
        .map_err(|_| 103)?;
        core::mem::forget(last);
        thread::exit_thread(0)
    })();
    finish(r)
}

/// Behaviour 40 (variant in bits 8..): every refused creation, with the ledger the same before
/// and after. Variant 0: the `Failed` cases and a full handle table; 1 (spawned with a thread
/// limit of 3): the thread limit; 2 (spawned with a budget of two kernel stacks): the
/// kernel-stack budget.
pub fn refusals(variant: u64) -> i32 {
    let mut s = Steps(0);
    let r = (|| -> Result<(), i32> {
        let sp = thread::spawner().map_err(|_| 100)?;
        let entry = exit_at_once as *const () as u64;
        let stack = alloc::vec![0u8; 16384];
        let top = (stack.as_ptr() as u64 + 16384) & !15;
        let create = |entry: u64, top: u64, fs: u64, flags: u64| {
            thread::create_raw(sp, entry, top, 0, fs, flags)
        };
        let failed = Err(ThreadError::Other(Failed));
        match variant {
            0 => {
                let before = ledger();
                let kernel = 0xffff_8000_0000_1000;
                let non_canonical = 0x0000_8000_0000_0000;
                s.check(create(kernel, top, 0, 0) == failed, "kernel-half entry")?;
                s.check(
                    create(non_canonical, top, 0, 0) == failed,
                    "non-canonical entry",
                )?;
                s.check(create(entry, kernel, 0, 0) == failed, "kernel-half stack")?;
                s.check(
                    create(entry, top + 8, 0, 0) == failed,
                    "stack top not 16-aligned",
                )?;
                s.check(
                    create(entry, top, kernel, 0) == failed,
                    "kernel-half FS base",
                )?;
                s.check(
                    create(entry, top, 0, 1 << 40) == failed,
                    "reserved flag bit",
                )?;
                s.check(
                    create(entry, top, 0, 3 << FLAG_CORE_SHIFT) == failed,
                    "a core number without the flag",
                )?;
                s.check(
                    create(entry, top, 0, FLAG_ON_CORE | (200 << FLAG_CORE_SHIFT)) == failed,
                    "a core that does not exist",
                )?;
                s.check(
                    thread::create_raw(Handle::PARENT, entry, top, 0, 0, 0)
                        == Err(ThreadError::Other(WrongType)),
                    "a channel is not a spawner",
                )?;
                s.check(
                    thread::create_raw(Handle::new(900, 3), entry, top, 0, 0, 0)
                        == Err(ThreadError::Other(InvalidHandle)),
                    "a forged spawner handle",
                )?;
                // The spawner never travels: it has no transfer right.
                s.check(
                    chan::send(Handle::PARENT, b"x", &[sp]) == Err(NoRights),
                    "a spawner cannot be sent",
                )?;
                s.check(ledger() == before, "the ledger after the Failed cases")?;
                // Fill the handle table, then ask for a thread.
                let mut held = Vec::new();
                loop {
                    match chan::channel_create() {
                        Ok((x, y)) => {
                            held.push(x);
                            held.push(y);
                        }
                        Err(Overloaded) => break,
                        Err(e) => {
                            println!("probe threads: channel_create: {e}");
                            return Err(101);
                        }
                    }
                }
                // One slot may be left (channels come in pairs): use it.
                let spare = thread::spawner().ok();
                let full = ledger();
                s.check(full.handles == full.handles_max, "the table is full")?;
                s.check(
                    create(entry, top, 0, 0) == Err(ThreadError::Overloaded(Overload::HandleSlots)),
                    "handle slots exhausted",
                )?;
                s.check(ledger() == full, "the ledger after the refused creation")?;
                for h in held.into_iter().chain(spare) {
                    let _ = chan::close(h);
                }
                s.check(ledger() == before, "every handle back")?;
                let t = create(entry, top, 0, 0).map_err(|_| 102)?;
                s.check(thread::join(t) == Ok(0), "a creation works again")?;
            }
            1 | 2 => {
                let stop = Arc::new(AtomicU32::new(0));
                let mut kept = Vec::new();
                let n = if variant == 1 { 2 } else { 1 };
                for _ in 0..n {
                    let st = stop.clone();
                    kept.push(
                        thread::spawn(move || {
                            park_until_set(&st);
                            0
                        })
                        .map_err(|_| 103)?,
                    );
                }
                let before = ledger();
                let want = if variant == 1 {
                    Overload::Threads
                } else {
                    Overload::KernelStackBudget
                };
                s.check(
                    before.thread_records == 1 + n as u64,
                    "the live threads are counted",
                )?;
                s.check(
                    create(entry, top, 0, 0) == Err(ThreadError::Overloaded(want)),
                    "the limit refuses the next thread",
                )?;
                s.check(ledger() == before, "the ledger after the refusal")?;
                set_and_wake(&stop);
                for t in kept {
                    s.check(t.join() == Ok(0), "the kept threads end")?;
                }
                let t = create(entry, top, 0, 0).map_err(|_| 104)?;
                s.check(thread::join(t) == Ok(0), "below the limit again")?;
            }
            _ => return Err(99),
        }
        drop(stack);
        Ok(())
    })();
    finish(r)
}

/// Behaviour 41: the join rules. Retained status; `exit_code` does not consume; self-join;
/// two joiners (exactly one wins); join after join; detach by release before and after exit;
/// a released handle; a pending join pins the status.
pub fn join_rules() -> i32 {
    let mut s = Steps(0);
    let r = (|| -> Result<(), i32> {
        // The runtime's spawner handle exists before the baseline is taken.
        let _ = thread::shared_spawner();
        let base = ledger();
        // Ended before the join: the status is retained and returned at once.
        let t = thread::spawn(|| 5).map_err(|_| 100)?;
        let h = t.handle();
        let give_up = moxie_rt::now() + 5_000_000_000;
        while thread::exit_code(h) == Ok(None) && moxie_rt::now() < give_up {
            let _ = moxie_rt::yield_now();
        }
        s.check(
            thread::exit_code(h) == Ok(Some(5)),
            "exit_code sees the status",
        )?;
        s.check(
            thread::exit_code(h) == Ok(Some(5)),
            "exit_code does not consume",
        )?;
        s.check(
            ledger().thread_records == base.thread_records + 1,
            "the retained status holds a record",
        )?;
        s.check(
            ledger().kernel_stack_pages == base.kernel_stack_pages,
            "an ended thread's kernel stack is given back",
        )?;
        s.check(thread::join(h) == Ok(5), "join returns the retained status")?;
        s.check(
            thread::join(h) == Err(Failed),
            "join after a successful join",
        )?;
        s.check(
            thread::exit_code(h) == Err(Failed),
            "exit_code after the join",
        )?;
        s.check(
            ledger().thread_records == base.thread_records,
            "the join released it",
        )?;
        let _ = chan::close(h);
        core::mem::forget(t);

        // Self-join: the thread gets its own handle through memory both threads share.
        let own = Arc::new(AtomicU32::new(u32::MAX));
        let o2 = own.clone();
        let t = thread::spawn(move || {
            while o2.load(Ordering::Acquire) == u32::MAX {
                let _ = moxie_rt::yield_now();
            }
            match thread::join(Handle(o2.load(Ordering::Acquire))) {
                Err(Failed) => 0,
                _ => 1,
            }
        })
        .map_err(|_| 101)?;
        own.store(t.handle().0, Ordering::Release);
        s.check(t.join() == Ok(0), "self-join is Failed")?;

        // Two joiners: exactly one gets the code, the other `Failed`.
        let go = Arc::new(AtomicU32::new(0));
        let g2 = go.clone();
        let target = thread::spawn(move || {
            park_until_set(&g2);
            9
        })
        .map_err(|_| 102)?;
        let th = target.handle();
        let other = thread::spawn(move || match thread::join(th) {
            Ok(9) => 1,
            Err(Failed) => 2,
            _ => 3,
        })
        .map_err(|_| 103)?;
        // A third thread lets the target end a little later, whoever waits by then.
        let g3 = go.clone();
        let releaser = thread::spawn(move || {
            moxie_rt::sleep_until(moxie_rt::now() + 40_000_000);
            set_and_wake(&g3);
            0
        })
        .map_err(|_| 108)?;
        moxie_rt::sleep_until(moxie_rt::now() + 20_000_000);
        let mine = thread::join(th);
        let theirs = other.join();
        s.check(releaser.join() == Ok(0), "the releaser ends")?;
        // Whoever registered first waits and gets the code; the other is refused at once.
        s.check(
            (mine == Ok(9) && theirs == Ok(2)) || (mine == Err(Failed) && theirs == Ok(1)),
            "exactly one of two joiners gets the code",
        )?;
        let _ = chan::close(th);
        core::mem::forget(target);

        // Detach before exit: the record stays while it runs, goes when it ends.
        let go = Arc::new(AtomicU32::new(0));
        let g2 = go.clone();
        let done = Arc::new(AtomicBool::new(false));
        let d2 = done.clone();
        let t = thread::spawn(move || {
            park_until_set(&g2);
            d2.store(true, Ordering::Release);
            0
        })
        .map_err(|_| 104)?;
        let h = t.handle();
        s.check(chan::close(h).is_ok(), "release the only handle")?;
        core::mem::forget(t);
        s.check(
            ledger().thread_records == base.thread_records + 1,
            "a detached running thread keeps its record",
        )?;
        s.check(
            thread::join(h) == Err(InvalidHandle),
            "join after detach: the handle is gone",
        )?;
        set_and_wake(&go);
        s.check(
            wait_for(&done, 5_000_000_000),
            "the detached thread runs on",
        )?;
        let give_up = moxie_rt::now() + 5_000_000_000;
        while ledger().thread_records != base.thread_records && moxie_rt::now() < give_up {
            let _ = moxie_rt::yield_now();
        }
        s.check(
            ledger() == base,
            "a detached thread's record goes when it ends",
        )?;

        // Release after exit, before join: the status and its charge go at once.
        let t = thread::spawn(|| 4).map_err(|_| 105)?;
        let h = t.handle();
        while thread::exit_code(h) == Ok(None) {
            let _ = moxie_rt::yield_now();
        }
        s.check(
            ledger().thread_records == base.thread_records + 1,
            "retained before the release",
        )?;
        s.check(chan::close(h).is_ok(), "release after exit")?;
        core::mem::forget(t);
        s.check(ledger() == base, "the retained status is dropped")?;

        // A pending join pins the status even when the handle is released meanwhile.
        let go = Arc::new(AtomicU32::new(0));
        let g2 = go.clone();
        let target = thread::spawn(move || {
            park_until_set(&g2);
            12
        })
        .map_err(|_| 106)?;
        let th = target.handle();
        let joined = Arc::new(AtomicBool::new(false));
        let j2 = joined.clone();
        let joiner = thread::spawn(move || {
            j2.store(true, Ordering::Release);
            thread::join(th).unwrap_or(-1)
        })
        .map_err(|_| 107)?;
        s.check(wait_for(&joined, 5_000_000_000), "the joiner started")?;
        moxie_rt::sleep_until(moxie_rt::now() + 20_000_000);
        s.check(chan::close(th).is_ok(), "release while a join waits")?;
        core::mem::forget(target);
        set_and_wake(&go);
        s.check(
            joiner.join() == Ok(12),
            "the pending join still gets the code",
        )?;
        s.check(ledger() == base, "everything given back")?;
        Ok(())
    })();
    finish(r)
}

/// Behaviour 42: park and wake — a changed word does not park, a deadline ends a park, a wake
/// wakes exactly the parked thread, a wake with nobody parked wakes nobody, bad addresses.
pub fn park() -> i32 {
    let mut s = Steps(0);
    let r = (|| -> Result<(), i32> {
        let word = AtomicU32::new(3);
        s.check(
            thread::park_wait(&word, 4, DEADLINE_NEVER) == Ok(false),
            "value changed",
        )?;
        s.check(
            thread::park_wait(&word, 3, DEADLINE_NOW) == Err(Timeout),
            "DEADLINE_NOW",
        )?;
        let t0 = moxie_rt::now();
        s.check(
            thread::park_wait(&word, 3, t0 + 10_000_000) == Err(Timeout),
            "a deadline ends the park",
        )?;
        s.check(
            moxie_rt::now() >= t0 + 10_000_000,
            "not before the deadline",
        )?;
        s.check(thread::park_wake(&word, 1) == Ok(0), "nobody to wake")?;
        let shared = Arc::new(AtomicU32::new(0));
        let sh = shared.clone();
        let woke = Arc::new(AtomicU32::new(0));
        let w2 = woke.clone();
        let t = thread::spawn(move || {
            let mut woken = 0;
            while sh.load(Ordering::Acquire) == 0 {
                if thread::park_wait(&sh, 0, DEADLINE_NEVER) == Ok(true) {
                    woken += 1;
                }
            }
            w2.store(woken, Ordering::Release);
            0
        })
        .map_err(|_| 100)?;
        // Wake until the parked thread is found (it may not have parked yet).
        let give_up = moxie_rt::now() + 5_000_000_000;
        let mut n = 0;
        shared.store(1, Ordering::Release);
        while n == 0 && moxie_rt::now() < give_up {
            n = thread::park_wake(&shared, 8).unwrap_or(0);
            if n == 0 {
                if t.exit_code() == Ok(Some(0)) {
                    // It saw the store before parking: that is fine too.
                    n = 1;
                    break;
                }
                let _ = moxie_rt::yield_now();
            }
        }
        s.check(n == 1, "exactly one thread woken")?;
        s.check(t.join() == Ok(0), "the woken thread ends")?;
        s.check(woke.load(Ordering::Acquire) <= 1, "woken at most once")?;
        // With a timeout, woken before it.
        let shared = Arc::new(AtomicU32::new(0));
        let sh = shared.clone();
        let started = Arc::new(AtomicBool::new(false));
        let st = started.clone();
        let t = thread::spawn(move || {
            st.store(true, Ordering::Release);
            let deadline = moxie_rt::now() + 10_000_000_000;
            match thread::park_wait(&sh, 0, deadline) {
                Ok(true) => 0,
                Ok(false) => 0,
                _ => 1,
            }
        })
        .map_err(|_| 101)?;
        s.check(
            wait_for(&started, 5_000_000_000),
            "the timed parker started",
        )?;
        moxie_rt::sleep_until(moxie_rt::now() + 5_000_000);
        shared.store(1, Ordering::Release);
        let _ = thread::park_wake(&shared, 1);
        s.check(t.join() == Ok(0), "woken before its deadline")?;
        // Bad addresses.
        s.check(
            thread::park_wait_raw(0, 0, DEADLINE_NOW) == Err(BadAddress),
            "null",
        )?;
        s.check(
            thread::park_wait_raw(0xffff_8000_0000_0000, 0, DEADLINE_NOW) == Err(BadAddress),
            "kernel half",
        )?;
        let addr = word.as_ptr() as u64;
        s.check(
            thread::park_wait_raw(addr + 1, 0, DEADLINE_NOW) == Err(Failed),
            "unaligned",
        )?;
        s.check(
            thread::park_wake_raw(addr + 2, 1) == Err(Failed),
            "wake unaligned",
        )?;
        s.check(
            thread::park_wait_raw(0x5000_0000_0000, 0, DEADLINE_NOW) == Err(BadAddress),
            "unmapped",
        )?;
        Ok(())
    })();
    finish(r)
}

/// Behaviour 43: threads parked, joining and sleeping when the process exits (code 5); the
/// in-kernel suite checks that every frame, ledger and park entry comes back.
pub fn exit_with_waiters() -> i32 {
    let word = Arc::new(AtomicU32::new(0));
    let mut handles = Vec::new();
    for _ in 0..3 {
        let w = word.clone();
        if let Ok(t) = thread::spawn(move || {
            park_until_set(&w);
            0
        }) {
            handles.push(t.handle());
            core::mem::forget(t);
        }
    }
    if let Some(&first) = handles.first() {
        let _ = thread::spawn(move || thread::join(first).unwrap_or(-1)).map(core::mem::forget);
    }
    let _ = thread::spawn(|| {
        moxie_rt::sleep_until(u64::MAX / 2);
        0
    })
    .map(core::mem::forget);
    moxie_rt::sleep_until(moxie_rt::now() + 20_000_000);
    moxie_rt::exit(5)
}

/// Behaviour 44: a fault in one thread ends the whole process (a null dereference, reported
/// as the process's fault) while another thread is parked.
pub fn fault_in_thread() -> i32 {
    let word = Arc::new(AtomicU32::new(0));
    let w = word.clone();
    let _ = thread::spawn(move || {
        park_until_set(&w);
        0
    })
    .map(core::mem::forget);
    let _ = thread::spawn(|| {
        // SAFETY: deliberately not: the fault is the test.
        unsafe {
            core::ptr::read_volatile(core::hint::black_box(core::ptr::without_provenance::<u64>(
                16,
            ))) as i64
        }
    })
    .map(core::mem::forget);
    loop {
        let _ = thread::park_wait(&word, 0, DEADLINE_NEVER);
    }
}

/// Behaviour 45: a thread on the other core; the two hand a counter back and forth through
/// shared memory (no system calls) 20,000 times. On one core that would take a quantum per
/// hand-over (20 s at least); both threads report their cores. Exit 0: they ran in parallel.
pub fn parallel() -> i32 {
    const ROUNDS: u32 = 20_000;
    let (_, my_core) = thread::thread_self();
    let other_core = if my_core == 0 { 1 } else { 0 };
    let turn = Arc::new(AtomicU32::new(0));
    let t2 = turn.clone();
    let their_core = Arc::new(AtomicU32::new(u32::MAX));
    let tc = their_core.clone();
    let t = match thread::spawn_on(Some(other_core as u8), 16 << 10, move || {
        tc.store(thread::thread_self().1, Ordering::Release);
        let mut i = 1;
        while i < 2 * ROUNDS {
            while t2.load(Ordering::Acquire) != i {
                core::hint::spin_loop();
            }
            t2.store(i + 1, Ordering::Release);
            i += 2;
        }
        0
    }) {
        Ok(t) => t,
        Err(e) => {
            println!("probe threads: spawn on core {other_core}: {e}");
            return 100;
        }
    };
    let start = moxie_rt::now();
    let give_up = start + 10_000_000_000;
    let mut i = 0;
    while i < 2 * ROUNDS {
        while turn.load(Ordering::Acquire) != i {
            if moxie_rt::now() > give_up {
                println!("probe threads: stuck at hand-over {i}");
                return 1;
            }
            core::hint::spin_loop();
        }
        turn.store(i + 1, Ordering::Release);
        i += 2;
    }
    let took = moxie_rt::now() - start;
    let code = t.join();
    let theirs = their_core.load(Ordering::Acquire);
    println!(
        "probe threads: {ROUNDS} hand-overs in {} ms, cores {my_core} and {theirs}",
        took / 1_000_000
    );
    if code != Ok(0) {
        return 2;
    }
    if theirs == my_core {
        return 3;
    }
    if thread::thread_self().1 != my_core && theirs == thread::thread_self().1 {
        return 4;
    }
    0
}

fn tsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter, which ring 3 may read.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Behaviour 46: the benchmarks — thread create + join, and a park/wake round trip between two
/// threads of the process (instructions under icount, where the TSC counts instructions).
pub fn bench() -> i32 {
    const N: u64 = 200;
    let sp = match thread::spawner() {
        Ok(h) => h,
        Err(_) => return 1,
    };
    let stack = alloc::vec![0u8; 16384];
    let top = (stack.as_ptr() as u64 + 16384) & !15;
    let entry = exit_at_once as *const () as u64;
    for _ in 0..10 {
        if let Ok(h) = thread::create_raw(sp, entry, top, 0, 0, 0) {
            let _ = thread::join(h);
            let _ = chan::close(h);
        }
    }
    let t0 = tsc();
    for _ in 0..N {
        let Ok(h) = thread::create_raw(sp, entry, top, 0, 0, 0) else {
            return 2;
        };
        if thread::join(h) != Ok(0) {
            return 3;
        }
        let _ = chan::close(h);
    }
    let t1 = tsc();
    println!("bench: thread_create_join {} instr", (t1 - t0) / N);
    // Park/wake ping-pong: the word says whose turn it is (even: main, odd: the partner).
    const ROUNDS: u32 = 2000;
    let turn = Arc::new(AtomicU32::new(0));
    let t2 = turn.clone();
    let partner = thread::spawn_on(Some(thread::thread_self().1 as u8), 16 << 10, move || {
        let mut i = 1;
        while i < 2 * ROUNDS {
            let mut v = t2.load(Ordering::Acquire);
            while v != i {
                let _ = thread::park_wait(&t2, v, DEADLINE_NEVER);
                v = t2.load(Ordering::Acquire);
            }
            t2.store(i + 1, Ordering::Release);
            let _ = thread::park_wake(&t2, 1);
            i += 2;
        }
        0
    });
    let Ok(partner) = partner else {
        return 4;
    };
    let mut i = 0;
    let mut t0 = 0;
    while i < 2 * ROUNDS {
        if i == 200 {
            t0 = tsc();
        }
        let mut v = turn.load(Ordering::Acquire);
        while v != i {
            let _ = thread::park_wait(&turn, v, DEADLINE_NEVER);
            v = turn.load(Ordering::Acquire);
        }
        turn.store(i + 1, Ordering::Release);
        let _ = thread::park_wake(&turn, 1);
        i += 2;
    }
    let t1 = tsc();
    if partner.join() != Ok(0) {
        return 5;
    }
    println!(
        "bench: park_rt {} instr",
        (t1 - t0) / u64::from(ROUNDS - 100)
    );
    drop(stack);
    0
}
