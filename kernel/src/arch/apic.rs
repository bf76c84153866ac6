//! The local APIC (through the `x2apic` crate: x2APIC mode where the CPU has it, xAPIC through
//! the direct map otherwise) and the one-shot timer the scheduler programs for each decision:
//! TSC-deadline mode where CPUID reports it, the APIC's one-shot count-down otherwise. The TSC
//! (and the APIC timer, when it is needed) is calibrated against the PIT at boot.
use super::cpu;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use spin::Mutex;
use x2apic::lapic::{LocalApic, LocalApicBuilder, TimerDivide, TimerMode};
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

/// The timer's interrupt vector.
pub const TIMER_VECTOR: u8 = 0x40;
/// APIC error vector.
pub const ERROR_VECTOR: u8 = 0x41;
/// Rescheduling IPI vector.
pub const RESCHEDULE_VECTOR: u8 = 0x42;
/// Spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

const IA32_TSC_DEADLINE: u32 = 0x6e0;

/// A CPU's APIC handle. `LocalApic` is `!Send` because its registers belong to the CPU that
/// executes the access; each slot below is only ever used by its own CPU.
struct CpuApic(LocalApic);
// SAFETY: see above: slot `i` is touched only on CPU `i`, serialised by its mutex.
unsafe impl Send for CpuApic {}

const MAX_CPUS: usize = super::acpi::MAX_CPUS;

static LAPIC: [Mutex<Option<CpuApic>>; MAX_CPUS] = [const { Mutex::new(None) }; MAX_CPUS];

fn this_cpu() -> &'static Mutex<Option<CpuApic>> {
    &LAPIC[super::percpu::cpu_id()]
}
static TSC_HZ: AtomicU64 = AtomicU64::new(1_000_000_000);
static APIC_HZ: AtomicU64 = AtomicU64::new(0);
/// Clock conversions as 32.32 fixed-point factors, computed once at calibration, so that the
/// hot paths (every switch reads the clock) multiply and shift instead of dividing 128-bit
/// numbers: nanoseconds per TSC tick, TSC ticks per nanosecond, APIC counts per nanosecond.
static NS_PER_TICK: AtomicU64 = AtomicU64::new(1 << 32);
static TICKS_PER_NS: AtomicU64 = AtomicU64::new(1 << 32);
static COUNTS_PER_NS: AtomicU64 = AtomicU64::new(0);

/// `(1e9 << 32) / hz` and `(hz << 32) / 1e9`, the two 32.32 factors for a clock of `hz`.
fn factors(hz: u64) -> (u64, u64) {
    let hz = u128::from(hz.max(1));
    let per_tick = (1_000_000_000u128 << 32) / hz;
    let per_ns = (hz << 32) / 1_000_000_000;
    (
        per_tick.min(u128::from(u64::MAX)) as u64,
        per_ns.min(u128::from(u64::MAX)) as u64,
    )
}

/// `x * factor >> 32` for a 32.32 factor.
fn scale(x: u64, factor: &AtomicU64) -> u64 {
    ((u128::from(x) * u128::from(factor.load(Ordering::Relaxed))) >> 32) as u64
}
static DEADLINE_MODE: AtomicBool = AtomicBool::new(false);
/// Timer interrupts taken, per CPU.
pub static TIMER_INTERRUPTS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Timer interrupts taken on this CPU.
pub fn timer_interrupts() -> u64 {
    TIMER_INTERRUPTS[super::percpu::cpu_id()].load(Ordering::Relaxed)
}

/// Counts a timer interrupt on this CPU.
pub fn count_timer_interrupt() {
    TIMER_INTERRUPTS[super::percpu::cpu_id()].fetch_add(1, Ordering::Relaxed);
}

/// How the timer works on this machine.
#[derive(Clone, Copy, Debug)]
pub struct TimerInfo {
    /// TSC frequency, calibrated.
    pub tsc_hz: u64,
    /// TSC-deadline mode (else the APIC's one-shot count-down).
    pub deadline_mode: bool,
    /// The APIC timer frequency (one-shot mode only).
    pub apic_hz: u64,
    /// x2APIC mode.
    pub x2apic: bool,
}

