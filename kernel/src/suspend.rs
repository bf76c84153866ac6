//! Suspend, serialize, resume (`docs/suspend.md`, `DESIGN.md` §6): a process and every live
//! process it spawned leave the machine as one image file in `/sys/suspended`, and come back
//! from it — in this boot or a later one, on the same core or another.
//!
//! **Suspend** asks every thread of the tree to stop at its way back to ring 3
//! ([`sched::request_freeze`]): a thread waiting in a system call has its wait cut short and
//! its frame pointed back at the call, which it makes again on resume; any other stops with
//! its call's result stored. Once all are frozen, their endpoints turn dormant (peers' sends
//! are queued, their receives say `PeerSuspended`), the image is built (`procimage`) and
//! written through the root filesystem and synced. Only then are the processes retired: their
//! memory and threads go, their endpoints stay here, dormant, under the image id. A failure
//! before that point thaws everything: nothing was suspended.
//!
//! **Resume** reads and verifies the image (every checksum, the version, each module's
//! SHA-256), rebuilds each address space at the same addresses (the layout is fixed: no
//! pointer changes), copies the module's data pages, arena and stack pages in, recreates the
//! threads with their registers and FPU state, and rebuilds each handle table at the same
//! indexes and generations. Endpoints kept dormant in this boot are reattached (their queues
//! hold what arrived meanwhile, in order); otherwise (a later boot) channels inside the tree
//! are created afresh and linked, endpoints whose peer was outside get a closed peer, the
//! messages the image holds are queued again, and the root's parent channel goes to the
//! resumer. The image is removed once the processes run.
use crate::ipc::{Endpoint, Object, Port};
use crate::process::{self, Pid, SpawnError};
use crate::rootfs;
use crate::sched::{self, Freeze, ThreadRef};
use abi::layout::{ARENA_BASE, MODULE_BASE, MODULE_MAX_SIZE, STACK_SLOT, STACKS_BASE, USER_END};
use abi::suspend::{NO_PARENT_HANDLE, ResumeInfo, SUSPENDED_DIR};
use abi::{Error, Handle, Rights};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use procimage::{
    HandleRecord, Image, ImageBuilder, Link, Message, ModuleRef, ObjectKind, ObjectRef, Page,
    ProcessParts, ProcessRecord, Receiver, Registers, ThreadRecord, ThreadState,
};
use spin::Mutex;

/// How long a suspend waits for every thread to reach its way back to ring 3.
const FREEZE_TIMEOUT_NS: u64 = 5_000_000_000;

/// One suspend or resume at a time (they block on the filesystem; a spin lock would spin).
static BUSY: AtomicBool = AtomicBool::new(false);

/// Endpoints of suspended processes, kept dormant for their resume in this boot: (image id,
/// process index, handle index, endpoint).
static DORMANT: Mutex<Vec<(u64, u16, u16, Endpoint)>> = Mutex::new(Vec::new());

/// The next image id (0: not yet known; found from the directory at the first suspend).
static NEXT_ID: Mutex<u64> = Mutex::new(0);

/// SHA-256 of module files already hashed this boot, by fingerprint (path, length, CRC-32C).
static HASHES: Mutex<Vec<(process::Module, [u8; 32])>> = Mutex::new(Vec::new());

/// When the phases of the last suspend and resume ended: the start, frozen and serialized,
/// written, then read, verified, rebuilt and running (for the benchmark, `crate::bench`).
pub static PHASES: Mutex<[Mark; 7]> = Mutex::new([Mark { ns: 0, idle_ns: 0 }; 7]);

/// A moment of [`PHASES`].
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    /// The monotonic clock (under `-icount shift=0`: instructions, plus QEMU's jumps over idle
    /// time).
    pub ns: u64,
    /// All cores' idle time so far ([`sched::idle_ns`]): a phase's busy time — what its
    /// instructions cost, the disk's waits left out — is its elapsed time × cores minus this.
    pub idle_ns: u64,
}

/// Phase indexes in [`PHASES`].
pub mod phase {
    /// `suspend` called.
    pub const SUSPEND: usize = 0;
    /// Threads frozen and the image built in memory.
    pub const SERIALIZED: usize = 1;
    /// The image written and synced.
    pub const WRITTEN: usize = 2;
    /// `resume` called.
    pub const RESUME: usize = 3;
    /// The image read from disk.
    pub const READ: usize = 4;
    /// Parsed, modules read and checked.
    pub const VERIFIED: usize = 5;
    /// Processes rebuilt and running.
    pub const RUNNING: usize = 6;
}

fn mark(i: usize) {
    let idle_ns = sched::idle_ns();
    PHASES.lock()[i] = Mark {
        ns: crate::arch::apic::now_ns(),
        idle_ns,
    };
}

/// Holds [`BUSY`] while it lives.
struct Busy;

impl Busy {
    fn take() -> Result<Busy, Error> {
        if BUSY.swap(true, Ordering::AcqRel) {
            ::log::warn!("suspend/resume: another one is in progress; try again");
            return Err(Error::Overloaded);
        }
        Ok(Busy)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.store(false, Ordering::Release);
    }
}

