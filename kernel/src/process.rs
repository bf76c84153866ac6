//! Processes: the sovereign unit. Each has its own address space (module image at the fixed
//! base, the export page, an arena mapped on demand up to the ceiling its parent set, a stack
//! with a guard page below it), its handle table (handle 0 is the parent channel), its threads,
//! and a death record that the kernel fills in exactly once — by exit, panic, fault or kill —
//! and reports to the parent as a typed message on the parent channel.
use crate::arch::context::Start;
use crate::arch::frames::{self, KernelTables};
use crate::arch::paging::{AddressSpace, MapError, Perms, kernel_space};
use crate::ipc::{Endpoint, Object};
use crate::loader::{self, LoadError};
use crate::sched::{self, ThreadRef};
use abi::Rights;
use abi::layout::{
    ARENA_BASE, ARENA_MAX, EXPORT_BASE, PAGE_SIZE, STACK_MAX, STACK_SLOT, STACKS_BASE,
};
use abi::syscall::{DeathReport, MAX_PANIC_TEXT};
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use handles::HandleTable;
use spin::Mutex;

/// A process identifier (never reused while the kernel runs).
pub type Pid = u64;

/// How a process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Death {
    /// It called `exit(code)`.
    Exit(i64),
    /// It panicked, with this message.
    Panic(String),
    /// A holder of its process handle killed it.
    Killed,
    /// It faulted.
    Fault {
        /// What happened.
        kind: FaultKind,
        /// Where.
        rip: u64,
        /// The faulting address (page faults), else 0.
        addr: u64,
    },
}

/// The kinds of fault a death report names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Access to an unmapped page outside the arena and stacks (includes null).
    PageFault,
    /// A write to a read-only page, or execution of a non-executable one.
    ProtectionFault,
    /// #GP (a non-canonical address, a privileged instruction).
    GeneralProtection,
    /// #UD.
    InvalidOpcode,
    /// #DE.
    DivideByZero,
    /// The stack ran into its guard page.
    StackOverflow,
    /// The arena grew past its ceiling.
    ArenaCeiling,
    /// Any other exception (its vector is in the report).
    Other(u64),
}

impl Death {
    /// The wire form sent on the parent channel.
    pub fn report(&self, pid: Pid) -> DeathReport {
        use abi::syscall::{DEATH_EXIT, DEATH_FAULT, DEATH_KILLED, DEATH_PANIC, fault};
        let mut r = DeathReport {
            magic: DeathReport::MAGIC,
            kind: 0,
            pid,
            code: 0,
            rip: 0,
            addr: 0,
            text_len: 0,
            reserved: 0,
            text: [0; MAX_PANIC_TEXT],
        };
        match self {
            Death::Exit(c) => {
                r.kind = DEATH_EXIT;
                r.code = *c;
            }
            Death::Panic(t) => {
                r.kind = DEATH_PANIC;
                let mut n = t.len().min(MAX_PANIC_TEXT);
                while !t.is_char_boundary(n) {
                    n -= 1;
                }
                r.text[..n].copy_from_slice(&t.as_bytes()[..n]);
                r.text_len = n as u32;
            }
            Death::Killed => r.kind = DEATH_KILLED,
            Death::Fault { kind, rip, addr } => {
                r.kind = DEATH_FAULT;
                r.rip = *rip;
                r.addr = *addr;
                r.code = match kind {
                    FaultKind::PageFault => fault::PAGE_FAULT,
                    FaultKind::ProtectionFault => fault::PROTECTION,
                    FaultKind::GeneralProtection => fault::GENERAL_PROTECTION,
                    FaultKind::InvalidOpcode => fault::INVALID_OPCODE,
                    FaultKind::DivideByZero => fault::DIVIDE_BY_ZERO,
                    FaultKind::StackOverflow => fault::STACK_OVERFLOW,
                    FaultKind::ArenaCeiling => fault::ARENA_CEILING,
                    FaultKind::Other(v) => {
                        r.addr = *v;
                        fault::OTHER
                    }
                };
            }
        }
        r
    }
}

/// What a parent asks for at spawn.
#[derive(Clone, Copy, Debug)]
pub struct SpawnOptions {
    /// The arena may grow to this many bytes.
    pub arena_ceiling: u64,
    /// Size of the main thread's stack.
    pub stack_size: u64,
    /// Scheduling priority: deadline tightness, 0 (normal) to 255 (see `schedpolicy`).
    pub priority: u64,
    /// The core to run on (`None`: the least loaded).
    pub core: Option<usize>,
    /// The most thread records it may hold (at most [`abi::thread::THREAD_LIMIT`]).
    pub thread_limit: u64,
    /// Its kernel-stack budget in pages (at most [`abi::thread::KERNEL_STACK_BUDGET`]).
    pub kernel_stack_pages: u64,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            arena_ceiling: 16 << 20,
            stack_size: 64 << 10,
            priority: 0,
            core: None,
            thread_limit: abi::thread::THREAD_LIMIT,
            kernel_stack_pages: abi::thread::KERNEL_STACK_BUDGET,
        }
    }
}

