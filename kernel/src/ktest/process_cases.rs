//! In-kernel tests of processes in ring 3: exit codes, every fault kind's death report, bad
//! pointers, per-thread SSE state, frame accounting over many spawn/exit cycles.
use crate::arch::frames;
use crate::ensure;
use crate::process::{self, Death, FaultKind, SpawnError, SpawnOptions};
use alloc::format;
use alloc::string::String;

const PROBE: &str = "bin/probe";

fn run_probe(arg: u64) -> Result<Death, String> {
    let pid =
        process::spawn(PROBE, arg, SpawnOptions::default()).map_err(|e| format!("spawn: {e}"))?;
    process::wait(pid).ok_or_else(|| format!("process {pid} vanished"))
}

pub fn exit_code_is_reported() -> Result<(), String> {
    let d = run_probe(0)?;
    ensure!(
        d == Death::Exit(42),
        "probe 0 ended with {d:?}, expected Exit(42)"
    );
    Ok(())
}

pub fn each_fault_kind_is_reported() -> Result<(), String> {
    let cases = [
        (1, "null dereference", FaultKind::PageFault),
        (2, "general protection", FaultKind::GeneralProtection),
        (3, "invalid opcode", FaultKind::InvalidOpcode),
        (4, "divide by zero", FaultKind::DivideByZero),
        (5, "stack overflow", FaultKind::StackOverflow),
    ];
    for (arg, what, want) in cases {
        let d = run_probe(arg)?;
        let ok = match &d {
            Death::Fault { kind, addr, .. } => *kind == want && (arg != 1 || *addr == 8),
            _ => false,
        };
        ensure!(ok, "{what}: death report {d:?}");
        if let Death::Fault { rip, .. } = d {
            ensure!(
                (abi::layout::MODULE_BASE..abi::layout::MODULE_BASE + abi::layout::MODULE_MAX_SIZE)
                    .contains(&rip),
                "{what}: faulting RIP {rip:#x} is not in the module"
            );
        }
    }
    // The kernel kept running, and so does a new process.
    exit_code_is_reported()
}

pub fn panic_is_reported() -> Result<(), String> {
    let d = run_probe(6)?;
    ensure!(
        matches!(&d, Death::Panic(t) if t.contains("probe panics on purpose")),
        "panicking probe ended with {d:?}"
    );
    Ok(())
}

pub fn bad_pointers_get_bad_address() -> Result<(), String> {
    let d = run_probe(7)?;
    ensure!(
        d == Death::Exit(0),
        "bad-pointer probe ended with {d:?} (100+i: case i misbehaved)"
    );
    Ok(())
}

pub fn sse_state_is_per_thread() -> Result<(), String> {
    let a =
        process::spawn(PROBE, 9 | (1 << 8), SpawnOptions::default()).map_err(|e| format!("{e}"))?;
    let b =
        process::spawn(PROBE, 9 | (2 << 8), SpawnOptions::default()).map_err(|e| format!("{e}"))?;
    let (da, db) = (process::wait(a), process::wait(b));
    ensure!(
        da == Some(Death::Exit(0)) && db == Some(Death::Exit(0)),
        "xmm0 not preserved: {da:?} {db:?}"
    );
    Ok(())
}

pub fn spawn_errors_are_clean() -> Result<(), String> {
    let before = frames::free_frames();
    match process::spawn("bin/nope", 0, SpawnOptions::default()) {
        Err(SpawnError::NotFound(p)) if p == "bin/nope" => {}
        other => return Err(format!("missing module gave {other:?}")),
    }
    let bad_stack = SpawnOptions {
        stack_size: 100,
        ..SpawnOptions::default()
    };
    ensure!(
        matches!(
            process::spawn(PROBE, 0, bad_stack),
            Err(SpawnError::BadOption(_))
        ),
        "unaligned stack size accepted"
    );
    let bad_arena = SpawnOptions {
        arena_ceiling: u64::MAX,
        ..SpawnOptions::default()
    };
    ensure!(
        matches!(
            process::spawn(PROBE, 0, bad_arena),
            Err(SpawnError::BadOption(_))
        ),
        "huge arena ceiling accepted"
    );
    ensure!(
        frames::free_frames() == before,
        "a refused spawn leaked {} frames",
        before - frames::free_frames()
    );
    Ok(())
}

pub fn spawn_exit_cycles_return_every_frame() -> Result<(), String> {
    // One warm-up cycle: kernel stacks' page tables and heap growth happen once.
    run_probe(0)?;
    let before = frames::free_frames();
    for i in 0..1000 {
        let d = run_probe(0)?;
        ensure!(d == Death::Exit(42), "cycle {i}: {d:?}");
    }
    let after = super::settled_free_frames(before);
    ensure!(
        after == before,
        "free frames {before} before 1000 spawn/exit cycles, {after} after"
    );
    Ok(())
}

pub fn malformed_modules_are_refused_with_their_message() -> Result<(), String> {
    let cases = [
        ("bad/magic", "not an ELF file (bad magic)"),
        ("bad/machine", "wrong machine 3"),
        ("bad/exec", "not position-independent: ELF type 2"),
        ("bad/truncated", "truncated file"),
        ("bad/unknown-symbol", "unknown symbol `moxie_sys_nulx`"),
        ("bad/wx", "both writable and executable"),
    ];
    let before = frames::free_frames();
    for (path, want) in cases {
        match process::spawn(path, 0, SpawnOptions::default()) {
            Err(SpawnError::Load(e)) => {
                let msg = format!("{e}");
                ensure!(
                    msg.contains(want),
                    "{path}: refused with \"{msg}\", expected \"{want}\""
                );
            }
            Ok(pid) => {
                let d = process::wait(pid);
                return Err(format!("{path} was loaded and ran: {d:?}"));
            }
            Err(other) => return Err(format!("{path}: {other}")),
        }
    }
    ensure!(
        frames::free_frames() == before,
        "refused loads leaked frames"
    );
    Ok(())
}

/// A spawn or resume reuses a module loaded before only when its fingerprint (path, length,
/// CRC-32C) is the same: a changed file is loaded afresh, and the loaded image is the file's.
pub fn loaded_modules_are_kept_by_fingerprint() -> Result<(), String> {
    let file = crate::bundle::file("bin/probe").ok_or("no bin/probe in the bundle")?;
    let m = process::Module::of("bin/probe", file);
    let a = process::loaded(&m, file).map_err(|e| format!("{e}"))?;
    let b = process::loaded(&m, file).map_err(|e| format!("{e}"))?;
    ensure!(
        alloc::sync::Arc::ptr_eq(&a, &b),
        "the same file was loaded twice"
    );
    let changed = process::Module {
        crc: m.crc ^ 1,
        ..m.clone()
    };
    let c = process::loaded(&changed, file).map_err(|e| format!("{e}"))?;
    ensure!(
        !alloc::sync::Arc::ptr_eq(&a, &c),
        "a file with another CRC got the old load"
    );
    let fresh = crate::loader::load(file).map_err(|e| format!("{e:?}"))?;
    ensure!(
        fresh.entry == a.entry
            && fresh.pages.len() == a.pages.len()
            && fresh
                .pages
                .iter()
                .zip(&a.pages)
                .all(|(x, y)| x.vaddr == y.vaddr && x.perms == y.perms && x.bytes == y.bytes),
        "the kept image differs from a fresh load"
    );
    Ok(())
}
