//! Threads inside the process (the in-process threading contract, `abi::thread`): the raw
//! calls, and [`spawn`], which allocates each thread's stack and thread-local block from the
//! arena and runs a closure on it.
//!
//! The thread-local block follows the x86-64 convention: its first word points at itself, and
//! the thread's FS base points at the block, so `fs:[0]` is the block's address ([`fs_self`]).
use abi::Error;
use abi::syscall::Sys;
use abi::thread::{FLAG_CORE_SHIFT, FLAG_ON_CORE, Ledger, Overload};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::AtomicU32;

pub use abi::Handle;

/// Why a thread could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadError {
    /// A limit was reached (nothing was created); the reason says which.
    Overloaded(Overload),
    /// Any other error (`Failed` for a bad entry, stack, FS base or flags).
    Other(Error),
}

impl core::fmt::Display for ThreadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ThreadError::Overloaded(o) => write!(f, "{}", o.message()),
            ThreadError::Other(e) => write!(f, "{e}"),
        }
    }
}

fn call(n: Sys, a: [u64; 6]) -> Result<u64, Error> {
    crate::syscall6(n as u64, a)
}

/// A handle to this process's thread spawner.
pub fn spawner() -> Result<Handle, Error> {
    call(Sys::ThreadSpawner, [0; 6]).map(|h| Handle(h as u32))
}

/// `thread_create` as the kernel takes it (see `abi::thread` for the start registers).
pub fn create_raw(
    spawner: Handle,
    entry: u64,
    stack_top: u64,
    arg: u64,
    fs_base: u64,
    flags: u64,
) -> Result<Handle, ThreadError> {
    let (status, value) = crate::syscall6_full(
        Sys::ThreadCreate as u64,
        [spawner.0 as u64, entry, stack_top, arg, fs_base, flags],
    );
    match status {
        0 => Ok(Handle(value as u32)),
        s if s == Error::Overloaded as u64 => Err(ThreadError::Overloaded(
            Overload::from_code(value).unwrap_or(Overload::Threads),
        )),
        s => Err(ThreadError::Other(
            Error::from_code(s).unwrap_or(Error::Failed),
        )),
    }
}

/// Waits for the thread to end and returns its exit code (once).
pub fn join(thread: Handle) -> Result<i64, Error> {
    call(Sys::ThreadJoin, [thread.0 as u64, 0, 0, 0, 0, 0]).map(|c| c as i64)
}

