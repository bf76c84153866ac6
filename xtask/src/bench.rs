//! `cargo xtask bench`: boots moxie under `-icount shift=0,sleep=off`, where the TSC counts guest
//! instructions, collects the `bench:` lines the core prints and shows them as a table.
use crate::artifacts;
use crate::qemu;
use anyhow::{Result, bail};
use std::time::Duration;

/// One figure.
pub struct Figure {
    /// Benchmark key.
    pub key: String,
    /// Value.
    pub value: u64,
    /// Unit.
    pub unit: String,
}

/// Parses `bench: KEY VALUE UNIT` lines.
pub fn parse(log: &str) -> Vec<Figure> {
    log.lines()
        .filter_map(|l| l.find("bench: ").map(|at| &l[at + "bench: ".len()..]))
        .filter_map(|rest| {
            let mut w = rest.split_whitespace();
            let key = w.next()?.to_string();
            let value = w.next()?.parse().ok()?;
            let unit = w.next().unwrap_or("").to_string();
            Some(Figure { key, value, unit })
        })
        .collect()
}

/// Operations measured side by side: (label, moxie key, Linux key).
const ROWS: &[(&str, &str, &str)] = &[
    (
        "null system call (Linux: getppid)",
        "null_syscall",
        "null_syscall",
    ),
    (
        "round trip 8 B (moxie channel, Linux pipe)",
        "channel_rt_8",
        "pipe_rt_8",
    ),
    (
        "round trip 256 B (moxie channel, Linux pipe)",
        "channel_rt_256",
        "pipe_rt_256",
    ),
    (
        "round trip 4 KiB (moxie channel, Linux pipe)",
        "channel_rt_4096",
        "pipe_rt_4096",
    ),
    (
        "round trip 8 B, moxie send_recv on both sides (Linux pipe)",
        "channel_call_rt_8",
        "pipe_rt_8",
    ),
    (
        "portal call and return, 4 words in, 2 out (Linux pipe 8 B round trip)",
        "portal_rt",
        "pipe_rt_8",
    ),
    (
        "round trip 8 B (Linux Unix socket)",
        "channel_rt_8",
        "unix_rt_8",
    ),
    ("park/wake ping-pong (Linux futex)", "park_rt", "futex_rt"),
    (
        "thread create + join (Linux pthread_create + pthread_join)",
        "thread_create_join",
        "thread_create_join",
    ),
    (
        "spawn + exit + death report (Linux fork + exit + wait)",
        "spawn_exit",
        "fork_exit_wait",
    ),
    ("yield ping-pong", "yield_rt", "yield_rt"),
    (
        "first touch of a fresh page",
        "page_first_touch",
        "page_first_touch",
    ),
    (
        "16 MiB write + fsync, per MiB",
        "file_write_16m_fsync",
        "file_write_16m_fsync",
    ),
    ("16 MiB read, per MiB", "file_read_16m", "file_read_16m"),
    (
        "4 KiB random reads, per MiB",
        "file_read_4k_random",
        "file_read_4k_random",
    ),
];

/// The shell prompt's first line.
const SHELL_UP: &str = "moxie shell: type help";

/// The root-disk figures: a boot from a copy of the default root disk under `-icount` into
/// the shell, whose `diskbench` prints `boot_to_shell` (the shell's first instruction, in
/// instructions since the core's clock started), `file_write_16m_fsync`, `file_read_16m` and
/// `file_read_4k_random` (instructions per MiB); and the wall time to the shell prompt of a
/// boot without `-icount` (the machine `cargo xtask run` uses), from QEMU's start.
fn disk_figures(a: &artifacts::Artifacts) -> Result<Vec<Figure>> {
    let root = crate::disk::default_root_disk()?;
    let disk = artifacts::out_dir()?.join("root-bench.img");
    crate::disk::copy_image(&root, &disk)?;
    // The default log level: the console input starts at the core's "up" line (info).
    let mut args = qemu::machine_args(1, true);
    args.extend(qemu::boot_args(a, &a.moxie_elf, None, ""));
    args.extend(qemu::disk_args(&disk));
    let script = b"diskbench /bench.bin\npoweroff\n".to_vec();
    let o = qemu::captured_with_input(&args, Duration::from_secs(600), None, Some(script))?;
    let mut figures = parse(&o.log);
    if o.status != Some(abi::qemu::ExitCode::Success.qemu_status()) || figures.len() < 8 {
        bail!(
            "the disk benchmark boot failed ({}):\n{}",
            qemu::describe(o.status),
            o.tail(30)
        );
    }
    crate::disk::copy_image(&root, &disk)?;
    let mut args = qemu::machine_args(1, false);
    args.extend(qemu::boot_args(a, &a.moxie_elf, None, "log=warn"));
    args.extend(qemu::disk_args(&disk));
    let started = std::time::Instant::now();
    let o = qemu::captured(&args, Duration::from_secs(120), Some(SHELL_UP))?;
    let took = started.elapsed();
    if !o.log.contains(SHELL_UP) {
        bail!("the boot to the shell failed:\n{}", o.tail(30));
    }
    figures.push(Figure {
        key: "boot_to_shell_wall".into(),
        value: took.as_millis() as u64,
        unit: "ms".into(),
    });
    Ok(figures)
}

