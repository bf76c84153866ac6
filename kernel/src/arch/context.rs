//! Thread execution contexts: kernel stacks, the context switch, FPU/SSE state, and the first
//! entry of a new thread (into ring 3 through the trap-return path, or into a kernel function).
use super::frames::{self, KernelTables};
use super::paging::{MapError, Perms, kernel_space};
use super::phys::Frame;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use spin::Mutex;

/// Pages in one kernel stack.
pub const KSTACK_PAGES: u64 = 4;
const KSTACK_SLOT: u64 = 64 * 1024;
const KSTACK_AREA: u64 = abi::layout::KERNEL_STACKS_BASE + (1 << 20);

/// Kernel-stack slots given back, for reuse.
static FREE_SLOTS: Mutex<(Vec<u64>, u64)> = Mutex::new((Vec::new(), 0));

/// Bytes kept free above a kernel stack's [`KernelStack::top`]: the first word is the thread's
/// portal anchor (its record of portal calls, which the fast path finds from the stack
/// pointer the `syscall` entry loads; see `portal_path`), the second keeps the top 16-aligned.
const ANCHOR_ROOM: u64 = 16;

/// A thread's kernel stack: `KSTACK_PAGES` fresh frames at the top of a 64 KiB virtual slot whose
/// lower part stays unmapped, so an overflow faults instead of corrupting a neighbour.
pub struct KernelStack {
    slot: u64,
}

impl KernelStack {
    /// Allocates and maps a kernel stack.
    pub fn new() -> Result<KernelStack, MapError> {
        let slot = {
            let mut s = FREE_SLOTS.lock();
            s.0.pop().unwrap_or_else(|| {
                s.1 += 1;
                s.1 - 1
            })
        };
        let ks = KernelStack { slot };
        for i in 0..KSTACK_PAGES {
            let frame = frames::alloc_zeroed().ok_or(MapError::NoMemory)?;
            let va = ks.end() - (i + 1) * 4096;
            if let Err(e) =
                kernel_space().map(va, frame.phys(), Perms::ReadWrite, false, &mut KernelTables)
            {
                let _ = frames::free(frame);
                return Err(e);
            }
            let _ = Frame::into_phys(frame);
        }
        Ok(ks)
    }

    /// One past the highest mapped byte.
    fn end(&self) -> u64 {
        KSTACK_AREA + (self.slot + 1) * KSTACK_SLOT
    }

    /// Where the stack starts (the ring-0 stack pointer an entry from ring 3 loads): below the
    /// portal anchor, which is the word at this address.
    pub fn top(&self) -> u64 {
        self.end() - ANCHOR_ROOM
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        for i in 0..KSTACK_PAGES {
            if let Ok(phys) = kernel_space().unmap(self.end() - (i + 1) * 4096) {
                let _ = frames::free_phys(phys);
            }
        }
        FREE_SLOTS.lock().0.push(self.slot);
    }
}

/// The x87/SSE register file saved by `fxsave`.
#[repr(C, align(16))]
pub struct FpuState([u8; 512]);

/// The state in which every thread's FPU starts (captured at boot after `fninit`).
static FPU_INIT: Mutex<Option<FpuState>> = Mutex::new(None);

/// The initial FPU state again, at a fixed address for `fxrstor` (see [`clear_fpu`]): written
/// once by [`init_fpu`] on the boot CPU before any other CPU or any thread runs, read-only
/// after.
pub(super) struct CleanFpu(UnsafeCell<FpuState>);
// SAFETY: written only by `init_fpu` before anything can read it concurrently (see above).
unsafe impl Sync for CleanFpu {}
pub(super) static FPU_CLEAN: CleanFpu = CleanFpu(UnsafeCell::new(FpuState([0; 512])));

