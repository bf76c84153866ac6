//! The portal fast path (`docs/portals.md`, "Costs"): `portal_call` and `portal_return` taken
//! straight from the `syscall` entry, without the general path's trap frame, and the record of
//! a thread's open portal calls that both paths share.
//!
//! A thread's record ([`Visits`]) is made at its first portal call and found by the assembly
//! through the word at the top of its kernel stack (the *anchor*, above where an entry from
//! ring 3 starts the stack: `context::KernelStack::top`). Only the running thread writes its
//! own record — the assembly here, or the general path (`crate::sched`) running as that
//! thread; other CPUs read it (a server's death looks for visitors) and write only the space
//! of a thread that is off every CPU, under the scheduler's lock. Every field the assembly
//! touches is therefore an atomic.
//!
//! The fast path takes the common case only: a call made from the thread's own process (no
//! call open) through the portal handle of its last call from there, and the return from such
//! a call, with no return flag raised. Everything else (and an
//! error) takes the general path, which checks everything and refills the cache the fast path
//! checks: the handle, the handle table's change counter (`handles::HandleTable::watch`; any
//! removal or rights change moves it), and the portal's revocation and death marks.
//!
//! A call saves what the ABI keeps for the caller (`rip`, `rflags`, `rsp` and the callee-saved
//! `rbx`, `rbp`, `r12`–`r15`) and its space and FS base; a return restores them and clears
//! the other general registers. Both reset the vector registers (decision 87). While a call is
//! open the thread's FS base is the record's (the server's side starts at zero); its own stays
//! in the scheduler's record.
//!
//! Ordering with a server's death (`sched::portal_evict`): a call writes its frame, publishes
//! it with `xchg` on the call count (a full barrier), and only then reads the server's death
//! mark; the eviction sets the mark (sequentially consistent) before it reads any thread's
//! calls. Either the call sees the mark and withdraws, or the eviction sees the call and
//! unwinds it. A return switches back to the caller's space before it drops the call, so an
//! eviction that no longer sees the call knows the thread has left the server's space.
use super::idt::TrapFrame;
use super::paging::Root;
use super::percpu;
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::any::Any;
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Most calls one thread can have open.
pub const MAX_DEPTH: usize = abi::portal::MAX_DEPTH;

/// `acting` when the thread acts for its own process.
const OWN: u64 = u64::MAX;

/// One open call: what its return restores.
#[repr(C)]
struct CallFrame {
    rip: AtomicU64,
    rflags: AtomicU64,
    rsp: AtomicU64,
    rbx: AtomicU64,
    rbp: AtomicU64,
    r12: AtomicU64,
    r13: AtomicU64,
    r14: AtomicU64,
    r15: AtomicU64,
    /// The caller's space.
    root: AtomicU64,
    /// The caller's FS base.
    fs_base: AtomicU64,
    /// The server the call entered.
    server: AtomicU64,
}

/// The fast path's memory of the last call made from the thread's own process.
#[repr(C)]
struct Cache {
    /// The handle (a 32-bit value; anything else never matches a cached one).
    handle: AtomicU64,
    /// The address of the caller's handle-table change counter, and its value at the look-up.
    changes_at: AtomicU64,
    changes: AtomicU64,
    /// The addresses of the portal's revocation mark and of its server's death mark.
    revoked_at: AtomicU64,
    dead_at: AtomicU64,
    server: AtomicU64,
    root: AtomicU64,
    entry: AtomicU64,
    badge: AtomicU64,
    /// The visitor stack pointer the server starts with.
    stack: AtomicU64,
}

/// A thread's open portal calls and where it runs (see the module documentation).
#[repr(C)]
pub struct Visits {
    /// Calls open (0..=MAX_DEPTH).
    len: AtomicU64,
    /// The space the thread runs in now (what a switch to it activates).
    root: AtomicU64,
    /// The server it acts for now ([`OWN`]: its own process).
    acting: AtomicU64,
    /// Its FS base while a call is open (its own is the scheduler's record of it).
    fs: AtomicU64,
    cache: Cache,
    frames: [CallFrame; MAX_DEPTH],
    /// What the cache's addresses point into, kept alive while they are cached.
    keep: Option<(Arc<dyn CacheTarget>, Arc<AtomicU64>)>,
}

