//! `cargo xtask disk OUT.img`: the default root disk, a 264 MiB FAT32 image with 4 KiB
//! clusters made by `mkfs.fat` and filled with mtools: system programs in `/sbin`, other
//! programs in `/bin`, the files of `rootfs/etc/` in `/etc`, and an empty `/sys/suspended` for
//! suspended-process images. The file is sparse (a few MiB on the host's disk), and
//! [`copy_image`] keeps its copies so.
use crate::{artifacts, prereq};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Size of the image in KiB: FAT32 needs at least 65,525 clusters, which with 4 KiB clusters
/// is about 260 MiB (with mkfs.fat's default of 512 bytes for smaller volumes every cluster
/// of a file costs the driver its own FAT work: eight times as much).
const DISK_KIB: u64 = 264 * 1024;
/// Sectors per cluster: 4 KiB clusters, the size of the FAT driver's cache blocks.
const CLUSTER_SECTORS: &str = "8";
/// Programs that belong in `/sbin`: the ones the system itself runs.
const SYSTEM_PROGRAMS: &[&str] = &["init", "fs", "blk"];
/// Folders every root disk has.
const FOLDERS: &[&str] = &["/sbin", "/bin", "/etc", "/sys", "/sys/suspended"];

/// A host tool by name, also from the sbin folders (where `mkfs.fat` lives).
pub fn tool(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found (install dosfstools and mtools)"))
}

pub fn run(name: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(tool(name)?)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .with_context(|| format!("running {name}"))?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{name} {} failed:\n{text}", args.join(" "));
    }
    Ok(text)
}

/// Where a program goes on the disk.
fn place(program: &str) -> String {
    if SYSTEM_PROGRAMS.contains(&program) {
        format!("/sbin/{program}")
    } else {
        format!("/bin/{program}")
    }
}