fn tsc_deadline_supported() -> bool {
    core::arch::x86_64::__cpuid(1).ecx & (1 << 24) != 0
}

fn x2apic_supported() -> bool {
    core::arch::x86_64::__cpuid(1).ecx & (1 << 21) != 0
}

/// Runs `f` while PIT channel 2 counts down 10 ms; returns what `f` returned before and after.
fn over_10ms<T>(mut f: impl FnMut() -> T) -> (T, T) {
    const PIT_HZ: u64 = 1_193_182;
    let count = (PIT_HZ / 100) as u16;
    // SAFETY: ports 0x42/0x43/0x61 are the PIT's channel 2 and its gate on every PC; the
    // speaker stays off (bit 1 clear) and nothing else uses channel 2.
    unsafe {
        let mut gate = Port::<u8>::new(0x61);
        let g = gate.read();
        gate.write((g & !0x02) | 0x01);
        Port::<u8>::new(0x43).write(0xb0);
        Port::<u8>::new(0x42).write(count as u8);
        Port::<u8>::new(0x42).write((count >> 8) as u8);
        let start = f();
        while gate.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
        let end = f();
        (start, end)
    }
}

/// Brings up the boot CPU's local APIC and calibrates the clocks; returns what it found.
pub fn init() -> TimerInfo {
    let (t0, t1) = over_10ms(cpu::rdtsc);
    let tsc_hz = (t1 - t0) * 100;
    TSC_HZ.store(tsc_hz.max(1), Ordering::Relaxed);
    let (per_tick, per_ns) = factors(tsc_hz);
    NS_PER_TICK.store(per_tick, Ordering::Relaxed);
    TICKS_PER_NS.store(per_ns, Ordering::Relaxed);
    let deadline = tsc_deadline_supported();
    DEADLINE_MODE.store(deadline, Ordering::Relaxed);
    bring_up(true)
}

/// Brings up an application processor's local APIC with the boot CPU's calibration.
pub fn init_ap() {
    bring_up(false);
}

fn bring_up(calibrate: bool) -> TimerInfo {
    let deadline = DEADLINE_MODE.load(Ordering::Relaxed);
    // SAFETY: reads the APIC base MSR, present on every x86_64 CPU.
    let base = unsafe { x2apic::lapic::xapic_base() };
    let mut lapic = LocalApicBuilder::new()
        .timer_vector(TIMER_VECTOR as usize)
        .error_vector(ERROR_VECTOR as usize)
        .spurious_vector(SPURIOUS_VECTOR as usize)
        .timer_mode(if deadline {
            TimerMode::TscDeadline
        } else {
            TimerMode::OneShot
        })
        .timer_divide(TimerDivide::Div16)
        .timer_initial(0)
        .set_xapic_base(super::phys::to_virt(base))
        .build()
        .expect("every vector is set");
    // SAFETY: enabling this CPU's APIC with the vectors above, which the IDT routes to the
    // trap handler; the timer stays disarmed (initial count 0 / no deadline).
    unsafe {
        lapic.enable();
        lapic.disable_timer();
    }
    let mut apic_hz = APIC_HZ.load(Ordering::Relaxed);
    if !deadline && calibrate {
        // SAFETY: a one-off count-down of the masked timer, read back to calibrate.
        unsafe {
            lapic.set_timer_initial(u32::MAX);
            let (a, b) = over_10ms(|| lapic.timer_current());
            apic_hz = u64::from(a - b) * 100;
            lapic.set_timer_initial(0);
        }
        APIC_HZ.store(apic_hz.max(1), Ordering::Relaxed);
        COUNTS_PER_NS.store(factors(apic_hz).1, Ordering::Relaxed);
    }
    // SAFETY: unmask the timer line; with no deadline/initial count it never fires.
    unsafe { lapic.enable_timer() };
    *this_cpu().lock() = Some(CpuApic(lapic));
    TimerInfo {
        tsc_hz: TSC_HZ.load(Ordering::Relaxed),
        deadline_mode: deadline,
        apic_hz,
        x2apic: x2apic_supported(),
    }
}

