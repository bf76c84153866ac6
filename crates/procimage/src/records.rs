//! The typed records an image holds, and their fixed-width little-endian encodings: the process
//! record, the module reference, thread records (registers and FXSAVE area), handle records and
//! the object references inside them and inside messages. Decoding checks every field a record
//! alone can check (reserved bytes, enumerations, field combinations); the parser adds the checks
//! that need the rest of the image.
use crate::bytes::{array, u8_at, u16_at, u32_at, u64_at, zero};
use crate::error::ObjectDefect;
use crate::{FXSAVE_LEN, HANDLE_LEN, NO_PROCESS, OBJECT_LEN, PAGE, THREAD_LEN};

/// Rights bits this version knows (the `abi` rights); any other bit is refused.
pub(crate) const KNOWN_RIGHTS: u32 = abi::Rights::CHANNEL_ALL.0
    | abi::Rights::KILL.0
    | abi::Rights::SUSPEND.0
    | abi::Rights::DEVICE_ALL.0
    | abi::Rights::SYSTEM_ALL.0;

/// The link kind of an ended thread, the one link that uses the object reference's last 8 bytes.
const ENDED: u8 = 5;

/// Most handles one message carries.
pub(crate) const MAX_CARRIED: usize = abi::limits::MAX_MESSAGE_HANDLES;

/// The PROCESS section: who the process was and where its memory lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessRecord<'a> {
    /// The pid it had when it was suspended (a resumed process gets a new one).
    pub pid: u64,
    /// The pid of its parent then (0: the kernel).
    pub parent_pid: u64,
    /// Its parent's index in the image: `None` for the root (index 0), always lower than the
    /// process's own index otherwise.
    pub parent: Option<u16>,
    /// Its name (UTF-8, at most [`crate::MAX_NAME`] bytes).
    pub name: &'a str,
    /// The most thread records it may hold (1 to `abi::thread::THREAD_LIMIT`), as its spawn
    /// set it: a resume restores it.
    pub thread_limit: u32,
    /// Lowest address of the arena (page-aligned).
    pub arena_base: u64,
    /// The arena's ceiling in bytes (a multiple of the page size): arena pages lie in
    /// `arena_base..arena_base + arena_ceiling`.
    pub arena_ceiling: u64,
    /// Lowest address of its stack slots (page-aligned).
    pub stack_low: u64,
    /// End of its stack slots (page-aligned, not below `stack_low`): stack pages lie in
    /// `stack_low..stack_high`.
    pub stack_high: u64,
    /// Its scheduling priority (deadline tightness, 0 normal).
    pub priority: u64,
    /// The core it ran on.
    pub core: u32,
    /// Its kernel-stack budget in pages (`abi::thread::KERNEL_STACK_PAGES` to
    /// `abi::thread::KERNEL_STACK_BUDGET`), as its spawn set it: a resume restores it.
    pub kernel_stack_pages: u32,
    /// Nanoseconds of CPU time its threads used.
    pub cpu_ns: u64,
}

/// The MODULE section: the ELF file the process was spawned from, by reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleRef<'a> {
    /// Its path, as the spawn named it (UTF-8, 1 to [`crate::MAX_NAME`] bytes).
    pub path: &'a str,
    /// SHA-256 of the file's contents ([`crate::module_hash`]).
    pub hash: [u8; 32],
    /// Where its image was loaded (page-aligned).
    pub load_base: u64,
}

/// A thread's general-purpose registers, instruction pointer and flags, as it will continue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Registers {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
}

impl Registers {
    /// The registers in image order (rax rbx rcx rdx rsi rdi rbp rsp r8–r15 rip rflags).
    pub const fn to_array(&self) -> [u64; 18] {
        [
            self.rax,
            self.rbx,
            self.rcx,
            self.rdx,
            self.rsi,
            self.rdi,
            self.rbp,
            self.rsp,
            self.r8,
            self.r9,
            self.r10,
            self.r11,
            self.r12,
            self.r13,
            self.r14,
            self.r15,
            self.rip,
            self.rflags,
        ]
    }

    /// The registers from image order.
    pub const fn from_array(r: [u64; 18]) -> Registers {
        Registers {
            rax: r[0],
            rbx: r[1],
            rcx: r[2],
            rdx: r[3],
            rsi: r[4],
            rdi: r[5],
            rbp: r[6],
            rsp: r[7],
            r8: r[8],
            r9: r[9],
            r10: r[10],
            r11: r[11],
            r12: r[12],
            r13: r[13],
            r14: r[14],
            r15: r[15],
            rip: r[16],
            rflags: r[17],
        }
    }
}