/// Writes the image to `out`: `programs` are (name, ELF file), `etc` a folder whose files go
/// to `/etc`. Checks the result with `fsck.fat -n`.
pub fn make_image(out: &Path, programs: &[(&str, PathBuf)], etc: &Path) -> Result<()> {
    if out.exists() {
        std::fs::remove_file(out).with_context(|| format!("replacing {}", out.display()))?;
    }
    let img = out.to_str().context("image path is not UTF-8")?;
    // A fixed volume id, so the same inputs give the same image.
    run(
        "mkfs.fat",
        &[
            "-F",
            "32",
            "-s",
            CLUSTER_SECTORS,
            "-n",
            "MOXIE",
            "-i",
            "4d4f5849",
            "-C",
            img,
            &DISK_KIB.to_string(),
        ],
    )?;
    for f in FOLDERS {
        run("mmd", &["-i", img, &format!("::{f}")])?;
    }
    for (name, file) in programs {
        let src = file.to_str().context("program path is not UTF-8")?;
        run("mcopy", &["-i", img, src, &format!("::{}", place(name))])?;
    }
    let mut etc_files: Vec<PathBuf> = std::fs::read_dir(etc)
        .with_context(|| format!("reading {}", etc.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    etc_files.sort();
    for f in etc_files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .context("file name")?;
        let src = f.to_str().context("path is not UTF-8")?;
        run("mcopy", &["-i", img, src, &format!("::/etc/{name}")])?;
    }
    run("fsck.fat", &["-n", img])?;
    Ok(())
}

/// Copies the image `src` to `dst`, leaving out the runs of zeros so that the copy stays as
/// sparse as the original (`std::fs::copy` writes every byte: 264 MiB per copy of a disk
/// that holds a few).
pub fn copy_image(src: &Path, dst: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut from = std::fs::File::open(src).with_context(|| format!("{}", src.display()))?;
    let len = from.metadata()?.len();
    if dst.exists() {
        std::fs::remove_file(dst).with_context(|| format!("replacing {}", dst.display()))?;
    }
    let mut to = std::fs::File::create(dst).with_context(|| format!("{}", dst.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut at = 0u64;
    loop {
        let mut n = 0;
        while n < buf.len() {
            match from.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            to.seek(SeekFrom::Start(at))?;
            to.write_all(&buf[..n])?;
        }
        at += n as u64;
    }
    to.set_len(len)?;
    Ok(())
}

/// The built user programs, as `make_image` takes them (after `artifacts::build`).
fn built_programs() -> Result<Vec<(&'static str, PathBuf)>> {
    let dir = artifacts::out_dir()?;
    Ok(artifacts::USER_PROGRAMS
        .iter()
        .map(|&p| (p, dir.join(format!("{p}.elf"))))
        .collect())
}

/// Writes the default root disk to `out` (after `artifacts::build`).
pub fn write_default(out: &Path) -> Result<()> {
    make_image(out, &built_programs()?, &crate::root().join("rootfs/etc"))
}

/// `cargo xtask disk OUT.img`: builds the programs and writes the default root disk.
pub fn run_command(out: &Path) -> Result<()> {
    prereq::ensure_all()?;
    artifacts::build()?;
    write_default(out)?;
    println!("{}", out.display());
    Ok(())
}

/// The default root disk in `target/moxie/root.img` (after `artifacts::build`), written again
/// when it is missing or its inputs (the programs, `rootfs/etc`, the format) changed since it
/// was made; a stamp file beside it holds a hash of those inputs.
pub fn default_root_disk() -> Result<PathBuf> {
    let out = artifacts::out_dir()?.join("root.img");
    let stamp_path = out.with_extension("img.stamp");
    // The format too: a disk made before it changed is stale.
    let format = format!("{DISK_KIB} KiB, {CLUSTER_SECTORS} sectors per cluster");
    let mut inputs: Vec<(String, Vec<u8>)> = vec![("format".into(), format.into_bytes())];
    for (name, path) in built_programs()? {
        inputs.push((name.to_string(), std::fs::read(&path)?));
    }
    let etc = crate::root().join("rootfs/etc");
    let mut etc_files: Vec<PathBuf> = std::fs::read_dir(&etc)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    etc_files.sort();
    for f in etc_files {
        inputs.push((f.display().to_string(), std::fs::read(&f)?));
    }
    let stamp = format!("{:016x}\n", fnv1a(&inputs));
    let fresh =
        out.is_file() && std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp);
    if fresh {
        eprintln!("xtask: root disk {} is up to date", out.display());
    } else {
        eprintln!("xtask: writing the root disk {}", out.display());
        let _ = std::fs::remove_file(&stamp_path);
        write_default(&out)?;
        std::fs::write(&stamp_path, stamp)?;
    }
    Ok(out)
}

/// FNV-1a over names and contents: enough to notice that an input changed.
fn fnv1a(inputs: &[(String, Vec<u8>)]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, bytes) in inputs {
        for b in name.bytes().chain([0]).chain(bytes.iter().copied()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the FAT tools are here; under CI=true their absence fails the test.
    fn have_tools() -> bool {
        let ok = ["mkfs.fat", "fsck.fat", "mcopy", "mmd", "mdir"]
            .iter()
            .all(|t| tool(t).is_ok());
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "dosfstools and mtools are missing"
            );
            eprintln!("skipped: dosfstools and mtools are missing");
        }
        ok
    }

    /// Every module `rootfs/etc/init.conf` names by absolute path is where `cargo xtask disk`
    /// puts a program.
    #[test]
    fn init_conf_modules_are_on_the_disk() {
        let conf = std::fs::read_to_string(crate::root().join("rootfs/etc/init.conf")).unwrap();
        let mut seen = 0;
        for line in conf.lines().map(str::trim) {
            let mut words = line.split_whitespace();
            if words.next() != Some("service") {
                continue;
            }
            let module = words.nth(1).unwrap();
            let name = module.rsplit('/').next().unwrap();
            assert!(
                artifacts::USER_PROGRAMS.contains(&name),
                "{module}: no such program"
            );
            assert_eq!(place(name), module, "init.conf names {module}");
            seen += 1;
        }
        assert!(seen > 0, "no service in init.conf");
        // The core's default `init=` is where the disk has init.
        assert_eq!(place("init"), bootinfo::cmdline::DEFAULT_INIT);
    }

    #[test]
    fn root_disk_has_the_layout() {
        if !have_tools() {
            return;
        }
        let dir = crate::root().join("target/tmp/xtask-disk");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        let mut programs = Vec::new();
        for name in ["init", "fs", "probe"] {
            let p = dir.join(format!("{name}.elf"));
            std::fs::write(&p, format!("pretend ELF of {name}")).unwrap();
            programs.push((name, p));
        }
        std::fs::write(dir.join("etc/init.conf"), "# test config\n").unwrap();
        let img = dir.join("root.img");
        make_image(&img, &programs, &dir.join("etc")).unwrap();
        assert_eq!(std::fs::metadata(&img).unwrap().len(), DISK_KIB * 1024);
        // FAT32 with 4 KiB clusters (the boot sector's sectors per cluster and FAT size).
        let boot = std::fs::read(&img).unwrap()[..512].to_vec();
        assert_eq!(boot[13], 8, "sectors per cluster");
        assert_eq!(&boot[82..90], b"FAT32   ");
        // A copy holds the same bytes and stays sparse.
        let copy = dir.join("copy.img");
        copy_image(&img, &copy).unwrap();
        assert!(std::fs::read(&copy).unwrap() == std::fs::read(&img).unwrap());
        use std::os::unix::fs::MetadataExt;
        let used = std::fs::metadata(&copy).unwrap().blocks() * 512;
        assert!(used < 16 << 20, "the copy takes {used} bytes");
        let i = img.to_str().unwrap();
        let ls = |p: &str| run("mdir", &["-i", i, "-b", &format!("::{p}")]).unwrap();
        let root = ls("/");
        for f in ["sbin", "bin", "etc", "sys"] {
            assert!(
                root.lines().any(|l| l.ends_with(&format!("/{f}/"))),
                "{f} in:\n{root}"
            );
        }
        let sbin = ls("/sbin");
        assert!(
            sbin.contains("::/sbin/init") && sbin.contains("::/sbin/fs"),
            "{sbin}"
        );
        assert!(!sbin.contains("probe"), "{sbin}");
        assert!(ls("/bin").contains("::/bin/probe"));
        assert!(ls("/etc").contains("::/etc/init.conf"));
        assert!(ls("/sys").contains("::/sys/suspended/"));
        assert_eq!(
            ls("/sys/suspended").trim(),
            "",
            "/sys/suspended is not empty"
        );
        let out = dir.join("init.back");
        run(
            "mcopy",
            &["-n", "-i", i, "::/sbin/init", out.to_str().unwrap()],
        )
        .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"pretend ELF of init");
        let fsck = run("fsck.fat", &["-n", i]).unwrap();
        assert!(!fsck.contains("Dirty"), "{fsck}");
        // The repository's own /etc has init's configuration.
        assert!(crate::root().join("rootfs/etc/init.conf").is_file());
    }
}
