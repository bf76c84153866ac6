//! Linux baseline for `cargo xtask bench --baseline linux`.
//!
//! Measures the same operations as moxie's benchmarks on a stock Debian kernel, so
//! the two can be compared figure by figure. The recipe (see `bench/linux/README.md`):
//!
//! 1. Make sure the host has what it needs, installing missing Debian packages with
//!    `apt-get` (and saying so on stderr): `linux-image-amd64` for `/boot/vmlinuz-*`,
//!    `busybox-static`, `gcc` and `libc6-dev` for static C programs.
//! 2. Compile `bench/linux/linuxbench.c` with `gcc -static -O2`.
//! 3. Write an uncompressed newc initramfs: busybox with its applet links,
//!    `bench/linux/init` as `/init`, the benchmark program, and the kernel modules
//!    the kernel does not have built in (virtio-pci, virtio-blk, ext4 and what
//!    they depend on, from `modules.dep`) with `/etc/modules` listing them in load
//!    order.
//! 4. Boot the newest `/boot/vmlinuz-*` in QEMU with the caller's flags (which
//!    include `-icount shift=0,sleep=off`, so one TSC tick is one guest
//!    instruction) plus a fresh raw virtio-blk disk and, unless the caller set
//!    them, `-seed 1 -rtc base=…,clock=vm -boot strict=on` for reproducible
//!    counts; capture the serial console and parse its `LINUXBENCH key value
//!    unit` lines.
//!
//! Every build output lives under `target/linux-baseline/`; the serial log of the
//! last run is kept there as `serial.log`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// One measured figure from the Linux guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxFigure {
    /// Benchmark key, e.g. `null_syscall`.
    pub key: String,
    /// Guest instructions per operation (or per MiB for the file figures).
    pub value: u64,
    /// `instr` or `instr/MiB`.
    pub unit: String,
}

/// The figures the guest must print, in the order they are returned.
const KEYS: &[&str] = &[
    "null_syscall",
    "pipe_rt_8",
    "pipe_rt_256",
    "pipe_rt_4096",
    "futex_rt",
    "thread_create_join",
    "unix_rt_8",
    "fork_exit_wait",
    "yield_rt",
    "page_first_touch",
    "file_write_16m_fsync",
    "file_read_16m",
];

/// Kernel command line. `panic=-1` reboots at once on a panic, which `-no-reboot`
/// turns into QEMU exiting.
const APPEND: &str = "console=ttyS0 quiet panic=-1";
/// Hard limit on the whole QEMU run.
const QEMU_TIMEOUT: Duration = Duration::from_secs(600);
/// Size of the scratch virtio-blk disk (formatted as ext2 by the guest).
const DISK_BYTES: u64 = 64 << 20;
/// Statically linked busybox from the `busybox-static` package.
const BUSYBOX: &str = "/bin/busybox";
/// Present when `libc6-dev` (static glibc) is installed.
const LIBC_A: &str = "/usr/lib/x86_64-linux-gnu/libc.a";
/// Kernel features the guest needs and the module that provides each one when
/// it is not built in, in load order (ext4 wants crc32c at mount time but only
/// names it as a soft dependency, so it is listed explicitly before ext4).
const NEEDED: &[(&str, &str)] = &[
    ("CONFIG_CRYPTO_CRC32C", "crc32c_generic"),
    ("CONFIG_VIRTIO_PCI", "virtio_pci"),
    ("CONFIG_VIRTIO_BLK", "virtio_blk"),
    ("CONFIG_EXT4_FS", "ext4"),
];

