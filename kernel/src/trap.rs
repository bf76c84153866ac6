//! What the core does with each trap: breakpoints return, faults at instructions listed in the
//! exception table resume at their fixup, and anything else in ring 0 is a kernel bug that gets a
//! full report (vector, error code, registers, CR2, backtrace) before the machine stops.
use crate::arch::apic;
use crate::arch::cpu;
use crate::arch::extable;
use crate::arch::idt::TrapFrame;
use crate::arch::serial::write_fmt_emergency as emit;
use abi::qemu::ExitCode;
use core::sync::atomic::{AtomicU64, Ordering};

/// Breakpoints taken since boot.
pub static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);
/// Faults recovered through the exception table since boot.
pub static FIXUPS: AtomicU64 = AtomicU64::new(0);

const PAGE_FAULT: u64 = 14;
const GENERAL_PROTECTION: u64 = 13;

/// The name of an exception vector.
pub fn vector_name(v: u64) -> &'static str {
    match v {
        0 => "divide error",
        1 => "debug",
        2 => "non-maskable interrupt",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point error",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point error",
        20 => "virtualization exception",
        21 => "control protection exception",
        28..=30 => "hypervisor/security exception",
        32..=255 => "interrupt",
        _ => "reserved vector",
    }
}

/// Entry from `arch::idt` for every trap.
pub fn handle(frame: &mut TrapFrame) {
    handle_trap(frame);
    if frame.from_user() {
        // Asked to freeze for a suspend: the frame holds every user register as they were.
        if crate::sched::freeze_due().is_some() {
            crate::sched::freeze_current();
        }
        // A server on the thread's chain of portal calls died (perhaps by this very fault).
        crate::portal::on_user_return(frame);
    }
}

fn handle_trap(frame: &mut TrapFrame) {
    match frame.vector {
        v if v == apic::TIMER_VECTOR as u64 => {
            apic::count_timer_interrupt();
            apic::eoi();
            crate::sched::timer_interrupt();
            if frame.from_user() && crate::sched::current_doomed() {
                crate::sched::exit_current();
            }
            return;
        }
        v if v == apic::RESCHEDULE_VECTOR as u64 => {
            apic::eoi();
            crate::sched::reschedule_ipi();
            if frame.from_user() && crate::sched::current_doomed() {
                crate::sched::exit_current();
            }
            return;
        }
        v if crate::device::irq::is_device_vector(v) => {
            apic::eoi();
            crate::device::irq::interrupt(v);
            // The driver may have a tighter deadline than what this interrupted.
            if frame.from_user() {
                crate::sched::preempt_if_needed();
                if crate::sched::current_doomed() {
                    crate::sched::exit_current();
                }
            }
            return;
        }
        v if v == apic::SPURIOUS_VECTOR as u64 => return,
        v if v == apic::ERROR_VECTOR as u64 => {
            apic::eoi();
            log::warn!("local APIC error interrupt");
            return;
        }
        _ => {}
    }
    if frame.from_user() {
        return user_trap(frame);
    }
    if frame.vector == PAGE_FAULT
        && cpu::cr2() < abi::layout::USER_END
        && let Some(pid) = crate::sched::current_pid()
        && crate::process::page_fault(pid, cpu::cr2(), frame.error_code).is_ok()
    {
        // The kernel touched a demand-mapped arena page on the process's behalf: retry.
        return;
    }
    match frame.vector {
        3 => {
            BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
            log::debug!("breakpoint at {:#x}", frame.rip);
        }
        v @ (PAGE_FAULT | GENERAL_PROTECTION) if !frame.from_user() => {
            match extable::fixup_for(frame.rip) {
                Some(fixup) => {
                    FIXUPS.fetch_add(1, Ordering::Relaxed);
                    frame.rax = if v == PAGE_FAULT { cpu::cr2() } else { 0 };
                    frame.rdx = v;
                    frame.rip = fixup;
                }
                None => report_and_stop(frame),
            }
        }
        32..=255 => log::warn!("unexpected interrupt, vector {}", frame.vector),
        _ => report_and_stop(frame),
    }
}

