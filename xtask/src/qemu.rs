//! Running QEMU: the flags every moxie boot shares, an interactive run, and a captured run with a
//! hard timeout for tests and benchmarks.
use crate::artifacts::Artifacts;
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Flags shared by every boot: machine, CPU, memory, no display, no reboot on triple fault,
/// the debug-exit device. `icount` makes the TSC count guest instructions (benchmarks).
pub fn machine_args(smp: u32, icount: bool) -> Vec<String> {
    let mut a: Vec<String> = [
        "-machine",
        "q35",
        "-cpu",
        "max",
        "-m",
        "256M",
        "-display",
        "none",
        "-no-reboot",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(["-smp".into(), smp.to_string()]);
    if smp > 1 && !icount {
        // One host thread per CPU, so the CPUs really run in parallel.
        a.extend(["-accel".into(), "tcg,thread=multi".into()]);
    }
    if icount {
        // Instruction counting, plus everything else that could make two runs differ: a fixed
        // random seed, a virtual clock for the RTC, no boot-device probing delays.
        for f in [
            "-icount",
            "shift=0,sleep=off",
            "-seed",
            "1",
            "-rtc",
            "base=2024-01-01T00:00:00,clock=vm",
            "-boot",
            "strict=on",
        ] {
            a.push(f.into());
        }
    }
    a
}

/// Flags that boot `kernel` (a multiboot ELF) with the bundle and `cmdline`, or the ISO.
pub fn boot_args(a: &Artifacts, kernel: &Path, iso: Option<&Path>, cmdline: &str) -> Vec<String> {
    match iso {
        Some(iso) => vec!["-cdrom".into(), iso.display().to_string()],
        None => vec![
            "-kernel".into(),
            kernel.display().to_string(),
            "-initrd".into(),
            a.bundle.display().to_string(),
            "-append".into(),
            cmdline.into(),
        ],
    }
}

/// Flags that attach the raw image `disk` as a virtio-blk device on the modern PCI transport
/// only (`disable-legacy=on`: vendor 0x1af4, device 0x1042, memory BARs and MSI-X).
pub fn disk_args(disk: &Path) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("if=none,id=disk0,format=raw,file={}", disk.display()),
        "-device".into(),
        "virtio-blk-pci,drive=disk0,disable-legacy=on".into(),
    ]
}

/// Boots with the serial console (and QEMU's monitor, Ctrl-A C) on this terminal.
pub fn interactive(a: &Artifacts, iso: Option<&Path>, smp: u32, cmdline: &str) -> Result<()> {
    let mut args = machine_args(smp, false);
    args.extend(boot_args(a, &a.moxie_elf, iso, cmdline));
    args.extend(["-serial".into(), "mon:stdio".into()]);
    eprintln!("xtask: booting moxie (leave QEMU with Ctrl-A X)");
    let status = Command::new("qemu-system-x86_64")
        .args(&args)
        .status()
        .context("starting qemu-system-x86_64")?;
    match status.code() {
        Some(c) if c == abi::qemu::ExitCode::Success.qemu_status() || c == 0 => Ok(()),
        Some(c) => anyhow::bail!("QEMU exited with status {c} ({})", describe(Some(c))),
        None => anyhow::bail!("QEMU was killed by a signal"),
    }
}

/// What a captured run produced.
pub struct Outcome {
    /// QEMU's exit status; `None` when the harness killed it.
    pub status: Option<i32>,
    /// Everything on the serial console.
    pub log: String,
    /// The hard timeout hit.
    pub timed_out: bool,
}

impl Outcome {
    /// The last `n` lines of the log, for failure reports.
    pub fn tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// Names an exit status.
pub fn describe(status: Option<i32>) -> &'static str {
    use abi::qemu::ExitCode::*;
    match status {
        Some(s) if s == Success.qemu_status() => "success",
        Some(s) if s == Failure.qemu_status() => "kernel failure",
        Some(s) if s == BootFailure.qemu_status() => "boot failure",
        Some(0) => "QEMU quit",
        Some(_) => "QEMU error",
        None => "killed",
    }
}

/// Runs QEMU with `args` and the serial console captured. Stops at `timeout` (a hang is
/// reported, never waited out), or as soon as a line contains `stop_at`.
pub fn captured(args: &[String], timeout: Duration, stop_at: Option<&str>) -> Result<Outcome> {
    let mut child = Command::new("qemu-system-x86_64")
        .args(args)
        .args(["-serial", "stdio", "-monitor", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let (tx, rx) = mpsc::channel::<String>();
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
            let l = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx2.send(format!("[qemu stderr] {line}")).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut log = String::new();
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let stop = stop_at.is_some_and(|p| line.contains(p));
                log.push_str(&line);
                log.push('\n');
                if stop {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ok(Outcome {
                        status: None,
                        log,
                        timed_out: false,
                    });
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                let _ = child.kill();
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait()?.code();
    Ok(Outcome {
        status: if timed_out { None } else { status },
        log,
        timed_out,
    })
}
