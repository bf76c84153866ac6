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
    /// `channel_create() -> h0 | h1 << 32`: a new channel; both endpoint handles with
    /// [`crate::Rights::CHANNEL_ALL`].
    ChannelCreate = 4,
    /// `close(h)`: releases a handle; a channel endpoint's peer then sees `Closed`.
    Close = 5,
    /// `send(h, bytes, len, handles, count)`: copies the message into the peer's buffer and
    /// moves the handles; never blocks (`Full` when there is no room).
    Send = 6,
    /// `recv(h, buf, cap, handles, hcap, deadline) -> len | count << 32`: the oldest message;
    /// blocks the calling thread until one arrives or the deadline passes.
    Recv = 7,
    /// `wait(items, count, deadline) -> index`: waits until one of the handles in `items`
    /// (an array of [`WaitItem`]) shows one of its wanted signals; fills in what each shows.
    Wait = 8,
    /// `spawn(request) -> parent_end | process << 32`: a new process from a module (see
    /// [`SpawnRequest`]).
    Spawn = 9,
    /// `kill(process)`: ends the process a handle with the kill right names.
    Kill = 10,
    /// `panic(text, len)`: ends the calling process, reporting the text to its parent.
    Panic = 11,
    /// `now() -> ns`: the monotonic clock, in nanoseconds since boot.
    Now = 12,
    /// `sleep(deadline)`: blocks the calling thread until the monotonic clock reaches
    /// `deadline` (nanoseconds since boot).
    Sleep = 13,
    /// `thread_stats() -> cpu_ns`: CPU time the calling thread has used, in nanoseconds.
    CpuTime = 14,
    /// `send_recv(h, bytes, len, buf, cap, deadline) -> len`: sends `bytes` on `h` (as `send`,
    /// without handles; a send error returns at once and nothing is received), then receives
    /// the next message on `h` into `buf` (as `recv` with no handle buffer: a message carrying
    /// handles stays queued and the call says `TooBig`). Needs both rights. The client's call
    /// and the server's reply-and-wait of request/response protocols: one system call instead
    /// of two, and the core passes straight to a peer that is waiting on the same core.
    SendRecv = 15,
    /// `send_recv_receive(h, _, _, buf, cap, deadline) -> len`: the receive half of
    /// [`Sys::SendRecv`], with its registers (the send's pointer and length are ignored). A
    /// thread suspended while it waited for its answer in `send_recv` has already sent; the
    /// core rewrites its call number to this one so that on resume it waits again without
    /// sending a second time (`docs/suspend.md`). A program may call it directly.
    SendRecvReceive = 31,
    /// `thread_spawner() -> h`: a handle to the calling process's thread spawner (see
    /// [`crate::thread`]); it cannot be moved to another process.
    ThreadSpawner = 16,
    /// `thread_create(spawner, entry, stack_top, arg, fs_base, flags) -> thread`: a new thread
    /// in the caller's process, started as [`crate::thread`] describes; returns its handle.
    /// `Failed` for a non-canonical entry, stack or FS base, a stack top not 16-byte aligned,
    /// unknown flag bits or a core that does not exist; `Overloaded` with a
    /// [`crate::thread::Overload`] code in `rdx` when a limit is reached.
    ThreadCreate = 17,
    /// `thread_join(thread) -> code`: waits for the thread to end and returns its exit code;
    /// one-shot. `Failed` for a self-join, a second waiter, or a thread already joined.
    ThreadJoin = 18,
    /// `thread_exit_code(thread) -> code`: the exit code of a thread that has ended, without
    /// consuming the join; `Timeout` while it runs, `Failed` once joined.
    ThreadExitCode = 19,
    /// `thread_exit(code)`: ends the calling thread; the last thread's exit ends the process
    /// with `code`.
    ThreadExit = 20,
    /// `fs_base_get() -> value`: the calling thread's FS base.
    FsBaseGet = 21,
    /// `fs_base_set(value)`: sets the calling thread's FS base (the register changes at once);
    /// `Failed` for a non-canonical value.
    FsBaseSet = 22,
    /// `park_wait(addr, expected, deadline) -> 0 | 1`: if the 32-bit word at `addr` (4-byte
    /// aligned) still holds `expected`, blocks the calling thread until a `park_wake` on the
    /// same address wakes it (`0`) or the deadline passes (`Timeout`); `1` at once when the
    /// word holds another value.
    ParkWait = 23,
    /// `park_wake(addr, count) -> woken`: wakes up to `count` threads of the caller's process
    /// parked on `addr`, oldest first.
    ParkWake = 24,
    /// `ledger(out, len) -> bytes`: writes the calling process's [`crate::thread::Ledger`].
    Ledger = 25,
    /// `thread_self() -> tid | core << 32`: the calling thread's id and the core it runs on.
    ThreadSelf = 26,
    /// `portal_call(portal, a0, a1, a2, a3) -> r0` (and `r1` in `rsi`): the calling thread
    /// migrates into the portal's server and runs its entry (see [`crate::portal`]); it comes
    /// back with the two words the server passed to `portal_return`. `Closed` for a revoked
    /// portal, a server that is gone, or a server that died or faulted during the call;
    /// `Failed` for a call into a process the thread is already in (its own, or one on its
    /// chain of calls); `Overloaded` past [`crate::portal::MAX_DEPTH`] nested calls. Keeps only
    /// the callee-saved registers (see [`crate::portal`] for the register contract).
    PortalCall = 27,
    /// `portal_return(r0, r1)`: ends the portal call the thread is in; the caller's
    /// `portal_call` returns `r0` and `r1`. `Failed` when the thread is not in a call.
    PortalReturn = 28,
    /// `portal_create(entry, badge) -> portal`: a portal into the calling process; a call
    /// enters at `entry` with `badge` (see [`crate::portal`]). The handle has
    /// [`crate::Rights::PORTAL_ALL`]. `Failed` for a non-canonical entry.
    PortalCreate = 29,
    /// `portal_revoke(portal)`: every handle to the portal says `Closed` from now on (calls
    /// already inside the server go on). Needs [`crate::Rights::REVOKE`].
    PortalRevoke = 30,
    // 31: reserved for portals.
    // 32–47: devices (see `crate::device`).
    /// `device_info(dev, out, len) -> bytes`: writes the device's [`crate::device::DeviceInfo`]
    /// (config right).
    DeviceInfo = 32,
    /// `config_read(dev, offset) -> value`: a 32-bit register of the device's own PCI
    /// configuration space (config right).
    ConfigRead = 33,
    /// `config_write(dev, offset, value)`: writes the command/status register; every other
    /// register stays with the kernel (config right).
    ConfigWrite = 34,
    /// `map_bar(dev, index) -> va`: maps a memory BAR into the caller, uncached and never
    /// executable, in the device window; the same BAR again gives the same address (MMIO right).
    MapBar = 35,
    /// `dma_alloc(dev, pages, out)`: physically contiguous zeroed memory in the DMA window,
    /// charged to the caller's ledger; writes a [`crate::device::DmaRegion`] (DMA right).
    DmaAlloc = 36,
    /// `dma_free(dev, va)`: gives back a region `dma_alloc` returned (DMA right).
    DmaFree = 37,
    /// `irq_bind(dev, endpoint)`: the kernel takes the endpoint and sends an
    /// [`crate::device::IrqMessage`] on it for each interrupt of the device (IRQ right; the
    /// endpoint needs send and transfer).
    IrqBind = 38,
    /// `system_processes(system, buf, cap) -> count`: writes one
    /// [`crate::system::ProcessInfo`] record per live process (at most `cap / RECORD` of them,
    /// in pid order) and returns how many processes there are. Needs a system handle with
    /// [`crate::Rights::INSPECT`].
    SystemProcesses = 48,
    /// `system_kill(system, pid)`: ends process `pid` (death kind `Killed`, reported to its
    /// parent). Needs [`crate::Rights::KILL`] on a system handle; `NotFound` for no such live
    /// process.
    SystemKill = 49,
    /// `system_memory(system, out)`: writes a [`crate::system::MemoryInfo`]. Needs
    /// [`crate::Rights::INSPECT`].
    SystemMemory = 50,
    /// `system_power_off(system)`: stops the machine in order. Needs [`crate::Rights::POWER`].
    SystemPowerOff = 51,
    /// `console_attach(console) -> endpoint`: a channel on which the console's input arrives
    /// as messages of bytes. One reader at a time: attaching again closes the previous
    /// reader's channel. Needs [`crate::Rights::RECV`] on a console handle.
    ConsoleAttach = 52,
    /// `console_write(console, ptr, len)`: writes bytes to the console as they are (no
    /// prefix), at most [`MAX_LOG_BYTES`]. Needs [`crate::Rights::SEND`] on a console handle.
    ConsoleWrite = 53,
    /// `handle_duplicate(h, rights) -> h2`: a second handle to the same system or console
    /// object with the rights of `h` reduced to `rights`. Needs [`crate::Rights::TRANSFER`];
    /// other objects are `WrongType` (a channel endpoint has one owner).
    HandleDuplicate = 54,
    /// `system_root_restart(system) -> endpoint`: starts the root filesystem's block and
    /// filesystem drivers again from the boot bundle (ending the previous ones if they still
    /// live); the core reads modules through the new driver from then on, and the caller gets
    /// the new driver's parent channel (its death report, and connect messages). Needs
    /// [`crate::Rights::KILL`]; `NotFound` without a root filesystem, `Failed` when the
    /// drivers do not come up (the core logs why).
    SystemRootRestart = 55,
    /// `system_suspend(system, pid) -> id`: suspends process `pid` with every live process it
    /// spawned (its tree, as a unit), writes the image to `/sys/suspended/<id>.img` through the
    /// root filesystem and syncs it, then frees the processes' memory; their channel endpoints
    /// stay, dormant (peers' sends succeed, their receives say `PeerSuspended`). Needs
    /// [`crate::Rights::SUSPEND`]. `NotFound` (no such live process), `Failed` (a thread of the
    /// tree is inside a portal call or a visitor is inside it: try again; or the tree holds a
    /// device), `Io` (no root filesystem, or the write failed: nothing was suspended).
    SystemSuspend = 56,
    /// `process_suspend(process) -> id`: [`Sys::SystemSuspend`] for the process a process
    /// handle names; needs [`crate::Rights::SUSPEND`] on that handle.
    ProcessSuspend = 57,
    /// `system_resume(system, id, core, out) -> pid`: reads and verifies
    /// `/sys/suspended/<id>.img`, rebuilds its processes at the same addresses (on `core`, or
    /// on the core each thread had when `core` is [`crate::suspend::CORE_KEEP`]), reconnects
    /// their endpoints, queues the messages they had and that arrived meanwhile, starts the
    /// threads, removes the image, and writes a [`crate::suspend::ResumeInfo`] to `out`. Needs
    /// [`crate::Rights::SUSPEND`]. `NotFound` (no such image), `Corrupt` (the image is damaged,
    /// of another version, or its module changed: the log names the defect), `Io`.
    SystemResume = 58,
    /// `system_images(system, buf, cap) -> count`: the ids of the images in `/sys/suspended`,
    /// ascending, as `u64`s (at most `cap` of them); returns how many there are. Needs
    /// [`crate::Rights::INSPECT`].
    SystemImages = 59,
    /// `system_discard(system, id)`: removes an image and closes the dormant endpoints the core
    /// kept for it (their peers see `Closed`). Needs [`crate::Rights::SUSPEND`].
    SystemDiscard = 60,
    /// `system_migrate(system, pid, core, out) -> pid`: suspend then resume on `core`, through
    /// the disk (the image is written and synced first). Needs [`crate::Rights::SUSPEND`].
    SystemMigrate = 61,
}

