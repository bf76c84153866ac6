//! The moxie user runtime: what every module links against.
//!
//! It declares the kernel's exported system-call stubs (`moxie_sys_*`: undefined symbols that the
//! kernel's ELF loader binds to the export page), wraps them in safe functions returning
//! `Result<_, abi::Error>`, provides `_start` (which calls the program's `main(arg)` and exits with
//! its code) and a panic handler that logs the panic and exits with [`PANIC_EXIT_CODE`].
//!
//! A program is a `#![no_std] #![no_main]` binary that defines
//! `#[unsafe(no_mangle)] pub extern "C" fn main(arg: u64) -> i32` and uses `moxie_rt`.
#![no_std]

extern crate alloc;

pub mod arena;
pub mod chan;
pub mod dev;
pub mod portal;
pub mod system;
pub mod thread;

use abi::Error;
pub use abi::{Handle, Rights};

/// The exit code of a process whose code panicked.
pub const PANIC_EXIT_CODE: i32 = 101;

/// What a stub returns: status in rax, value in rdx.
#[repr(C)]
pub(crate) struct Ret {
    status: u64,
    value: u64,
}

unsafe extern "C" {
    fn moxie_sys_null() -> Ret;
    fn moxie_sys_log(ptr: *const u8, len: usize) -> Ret;
    fn moxie_sys_exit(code: i64) -> !;
    fn moxie_sys_yield() -> Ret;
    fn moxie_syscall6(n: u64, a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) -> Ret;
    fn main(arg: u64) -> i32;
}

#[inline]
pub(crate) fn result(r: Ret) -> Result<u64, Error> {
    match r.status {
        0 => Ok(r.value),
        code => Err(Error::from_code(code).unwrap_or(Error::Failed)),
    }
}

/// The null system call (for measuring the kernel entry and exit).
#[inline]
pub fn null() -> Result<u64, Error> {
    // SAFETY: the stub takes no arguments and touches no user memory.
    result(unsafe { moxie_sys_null() })
}

/// Writes `text` as one line on the kernel console.
pub fn log(text: &str) -> Result<(), Error> {
    // SAFETY: the kernel only reads `len` bytes at `ptr`, which `text` provides.
    result(unsafe { moxie_sys_log(text.as_ptr(), text.len()) }).map(|_| ())
}

/// Passes raw pointer and length to `log`: for tests of the kernel's pointer checks.
pub fn log_raw(ptr: u64, len: u64) -> Result<(), Error> {
    // SAFETY: the kernel validates the range itself; a bad one is an error, not a fault here.
    result(unsafe { moxie_sys_log(ptr as *const u8, len as usize) }).map(|_| ())
}

/// Gives the CPU to the next runnable thread.
pub fn yield_now() -> Result<(), Error> {
    // SAFETY: no arguments.
    result(unsafe { moxie_sys_yield() }).map(|_| ())
}

/// A raw system call with six arguments (for tests of unknown numbers and bad arguments).
#[inline]
pub fn syscall6(n: u64, args: [u64; 6]) -> Result<u64, Error> {
    // SAFETY: the kernel validates every argument of every call.
    result(unsafe { moxie_syscall6(n, args[0], args[1], args[2], args[3], args[4], args[5]) })
}

/// A raw system call that also returns `rdx` when it fails (some errors carry a reason there):
/// `(status, value)`.
#[inline]
pub fn syscall6_full(n: u64, args: [u64; 6]) -> (u64, u64) {
    // SAFETY: the kernel validates every argument of every call.
    let r = unsafe { moxie_syscall6(n, args[0], args[1], args[2], args[3], args[4], args[5]) };
    (r.status, r.value)
}

/// The monotonic clock: nanoseconds since boot.
pub fn now() -> u64 {
    syscall6(abi::syscall::Sys::Now as u64, [0; 6]).unwrap_or(0)
}

/// Blocks until the monotonic clock reaches `deadline` (nanoseconds since boot).
pub fn sleep_until(deadline: u64) {
    let _ = syscall6(abi::syscall::Sys::Sleep as u64, [deadline, 0, 0, 0, 0, 0]);
}

/// CPU time the calling thread has used, in nanoseconds.
pub fn cpu_time() -> u64 {
    syscall6(abi::syscall::Sys::CpuTime as u64, [0; 6]).unwrap_or(0)
}

/// Ends the process with `code`.
pub fn exit(code: i32) -> ! {
    // SAFETY: never returns.
    unsafe { moxie_sys_exit(code as i64) }
}

/// The pid the process was started with (see [`start_pid`]).
static START_PID: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The pid this process was started with. A resumed process keeps it (it lives in the arena
/// with the rest of its memory) although the core gave it a new pid: it names the process
/// across suspends, not its pid now.
pub fn start_pid() -> u64 {
    START_PID.load(core::sync::atomic::Ordering::Relaxed)
}

/// The entry point: the kernel starts the first thread here with the spawn argument in `rdi`
/// and the pid in `rsi`.
///
/// # Safety
///
/// Called by the kernel only, once, at process start, with a valid stack.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start(arg: u64, pid: u64) -> ! {
    START_PID.store(pid, core::sync::atomic::Ordering::Relaxed);
    // SAFETY: `main` is the program's entry, declared by the rules above.
    let code = unsafe { main(arg) };
    exit(code)
}

/// A fixed-size text buffer for formatting without a heap.
pub struct LineBuf {
    buf: [u8; 256],
    len: usize,
}

impl Default for LineBuf {
    fn default() -> Self {
        LineBuf {
            buf: [0; 256],
            len: 0,
        }
    }
}

impl LineBuf {
    /// The text so far.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<invalid utf-8>")
    }
}

impl core::fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Formats and logs one line.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        let mut line = $crate::LineBuf::default();
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
        let _ = $crate::log(line.as_str());
    }};
}

/// Ends the process as panicked, with `text` carried to the parent in the death report.
pub fn panic_exit(text: &str) -> ! {
    let _ = syscall6(
        abi::syscall::Sys::Panic as u64,
        [text.as_ptr() as u64, text.len() as u64, 0, 0, 0, 0],
    );
    exit(PANIC_EXIT_CODE)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut line = LineBuf::default();
    let _ = core::fmt::Write::write_fmt(&mut line, format_args!("{}", info));
    panic_exit(line.as_str())
}
