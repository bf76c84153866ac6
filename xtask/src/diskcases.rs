//! The boot cases of `cargo xtask test` that boot from a root disk: the default boot through
//! `cargo xtask run`, an image made and filled by `mkfs.fat` and `mcopy` read with matching
//! CRC-32s, files moxie writes read back by `mcopy`, `fsck.fat -n` after a write-heavy run,
//! QEMU killed in the middle of a write-heavy run (fsynced files intact, `fsck.fat -a`
//! repairs), the filesystem driver killed and restarted, the shell's errors, and the
//! refusals (`init=` naming a missing file, a disk that holds no FAT volume).
use crate::artifacts::{self, Artifacts};
use crate::disk;
use crate::qemu::{self, Outcome};
use crate::test::{Tally, expect};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Hard limit for one boot from a disk.
const TIMEOUT: Duration = Duration::from_secs(180);
/// The core's line once the root filesystem answers.
const ROOT_UP: &str = "root filesystem: virtio-blk0 (block driver pid 1, filesystem driver pid 2)";

/// A copy of the default root disk (built if missing or stale) under `name`.
pub(crate) fn default_disk_copy(name: &str) -> Result<PathBuf> {
    let root = disk::default_root_disk()?;
    let copy = artifacts::out_dir()?.join(name);
    disk::copy_image(&root, &copy)?;
    Ok(copy)
}

/// Boots with `disk` as the root disk, types `script` into the console once the core is up.
fn boot_disk(
    a: &Artifacts,
    disk: &Path,
    cmdline: &str,
    script: Option<&str>,
    stop_at: Option<&str>,
) -> Result<(Outcome, Duration)> {
    let mut args = qemu::machine_args(1, false);
    args.extend(qemu::boot_args(a, &a.moxie_elf, None, cmdline));
    args.extend(qemu::disk_args(disk));
    let started = Instant::now();
    let o = qemu::captured_with_input(
        &args,
        TIMEOUT,
        stop_at,
        script.map(|s| s.as_bytes().to_vec()),
    )?;
    Ok((o, started.elapsed()))
}

