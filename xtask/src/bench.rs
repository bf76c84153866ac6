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

/// Boots the benchmark kernel and prints the table.
pub fn run(baseline: Option<&str>) -> Result<()> {
    if let Some(b) = baseline {
        bail!("--baseline {b}: not available yet (only moxie's own figures are measured)");
    }
    let a = artifacts::build()?;
    let mut args = qemu::machine_args(1, true);
    args.extend(qemu::boot_args(
        &a,
        &a.moxie_elf,
        None,
        "log=warn bench=all",
    ));
    let o = qemu::captured(&args, Duration::from_secs(600), None)?;
    if o.status != Some(abi::qemu::ExitCode::Success.qemu_status()) {
        bail!(
            "the benchmark boot failed ({}):\n{}",
            qemu::describe(o.status),
            o.tail(30)
        );
    }
    let figures = parse(&o.log);
    println!("| benchmark | moxie | unit |");
    println!("|---|---:|---|");
    for f in &figures {
        println!("| {} | {} | {} |", f.key, f.value, f.unit);
    }
    Ok(())
}
