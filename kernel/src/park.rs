//! Park: threads of one process wait on a 32-bit word of their address space and wake each
//! other by its address (the contract's private park space; Linux calls it a futex).
//!
//! A key is (process, user virtual address): threads of one process share one address space,
//! so the pid names it. Waiters are generation-checked [`ThreadRef`]s in one table: a wake
//! removes the entry and wakes the thread; a waiter that finds its entry gone was woken, one
//! that finds it still there at its deadline timed out. A parked thread is in no other waiter
//! list. The process's exit removes every entry of its threads.
//!
//! Lock order: the park table, then a process's memory (the word is read under the table's
//! lock, so a wake cannot slip between the check of the word and the registration), then the
//! scheduler.
use crate::arch::usermem::UserSlice;
use crate::process::Pid;
use crate::sched::{self, ThreadRef};
use abi::Error;
use abi::syscall::{DEADLINE_NEVER, DEADLINE_NOW};
use abi::thread::{PARK_VALUE_CHANGED, PARK_WOKEN};
use alloc::vec::Vec;
use spin::Mutex;

struct Parked {
    pid: Pid,
    addr: u64,
    who: ThreadRef,
}

static PARKED: Mutex<Vec<Parked>> = Mutex::new(Vec::new());

/// The most threads parked at once in the whole system (every process's threads are bounded
/// by the thread limit, so this is never reached by honest use; it bounds the table).
const MAX_PARKED: usize = 4096;

fn check_addr(addr: u64) -> Result<UserSlice, Error> {
    if !addr.is_multiple_of(4) {
        return Err(Error::Failed);
    }
    UserSlice::new(addr, 4)
}

/// `park_wait(addr, expected, deadline)` for the calling thread.
pub fn wait(addr: u64, expected: u32, deadline: u64) -> Result<u64, Error> {
    let word = check_addr(addr)?;
    let pid = sched::current_pid().ok_or(Error::Failed)?;
    let me = sched::current_ref();
    {
        let mut parked = PARKED.lock();
        let mut raw = [0u8; 4];
        word.read_into(&mut raw)?;
        if u32::from_le_bytes(raw) != expected {
            return Ok(PARK_VALUE_CHANGED);
        }
        if deadline == DEADLINE_NOW {
            return Err(Error::Timeout);
        }
        if parked.len() >= MAX_PARKED {
            return Err(Error::Overloaded);
        }
        parked.push(Parked { pid, addr, who: me });
    }
    loop {
        if deadline == DEADLINE_NEVER {
            sched::block();
        } else {
            sched::block_until(deadline);
        }
        let mut parked = PARKED.lock();
        let Some(i) = parked.iter().position(|p| p.who == me) else {
            return Ok(PARK_WOKEN);
        };
        if deadline != DEADLINE_NEVER && crate::arch::apic::now_ns() >= deadline {
            parked.remove(i);
            return Err(Error::Timeout);
        }
        if sched::freeze_asked() {
            // Frozen for a suspend: the wait is made again on resume (the value is checked
            // again then).
            parked.remove(i);
            sched::cut_short();
            return Err(Error::Failed);
        }
        if sched::current_doomed() || sched::unwinding() {
            parked.remove(i);
            return Err(Error::Closed);
        }
        // Woken by something else (a stale channel registration): park on.
    }
}

/// `park_wake(addr, count)`: wakes up to `count` of the calling process's threads parked on
/// `addr`, oldest first; returns how many.
pub fn wake(addr: u64, count: u64) -> Result<u64, Error> {
    check_addr(addr)?;
    let pid = sched::current_pid().ok_or(Error::Failed)?;
    let mut woken = Vec::new();
    {
        let mut parked = PARKED.lock();
        let mut i = 0;
        while i < parked.len() && (woken.len() as u64) < count {
            if parked[i].pid == pid && parked[i].addr == addr {
                woken.push(parked.remove(i).who);
            } else {
                i += 1;
            }
        }
        // Woken under the lock: a waiter that looks after this sees its entry gone.
        for w in &woken {
            sched::wake(*w);
        }
    }
    Ok(woken.len() as u64)
}

/// Removes every parked entry of process `pid` (its exit).
pub fn cancel_process(pid: Pid) {
    PARKED.lock().retain(|p| p.pid != pid);
}

/// Threads parked now (for the tests' clean-up checks).
pub fn parked_count() -> usize {
    PARKED.lock().len()
}