/// What a portal gives the fast path's cache: its revocation mark and its server's death mark
/// (the cache keeps a reference to the portal, so both stay where they are).
pub trait CacheTarget: Any + Send + Sync {
    /// Set when the portal is revoked.
    fn revoked(&self) -> &AtomicBool;
    /// Set when the server dies (see the module documentation for its ordering).
    fn dead(&self) -> &AtomicBool;
}

/// A successful general-path call from the thread's own process, for the fast path to repeat.
pub struct Fill {
    /// The handle it went through.
    pub handle: u32,
    /// The caller's handle-table change counter ([`handles::HandleTable::watcher`]) and its
    /// value when the handle was looked up (under the table's lock).
    pub changes: (Arc<AtomicU64>, u64),
    /// The portal.
    pub portal: Arc<dyn CacheTarget>,
    /// The server, its space, the entry point and the badge.
    pub server: u64,
    /// See `server`.
    pub root: Root,
    /// See `server`.
    pub entry: u64,
    /// See `server`.
    pub badge: u64,
    /// The server's initial stack pointer (the top of the visitor stack less 8).
    pub stack: u64,
}

/// A change counter that never has the value an empty cache expects.
static NEVER: AtomicU64 = AtomicU64::new(0);

/// The server died between the frame's publication and the check (the call is withdrawn).
pub struct Dead;

impl Visits {
    /// A thread's record, made at its first portal call while it runs in `root`; the anchor is
    /// set for the running thread (which must be the record's).
    pub fn new_for_running(root: Root) -> Box<Visits> {
        let v = Box::new(Visits {
            len: AtomicU64::new(0),
            root: AtomicU64::new(root.raw()),
            acting: AtomicU64::new(OWN),
            fs: AtomicU64::new(0),
            cache: Cache {
                handle: AtomicU64::new(0),
                changes_at: AtomicU64::new(&raw const NEVER as u64),
                changes: AtomicU64::new(1),
                revoked_at: AtomicU64::new(0),
                dead_at: AtomicU64::new(0),
                server: AtomicU64::new(0),
                root: AtomicU64::new(0),
                entry: AtomicU64::new(0),
                badge: AtomicU64::new(0),
                stack: AtomicU64::new(0),
            },
            frames: core::array::from_fn(|_| CallFrame {
                rip: AtomicU64::new(0),
                rflags: AtomicU64::new(0),
                rsp: AtomicU64::new(0),
                rbx: AtomicU64::new(0),
                rbp: AtomicU64::new(0),
                r12: AtomicU64::new(0),
                r13: AtomicU64::new(0),
                r14: AtomicU64::new(0),
                r15: AtomicU64::new(0),
                root: AtomicU64::new(0),
                fs_base: AtomicU64::new(0),
                server: AtomicU64::new(0),
            }),
            keep: None,
        });
        let at = percpu::kernel_rsp();
        // SAFETY: `kernel_rsp` is the top of the running thread's own kernel stack, and the word
        // there is its portal anchor, mapped and used by nothing else (`context::ANCHOR_ROOM`).
        // The record is boxed and lives as long as the thread (its kernel stack goes with it),
        // so the anchor never dangles while the thread can enter the fast path.
        unsafe { (at as *mut u64).write_volatile(&raw const *v as u64) };
        v
    }

    /// Calls open.
    pub fn depth(&self) -> usize {
        self.len.load(Ordering::SeqCst) as usize
    }