/// Why a spawn failed (nothing of the half-built process remains).
#[derive(Debug)]
pub enum SpawnError {
    /// No module at that path.
    NotFound(String),
    /// The module is malformed or cannot be bound.
    Load(LoadError),
    /// Out of memory.
    NoMemory,
    /// A spawn option is outside its limits.
    BadOption(&'static str),
    /// The module on the root filesystem is larger than the core reads.
    TooBig(String),
    /// The root filesystem could not be read (the cause is logged).
    Io(String),
}

impl SpawnError {
    /// The error code a system call returns for it.
    pub fn to_abi(&self) -> abi::Error {
        match self {
            SpawnError::NotFound(_) => abi::Error::NotFound,
            SpawnError::Load(e) => e.to_abi(),
            SpawnError::NoMemory => abi::Error::NoMemory,
            SpawnError::BadOption(_) => abi::Error::Failed,
            SpawnError::TooBig(_) => abi::Error::TooBig,
            SpawnError::Io(_) => abi::Error::Failed,
        }
    }
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpawnError::NotFound(p) => write!(f, "no module {p}"),
            SpawnError::Load(e) => write!(f, "cannot load the module: {e}"),
            SpawnError::NoMemory => write!(f, "out of memory"),
            SpawnError::BadOption(what) => write!(f, "bad spawn option: {what}"),
            SpawnError::TooBig(p) => write!(f, "module {p} is too large to load"),
            SpawnError::Io(p) => write!(f, "cannot read {p} from the root filesystem"),
        }
    }
}

impl From<MapError> for SpawnError {
    fn from(_: MapError) -> Self {
        SpawnError::NoMemory
    }
}

struct Process {
    name: String,
    /// The module as the spawn named it, and its fingerprint then (what a suspend's image
    /// names and checks: see [`Module`]).
    module: Module,
    /// The pid of the process that spawned it (0: the kernel).
    parent: Pid,
    /// Arena pages mapped for it so far (on first touch).
    arena_pages: u64,
    /// Its capabilities; handle 0 is the parent channel.
    handles: HandleTable<Object>,
    space: Arc<AddressSpace>,
    arena_ceiling: u64,
    stack_bottom: u64,
    /// Recorded at spawn; the scheduler's policy will read it.
    #[allow(dead_code)]
    priority: u64,
    /// Its thread records: live threads, and ended ones whose status is retained.
    threads: Vec<ThreadRecord>,
    /// The most records it may hold.
    thread_limit: u64,
    /// Kernel-stack pages charged, and the budget.
    kstack_pages: u64,
    kstack_budget: u64,
    /// Creations between their reservation and their record (they count toward the limit).
    pending_threads: u64,
    death: Option<Death>,
    waiters: Vec<ThreadRef>,
    /// Channel buffer bytes its sends have queued and nobody has received yet.
    ledger: Arc<Ledger>,
    /// The kernel will `wait` for it (else its record goes at death: the parent learns of the
    /// death from the report on the parent channel).
    kernel_waits: bool,
}

/// One thread of a process as the process sees it (the scheduler keeps the execution state):
/// what `join`, `exit_code` and the handle's release need.
struct ThreadRecord {
    thread: ThreadRef,
    /// `Some(code)` once the thread has ended.
    exit: Option<i64>,
    /// A thread handle names it (the main thread has none: it starts detached).
    handle_held: bool,
    /// The thread waiting in `join` for it (it pins the record).
    joiner: Option<ThreadRef>,
}

impl ThreadRecord {
    /// Nothing can observe its status any more: the record can go.
    fn unobserved(&self) -> bool {
        self.exit.is_some() && !self.handle_held && self.joiner.is_none()
    }
}

static PROCS: Mutex<Vec<(Pid, Process)>> = Mutex::new(Vec::new());
static NEXT_PID: Mutex<Pid> = Mutex::new(1);

#[inline]
fn with_proc<R>(pid: Pid, f: impl FnOnce(&mut Process) -> R) -> Option<R> {
    PROCS
        .lock()
        .iter_mut()
        .find(|(p, _)| *p == pid)
        .map(|(_, pr)| f(pr))
}

/// Runs `f` on the calling process's handle table (`None` for kernel threads or a dead process).
#[inline]
pub fn with_handles<R>(f: impl FnOnce(&mut HandleTable<Object>) -> R) -> Option<R> {
    let pid = sched::current_pid()?;
    with_proc(pid, |p| {
        if p.death.is_some() {
            None
        } else {
            Some(f(&mut p.handles))
        }
    })
    .flatten()
}

/// A handed-back list of objects (what a failed spawn returns).
pub type Gifts = Vec<(Object, Rights)>;

/// Spawns the module at `path` (where it comes from: [`module_bytes`]); its main thread
/// starts with `arg` in `rdi`
/// and its pid in `rsi`. The parent's end of the parent channel is dropped: for processes the
/// kernel starts and only waits for.
pub fn spawn(path: &str, arg: u64, opts: SpawnOptions) -> Result<Pid, SpawnError> {
    spawn_inner(path, arg, opts, Vec::new(), true)
        .map(|(pid, _parent)| pid)
        .map_err(|(e, _)| e)
}

/// Spawns like [`spawn`], moving `gifts` into the child as handles 1, 2, ...; returns the pid
/// and the parent's end of the child's parent channel. On failure the gifts come back.
pub fn spawn_with(
    path: &str,
    arg: u64,
    opts: SpawnOptions,
    gifts: Gifts,
) -> Result<(Pid, Endpoint), (SpawnError, Gifts)> {
    spawn_inner(path, arg, opts, gifts, false)
}

/// Like [`spawn_with`], for a child the kernel itself will `wait` for.
pub fn spawn_watched(
    path: &str,
    arg: u64,
    opts: SpawnOptions,
    gifts: Gifts,
) -> Result<(Pid, Endpoint), (SpawnError, Gifts)> {
    spawn_inner(path, arg, opts, gifts, true)
}

