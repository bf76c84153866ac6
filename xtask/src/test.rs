//! `cargo xtask test`: host unit tests, lints, the in-kernel suite and the boot cases, counted
//! together and closed by the line `N passed, N failed`.
use crate::artifacts::{self, Artifacts};
use crate::qemu::{self, Outcome};
use anyhow::Result;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Hard limit for one in-QEMU boot; a hang is a failure with the serial log shown.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// The line the core prints when it is up.
const CORE_UP: &str = "moxie core: up";
/// The line init prints once it has started the last service of the default configuration.
const INIT_DONE: &str = "init: started shell";
/// Lines of the core and of init that the scripted session must show.
const SESSION_LOG_LINES: &[&str] = &[
    "init: fs (pid 3) was killed",
    "init: restarting fs in 100 ms",
    "init: started fs (bin/fs) as pid 7",
    "power off requested by process 4",
];
/// The shell's own output from a serial log in which other processes' log lines (`is_log`)
/// are interleaved — whole lines, and lines that start in the middle of one of the shell's
/// (the console is shared: `moxie> up[2 ramblk] ...` then `time` on the next line is the shell's
/// `moxie> uptime` with a log line cut into it).
fn without_log_lines(log: &str, is_log: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    let mut carried = String::new();
    for line in log.lines() {
        let whole = format!("{carried}{line}");
        carried.clear();
        if is_log(&whole) {
            continue;
        }
        let cut = whole
            .char_indices()
            .find(|&(i, c)| i > 0 && c == '[' && is_log(&whole[i..]))
            .map(|(i, _)| i);
        match cut {
            Some(i) => carried = whole[..i].to_string(),
            None => {
                out.push_str(&whole);
                out.push('\n');
            }
        }
    }
    out.push_str(&carried);
    out
}

/// The scripted shell session of `boot::shell_script_session`: typed into the serial console.
/// Pids are those of a boot with the default configuration: init 1, ramblk 2, fs 3, shell 4,
/// then the spawned probes 5 and 6; killing fs (3) makes init start it again as pid 7, and
/// the shell's next file command reaches the new driver (the RAM disk kept the files).
const SHELL_SCRIPT: &str = "help
ps
mem
uptime
spawn probe
spawn probe 17
kill 6
kill 999
spawn nope
spawn bad/wx
mkdir docs
write docs/note.txt hello from the shell
cat docs/note.txt
ls docs
ls
cat missing.txt
kill 3
ls docs
mkdir docs
rm docs
rm docs/note.txt
rm docs
ls
frobnicate now
kill seven
poweroff
";

#[derive(Default)]
pub struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Tally {
    pub fn record(&mut self, name: &str, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.passed += 1;
                println!("test {name} ... ok");
            }
            Err(why) => {
                self.failed += 1;
                println!("test {name} ... FAILED\n{}", indent(&why));
            }
        }
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

/// Runs only the in-kernel cases `filter` names, on one CPU (-icount) and on two; returns
/// whether all passed.
pub fn run_cases(filter: &str) -> Result<bool> {
    let mut t = Tally::default();
    let a = artifacts::build()?;
    ktest_suite(&a, &mut t, "", 1, true, filter)?;
    ktest_suite(&a, &mut t, "smp2::", 2, false, filter)?;
    println!(
        "\n{} passed, {} failed, {} skipped",
        t.passed, t.failed, t.skipped
    );
    Ok(t.failed == 0)
}