/// Deterministic contents for a host file: a xorshift stream seeded by `seed`.
fn contents(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The files of the mkfs.fat/mcopy image: long names, nested folders, sizes from 0 B to
/// 20 MiB.
const HOST_FILES: &[(&str, usize)] = &[
    ("/data/empty.bin", 0),
    ("/data/One byte with a Long Name.txt", 1),
    (
        "/data/nested/deeper/still-deeper/A-rather-long-file-name-4KiB.bin",
        4096,
    ),
    ("/data/nested/one-mebibyte-plus-one-byte.bin", (1 << 20) + 1),
    ("/data/Twenty-Mebibytes-Of-Data.bin", 20 << 20),
];

/// What moxie writes in the write-heavy run: (path, bytes of `shellcmd::fill_byte`'s pattern).
const GUEST_FILES: &[(&str, u64)] = &[
    ("/out/one.bin", 1),
    ("/out/sub/deeper/page-of-bytes.bin", 4096),
    ("/out/sub/One-Mebibyte-Plus-One.bin", (1 << 20) + 1),
    ("/out/odd-sized.bin", 100_003),
];

pub fn disk_cases(a: &Artifacts, t: &mut Tally, wanted: &dyn Fn(&str) -> bool) -> Result<()> {
    let name = "boot::default_root_disk_session_through_xtask_run";
    if wanted(name) {
        t.record(name, default_session(a)?);
    }
    let name = "boot::mkfs_fat_image_read_with_matching_crc32";
    if wanted(name) {
        t.record(name, host_image_read(a)?);
    }
    let names = [
        "boot::files_moxie_writes_read_back_by_mcopy",
        "boot::fsck_clean_after_write_heavy_run",
    ];
    if names.iter().any(|n| wanted(n)) {
        let (read_back, fsck) = write_heavy(a)?;
        t.record(names[0], read_back);
        t.record(names[1], fsck);
    }
    let names = [
        "boot::root_fs_killed_restarted_by_init",
        "boot::shell_errors_on_the_root_disk",
    ];
    if names.iter().any(|n| wanted(n)) {
        let (killed, errors) = fs_killed_and_errors(a)?;
        t.record(names[0], killed);
        t.record(names[1], errors);
    }
    let names = [
        "boot::qemu_killed_mid_write_fsynced_files_intact",
        "boot::qemu_killed_mid_write_fsck_repairs",
    ];
    if names.iter().any(|n| wanted(n)) {
        let (intact, repaired) = killed_mid_write(a)?;
        t.record(names[0], intact);
        t.record(names[1], repaired);
    }
    let name = "boot::init_missing_from_disk_reported";
    if wanted(name) {
        let disk = default_disk_copy("root-init-missing.img")?;
        let (o, _) = boot_disk(
            a,
            &disk,
            "init=/sbin/missing",
            None,
            Some("init: started shell"),
        )?;
        let mut r = expect(
            &o,
            None,
            &[
                ROOT_UP,
                "cannot start init /sbin/missing: no module /sbin/missing",
                "falling back to bin/init from the boot bundle",
                "init: started shell (/bin/shell)",
            ],
        );
        if r.is_ok() && o.log.contains("KERNEL PANIC") {
            r = Err("kernel panic".into());
        }
        t.record(name, r);
    }
    let name = "boot::corrupt_root_disk_reported";
    if wanted(name) {
        // 64 MiB that is not a FAT volume (the scratch pattern, no boot sector).
        let disk = artifacts::out_dir()?.join("root-corrupt.img");
        let pattern: Vec<u8> = (0..64u64 << 20)
            .map(|i| abi::qemu::scratch_disk_byte(i / 512, (i % 512) as usize))
            .collect();
        std::fs::write(&disk, pattern)?;
        let (o, _) = boot_disk(a, &disk, "", None, Some("init: started shell"))?;
        let mut r = expect(
            &o,
            None,
            &[
                "fs: no volume on the block device",
                "no root filesystem: virtio-blk0 holds no volume the filesystem driver serves",
                "falling back to bin/init from the boot bundle (it runs its RAM-disk configuration)",
                "init: started shell (bin/shell)",
            ],
        );
        if r.is_ok() && o.log.contains("KERNEL PANIC") {
            r = Err("kernel panic".into());
        }
        if r.is_ok() && o.log.contains(ROOT_UP) {
            r = Err("the core took the corrupt disk for a root filesystem".into());
        }
        t.record(name, r);
    }
    Ok(())
}

/// The script of the default session; it ends without `poweroff`: the end of the input
/// powers the machine off.
const SESSION: &str = "ls /
ls /sbin
cat /etc/init.conf
spawn probe
spawn nope
spawn /sbin/missing
mkdir /notes
write /notes/hello.txt written on moxie
cat /notes/hello.txt
spawn probe 17
ps
kill 6
ps
";

/// `cargo xtask run --disk COPY` with the session piped in: the real command, its default
/// disk built first, its piped-input path, init and the shell from the disk.
fn default_session(a: &Artifacts) -> Result<Result<(), String>> {
    let _ = a;
    let disk = default_disk_copy("root-session.img")?;
    let started = Instant::now();
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["run", "--disk"])
        .arg(&disk)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting cargo xtask run")?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("stdin")?;
        stdin.write_all(SESSION.as_bytes())?;
    }
    let stdout = child.stdout.take().context("stdout")?;
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut s = Vec::new();
        let mut r = stdout;
        let _ = r.read_to_end(&mut s);
        String::from_utf8_lossy(&s).replace('\r', "")
    });
    use wait_timeout::ChildExt;
    let status = match child.wait_timeout(TIMEOUT)? {
        Some(s) => Some(s),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    };
    let log = reader.join().unwrap_or_default();
    std::fs::write(artifacts::out_dir()?.join("disk-session.log"), &log)?;
    println!(
        "    the default disk session took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let o = Outcome {
        status: status.and_then(|s| s.code()),
        timed_out: status.is_none(),
        log,
    };
    let mut r = expect(
        &o,
        Some(0),
        &[
            ROOT_UP,
            "started init from /sbin/init (pid 3)",
            "init: started shell (/bin/shell) as pid 4",
            "sbin/",
            "etc/",
            "  init\n",
            "service shell /bin/shell handles=system,console",
            "started /bin/probe",
            "[/bin/probe (pid 5) exited with code 42]",
            "spawn: no module /bin/nope",
            "spawn: no module /sbin/missing",
            "wrote 17 bytes to /notes/hello.txt",
            "written on moxie\n",
            "/bin/shell",
            "killed pid 6",
            "[/bin/probe (pid 6) was killed]",
            "powering off",
        ],
    );
    if r.is_ok() {
        // The file is on the image for the host to read.
        r = mcopy_out(&disk, "/notes/hello.txt").and_then(|b| {
            if b == b"written on moxie\n" {
                Ok(())
            } else {
                Err(format!(
                    "the host reads {:?} from /notes/hello.txt",
                    String::from_utf8_lossy(&b)
                ))
            }
        });
    }
    Ok(r)
}

