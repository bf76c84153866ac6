//! The stub's console: COM1 through the `uart_16550` crate, and the debug-exit port.
use core::fmt::{self, Write};
use uart_16550::{Config, Uart16550, backend::PioBackend};

/// COM1, written synchronously.
pub struct Console(Option<Uart16550<PioBackend>>);

impl Console {
    /// Initialises COM1 (38400 8N1); without a UART the console writes nowhere.
    pub fn com1() -> Console {
        // SAFETY: 0x3f8 is COM1 on every PC and QEMU machine, and the stub is the only code
        // running, so it has the port to itself.
        let uart = unsafe { Uart16550::new_port(0x3f8) }.ok();
        Console(uart.and_then(|mut u| u.init(Config::default()).ok().map(|_| u)))
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(u) = &mut self.0 {
            for b in s.bytes() {
                if b == b'\n' {
                    u.send_bytes_exact(b"\r");
                }
                u.send_bytes_exact(&[b]);
            }
        }
        Ok(())
    }
}

/// Stops QEMU through `isa-debug-exit` with `code`; on a machine without that device, halts
/// forever with interrupts off (never a reboot loop).
pub fn exit(code: abi::qemu::ExitCode) -> ! {
    // SAFETY: writing the debug-exit port has no effect on memory; without the device the write
    // is ignored. `cli; hlt` only stops this CPU.
    unsafe {
        x86_64::instructions::port::Port::<u32>::new(abi::qemu::DEBUG_EXIT_PORT).write(code as u32);
        loop {
            core::arch::asm!("cli; hlt", options(nomem, nostack));
        }
    }
}