/// Runs everything; returns whether all passed.
pub fn run(only: Option<&str>, no_host: bool) -> Result<bool> {
    let mut t = Tally::default();
    if !no_host {
        host_tests(&mut t)?;
        lints(&mut t)?;
    }
    let a = artifacts::build()?;
    let wanted = |name: &str| only.is_none_or(|o| name.contains(o));
    if wanted("ktest") {
        // Under -icount guest time is exact, so the scheduler cases can hold tight bounds.
        ktest_suite(&a, &mut t, "", 1, true, "all")?;
    }
    if wanted("ktest") || wanted("smp") {
        // Several CPUs with multi-threaded TCG: real parallelism for the cross-core cases, and
        // the process, channel, device and driver cases again with threads spread over two
        // cores (device interrupts arrive on the boot CPU, drivers may run on the other).
        ktest_suite(
            &a,
            &mut t,
            "smp2::",
            2,
            false,
            "smp_*,process_*,channel_*,device_*,blk_*,thread*,park_*,fault_in_a_thread*,portal_*,rootfs_*,suspend_*",
        )?;
        // Not the 100,000-message ping-pong: on four vCPUs under multi-threaded TCG it stalls in
        // about half the runs on a busy two-core host (an open bug, docs/testing.md "Known
        // issues"); it runs on two CPUs above.
        ktest_suite(
            &a,
            &mut t,
            "smp4::",
            4,
            false,
            "smp_cross_core_wake_stress,smp_busy_processes_in_parallel",
        )?;
    }
    boot_cases(&a, &mut t, &wanted)?;
    if t.skipped > 0 {
        println!(
            "\n{} passed, {} failed, {} skipped",
            t.passed, t.failed, t.skipped
        );
    } else {
        println!("\n{} passed, {} failed", t.passed, t.failed);
    }
    Ok(t.failed == 0)
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(crate::root());
    c
}

/// `cargo test` over the host crates; each libtest result line adds its counts.
fn host_tests(t: &mut Tally) -> Result<()> {
    eprintln!("xtask: host unit tests");
    let out = cargo().args(["test", "--no-fail-fast"]).output()?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let (mut passed, mut failed) = (0, 0);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("test result: ") {
            let num = |key: &str| {
                rest.split(';')
                    .find_map(|p| {
                        p.trim().strip_suffix(key).map(|n| {
                            n.trim()
                                .trim_start_matches("ok. ")
                                .trim_start_matches("FAILED. ")
                                .parse::<usize>()
                                .unwrap_or(0)
                        })
                    })
                    .unwrap_or(0)
            };
            passed += num("passed");
            failed += num("failed");
        }
        if line.starts_with("test ") && line.ends_with("FAILED") {
            println!("{line}");
        }
    }
    println!("host unit tests: {passed} passed, {failed} failed");
    t.passed += passed;
    t.failed += failed;
    if !out.status.success() && failed == 0 {
        t.record("host unit tests build", Err(tail(&text, 40)));
    }
    Ok(())
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn check(name: &str, t: &mut Tally, cmd: &mut Command) -> Result<()> {
    let out = cmd.output()?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    t.record(
        name,
        if out.status.success() {
            Ok(())
        } else {
            Err(tail(&text, 60))
        },
    );
    Ok(())
}

