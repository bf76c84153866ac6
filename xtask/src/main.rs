//! `cargo xtask`: the only way to build, boot, test and measure moxie.
//!
//! | command | what it does |
//! |---|---|
//! | `cargo xtask build` | builds the core, packs it, builds the stub around it, builds the boot bundle |
//! | `cargo xtask run` | builds, then boots moxie in QEMU with the serial console on this terminal |
//! | `cargo xtask iso` | builds the GRUB (multiboot2) ISO |
//! | `cargo xtask test` | host tests, lints, then every in-QEMU suite; ends with `N passed, N failed` |
//! | `cargo xtask bench` | boots under `-icount` and prints the in-guest benchmark table |
//! | `cargo xtask disk OUT.img` | writes the default root disk: a FAT32 image with `/sbin`, `/bin`, `/etc`, `/sys/suspended` |
//! | `cargo xtask image inspect\|verify\|pull\|make-sample ...` | suspended-process images on the host (`image.rs`) |
//!
//! Each command first installs what is missing (QEMU, GRUB tools, xorriso, mtools, dosfstools
//! through apt-get when run as root; the Rust target through rustup) and says so.
mod artifacts;
mod bench;
mod disk;
mod diskcases;
mod image;
mod linux_baseline;
mod prereq;
mod qemu;
mod suspendcases;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, boot, test and measure moxie")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the bootable kernel (stub + compressed core) and the boot bundle.
    Build,
    /// Build and boot moxie in QEMU; the serial console is this terminal (Ctrl-A X quits).
    Run {
        /// Number of CPUs.
        #[arg(long, default_value_t = 1)]
        smp: u32,
        /// Boot the GRUB ISO (multiboot2) instead of QEMU's -kernel (multiboot v1).
        #[arg(long)]
        iso: bool,
        /// Boot with this FAT32 image as the root disk instead of the default one (which is
        /// built into target/moxie/root.img when missing or stale).
        #[arg(long, value_name = "FILE")]
        disk: Option<PathBuf>,
        /// Extra kernel command-line words, e.g. `log=debug`.
        cmdline: Vec<String>,
    },
    /// Build the GRUB ISO (target/moxie/moxie.iso).
    Iso,
    /// Run every test: host unit tests, lints, in-QEMU suites.
    Test {
        /// Only run in-QEMU suites and boot cases whose name contains this text.
        #[arg(long)]
        only: Option<String>,
        /// Skip the host tests and lints.
        #[arg(long)]
        no_host: bool,
        /// Only these in-kernel cases (names, `prefix*`, comma-separated), on one CPU under
        /// -icount and on two CPUs; nothing else runs.
        #[arg(long)]
        cases: Option<String>,
    },
    /// Write the default root disk (264 MiB FAT32, 4 KiB clusters: /sbin, /bin, /etc,
    /// /sys/suspended) to a file.
    Disk {
        /// The image file to write (replaced if it exists).
        out: PathBuf,
    },
    /// Inspect, verify or pull suspended-process images (/sys/suspended/*.img), or write a sample.
    Image {
        #[command(subcommand)]
        action: image::Action,
    },
    /// Boot under -icount and print the benchmark table.
    Bench {
        /// Also measure a peer kernel in the same emulator (`linux`).
        #[arg(long)]
        baseline: Option<String>,
        /// Measure only one group: `disk` (the root-disk boots: file I/O and boot to shell).
        #[arg(long)]
        only: Option<String>,
    },
}

/// The repository root (the parent of this crate).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository")
        .to_path_buf()
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Build => {
            prereq::ensure_build_tools()?;
            artifacts::build()?;
        }
        Command::Run {
            smp,
            iso,
            disk,
            cmdline,
        } => {
            prereq::ensure_all()?;
            let a = artifacts::build()?;
            let disk = match disk {
                Some(d) if d.is_file() => d,
                Some(d) => anyhow::bail!("no disk image {}", d.display()),
                None => disk::default_root_disk()?,
            };
            let iso_path = if iso {
                Some(artifacts::iso(&a, &cmdline.join(" "))?)
            } else {
                None
            };
            qemu::interactive(&a, iso_path.as_deref(), smp, &cmdline.join(" "), &disk)?;
        }
        Command::Iso => {
            prereq::ensure_all()?;
            let a = artifacts::build()?;
            let iso = artifacts::iso(&a, "")?;
            println!("{}", iso.display());
        }
        Command::Test {
            only,
            no_host,
            cases,
        } => {
            prereq::ensure_all()?;
            let ok = match cases {
                Some(c) => test::run_cases(&c)?,
                None => test::run(only.as_deref(), no_host)?,
            };
            if !ok {
                std::process::exit(1);
            }
        }
        Command::Disk { out } => disk::run_command(&out)?,
        Command::Image { action } => {
            if !image::run(action)? {
                std::process::exit(1);
            }
        }
        Command::Bench { baseline, only } => {
            prereq::ensure_all()?;
            bench::run(baseline.as_deref(), only.as_deref())?;
        }
    }
    Ok(())
}