    /// The servers of the open calls, outermost first (a concurrent reader may see a call that
    /// has just ended or miss one that is just starting: see the module documentation).
    pub fn servers(&self) -> impl Iterator<Item = u64> + '_ {
        self.frames[..self.depth().min(MAX_DEPTH)]
            .iter()
            .map(|f| f.server.load(Ordering::Relaxed))
    }

    /// The server the thread acts for, if not its own process.
    pub fn acting(&self) -> Option<u64> {
        Some(self.acting.load(Ordering::Relaxed)).filter(|&a| a != OWN)
    }

    /// The thread's FS base while a call is open (`None` when none is: then it is its own).
    pub fn fs_in_call(&self) -> Option<u64> {
        (self.depth() > 0).then(|| self.fs.load(Ordering::Relaxed))
    }

    /// Sets the running thread's FS base for the call it is in; false when it is in none.
    pub fn set_fs_in_call(&self, value: u64) -> bool {
        let inside = self.depth() > 0;
        if inside {
            self.fs.store(value, Ordering::Relaxed);
        }
        inside
    }

    /// Moves a thread that is off every CPU to `root` (out of a dying server's space).
    pub fn move_to(&self, root: Root) {
        self.root.store(root.raw(), Ordering::Relaxed);
    }

    /// At a switch to the thread: its space, the process it acts for (the per-CPU acting
    /// pid was just set to its own) and its FS base (`own` outside a call).
    #[inline(always)]
    pub fn resume(&self, own: u64) {
        let a = self.acting.load(Ordering::Relaxed);
        let fs = if a != OWN {
            percpu::set_acting(Some(a));
            self.fs.load(Ordering::Relaxed)
        } else {
            own
        };
        Root::from_raw(self.root.load(Ordering::Relaxed)).activate();
        super::cpu::set_fs_base(fs);
    }

    /// Opens a call into `server` for the running thread: the caller's registers from `tf`,
    /// its FS base (what the CPU holds) and space are saved, the call published, then the
    /// death mark read. `Dead` (nothing open) when it is set. The caller checked there is
    /// room.
    #[inline(always)]
    pub fn push(&self, tf: &TrapFrame, server: u64, dead: &AtomicBool) -> Result<(), Dead> {
        let n = self.len.load(Ordering::Relaxed);
        let f = &self.frames[n as usize];
        let put = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        put(&f.rip, tf.rip);
        put(&f.rflags, tf.rflags);
        put(&f.rsp, tf.rsp);
        put(&f.rbx, tf.rbx);
        put(&f.rbp, tf.rbp);
        put(&f.r12, tf.r12);
        put(&f.r13, tf.r13);
        put(&f.r14, tf.r14);
        put(&f.r15, tf.r15);
        put(&f.root, self.root.load(Ordering::Relaxed));
        put(&f.fs_base, percpu::fs_base_loaded());
        put(&f.server, server);
        self.len.swap(n + 1, Ordering::SeqCst);
        if dead.load(Ordering::SeqCst) {
            self.len.store(n, Ordering::SeqCst);
            return Err(Dead);
        }
        Ok(())
    }

    /// After [`push`](Self::push): the running thread goes into `server`'s space, acts for
    /// it, and runs with FS base zero.
    #[inline(always)]
    pub fn enter(&self, server: u64, root: Root) {
        self.root.store(root.raw(), Ordering::Relaxed);
        root.activate();
        self.acting.store(server, Ordering::Relaxed);
        percpu::set_acting(Some(server));
        self.fs.store(0, Ordering::Relaxed);
        super::cpu::set_fs_base(0);
    }

    /// Ends the calls from index `i` on for the running thread (the return of the innermost
    /// one, or an unwind): the caller of call `i` gets its registers back in `tf` (every other
    /// general register zero), its space, its FS base and the process it acted for. False,
    /// with nothing changed, when fewer calls are open.
    pub fn pop(&self, i: usize, tf: &mut TrapFrame) -> bool {
        if i >= self.depth() {
            return false;
        }
        let f = &self.frames[i];
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // The registers the caller keeps; the others zero (the caller's code sets the status
        // and results).
        tf.rip = get(&f.rip);
        tf.rflags = get(&f.rflags);
        tf.rsp = get(&f.rsp);
        tf.rbx = get(&f.rbx);
        tf.rbp = get(&f.rbp);
        tf.r12 = get(&f.r12);
        tf.r13 = get(&f.r13);
        tf.r14 = get(&f.r14);
        tf.r15 = get(&f.r15);
        tf.rax = 0;
        tf.rcx = 0;
        tf.rdx = 0;
        tf.rsi = 0;
        tf.rdi = 0;
        tf.r8 = 0;
        tf.r9 = 0;
        tf.r10 = 0;
        tf.r11 = 0;
        let root = get(&f.root);
        let acting = match i {
            0 => OWN,
            _ => get(&self.frames[i - 1].server),
        };
        // Out of the server's space before the call is seen gone (see the module docs).
        Root::from_raw(root).activate();
        self.root.store(root, Ordering::Relaxed);
        self.acting.store(acting, Ordering::Relaxed);
        percpu::set_acting(Some(if acting == OWN {
            percpu::current().1.unwrap_or(0)
        } else {
            acting
        }));
        let fs = get(&f.fs_base);
        if i > 0 {
            self.fs.store(fs, Ordering::Relaxed);
        }
        super::cpu::set_fs_base(fs);
        self.len.store(i as u64, Ordering::SeqCst);
        true
    }

    /// True when the cache holds a call through `handle` to the portal whose revocation mark
    /// is `revoked`, looked up when the change counter of the thread's own handle table (the
    /// only one the cache is filled from) was `changes`: filling it again would change nothing.
    #[inline(always)]
    pub fn caches(&self, handle: u32, changes: u64, revoked: &AtomicBool) -> bool {
        let c = &self.cache;
        c.handle.load(Ordering::Relaxed) == u64::from(handle)
            && changes == c.changes.load(Ordering::Relaxed)
            && c.revoked_at.load(Ordering::Relaxed) == core::ptr::from_ref(revoked) as u64
    }

    /// Remembers a successful call from the thread's own process for the fast path (the
    /// running thread's own record, with no call open but the one `fill` made).
    pub fn cache(&mut self, fill: Fill) {
        // The fast path starts the server with `sysret`, which must get a user address.
        if fill.entry >= abi::layout::USER_END || fill.stack >= abi::layout::USER_END {
            return;
        }
        let c = &self.cache;
        let (counter, seen) = fill.changes;
        for (slot, v) in [
            (&c.handle, u64::from(fill.handle)),
            (&c.changes_at, Arc::as_ptr(&counter) as u64),
            (&c.changes, seen),
            (
                &c.revoked_at,
                core::ptr::from_ref(fill.portal.revoked()) as u64,
            ),
            (&c.dead_at, core::ptr::from_ref(fill.portal.dead()) as u64),
            (&c.server, fill.server),
            (&c.root, fill.root.raw()),
            (&c.entry, fill.entry),
            (&c.badge, fill.badge),
            (&c.stack, fill.stack),
        ] {
            slot.store(v, Ordering::Relaxed);
        }
        self.keep = Some((fill.portal, counter));
    }
}