impl Sys {
    /// The call with this number.
    #[inline]
    pub fn from_number(n: u64) -> Option<Sys> {
        Self::from_number_inline(n)
    }

    /// [`Sys::from_number`], always inline: the kernel's dispatch folds it into its jump table.
    #[inline(always)]
    pub fn from_number_inline(n: u64) -> Option<Sys> {
        Some(match n {
            0 => Sys::Null,
            1 => Sys::Log,
            2 => Sys::Exit,
            3 => Sys::Yield,
            4 => Sys::ChannelCreate,
            5 => Sys::Close,
            6 => Sys::Send,
            7 => Sys::Recv,
            8 => Sys::Wait,
            9 => Sys::Spawn,
            10 => Sys::Kill,
            11 => Sys::Panic,
            12 => Sys::Now,
            13 => Sys::Sleep,
            14 => Sys::CpuTime,
            15 => Sys::SendRecv,
            31 => Sys::SendRecvReceive,
            16 => Sys::ThreadSpawner,
            17 => Sys::ThreadCreate,
            18 => Sys::ThreadJoin,
            19 => Sys::ThreadExitCode,
            20 => Sys::ThreadExit,
            21 => Sys::FsBaseGet,
            22 => Sys::FsBaseSet,
            23 => Sys::ParkWait,
            24 => Sys::ParkWake,
            25 => Sys::Ledger,
            26 => Sys::ThreadSelf,
            27 => Sys::PortalCall,
            28 => Sys::PortalReturn,
            29 => Sys::PortalCreate,
            30 => Sys::PortalRevoke,
            32 => Sys::DeviceInfo,
            33 => Sys::ConfigRead,
            34 => Sys::ConfigWrite,
            35 => Sys::MapBar,
            36 => Sys::DmaAlloc,
            37 => Sys::DmaFree,
            38 => Sys::IrqBind,
            48 => Sys::SystemProcesses,
            49 => Sys::SystemKill,
            50 => Sys::SystemMemory,
            51 => Sys::SystemPowerOff,
            52 => Sys::ConsoleAttach,
            53 => Sys::ConsoleWrite,
            54 => Sys::HandleDuplicate,
            55 => Sys::SystemRootRestart,
            56 => Sys::SystemSuspend,
            57 => Sys::ProcessSuspend,
            58 => Sys::SystemResume,
            59 => Sys::SystemImages,
            60 => Sys::SystemDiscard,
            61 => Sys::SystemMigrate,
            _ => return None,
        })
    }
}