fn spawn_inner(
    path: &str,
    arg: u64,
    opts: SpawnOptions,
    gifts: Gifts,
    kernel_waits: bool,
) -> Result<(Pid, Endpoint), (SpawnError, Gifts)> {
    if gifts.len() + 1 > abi::limits::MAX_HANDLES {
        return Err((SpawnError::BadOption("too many handles"), gifts));
    }
    if !(1..=abi::thread::THREAD_LIMIT).contains(&opts.thread_limit) {
        return Err((SpawnError::BadOption("thread limit must be 1 to 16"), gifts));
    }
    if !(abi::thread::KERNEL_STACK_PAGES..=abi::thread::KERNEL_STACK_BUDGET)
        .contains(&opts.kernel_stack_pages)
    {
        return Err((
            SpawnError::BadOption("kernel-stack budget must hold 1 to 16 stacks"),
            gifts,
        ));
    }
    let (space, entry, module) = match prepare(path, opts) {
        Ok(p) => p,
        Err(e) => return Err((e, gifts)),
    };
    let (parent_end, child_end) = Endpoint::pair();
    let mut table = HandleTable::new(abi::limits::MAX_HANDLES);
    let mut all = alloc::vec![(
        Object::Endpoint(child_end),
        Rights::SEND.union(Rights::RECV)
    )];
    all.extend(gifts);
    for (obj, rights) in all {
        if table.insert(obj, rights).is_err() {
            teardown(&space);
            return Err((SpawnError::NoMemory, Vec::new()));
        }
    }
    let pid = {
        let mut n = NEXT_PID.lock();
        *n += 1;
        *n - 1
    };
    let stack_top = STACKS_BASE + STACK_SLOT;
    let main = match sched::create_on(
        Start::User {
            rip: entry,
            rsp: stack_top - 8,
            args: [arg, pid, 0],
        },
        Some(space.clone()),
        Some(pid),
        opts.core,
        schedpolicy::Priority(opts.priority.min(255) as u8),
        0,
    ) {
        Ok(t) => t,
        Err(e) => {
            teardown(&space);
            return Err((e.into(), Vec::new()));
        }
    };
    PROCS.lock().push((
        pid,
        Process {
            name: path.rsplit('/').next().unwrap_or(path).to_string(),
            module,
            parent: sched::current_pid().unwrap_or(0),
            arena_pages: 0,
            handles: table,
            space,
            arena_ceiling: opts.arena_ceiling,
            stack_bottom: stack_top - opts.stack_size,
            priority: opts.priority,
            threads: alloc::vec![ThreadRecord {
                thread: main,
                exit: None,
                handle_held: false,
                joiner: None,
            }],
            thread_limit: opts.thread_limit,
            kstack_pages: abi::thread::KERNEL_STACK_PAGES,
            kstack_budget: opts.kernel_stack_pages,
            pending_threads: 0,
            death: None,
            waiters: Vec::new(),
            ledger: Arc::new(Ledger::default()),
            kernel_waits,
        },
    ));
    // Only now, with its process on record: on another core it may run at once.
    sched::start(main);
    ::log::debug!(
        "spawned {path} as process {pid} (priority {})",
        opts.priority
    );
    Ok((pid, parent_end))
}

/// The module a process was spawned from: its path and a cheap fingerprint of the file it was
/// loaded from (length and CRC-32C; the SHA-256 an image records is computed only when it is
/// suspended, from a file that must still match this fingerprint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// The path as the spawn named it.
    pub path: String,
    /// The file's length.
    pub len: u64,
    /// The file's CRC-32C.
    pub crc: u32,
}

/// Modules loaded lately (planned, laid out, relocated), newest last: a spawn or resume of the
/// same file copies their pages instead of loading it again (for the 500 KiB probe, about
/// 400 K instructions of copying and relocating). Keyed by the fingerprint, so a changed file
/// is loaded afresh.
static LOADED: Mutex<Vec<(Module, Arc<loader::Image>)>> = Mutex::new(Vec::new());

/// How many loaded modules [`LOADED`] keeps (the boot's drivers, init, the shell and a few
/// programs; a few MiB of kernel heap).
const LOADED_KEPT: usize = 8;

/// The loaded image of `file`, whose fingerprint is `module`.
pub(crate) fn loaded(module: &Module, file: &[u8]) -> Result<Arc<loader::Image>, SpawnError> {
    {
        let mut cache = LOADED.lock();
        if let Some(i) = cache.iter().position(|(m, _)| m == module) {
            let hit = cache.remove(i);
            let image = hit.1.clone();
            cache.push(hit);
            return Ok(image);
        }
    }
    let image = Arc::new(loader::load(file).map_err(SpawnError::Load)?);
    let mut cache = LOADED.lock();
    if cache.len() >= LOADED_KEPT {
        cache.remove(0);
    }
    cache.push((module.clone(), image.clone()));
    Ok(image)
}

impl Module {
    /// The fingerprint of `file` at `path`.
    pub fn of(path: &str, file: &[u8]) -> Module {
        Module {
            path: path.to_string(),
            len: file.len() as u64,
            crc: crate::bundle::crc_of(file).unwrap_or_else(|| crate::arch::crc::crc32c(file)),
        }
    }
}

/// Checks the options, loads the module and builds its address space.
fn prepare(path: &str, opts: SpawnOptions) -> Result<(Arc<AddressSpace>, u64, Module), SpawnError> {
    if opts.arena_ceiling > ARENA_MAX {
        return Err(SpawnError::BadOption(
            "arena ceiling above the layout's maximum",
        ));
    }
    if opts.stack_size == 0
        || opts.stack_size > STACK_MAX
        || !opts.stack_size.is_multiple_of(PAGE_SIZE)
    {
        return Err(SpawnError::BadOption(
            "stack size must be whole pages, at most the slot",
        ));
    }
    let file = module_bytes(path)?;
    let module = Module::of(path, &file);
    let image = loaded(&module, &file)?;
    let space = Arc::new(AddressSpace::new_user(&mut KernelTables)?);
    if let Err(e) = build(&space, &image, opts) {
        teardown(&space);
        return Err(e);
    }
    Ok((space, image.entry, module))
}