/// Builds the initramfs (installing missing Debian packages first, saying so on stderr), boots the
/// Debian kernel in QEMU with `qemu_flags` plus its own -kernel/-initrd/-append/-drive, parses the figures.
pub fn run(root: &Path, qemu_flags: &[String]) -> Result<Vec<LinuxFigure>> {
    let out = root.join("target").join("linux-baseline");
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    ensure_host_packages()?;
    let kernel = newest_kernel()?;
    let modules = kernel.needed_modules()?;
    let bench = compile_bench(root, &out)?;

    let initramfs = out.join("initramfs.cpio");
    write_initramfs(root, &initramfs, &bench, &modules)?;

    let disk = out.join("disk.img");
    let f = fs::File::create(&disk).with_context(|| format!("creating {}", disk.display()))?;
    f.set_len(DISK_BYTES)
        .with_context(|| format!("sizing {}", disk.display()))?;
    drop(f);

    eprintln!(
        "linux-baseline: booting Linux {} under QEMU (instruction counting; this takes a few minutes)",
        kernel.version
    );
    let started = Instant::now();
    let serial_log = out.join("serial.log");
    let log = boot(qemu_flags, &kernel.image, &initramfs, &disk, &serial_log)?;
    let figures = parse_figures(&log)?;
    eprintln!(
        "linux-baseline: QEMU run took {:.0} s (serial log: {})",
        started.elapsed().as_secs_f64(),
        serial_log.display()
    );
    Ok(figures)
}

// ---- Host packages ---------------------------------------------------------

/// Installs the Debian packages behind whatever the baseline needs and lacks.
fn ensure_host_packages() -> Result<()> {
    let mut missing = Vec::new();
    if kernel_images()?.is_empty() {
        missing.push("linux-image-amd64");
    }
    if !is_static_elf(Path::new(BUSYBOX)) {
        missing.push("busybox-static");
    }
    if !command_works("gcc", &["--version"]) {
        missing.push("gcc");
    }
    if !Path::new(LIBC_A).exists() {
        missing.push("libc6-dev");
    }
    apt_install(&missing)?;
    if !is_static_elf(Path::new(BUSYBOX)) {
        bail!("{BUSYBOX} is missing or not statically linked even after installing busybox-static");
    }
    Ok(())
}

/// `apt-get install`s `pkgs`, running `apt-get update` and retrying once if that fails.
fn apt_install(pkgs: &[&str]) -> Result<()> {
    if pkgs.is_empty() {
        return Ok(());
    }
    eprintln!(
        "linux-baseline: installing missing Debian packages: {}",
        pkgs.join(" ")
    );
    let apt = |args: &[&str]| -> Result<bool> {
        // apt's progress goes to stderr so that stdout stays the caller's.
        let stdout = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating stderr")?;
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .status()
            .context("running apt-get (is this a Debian host?)")?;
        Ok(status.success())
    };
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend_from_slice(pkgs);
    if apt(&install)? {
        return Ok(());
    }
    eprintln!("linux-baseline: apt-get install failed; running apt-get update and retrying");
    if !apt(&["update"])? {
        bail!("apt-get update failed");
    }
    if !apt(&install)? {
        bail!("apt-get install {} failed", pkgs.join(" "));
    }
    Ok(())
}

fn command_works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `path` is a 64-bit ELF file without a `PT_INTERP` program header.
fn is_static_elf(path: &Path) -> bool {
    let Ok(data) = fs::read(path) else {
        return false;
    };
    let u16_at = |o: usize| {
        data.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        data.get(o..o + 4)
            .is_some_and(|b| u32::from_le_bytes(b.try_into().unwrap()) != PT_INTERP)
    })
}

// ---- Kernel and modules ----------------------------------------------------

/// The Debian kernel to boot.
struct Kernel {
    /// `uname -r`, e.g. `6.1.0-26-amd64`.
    version: String,
    /// `/boot/vmlinuz-<version>`.
    image: PathBuf,
}

/// A kernel module to put in the initramfs.
struct Module {
    /// Name as insmod'ed, e.g. `virtio_blk.ko`.
    file_name: String,
    /// Uncompressed contents.
    data: Vec<u8>,
}

/// All `/boot/vmlinuz-*` images as (version, path).
fn kernel_images() -> Result<Vec<(String, PathBuf)>> {
    let mut images = Vec::new();
    let entries = match fs::read_dir("/boot") {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(images),
        Err(e) => return Err(e).context("listing /boot"),
    };
    for entry in entries {
        let entry = entry.context("listing /boot")?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(version) = name.strip_prefix("vmlinuz-") {
            images.push((version.to_string(), entry.path()));
        }
    }
    Ok(images)
}