/// Formatting and clippy (`-D warnings`) on every crate, host and bare-metal.
fn lints(t: &mut Tally) -> Result<()> {
    eprintln!("xtask: lints (rustfmt, clippy)");
    check(
        "lint: cargo fmt --check",
        t,
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    check(
        "lint: clippy (host crates)",
        t,
        cargo().args(["clippy", "--quiet", "--all-targets", "--", "-D", "warnings"]),
    )?;
    let mut bare = cargo();
    bare.args([
        "clippy",
        "--quiet",
        "--release",
        "--target",
        "x86_64-unknown-none",
    ]);
    // The no_std protocol and driver crates are linted for the target they run on too.
    for p in [
        "moxie-kernel",
        "moxie-stub",
        "moxie-rt",
        "blkproto",
        "fsproto",
        "fatserve",
        "procimage",
        "moxie-virtio",
        "initconf",
        "shellcmd",
    ]
    .iter()
    .chain(artifacts::USER_PROGRAMS)
    {
        bare.args(["-p", p]);
    }
    bare.args(["--", "-D", "warnings"]);
    check("lint: clippy (kernel, stub, user programs)", t, &mut bare)
}

fn boot(
    a: &Artifacts,
    kernel: &Path,
    iso: Option<&Path>,
    cmdline: &str,
    stop_at: Option<&str>,
) -> Result<Outcome> {
    let mut args = qemu::machine_args(1, false);
    args.extend(qemu::boot_args(a, kernel, iso, cmdline));
    qemu::captured(&args, BOOT_TIMEOUT, stop_at)
}

/// Boots `test=all`, counting each in-kernel case; a case that takes the machine down is a
/// failure, and the suite resumes after it in a fresh boot.
fn ktest_suite(
    a: &Artifacts,
    t: &mut Tally,
    label: &str,
    smp: u32,
    icount: bool,
    filter: &str,
) -> Result<()> {
    eprintln!(
        "xtask: in-kernel test suite ({smp} CPU{}{})",
        if smp == 1 { "" } else { "s" },
        if icount { ", -icount" } else { "" }
    );
    let mut processed = 0usize;
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    loop {
        let mut args = qemu::machine_args(smp, icount);
        args.extend(qemu::boot_args(
            a,
            &a.moxie_elf,
            None,
            &format!("log=warn test={filter} test-skip={processed} host-cpus={host_cpus}"),
        ));
        // A fresh scratch disk for every boot that runs the device and driver cases (they
        // write to it).
        let mut disks = 0;
        if ["all", "device_", "blk_"]
            .iter()
            .any(|w| filter.contains(w))
        {
            args.extend(qemu::disk_args(&artifacts::scratch_disk("scratch.img")?));
            disks += 1;
        }
        // A fresh FAT volume for the cases of the core's filesystem client, attached last:
        // they mount the last virtio-blk disk as the root filesystem.
        if ["all", "rootfs_", "suspend_"]
            .iter()
            .any(|w| filter.contains(w))
        {
            args.extend(qemu::nth_disk_args(&fat_disk("rootfs-cases.img")?, disks));
        }
        let o = qemu::captured(&args, BOOT_TIMEOUT, None)?;
        let mut current: Option<String> = None;
        let mut done = false;
        for line in o.log.lines() {
            if let Some(name) = line.strip_prefix("ktest: start ") {
                current = Some(name.to_string());
            } else if let Some(name) = line.strip_prefix("ktest: ok ") {
                t.record(&format!("{label}ktest::{name}"), Ok(()));
                processed += 1;
                current = None;
            } else if let Some(rest) = line.strip_prefix("ktest: skip ") {
                let (name, why) = rest.split_once(": ").unwrap_or((rest, ""));
                if smp > 1 {
                    // This boot exists to run them: a skip means a CPU did not come up.
                    t.record(
                        &format!("{label}ktest::{name}"),
                        Err(format!(
                            "skipped on a {smp}-CPU boot ({why}): a CPU did not start"
                        )),
                    );
                } else {
                    println!("test {label}ktest::{name} ... skipped ({why})");
                    t.skipped += 1;
                }
                processed += 1;
                current = None;
            } else if let Some(rest) = line.strip_prefix("ktest: FAIL ") {
                let (name, why) = rest.split_once(": ").unwrap_or((rest, ""));
                t.record(&format!("{label}ktest::{name}"), Err(why.to_string()));
                processed += 1;
                current = None;
            } else if let Some(info) = line.strip_prefix("ktest: info ") {
                println!("    {label}{info}");
            } else if line.starts_with("ktest: done") {
                done = true;
            }
        }
        if done {
            return Ok(());
        }
        let why = format!(
            "the machine stopped ({}{}) during this case; serial log tail:\n{}",
            qemu::describe(o.status),
            if o.timed_out { ", timed out" } else { "" },
            o.tail(30)
        );
        match current {
            Some(name) => {
                t.record(&format!("{label}ktest::{name}"), Err(why));
                processed += 1;
            }
            None => {
                t.record(&format!("{label}ktest suite"), Err(why));
                return Ok(());
            }
        }
    }
}

/// A fresh FAT volume with the root disk's folders and no programs (`target/moxie/NAME`).
fn fat_disk(name: &str) -> Result<std::path::PathBuf> {
    let path = artifacts::out_dir()?.join(name);
    crate::disk::make_image(&path, &[], &crate::root().join("rootfs/etc"))?;
    Ok(path)
}

pub fn expect(o: &Outcome, status: Option<i32>, needles: &[&str]) -> Result<(), String> {
    let mut problems = Vec::new();
    if o.timed_out {
        problems.push(format!("timed out after {}s", BOOT_TIMEOUT.as_secs()));
    } else if status.is_some() && o.status != status {
        problems.push(format!(
            "exit status {:?} ({}), expected {:?} ({})",
            o.status,
            qemu::describe(o.status),
            status,
            qemu::describe(status)
        ));
    }
    for n in needles {
        if !o.log.contains(n) {
            problems.push(format!("the serial log lacks \"{n}\""));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\nserial log tail:\n{}",
            problems.join("\n"),
            o.tail(25)
        ))
    }
}

