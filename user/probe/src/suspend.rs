//! The probe's suspend behaviours: processes whose state a suspend must carry across — a
//! counter kept at once in its arena, on its stack and in a static (the module's data pages),
//! a parent with a child on an internal channel, and three threads counting.
//!
//! Each answers every 8-byte request `v` on its parent channel with three little-endian `u64`s
//! (what they are depends on the behaviour); a request with the top bit set is a pause: the
//! probe sleeps `v & 0xffff` milliseconds and answers nothing; one with bit 62 set fills
//! `v & 0xffff_ffff` more bytes of its arena (kept, for the benchmarks' image sizes) and answers
//! nothing.
use abi::Handle;
use abi::syscall::DEADLINE_NEVER;
use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};
use moxie_rt::{chan, thread};

const PARENT: Handle = Handle::PARENT;
const PAUSE: u64 = 1 << 63;
const FILL: u64 = 1 << 62;

/// The counter in the module's data pages.
static STATIC_COUNT: AtomicU64 = AtomicU64::new(0);

/// The next request, after any pauses; `None` once the parent channel is closed.
fn request() -> Option<u64> {
    let mut buf = [0u8; 8];
    loop {
        match chan::recv(PARENT, &mut buf, &mut [], DEADLINE_NEVER) {
            Ok((8, 0)) => {}
            Ok(_) => continue,
            Err(_) => return None,
        }
        let v = u64::from_le_bytes(buf);
        if v & PAUSE != 0 {
            moxie_rt::sleep_until(moxie_rt::now() + (v & 0xffff) * 1_000_000);
        } else if v & FILL != 0 {
            let kept = alloc::vec![0x5au8; (v & 0xffff_ffff) as usize];
            core::mem::forget(kept);
        } else {
            return Some(v);
        }
    }
}

fn answer(words: [u64; 3]) -> bool {
    let mut b = [0u8; 24];
    for (i, w) in words.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    chan::send(PARENT, &b, &[]).is_ok()
}

/// Counts requests three times over (arena, stack, static); answers `[count, v, core]`, or
/// `[0, v, core]` when the three counts disagree.
pub fn counter() -> i32 {
    let mut in_arena = Box::new(0u64);
    let mut on_stack = 0u64;
    while let Some(v) = request() {
        *in_arena += 1;
        on_stack += 1;
        let in_static = STATIC_COUNT.fetch_add(1, Ordering::Relaxed) + 1;
        let count = if *in_arena == on_stack && on_stack == in_static {
            on_stack
        } else {
            0
        };
        if !answer([count, v, u64::from(thread::thread_self().1)]) {
            return 2;
        }
    }
    0
}

/// Spawns a child that echoes (`pong`) and passes each request through it: answers
/// `[count, echo, child pid known]`.
pub fn tree() -> i32 {
    let Ok((child, _process)) = chan::spawn("bin/probe", super::behaviour::PONG, &[]) else {
        return 1;
    };
    let mut count = 0u64;
    let mut buf = [0u8; 8];
    while let Some(v) = request() {
        if chan::send(child, &v.to_le_bytes(), &[]).is_err() {
            return 2;
        }
        let echo = match chan::recv(child, &mut buf, &mut [], DEADLINE_NEVER) {
            Ok((8, 0)) => u64::from_le_bytes(buf),
            _ => return 3,
        };
        count += 1;
        if !answer([count, echo, u64::from(thread::thread_self().1)]) {
            return 4;
        }
    }
    0
}

/// What the two counting threads have counted.
static COUNTS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Two more threads count (yielding between steps); answers `[requests, count 1, count 2]`.
pub fn threads() -> i32 {
    for count in &COUNTS {
        let t = thread::spawn(move || {
            loop {
                count.fetch_add(1, Ordering::Relaxed);
                let _ = moxie_rt::yield_now();
            }
        });
        if t.is_err() {
            return 1;
        }
    }
    let mut requests = 0u64;
    while request().is_some() {
        requests += 1;
        let c = |i: usize| COUNTS[i].load(Ordering::Relaxed);
        if !answer([requests, c(0), c(1)]) {
            return 2;
        }
    }
    0
}
