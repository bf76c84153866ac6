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
    nth_disk_args(disk, 0)
}

/// Like [`disk_args`], for the disk numbered `n` of a boot with several (each drive needs an
/// id of its own; the PCI scan finds the disks in the order of their flags).
pub fn nth_disk_args(disk: &Path, n: usize) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("if=none,id=disk{n},format=raw,file={}", disk.display()),
        "-device".into(),
        format!("virtio-blk-pci,drive=disk{n},disable-legacy=on"),
    ]
}

/// Boots with the serial console (and QEMU's monitor, Ctrl-A C) on this terminal. When
/// standard input is not a terminal (commands piped in), it is copied to the serial port
/// without the monitor, followed by Ctrl-D, which the shell takes as the end of input.
pub fn interactive(
    a: &Artifacts,
    iso: Option<&Path>,
    smp: u32,
    cmdline: &str,
    disk: &Path,
) -> Result<()> {
    use std::io::IsTerminal;
    let mut args = machine_args(smp, false);
    args.extend(boot_args(a, &a.moxie_elf, iso, cmdline));
    args.extend(disk_args(disk));
    let piped = !std::io::stdin().is_terminal();
    let status = if piped {
        args.extend([
            "-serial".into(),
            "stdio".into(),
            "-monitor".into(),
            "none".into(),
        ]);
        eprintln!("xtask: booting moxie; standard input goes to the serial console");
        let mut child = Command::new("qemu-system-x86_64")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting qemu-system-x86_64")?;
        let mut to_qemu = child.stdin.take().expect("piped");
        let mut from_qemu = child.stdout.take().expect("piped");
        let (up_tx, up_rx) = mpsc::channel::<()>();
        // The console's output, passed through; the input starts once the core is up (bytes
        // that reach the serial port before the core sets it up are lost).
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            let mut up = Some(up_tx);
            while let Ok(n) = from_qemu.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(&buf[..n]);
                let _ = o.flush();
                if up.is_some() {
                    seen.extend_from_slice(&buf[..n]);
                    if seen
                        .windows(INPUT_READY.len())
                        .any(|w| w == INPUT_READY.as_bytes())
                    {
                        let _ = up.take().map(|t| t.send(()));
                    }
                }
            }
        });
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = up_rx.recv();
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to_qemu);
            let _ = to_qemu.write_all(&[END_OF_INPUT]);
            let _ = to_qemu.flush();
            // Keep the pipe open: QEMU reads it as the guest drains the serial port.
            std::thread::park();
        });
        child.wait()?
    } else {
        args.extend(["-serial".into(), "mon:stdio".into()]);
        eprintln!("xtask: booting moxie (leave QEMU with Ctrl-A X)");
        Command::new("qemu-system-x86_64")
            .args(&args)
            .status()
            .context("starting qemu-system-x86_64")?
    };
    match status.code() {
        Some(c) if c == abi::qemu::ExitCode::Success.qemu_status() || c == 0 => Ok(()),
        Some(c) => anyhow::bail!("QEMU exited with status {c} ({})", describe(Some(c))),
        None => anyhow::bail!("QEMU was killed by a signal"),
    }
}

/// The byte sent after piped input: Ctrl-D, the shell's end of input.
pub const END_OF_INPUT: u8 = 0x04;
/// Piped input is sent once the console shows this (the serial port is set up by then).
pub const INPUT_READY: &str = "moxie core: up";

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
    captured_with_input(args, timeout, stop_at, None)
}

/// Like [`captured`], with `input` typed into the serial console (then kept open).
pub fn captured_with_input(
    args: &[String],
    timeout: Duration,
    stop_at: Option<&str>,
    input: Option<Vec<u8>>,
) -> Result<Outcome> {
    captured_killed_after(args, timeout, stop_at, Duration::ZERO, input)
}

/// Like [`captured_with_input`], but QEMU is killed (SIGKILL) `delay` after the line that
/// contains `stop_at`, still collecting the serial output until then: a crash at a point in
/// a run chosen by watching it.
pub fn captured_killed_after(
    args: &[String],
    timeout: Duration,
    stop_at: Option<&str>,
    delay: Duration,
    input: Option<Vec<u8>>,
) -> Result<Outcome> {
    let mut child = Command::new("qemu-system-x86_64")
        .args(args)
        .args(["-serial", "stdio", "-monitor", "none"])
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let stdin = child.stdin.take();
    let (up_tx, up_rx) = mpsc::channel::<()>();
    let mut up_tx = Some(up_tx);
    if let (Some(mut pipe), Some(bytes)) = (stdin, input) {
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = up_rx.recv();
            let _ = pipe.write_all(&bytes);
            let _ = pipe.flush();
            std::thread::park();
        });
    }
    let rx = console_lines(&mut child)?;
    let deadline = Instant::now() + timeout;
    let mut log = String::new();
    let mut timed_out = false;
    let mut kill_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if kill_at.is_some_and(|t| t <= now) {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Outcome {
                status: None,
                log,
                timed_out: false,
            });
        }
        let left = kill_at
            .unwrap_or(deadline)
            .min(deadline)
            .saturating_duration_since(now);
        match rx.recv_timeout(left) {
            Ok(line) => {
                if line.contains(INPUT_READY) {
                    let _ = up_tx.take().map(|t| t.send(()));
                }
                let stop = kill_at.is_none() && stop_at.is_some_and(|p| line.contains(p));
                log.push_str(&line);
                log.push('\n');
                if stop {
                    kill_at = Some(Instant::now() + delay);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if kill_at.is_some() => {}
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

/// The lines QEMU prints (the serial console on stdout, and stderr marked `[qemu stderr]`), as
/// they come, from two reader threads; the child's stdout and stderr must be piped.
pub fn console_lines(child: &mut std::process::Child) -> Result<mpsc::Receiver<String>> {
    let (tx, rx) = mpsc::channel::<String>();
    let out = child.stdout.take().context("QEMU's stdout is not piped")?;
    let err = child.stderr.take().context("QEMU's stderr is not piped")?;
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
    Ok(rx)
}