/// Most bytes one `log` call prints.
pub const MAX_LOG_BYTES: usize = 512;

/// Deadlines are absolute times on the monotonic clock (`now()`, nanoseconds since boot), with
/// two special values:
/// A deadline meaning "do not block": the call returns `Timeout` at once when it would wait.
pub const DEADLINE_NOW: u64 = 0;
/// A deadline meaning "wait as long as it takes".
pub const DEADLINE_NEVER: u64 = u64::MAX;

/// Signals `wait` reports for a channel endpoint, as bits.
pub mod signal {
    /// A message is queued for this endpoint.
    pub const READABLE: u32 = 1 << 0;
    /// The peer's buffer has room (and the peer is open).
    pub const WRITABLE: u32 = 1 << 1;
    /// The peer endpoint is closed.
    pub const PEER_CLOSED: u32 = 1 << 2;
    /// The peer endpoint is suspended.
    pub const PEER_SUSPENDED: u32 = 1 << 3;
}

/// One entry of a `wait` call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct WaitItem {
    /// The handle (a channel endpoint).
    pub handle: u32,
    /// The signals that end the wait.
    pub wanted: u32,
    /// Filled in by the kernel: the signals the handle shows.
    pub observed: u32,
    /// Zero.
    pub reserved: u32,
}