/// Where a thread stood when it was suspended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ThreadState {
    /// Ready to run (it was running or queued): it continues at `rip`.
    Runnable = 0,
    /// Waiting inside a system call: its registers are those with which the call is made again
    /// on resume, so the wait starts over.
    Blocked = 1,
}

/// One thread of a THREADS section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadRecord {
    /// Its thread id then (unique within the process; records are in ascending order).
    pub tid: u64,
    /// Its thread generation (the `thread_gen` of a `ThreadRef`).
    pub generation: u32,
    /// Runnable or blocked.
    pub state: ThreadState,
    /// The core it ran on.
    pub core: u32,
    /// Nanoseconds of CPU time it used.
    pub cpu_ns: u64,
    /// Its user registers.
    pub regs: Registers,
    /// FS base.
    pub fs_base: u64,
    /// User GS base.
    pub gs_base: u64,
    /// The 512-byte FXSAVE area (x87, MMX, SSE state and MXCSR).
    pub fxsave: [u8; FXSAVE_LEN],
}

/// The kind of kernel object a handle names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum ObjectKind {
    /// One side of a channel.
    Endpoint = 1,
    /// A process (kill and suspend rights).
    Process = 2,
    /// A PCI function.
    Device = 3,
    /// The system handle.
    System = 4,
    /// The serial console.
    Console = 5,
    /// The process's thread spawner (creates threads in the process that holds it only).
    ThreadSpawner = 6,
    /// A thread of the process that holds the handle: live, or ended with an exit code.
    Thread = 7,
}

impl ObjectKind {
    /// The kind with this number.
    pub const fn from_u16(v: u16) -> Option<ObjectKind> {
        Some(match v {
            1 => ObjectKind::Endpoint,
            2 => ObjectKind::Process,
            3 => ObjectKind::Device,
            4 => ObjectKind::System,
            5 => ObjectKind::Console,
            6 => ObjectKind::ThreadSpawner,
            7 => ObjectKind::Thread,
            _ => return None,
        })
    }

    /// Its name in messages and in the tool's output.
    pub const fn name(self) -> &'static str {
        match self {
            ObjectKind::Endpoint => "endpoint",
            ObjectKind::Process => "process",
            ObjectKind::Device => "device",
            ObjectKind::System => "system",
            ObjectKind::Console => "console",
            ObjectKind::ThreadSpawner => "thread spawner",
            ObjectKind::Thread => "thread",
        }
    }
}

/// Where the other side of an object is, within the image or outside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Outside the image: for an endpoint, the peer is outside (the suspending kernel keeps it,
    /// dormant, under the channel reference id); for a process, the process is not in the
    /// image; for a thread, the thread is live (its record is in the holder's THREADS); for
    /// other objects, nothing to link.
    None,
    /// An endpoint whose peer was already closed.
    PeerClosed,
    /// An endpoint whose peer is handle slot `index` of process `process` of this image.
    Handle {
        /// Process index.
        process: u16,
        /// Handle slot index.
        index: u16,
    },
    /// An endpoint whose peer travels in a queued message: handle `slot` carried by message
    /// `message` of process `process`'s MESSAGES section.
    Carried {
        /// Process index.
        process: u16,
        /// Message index in that process's MESSAGES section.
        message: u32,
        /// Position among the message's carried handles.
        slot: u8,
    },
    /// A process object naming process `index` of this image.
    Process {
        /// Process index.
        index: u16,
    },
    /// A thread object whose thread ended with exit code `code` (it has no record in THREADS;
    /// the handle keeps the code for join and exit-code queries).
    Ended {
        /// The thread's exit code.
        code: i64,
    },
}

impl Link {
    const fn code(self) -> u8 {
        match self {
            Link::None => 0,
            Link::PeerClosed => 1,
            Link::Handle { .. } => 2,
            Link::Carried { .. } => 3,
            Link::Process { .. } => 4,
            Link::Ended { .. } => 5,
        }
    }
}

/// An object a handle slot holds or a message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    /// What it is.
    pub kind: ObjectKind,
    /// The rights the handle carries (`abi::Rights` bits).
    pub rights: u32,
    /// Endpoint: the channel reference id, which names the channel within the image (both
    /// sides of an internal channel carry the same one) and, for an endpoint whose peer is
    /// outside, the key under which the suspending kernel keeps that peer. Process: the pid it
    /// had. Device: its PCI address (bus << 8 | device << 3 | function). Thread: its tid in the
    /// image. System, console, thread spawner: 0.
    pub id: u64,
    /// Endpoint: which side of the channel (0 or 1); 0 for other objects.
    pub side: u8,
    /// Where its other side is.
    pub link: Link,
}