fn first_core_line(log: &str) -> Option<&str> {
    log.lines()
        .find(|l| l.contains("moxie core") && l.contains("starting"))
}

/// Flips one byte of the embedded core (at `offset` from its header) in a copy of `moxie.elf`.
fn corrupt_copy(a: &Artifacts, offset_in_core: usize, name: &str) -> Result<std::path::PathBuf> {
    let mut bytes = std::fs::read(&a.moxie_elf)?;
    // Find the embedded container by its whole header: the magic alone also appears in the
    // stub's own code constants.
    let header = std::fs::read(&a.core_img)?[..coreimg::HEADER_LEN].to_vec();
    let at = bytes
        .windows(header.len())
        .position(|w| w == header)
        .ok_or_else(|| anyhow::anyhow!("no core image inside {}", a.moxie_elf.display()))?;
    bytes[at + offset_in_core] ^= 0x5a;
    let path = artifacts::out_dir()?.join(name);
    std::fs::write(&path, bytes)?;
    Ok(path)
}

fn boot_cases(a: &Artifacts, t: &mut Tally, wanted: &dyn Fn(&str) -> bool) -> Result<()> {
    let mut reference_line: Option<String> = None;
    let name = "boot::multiboot1_core_up_and_init_in_ring3";
    if wanted(name) || wanted("boot::grub") {
        let o = boot(a, &a.moxie_elf, None, "", Some(INIT_DONE))?;
        reference_line = first_core_line(&o.log).map(str::to_string);
        t.record(
            name,
            expect(
                &o,
                None,
                &[
                    "moxie stub: entered via multiboot\n",
                    CORE_UP,
                    "no root filesystem: no virtio-blk device number 0",
                    "falling back to bin/init from the boot bundle (it runs its RAM-disk configuration)",
                    "init: no root filesystem; using the built-in RAM-disk configuration",
                    "init] init: 3 services configured",
                    "init: started ramblk (bin/ramblk) as pid 2",
                    "init: started fs (bin/fs) as pid 3",
                    INIT_DONE,
                ],
            ),
        );
    }
    let name = "boot::shell_script_session";
    if wanted(name) {
        let mut args = qemu::machine_args(1, false);
        args.extend(qemu::boot_args(a, &a.moxie_elf, None, ""));
        let input = Some(SHELL_SCRIPT.as_bytes().to_vec());
        let o = qemu::captured_with_input(&args, BOOT_TIMEOUT, None, input)?;
        // The whole session, for reading after a failure.
        std::fs::write(artifacts::out_dir()?.join("shell-session.log"), &o.log)?;
        let ok = Some(abi::qemu::ExitCode::Success.qemu_status());
        // Log lines of the core and of other processes (`[info ] ...`, `[2 ramblk] ...`) may
        // land between the shell's lines: they are checked in the full log, the shell's
        // multi-line output in the log without them.
        let is_log = |l: &str| {
            l.strip_prefix('[').is_some_and(|r| {
                ["info ]", "warn ]", "error]", "debug]"]
                    .iter()
                    .any(|p| r.starts_with(p))
                    || r.split(' ').next().is_some_and(|pid| {
                        !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
                    })
            })
        };
        let shell_only = qemu::Outcome {
            status: o.status,
            timed_out: o.timed_out,
            log: without_log_lines(&o.log, is_log),
        };
        t.record(
            name,
            expect(&o, ok, SESSION_LOG_LINES).and_then(|()| {
                expect(
                    &shell_only,
                    ok,
                    &[
                        "moxie shell: type help for the commands",
                        "moxie> help\ncommands:\n",
                        "  help                 this list",
                        "  poweroff             stop the machine",
                        "  PID PARENT STATE    THREADS     ARENA        CPU  MODULE",
                        "    4      1 running        1",
                        "  shell\n",
                        "kernel heap: ",
                        "channel buffers: ",
                        "moxie> uptime\nup 0:00:",
                        "moxie> spawn probe\nstarted /bin/probe",
                        "moxie> spawn probe 17\nstarted /bin/probe as pid 6\n",
                        "[/bin/probe (pid 5) exited with code 42]",
                        "started /bin/probe as pid 6",
                        "killed pid 6",
                        "[/bin/probe (pid 6) was killed]",
                        "kill: no process 999",
                        "spawn: no module /bin/nope",
                        "spawn: bad/wx cannot be loaded (malformed module, or a bad option)",
                        "wrote 21 bytes to /docs/note.txt",
                        "moxie> cat docs/note.txt\nhello from the shell\n",
                        "moxie> ls docs\n        21  note.txt\n",
                        "     <dir>  docs/\n",
                        "cat: /missing.txt: no such file or directory",
                        "killed pid 3",
                        "mkdir: /docs: already exists",
                        "rm: /docs: directory not empty",
                        "moxie> ls\n(empty)\n",
                        "error: unknown command \"frobnicate\" (try help)",
                        "error: \"seven\" is not a number",
                        "powering off",
                    ],
                )
            }),
        );
    }
    crate::diskcases::disk_cases(a, t, wanted)?;
    crate::suspendcases::suspend_cases(a, t, wanted)?;
    let name = "boot::grub_iso_multiboot2_same_first_line";
    if wanted(name) {
        let iso = artifacts::iso(a, "")?;
        let o = boot(a, &a.moxie_elf, Some(&iso), "", Some(CORE_UP))?;
        let mut r = expect(&o, None, &["moxie stub: entered via multiboot2", CORE_UP]);
        if r.is_ok() && first_core_line(&o.log) != reference_line.as_deref() {
            r = Err(format!(
                "first core line differs: ISO {:?}, -kernel {:?}",
                first_core_line(&o.log),
                reference_line
            ));
        }
        t.record(name, r);
    }
    let bad = Some(abi::qemu::ExitCode::BootFailure.qemu_status());
    let name = "boot::corrupt_core_payload_refused";
    if wanted(name) {
        let header = coreimg::HEADER_LEN;
        let len = std::fs::metadata(&a.core_img)?.len() as usize;
        let elf = corrupt_copy(a, header + (len - header) / 2, "corrupt-payload.elf")?;
        let o = boot(a, &elf, None, "", None)?;
        let mut r = expect(
            &o,
            bad,
            &[
                "moxie stub: cannot boot: the compressed kernel core is corrupt",
                "CRC-32",
            ],
        );
        if r.is_ok() && o.log.contains("moxie core") {
            r = Err("the core ran anyway".into());
        }
        t.record(name, r);
    }
    let name = "boot::corrupt_core_version_refused";
    if wanted(name) {
        let elf = corrupt_copy(a, 8, "corrupt-version.elf")?;
        let o = boot(a, &elf, None, "", None)?;
        t.record(
            name,
            expect(&o, bad, &["kernel core is corrupt: format version"]),
        );
    }
    let fail = Some(abi::qemu::ExitCode::Failure.qemu_status());
    let name = "boot::exception_report_page_fault";
    if wanted(name) {
        let o = boot(a, &a.moxie_elf, None, "crash=pagefault", None)?;
        t.record(
            name,
            expect(
                &o,
                fail,
                &[
                    "EXCEPTION page fault (vector 14)",
                    "CR2=0x00000000dead0000",
                    "RIP=0xffffffff8",
                    "RAX=",
                    "R15=",
                    "backtrace:",
                    "#1 ",
                    "stopping: kernel bug",
                ],
            ),
        );
    }
    let name = "boot::exception_report_double_fault_on_ist";
    if wanted(name) {
        let o = boot(a, &a.moxie_elf, None, "crash=stackoverflow", None)?;
        t.record(
            name,
            expect(
                &o,
                fail,
                &["EXCEPTION double fault (vector 8)", "backtrace:"],
            ),
        );
    }
    let name = "boot::panic_report";
    if wanted(name) {
        let o = boot(a, &a.moxie_elf, None, "crash=panic", None)?;
        t.record(
            name,
            expect(
                &o,
                fail,
                &["KERNEL PANIC", "deliberate panic", "backtrace:"],
            ),
        );
    }
    let name = "boot::acpi_madt_lists_four_cpus";
    if wanted(name) {
        let mut args = qemu::machine_args(4, false);
        args.extend(qemu::boot_args(a, &a.moxie_elf, None, ""));
        let o = qemu::captured(&args, BOOT_TIMEOUT, Some(CORE_UP))?;
        t.record(
            name,
            expect(
                &o,
                None,
                &["cpus: 4 (local APIC ids [0, 1, 2, 3])", CORE_UP],
            ),
        );
    }
    let name = "boot::blk_writes_reach_the_disk_image";
    if wanted(name) {
        t.record(name, blk_writes_reach_the_image(a)?);
    }
    let name = "boot::bad_cmdline_value_reported";
    if wanted(name) {
        let o = boot(a, &a.moxie_elf, None, "log=loud", Some(CORE_UP))?;
        t.record(
            name,
            expect(
                &o,
                None,
                &["bad command line: log=loud: not a level", CORE_UP],
            ),
        );
    }
    Ok(())
}

