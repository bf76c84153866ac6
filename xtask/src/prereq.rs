//! Installs what moxie's build and tests need when it is missing, and says so.
//!
//! Debian/Ubuntu packages go through `apt-get` (as root, or through `sudo -n` when that works
//! without a password); the Rust target through `rustup`. Anything that cannot be installed is an
//! error that names the command to run by hand.
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// (program or file that must exist, Debian package that provides it)
const BUILD_TOOLS: &[(&str, &str)] = &[("objcopy", "binutils")];
const RUN_TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("grub-mkrescue", "grub-common"),
    ("/usr/lib/grub/i386-pc/multiboot2.mod", "grub-pc-bin"),
    ("xorriso", "xorriso"),
    ("mformat", "mtools"),
    ("mcopy", "mtools"),
    // The FAT driver's host tests and `cargo xtask disk` make, fill and check images with these.
    ("mkfs.fat", "dosfstools"),
    ("fsck.fat", "dosfstools"),
];

fn present(tool: &str) -> bool {
    if tool.starts_with('/') {
        return Path::new(tool).exists();
    }
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file())
            || ["/usr/sbin", "/sbin"]
                .iter()
                .any(|d| Path::new(d).join(tool).is_file())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn apt_install(packages: &[&str]) -> Result<()> {
    let (prog, pre): (&str, &[&str]) = if is_root() {
        ("apt-get", &[])
    } else if Command::new("sudo")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        ("sudo", &["-n", "apt-get"])
    } else {
        bail!(
            "missing packages {}: run `sudo apt-get install -y {}` and try again",
            packages.join(" "),
            packages.join(" ")
        );
    };
    eprintln!("xtask: installing {} with apt-get", packages.join(" "));
    let run = |args: &[&str]| -> Result<bool> {
        Ok(Command::new(prog)
            .args(pre)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .with_context(|| format!("running {prog}"))?
            .success())
    };
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend_from_slice(packages);
    if !run(&install)? {
        eprintln!("xtask: apt-get install failed; refreshing the package lists and retrying");
        if !run(&["update", "-q"])? || !run(&install)? {
            bail!("apt-get could not install {}", packages.join(" "));
        }
    }
    Ok(())
}

fn ensure(tools: &[(&str, &str)]) -> Result<()> {
    let mut missing: Vec<&str> = tools
        .iter()
        .filter(|(t, _)| !present(t))
        .map(|&(_, p)| p)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    Ok(())
}

fn ensure_rust_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match out {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("x86_64-unknown-none") => Ok(()),
        Ok(_) => {
            eprintln!("xtask: installing the Rust target x86_64-unknown-none with rustup");
            let ok = Command::new("rustup")
                .args(["target", "add", "x86_64-unknown-none"])
                .status()?
                .success();
            if !ok {
                bail!(
                    "rustup could not add x86_64-unknown-none; run `rustup target add x86_64-unknown-none`"
                );
            }
            Ok(())
        }
        // Without rustup, trust the toolchain (the build will say if the target is missing).
        Err(_) => Ok(()),
    }
}

/// What `cargo xtask build` needs.
pub fn ensure_build_tools() -> Result<()> {
    ensure_rust_target()?;
    ensure(BUILD_TOOLS)
}

/// What `cargo xtask image pull` needs: mtools, to read a FAT disk image.
pub fn ensure_fat_tools() -> Result<()> {
    ensure(&[("mdir", "mtools"), ("mcopy", "mtools")])
}

/// What booting and testing need.
pub fn ensure_all() -> Result<()> {
    ensure_build_tools()?;
    ensure(RUN_TOOLS)
}