/// The image file of `id`.
pub fn image_path(id: u64) -> String {
    format!("{SUSPENDED_DIR}/{id}.img")
}

fn io(what: &str, e: rootfs::FsError) -> Error {
    ::log::error!("suspend/resume: {what}: {e}");
    match e {
        rootfs::FsError::NotFound => Error::NotFound,
        _ => Error::Io,
    }
}

// ---- Suspend ----

/// Suspends process `pid` and its live descendants into a new image; returns its id once the
/// image is on disk.
pub fn suspend(pid: Pid) -> Result<u64, Error> {
    let _busy = Busy::take()?;
    mark(phase::SUSPEND);
    if !rootfs::mounted() {
        ::log::warn!("suspend {pid}: no root filesystem to write /sys/suspended on");
        return Err(Error::Io);
    }
    let tree = process::tree_of(pid);
    if tree.is_empty() {
        return Err(Error::NotFound);
    }
    if let Some(me) = sched::current_pid()
        && tree.contains(&me)
    {
        ::log::warn!("suspend {pid}: the caller (pid {me}) is in the tree it would suspend");
        return Err(Error::Failed);
    }
    check_suspendable(&tree)?;
    let (tree, threads) = freeze_tree(pid)?;
    let thaw = |ports: &[Port]| {
        ports.iter().for_each(|p| p.set_dormant(false));
        threads.iter().for_each(|t| sched::thaw(*t));
        sched::freeze_over();
    };
    // A thread may have entered a portal, or a process been given a device, meanwhile.
    if let Err(e) = check_suspendable(&tree) {
        thaw(&[]);
        return Err(e);
    }
    let ports = endpoints_of(&tree);
    ports.iter().for_each(|p| p.set_dormant(true));
    let written = serialize(&tree).and_then(|bytes| {
        mark(phase::SERIALIZED);
        let id = next_id()?;
        rootfs::mkdir_all(SUSPENDED_DIR).map_err(|e| io("create /sys/suspended", e))?;
        rootfs::write_file(&image_path(id), &bytes).map_err(|e| io("write the image", e))?;
        mark(phase::WRITTEN);
        Ok((id, bytes.len()))
    });
    let (id, len) = match written {
        Ok(w) => w,
        Err(e) => {
            ::log::warn!("suspend {pid}: nothing was suspended ({e})");
            thaw(&ports);
            return Err(e);
        }
    };
    let mut kept = Vec::new();
    for (i, p) in tree.iter().enumerate() {
        for (h, obj, _) in process::retire(*p) {
            if let Object::Endpoint(e) = obj {
                kept.push((id, i as u16, h.index(), e));
            }
        }
    }
    DORMANT.lock().extend(kept);
    sched::freeze_over();
    ::log::info!(
        "suspended process {pid} ({} process(es), {} thread(s)) as {} ({len} bytes)",
        tree.len(),
        threads.len(),
        image_path(id)
    );
    Ok(id)
}

/// Refuses a tree that cannot leave: a root-filesystem driver, a portal call under way, a
/// device or a portal held, a message carrying handles queued for it.
fn check_suspendable(tree: &[Pid]) -> Result<(), Error> {
    for &p in tree {
        crate::portal::can_suspend(p)?;
        let why = process::with_parts(p, |parts| {
            if parts.kernel_waits {
                return Some("it is a root-filesystem driver");
            }
            for (_, obj, _) in parts.handles.iter() {
                match obj {
                    Object::Device(_) => return Some("it holds a device"),
                    Object::Portal(_) => return Some("it holds a portal"),
                    Object::Endpoint(e) if e.queued_carry_handles() => {
                        return Some("a message carrying handles is queued for it");
                    }
                    _ => {}
                }
            }
            None
        })
        .ok_or(Error::NotFound)?;
        if let Some(why) = why {
            ::log::warn!("suspend: process {p} cannot be suspended: {why}");
            return Err(Error::Failed);
        }
    }
    Ok(())
}

/// Freezes every thread of the tree of `pid` (threads and children created meanwhile too);
/// returns the tree and its threads once all are frozen.
fn freeze_tree(pid: Pid) -> Result<(Vec<Pid>, Vec<ThreadRef>), Error> {
    let deadline = crate::arch::apic::now_ns() + FREEZE_TIMEOUT_NS;
    let mut asked: Vec<ThreadRef> = Vec::new();
    loop {
        let tree = process::tree_of(pid);
        let threads: Vec<ThreadRef> = tree
            .iter()
            .filter_map(|p| process::with_parts(*p, |parts| parts.threads))
            .flatten()
            .filter(|(_, exit)| exit.is_none())
            .map(|(t, _)| t)
            .collect();
        let mut all = true;
        for t in &threads {
            if !asked.contains(t) {
                asked.push(*t);
            }
            if sched::request_freeze(*t) == Freeze::Pending {
                all = false;
            }
        }
        if tree.is_empty() || !tree.contains(&pid) {
            asked.iter().for_each(|t| sched::thaw(*t));
            sched::freeze_over();
            return Err(Error::NotFound);
        }
        if all {
            return Ok((tree, threads));
        }
        if crate::arch::apic::now_ns() > deadline {
            ::log::warn!("suspend {pid}: its threads did not stop within 5 s; nothing suspended");
            asked.iter().for_each(|t| sched::thaw(*t));
            sched::freeze_over();
            return Err(Error::Timeout);
        }
        sched::block_until(crate::arch::apic::now_ns() + 1_000_000);
    }
}