/// The exit code of a thread that has ended (`None` while it runs); does not consume the join.
pub fn exit_code(thread: Handle) -> Result<Option<i64>, Error> {
    match call(Sys::ThreadExitCode, [thread.0 as u64, 0, 0, 0, 0, 0]) {
        Ok(c) => Ok(Some(c as i64)),
        Err(Error::Timeout) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Ends the calling thread (the process, if it is the last one).
pub fn exit_thread(code: i64) -> ! {
    let _ = call(Sys::ThreadExit, [code as u64, 0, 0, 0, 0, 0]);
    // The kernel never returns from a successful thread exit.
    crate::exit(code as i32)
}

/// The calling thread's FS base.
pub fn fs_base() -> u64 {
    call(Sys::FsBaseGet, [0; 6]).unwrap_or(0)
}

/// Sets the calling thread's FS base.
pub fn set_fs_base(value: u64) -> Result<(), Error> {
    call(Sys::FsBaseSet, [value, 0, 0, 0, 0, 0]).map(drop)
}

/// The word at `fs:[0]`: by the thread-local block convention, the block's own address.
pub fn fs_self() -> u64 {
    let v: u64;
    // SAFETY: reads one word through FS; callers only use it in threads whose FS base points at
    // a live thread-local block (every thread [`spawn`] starts), whose first word is mapped.
    unsafe {
        core::arch::asm!("mov {}, fs:[0]", out(reg) v, options(nostack, readonly, preserves_flags));
    }
    v
}

/// Parks the calling thread on `word` while it holds `expected`, until [`park_wake`] or
/// `deadline`: `Ok(true)` when woken, `Ok(false)` when the word held another value,
/// `Err(Timeout)` at the deadline.
pub fn park_wait(word: &AtomicU32, expected: u32, deadline: u64) -> Result<bool, Error> {
    park_wait_raw(word.as_ptr() as u64, expected, deadline)
}

/// [`park_wait`] on a raw address (for tests of the kernel's checks).
pub fn park_wait_raw(addr: u64, expected: u32, deadline: u64) -> Result<bool, Error> {
    call(Sys::ParkWait, [addr, expected as u64, deadline, 0, 0, 0])
        .map(|r| r == abi::thread::PARK_WOKEN)
}

/// Wakes up to `count` threads parked on `word`; returns how many.
pub fn park_wake(word: &AtomicU32, count: u64) -> Result<u64, Error> {
    park_wake_raw(word.as_ptr() as u64, count)
}

/// [`park_wake`] on a raw address.
pub fn park_wake_raw(addr: u64, count: u64) -> Result<u64, Error> {
    call(Sys::ParkWake, [addr, count, 0, 0, 0, 0])
}

/// The process's resource ledger.
pub fn ledger() -> Result<Ledger, Error> {
    let mut buf = [0u8; Ledger::SIZE];
    call(
        Sys::Ledger,
        [buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0, 0],
    )?;
    Ledger::from_bytes(&buf).ok_or(Error::Failed)
}

/// The calling thread's id and the core it runs on.
pub fn thread_self() -> (u64, u32) {
    let v = call(Sys::ThreadSelf, [0; 6]).unwrap_or(0);
    (v & 0xffff_ffff, (v >> 32) as u32)
}

/// A thread's thread-local block (what its FS base points at).
#[repr(C, align(64))]
pub struct ThreadBlock {
    /// The block's own address (`fs:[0]`).
    pub self_ptr: u64,
    /// The thread's id, filled in when it starts.
    pub tid: u64,
    /// Free for the program.
    pub user: [u64; 6],
}

/// What the new thread's entry receives.
struct Start {
    run: Box<dyn FnOnce() -> i64 + Send>,
}

/// A running or ended thread [`spawn`] started: owns its handle, stack and thread-local block.
pub struct JoinHandle {
    handle: Handle,
    stack: Option<Vec<u8>>,
    block: Option<Box<ThreadBlock>>,
}

impl JoinHandle {
    /// The thread's handle.
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// The address of the thread's thread-local block (its FS base).
    pub fn block_addr(&self) -> u64 {
        self.block.as_deref().map_or(0, |b| b as *const _ as u64)
    }

    /// Waits for the thread and returns its exit code; its stack goes back to the arena.
    pub fn join(mut self) -> Result<i64, Error> {
        let code = join(self.handle)?;
        let _ = crate::chan::close(self.handle);
        self.stack = None;
        self.block = None;
        self.handle = Handle(u32::MAX);
        Ok(code)
    }

    /// Its exit code, if it has ended.
    pub fn exit_code(&self) -> Result<Option<i64>, Error> {
        exit_code(self.handle)
    }
}

impl Drop for JoinHandle {
    /// Detaches the thread. A thread still running keeps its stack and block (they are never
    /// given back to the arena: nothing could tell when it stops using them); an ended one's
    /// go back.
    fn drop(&mut self) {
        if self.handle.0 == u32::MAX {
            return;
        }
        let ended = matches!(exit_code(self.handle), Ok(Some(_)));
        let _ = crate::chan::close(self.handle);
        if !ended {
            core::mem::forget(self.stack.take());
            core::mem::forget(self.block.take());
        }
    }
}

extern "C" fn thread_entry(arg: u64, tid: u64, _pid: u64) -> ! {
    // SAFETY: `arg` is the `Box<Start>` that `spawn_on` leaked for exactly this thread.
    let start = unsafe { Box::from_raw(arg as *mut Start) };
    let block = fs_self() as *mut ThreadBlock;
    if !block.is_null() {
        // SAFETY: the FS base is this thread's own block (set by `spawn_on`), alive until the
        // thread is joined.
        unsafe { (*block).tid = tid };
    }
    let code = (start.run)();
    exit_thread(code)
}

static SPAWNER: spin::Once<Handle> = spin::Once::new();

/// The spawner handle [`spawn`] uses, made on first use and kept for the process's life.
pub fn shared_spawner() -> Handle {
    *SPAWNER.call_once(|| spawner().unwrap_or(Handle(u32::MAX)))
}

/// Default stack size of a thread [`spawn`] starts.
pub const DEFAULT_STACK: usize = 64 << 10;

/// Runs `f` on a new thread of this process (on the least loaded core) with a
/// [`DEFAULT_STACK`] stack; its return value is the thread's exit code.
pub fn spawn(f: impl FnOnce() -> i64 + Send + 'static) -> Result<JoinHandle, ThreadError> {
    spawn_on(None, DEFAULT_STACK, f)
}

/// Runs `f` on a new thread on `core` (`None`: the least loaded) with a stack of `stack_size`
/// bytes from the arena.
pub fn spawn_on(
    core: Option<u8>,
    stack_size: usize,
    f: impl FnOnce() -> i64 + Send + 'static,
) -> Result<JoinHandle, ThreadError> {
    let spawner = shared_spawner();
    let stack = vec![0u8; stack_size.max(4096)];
    let top = (stack.as_ptr() as u64 + stack.len() as u64) & !15;
    let mut block = Box::new(ThreadBlock {
        self_ptr: 0,
        tid: 0,
        user: [0; 6],
    });
    block.self_ptr = &*block as *const ThreadBlock as u64;
    let fs = block.self_ptr;
    let start = Box::into_raw(Box::new(Start { run: Box::new(f) }));
    let flags = core.map_or(0, |c| FLAG_ON_CORE | (c as u64) << FLAG_CORE_SHIFT);
    match create_raw(
        spawner,
        thread_entry as *const () as u64,
        top,
        start as u64,
        fs,
        flags,
    ) {
        Ok(handle) => Ok(JoinHandle {
            handle,
            stack: Some(stack),
            block: Some(block),
        }),
        Err(e) => {
            // SAFETY: the kernel refused the thread, so nothing else owns `start`.
            drop(unsafe { Box::from_raw(start) });
            Err(e)
        }
    }
}