/// The bytes of the module at `path`. A path without a leading `/` names a file of the boot
/// bundle (`bin/blk`); an absolute path names a file on the root filesystem (`/sbin/init`),
/// read whole into a kernel buffer, or, when the core has no root filesystem (the fallback
/// boot), the bundle's file of the same name without the `/`.
pub fn module_bytes(path: &str) -> Result<alloc::borrow::Cow<'static, [u8]>, SpawnError> {
    use crate::rootfs::{self, FsError};
    use alloc::borrow::Cow;
    let Some(rel) = path.strip_prefix('/') else {
        return crate::bundle::file(path)
            .map(Cow::Borrowed)
            .ok_or_else(|| SpawnError::NotFound(path.to_string()));
    };
    if !rootfs::mounted() {
        return crate::bundle::file(rel)
            .map(Cow::Borrowed)
            .ok_or_else(|| SpawnError::NotFound(path.to_string()));
    }
    match rootfs::read_file(path) {
        Ok(bytes) => Ok(Cow::Owned(bytes)),
        Err(FsError::NotFound) => Err(SpawnError::NotFound(path.to_string())),
        Err(e @ FsError::TooBig { .. }) => {
            ::log::warn!("spawn {path}: {e}");
            Err(SpawnError::TooBig(path.to_string()))
        }
        Err(e) => {
            ::log::error!("spawn {path}: {e}");
            Err(SpawnError::Io(path.to_string()))
        }
    }
}

/// Ends process `pid` (called by its own thread for exit, panic and faults, or by a killer):
/// records the death once, sends the report on its parent channel, closes every handle (peers
/// see `Closed`), frees its memory, removes its threads, wakes whoever waits for it.
pub fn die(pid: Pid, how: Death) {
    let me = sched::current_ref();
    let taken = {
        let mut procs = PROCS.lock();
        let Some((_, p)) = procs.iter_mut().find(|(p, _)| *p == pid) else {
            return;
        };
        if p.death.is_some() {
            return;
        }
        p.death = Some(how.clone());
        let objects: Vec<(abi::Handle, Object, Rights)> = p.handles.drain().collect();
        let live: Vec<ThreadRef> = p
            .threads
            .iter()
            .filter(|r| r.exit.is_none())
            .map(|r| r.thread)
            .collect();
        (
            objects,
            live,
            p.space.clone(),
            core::mem::take(&mut p.waiters),
            p.name.clone(),
        )
    };
    let (objects, threads, space, waiters, name) = taken;
    ::log::debug!("process {pid} ({name}) died: {how:?}");
    // The report goes first, so the parent reads it before it sees the channel close.
    if let Some((_, Object::Endpoint(parent), _)) =
        objects.iter().find(|(h, _, _)| *h == abi::Handle::PARENT)
    {
        let bytes = how.report(pid).to_bytes().to_vec();
        // A parent that died first: the send goes into a void, as the earth law says.
        let _ = parent.send(channel::Message::new(bytes, Vec::new()));
    }
    drop(objects);
    // Every waiter of every thread: parked threads first (they are killed next).
    crate::park::cancel_process(pid);
    for t in &threads {
        if *t != me {
            sched::kill(*t);
        }
    }
    // Threads of other processes inside it through portals leave before its space goes.
    crate::portal::server_died(pid);
    teardown(&space);
    crate::device::process_ended(pid);
    for w in waiters {
        sched::wake(w);
    }
    PROCS.lock().retain(|(p, pr)| *p != pid || pr.kernel_waits);
    if threads.contains(&me) {
        sched::exit_current();
    }
}

/// Blocks until `pid` has died, forgets it, and returns how it died.
pub fn wait(pid: Pid) -> Option<Death> {
    loop {
        let state = with_proc(pid, |p| {
            if p.death.is_none() {
                p.waiters.push(sched::current_ref());
            }
            p.death.clone()
        })?;
        if let Some(d) = state {
            PROCS.lock().retain(|(p, _)| *p != pid);
            return Some(d);
        }
        sched::block();
    }
}

/// The address space of a live process (`None` once it has died: its space is being or has
/// been torn down).
pub fn space_of(pid: Pid) -> Option<Arc<AddressSpace>> {
    with_proc(pid, |p| p.death.is_none().then(|| p.space.clone())).flatten()
}

/// The core a live process's main thread runs on.
pub fn main_core(pid: Pid) -> Option<usize> {
    let main = with_proc(pid, |p| {
        p.threads
            .iter()
            .find(|r| r.exit.is_none())
            .map(|r| r.thread)
    })??;
    sched::core_of(main)
}

/// The name of a live or dead-but-unreaped process.
pub fn name(pid: Pid) -> Option<String> {
    with_proc(pid, |p| p.name.clone())
}

/// A process's channel-buffer ledger: the bytes of its messages that sit in channel buffers,
/// at most [`abi::limits::LEDGER_CHANNEL_BYTES`]. Each queued message holds a reference to its
/// sender's ledger, so a receive refunds without looking the sender up (a dead sender's ledger
/// simply goes away with the last of its messages).
#[derive(Debug, Default)]
pub struct Ledger {
    queued: AtomicUsize,
}

impl Ledger {
    /// Charges `bytes`; `Overloaded` (and no charge) past the limit.
    pub fn charge(&self, bytes: usize) -> Result<(), abi::Error> {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                q.checked_add(bytes)
                    .filter(|&t| t <= abi::limits::LEDGER_CHANNEL_BYTES)
            })
            .map(drop)
            .map_err(|queued| {
                ::log::debug!(
                    "channel buffer ledger full ({queued} of {} bytes queued)",
                    abi::limits::LEDGER_CHANNEL_BYTES
                );
                abi::Error::Overloaded
            })
    }

    /// Whether `bytes` more could be charged now (a message written straight into its
    /// receiver's buffer is never queued, hence never charged, but a full ledger still refuses
    /// it, as it would any send).
    pub fn fits(&self, bytes: usize) -> bool {
        self.queued
            .load(Ordering::Acquire)
            .checked_add(bytes)
            .is_some_and(|t| t <= abi::limits::LEDGER_CHANNEL_BYTES)
    }

    /// Gives back `bytes` of an earlier charge.
    pub fn refund(&self, bytes: usize) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(bytes))
            });
    }
}