/// Copies `path` out of the image with `mcopy`.
pub(crate) fn mcopy_out(img: &Path, path: &str) -> Result<Vec<u8>, String> {
    let out = img.with_extension(format!("out-{}", path.replace('/', "_")));
    let _ = std::fs::remove_file(&out);
    disk::run(
        "mcopy",
        &[
            "-n",
            "-i",
            &img.display().to_string(),
            &format!("::{path}"),
            &out.display().to_string(),
        ],
    )
    .map_err(|e| format!("mcopy {path}: {e}"))?;
    let bytes = std::fs::read(&out).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&out);
    Ok(bytes)
}

/// An image made by `mkfs.fat -F 32` (the default root disk's, 264 MiB) filled by `mcopy`
/// with [`HOST_FILES`]; the shell's `crc` must print the host's CRC-32 and size of each.
fn host_image_read(a: &Artifacts) -> Result<Result<(), String>> {
    let disk = default_disk_copy("root-host-files.img")?;
    let img = disk.display().to_string();
    let tmp = artifacts::out_dir()?.join("host-files");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let mut script = String::new();
    let mut needles = Vec::new();
    let mut made = std::collections::BTreeSet::new();
    for (i, (path, len)) in HOST_FILES.iter().enumerate() {
        let mut dir = String::new();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for p in &parts[..parts.len() - 1] {
            dir.push('/');
            dir.push_str(p);
            if made.insert(dir.clone()) {
                disk::run("mmd", &["-i", &img, &format!("::{dir}")])?;
            }
        }
        let bytes = contents(*len, i as u64 + 7);
        let local = tmp.join(format!("file{i}"));
        std::fs::write(&local, &bytes)?;
        disk::run(
            "mcopy",
            &[
                "-i",
                &img,
                &local.display().to_string(),
                &format!("::{path}"),
            ],
        )?;
        let crc = crc32fast::hash(&bytes);
        // Names with spaces cannot be typed to `crc`: the shell splits at spaces.
        if !path.contains(' ') {
            script.push_str(&format!("crc {path}\n"));
            needles.push(format!("crc32 {crc:08x} {len} {path}"));
        }
    }
    script.push_str("ls /data\nls /data/nested/deeper/still-deeper\npoweroff\n");
    needles.push("         1  One byte with a Long Name.txt".into());
    needles.push("      4096  A-rather-long-file-name-4KiB.bin".into());
    needles.push("     <dir>  nested/".into());
    let (o, took) = boot_disk(a, &disk, "", Some(&script), None)?;
    println!(
        "    reading the files (20 MiB + 1 MiB + 4 KiB + 1 B) and booting took {:.1} s",
        took.as_secs_f64()
    );
    let ok = Some(abi::qemu::ExitCode::Success.qemu_status());
    let refs: Vec<&str> = needles.iter().map(String::as_str).collect();
    Ok(expect(&o, ok, &refs))
}