/// One slot of a HANDLES section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleRecord {
    /// Slot index (records are in ascending order, below `abi::limits::MAX_HANDLES`).
    pub index: u16,
    /// The slot's generation.
    pub generation: u16,
    /// The object in it.
    pub object: ObjectRef,
}

/// The endpoint a queued message waits in: one the process holds or one it has in transit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receiver {
    /// Handle slot `index` of the process.
    Handle {
        /// Handle slot index.
        index: u16,
    },
    /// Handle `slot` carried by message `message` of the same MESSAGES section.
    Carried {
        /// Message index.
        message: u32,
        /// Position among its carried handles.
        slot: u8,
    },
}

impl Receiver {
    /// The order messages are stored in: handle receivers by index, then carried receivers
    /// by (message, slot).
    pub(crate) const fn key(self) -> (u8, u32, u16) {
        match self {
            Receiver::Handle { index } => (0, 0, index),
            Receiver::Carried { message, slot } => (1, message, slot as u16),
        }
    }
}

/// One page of an ARENA or STACKS section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page<'a> {
    /// Its virtual address (page-aligned).
    pub va: u64,
    /// Its contents.
    pub bytes: &'a [u8; PAGE],
}

/// Encodes an object reference.
pub(crate) fn encode_object(o: &ObjectRef) -> [u8; OBJECT_LEN] {
    let mut b = [0u8; OBJECT_LEN];
    let (process, slot, message) = match o.link {
        Link::None | Link::PeerClosed | Link::Ended { .. } => (0, 0, 0),
        Link::Handle { process, index } => (process, index, 0),
        Link::Carried {
            process,
            message,
            slot,
        } => (process, u16::from(slot), message),
        Link::Process { index } => (index, 0, 0),
    };
    // Only an ended thread uses the last 8 bytes; they are reserved (zero) otherwise.
    let code = match o.link {
        Link::Ended { code } => code,
        _ => 0,
    };
    let fields: [(usize, &[u8]); 9] = [
        (0, &(o.kind as u16).to_le_bytes()),
        (2, &[o.side]),
        (3, &[o.link.code()]),
        (4, &o.rights.to_le_bytes()),
        (8, &o.id.to_le_bytes()),
        (16, &process.to_le_bytes()),
        (18, &slot.to_le_bytes()),
        (20, &message.to_le_bytes()),
        (24, &code.to_le_bytes()),
    ];
    for (at, v) in fields {
        crate::bytes::put(&mut b, at, v);
    }
    b
}

/// Decodes an object reference of an image with `processes` processes (`b` is exactly
/// [`OBJECT_LEN`] bytes).
pub(crate) fn decode_object(b: &[u8], processes: u16) -> Result<ObjectRef, ObjectDefect> {
    let short = ObjectDefect::Short;
    let kind_raw = u16_at(b, 0).ok_or(short)?;
    let side = u8_at(b, 2).ok_or(short)?;
    let link_raw = u8_at(b, 3).ok_or(short)?;
    let rights = u32_at(b, 4).ok_or(short)?;
    let id = u64_at(b, 8).ok_or(short)?;
    let process = u16_at(b, 16).ok_or(short)?;
    let slot = u16_at(b, 18).ok_or(short)?;
    let message = u32_at(b, 20).ok_or(short)?;
    let code = u64_at(b, 24).ok_or(short)?;
    let kind = ObjectKind::from_u16(kind_raw).ok_or(ObjectDefect::Kind(kind_raw))?;
    if link_raw != ENDED && code != 0 {
        return Err(ObjectDefect::Reserved);
    }
    if rights & !KNOWN_RIGHTS != 0 {
        return Err(ObjectDefect::Rights(rights));
    }
    let endpoint = kind == ObjectKind::Endpoint;
    if side > u8::from(endpoint) {
        return Err(ObjectDefect::Side(side));
    }
    if matches!(
        kind,
        ObjectKind::System | ObjectKind::Console | ObjectKind::ThreadSpawner
    ) && id != 0
    {
        return Err(ObjectDefect::Id(id));
    }
    let in_range = |p: u16| {
        if p < processes {
            Ok(p)
        } else {
            Err(ObjectDefect::LinkProcess(p))
        }
    };
    let fields = ObjectDefect::LinkFields;
    let link = match link_raw {
        0 | 1 => {
            if process != 0 || slot != 0 || message != 0 {
                return Err(fields);
            }
            if link_raw == 0 {
                Link::None
            } else if endpoint {
                Link::PeerClosed
            } else {
                return Err(ObjectDefect::LinkForKind(link_raw));
            }
        }
        2 if endpoint => {
            if message != 0 {
                return Err(fields);
            }
            Link::Handle {
                process: in_range(process)?,
                index: slot,
            }
        }
        3 if endpoint => {
            let slot = u8::try_from(slot)
                .ok()
                .filter(|&s| usize::from(s) < MAX_CARRIED)
                .ok_or(ObjectDefect::CarriedSlot(slot))?;
            Link::Carried {
                process: in_range(process)?,
                message,
                slot,
            }
        }
        4 if kind == ObjectKind::Process => {
            if slot != 0 || message != 0 {
                return Err(fields);
            }
            Link::Process {
                index: in_range(process)?,
            }
        }
        ENDED if kind == ObjectKind::Thread => {
            if process != 0 || slot != 0 || message != 0 {
                return Err(fields);
            }
            Link::Ended {
                code: i64::from_le_bytes(code.to_le_bytes()),
            }
        }
        2..=ENDED => return Err(ObjectDefect::LinkForKind(link_raw)),
        _ => return Err(ObjectDefect::LinkKind(link_raw)),
    };
    Ok(ObjectRef {
        kind,
        rights,
        id,
        side,
        link,
    })
}