/// Runs `f` on the calling process's handle table and ledger, under one look-up (`None` for
/// kernel threads or a dead process): the system calls' common path.
pub fn with_current<R>(f: impl FnOnce(&mut HandleTable<Object>, &Arc<Ledger>) -> R) -> Option<R> {
    with_current_space(|t, ledger, _| f(t, ledger))
}

/// Runs `f` like [`with_current`], with the calling process's address space as well (a
/// receiver that waits hands it to the channel, whose senders then write into it).
#[inline]
pub fn with_current_space<R>(
    f: impl FnOnce(&mut HandleTable<Object>, &Arc<Ledger>, &Arc<AddressSpace>) -> R,
) -> Option<R> {
    let pid = sched::current_pid()?;
    with_proc(pid, |p| {
        if p.death.is_some() {
            None
        } else {
            Some(f(&mut p.handles, &p.ledger, &p.space))
        }
    })
    .flatten()
}

/// A page fault from ring 3, or from the kernel touching user memory on a process's behalf.
/// Demand-maps the arena below its ceiling; anything else is a fault to report.
pub fn page_fault(pid: Pid, addr: u64, error_code: u64) -> Result<(), FaultKind> {
    let present = error_code & 1 != 0;
    let (space, ceiling, stack_bottom) = with_proc(pid, |p| {
        p.death
            .is_none()
            .then(|| (p.space.clone(), p.arena_ceiling, p.stack_bottom))
    })
    .flatten()
    .ok_or(FaultKind::PageFault)?;
    if present {
        return Err(FaultKind::ProtectionFault);
    }
    if abi::portal::in_visit_window(addr) {
        // A visitor's stack grows on demand; the rest of the window is a guard.
        if !crate::portal::stack_page(pid, addr) {
            return Err(FaultKind::StackOverflow);
        }
        let va = addr & !(PAGE_SIZE - 1);
        return map_fresh(&space, va, Perms::ReadWrite, None).map_err(|_| FaultKind::PageFault);
    }
    if (ARENA_BASE..ARENA_BASE + ARENA_MAX).contains(&addr) {
        if addr >= ARENA_BASE + ceiling {
            return Err(FaultKind::ArenaCeiling);
        }
        let va = addr & !(PAGE_SIZE - 1);
        map_fresh(&space, va, Perms::ReadWrite, None).map_err(|_| FaultKind::ArenaCeiling)?;
        with_proc(pid, |p| p.arena_pages += 1);
        return Ok(());
    }
    let slot = STACKS_BASE..STACKS_BASE + STACK_SLOT;
    if slot.contains(&addr) && addr < stack_bottom && addr >= stack_bottom - PAGE_SIZE * 16 {
        return Err(FaultKind::StackOverflow);
    }
    Err(FaultKind::PageFault)
}
/// Every process the kernel knows (live, or dead and not yet forgotten), in pid order, as the
/// system handle's process list reports them.
pub fn list() -> Vec<abi::system::ProcessInfo> {
    use abi::system::{ProcessInfo, STATE_BLOCKED, STATE_DEAD, STATE_RUNNING};
    let procs = PROCS.lock();
    let mut out: Vec<ProcessInfo> = procs
        .iter()
        .map(|(pid, p)| {
            let mut info = ProcessInfo::new(*pid, p.parent, &p.name);
            let live = || p.threads.iter().filter(|r| r.exit.is_none());
            info.threads = live().count() as u32;
            info.arena_bytes = p.arena_pages * PAGE_SIZE;
            info.cpu_ns = live().filter_map(|r| sched::cpu_time(r.thread)).sum();
            info.state = if p.death.is_some() {
                STATE_DEAD
            } else if live().any(|r| sched::is_running(r.thread)) {
                STATE_RUNNING
            } else {
                STATE_BLOCKED
            };
            info
        })
        .collect();
    out.sort_by_key(|i| i.pid);
    out
}

/// True when `pid` names a process that has not died.
pub fn is_live(pid: Pid) -> bool {
    with_proc(pid, |p| p.death.is_none()).unwrap_or(false)
}

/// Channel-buffer bytes queued by every live process, and how many live processes there are.
pub fn ledger_totals() -> (u64, u64) {
    let procs = PROCS.lock();
    let live = procs.iter().filter(|(_, p)| p.death.is_none());
    live.fold((0, 0), |(bytes, n), (_, p)| {
        (
            bytes + p.ledger.queued.load(Ordering::Relaxed) as u64,
            n + 1,
        )
    })
}

fn map_fresh(
    space: &AddressSpace,
    va: u64,
    perms: Perms,
    bytes: Option<&[u8]>,
) -> Result<(), SpawnError> {
    // A page the bytes fill whole is not zeroed first (1 MiB of arena: 131 K instructions).
    let whole = bytes.is_some_and(|b| b.len() == PAGE_SIZE as usize);
    let mut frame = if whole {
        frames::alloc()
    } else {
        frames::alloc_zeroed()
    }
    .ok_or(SpawnError::NoMemory)?;
    if let Some(b) = bytes {
        frame.bytes_mut()[..b.len()].copy_from_slice(b);
    }
    let phys = frame.phys();
    if let Err(e) = space.map(va, phys, perms, true, &mut KernelTables) {
        let _ = frames::free(frame);
        return Err(e.into());
    }
    let _ = frame.into_phys();
    Ok(())
}

