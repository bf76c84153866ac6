//! Builds moxie's boot artifacts under `target/moxie/`:
//!
//! | file | what |
//! |---|---|
//! | `kernel.elf` | the core with debug info (for `addr2line` on backtraces) |
//! | `core.img` | the core without debug info, LZ4-compressed in a `coreimg` container |
//! | `moxie.elf` | the boot stub with `core.img` inside: the file QEMU and GRUB boot |
//! | `bundle.cpio` | the boot bundle (cpio newc), passed as a multiboot module |
//! | `moxie.iso` | the GRUB ISO (`cargo xtask iso`) |
use anyhow::{Context, Result, bail};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths of the built artifacts.
pub struct Artifacts {
    /// The core with debug info.
    #[allow(dead_code)]
    pub kernel_elf: PathBuf,
    /// The compressed core container.
    pub core_img: PathBuf,
    /// The bootable stub.
    pub moxie_elf: PathBuf,
    /// The boot bundle.
    pub bundle: PathBuf,
}

/// `target/moxie`, created on demand.
pub fn out_dir() -> Result<PathBuf> {
    let d = crate::root().join("target").join("moxie");
    fs::create_dir_all(&d)?;
    Ok(d)
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(crate::root());
    c
}

fn cargo_build(package: &str, envs: &[(&str, &Path)]) -> Result<PathBuf> {
    let mut c = cargo();
    c.args([
        "build",
        "--release",
        "--quiet",
        "-p",
        package,
        "--target",
        "x86_64-unknown-none",
    ]);
    for (k, v) in envs {
        c.env(k, v);
    }
    if !c.status()?.success() {
        bail!("building {package} failed");
    }
    Ok(crate::root()
        .join("target/x86_64-unknown-none/release")
        .join(package))
}

fn strip_debug(from: &Path, to: &Path) -> Result<()> {
    let ok = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(from)
        .arg(to)
        .status()
        .context("running objcopy (package binutils)")?
        .success();
    if !ok {
        bail!("objcopy --strip-debug {} failed", from.display());
    }
    Ok(())
}

/// Builds everything `run` and `test` boot.
pub fn build() -> Result<Artifacts> {
    let out = out_dir()?;
    eprintln!("xtask: building the kernel core");
    let kernel = cargo_build("moxie-kernel", &[])?;
    let kernel_elf = out.join("kernel.elf");
    fs::copy(&kernel, &kernel_elf)?;
    let stripped = out.join("core.elf");
    strip_debug(&kernel, &stripped)?;
    let core = fs::read(&stripped)?;
    let packed = coreimg::pack(&core);
    let core_img = out.join("core.img");
    write_if_changed(&core_img, &packed)?;

    eprintln!("xtask: building the boot stub");
    let stub = cargo_build("moxie-stub", &[("MOXIE_CORE_IMAGE", &core_img)])?;
    let moxie_elf = out.join("moxie.elf");
    strip_debug(&stub, &moxie_elf)?;

    eprintln!("xtask: building the user programs");
    let mut programs = Vec::new();
    for name in USER_PROGRAMS {
        let built = cargo_build(name, &[])?;
        let stripped = out.join(format!("{name}.elf"));
        strip_debug(&built, &stripped)?;
        programs.push((format!("bin/{name}"), fs::read(&stripped)?));
    }
    if let Some((_, probe)) = programs.iter().find(|(n, _)| n == "bin/probe") {
        let bad = malformed_modules(probe)?;
        programs.extend(bad);
    }
    let bundle = out.join("bundle.cpio");
    write_if_changed(&bundle, &bundle_archive(&programs)?)?;
    Ok(Artifacts {
        kernel_elf,
        core_img,
        moxie_elf,
        bundle,
    })
}

/// Writes `bytes` unless the file already holds them (keeps cargo's change detection quiet).
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if fs::read(path).ok().as_deref() != Some(bytes) {
        fs::write(path, bytes)?;
    }
    Ok(())
}

