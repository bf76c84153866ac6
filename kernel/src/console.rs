//! The serial console as a kernel object (`Object::Console`): whoever holds a console handle
//! with the receive right can attach to the console's input, which then arrives as channel
//! messages of bytes; with the send right it can write bytes to the console as they are.
//!
//! Input is polled: a kernel thread, started by the first attach, reads COM1's receive FIFO
//! every 10 ms (1 ms while bytes keep coming) and sends what it read to the attached reader.
//! While nobody is attached it sleeps, and the UART holds its input (QEMU then stops reading
//! its own input, so nothing typed or piped is lost). One reader at a time: a new attach closes
//! the previous reader's channel. A reader that is slow (its buffer `Full`) gets the bytes
//! later, in order; one that closed its end is forgotten.
use crate::arch::context::Start;
use crate::ipc::{Endpoint, Msg};
use crate::sched::{self, ThreadRef};
use abi::Error;
use alloc::vec::Vec;
use spin::{Mutex, Once};

/// The kernel's end of the attached reader's channel.
static READER: Mutex<Option<Endpoint>> = Mutex::new(None);
/// The polling thread, once started.
static POLLER: Once<Result<ThreadRef, ()>> = Once::new();

/// Most bytes one input message carries.
const CHUNK: usize = 256;
/// Poll interval while the line is quiet, and while bytes keep coming.
const QUIET_NS: u64 = 10_000_000;
const BUSY_NS: u64 = 1_000_000;

/// Attaches a new reader: returns its end of a fresh channel on which input bytes arrive.
/// The previous reader's channel closes.
pub fn attach() -> Result<Endpoint, Error> {
    let (mine, theirs) = Endpoint::pair();
    let old = READER.lock().replace(mine);
    drop(old);
    let poller = POLLER.call_once(|| {
        sched::spawn_on(
            Start::Kernel {
                entry: poll,
                arg: 0,
            },
            None,
            None,
            Some(0),
            schedpolicy::Priority(0),
        )
        .map_err(|_| ())
    });
    match poller {
        Ok(t) => {
            sched::wake(*t);
            Ok(theirs)
        }
        Err(()) => Err(Error::NoMemory),
    }
}

/// Writes bytes to the console as they are.
pub fn write(bytes: &[u8]) {
    crate::arch::serial::write_bytes(bytes);
}

/// The polling thread.
extern "C" fn poll(_: u64) -> ! {
    let mut pending: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut buf = [0u8; CHUNK];
    loop {
        let reader = READER.lock().as_ref().map(|e| e.port());
        let Some(port) = reader else {
            pending.clear();
            sched::block();
            continue;
        };
        let room = CHUNK - pending.len();
        let got = crate::arch::serial::receive(&mut buf[..room]);
        pending.extend_from_slice(&buf[..got]);
        if !pending.is_empty() {
            match port.send(Msg::new(pending.clone(), Vec::new())) {
                Ok(()) => pending.clear(),
                Err(e) if e.error() == Error::Full => {}
                Err(_) => {
                    // The reader closed its end: forget it, unless a new one replaced it.
                    let mut r = READER.lock();
                    if r.as_ref().is_some_and(|e| e.same_channel(&port)) {
                        let old = r.take();
                        drop(r);
                        drop(old);
                    }
                    pending.clear();
                }
            }
        }
        let wait = if got > 0 { BUSY_NS } else { QUIET_NS };
        sched::block_until(crate::arch::apic::now_ns() + wait);
    }
}