fn build(
    space: &AddressSpace,
    image: &loader::Image,
    opts: SpawnOptions,
) -> Result<(), SpawnError> {
    for page in &image.pages {
        map_fresh(space, page.vaddr, page.perms, Some(&page.bytes[..]))?;
    }
    space.map_shared(
        EXPORT_BASE,
        crate::arch::export::page(),
        Perms::ReadExec,
        &mut KernelTables,
    )?;
    let top = STACKS_BASE + STACK_SLOT;
    for va in (top - opts.stack_size..top).step_by(PAGE_SIZE as usize) {
        map_fresh(space, va, Perms::ReadWrite, None)?;
    }
    Ok(())
}

/// Frees everything the space maps and the space itself. It must not be active.
fn teardown(space: &AddressSpace) {
    // Leave the space first if this CPU is in it (a process ending itself); a killer in
    // another process keeps its own.
    if crate::arch::cpu::cr3() == space.root() {
        kernel_space().activate();
    }
    space.free_user_half(&mut |p| {
        let _ = frames::free_phys(p);
    });
    // Retired first: a sender writing into this space's pages (`AddressSpace::write_user`)
    // finds it gone instead of walking a freed table.
    let root = space.retire();
    if root != 0 {
        let _ = frames::free_phys(root);
    }
}

/// What the thread calls' bookkeeping found wrong (the system-call layer maps it to an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadError {
    /// A limit was reached; nothing was created and every reservation was given back.
    Overloaded(abi::thread::Overload),
    /// The request does not fit the thread's state (self-join, second waiter, joined already).
    Failed,
    /// The caller's process is gone (or the caller is a kernel thread).
    NoProcess,
}

/// Creates a thread in the calling process (the checks of the arguments are the caller's):
/// reserves a thread record and a kernel stack's pages, builds the thread, gives the caller a
/// handle to it and lets it run. Any failure rolls every reservation back.
pub fn create_thread(
    entry: u64,
    stack_top: u64,
    arg: u64,
    fs_base: u64,
    core: Option<usize>,
) -> Result<abi::Handle, ThreadError> {
    use abi::thread::{KERNEL_STACK_PAGES, Overload};
    let pid = sched::current_pid().ok_or(ThreadError::NoProcess)?;
    let (space, priority) = with_proc(pid, |p| {
        if p.death.is_some() {
            return Err(ThreadError::NoProcess);
        }
        if p.threads.len() as u64 + p.pending_threads >= p.thread_limit {
            return Err(ThreadError::Overloaded(Overload::Threads));
        }
        if p.kstack_pages + KERNEL_STACK_PAGES > p.kstack_budget {
            return Err(ThreadError::Overloaded(Overload::KernelStackBudget));
        }
        if p.handles.free_slots() as u64 <= p.pending_threads {
            return Err(ThreadError::Overloaded(Overload::HandleSlots));
        }
        p.pending_threads += 1;
        p.kstack_pages += KERNEL_STACK_PAGES;
        Ok((p.space.clone(), p.priority))
    })
    .ok_or(ThreadError::NoProcess)??;
    let unreserve = |p: &mut Process| {
        p.pending_threads -= 1;
        p.kstack_pages -= KERNEL_STACK_PAGES;
    };
    let made = sched::create_on(
        Start::User {
            rip: entry,
            rsp: stack_top - 8,
            args: [arg, 0, pid],
        },
        Some(space),
        Some(pid),
        core,
        schedpolicy::Priority(priority.min(255) as u8),
        fs_base,
    );
    let thread = match made {
        Ok(t) => t,
        Err(_) => {
            with_proc(pid, unreserve);
            return Err(ThreadError::Overloaded(Overload::KernelStackMemory));
        }
    };
    sched::set_start_args(thread, [arg, thread.tid as u64, pid]);
    let handle = with_proc(pid, |p| {
        unreserve(p);
        if p.death.is_some() {
            return Err(ThreadError::NoProcess);
        }
        let h = p
            .handles
            .insert(Object::Thread(thread), Rights::NONE)
            .map_err(|_| ThreadError::Overloaded(Overload::HandleSlots))?;
        p.kstack_pages += KERNEL_STACK_PAGES;
        p.threads.push(ThreadRecord {
            thread,
            exit: None,
            handle_held: true,
            joiner: None,
        });
        Ok(h)
    })
    .unwrap_or(Err(ThreadError::NoProcess));
    match handle {
        Ok(h) => {
            sched::start(thread);
            Ok(h)
        }
        Err(e) => {
            sched::discard(thread);
            Err(e)
        }
    }
}

/// Ends the calling thread with `code`; the last live thread's end is the process's
/// `exit(code)`. Records the status for a join, wakes a joiner, gives back the kernel stack's
/// pages (the stack itself is freed once its core runs on another one).
pub fn exit_thread(code: i64) -> ! {
    let me = sched::current_ref();
    let Some(pid) = sched::current_pid() else {
        sched::exit_current();
    };
    let outcome = with_proc(pid, |p| {
        if p.death.is_some() {
            return None;
        }
        let i = p.threads.iter().position(|r| r.thread == me)?;
        p.threads[i].exit = Some(code);
        p.kstack_pages -= abi::thread::KERNEL_STACK_PAGES;
        let joiner = p.threads[i].joiner;
        if p.threads[i].unobserved() {
            p.threads.remove(i);
        }
        let last = !p.threads.iter().any(|r| r.exit.is_none());
        Some((joiner, last))
    })
    .flatten();
    match outcome {
        Some((_, true)) => die(pid, Death::Exit(code)),
        Some((Some(joiner), false)) => sched::wake(joiner),
        _ => {}
    }
    sched::exit_current()
}