/// A write-heavy run in moxie ([`GUEST_FILES`], more files written and removed, a rename of
/// sorts through remove), then on the host: each file read back by `mcopy` byte for byte,
/// and `fsck.fat -n` on the image.
fn write_heavy(a: &Artifacts) -> Result<(Result<(), String>, Result<(), String>)> {
    let disk = default_disk_copy("root-write-heavy.img")?;
    let mut script = String::from("mkdir /out\nmkdir /out/sub\nmkdir /out/sub/deeper\n");
    for (path, len) in GUEST_FILES {
        script.push_str(&format!("fill {path} {len}\n"));
    }
    // Churn: files written, overwritten with other sizes, and removed.
    for i in 0..12 {
        script.push_str(&format!("fill /out/churn-{i}.bin {}\n", 40_000 + i * 4099));
    }
    for i in (0..12).step_by(2) {
        script.push_str(&format!("fill /out/churn-{i}.bin {}\n", 7 + i));
        script.push_str(&format!("rm /out/churn-{}.bin\n", i + 1));
    }
    script.push_str("write /out/note.txt written by moxie\npoweroff\n");
    let (o, took) = boot_disk(a, &disk, "", Some(&script), None)?;
    println!("    the write-heavy run took {:.1} s", took.as_secs_f64());
    let ok = Some(abi::qemu::ExitCode::Success.qemu_status());
    let filled: Vec<String> = GUEST_FILES
        .iter()
        .map(|(p, n)| format!("filled {p} with {n} bytes"))
        .collect();
    let mut needles: Vec<&str> = filled.iter().map(String::as_str).collect();
    needles.push("powering off");
    if let Err(e) = expect(&o, ok, &needles) {
        return Ok((Err(e.clone()), Err(e)));
    }
    let mut read_back = Ok(());
    let mut expected: Vec<(String, Vec<u8>)> = GUEST_FILES
        .iter()
        .map(|(p, n)| (p.to_string(), (0..*n).map(shellcmd::fill_byte).collect()))
        .collect();
    for i in (0..12).step_by(2) {
        expected.push((
            format!("/out/churn-{i}.bin"),
            (0..7 + i as u64).map(shellcmd::fill_byte).collect(),
        ));
    }
    expected.push(("/out/note.txt".into(), b"written by moxie\n".to_vec()));
    for (path, want) in &expected {
        match mcopy_out(&disk, path) {
            Ok(got) if &got == want => {}
            Ok(got) => {
                read_back = Err(format!(
                    "{path}: the host reads {} bytes, moxie wrote {}{}",
                    got.len(),
                    want.len(),
                    got.iter()
                        .zip(want)
                        .position(|(a, b)| a != b)
                        .map(|i| format!("; first difference at byte {i}"))
                        .unwrap_or_default()
                ));
                break;
            }
            Err(e) => {
                read_back = Err(e);
                break;
            }
        }
    }
    if read_back.is_ok() && mcopy_out(&disk, "/out/churn-1.bin").is_ok() {
        read_back = Err("/out/churn-1.bin was removed in moxie but the host finds it".into());
    }
    let fsck = match disk::run("fsck.fat", &["-n", &disk.display().to_string()]) {
        Ok(text) if !text.contains("Dirty") && !text.to_lowercase().contains("error") => Ok(()),
        Ok(text) => Err(format!("fsck.fat -n:\n{text}")),
        Err(e) => Err(format!("{e}")),
    };
    Ok((read_back, fsck))
}

/// The script of the root-disk session that kills the filesystem driver (pid 2, as the core
/// reports it), then uses the disk again, then makes the shell report each kind of error.
fn kill_script() -> String {
    let long = format!("/{}", "a".repeat(300));
    [
        "ls /",
        "kill 2",
        "ls /sbin",
        "cat /etc/init.conf",
        "spawn probe",
        "write /notes.txt not an elf file",
        "spawn /notes.txt",
        &format!("cat {long}"),
        &format!("write {long}/x.txt y"),
        "write /bad:name.txt x",
        "mkdir /a*b",
        "write /nodir/x.txt y",
        "ls /nope",
        "spawn /sbin/missing",
        "ps",
        "poweroff",
    ]
    .join("\n")
        + "\n"
}