/// Most items one `wait` takes.
pub const MAX_WAIT_ITEMS: usize = 16;

/// What `spawn` takes, by pointer.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct SpawnRequest {
    /// The module's path (in the boot bundle for now).
    pub path: u64,
    /// Its length.
    pub path_len: u64,
    /// Handed to the child's `main` in `rdi`.
    pub arg: u64,
    /// Handles moved to the child (they become its handles 1, 2, ...).
    pub handles: u64,
    /// How many.
    pub handle_count: u64,
    /// The arena ceiling in bytes.
    pub arena_ceiling: u64,
    /// The main thread's stack size in bytes (whole pages).
    pub stack_size: u64,
    /// Scheduling priority (recorded; the deadline scheduler interprets it).
    pub priority: u64,
    /// The most thread records the child may hold (0: [`crate::thread::THREAD_LIMIT`], which
    /// is also the largest allowed).
    pub thread_limit: u64,
    /// The child's kernel-stack budget in pages (0: [`crate::thread::KERNEL_STACK_BUDGET`],
    /// also the largest allowed).
    pub kernel_stack_pages: u64,
}

/// Longest module path.
pub const MAX_PATH: usize = 256;
/// Longest panic text a death report carries.
pub const MAX_PANIC_TEXT: usize = 192;

/// The death report the kernel sends on a dead process's parent channel, as bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct DeathReport {
    /// [`DeathReport::MAGIC`].
    pub magic: u32,
    /// One of the `DEATH_*` kinds.
    pub kind: u32,
    /// The pid of the dead process.
    pub pid: u64,
    /// Exit code (`DEATH_EXIT`), fault kind (`DEATH_FAULT`), else 0.
    pub code: i64,
    /// Faulting instruction (`DEATH_FAULT`).
    pub rip: u64,
    /// Faulting address (page faults).
    pub addr: u64,
    /// Bytes of `text` in use (`DEATH_PANIC`).
    pub text_len: u32,
    /// Padding.
    pub reserved: u32,
    /// The panic message.
    pub text: [u8; MAX_PANIC_TEXT],
}

/// `exit(code)`.
pub const DEATH_EXIT: u32 = 1;
/// A fault; `code` is a `FAULT_*` kind.
pub const DEATH_FAULT: u32 = 2;
/// Killed through a process handle.
pub const DEATH_KILLED: u32 = 3;
/// A panic; `text` says why.
pub const DEATH_PANIC: u32 = 4;