/// Waits for the thread `target` of the calling process to end and consumes its status:
/// one-shot. `Failed` for a self-join, a thread someone else waits for, or one already joined.
pub fn join_thread(target: ThreadRef) -> Result<i64, ThreadError> {
    enum Look {
        Done(Result<i64, ThreadError>),
        Wait,
    }
    let me = sched::current_ref();
    let pid = sched::current_pid().ok_or(ThreadError::NoProcess)?;
    if target == me {
        return Err(ThreadError::Failed);
    }
    loop {
        let look = with_proc(pid, |p| {
            let Some(i) = p.threads.iter().position(|r| r.thread == target) else {
                return Look::Done(Err(ThreadError::Failed));
            };
            let rec = &mut p.threads[i];
            let mine = rec.joiner.is_none_or(|j| j == me);
            match rec.exit {
                Some(code) if mine => {
                    // Consumed: the record goes (the handle stays, naming nothing).
                    p.threads.remove(i);
                    Look::Done(Ok(code))
                }
                None if mine => {
                    rec.joiner = Some(me);
                    Look::Wait
                }
                _ => Look::Done(Err(ThreadError::Failed)),
            }
        })
        .ok_or(ThreadError::NoProcess)?;
        match look {
            Look::Done(r) => return r,
            // Woken by the target's exit (or by anything else: then it looks again).
            Look::Wait => {
                sched::block();
                if sched::freeze_asked() {
                    // Frozen for a suspend: the join is made again on resume.
                    sched::cut_short();
                    return Err(ThreadError::Failed);
                }
                // Unwound out of a portal call: the join is given up (its result is never
                // seen), and the target may be joined by another thread.
                if sched::unwinding() {
                    with_proc(pid, |p| {
                        if let Some(rec) = p.threads.iter_mut().find(|r| r.thread == target)
                            && rec.joiner == Some(me)
                        {
                            rec.joiner = None;
                        }
                    });
                    return Err(ThreadError::Failed);
                }
            }
        }
    }
}

/// The exit code of thread `target` of the calling process if it has ended (`Ok(None)` while
/// it runs); `Failed` once its status was consumed by a join.
pub fn thread_exit_code(target: ThreadRef) -> Result<Option<i64>, ThreadError> {
    let pid = sched::current_pid().ok_or(ThreadError::NoProcess)?;
    with_proc(pid, |p| {
        p.threads
            .iter()
            .find(|r| r.thread == target)
            .map(|r| r.exit)
            .ok_or(ThreadError::Failed)
    })
    .ok_or(ThreadError::NoProcess)?
}

/// The calling process released its handle to thread `target`: a running thread is detached
/// (its record goes when it ends), an ended one's retained status is dropped now — unless a
/// join waits for it, which pins the record until it completes.
pub fn thread_handle_closed(target: ThreadRef) {
    let Some(pid) = sched::current_pid() else {
        return;
    };
    with_proc(pid, |p| {
        if let Some(i) = p.threads.iter().position(|r| r.thread == target) {
            p.threads[i].handle_held = false;
            if p.threads[i].unobserved() {
                p.threads.remove(i);
            }
        }
    });
}

/// Live threads of process `pid` (0 for a dead or unknown one).
pub fn live_threads(pid: Pid) -> usize {
    with_proc(pid, |p| {
        if p.death.is_some() {
            0
        } else {
            p.threads.iter().filter(|r| r.exit.is_none()).count()
        }
    })
    .unwrap_or(0)
}

/// The calling process's resource ledger.
pub fn ledger() -> Option<abi::thread::Ledger> {
    let pid = sched::current_pid()?;
    with_proc(pid, |p| abi::thread::Ledger {
        thread_records: p.threads.len() as u64 + p.pending_threads,
        thread_records_max: p.thread_limit,
        kernel_stack_pages: p.kstack_pages,
        kernel_stack_pages_max: p.kstack_budget,
        handles: p.handles.len() as u64,
        handles_max: p.handles.capacity() as u64,
        channel_bytes: p.ledger.queued.load(Ordering::Relaxed) as u64,
        arena_pages: p.arena_pages,
    })
}

// ---- Suspend and resume (`crate::suspend`) ----

/// A live process as a suspend reads it (under the process table's lock).
pub struct Parts<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its parent's pid (0: the kernel).
    pub parent: Pid,
    /// Its module.
    pub module: &'a Module,
    /// Its address space.
    pub space: &'a Arc<AddressSpace>,
    /// Arena ceiling in bytes.
    pub arena_ceiling: u64,
    /// Lowest address of its main stack.
    pub stack_bottom: u64,
    /// Its priority.
    pub priority: u64,
    /// Its thread limit and kernel-stack budget (pages).
    pub thread_limit: u64,
    /// Kernel-stack pages it may use.
    pub kstack_budget: u64,
    /// Its threads: live ones (`exit` none) and ended ones whose status a handle still holds.
    pub threads: Vec<(ThreadRef, Option<i64>)>,
    /// Its handle table.
    pub handles: &'a HandleTable<Object>,
    /// The kernel waits for it (a root-filesystem driver): it cannot be suspended.
    pub kernel_waits: bool,
}

