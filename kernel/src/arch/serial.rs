//! COM1, the kernel console: a locked 16550 UART from the `uart_16550` crate.
use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::{Config, Uart16550, backend::PioBackend};

static COM1: Mutex<Option<Uart16550<PioBackend>>> = Mutex::new(None);

/// Initialises COM1 (38400 8N1). Output before this call, or without a UART, is dropped.
pub fn init() {
    // SAFETY: 0x3f8 is COM1 on PCs and QEMU, and only this module touches it.
    let uart = unsafe { Uart16550::new_port(0x3f8) }.ok();
    *COM1.lock() = uart.and_then(|mut u| u.init(Config::default()).ok().map(|_| u));
}

struct Writer<'a>(&'a mut Uart16550<PioBackend>);

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.split_inclusive('\n') {
            match chunk.strip_suffix('\n') {
                Some(line) => {
                    self.0.send_bytes_exact(line.as_bytes());
                    self.0.send_bytes_exact(b"\r\n");
                }
                None => self.0.send_bytes_exact(chunk.as_bytes()),
            }
        }
        Ok(())
    }
}

/// Writes formatted text to COM1 with interrupts off, so a line is never interleaved with a
/// line from an interrupt handler on this CPU.
pub fn write_fmt(args: fmt::Arguments) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        if let Some(u) = COM1.lock().as_mut() {
            let _ = Writer(u).write_fmt(args);
        }
    });
}

/// Writes to COM1 even while another holder of the lock is stuck (used by the exception report
/// and the panic handler, which may run in the middle of a serial write).
pub fn write_fmt_emergency(args: fmt::Arguments) {
    // SAFETY: forcing the lock open is sound here because the caller is about to stop the
    // machine; at worst an interrupted line is garbled.
    unsafe { COM1.force_unlock() };
    write_fmt(args);
}

/// Moves the bytes COM1 has received (at most `buf.len()`) into `buf`; 0 when none are
/// waiting. Never blocks.
pub fn receive(buf: &mut [u8]) -> usize {
    x86_64::instructions::interrupts::without_interrupts(|| {
        COM1.lock().as_mut().map_or(0, |u| u.receive_bytes(buf))
    })
}

/// Writes bytes as they are, except that `\n` becomes `\r\n` (a process's console output).
pub fn write_bytes(bytes: &[u8]) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        if let Some(u) = COM1.lock().as_mut() {
            for chunk in bytes.split_inclusive(|&b| b == b'\n') {
                match chunk.strip_suffix(b"\n") {
                    Some(line) => {
                        u.send_bytes_exact(line);
                        u.send_bytes_exact(b"\r\n");
                    }
                    None => u.send_bytes_exact(chunk),
                }
            }
        }
    });
}
