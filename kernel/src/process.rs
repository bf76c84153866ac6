//! Processes: the sovereign unit. Each has its own address space (module image at the fixed
//! base, the export page, an arena mapped on demand up to the ceiling its parent set, a stack
//! with a guard page below it), its threads, and a death record that the kernel fills in exactly
//! once — by exit, fault or kill — and reports.
use crate::arch::context::Start;
use crate::arch::frames::{self, KernelTables};
use crate::arch::paging::{AddressSpace, MapError, Perms, kernel_space};
use crate::loader::{self, LoadError};
use crate::sched::{self, Tid};
use abi::layout::{
    ARENA_BASE, ARENA_MAX, EXPORT_BASE, PAGE_SIZE, STACK_MAX, STACK_SLOT, STACKS_BASE,
};
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use spin::Mutex;

/// A process identifier (never reused while the kernel runs).
pub type Pid = u64;

/// How a process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Death {
    /// It called `exit(code)`.
    Exit(i64),
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

/// What a parent asks for at spawn.
#[derive(Clone, Copy, Debug)]
pub struct SpawnOptions {
    /// The arena may grow to this many bytes.
    pub arena_ceiling: u64,
    /// Size of the main thread's stack.
    pub stack_size: u64,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            arena_ceiling: 16 << 20,
            stack_size: 64 << 10,
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
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpawnError::NotFound(p) => write!(f, "no module {p}"),
            SpawnError::Load(e) => write!(f, "cannot load the module: {e}"),
            SpawnError::NoMemory => write!(f, "out of memory"),
            SpawnError::BadOption(what) => write!(f, "bad spawn option: {what}"),
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
    space: Arc<AddressSpace>,
    arena_ceiling: u64,
    stack_bottom: u64,
    threads: Vec<Tid>,
    death: Option<Death>,
    waiters: Vec<Tid>,
}

static PROCS: Mutex<Vec<(Pid, Process)>> = Mutex::new(Vec::new());
static NEXT_PID: Mutex<Pid> = Mutex::new(1);

fn with_proc<R>(pid: Pid, f: impl FnOnce(&mut Process) -> R) -> Option<R> {
    PROCS
        .lock()
        .iter_mut()
        .find(|(p, _)| *p == pid)
        .map(|(_, pr)| f(pr))
}

/// Spawns the module at `path` from the boot bundle; its main thread starts with `arg` in `rdi`.
pub fn spawn(path: &str, arg: u64, opts: SpawnOptions) -> Result<Pid, SpawnError> {
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
    let file = crate::bundle::file(path).ok_or_else(|| SpawnError::NotFound(path.to_string()))?;
    let image = loader::load(file).map_err(SpawnError::Load)?;
    let space = Arc::new(AddressSpace::new_user(&mut KernelTables)?);
    let built = build(&space, &image, opts);
    if let Err(e) = built {
        teardown(&space);
        return Err(e);
    }
    let pid = {
        let mut n = NEXT_PID.lock();
        *n += 1;
        *n - 1
    };
    let stack_top = STACKS_BASE + STACK_SLOT;
    let tid = match sched::spawn(
        Start::User {
            rip: image.entry,
            rsp: stack_top - 8,
            args: [arg, pid, 0],
        },
        Some(space.clone()),
        Some(pid),
    ) {
        Ok(t) => t,
        Err(e) => {
            teardown(&space);
            return Err(e.into());
        }
    };
    PROCS.lock().push((
        pid,
        Process {
            name: path.rsplit('/').next().unwrap_or(path).to_string(),
            space,
            arena_ceiling: opts.arena_ceiling,
            stack_bottom: stack_top - opts.stack_size,
            threads: alloc::vec![tid],
            death: None,
            waiters: Vec::new(),
        },
    ));
    Ok(pid)
}

fn map_fresh(
    space: &AddressSpace,
    va: u64,
    perms: Perms,
    bytes: Option<&[u8]>,
) -> Result<(), SpawnError> {
    let mut frame = frames::alloc_zeroed().ok_or(SpawnError::NoMemory)?;
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
    kernel_space().activate();
    space.free_user_half(&mut |p| {
        let _ = frames::free_phys(p);
    });
    let _ = frames::free_phys(space.root());
}

/// Ends process `pid` (called by its own thread for exit and faults, or by a killer).
pub fn die(pid: Pid, how: Death) {
    let me = sched::current();
    let record = {
        let mut procs = PROCS.lock();
        let Some(i) = procs.iter().position(|(p, _)| *p == pid) else {
            return;
        };
        if procs[i].1.death.is_some() {
            return;
        }
        procs[i].1.death = Some(how.clone());
        (
            procs[i].1.threads.clone(),
            procs[i].1.space.clone(),
            procs[i].1.waiters.clone(),
            procs[i].1.name.clone(),
        )
    };
    let (threads, space, waiters, name) = record;
    ::log::debug!("process {pid} ({name}) died: {how:?}");
    for t in &threads {
        if *t != me {
            sched::kill(*t);
        }
    }
    teardown(&space);
    for w in waiters {
        sched::wake(w);
    }
    if threads.contains(&me) {
        sched::exit_current();
    }
}

/// Blocks until `pid` has died and returns how.
pub fn wait(pid: Pid) -> Option<Death> {
    loop {
        let state = with_proc(pid, |p| {
            if p.death.is_none() {
                p.waiters.push(sched::current());
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

/// The name of a live or dead-but-unreaped process.
pub fn name(pid: Pid) -> Option<String> {
    with_proc(pid, |p| p.name.clone())
}

/// A page fault from ring 3, or from the kernel touching user memory on a process's behalf.
/// Demand-maps the arena below its ceiling; anything else is a fault to report.
pub fn page_fault(pid: Pid, addr: u64, error_code: u64) -> Result<(), FaultKind> {
    let present = error_code & 1 != 0;
    let (space, ceiling, stack_bottom) =
        with_proc(pid, |p| (p.space.clone(), p.arena_ceiling, p.stack_bottom))
            .ok_or(FaultKind::PageFault)?;
    if present {
        return Err(FaultKind::ProtectionFault);
    }
    if (ARENA_BASE..ARENA_BASE + ARENA_MAX).contains(&addr) {
        if addr >= ARENA_BASE + ceiling {
            return Err(FaultKind::ArenaCeiling);
        }
        let va = addr & !(PAGE_SIZE - 1);
        return map_fresh(&space, va, Perms::ReadWrite, None).map_err(|_| FaultKind::ArenaCeiling);
    }
    let slot = STACKS_BASE..STACKS_BASE + STACK_SLOT;
    if slot.contains(&addr) && addr < stack_bottom && addr >= stack_bottom - PAGE_SIZE * 16 {
        return Err(FaultKind::StackOverflow);
    }
    Err(FaultKind::PageFault)
}