fn newest_kernel() -> Result<Kernel> {
    let (version, image) = kernel_images()?
        .into_iter()
        .max_by(|a, b| version_cmp(&a.0, &b.0))
        .ok_or_else(|| anyhow!("no /boot/vmlinuz-* even after installing linux-image-amd64"))?;
    Ok(Kernel { version, image })
}

/// Compares version strings piecewise, numbers numerically (`6.10.0` > `6.9.0`).
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn pieces(s: &str) -> Vec<(bool, &str)> {
        let mut v = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                v.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        v
    }
    let (pa, pb) = (pieces(a), pieces(b));
    for (x, y) in pa.iter().zip(&pb) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    pa.len().cmp(&pb.len())
}

/// Module name as the kernel sees it: file name without `.ko[.xz|.zst|.gz]`, `-` as `_`.
fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|suffix| base.strip_suffix(suffix))
        .unwrap_or(base);
    base.replace('-', "_")
}

impl Kernel {
    /// The modules (dependencies first) that provide what [`NEEDED`] lists and the
    /// kernel does not have built in.
    fn needed_modules(&self) -> Result<Vec<Module>> {
        let config_path = PathBuf::from(format!("/boot/config-{}", self.version));
        let config = fs::read_to_string(&config_path).ok();
        let mod_dir = PathBuf::from(format!("/lib/modules/{}", self.version));

        let mut wanted = Vec::new();
        for &(option, module) in NEEDED {
            let setting = config.as_ref().map(|c| {
                c.lines()
                    .find_map(|l| l.strip_prefix(option)?.strip_prefix('='))
                    .unwrap_or("n")
            });
            match setting {
                Some("y") => {}
                Some("m") | None => wanted.push(module),
                Some(other) => bail!(
                    "Linux {} has {option}={other} in {}; the baseline needs it built in or as a module",
                    self.version,
                    config_path.display()
                ),
            }
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }

        let dep_path = mod_dir.join("modules.dep");
        let dep_text = fs::read_to_string(&dep_path).with_context(|| {
            format!(
                "reading {} (is linux-image-{} installed?)",
                dep_path.display(),
                self.version
            )
        })?;
        // name -> (path, dependency paths)
        let mut deps: HashMap<String, (String, Vec<String>)> = HashMap::new();
        for line in dep_text.lines() {
            let Some((path, rest)) = line.split_once(':') else {
                continue;
            };
            let list = rest.split_whitespace().map(str::to_string).collect();
            deps.insert(module_name(path), (path.to_string(), list));
        }
        let builtin = fs::read_to_string(mod_dir.join("modules.builtin")).unwrap_or_default();
        let builtin: HashSet<String> = builtin.lines().map(module_name).collect();

        let mut order = Vec::new();
        let mut seen = HashSet::new();
        fn visit(
            name: &str,
            deps: &HashMap<String, (String, Vec<String>)>,
            seen: &mut HashSet<String>,
            order: &mut Vec<String>,
        ) -> Result<()> {
            if !seen.insert(name.to_string()) {
                return Ok(());
            }
            let (path, list) = deps
                .get(name)
                .ok_or_else(|| anyhow!("module {name} is not in modules.dep"))?;
            for dep in list {
                visit(&module_name(dep), deps, seen, order)?;
            }
            order.push(path.clone());
            Ok(())
        }
        for name in wanted {
            if deps.contains_key(name) {
                visit(name, &deps, &mut seen, &mut order)?;
            } else if config.is_some() || !builtin.contains(name) {
                bail!(
                    "Linux {}: module {name} not found in {}",
                    self.version,
                    dep_path.display()
                );
            }
        }

        order
            .iter()
            .map(|rel| {
                let path = mod_dir.join(rel);
                Ok(Module {
                    file_name: format!("{}.ko", module_name(rel)),
                    data: read_module(&path)?,
                })
            })
            .collect()
    }
}