/// A trap from ring 3: demand paging, or the process's death with a fault report. The kernel and
/// every other process keep running.
fn user_trap(frame: &mut TrapFrame) {
    use crate::process::{Death, FaultKind};
    let Some(pid) = crate::sched::current_pid() else {
        report_and_stop(frame)
    };
    let (kind, addr) = match frame.vector {
        3 => {
            BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
            return;
        }
        PAGE_FAULT => {
            let addr = cpu::cr2();
            match crate::process::page_fault(pid, addr, frame.error_code) {
                Ok(()) => return,
                Err(kind) => (kind, addr),
            }
        }
        0 => (FaultKind::DivideByZero, 0),
        6 => (FaultKind::InvalidOpcode, 0),
        GENERAL_PROTECTION => (FaultKind::GeneralProtection, 0),
        32..=255 => {
            log::warn!("unexpected interrupt, vector {}", frame.vector);
            return;
        }
        v => (FaultKind::Other(v), 0),
    };
    crate::process::die(
        pid,
        Death::Fault {
            kind,
            rip: frame.rip,
            addr,
        },
    );
}

fn page_fault_cause(code: u64) -> &'static str {
    match (code & 1 != 0, code & 2 != 0, code & 16 != 0) {
        (_, _, true) => "instruction fetch",
        (false, false, _) => "read of a not-present page",
        (false, true, _) => "write to a not-present page",
        (true, false, _) => "read protection violation",
        (true, true, _) => "write protection violation",
    }
}

/// Prints the exception report on the console and stops QEMU with a failure code.
pub fn report_and_stop(f: &TrapFrame) -> ! {
    emit(format_args!(
        "\nmoxie: EXCEPTION {} (vector {}) error code {:#x}{}\n",
        vector_name(f.vector),
        f.vector,
        f.error_code,
        if f.from_user() {
            " in ring 3"
        } else {
            " in ring 0"
        },
    ));
    if f.vector == PAGE_FAULT {
        emit(format_args!(
            "  page fault: {} at CR2={:#018x}\n",
            page_fault_cause(f.error_code),
            cpu::cr2()
        ));
    }
    emit(format_args!(
        "  RIP={:#018x} CS={:#06x} RFLAGS={:#018x}\n  RSP={:#018x} SS={:#06x} CR2={:#018x} CR3={:#018x}\n",
        f.rip,
        f.cs,
        f.rflags,
        f.rsp,
        f.ss,
        cpu::cr2(),
        cpu::cr3()
    ));
    emit(format_args!(
        "  RAX={:#018x} RBX={:#018x} RCX={:#018x} RDX={:#018x}\n  RSI={:#018x} RDI={:#018x} RBP={:#018x}\n",
        f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp
    ));
    emit(format_args!(
        "  R8 ={:#018x} R9 ={:#018x} R10={:#018x} R11={:#018x}\n  R12={:#018x} R13={:#018x} R14={:#018x} R15={:#018x}\n",
        f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15
    ));
    backtrace(f.rip, f.rbp);
    emit(format_args!(
        "moxie: stopping: kernel bug (exception in the core)\n"
    ));
    cpu::exit_qemu(ExitCode::Failure)
}

/// Prints a frame-pointer backtrace starting at `rip` with frame pointer `rbp`. Every read goes
/// through the fault-safe probe, so a corrupt chain ends the trace instead of faulting again.
pub fn backtrace(rip: u64, mut rbp: u64) {
    emit(format_args!("  backtrace:\n"));
    if rip != 0 {
        emit(format_args!("    #0  {rip:#018x}\n"));
    }
    for depth in 1..32 {
        if rbp == 0 || !rbp.is_multiple_of(8) || rbp < abi::layout::KERNEL_HALF {
            break;
        }
        let (Ok(next), Ok(ret)) = (
            extable::probe_read_u64(rbp),
            extable::probe_read_u64(rbp + 8),
        ) else {
            emit(format_args!("    (frame pointer {rbp:#x} is unreadable)\n"));
            break;
        };
        if ret == 0 {
            break;
        }
        emit(format_args!("    #{depth:<2} {ret:#018x}\n"));
        rbp = next;
    }
}