/// Suspend/resume round trips on a fresh FAT volume: instruction counts from a boot under
/// `-icount`, wall times (the `_ns` rows) from a boot without it.
fn suspend_figures(a: &artifacts::Artifacts) -> Result<Vec<Figure>> {
    let mut out = Vec::new();
    for icount in [true, false] {
        let disk = artifacts::out_dir()?.join("suspend-bench.img");
        crate::disk::make_image(&disk, &[], &crate::root().join("rootfs/etc"))?;
        let mut args = qemu::machine_args(1, icount);
        args.extend(qemu::boot_args(
            a,
            &a.moxie_elf,
            None,
            "log=warn bench=suspend",
        ));
        args.extend(qemu::disk_args(&disk));
        let o = qemu::captured(&args, Duration::from_secs(600), None)?;
        if o.status != Some(abi::qemu::ExitCode::Success.qemu_status()) {
            bail!(
                "the suspend benchmark boot failed ({}):\n{}",
                qemu::describe(o.status),
                o.tail(30)
            );
        }
        for l in o
            .log
            .lines()
            .filter(|l| l.contains("bench: ") && l.contains("failed"))
        {
            eprintln!("xtask: {l}");
        }
        out.extend(
            parse(&o.log)
                .into_iter()
                .filter(|f| (f.unit == "ns") != icount),
        );
    }
    Ok(out)
}

/// Boots the benchmark kernel and prints the table; with `--baseline linux`, also the Linux
/// column measured under exactly the same QEMU flags. `--only disk` runs the root-disk boots
/// alone (the file figures, without the minutes of the other boots), `--only suspend` the
/// suspend round trips.
pub fn run(baseline: Option<&str>, only: Option<&str>) -> Result<()> {
    if let Some(b) = baseline.filter(|b| *b != "linux") {
        bail!("--baseline {b}: unknown peer (the only one is `linux`)");
    }
    if let Some(o) = only.filter(|o| !["disk", "suspend"].contains(o)) {
        bail!("--only {o}: unknown group (`disk` or `suspend`)");
    }
    let a = artifacts::build()?;
    let figures = match only {
        Some("disk") => disk_figures(&a)?,
        Some(_) => suspend_figures(&a)?,
        None => all_figures(&a)?,
    };
    println!("| benchmark | moxie | unit |");
    println!("|---|---:|---|");
    for f in &figures {
        println!("| {} | {} | {} |", f.key, f.value, f.unit);
    }
    if baseline.is_some() {
        let machine = qemu::machine_args(1, true);
        let linux = crate::linux_baseline::run(&crate::root(), &machine)?;
        println!();
        println!("| operation | moxie | Linux | moxie / Linux |");
        println!("|---|---:|---:|---:|");
        for (label, mk, lk) in ROWS {
            let m = figures.iter().find(|f| f.key == *mk);
            let l = linux.iter().find(|f| f.key == *lk);
            let show = |v: Option<(u64, &str)>| match v {
                Some((v, u)) => format!("{v} {u}"),
                None => "not yet".to_string(),
            };
            let ratio = match (m, l) {
                (Some(m), Some(l)) if l.value > 0 => {
                    format!("{:.2}", m.value as f64 / l.value as f64)
                }
                _ => "—".to_string(),
            };
            println!(
                "| {label} | {} | {} | {ratio} |",
                show(m.map(|f| (f.value, f.unit.as_str()))),
                show(l.map(|f| (f.value, f.unit.as_str())))
            );
        }
    }
    Ok(())
}

/// Every figure: the benchmark boot, the cross-core boot and the root-disk boots.
fn all_figures(a: &artifacts::Artifacts) -> Result<Vec<Figure>> {
    let mut args = qemu::machine_args(1, true);
    args.extend(qemu::boot_args(a, &a.moxie_elf, None, "log=warn bench=all"));
    let o = qemu::captured(&args, Duration::from_secs(600), None)?;
    if o.status != Some(abi::qemu::ExitCode::Success.qemu_status()) {
        bail!(
            "the benchmark boot failed ({}):\n{}",
            qemu::describe(o.status),
            o.tail(30)
        );
    }
    let mut figures = parse(&o.log);
    // Cross-core figures need a second CPU (still under -icount: exact and repeatable).
    let mut args = qemu::machine_args(2, true);
    args.extend(qemu::boot_args(
        a,
        &a.moxie_elf,
        None,
        "log=warn bench=crosscore",
    ));
    let o = qemu::captured(&args, Duration::from_secs(600), None)?;
    if o.status != Some(abi::qemu::ExitCode::Success.qemu_status()) {
        bail!(
            "the cross-core benchmark boot failed ({}):\n{}",
            qemu::describe(o.status),
            o.tail(30)
        );
    }
    figures.extend(parse(&o.log));
    figures.extend(suspend_figures(a)?);
    figures.extend(disk_figures(a)?);
    Ok(figures)
}