/// Boots the block-driver case on a fresh scratch disk, then reads the image file on the host:
/// the sectors the guest wrote through `user/blk` hold its bytes, their neighbours the original
/// pattern.
fn blk_writes_reach_the_image(a: &Artifacts) -> Result<Result<(), String>> {
    use abi::qemu::{SCRATCH_WRITE_AT, scratch_disk_byte, scratch_written_byte};
    let case = "blk_read_write_flush_capacity_errors";
    let disk = artifacts::scratch_disk("scratch-host-check.img")?;
    let mut args = qemu::machine_args(1, false);
    args.extend(qemu::boot_args(
        a,
        &a.moxie_elf,
        None,
        &format!("log=warn test={case}"),
    ));
    args.extend(qemu::disk_args(&disk));
    let o = qemu::captured(&args, BOOT_TIMEOUT, None)?;
    let ok = Some(abi::qemu::ExitCode::Success.qemu_status());
    if let Err(e) = expect(&o, ok, &[&format!("ktest: ok {case}")]) {
        return Ok(Err(e));
    }
    let image = std::fs::read(&disk)?;
    let (at, count) = SCRATCH_WRITE_AT;
    let sector = |s: u64| &image[s as usize * 512..(s as usize + 1) * 512];
    let written = |s: u64| {
        let base = (s - at) as usize * 512;
        (0..512).map(move |i| scratch_written_byte(base + i))
    };
    for s in at..at + count {
        if !sector(s).iter().copied().eq(written(s)) {
            return Ok(Err(format!(
                "sector {s} of the image lacks what the guest wrote"
            )));
        }
    }
    for s in [at - 1, at + count] {
        if !sector(s)
            .iter()
            .copied()
            .eq((0..512).map(|i| scratch_disk_byte(s, i)))
        {
            return Ok(Err(format!("sector {s} of the image changed")));
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::without_log_lines;

    fn is_log(l: &str) -> bool {
        l.starts_with("[2 ramblk]") || l.starts_with("[info ]")
    }

    #[test]
    fn log_lines_are_taken_out_whole_and_from_the_middle_of_a_line() {
        let log =
            "moxie> help\ncommands:\n[info ] x\nmoxie> up[2 ramblk] formatted\ntime\nup 0:00:01\n";
        assert_eq!(
            without_log_lines(log, is_log),
            "moxie> help\ncommands:\nmoxie> uptime\nup 0:00:01\n"
        );
        assert_eq!(without_log_lines("a [b] c\n", is_log), "a [b] c\n");
    }
}