/// Puts the running thread's x87, MMX and SSE registers (and MXCSR) back in their initial
/// state, so that none of what they held crosses to the code that runs next in ring 3 (a
/// portal call's server, or its caller after the return).
#[inline]
pub fn clear_fpu() {
    // SAFETY: `fxrstor` loads the 512-byte, 16-aligned initial state `init_fpu` captured (a
    // valid image for this CPU: it was saved by `fxsave` on the boot CPU, and every CPU is
    // the same model); it changes only FPU/SSE registers, which the kernel does not use.
    unsafe {
        core::arch::asm!("fxrstor64 [{}]", in(reg) FPU_CLEAN.0.get(), options(nostack, readonly, preserves_flags));
    }
}

/// Enables SSE for ring 3 on this CPU (CR4.OSFXSR/OSXMMEXCPT, CR0.MP, not EM).
fn enable_sse() {
    use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
    // SAFETY: turning on SSE support changes what user instructions may do, nothing in memory.
    unsafe {
        Cr0::update(|f| {
            f.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            f.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
        Cr4::update(|f| f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
    }
}

/// Enables SSE on the boot CPU and records the initial FPU state new threads start from. The
/// kernel itself is built soft-float and never touches it.
pub fn init_fpu() {
    enable_sse();
    let mut st = FpuState([0; 512]);
    // SAFETY: fninit resets the x87 unit; fxsave writes 512 bytes into a 16-aligned buffer.
    unsafe {
        core::arch::asm!("fninit", "fxsave64 [{}]", in(reg) st.0.as_mut_ptr(), options(nostack));
    }
    // SAFETY: the boot CPU at start-up, before any other CPU or thread runs: nothing reads
    // the clean state yet (see `CleanFpu`).
    unsafe { (*FPU_CLEAN.0.get()).0 = st.0 };
    *FPU_INIT.lock() = Some(st);
}

/// Enables SSE on an application processor (the initial state is shared).
pub fn init_fpu_ap() {
    enable_sse();
}

fn fresh_fpu() -> Box<FpuState> {
    let st = FPU_INIT.lock();
    Box::new(FpuState(st.as_ref().map_or([0; 512], |s| s.0)))
}

/// The RFLAGS bits a resumed thread keeps from its image (carry, parity, adjust, zero, sign,
/// direction, overflow); everything else is the kernel's (interrupts on, no I/O privilege).
const USER_RFLAGS: u64 = 0x0cd5;

/// An FXSAVE area from an image, made safe to load: MXCSR bits the CPU does not support would
/// make `fxrstor` fault in the kernel, so they are cleared (the mask comes from the CPU's own
/// area, `current`).
fn sanitized_fxsave(mut area: [u8; 512], current: &[u8; 512]) -> [u8; 512] {
    let word = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let mask = match word(current, 28) {
        0 => 0xffbf,
        m => m,
    };
    let mxcsr = word(&area, 24) & mask;
    area[24..28].copy_from_slice(&mxcsr.to_le_bytes());
    area[28..32].copy_from_slice(&mask.to_le_bytes());
    area
}

/// The switch frame of a thread that starts in ring 3: straight to the trap-return path.
fn user_entry_frame() -> SwitchFrame {
    SwitchFrame {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        rbx: 0,
        rbp: 0,
        ret: moxie_trap_return as *const () as u64,
    }
}

/// A thread's saved kernel context.
pub struct Context {
    rsp: u64,
    fpu: Box<FpuState>,
    stack: Option<KernelStack>,
}

core::arch::global_asm!(
    r#"
    .section .text.moxie_switch, "ax"
    .global moxie_switch
moxie_switch:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

    .global moxie_kthread_start
moxie_kthread_start:
    mov rdi, r13
    call r12
    ud2
    "#
);

unsafe extern "C" {
    fn moxie_switch(save: *mut u64, load: u64);
    fn moxie_trap_return();
    fn moxie_kthread_start();
}

/// Callee-saved registers and the return address, as `moxie_switch` pops them.
#[repr(C)]
struct SwitchFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    rbx: u64,
    rbp: u64,
    ret: u64,
}

/// Where a new context starts.
pub enum Start {
    /// Ring 3 at `rip` with stack `rsp` and the first three argument registers.
    User {
        /// Entry point (a validated user address).
        rip: u64,
        /// User stack pointer.
        rsp: u64,
        /// rdi, rsi, rdx.
        args: [u64; 3],
    },
    /// Ring 3 exactly where a suspended thread stopped: every register and its FPU state
    /// (a resume). The caller checked `rip` and `rsp` are user addresses; the flags and the
    /// FPU control words are made safe here.
    Resume {
        /// The registers (`cs`, `ss` and the privileged flags are overridden).
        frame: Box<super::idt::TrapFrame>,
        /// The FXSAVE area.
        fxsave: Box<[u8; 512]>,
    },
    /// A kernel function that never returns.
    Kernel {
        /// The function.
        entry: extern "C" fn(u64) -> !,
        /// Its argument.
        arg: u64,
    },
}

impl Context {
    /// The context of the code running now on the boot stack (filled in by its first switch).
    pub fn current_boot() -> Context {
        Context {
            rsp: 0,
            fpu: fresh_fpu(),
            stack: None,
        }
    }

    /// A new context with its own kernel stack that starts as `start` says.
    pub fn new(start: Start) -> Result<Context, MapError> {
        let stack = KernelStack::new()?;
        let top = stack.top();
        let tf_size = core::mem::size_of::<super::idt::TrapFrame>() as u64;
        let sf_size = core::mem::size_of::<SwitchFrame>() as u64;
        let mut fpu = fresh_fpu();
        let (sf, tf) = match start {
            Start::Resume { frame, fxsave } => {
                fpu.0 = sanitized_fxsave(*fxsave, &fpu.0);
                let tf = super::idt::TrapFrame {
                    cs: 0x23,
                    ss: 0x1b,
                    rflags: (frame.rflags & USER_RFLAGS) | 0x202,
                    vector: 0,
                    error_code: 0,
                    ..*frame
                };
                (user_entry_frame(), Some(tf))
            }
            Start::User { rip, rsp, args } => {
                let tf = super::idt::TrapFrame {
                    rip,
                    rsp,
                    cs: 0x23,
                    ss: 0x1b,
                    rflags: 0x202,
                    rdi: args[0],
                    rsi: args[1],
                    rdx: args[2],
                    ..Default::default()
                };
                (user_entry_frame(), Some(tf))
            }
            Start::Kernel { entry, arg } => (
                SwitchFrame {
                    r15: 0,
                    r14: 0,
                    r13: arg,
                    r12: entry as *const () as u64,
                    rbx: 0,
                    rbp: 0,
                    ret: moxie_kthread_start as *const () as u64,
                },
                None,
            ),
        };
        let tf_at = top - tf_size;
        let sf_at = tf_at - sf_size;
        // SAFETY: both frames lie inside the freshly mapped kernel stack that only this new
        // context owns, below its top, properly aligned.
        unsafe {
            if let Some(tf) = tf {
                (tf_at as *mut super::idt::TrapFrame).write(tf);
            }
            (sf_at as *mut SwitchFrame).write(sf);
        }
        Ok(Context {
            rsp: sf_at,
            fpu,
            stack: Some(stack),
        })
    }

    /// True while a context made by [`Context::new`] has never run (it starts at its trap
    /// frame when first switched to).
    pub fn never_ran(&self) -> bool {
        let tf_size = core::mem::size_of::<super::idt::TrapFrame>() as u64;
        let sf_size = core::mem::size_of::<SwitchFrame>() as u64;
        self.stack_top()
            .is_some_and(|top| self.rsp == top - tf_size - sf_size)
    }

    /// The ring-3 registers of a thread that is not running: the trap frame at the top of its
    /// kernel stack, which every entry from ring 3 (system call or interrupt) builds there and
    /// a new or resumed thread starts from. `None` for a kernel thread, or when the frame there
    /// is not a ring-3 one.
    ///
    /// The caller makes sure the thread is off every CPU and stays so (it is frozen, under
    /// the scheduler's lock).
    pub fn user_frame(&self) -> Option<super::idt::TrapFrame> {
        let top = self.stack_top()?;
        let tf_at = top - core::mem::size_of::<super::idt::TrapFrame>() as u64;
        // SAFETY: the kernel stack is mapped for as long as this context owns it, and the top
        // frame lies inside it, aligned; the thread does not run, so nothing writes it now.
        let tf = unsafe { core::ptr::read(tf_at as *const super::idt::TrapFrame) };
        tf.from_user().then_some(tf)
    }

    /// The thread's FPU/SSE state as `fxsave` left it at its last switch away.
    pub fn fxsave_bytes(&self) -> [u8; 512] {
        self.fpu.0
    }

    /// Sets `rdi`, `rsi`, `rdx` of a ring-3 context made by [`Context::new`] that has not run
    /// yet (its trap frame still sits at the top of its kernel stack); nothing for others.
    pub fn set_user_args(&mut self, args: [u64; 3]) {
        let Some(top) = self.stack_top() else {
            return;
        };
        let tf_size = core::mem::size_of::<super::idt::TrapFrame>() as u64;
        let sf_size = core::mem::size_of::<SwitchFrame>() as u64;
        let tf_at = top - tf_size;
        if self.rsp != tf_at - sf_size {
            // It has run: its stack holds other frames now.
            return;
        }
        // SAFETY: the context has never run (its saved stack pointer is still where `new` put
        // it), so the trap frame `new` wrote is at `tf_at`, inside its own mapped kernel stack;
        // the scheduler's lock keeps anyone else from touching it.
        unsafe {
            let tf = &mut *(tf_at as *mut super::idt::TrapFrame);
            if tf.cs != 0x23 {
                return;
            }
            tf.rdi = args[0];
            tf.rsi = args[1];
            tf.rdx = args[2];
        }
    }

    /// The top of this context's kernel stack (where a ring-3 trap frame sits).
    pub fn stack_top(&self) -> Option<u64> {
        self.stack.as_ref().map(KernelStack::top)
    }
}

/// Switches from the running context to `to`, saving the current one into `from`; returns when
/// something switches back to `from`.
///
/// # Safety
///
/// `from` must be the context of the code running now, `to` a context that is not running, and
/// both must stay where they are (not moved or dropped) until `from` is resumed. Interrupts are
/// off.
#[inline(always)]
pub unsafe fn switch(from: *mut Context, to: *const Context) {
    // SAFETY: guaranteed by the caller; fxsave/fxrstor use the contexts' own 16-aligned areas.
    unsafe {
        core::arch::asm!("fxsave64 [{}]", in(reg) (*from).fpu.0.as_mut_ptr(), options(nostack));
        core::arch::asm!("fxrstor64 [{}]", in(reg) (*to).fpu.0.as_ptr(), options(nostack));
        if let Some(top) = (*to).stack_top() {
            super::percpu::set_kernel_rsp(top);
        }
        moxie_switch(&raw mut (*from).rsp, (*to).rsp);
    }
}

/// A pair of contexts to switch between, captured from references so that building one needs no
/// `unsafe`: the scheduler takes it while it holds the thread table, releases the lock, then
/// calls [`switch_to`].
pub struct SwitchPair {
    from: *mut Context,
    to: *const Context,
}

impl SwitchPair {
    /// From the running thread's context to another's.
    pub fn new(from: &mut Context, to: &Context) -> SwitchPair {
        SwitchPair { from, to }
    }
}

/// The scheduler's entry to [`switch`]. The contexts live in boxed thread records that stay put
/// until the thread is reaped, which happens only after a later switch away from it.
#[inline(always)]
pub fn switch_to(pair: SwitchPair) {
    // SAFETY: the pair was made from the running thread's context and a different, runnable
    // one; both are boxed and kept alive as described above; interrupts are off in the kernel.
    unsafe { switch(pair.from, pair.to) }
}