/// Fault kinds in a death report's `code`.
pub mod fault {
    /// Access to an unmapped page (null included).
    pub const PAGE_FAULT: i64 = 1;
    /// Write to a read-only page or execution of a non-executable one.
    pub const PROTECTION: i64 = 2;
    /// General protection.
    pub const GENERAL_PROTECTION: i64 = 3;
    /// Invalid opcode.
    pub const INVALID_OPCODE: i64 = 4;
    /// Divide by zero.
    pub const DIVIDE_BY_ZERO: i64 = 5;
    /// The stack ran into its guard page.
    pub const STACK_OVERFLOW: i64 = 6;
    /// The arena grew past its ceiling.
    pub const ARENA_CEILING: i64 = 7;
    /// Another exception (vector in `addr`).
    pub const OTHER: i64 = 8;
}

impl DeathReport {
    /// Marks a death report ("DEAD").
    pub const MAGIC: u32 = u32::from_le_bytes(*b"DEAD");
    /// Its size on the wire.
    pub const SIZE: usize = core::mem::size_of::<DeathReport>();

    /// The report as bytes (little-endian, the layout above).
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.magic.to_le_bytes());
        b[4..8].copy_from_slice(&self.kind.to_le_bytes());
        b[8..16].copy_from_slice(&self.pid.to_le_bytes());
        b[16..24].copy_from_slice(&self.code.to_le_bytes());
        b[24..32].copy_from_slice(&self.rip.to_le_bytes());
        b[32..40].copy_from_slice(&self.addr.to_le_bytes());
        b[40..44].copy_from_slice(&self.text_len.to_le_bytes());
        b[44..48].copy_from_slice(&self.reserved.to_le_bytes());
        b[48..].copy_from_slice(&self.text);
        b
    }

    /// Parses a report; `None` for anything that is not one.
    pub fn from_bytes(b: &[u8]) -> Option<DeathReport> {
        if b.len() != Self::SIZE {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let r = DeathReport {
            magic: u32_at(0),
            kind: u32_at(4),
            pid: u64_at(8),
            code: u64_at(16) as i64,
            rip: u64_at(24),
            addr: u64_at(32),
            text_len: u32_at(40),
            reserved: u32_at(44),
            text: b[48..].try_into().ok()?,
        };
        (r.magic == Self::MAGIC && r.text_len as usize <= MAX_PANIC_TEXT).then_some(r)
    }

    /// The panic text.
    pub fn text(&self) -> &str {
        let t = &self.text[..(self.text_len as usize).min(MAX_PANIC_TEXT)];
        core::str::from_utf8(t).unwrap_or("<invalid utf-8>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for n in 0..64 {
            if let Some(s) = Sys::from_number(n) {
                assert_eq!(s as u64, n);
            }
        }
        assert_eq!(Sys::from_number(11), Some(Sys::Panic));
        assert_eq!(Sys::from_number(14), Some(Sys::CpuTime));
        assert_eq!(Sys::from_number(15), Some(Sys::SendRecv));
        assert_eq!(Sys::from_number(38), Some(Sys::IrqBind));
        assert_eq!(Sys::from_number(1000), None);
        assert_eq!(Sys::from_number(16), Some(Sys::ThreadSpawner));
        assert_eq!(Sys::from_number(26), Some(Sys::ThreadSelf));
        assert_eq!(Sys::from_number(27), Some(Sys::PortalCall));
        assert_eq!(Sys::from_number(30), Some(Sys::PortalRevoke));
        assert_eq!(Sys::from_number(31), Some(Sys::SendRecvReceive));
        assert_eq!(Sys::from_number(48), Some(Sys::SystemProcesses));
        assert_eq!(Sys::from_number(54), Some(Sys::HandleDuplicate));
        assert_eq!(Sys::from_number(55), Some(Sys::SystemRootRestart));
        assert_eq!(Sys::from_number(56), Some(Sys::SystemSuspend));
        assert_eq!(Sys::from_number(61), Some(Sys::SystemMigrate));
        assert_eq!(Sys::from_number(62), None);
    }

    #[test]
    fn death_report_round_trips_and_rejects_garbage() {
        let mut r = DeathReport {
            magic: DeathReport::MAGIC,
            kind: DEATH_PANIC,
            pid: 7,
            code: -3,
            rip: 0x40_1000,
            addr: 8,
            text_len: 5,
            reserved: 0,
            text: [0; MAX_PANIC_TEXT],
        };
        r.text[..5].copy_from_slice(b"boom!");
        let b = r.to_bytes();
        assert_eq!(DeathReport::from_bytes(&b), Some(r));
        assert_eq!(DeathReport::from_bytes(&b).unwrap().text(), "boom!");
        assert_eq!(DeathReport::from_bytes(&b[..10]), None);
        let mut bad = b;
        bad[0] ^= 1;
        assert_eq!(DeathReport::from_bytes(&bad), None);
        let mut long = b;
        long[40] = 255;
        assert_eq!(DeathReport::from_bytes(&long), None);
    }
}