/// This CPU's local APIC id (from CPUID, valid before the APIC is set up).
pub fn id() -> u32 {
    let leaf1 = core::arch::x86_64::__cpuid(1);
    leaf1.ebx >> 24
}

/// Nanoseconds since boot on the monotonic clock (the TSC).
pub fn now_ns() -> u64 {
    ticks_to_ns(cpu::rdtsc())
}

fn ticks_to_ns(t: u64) -> u64 {
    scale(t, &NS_PER_TICK)
}

fn ns_to_ticks(ns: u64) -> u64 {
    scale(ns, &TICKS_PER_NS)
}

/// Arms the one-shot timer to fire at `deadline_ns` on the monotonic clock (at once if it has
/// passed).
pub fn arm(deadline_ns: u64) {
    let mut l = this_cpu().lock();
    let Some(CpuApic(lapic)) = l.as_mut() else {
        return;
    };
    if DEADLINE_MODE.load(Ordering::Relaxed) {
        let ticks = ns_to_ticks(deadline_ns).max(1);
        // SAFETY: IA32_TSC_DEADLINE arms this CPU's timer; it exists in TSC-deadline mode.
        unsafe { Msr::new(IA32_TSC_DEADLINE).write(ticks) };
    } else {
        let delta = deadline_ns.saturating_sub(now_ns()).max(1_000);
        // APIC_HZ was calibrated with the same divider: it is already counts per second.
        let count = scale(delta, &COUNTS_PER_NS);
        // SAFETY: a new initial count restarts this CPU's one-shot count-down.
        unsafe { lapic.set_timer_initial(count.clamp(1, u64::from(u32::MAX)) as u32) };
    }
}

/// Disarms the timer: no interrupt until the next `arm`.
pub fn disarm() {
    let mut l = this_cpu().lock();
    let Some(CpuApic(lapic)) = l.as_mut() else {
        return;
    };
    if DEADLINE_MODE.load(Ordering::Relaxed) {
        // SAFETY: writing 0 to IA32_TSC_DEADLINE disarms the timer.
        unsafe { Msr::new(IA32_TSC_DEADLINE).write(0) };
    } else {
        // SAFETY: an initial count of 0 stops the count-down.
        unsafe { lapic.set_timer_initial(0) };
    }
}

/// Signals the end of the interrupt being handled.
pub fn eoi() {
    if let Some(CpuApic(lapic)) = this_cpu().lock().as_mut() {
        // SAFETY: called once per APIC interrupt, at the end of its handling.
        unsafe { lapic.end_of_interrupt() };
    }
}

/// The ICR destination for `apic_id`: `x2apic` writes the destination into bits 32..64 of the
/// 64-bit ICR value in both modes, but in xAPIC mode the field is the top byte of the high
/// register, so the id must be shifted there (else every IPI goes to APIC id 0, the boot CPU).
fn destination(apic_id: u32) -> u32 {
    if x2apic_supported() {
        apic_id
    } else {
        apic_id << 24
    }
}

/// Sends a fixed interrupt `vector` to the CPU with local APIC id `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    if let Some(CpuApic(lapic)) = this_cpu().lock().as_mut() {
        // SAFETY: an IPI to a CPU whose IDT routes `vector` to the trap handler.
        unsafe { lapic.send_ipi(vector, destination(apic_id)) };
    }
}

/// Starts the application processor `apic_id` at physical page `page` (INIT, then two
/// start-up IPIs, with the waits the MP specification asks for).
pub fn start_ap(apic_id: u32, page: u8) {
    let wait_us = |us: u64| {
        let end = now_ns() + us * 1000;
        while now_ns() < end {
            core::hint::spin_loop();
        }
    };
    let mut l = this_cpu().lock();
    let Some(CpuApic(lapic)) = l.as_mut() else {
        return;
    };
    // SAFETY: INIT and SIPI to a processor the MADT lists as present and not yet started; the
    // start-up page holds the trampoline.
    unsafe {
        lapic.send_init_ipi(destination(apic_id));
        wait_us(10_000);
        lapic.send_sipi(page, destination(apic_id));
        wait_us(200);
        lapic.send_sipi(page, destination(apic_id));
    }
}