/// The endpoints the tree's processes hold.
fn endpoints_of(tree: &[Pid]) -> Vec<Port> {
    tree.iter()
        .filter_map(|p| {
            process::with_parts(*p, |parts| {
                parts
                    .handles
                    .iter()
                    .filter_map(|(_, o, _)| match o {
                        Object::Endpoint(e) => Some(e.port()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
        })
        .flatten()
        .collect()
}

/// The first free image id: one past the highest in the directory, or after the last given.
fn next_id() -> Result<u64, Error> {
    let mut next = NEXT_ID.lock();
    if *next == 0 {
        *next = list().map_or(1, |ids| ids.last().map_or(1, |l| l + 1));
    }
    *next += 1;
    Ok(*next - 1)
}

/// A PROCESS record's owned parts.
struct Record {
    pid: u64,
    parent_pid: u64,
    parent: Option<u16>,
    name: String,
    arena_ceiling: u64,
    stack_low: u64,
    priority: u64,
    core: u32,
    cpu_ns: u64,
    thread_limit: u32,
    kernel_stack_pages: u32,
}

/// A process as it goes into the image (owned copies of what the builder borrows).
struct Snapshot {
    record: Record,
    module: (String, [u8; 32]),
    threads: Vec<ThreadRecord>,
    handles: Vec<HandleRecord>,
    /// (handle index, channel id, side, payload) per queued message.
    messages: Vec<(u16, u64, u8, Vec<u8>)>,
    /// Pages: (address, frame), read in place when the image is written.
    arena: Vec<(u64, u64)>,
    stacks: Vec<(u64, u64)>,
    data: Vec<(u64, u64)>,
}

/// Builds the image of a frozen tree.
fn serialize(tree: &[Pid]) -> Result<Vec<u8>, Error> {
    // Channel ids: one per channel, in the order met; ends inside the tree found by key.
    let mut channels: BTreeMap<usize, u64> = BTreeMap::new();
    let mut ends: BTreeMap<(usize, u8), (u16, u16)> = BTreeMap::new();
    for (i, p) in tree.iter().enumerate() {
        process::with_parts(*p, |parts| {
            for (h, o, _) in parts.handles.iter() {
                if let Object::Endpoint(e) = o {
                    let n = channels.len() as u64 + 1;
                    channels.entry(e.channel_key()).or_insert(n);
                    ends.insert((e.channel_key(), e.side_index()), (i as u16, h.index()));
                }
            }
        });
    }
    let mut snaps = Vec::new();
    for (i, p) in tree.iter().enumerate() {
        let (mut snap, module) = process::with_parts(*p, |parts| {
            let module = parts.module.clone();
            snapshot(tree, i, parts, &channels, &ends).map(|s| (s, module))
        })
        .ok_or(Error::NotFound)??;
        // Hashed outside the process table's lock: the first hash of a module reads its file
        // through the root filesystem, whose driver needs that lock to serve the read.
        snap.module.1 = module_hash(&module)?;
        snaps.push(snap);
    }
    let mut builder = if tree.len() > 1 {
        ImageBuilder::tree()
    } else {
        ImageBuilder::new()
    };
    // The builder borrows: keep every view alive until it has written.
    fn pages(v: &[(u64, u64)]) -> Vec<Page<'static>> {
        v.iter()
            .map(|(va, frame)| Page {
                va: *va,
                bytes: crate::arch::paging::frame_bytes(*frame),
            })
            .collect()
    }
    let views: Vec<_> = snaps
        .iter()
        .map(|s| {
            let messages: Vec<Message<'_>> = s
                .messages
                .iter()
                .map(|(h, ch, side, bytes)| Message {
                    channel: *ch,
                    side: *side,
                    receiver: Receiver::Handle { index: *h },
                    bytes,
                    handles: &[],
                })
                .collect();
            (messages, pages(&s.arena), pages(&s.stacks), pages(&s.data))
        })
        .collect();
    for (s, (messages, arena, stacks, data)) in snaps.iter().zip(&views) {
        let r = &s.record;
        builder
            .add(ProcessParts {
                record: ProcessRecord {
                    pid: r.pid,
                    parent_pid: r.parent_pid,
                    parent: r.parent,
                    name: &r.name,
                    arena_base: ARENA_BASE,
                    arena_ceiling: r.arena_ceiling,
                    stack_low: r.stack_low,
                    stack_high: STACKS_BASE + STACK_SLOT,
                    priority: r.priority,
                    core: r.core,
                    cpu_ns: r.cpu_ns,
                    thread_limit: r.thread_limit,
                    kernel_stack_pages: r.kernel_stack_pages,
                },
                module: ModuleRef {
                    path: &s.module.0,
                    hash: s.module.1,
                    load_base: MODULE_BASE,
                },
                threads: &s.threads,
                handles: &s.handles,
                messages,
                arena,
                stacks,
                data,
            })
            .map_err(|e| {
                ::log::error!("suspend: the image cannot be built: {e}");
                Error::Failed
            })?;
    }
    // Written into a buffer reserved without panicking: a big image may not fit the heap.
    let fail = |e: procimage::BuildError| {
        ::log::error!("suspend: the image cannot be built: {e}");
        Error::Failed
    };
    let len = builder.len().map_err(fail)? as usize;
    let mut out = Vec::new();
    if out.try_reserve_exact(len).is_err() {
        ::log::warn!("suspend: no kernel memory for an image of {len} bytes");
        return Err(Error::NoMemory);
    }
    out.resize(len, 0);
    builder
        .write_with(&mut out, crate::arch::crc::crc32c)
        .map_err(fail)?;
    Ok(out)
}

/// One process's part of the image.
fn snapshot(
    tree: &[Pid],
    index: usize,
    parts: process::Parts<'_>,
    channels: &BTreeMap<usize, u64>,
    ends: &BTreeMap<(usize, u8), (u16, u16)>,
) -> Result<Snapshot, Error> {
    let pid = tree[index];
    let mut threads = Vec::new();
    let mut cpu_ns = 0;
    let mut core = 0;
    for (t, exit) in &parts.threads {
        if exit.is_some() {
            continue;
        }
        let Some(c) = sched::capture(*t) else {
            ::log::error!("suspend: thread {} of process {pid} is not frozen", t.tid);
            return Err(Error::Failed);
        };
        let f = &c.frame;
        if threads.is_empty() {
            core = c.core as u32;
        }
        cpu_ns += c.cpu_ns;
        threads.push(ThreadRecord {
            tid: t.tid as u64,
            generation: t.thread_gen,
            state: ThreadState::Runnable,
            core: c.core as u32,
            cpu_ns: c.cpu_ns,
            regs: Registers {
                rax: f.rax,
                rbx: f.rbx,
                rcx: f.rcx,
                rdx: f.rdx,
                rsi: f.rsi,
                rdi: f.rdi,
                rbp: f.rbp,
                rsp: f.rsp,
                r8: f.r8,
                r9: f.r9,
                r10: f.r10,
                r11: f.r11,
                r12: f.r12,
                r13: f.r13,
                r14: f.r14,
                r15: f.r15,
                rip: f.rip,
                rflags: f.rflags,
            },
            fs_base: c.fs_base,
            gs_base: 0,
            fxsave: c.fxsave,
        });
    }
    threads.sort_by_key(|t| t.tid);
    let mut handles = Vec::new();
    let mut messages = Vec::new();
    for (h, obj, rights) in parts.handles.iter() {
        let plain = |kind, id| ObjectRef {
            kind,
            rights: rights.0,
            id,
            side: 0,
            link: Link::None,
        };
        let object = match obj {
            Object::Endpoint(e) => {
                let key = e.channel_key();
                let side = e.side_index();
                let link = match ends.get(&(key, 1 - side)) {
                    Some(&(process, index)) => Link::Handle { process, index },
                    None if e.peer_closed() => Link::PeerClosed,
                    None => Link::None,
                };
                let channel = channels.get(&key).copied().unwrap_or(0);
                for bytes in e.queued_copy() {
                    messages.push((h.index(), channel, side, bytes));
                }
                ObjectRef {
                    kind: ObjectKind::Endpoint,
                    rights: rights.0,
                    id: channel,
                    side,
                    link,
                }
            }
            Object::Process(p) => match tree.iter().position(|x| x == p) {
                Some(i) => ObjectRef {
                    link: Link::Process { index: i as u16 },
                    ..plain(ObjectKind::Process, *p)
                },
                None => plain(ObjectKind::Process, *p),
            },
            Object::System(_) => plain(ObjectKind::System, 0),
            Object::Console(_) => plain(ObjectKind::Console, 0),
            Object::ThreadSpawner => plain(ObjectKind::ThreadSpawner, 0),
            Object::Thread(t) => {
                let exit = parts.threads.iter().find(|(x, _)| x == t).and_then(|x| x.1);
                ObjectRef {
                    link: match exit {
                        Some(code) => Link::Ended { code },
                        None => Link::None,
                    },
                    ..plain(ObjectKind::Thread, t.tid as u64)
                }
            }
            Object::Device(_) | Object::Portal(_) => return Err(Error::Failed),
        };
        handles.push(HandleRecord {
            index: h.index(),
            generation: h.generation(),
            object,
        });
    }
    let mut arena = Vec::new();
    let mut stacks = Vec::new();
    let mut data = Vec::new();
    let top = STACKS_BASE + STACK_SLOT;
    parts.space.for_each_private_page(
        ARENA_BASE,
        ARENA_BASE + parts.arena_ceiling,
        &mut |va, _, frame| arena.push((va, frame)),
    );
    parts
        .space
        .for_each_private_page(parts.stack_bottom, top, &mut |va, _, frame| {
            stacks.push((va, frame))
        });
    parts.space.for_each_private_page(
        MODULE_BASE,
        MODULE_BASE + MODULE_MAX_SIZE,
        &mut |va, perms, frame| {
            if perms == crate::arch::paging::Perms::ReadWrite {
                data.push((va, frame));
            }
        },
    );
    let parent = tree[..index]
        .iter()
        .position(|p| *p == parts.parent)
        .map(|i| i as u16);
    Ok(Snapshot {
        record: Record {
            pid,
            parent_pid: parts.parent,
            parent,
            name: String::from(parts.name),
            arena_ceiling: parts.arena_ceiling,
            stack_low: parts.stack_bottom,
            priority: parts.priority,
            core,
            cpu_ns,
            thread_limit: parts.thread_limit as u32,
            kernel_stack_pages: parts.kstack_budget as u32,
        },
        // The hash is filled in by `serialize`, outside the process table's lock.
        module: (parts.module.path.clone(), [0; 32]),
        threads,
        handles,
        messages,
        arena,
        stacks,
        data,
    })
}

/// The SHA-256 hashed before for a file with fingerprint `m`.
fn cached_hash(m: &process::Module) -> Option<[u8; 32]> {
    HASHES.lock().iter().find(|(k, _)| k == m).map(|(_, h)| *h)
}

/// Hashes `file` (fingerprint `m`) and remembers it.
fn hash_and_keep(m: &process::Module, file: &[u8]) -> [u8; 32] {
    let hash = procimage::module_hash(file);
    HASHES.lock().push((m.clone(), hash));
    hash
}

/// The SHA-256 of `file` (the module at `path`): from the cache when a file of the same path,
/// length and CRC-32C was hashed before in this boot. Returns the file's fingerprint too (the
/// resumed process keeps it).
fn known_hash(path: &str, file: &[u8]) -> (process::Module, [u8; 32]) {
    let m = process::Module::of(path, file);
    let hash = cached_hash(&m).unwrap_or_else(|| hash_and_keep(&m, file));
    (m, hash)
}

/// The SHA-256 of a process's module file, which must still be the file it was loaded from.
fn module_hash(m: &process::Module) -> Result<[u8; 32], Error> {
    if let Some(h) = cached_hash(m) {
        return Ok(h);
    }
    let file = process::module_bytes(&m.path).map_err(|e| {
        ::log::warn!("suspend: module {} cannot be read again: {e}", m.path);
        Error::Io
    })?;
    if process::Module::of(&m.path, &file) != *m {
        ::log::warn!(
            "suspend: module {} changed since the process was spawned",
            m.path
        );
        return Err(Error::Failed);
    }
    Ok(hash_and_keep(m, &file))
}

// ---- Resume ----

/// What a resume made.
pub struct Resumed {
    /// The figures `system_resume` reports (`parent` left to the caller).
    pub info: ResumeInfo,
    /// The other end of the root's parent channel, when the old one is gone.
    pub parent: Option<Endpoint>,
}

/// Resumes image `id` on `core` (`None`: each thread's own core).
pub fn resume(id: u64, core: Option<usize>) -> Result<Resumed, Error> {
    let _busy = Busy::take()?;
    resume_locked(id, core)
}

fn resume_locked(id: u64, core: Option<usize>) -> Result<Resumed, Error> {
    mark(phase::RESUME);
    if let Some(c) = core
        && !sched::core_exists(c)
    {
        ::log::warn!("resume {id}: there is no core {c}");
        return Err(Error::Failed);
    }
    let path = image_path(id);
    let bytes = rootfs::read_file_limited(&path, rootfs::MAX_IMAGE_BYTES)
        .map_err(|e| io(&format!("read {path}"), e))?;
    mark(phase::READ);
    let image = Image::parse_with(&bytes, crate::arch::crc::crc32c).map_err(|e| {
        ::log::warn!("resume {id}: {path} refused: {e}");
        Error::Corrupt
    })?;
    // Every module first: nothing is built for an image that cannot run.
    let mut files = Vec::new();
    for p in image.processes() {
        let m = p.module();
        let file = process::module_bytes(m.path).map_err(|e| {
            ::log::warn!(
                "resume {id}: module {} of process {}: {e}",
                m.path,
                p.index()
            );
            match e {
                SpawnError::NotFound(_) => Error::NotFound,
                _ => Error::Io,
            }
        })?;
        let (module, hash) = known_hash(m.path, &file);
        if hash != m.hash {
            ::log::warn!(
                "resume {id}: module {} changed since the suspend (its SHA-256 differs)",
                m.path
            );
            return Err(Error::Corrupt);
        }
        for t in p.threads() {
            if t.regs.rip >= USER_END || t.regs.rsp >= USER_END {
                ::log::warn!("resume {id}: thread {} has a kernel address", t.tid);
                return Err(Error::Corrupt);
            }
        }
        if p.messages().any(|m| m.handle_count() > 0) {
            ::log::warn!("resume {id}: messages carrying handles are not supported");
            return Err(Error::Corrupt);
        }
        files.push((file, module));
    }
    mark(phase::VERIFIED);
    let dormant: Vec<(u16, u16, Endpoint)> = take_dormant(id)
        .into_iter()
        .map(|(_, p, h, e)| (p, h, e))
        .collect();
    let built = build(&image, &files, core, dormant);
    let (made, parent) = match built {
        Ok(b) => b,
        Err(e) => {
            ::log::warn!("resume {id}: {e:?}; nothing was resumed");
            return Err(e);
        }
    };
    mark(phase::RUNNING);
    if let Err(e) = rootfs::remove(&path) {
        ::log::warn!("resume {id}: the image could not be removed ({e}); discard it");
    }
    ::log::info!(
        "resumed {path} as process {} ({} process(es), {} thread(s), {} endpoint(s) reattached)",
        made.pid,
        made.processes,
        made.threads,
        made.reattached
    );
    Ok(Resumed { info: made, parent })
}

/// The objects and threads of one process being rebuilt.
struct Rebuilt {
    pid: Pid,
    space: alloc::sync::Arc<crate::arch::paging::AddressSpace>,
    threads: Vec<(u64, ThreadRef)>,
    objects: Vec<(Handle, Object, Rights)>,
    arena_pages: u64,
}

/// Builds every process of `image`, or nothing.
fn build(
    image: &Image<'_>,
    files: &[(alloc::borrow::Cow<'static, [u8]>, process::Module)],
    core: Option<usize>,
    mut dormant: Vec<(u16, u16, Endpoint)>,
) -> Result<(ResumeInfo, Option<Endpoint>), Error> {
    let mut done: Vec<Rebuilt> = Vec::new();
    let undo = |done: Vec<Rebuilt>| {
        for r in done {
            for (_, t) in r.threads {
                sched::discard(t);
            }
            drop(r.objects);
            process::discard_space(&r.space);
        }
    };
    // Memory and threads.
    for (p, (file, module)) in image.processes().zip(files) {
        let pid = process::new_pid();
        let space = match process::resume_space(module, file) {
            Ok(s) => s,
            Err(e) => {
                ::log::warn!("resume: module of process {}: {e}", p.index());
                undo(done);
                return Err(e.to_abi());
            }
        };
        let mut rebuilt = Rebuilt {
            pid,
            space,
            threads: Vec::new(),
            objects: Vec::new(),
            arena_pages: 0,
        };
        let rw = crate::arch::paging::Perms::ReadWrite;
        let copied = (|| {
            for pg in p.data().chain(p.stacks()) {
                process::put_page(&rebuilt.space, pg.va, rw, pg.bytes)?;
            }
            for pg in p.arena() {
                process::put_page(&rebuilt.space, pg.va, rw, pg.bytes)?;
                rebuilt.arena_pages += 1;
            }
            Ok::<(), SpawnError>(())
        })();
        let prio = schedpolicy::Priority(p.record().priority.min(255) as u8);
        let mut failed = copied.err().map(|e| e.to_abi());
        for t in p.threads() {
            if failed.is_some() {
                break;
            }
            let frame = crate::arch::idt::TrapFrame {
                rax: t.regs.rax,
                rbx: t.regs.rbx,
                rcx: t.regs.rcx,
                rdx: t.regs.rdx,
                rsi: t.regs.rsi,
                rdi: t.regs.rdi,
                rbp: t.regs.rbp,
                rsp: t.regs.rsp,
                r8: t.regs.r8,
                r9: t.regs.r9,
                r10: t.regs.r10,
                r11: t.regs.r11,
                r12: t.regs.r12,
                r13: t.regs.r13,
                r14: t.regs.r14,
                r15: t.regs.r15,
                rip: t.regs.rip,
                rflags: t.regs.rflags,
                ..Default::default()
            };
            let on = core.or(Some(t.core as usize));
            let start = crate::arch::context::Start::Resume {
                frame: alloc::boxed::Box::new(frame),
                fxsave: alloc::boxed::Box::new(t.fxsave),
            };
            match sched::create_on(
                start,
                Some(rebuilt.space.clone()),
                Some(pid),
                on,
                prio,
                t.fs_base,
            ) {
                Ok(r) => rebuilt.threads.push((t.tid, r)),
                Err(_) => failed = Some(Error::NoMemory),
            }
        }
        done.push(rebuilt);
        if let Some(e) = failed {
            undo(done);
            return Err(e);
        }
    }
    // Handles: dormant endpoints back, fresh channels for the rest (internal ones linked).
    let pids: Vec<Pid> = done.iter().map(|r| r.pid).collect();
    let mut fresh: BTreeMap<u64, [Option<Endpoint>; 2]> = BTreeMap::new();
    let mut reattached = 0u32;
    let mut ended = 0usize;
    let mut enders: Vec<Vec<(ThreadRef, i64)>> = Vec::new();
    for (p, r) in image.processes().zip(done.iter_mut()) {
        let mut mine = Vec::new();
        for h in p.handles() {
            let o = h.object;
            let rights = Rights(o.rights);
            let obj = match o.kind {
                ObjectKind::Endpoint => {
                    let kept = dormant
                        .iter()
                        .position(|(pi, hi, _)| *pi == p.index() && *hi == h.index)
                        .map(|i| dormant.swap_remove(i).2);
                    match kept {
                        Some(e) => {
                            e.set_dormant(false);
                            reattached += 1;
                            Object::Endpoint(e)
                        }
                        None => {
                            let pair = fresh.entry(o.id).or_insert_with(|| {
                                let (a, b) = Endpoint::pair();
                                [Some(a), Some(b)]
                            });
                            match pair[usize::from(o.side & 1)].take() {
                                Some(e) => Object::Endpoint(e),
                                None => {
                                    ::log::warn!("resume: channel {} claimed twice", o.id);
                                    undo(done);
                                    return Err(Error::Corrupt);
                                }
                            }
                        }
                    }
                }
                ObjectKind::Process => match o.link {
                    Link::Process { index } => Object::Process(pids[usize::from(index)]),
                    _ => Object::Process(o.id),
                },
                ObjectKind::System => Object::System(rights.intersect(Rights::SYSTEM_ALL)),
                ObjectKind::Console => Object::Console(rights.intersect(Rights::CONSOLE_ALL)),
                ObjectKind::ThreadSpawner => Object::ThreadSpawner,
                ObjectKind::Thread => match o.link {
                    Link::Ended { code } => {
                        // An ended thread whose status a handle keeps: a name no slot has.
                        ended += 1;
                        let t = ThreadRef {
                            pid: r.pid,
                            process_gen: sched::PROCESS_GEN,
                            tid: usize::MAX - ended,
                            thread_gen: 0,
                        };
                        mine.push((t, code));
                        Object::Thread(t)
                    }
                    _ => match r.threads.iter().find(|(tid, _)| *tid == o.id) {
                        Some((_, t)) => Object::Thread(*t),
                        None => {
                            undo(done);
                            return Err(Error::Corrupt);
                        }
                    },
                },
                ObjectKind::Device => {
                    ::log::warn!("resume: an image with a device handle cannot be resumed");
                    undo(done);
                    return Err(Error::Corrupt);
                }
            };
            r.objects
                .push((Handle::new(h.index, h.generation), obj, rights));
        }
        enders.push(mine);
    }
    // Messages, into fresh endpoints only (a reattached one kept its queue).
    for (p, r) in image.processes().zip(done.iter()) {
        for m in p.messages() {
            let Receiver::Handle { index } = m.receiver else {
                continue;
            };
            let target = r.objects.iter().find(|(h, _, _)| h.index() == index);
            if let Some((_, Object::Endpoint(e), _)) = target
                && fresh.contains_key(&m.channel)
                && e.enqueue(m.bytes).is_err()
            {
                ::log::warn!("resume: a queued message did not fit back; it is lost");
            }
        }
    }
    // The root's parent channel: reattached, or a fresh one whose other end the resumer gets.
    let root_parent = done.first().and_then(|r| {
        r.objects.iter().find_map(|(h, o, _)| match o {
            Object::Endpoint(e) if h.index() == 0 => Some(e.port()),
            _ => None,
        })
    });
    let parent = root_parent.and_then(|port| {
        let pair = fresh
            .iter_mut()
            .find(|(_, p)| p.iter().flatten().any(|e| e.same_channel(&port)))?;
        pair.1.iter_mut().find_map(Option::take)
    });
    drop(fresh);
    drop(dormant);
    // Into the process table, then run.
    let resumer = sched::current_pid().unwrap_or(0);
    let mut info = ResumeInfo {
        pid: pids.first().copied().unwrap_or(0),
        processes: done.len() as u32,
        threads: 0,
        parent: NO_PARENT_HANDLE,
        reattached,
    };
    let mut starts = Vec::new();
    for (((p, r), ended), (_, module)) in image.processes().zip(done).zip(enders).zip(files) {
        let rec = p.record();
        let mut table = handles::HandleTable::new(abi::limits::MAX_HANDLES);
        for (h, o, rights) in r.objects {
            // The parser vouched for distinct indexes below the limit.
            let _ = table.place(h, o, rights);
        }
        let held = |t: &ThreadRef| {
            table
                .iter()
                .any(|(_, o, _)| matches!(o, Object::Thread(x) if x == t))
        };
        let mut threads: Vec<(ThreadRef, Option<i64>, bool)> =
            r.threads.iter().map(|(_, t)| (*t, None, held(t))).collect();
        threads.extend(ended.into_iter().map(|(t, code)| (t, Some(code), true)));
        info.threads += r.threads.len() as u32;
        let parent_pid = rec.parent.map_or(resumer, |i| pids[usize::from(i)]);
        process::insert_resumed(
            r.pid,
            process::Resumed {
                name: String::from(rec.name),
                module: module.clone(),
                parent: parent_pid,
                handles: table,
                space: r.space,
                arena_ceiling: rec.arena_ceiling,
                stack_bottom: rec.stack_low,
                priority: rec.priority,
                thread_limit: u64::from(rec.thread_limit),
                kstack_budget: u64::from(rec.kernel_stack_pages),
                arena_pages: r.arena_pages,
                threads,
            },
        );
        starts.extend(r.threads.into_iter().map(|(_, t)| t));
    }
    starts.into_iter().for_each(sched::start);
    Ok((info, parent))
}

// ---- The directory ----

/// The ids of the images in `/sys/suspended`, ascending.
pub fn list() -> Result<Vec<u64>, Error> {
    let entries = match rootfs::list_dir(SUSPENDED_DIR) {
        Ok(e) => e,
        Err(rootfs::FsError::NotFound) => Vec::new(),
        Err(e) => return Err(io("list /sys/suspended", e)),
    };
    let mut ids: Vec<u64> = entries
        .iter()
        .filter_map(|(name, _)| name.strip_suffix(".img")?.parse().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Removes image `id` and closes the endpoints kept dormant for it.
pub fn discard(id: u64) -> Result<(), Error> {
    let _busy = Busy::take()?;
    let had = DORMANT.lock().iter().any(|e| e.0 == id);
    forget_dormant(id);
    let removed = rootfs::remove(&image_path(id));
    match removed {
        Ok(()) => Ok(()),
        Err(rootfs::FsError::NotFound) if had => Ok(()),
        Err(e) => Err(io(&format!("remove {}", image_path(id)), e)),
    }
}

/// Closes the endpoints kept for image `id` without removing the image: what a reboot does
/// (the tests use it to resume from the image alone).
pub fn forget_dormant(id: u64) {
    // Dropped here, outside the table's lock: closing wakes the peers.
    drop(take_dormant(id));
}

/// Takes the endpoints kept for image `id` out of the table.
fn take_dormant(id: u64) -> Vec<(u64, u16, u16, Endpoint)> {
    let mut d = DORMANT.lock();
    let (mine, rest): (Vec<_>, Vec<_>) = d.drain(..).partition(|e| e.0 == id);
    *d = rest;
    mine
}

/// Suspends then resumes on `core`, through the disk.
pub fn migrate(pid: Pid, core: usize) -> Result<Resumed, Error> {
    if !sched::core_exists(core) {
        return Err(Error::Failed);
    }
    let id = suspend(pid)?;
    resume(id, Some(core))
}

// ---- System calls ----

/// `system_suspend(system, pid) -> id`.
pub fn sys_suspend(h: u64, pid: u64) -> Result<u64, Error> {
    crate::system::check_system(h, Rights::SUSPEND)?;
    suspend(pid)
}

/// `process_suspend(process) -> id`.
pub fn sys_process_suspend(h: u64) -> Result<u64, Error> {
    let h = crate::syscall::handle(h)?;
    let pid = process::with_handles(|t| match t.check(h, Rights::SUSPEND)? {
        Object::Process(pid) => Ok(*pid),
        _ => Err(Error::WrongType),
    })
    .ok_or(Error::Failed)??;
    suspend(pid)
}

/// `system_resume(system, id, core, out) -> pid`.
pub fn sys_resume(h: u64, id: u64, core: u64, out: u64) -> Result<u64, Error> {
    crate::system::check_system(h, Rights::SUSPEND)?;
    let dest = crate::arch::usermem::UserSlice::new(out, ResumeInfo::SIZE)?;
    let core = (core != abi::suspend::CORE_KEEP).then_some(core as usize);
    report(resume(id, core)?, dest)
}

/// `system_migrate(system, pid, core, out) -> pid`.
pub fn sys_migrate(h: u64, pid: u64, core: u64, out: u64) -> Result<u64, Error> {
    crate::system::check_system(h, Rights::SUSPEND)?;
    let dest = crate::arch::usermem::UserSlice::new(out, ResumeInfo::SIZE)?;
    report(migrate(pid, core as usize)?, dest)
}

/// Gives the resumer the parent channel if there is one, and writes the figures.
fn report(r: Resumed, dest: crate::arch::usermem::UserSlice) -> Result<u64, Error> {
    let mut info = r.info;
    if let Some(e) = r.parent {
        let h = process::with_handles(|t| {
            t.insert(Object::Endpoint(e), Rights::CHANNEL_ALL)
                .map_err(|r| Error::from(r.error))
        })
        .ok_or(Error::Failed)??;
        info.parent = h.0;
    }
    dest.write_from(&info.to_bytes())?;
    Ok(info.pid)
}

/// `system_images(system, buf, cap) -> count`.
pub fn sys_images(h: u64, buf: u64, cap: u64) -> Result<u64, Error> {
    crate::system::check_system(h, Rights::INSPECT)?;
    let ids = list()?;
    let n = ids.len().min(cap.min(1024) as usize);
    if n > 0 {
        let bytes: Vec<u8> = ids[..n].iter().flat_map(|i| i.to_le_bytes()).collect();
        crate::arch::usermem::UserSlice::new(buf, bytes.len())?.write_from(&bytes)?;
    }
    Ok(ids.len() as u64)
}

/// `system_discard(system, id)`.
pub fn sys_discard(h: u64, id: u64) -> Result<u64, Error> {
    crate::system::check_system(h, Rights::SUSPEND)?;
    discard(id).map(|()| 0)
}
