//! Device interrupts as channel messages: MSI-X, programmed by the kernel.
//!
//! `irq_bind` gives the device a vector from a small pool, points every entry of its MSI-X table
//! at that vector on the boot CPU, and records a route from the vector to the endpoint the
//! driver handed over. The trap handler calls [`interrupt`], which counts the interrupt and
//! sends an [`abi::device::IrqMessage`] on the route's endpoint without blocking (a full buffer
//! drops the message: the driver looks at all its completions each time it wakes). MSI-X is
//! edge-triggered and per device, so there is nothing to acknowledge and no sharing.
use super::{Found, Msix};
use crate::arch::pci;
use crate::ipc::{Msg, Port};
use abi::Error;
use abi::device::IrqMessage;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// The first vector of the device pool.
pub const FIRST_VECTOR: u8 = 0x50;
/// Vectors in the pool (0x50–0x6f): devices that can have their interrupt bound at once.
pub const VECTORS: usize = 32;

struct Route {
    port: Port,
    count: u64,
}

static ROUTES: Mutex<[Option<Route>; VECTORS]> = Mutex::new([const { None }; VECTORS]);
/// Device interrupts taken since boot (routed or not).
pub static TAKEN: AtomicU64 = AtomicU64::new(0);

/// True for a vector of the device pool.
pub fn is_device_vector(v: u64) -> bool {
    (u64::from(FIRST_VECTOR)..u64::from(FIRST_VECTOR) + VECTORS as u64).contains(&v)
}

/// Takes a free vector and routes it to `port`; `None` when the pool is used up.
pub fn bind(port: Port) -> Option<u8> {
    let mut routes = ROUTES.lock();
    let i = routes.iter().position(Option::is_none)?;
    routes[i] = Some(Route { port, count: 0 });
    Some(FIRST_VECTOR + i as u8)
}

/// Frees a vector.
pub fn unbind(vector: u8) {
    let i = usize::from(vector.wrapping_sub(FIRST_VECTOR));
    if let Some(r) = ROUTES.lock().get_mut(i) {
        *r = None;
    }
}

/// Vectors routed now.
pub fn bound() -> usize {
    ROUTES.lock().iter().filter(|r| r.is_some()).count()
}

/// A device interrupt arrived on `vector` (from the trap handler, after the EOI).
pub fn interrupt(vector: u64) {
    TAKEN.fetch_add(1, Ordering::Relaxed);
    let i = (vector - u64::from(FIRST_VECTOR)) as usize;
    let (port, count) = {
        let mut routes = ROUTES.lock();
        let Some(r) = routes.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        r.count += 1;
        (r.port.clone(), r.count)
    };
    // Never blocks; a full or closed buffer loses this message only.
    let _ = port.send(Msg::new(
        IrqMessage { count }.to_bytes().to_vec(),
        Vec::new(),
    ));
}

const MSIX_ENABLE: u16 = 1 << 15;
const MSIX_FUNCTION_MASK: u16 = 1 << 14;
const ENTRY_MASKED: u32 = 1;

/// Points every MSI-X entry of the device at `vector` on the boot CPU and enables MSI-X (legacy
/// INTx off).
pub fn enable(d: &Found, m: &Msix, vector: u8) -> Result<(), Error> {
    let t = d.table.as_ref().ok_or(Error::Failed)?;
    let apic = crate::arch::acpi::cpus().apic_ids[0];
    let address = 0xfee0_0000 | (apic & 0xff) << 12;
    pci::write_msix_control(d.func, m.cap, MSIX_FUNCTION_MASK);
    for e in 0..u64::from(m.entries) {
        let at = e * 16;
        t.write32(at + 12, ENTRY_MASKED);
        t.write32(at, address);
        t.write32(at + 4, 0);
        t.write32(at + 8, u32::from(vector));
        t.write32(at + 12, 0);
    }
    pci::write_command(
        d.func,
        u32::from(pci::COMMAND_INTX_DISABLE),
        pci::COMMAND_INTX_DISABLE,
    );
    pci::write_msix_control(d.func, m.cap, MSIX_ENABLE);
    Ok(())
}

/// Masks every entry and turns MSI-X off.
pub fn disable(d: &Found, m: &Msix) {
    pci::write_msix_control(d.func, m.cap, MSIX_FUNCTION_MASK);
    if let Some(t) = &d.table {
        for e in 0..u64::from(m.entries) {
            t.write32(e * 16 + 12, ENTRY_MASKED);
        }
    }
    pci::write_msix_control(d.func, m.cap, 0);
}
