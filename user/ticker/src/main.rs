//! `ticker`: a test program for suspend, resume and migration (`docs/system.md`, the shell's
//! `suspend`, `resume` and `migrate`). It logs a line about every 100 ms of sleep with a
//! counter that lives on its stack, so a resumed ticker carries on at the next number and a
//! migrated one also shows its new core. The spawn argument picks the mode:
//!
//! | arg | mode | each line |
//! |---|---|---|
//! | 0 | one thread | `ticker pid=P n=K core=C` |
//! | 1 | three threads, a counter each | `ticker pid=P t=I n=K core=C` |
//! | 2 | a tree: spawns `tree-a` and `tree-b`, keeps their parent channels, waits | (one line at start) |
//! | 3 | `tree-a`: sends K to `tree-b` on the channel it got as handle 1, expects K+1 | `tree-a n=K` |
//! | 4 | `tree-b`: answers each number with the next one | none |
//!
//! `P` is the pid the ticker was started with (`moxie_rt::start_pid`), which a resumed ticker
//! keeps; the core's prefix of each log line (`[pid name]`) shows its pid now.
//!
//! Each counter is mirrored in a static, which lives in the module's writable data rather than
//! on the stack or in the arena: a resume that brought back the stack but not the module's data
//! shows as a `module data lost` line.
#![no_std]
#![no_main]

extern crate alloc;

use abi::Handle;
use abi::syscall::{DEADLINE_NEVER, DeathReport, WaitItem, signal};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use moxie_rt::{chan, println, thread};

const SINGLE: u64 = 0;
const THREADS: u64 = 1;
const TREE: u64 = 2;
const TREE_A: u64 = 3;
const TREE_B: u64 = 4;

/// The sleep between two lines.
const PERIOD_NS: u64 = 100_000_000;
/// Where the tree's children come from.
const MODULE: &str = "/bin/ticker";
/// The tree children's channel to each other (the parent channel is handle 0).
const PEER: Handle = Handle(1);

/// The counters' mirrors in module data, one per thread (index 0 for the single mode).
static MIRRORS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Entry, called by the runtime.
#[unsafe(no_mangle)]
pub extern "C" fn main(arg: u64) -> i32 {
    // Read once: the stack copy survives a resume whatever happens to the module's data.
    let pid = moxie_rt::start_pid();
    match arg {
        SINGLE => tick(pid, None),
        THREADS => threads(pid),
        TREE => tree(pid),
        TREE_A => tree_a(),
        TREE_B => tree_b(),
        _ => {
            println!("ticker: unknown mode {arg} (0 one thread, 1 three threads, 2 a tree)");
            2
        }
    }
}

/// Logs a numbered line every period, forever. `thread` is the thread's number in the
/// three-thread mode.
fn tick(pid: u64, thread: Option<usize>) -> ! {
    let mirror = &MIRRORS[thread.unwrap_or(0)];
    let mut n: u64 = 0;
    loop {
        n += 1;
        let (_, core) = thread::thread_self();
        let seen = mirror.swap(n, Ordering::Relaxed);
        if seen != n - 1 {
            println!(
                "ticker pid={pid} module data lost: its counter says {seen}, the stack says {}",
                n - 1
            );
        }
        match thread {
            None => println!("ticker pid={pid} n={n} core={core}"),
            Some(t) => println!("ticker pid={pid} t={t} n={n} core={core}"),
        }
        moxie_rt::sleep_until(moxie_rt::now() + PERIOD_NS);
    }
}

/// Three threads, each with its own counter: the main thread is number 1. It keeps the other
/// two threads' handles (and the runtime its thread spawner), so an image of it holds both.
fn threads(pid: u64) -> i32 {
    let mut kept = Vec::new();
    for t in 2..=3 {
        match thread::spawn(move || tick(pid, Some(t))) {
            Ok(handle) => kept.push(handle),
            Err(e) => {
                println!("ticker: cannot start thread {t}: {e}");
                return 1;
            }
        }
    }
    tick(pid, Some(1))
}

/// Spawns `tree-a` and `tree-b` joined by a channel, then waits for their death reports.
fn tree(pid: u64) -> i32 {
    let (a_end, b_end) = match chan::channel_create() {
        Ok(p) => p,
        Err(e) => {
            println!("ticker: no channel: {e}");
            return 1;
        }
    };
    let mut children = [Handle(0); 2];
    for (i, (mode, end)) in [(TREE_A, a_end), (TREE_B, b_end)].into_iter().enumerate() {
        match chan::spawn(MODULE, mode, &[end]) {
            // The process handle is kept too: the tree holds both kinds of handle.
            Ok((parent, _process)) => children[i] = parent,
            Err(e) => {
                println!("ticker: cannot spawn {MODULE}: {e}");
                return 1;
            }
        }
    }
    println!("ticker pid={pid} tree: started tree-a and tree-b");
    let mut live = 2;
    while live > 0 {
        let mut items = children.map(|h| WaitItem {
            handle: h.0,
            wanted: signal::READABLE | signal::PEER_CLOSED,
            ..WaitItem::default()
        });
        let Ok(i) = chan::wait(&mut items[..live], DEADLINE_NEVER) else {
            return 1;
        };
        let mut buf = [0u8; DeathReport::SIZE];
        if let Ok((n, _)) = chan::recv(children[i], &mut buf, &mut [], DEADLINE_NEVER)
            && let Some(r) = DeathReport::from_bytes(&buf[..n])
        {
            println!("ticker tree: child pid {} ended (kind {})", r.pid, r.kind);
        }
        // One fewer to wait for: the last one moves into its place.
        children.swap(i, live - 1);
        live -= 1;
    }
    0
}

/// Sends 1, 2, 3, ... to `tree-b` and checks each answer.
fn tree_a() -> i32 {
    let mut n: u64 = 0;
    loop {
        n += 1;
        let mut answer = [0u8; 8];
        match chan::send_recv(PEER, &n.to_le_bytes(), &mut answer, DEADLINE_NEVER) {
            Ok(8) if u64::from_le_bytes(answer) == n + 1 => println!("tree-a n={n}"),
            Ok(len) => println!("tree-a n={n}: a wrong answer ({len} bytes: {answer:?})"),
            Err(e) => {
                println!("tree-a n={n}: {e}");
                return 1;
            }
        }
        moxie_rt::sleep_until(moxie_rt::now() + PERIOD_NS);
    }
}

/// Answers each number with the next one.
fn tree_b() -> i32 {
    loop {
        let mut buf = [0u8; 8];
        match chan::recv(PEER, &mut buf, &mut [], DEADLINE_NEVER) {
            Ok((8, _)) => {
                let n = u64::from_le_bytes(buf);
                if let Err(e) = chan::send(PEER, &(n + 1).to_le_bytes(), &[]) {
                    println!("tree-b: {e}");
                    return 1;
                }
            }
            Ok((len, _)) => println!("tree-b: a {len}-byte message"),
            Err(e) => {
                println!("tree-b: {e}");
                return 1;
            }
        }
    }
}