/// Kills the root filesystem's driver from the shell on the real root disk: init logs the
/// death report and restarts it through the core, the shell's connection is closed and it
/// reconnects, and `ls`, `cat` and `spawn` from the disk work again. The same session then
/// checks the shell's errors: a file that is not an ELF, a 300-character name, invalid
/// names, a missing directory, a missing module; no kernel panic.
fn fs_killed_and_errors(a: &Artifacts) -> Result<(Result<(), String>, Result<(), String>)> {
    let disk = default_disk_copy("root-fs-killed.img")?;
    let (o, took) = boot_disk(a, &disk, "", Some(&kill_script()), None)?;
    println!(
        "    the session that kills fs took {:.1} s",
        took.as_secs_f64()
    );
    std::fs::write(artifacts::out_dir()?.join("fs-killed-session.log"), &o.log)?;
    let ok = Some(abi::qemu::ExitCode::Success.qemu_status());
    let panic = |r: Result<(), String>| {
        if r.is_ok() && o.log.contains("KERNEL PANIC") {
            Err("kernel panic".to_string())
        } else {
            r
        }
    };
    let mut killed = expect(
        &o,
        ok,
        &[
            ROOT_UP,
            "killed pid 2",
            "init: fs (pid 2) was killed",
            "init: restarting fs in 100 ms",
            "(the filesystem driver closed the connection; reconnecting)",
            "root filesystem restarted: virtio-blk0",
            "init: started fs (the root filesystem, bin/fs) as pid",
            "  init\n",
            "service shell /bin/shell handles=system,console",
            "exited with code 42]",
            "powering off",
        ],
    );
    // The order: the death report before the restart, the restart before the disk is read
    // again (the listing of /sbin comes after it).
    if killed.is_ok() {
        let at = |s: &str| o.log.find(s).unwrap_or(usize::MAX);
        let order = [
            "killed pid 2",
            "init: fs (pid 2) was killed",
            "init: started fs (the root filesystem",
            "  init\n",
            "exited with code 42]",
        ];
        if order.windows(2).any(|w| at(w[0]) > at(w[1])) {
            killed = Err(format!("out of order; expected {order:?}"));
        }
    }
    let long = "a".repeat(300);
    let errors = expect(
        &o,
        ok,
        &[
            "wrote 16 bytes to /notes.txt",
            "spawn: /notes.txt cannot be loaded (malformed module, or a bad option)",
            &format!("cat: /{long}: name too long"),
            &format!("write: /{long}/x.txt: name too long"),
            "write: /bad:name.txt: invalid name",
            "mkdir: /a*b: invalid name",
            "write: /nodir/x.txt: no such file or directory",
            "ls: /nope: no such file or directory",
            "spawn: no module /sbin/missing",
        ],
    );
    Ok((panic(killed), panic(errors)))
}

/// The files of the crash run, in order: small ones and 2 MiB ones (twice the driver's block
/// cache, so dirty blocks reach the device before their fsync) alternating.
fn crash_run_files() -> Vec<(String, u64)> {
    (0..16u64)
        .map(|i| {
            let len = if i % 2 == 1 {
                (2 << 20) + 4099 * i
            } else {
                1 + 23_456 * i
            };
            (format!("/dur/f-{i:02}.bin"), len)
        })
        .collect()
}

/// The line after which the host kills QEMU, and how long after it: the next file, 2 MiB,
/// is then being written. Soon after: the driver writes a 2 MiB file in tens of milliseconds,
/// and the whole run after this line takes well under a second.
const CRASH_AFTER: &str = "filled /dur/f-04.bin";
const CRASH_DELAY: Duration = Duration::from_millis(50);