/// Broken copies of a good module, for the in-kernel test that the loader refuses each with its
/// message: `bad/magic`, `bad/machine`, `bad/exec` (ET_EXEC), `bad/truncated`,
/// `bad/unknown-symbol`, `bad/wx` (a writable and executable segment).
fn malformed_modules(good: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut m = good.to_vec();
    m[0] ^= 0xff;
    out.push(("bad/magic".to_string(), m));
    let mut m = good.to_vec();
    m[18..20].copy_from_slice(&3u16.to_le_bytes());
    out.push(("bad/machine".to_string(), m));
    let mut m = good.to_vec();
    m[16..18].copy_from_slice(&2u16.to_le_bytes());
    out.push(("bad/exec".to_string(), m));
    out.push(("bad/truncated".to_string(), good[..200].to_vec()));
    let mut m = good.to_vec();
    let name = b"moxie_sys_null\0";
    let at = m
        .windows(name.len())
        .position(|w| w == name)
        .ok_or_else(|| anyhow::anyhow!("probe does not import moxie_sys_null"))?;
    m[at + name.len() - 2] = b'x';
    out.push(("bad/unknown-symbol".to_string(), m));
    let mut m = good.to_vec();
    let phoff = u64::from_le_bytes(m[32..40].try_into()?) as usize;
    let phnum = u16::from_le_bytes(m[56..58].try_into()?) as usize;
    let load = (0..phnum)
        .map(|i| phoff + i * 56)
        .find(|&at| u32::from_le_bytes(m[at..at + 4].try_into().unwrap_or_default()) == 1)
        .ok_or_else(|| anyhow::anyhow!("probe has no PT_LOAD"))?;
    m[load + 4..load + 8].copy_from_slice(&7u32.to_le_bytes());
    out.push(("bad/wx".to_string(), m));
    Ok(out)
}

/// The user programs packed into the boot bundle as `bin/NAME`.
pub const USER_PROGRAMS: &[&str] = &["init", "probe", "fs", "blk", "ramblk", "shell", "ticker"];

/// The boot bundle: a cpio "newc" archive of the modules the core spawns before any disk
/// exists (the block and filesystem drivers will join them), plus a manifest.
fn bundle_archive(programs: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let manifest = b"moxie boot bundle v1\n";
    let mut buf = Vec::new();
    let mut entries: Vec<(&str, &[u8])> = vec![("MANIFEST", manifest)];
    entries.extend(programs.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    for (ino, (name, bytes)) in entries.into_iter().enumerate() {
        let mut w = cpio::newc::Builder::new(name)
            .ino(ino as u32 + 1)
            .mode(0o100644)
            .nlink(1)
            .write(&mut buf, bytes.len() as u32);
        w.write_all(bytes)?;
        w.finish()?;
    }
    cpio::newc::trailer(&mut buf)?;
    Ok(buf)
}

/// Writes a fresh scratch disk (`target/moxie/NAME`, `abi::qemu::SCRATCH_DISK_BYTES`, every
/// byte from `abi::qemu::scratch_disk_byte`) for the in-QEMU block-driver cases, which read its
/// known contents and write over parts of it.
pub fn scratch_disk(name: &str) -> Result<PathBuf> {
    let path = out_dir()?.join(name);
    let sectors = abi::qemu::SCRATCH_DISK_BYTES / 512;
    let mut bytes = Vec::with_capacity(abi::qemu::SCRATCH_DISK_BYTES as usize);
    for s in 0..sectors {
        bytes.extend((0..512).map(|i| abi::qemu::scratch_disk_byte(s, i)));
    }
    fs::write(&path, bytes)?;
    Ok(path)
}

/// Builds the GRUB ISO that boots `moxie.elf` through multiboot2 with `cmdline`.
pub fn iso(a: &Artifacts, cmdline: &str) -> Result<PathBuf> {
    let out = out_dir()?;
    let tree = out.join("iso");
    let _ = fs::remove_dir_all(&tree);
    fs::create_dir_all(tree.join("boot/grub"))?;
    fs::copy(&a.moxie_elf, tree.join("boot/moxie.elf"))?;
    fs::copy(&a.bundle, tree.join("boot/bundle.cpio"))?;
    fs::write(
        tree.join("boot/grub/grub.cfg"),
        format!(
            "set timeout=0\nset default=0\n\nmenuentry \"moxie\" {{\n    multiboot2 /boot/moxie.elf {cmdline}\n    module2 /boot/bundle.cpio bundle\n    boot\n}}\n"
        ),
    )?;
    let iso = out.join("moxie.iso");
    eprintln!("xtask: building the GRUB ISO");
    let o = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&iso)
        .arg(&tree)
        .output()
        .context("running grub-mkrescue")?;
    if !o.status.success() {
        bail!(
            "grub-mkrescue failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(iso)
}
