//! System-call numbers and the calling convention.
//!
//! `syscall` with the number in `rax` and up to six arguments in `rdi`, `rsi`, `rdx`, `r10`,
//! `r8`, `r9`. It returns a status in `rax` (0, or an [`crate::Error`] code) and a value in
//! `rdx`; `rcx` and `r11` are clobbered. User code does not issue `syscall` itself: it calls the
//! stubs of the kernel export page (`moxie_sys_*`), which its module imports by name and the
//! loader binds.

/// The system calls, by number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Sys {
    /// Does nothing; measures the entry/exit cost.
    Null = 0,
    /// `log(ptr, len)`: writes a line to the kernel console, prefixed with the process name.
    Log = 1,
    /// `exit(code)`: ends the calling process.
    Exit = 2,
    /// `yield()`: gives the rest of the time slice to the next runnable thread.
    Yield = 3,
}

impl Sys {
    /// The call with this number.
    pub fn from_number(n: u64) -> Option<Sys> {
        Some(match n {
            0 => Sys::Null,
            1 => Sys::Log,
            2 => Sys::Exit,
            3 => Sys::Yield,
            _ => return None,
        })
    }
}

/// Most bytes one `log` call prints.
pub const MAX_LOG_BYTES: usize = 512;