/// A write-heavy run (`fill` and `write`, each acknowledged only once its fsync is: the shell
/// prints `filled ...` and `wrote ...` after the fsync's reply) killed by SIGKILL from the host
/// in the middle, while a 2 MiB file is being written. Then on the host: every file
/// acknowledged before the kill reads back byte for byte with `mcopy` (before and after the
/// repair), and `fsck.fat -a` repairs the image (exit status 0 or 1), after which
/// `fsck.fat -n` finds it clean.
fn killed_mid_write(a: &Artifacts) -> Result<(Result<(), String>, Result<(), String>)> {
    let disk = default_disk_copy("root-crash.img")?;
    let files = crash_run_files();
    let mut script = String::from("mkdir /dur\n");
    for (i, (path, len)) in files.iter().enumerate() {
        script.push_str(&format!("fill {path} {len}\n"));
        script.push_str(&format!("write /dur/note-{i:02}.txt note {i}\n"));
    }
    script.push_str("poweroff\n");
    let mut args = qemu::machine_args(1, false);
    args.extend(qemu::boot_args(a, &a.moxie_elf, None, ""));
    args.extend(qemu::disk_args(&disk));
    let started = Instant::now();
    let o = qemu::captured_killed_after(
        &args,
        TIMEOUT,
        Some(CRASH_AFTER),
        CRASH_DELAY,
        Some(script.into_bytes()),
    )?;
    std::fs::write(artifacts::out_dir()?.join("crash-run.log"), &o.log)?;
    let fail = |e: String| Ok((Err(e.clone()), Err(e)));
    if o.timed_out || !o.log.contains(CRASH_AFTER) {
        return fail(format!(
            "the run never reached \"{CRASH_AFTER}\"\nserial log tail:\n{}",
            o.tail(25)
        ));
    }
    if o.log.contains("powering off") {
        return fail("the run ended before the kill: nothing was in flight".into());
    }
    if o.log.contains("KERNEL PANIC") {
        return fail("kernel panic".into());
    }
    // What the shell acknowledged before the kill.
    let mut acked: Vec<(String, Vec<u8>)> = Vec::new();
    for line in o.log.lines() {
        for (i, (path, len)) in files.iter().enumerate() {
            if line.contains(&format!("filled {path} with {len} bytes")) {
                acked.push((path.clone(), (0..*len).map(shellcmd::fill_byte).collect()));
            }
            let note = format!("/dur/note-{i:02}.txt");
            if line.contains(&format!(
                "wrote {} bytes to {note}",
                format!("note {i}").len() + 1
            )) {
                acked.push((note, format!("note {i}\n").into_bytes()));
            }
        }
    }
    let unacked = files
        .iter()
        .filter(|(p, _)| !acked.iter().any(|(q, _)| q == p))
        .count();
    println!(
        "    killed {:.1} s into the run; {} files acknowledged, {} fills not",
        started.elapsed().as_secs_f64(),
        acked.len(),
        unacked
    );
    if acked.len() < 5 || unacked == 0 {
        return fail(format!(
            "expected the kill mid-run; {} acknowledged, {unacked} not",
            acked.len()
        ));
    }
    let check = |when: &str| -> Result<(), String> {
        for (path, want) in &acked {
            let got = mcopy_out(&disk, path).map_err(|e| format!("{when}: {e}"))?;
            if &got != want {
                return Err(format!(
                    "{when}: {path} was acknowledged but the host reads {} bytes, {} written",
                    got.len(),
                    want.len()
                ));
            }
        }
        Ok(())
    };
    let intact_before = check("before fsck.fat -a");
    let img = disk.display().to_string();
    let fsck = |flag: &str| -> Result<(Option<i32>, String)> {
        let out = std::process::Command::new(disk::tool("fsck.fat")?)
            .args([flag, &img])
            .output()?;
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        ))
    };
    let (code, text) = fsck("-a")?;
    println!("    fsck.fat -a exited with {code:?}");
    let mut repaired = match code {
        Some(0) | Some(1) => Ok(()),
        _ => Err(format!("fsck.fat -a exited with {code:?}:\n{text}")),
    };
    if repaired.is_ok() {
        let (code, text) = fsck("-n")?;
        if code != Some(0) || text.contains("Dirty") {
            repaired = Err(format!(
                "fsck.fat -n after the repair exited with {code:?}:\n{text}"
            ));
        }
    }
    let intact = intact_before.and_then(|()| check("after fsck.fat -a"));
    Ok((intact, repaired))
}
