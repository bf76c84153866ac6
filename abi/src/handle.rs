//! Handles and rights: how a process names the kernel objects it holds.

/// A process-local name for a kernel object: a slot index (low 16 bits) and the slot's
/// generation (high 16 bits). A closed slot's generation advances, so an old value never names
/// the slot's next occupant. Handle 0 (slot 0, generation 0) is always the parent channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Handle(pub u32);

impl Handle {
    /// The parent channel, present in every process.
    pub const PARENT: Handle = Handle(0);

    /// A handle from its parts.
    pub const fn new(index: u16, generation: u16) -> Handle {
        Handle(((generation as u32) << 16) | index as u32)
    }

    /// The slot index.
    pub const fn index(self) -> u16 {
        self.0 as u16
    }

    /// The generation.
    pub const fn generation(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// What a handle allows, as a bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Rights(pub u32);

impl Rights {
    /// No rights.
    pub const NONE: Rights = Rights(0);
    /// Send on a channel endpoint.
    pub const SEND: Rights = Rights(1 << 0);
    /// Receive on a channel endpoint.
    pub const RECV: Rights = Rights(1 << 1);
    /// Move the handle to another process in a message.
    pub const TRANSFER: Rights = Rights(1 << 2);
    /// Kill the process a process handle names.
    pub const KILL: Rights = Rights(1 << 3);
    /// Suspend the process a process handle names.
    pub const SUSPEND: Rights = Rights(1 << 4);
    /// Read a device's PCI configuration space (its own function only) and write the registers
    /// a driver may change; read its description (`device_info`).
    pub const CONFIG: Rights = Rights(1 << 5);
    /// Map a device's memory BARs into the holder (`map_bar`).
    pub const MMIO: Rights = Rights(1 << 6);
    /// Allocate and free DMA memory for a device (`dma_alloc`, `dma_free`).
    pub const DMA: Rights = Rights(1 << 7);
    /// Have the device's interrupt delivered as channel messages (`irq_bind`).
    pub const IRQ: Rights = Rights(1 << 8);
    /// Everything a device handle can carry (never transfer: a device stays with its driver).
    pub const DEVICE_ALL: Rights =
        Rights(Self::CONFIG.0 | Self::MMIO.0 | Self::DMA.0 | Self::IRQ.0);
    /// Read the system's figures (process list, memory) through a system handle.
    pub const INSPECT: Rights = Rights(1 << 9);
    /// Stop the machine through a system handle.
    pub const POWER: Rights = Rights(1 << 10);
    /// Revoke a portal: every handle to it says `Closed` from then on.
    pub const REVOKE: Rights = Rights(1 << 11);
    /// Everything a portal handle can carry: call (`SEND`), revoke, pass on.
    pub const PORTAL_ALL: Rights = Rights(Self::SEND.0 | Self::REVOKE.0 | Self::TRANSFER.0);
    /// Everything a system handle can carry: inspect, kill any process, power off, pass on.
    pub const SYSTEM_ALL: Rights =
        Rights(Self::INSPECT.0 | Self::KILL.0 | Self::POWER.0 | Self::TRANSFER.0 | Self::SUSPEND.0);
    /// Everything a console handle can carry: read input (`RECV`), write (`SEND`), pass on.
    pub const CONSOLE_ALL: Rights = Rights(Self::SEND.0 | Self::RECV.0 | Self::TRANSFER.0);
    /// Everything a channel endpoint can carry.
    pub const CHANNEL_ALL: Rights = Rights(Self::SEND.0 | Self::RECV.0 | Self::TRANSFER.0);

    /// True when every right in `other` is here.
    pub const fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union.
    pub const fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    /// The intersection (rights can only be reduced, never added).
    pub const fn intersect(self, other: Rights) -> Rights {
        Rights(self.0 & other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_parts() {
        let h = Handle::new(7, 3);
        assert_eq!((h.index(), h.generation()), (7, 3));
        assert_eq!(Handle::PARENT, Handle::new(0, 0));
    }

    #[test]
    fn rights_algebra() {
        let r = Rights::SEND.union(Rights::RECV);
        assert!(r.contains(Rights::SEND));
        assert!(!r.contains(Rights::TRANSFER));
        assert_eq!(r.intersect(Rights::RECV), Rights::RECV);
    }
}