// Offsets the assembly uses.
const V_LEN: usize = offset_of!(Visits, len);
const V_ROOT: usize = offset_of!(Visits, root);
const V_ACTING: usize = offset_of!(Visits, acting);
const V_FS: usize = offset_of!(Visits, fs);
const C: usize = offset_of!(Visits, cache);
const C_HANDLE: usize = C + offset_of!(Cache, handle);
const C_CHANGES_AT: usize = C + offset_of!(Cache, changes_at);
const C_CHANGES: usize = C + offset_of!(Cache, changes);
const C_REVOKED_AT: usize = C + offset_of!(Cache, revoked_at);
const C_DEAD_AT: usize = C + offset_of!(Cache, dead_at);
const C_SERVER: usize = C + offset_of!(Cache, server);
const C_ROOT: usize = C + offset_of!(Cache, root);
const C_ENTRY: usize = C + offset_of!(Cache, entry);
const C_BADGE: usize = C + offset_of!(Cache, badge);
const C_STACK: usize = C + offset_of!(Cache, stack);
/// The first frame (the only one the fast path uses).
const F: usize = offset_of!(Visits, frames);
const F_RIP: usize = F + offset_of!(CallFrame, rip);
const F_RFLAGS: usize = F + offset_of!(CallFrame, rflags);
const F_RSP: usize = F + offset_of!(CallFrame, rsp);
const F_RBX: usize = F + offset_of!(CallFrame, rbx);
const F_RBP: usize = F + offset_of!(CallFrame, rbp);
const F_R12: usize = F + offset_of!(CallFrame, r12);
const F_R13: usize = F + offset_of!(CallFrame, r13);
const F_R14: usize = F + offset_of!(CallFrame, r14);
const F_R15: usize = F + offset_of!(CallFrame, r15);
const F_ROOT: usize = F + offset_of!(CallFrame, root);
const F_FS: usize = F + offset_of!(CallFrame, fs_base);
const F_SERVER: usize = F + offset_of!(CallFrame, server);

