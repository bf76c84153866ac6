//! The thread system calls (16–26, `abi::thread`): the contract's `ThreadSpawner`,
//! `ThreadHandle` and `ThreadControl` over moxie's handles, plus park, the ledger and
//! `thread_self`. The bookkeeping lives with the process (`crate::process`), the execution
//! state with the scheduler (`crate::sched`); this layer checks arguments and handles.
use crate::arch::usermem::UserSlice;
use crate::ipc::Object;
use crate::process::{self, ThreadError};
use crate::sched::{self, ThreadRef};
use crate::syscall::handle;
use abi::thread::{FLAG_CORE_SHIFT, FLAG_ON_CORE, FLAGS_KNOWN, Ledger, user_canonical};
use abi::{Error, Rights};

/// A call's result, with the value for `rdx` that some errors carry (the reason of an
/// `Overloaded` creation).
pub type Detailed = Result<u64, (Error, u64)>;

fn to_abi(e: ThreadError) -> (Error, u64) {
    match e {
        ThreadError::Overloaded(why) => (Error::Overloaded, why as u64),
        ThreadError::Failed | ThreadError::NoProcess => (Error::Failed, 0),
    }
}

/// `thread_spawner() -> h`.
pub fn spawner() -> Result<u64, Error> {
    let h = process::with_handles(|t| t.insert(Object::ThreadSpawner, Rights::NONE))
        .ok_or(Error::Failed)?
        .map_err(|r| Error::from(r.error))?;
    Ok(h.0 as u64)
}

/// `thread_create(spawner, entry, stack_top, arg, fs_base, flags) -> thread`.
pub fn create(
    spawner: u64,
    entry: u64,
    stack_top: u64,
    arg: u64,
    fs_base: u64,
    flags: u64,
) -> Detailed {
    let h = handle(spawner).map_err(|e| (e, 0))?;
    process::with_handles(|t| match t.check(h, Rights::NONE)? {
        Object::ThreadSpawner => Ok(()),
        _ => Err(Error::WrongType),
    })
    .ok_or((Error::Failed, 0))?
    .map_err(|e| (e, 0))?;
    let bad = !user_canonical(entry)
        || !user_canonical(stack_top)
        || !user_canonical(fs_base)
        || !stack_top.is_multiple_of(16)
        || stack_top < 8
        || flags & !FLAGS_KNOWN != 0;
    if bad {
        return Err((Error::Failed, 0));
    }
    let core = if flags & FLAG_ON_CORE != 0 {
        let c = ((flags >> FLAG_CORE_SHIFT) & 0xff) as usize;
        if !sched::core_exists(c) {
            return Err((Error::Failed, 0));
        }
        Some(c)
    } else if flags != 0 {
        // A core number without the flag that asks for it.
        return Err((Error::Failed, 0));
    } else {
        None
    };
    process::create_thread(entry, stack_top, arg, fs_base, core)
        .map(|h| h.0 as u64)
        .map_err(to_abi)
}

/// The thread a handle of the caller names.
fn target(h: u64) -> Result<ThreadRef, Error> {
    let h = handle(h)?;
    process::with_handles(|t| match t.check(h, Rights::NONE)? {
        Object::Thread(r) => Ok(*r),
        _ => Err(Error::WrongType),
    })
    .ok_or(Error::Failed)?
}

/// `thread_join(thread) -> code`.
pub fn join(h: u64) -> Result<u64, Error> {
    let r = target(h)?;
    process::join_thread(r)
        .map(|c| c as u64)
        .map_err(|e| to_abi(e).0)
}

/// `thread_exit_code(thread) -> code` (`Timeout` while it runs).
pub fn exit_code(h: u64) -> Result<u64, Error> {
    let r = target(h)?;
    match process::thread_exit_code(r) {
        Ok(Some(c)) => Ok(c as u64),
        Ok(None) => Err(Error::Timeout),
        Err(e) => Err(to_abi(e).0),
    }
}

/// `fs_base_set(value)`.
pub fn set_fs_base(value: u64) -> Result<u64, Error> {
    if !user_canonical(value) {
        return Err(Error::Failed);
    }
    sched::set_fs_base(value);
    Ok(0)
}

/// `ledger(out, len) -> bytes`.
pub fn ledger(out: u64, len: u64) -> Result<u64, Error> {
    if len < Ledger::SIZE as u64 {
        return Err(Error::TooBig);
    }
    let l = process::ledger().ok_or(Error::Failed)?;
    UserSlice::new(out, Ledger::SIZE)?.write_from(&l.to_bytes())?;
    Ok(Ledger::SIZE as u64)
}

/// `thread_self() -> tid | core << 32`.
pub fn thread_self() -> Result<u64, Error> {
    let core = crate::arch::percpu::cpu_id() as u64;
    Ok(sched::current() as u64 | core << 32)
}