/// Reads a kernel module, decompressing `.ko.xz`, `.ko.zst` and `.ko.gz` with the
/// host tools (busybox insmod in the guest only takes plain `.ko` reliably).
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let (tool, package) = if name.ends_with(".xz") {
        ("xz", "xz-utils")
    } else if name.ends_with(".zst") {
        ("zstd", "zstd")
    } else if name.ends_with(".gz") {
        ("gzip", "gzip")
    } else {
        return fs::read(path).with_context(|| format!("reading {}", path.display()));
    };
    if !command_works(tool, &["--version"]) {
        apt_install(&[package])?;
    }
    let output = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {tool} -dc {}", path.display()))?;
    if !output.status.success() {
        bail!(
            "{tool} -dc {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

// ---- Guest programs and initramfs ------------------------------------------

/// Compiles the benchmark program statically; returns the binary's path.
fn compile_bench(root: &Path, out: &Path) -> Result<PathBuf> {
    let src = root.join("bench").join("linux").join("linuxbench.c");
    let bin = out.join("linuxbench");
    let output = Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-pthread", "-o"])
        .arg(&bin)
        .arg(&src)
        .stdin(Stdio::null())
        .output()
        .context("running gcc")?;
    if !output.status.success() {
        bail!(
            "gcc -static {} failed:\n{}",
            src.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(bin)
}

/// A newc archive being written, with the directories it already holds.
struct Cpio {
    w: BufWriter<fs::File>,
    ino: u32,
    dirs: HashSet<String>,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

impl Cpio {
    fn create(path: &Path) -> Result<Self> {
        let f = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Cpio {
            w: BufWriter::new(f),
            ino: 0,
            dirs: HashSet::new(),
        })
    }

    /// Writes one entry; `name` is relative (`bin/sh`). Parent directories are
    /// added first, since the kernel's unpacker does not create them.
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) -> Result<()> {
        if let Some((parent, _)) = name.rsplit_once('/') {
            self.dir(parent)?;
        }
        self.ino += 1;
        let size = u32::try_from(data.len()).context("initramfs member over 4 GiB")?;
        let mut writer = cpio::newc::Builder::new(name)
            .ino(self.ino)
            .mode(mode)
            .nlink(if mode & S_IFDIR == S_IFDIR { 2 } else { 1 })
            .rdev_major(rdev.0)
            .rdev_minor(rdev.1)
            .write(&mut self.w, size);
        writer.write_all(data)?;
        writer.finish()?;
        Ok(())
    }

    fn dir(&mut self, name: &str) -> Result<()> {
        if self.dirs.contains(name) {
            return Ok(());
        }
        self.entry(name, S_IFDIR | 0o755, &[], (0, 0))?;
        self.dirs.insert(name.to_string());
        Ok(())
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<()> {
        self.entry(name, S_IFREG | perm, data, (0, 0))
    }

    fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        self.entry(name, S_IFLNK | 0o777, target.as_bytes(), (0, 0))
    }

    fn finish(self) -> Result<()> {
        let w = cpio::newc::trailer(self.w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    }
}

fn write_initramfs(root: &Path, path: &Path, bench: &Path, modules: &[Module]) -> Result<()> {
    let read = |p: &Path| fs::read(p).with_context(|| format!("reading {}", p.display()));
    let mut cpio = Cpio::create(path)?;
    for dir in [
        "bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "mnt", "tmp", "etc",
    ] {
        cpio.dir(dir)?;
    }
    // The kernel opens /dev/console for init's stdio before anything mounts devtmpfs.
    cpio.entry("dev/console", S_IFCHR | 0o600, &[], (5, 1))?;
    cpio.file("init", 0o755, &read(&root.join("bench/linux/init"))?)?;
    cpio.file("bin/busybox", 0o755, &read(Path::new(BUSYBOX))?)?;

    let list = Command::new(BUSYBOX)
        .arg("--list-full")
        .stdin(Stdio::null())
        .output()
        .context("running busybox --list-full")?;
    if !list.status.success() {
        bail!("busybox --list-full failed");
    }
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim().trim_start_matches('/');
        if applet.is_empty() || applet == "bin/busybox" || applet == "init" {
            continue;
        }
        cpio.symlink(applet, "/bin/busybox")?;
    }

    cpio.file("bin/linuxbench", 0o755, &read(bench)?)?;

    let mut order = String::new();
    for module in modules {
        cpio.file(
            &format!("lib/modules/{}", module.file_name),
            0o644,
            &module.data,
        )?;
        order.push_str(&module.file_name);
        order.push('\n');
    }
    cpio.file("etc/modules", 0o644, order.as_bytes())?;
    cpio.finish()
        .with_context(|| format!("writing {}", path.display()))
}

// ---- QEMU ----------------------------------------------------------------

/// Boots the guest and returns everything it printed on the serial console,
/// which is also saved to `serial_log` whatever the outcome.
fn boot(
    qemu_flags: &[String],
    kernel: &Path,
    initramfs: &Path,
    disk: &Path,
    serial_log: &Path,
) -> Result<Vec<u8>> {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(qemu_flags);
    match qemu_flags.iter().position(|f| f == "-serial") {
        None if qemu_flags.iter().any(|f| f == "-nographic") => {}
        None => {
            cmd.args(["-serial", "stdio"]);
        }
        Some(i)
            if !matches!(
                qemu_flags.get(i + 1).map(String::as_str),
                Some("stdio" | "mon:stdio")
            ) =>
        {
            bail!(
                "the Linux baseline reads the guest's serial console from QEMU's stdout; pass -serial stdio"
            )
        }
        Some(_) => {}
    }
    if !qemu_flags.iter().any(|f| f == "-no-reboot") {
        cmd.arg("-no-reboot");
    }
    // Remove sources of run-to-run differences that have nothing to do with
    // what is measured: a fixed seed makes RDRAND (and so KASLR, stack canaries,
    // ASLR, hash seeds) repeat; an RTC driven by the virtual clock from a fixed
    // date keeps the host's wall clock out of the guest (the kernel's CMOS clock
    // read spins on the RTC's update-in-progress bit at boot); and a strict boot
    // order stops SeaBIOS from initialising the virtio-blk disk, whose
    // host-timed completions would otherwise shift everything after the BIOS.
    let absent = |flag: &str| !qemu_flags.iter().any(|f| f == flag);
    if absent("-seed") {
        cmd.args(["-seed", "1"]);
    }
    if absent("-rtc") {
        cmd.args(["-rtc", "base=2024-01-01T00:00:00,clock=vm"]);
    }
    if absent("-boot") {
        cmd.args(["-boot", "strict=on"]);
    }
    // QEMU option values escape commas by doubling them.
    let disk_arg = disk.to_string_lossy().replace(',', ",,");
    cmd.arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initramfs)
        .arg("-append")
        .arg(APPEND)
        .arg("-drive")
        .arg(format!("file={disk_arg},format=raw,if=none,id=d0"))
        .args(["-device", "virtio-blk-pci,drive=d0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("starting qemu-system-x86_64")?;

    let log = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().expect("piped stdout");
    let out_thread = {
        let log = Arc::clone(&log);
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                if let Some(rest) = line.strip_prefix(b"LINUXBENCH ") {
                    eprint!(
                        "linux-baseline: {}",
                        String::from_utf8_lossy(rest).trim_end_matches('\r')
                    );
                    if !rest.ends_with(b"\n") {
                        eprintln!();
                    }
                }
                log.lock().unwrap().extend_from_slice(&line);
                line.clear();
            }
        })
    };
    let mut stderr = child.stderr.take().expect("piped stderr");
    let err_thread = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });

    let deadline = Instant::now() + QEMU_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for QEMU")? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let _ = out_thread.join();
    let qemu_stderr = err_thread.join().unwrap_or_default();
    let log = std::mem::take(&mut *log.lock().unwrap());
    fs::write(serial_log, &log).with_context(|| format!("writing {}", serial_log.display()))?;

    match status {
        None => bail!(
            "Linux baseline: QEMU did not finish within {} s; killed it. Serial log tail:\n{}{}",
            QEMU_TIMEOUT.as_secs(),
            tail(&log),
            stderr_note(&qemu_stderr)
        ),
        Some(status) if !status.success() && !has_all_figures(&log) => bail!(
            "Linux baseline: QEMU exited with {status}. Serial log tail:\n{}{}",
            tail(&log),
            stderr_note(&qemu_stderr)
        ),
        Some(_) => Ok(log),
    }
}