/// Encodes a handle record.
pub(crate) fn encode_handle(h: &HandleRecord) -> [u8; HANDLE_LEN] {
    let mut b = [0u8; HANDLE_LEN];
    crate::bytes::put(&mut b, 0, &h.index.to_le_bytes());
    crate::bytes::put(&mut b, 2, &h.generation.to_le_bytes());
    crate::bytes::put(&mut b, 8, &encode_object(&h.object));
    b
}

/// Encodes a thread record.
pub(crate) fn encode_thread(t: &ThreadRecord) -> [u8; THREAD_LEN] {
    let mut b = [0u8; THREAD_LEN];
    crate::bytes::put(&mut b, 0, &t.tid.to_le_bytes());
    crate::bytes::put(&mut b, 8, &t.generation.to_le_bytes());
    crate::bytes::put(&mut b, 12, &[t.state as u8]);
    crate::bytes::put(&mut b, 16, &t.core.to_le_bytes());
    crate::bytes::put(&mut b, 24, &t.cpu_ns.to_le_bytes());
    let mut at = 32;
    for r in t.regs.to_array().into_iter().chain([t.fs_base, t.gs_base]) {
        crate::bytes::put(&mut b, at, &r.to_le_bytes());
        at = at.wrapping_add(8);
    }
    crate::bytes::put(&mut b, 192, &t.fxsave);
    b
}

/// Why a thread record was refused (the parser adds the section).
pub(crate) enum ThreadDefect {
    State(u8),
    Reserved(usize),
    Short,
}

/// Decodes a thread record (`b` is exactly [`THREAD_LEN`] bytes).
pub(crate) fn decode_thread(b: &[u8]) -> Result<ThreadRecord, ThreadDefect> {
    let tid = u64_at(b, 0).ok_or(ThreadDefect::Short)?;
    let generation = u32_at(b, 8).ok_or(ThreadDefect::Short)?;
    let state = match u8_at(b, 12).ok_or(ThreadDefect::Short)? {
        0 => ThreadState::Runnable,
        1 => ThreadState::Blocked,
        s => return Err(ThreadDefect::State(s)),
    };
    if !zero(b, 13, 3) {
        return Err(ThreadDefect::Reserved(13));
    }
    if !zero(b, 20, 4) {
        return Err(ThreadDefect::Reserved(20));
    }
    let core = u32_at(b, 16).ok_or(ThreadDefect::Short)?;
    let cpu_ns = u64_at(b, 24).ok_or(ThreadDefect::Short)?;
    let mut regs = [0u64; 20];
    let mut at = 32usize;
    for r in regs.iter_mut() {
        *r = u64_at(b, at).ok_or(ThreadDefect::Short)?;
        at = at.wrapping_add(8);
    }
    let [
        rax,
        rbx,
        rcx,
        rdx,
        rsi,
        rdi,
        rbp,
        rsp,
        r8,
        r9,
        r10,
        r11,
        r12,
        r13,
        r14,
        r15,
        rip,
        rflags,
        fs_base,
        gs_base,
    ] = regs;
    let fxsave = array::<FXSAVE_LEN>(b, 192).ok_or(ThreadDefect::Short)?;
    Ok(ThreadRecord {
        tid,
        generation,
        state,
        core,
        cpu_ns,
        regs: Registers::from_array([
            rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8, r9, r10, r11, r12, r13, r14, r15, rip,
            rflags,
        ]),
        fs_base,
        gs_base,
        fxsave,
    })
}

/// The parent index as the PROCESS section stores it.
pub(crate) fn parent_code(parent: Option<u16>) -> u16 {
    parent.unwrap_or(NO_PROCESS)
}