/// Runs `f` on live process `pid`'s parts (`None`: no such live process).
pub fn with_parts<R>(pid: Pid, f: impl FnOnce(Parts<'_>) -> R) -> Option<R> {
    with_proc(pid, |p| {
        if p.death.is_some() {
            return None;
        }
        Some(f(Parts {
            name: &p.name,
            parent: p.parent,
            module: &p.module,
            space: &p.space,
            arena_ceiling: p.arena_ceiling,
            stack_bottom: p.stack_bottom,
            priority: p.priority,
            thread_limit: p.thread_limit,
            kstack_budget: p.kstack_budget,
            threads: p.threads.iter().map(|r| (r.thread, r.exit)).collect(),
            handles: &p.handles,
            kernel_waits: p.kernel_waits,
        }))
    })
    .flatten()
}

/// Process `pid` and every live process it spawned, theirs too: parents before children.
pub fn tree_of(pid: Pid) -> Vec<Pid> {
    let procs = PROCS.lock();
    let mut out = Vec::new();
    if procs.iter().any(|(p, pr)| *p == pid && pr.death.is_none()) {
        out.push(pid);
    }
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            procs
                .iter()
                .filter(|(_, pr)| pr.parent == parent && pr.death.is_none())
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

/// Removes a suspended process for good, without a death — its image holds it now: takes its
/// handles out (returned, for the suspend to keep its endpoints dormant), ends its frozen
/// threads, frees its memory and forgets it. Nobody is told: its peers see its endpoints
/// dormant, not closed.
pub fn retire(pid: Pid) -> Vec<(abi::Handle, Object, Rights)> {
    let taken = {
        let mut procs = PROCS.lock();
        let Some(i) = procs.iter().position(|(p, _)| *p == pid) else {
            return Vec::new();
        };
        let (_, mut p) = procs.swap_remove(i);
        let objects: Vec<(abi::Handle, Object, Rights)> = p.handles.drain().collect();
        (objects, p)
    };
    let (objects, p) = taken;
    crate::park::cancel_process(pid);
    for r in p.threads.iter().filter(|r| r.exit.is_none()) {
        sched::kill(r.thread);
    }
    // Its portals, wherever their handles went, are closed as a dead server's are: a call must
    // never enter the space torn down next.
    crate::portal::server_died(pid);
    teardown(&p.space);
    objects
}

/// A fresh pid (for a process being rebuilt from an image: its threads need it first).
pub fn new_pid() -> Pid {
    let mut n = NEXT_PID.lock();
    *n += 1;
    *n - 1
}

/// What a resumed process is made of (see [`insert_resumed`]).
pub struct Resumed {
    /// Its name.
    pub name: String,
    /// Its module.
    pub module: Module,
    /// Its parent's pid now.
    pub parent: Pid,
    /// Its handles, rebuilt at their old indexes and generations.
    pub handles: HandleTable<Object>,
    /// Its address space, with its memory copied in.
    pub space: Arc<AddressSpace>,
    /// Arena ceiling, main stack bottom, priority, limits, arena pages mapped.
    pub arena_ceiling: u64,
    /// Lowest address of its main stack.
    pub stack_bottom: u64,
    /// Its priority.
    pub priority: u64,
    /// Its thread limit.
    pub thread_limit: u64,
    /// Kernel-stack budget in pages.
    pub kstack_budget: u64,
    /// Arena pages mapped.
    pub arena_pages: u64,
    /// Its threads (created, not started) and ended threads with their codes; `true` when a
    /// thread handle names it.
    pub threads: Vec<(ThreadRef, Option<i64>, bool)>,
}

/// Enters a process rebuilt from an image into the process table under `pid` (from
/// [`new_pid`]); its threads are started after this.
pub fn insert_resumed(pid: Pid, r: Resumed) {
    let live = r.threads.iter().filter(|t| t.1.is_none()).count() as u64;
    PROCS.lock().push((
        pid,
        Process {
            name: r.name,
            module: r.module,
            parent: r.parent,
            arena_pages: r.arena_pages,
            handles: r.handles,
            space: r.space,
            arena_ceiling: r.arena_ceiling,
            stack_bottom: r.stack_bottom,
            priority: r.priority,
            threads: r
                .threads
                .into_iter()
                .map(|(thread, exit, handle_held)| ThreadRecord {
                    thread,
                    exit,
                    handle_held,
                    joiner: None,
                })
                .collect(),
            thread_limit: r.thread_limit,
            kstack_pages: live * abi::thread::KERNEL_STACK_PAGES,
            kstack_budget: r.kstack_budget,
            pending_threads: 0,
            death: None,
            waiters: Vec::new(),
            ledger: Arc::new(Ledger::default()),
            kernel_waits: false,
        },
    ));
}

/// Builds a fresh user address space with the module `file` loaded at its base and the export
/// page mapped (no stack: a resume copies the stack pages in).
pub fn resume_space(module: &Module, file: &[u8]) -> Result<Arc<AddressSpace>, SpawnError> {
    let image = loaded(module, file)?;
    let space = Arc::new(AddressSpace::new_user(&mut KernelTables)?);
    let built = (|| {
        for page in &image.pages {
            map_fresh(&space, page.vaddr, page.perms, Some(&page.bytes[..]))?;
        }
        space.map_shared(
            EXPORT_BASE,
            crate::arch::export::page(),
            Perms::ReadExec,
            &mut KernelTables,
        )?;
        Ok::<(), SpawnError>(())
    })();
    if let Err(e) = built {
        teardown(&space);
        return Err(e);
    }
    Ok(space)
}

/// Puts `bytes` (a page) at `va` in `space`: over the page already mapped there (a module's
/// data page), or into a fresh one with `perms`.
pub fn put_page(
    space: &AddressSpace,
    va: u64,
    perms: Perms,
    bytes: &[u8; 4096],
) -> Result<(), SpawnError> {
    match space.translate(va) {
        Some((phys, Perms::ReadWrite)) => {
            // A writable page of the module: overwrite it in place.
            let _ = phys;
            let mut seen = crate::arch::paging::Translation::default();
            if space.write_user(va, bytes, &mut seen) {
                Ok(())
            } else {
                Err(SpawnError::NoMemory)
            }
        }
        Some(_) => Err(SpawnError::BadOption(
            "image page over a read-only module page",
        )),
        None => map_fresh(space, va, perms, Some(bytes)),
    }
}

/// Frees a space that a failed resume built (never run).
pub fn discard_space(space: &AddressSpace) {
    teardown(space);
}
