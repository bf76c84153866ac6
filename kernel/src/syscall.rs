//! System-call dispatch: every call is decoded and checked first, then performed. Results go
//! back in the trap frame: status in `rax` (0 or an `abi::Error` code), value in `rdx`.
use crate::arch::idt::TrapFrame;
use crate::arch::usermem::UserSlice;
use crate::process;
use crate::sched;
use abi::Error;
use abi::syscall::{MAX_LOG_BYTES, Sys};
/// Entry from `arch::syscall`.
pub fn dispatch(frame: &mut TrapFrame) {
    let args = [
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ];
    let result = match Sys::from_number(frame.rax) {
        Some(Sys::Null) => Ok(0),
        Some(Sys::Log) => log(args[0], args[1]),
        Some(Sys::Exit) => exit(args[0] as i64),
        Some(Sys::Yield) => {
            sched::yield_now();
            Ok(0)
        }
        None => Err(Error::BadSyscall),
    };
    match result {
        Ok(v) => {
            frame.rax = 0;
            frame.rdx = v;
        }
        Err(e) => {
            frame.rax = e as u64;
            frame.rdx = 0;
        }
    }
}

fn log(ptr: u64, len: u64) -> Result<u64, Error> {
    if len > MAX_LOG_BYTES as u64 {
        return Err(Error::TooBig);
    }
    let src = UserSlice::new(ptr, len as usize)?;
    let mut buf = [0u8; MAX_LOG_BYTES];
    src.read_into(&mut buf[..len as usize])?;
    let text = core::str::from_utf8(&buf[..len as usize]).unwrap_or("<invalid utf-8>");
    let pid = sched::current_pid().unwrap_or(0);
    let name = process::name(pid).unwrap_or_default();
    crate::println!("[{pid} {name}] {text}");
    Ok(0)
}

fn exit(code: i64) -> Result<u64, Error> {
    if let Some(pid) = sched::current_pid() {
        process::die(pid, process::Death::Exit(code));
    }
    Err(Error::Failed)
}