// Entered from `moxie_syscall_entry` (arch/syscall.rs) with the flags of `cmp rax, 27` and
// `rax >= 27`, the user stack pointer saved in the per-CPU block and `rsp` at the top of the
// thread's kernel stack (so `[rsp]` is its anchor). Interrupts are off (SFMASK). Anything
// unusual jumps to `moxie_syscall_general` with `rax` as the caller set it and `r9` zero (it
// may have held a kernel address). Nothing is pushed: the kernel stack is not used at all.
core::arch::global_asm!(
    r#"
    .section .text.moxie_portal_fast, "ax"
    .global moxie_portal_fast
moxie_portal_fast:
    jne 5f
    // ---- portal_call(h = rdi, a0 = rsi, a1 = rdx, a2 = r10, a3 = r8) ----
    cmp byte ptr gs:[{flags}], 0
    jne moxie_syscall_general
    mov rax, [rsp]
    test rax, rax
    jz 2f
    cmp qword ptr [rax + {v_len}], 0
    jne 2f
    cmp [rax + {c_handle}], rdi
    jne 2f
    mov r9, [rax + {c_changes_at}]
    mov r9, [r9]
    cmp r9, [rax + {c_changes}]
    jne 2f
    mov r9, [rax + {c_revoked_at}]
    cmp byte ptr [r9], 0
    jne 2f
    // The caller's frame, then the call published (a full barrier), then the death mark.
    mov [rax + {f_rip}], rcx
    mov [rax + {f_rflags}], r11
    mov r9, gs:[{user_rsp}]
    mov [rax + {f_rsp}], r9
    mov [rax + {f_rbx}], rbx
    mov [rax + {f_rbp}], rbp
    mov [rax + {f_r12}], r12
    mov [rax + {f_r13}], r13
    mov [rax + {f_r14}], r14
    mov [rax + {f_r15}], r15
    mov r9, [rax + {v_root}]
    mov [rax + {f_root}], r9
    mov r9, gs:[{fs}]
    mov [rax + {f_fs}], r9
    mov r9, [rax + {c_server}]
    mov [rax + {f_server}], r9
    mov r9d, 1
    xchg [rax + {v_len}], r9
    mov r9, [rax + {c_dead_at}]
    cmp byte ptr [r9], 0
    jne 1f
    // In: the server's space and pid.
    mov r9, [rax + {c_root}]
    mov [rax + {v_root}], r9
    mov cr3, r9
    mov r9, [rax + {c_server}]
    mov [rax + {v_acting}], r9
    mov gs:[{acting}], r9
    mov qword ptr [rax + {v_fs}], 0
    cmp qword ptr gs:[{fs}], 0
    jne 3f
4:
    // The server's registers (abi::portal): arguments, badge, caller, thread; the rest zero.
    mov rdi, rsi
    mov rsi, rdx
    mov rdx, r10
    mov r10, r8
    mov r8, [rax + {c_badge}]
    mov r9, gs:[{current_pid}]
    mov rcx, [rax + {c_entry}]
    mov r11d, 0x202
    xor ebx, ebx
    xor ebp, ebp
    xor r12d, r12d
    xor r13d, r13d
    xor r14d, r14d
    xor r15d, r15d
    fxrstor64 [rip + {clean}]
    mov rsp, [rax + {c_stack}]
    mov rax, gs:[{current_tid}]
    swapgs
    sysretq
3:  // FS base zero for the server (rax waits in r11, rdx in r9).
    mov r11, rax
    mov r9, rdx
    xor eax, eax
    xor edx, edx
    mov gs:[{fs}], rax
    mov ecx, {msr_fs_base}
    wrmsr
    mov rdx, r9
    mov rax, r11
    jmp 4b
1:  // The server died meanwhile: withdrawn; the general path fails the call.
    mov qword ptr [rax + {v_len}], 0
2:  mov eax, {sys_call}
    xor r9d, r9d
    jmp moxie_syscall_general

5:  cmp rax, {sys_return}
    jne moxie_syscall_general
    // ---- portal_return(r0 = rdi, r1 = rsi) ----
    cmp byte ptr gs:[{flags}], 0
    jne moxie_syscall_general
    mov rax, [rsp]
    test rax, rax
    jz 6f
    cmp qword ptr [rax + {v_len}], 1
    jne 6f
    // Back in the caller's space before the call is seen gone.
    mov r9, [rax + {f_root}]
    mov cr3, r9
    mov [rax + {v_root}], r9
    mov qword ptr [rax + {v_acting}], -1
    mov r9, gs:[{current_pid}]
    mov gs:[{acting}], r9
    mov qword ptr [rax + {v_len}], 0
    mov r9, [rax + {f_fs}]
    cmp r9, gs:[{fs}]
    jne 7f
8:
    // The caller's registers: status 0, r0 in rdx, r1 in rsi, kept ones back, others zero.
    mov rdx, rdi
    xor edi, edi
    xor r8d, r8d
    xor r9d, r9d
    xor r10d, r10d
    mov rbx, [rax + {f_rbx}]
    mov rbp, [rax + {f_rbp}]
    mov r12, [rax + {f_r12}]
    mov r13, [rax + {f_r13}]
    mov r14, [rax + {f_r14}]
    mov r15, [rax + {f_r15}]
    mov rcx, [rax + {f_rip}]
    mov r11, [rax + {f_rflags}]
    fxrstor64 [rip + {clean}]
    mov rsp, [rax + {f_rsp}]
    xor eax, eax
    swapgs
    sysretq
6:  mov eax, {sys_return}
    xor r9d, r9d
    jmp moxie_syscall_general
7:  // The caller's FS base back (r9; rax waits in r11).
    mov gs:[{fs}], r9
    mov r11, rax
    mov rax, r9
    mov rdx, r9
    shr rdx, 32
    mov ecx, {msr_fs_base}
    wrmsr
    mov rax, r11
    jmp 8b
    "#,
    flags = const percpu::OFF_RETURN_FLAGS,
    fs = const percpu::OFF_FS_BASE,
    user_rsp = const percpu::OFF_USER_RSP,
    acting = const percpu::OFF_ACTING_PID,
    current_pid = const percpu::OFF_CURRENT_PID,
    current_tid = const percpu::OFF_CURRENT_TID,
    v_len = const V_LEN,
    v_root = const V_ROOT,
    v_acting = const V_ACTING,
    v_fs = const V_FS,
    msr_fs_base = const 0xc000_0100u32,
    c_handle = const C_HANDLE,
    c_changes_at = const C_CHANGES_AT,
    c_changes = const C_CHANGES,
    c_revoked_at = const C_REVOKED_AT,
    c_dead_at = const C_DEAD_AT,
    c_server = const C_SERVER,
    c_root = const C_ROOT,
    c_entry = const C_ENTRY,
    c_badge = const C_BADGE,
    c_stack = const C_STACK,
    f_rip = const F_RIP,
    f_rflags = const F_RFLAGS,
    f_rsp = const F_RSP,
    f_rbx = const F_RBX,
    f_rbp = const F_RBP,
    f_r12 = const F_R12,
    f_r13 = const F_R13,
    f_r14 = const F_R14,
    f_r15 = const F_R15,
    f_root = const F_ROOT,
    f_fs = const F_FS,
    f_server = const F_SERVER,
    clean = sym super::context::FPU_CLEAN,
    sys_call = const abi::syscall::Sys::PortalCall as u64,
    sys_return = const abi::syscall::Sys::PortalReturn as u64,
);