/// The last lines of the serial log, for error messages.
fn tail(log: &[u8]) -> String {
    let text = String::from_utf8_lossy(log).replace('\r', "");
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(40);
    let mut s = lines[start..].join("\n");
    if s.is_empty() {
        s.push_str("(nothing)");
    }
    s
}

fn stderr_note(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!("\nQEMU stderr:\n{text}")
    }
}

/// Every `LINUXBENCH key value unit` line of the log, first occurrence of each key.
fn figure_lines(log: &[u8]) -> Vec<LinuxFigure> {
    let text = String::from_utf8_lossy(log);
    let mut figures: Vec<LinuxFigure> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("LINUXBENCH") {
            continue;
        }
        let (Some(key), Some(value), Some(unit), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let Ok(value) = value.parse() else { continue };
        if figures.iter().all(|f| f.key != key) {
            figures.push(LinuxFigure {
                key: key.to_string(),
                value,
                unit: unit.to_string(),
            });
        }
    }
    figures
}

fn has_all_figures(log: &[u8]) -> bool {
    let figures = figure_lines(log);
    KEYS.iter().all(|k| figures.iter().any(|f| f.key == *k))
}

/// The figures named by [`KEYS`], in that order; a missing one is an error.
fn parse_figures(log: &[u8]) -> Result<Vec<LinuxFigure>> {
    let mut found = figure_lines(log);
    let mut figures = Vec::with_capacity(KEYS.len());
    for key in KEYS {
        let Some(i) = found.iter().position(|f| f.key == *key) else {
            let text = String::from_utf8_lossy(log);
            let errors: Vec<&str> = text
                .lines()
                .map(|l| l.trim_end_matches('\r'))
                .filter(|l| l.starts_with("LINUXBENCH-ERROR"))
                .collect();
            let errors = if errors.is_empty() {
                String::new()
            } else {
                format!("\nGuest errors:\n{}", errors.join("\n"))
            };
            bail!(
                "Linux baseline: the guest printed no figure for `{key}`.{errors}\nSerial log tail:\n{}",
                tail(log)
            );
        };
        figures.push(found.swap_remove(i));
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_cmp("6.10.0-1-amd64", "6.9.0-3-amd64").is_gt());
        assert!(version_cmp("6.1.0-26-amd64", "6.1.0-9-amd64").is_gt());
        assert!(version_cmp("6.1.0-26-amd64", "6.1.0-26-amd64").is_eq());
    }

    #[test]
    fn module_names() {
        assert_eq!(module_name("kernel/fs/ext4/ext4.ko"), "ext4");
        assert_eq!(
            module_name("kernel/drivers/block/virtio_blk.ko.xz"),
            "virtio_blk"
        );
        assert_eq!(
            module_name("kernel/crypto/crc32c-generic.ko.zst"),
            "crc32c_generic"
        );
    }

    #[test]
    fn parses_figures_and_names_missing_key() {
        let mut log = String::new();
        for (i, key) in KEYS.iter().enumerate() {
            log.push_str(&format!("noise\r\nLINUXBENCH {key} {} instr\r\n", i + 1));
        }
        let figures = parse_figures(log.as_bytes()).unwrap();
        assert_eq!(figures.len(), KEYS.len());
        assert_eq!(figures[2].key, KEYS[2]);
        assert_eq!(figures[2].value, 3);
        assert_eq!(figures[2].unit, "instr");

        let partial = log.replace("LINUXBENCH futex_rt", "LINUXBENCH-ERROR futex_rt");
        let err = parse_figures(partial.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("`futex_rt`"), "{err}");
        assert!(err.contains("LINUXBENCH-ERROR futex_rt"), "{err}");
    }
}
