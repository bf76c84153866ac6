//! The suspend cases of `cargo xtask test` (`--only suspend_`): boots from a copy of the
//! default root disk, drives the shell line by line — a command is typed once the console shows
//! what the case waits for — and reads `/bin/ticker`'s lines (`user/ticker`), whose counters
//! prove that a resumed process carries on where it stopped:
//!
//! - suspend and resume in one boot (`images`, `inspect`, the counter goes on at last + 1), and
//!   `discard`;
//! - `migrate` between the cores of a two-CPU machine;
//! - an image that survives QEMU killed right after the suspend, resumed in the next boot; the
//!   same image pulled off the disk and checked by `cargo xtask image`;
//! - a tree of three processes with a channel inside, and a process of three threads;
//! - images damaged between two boots (a flipped byte, truncated, another version), a module
//!   that changed or is missing: each refused with a clear error, no panic, the shell usable;
//! - the shell's usage errors and its errors for things that do not exist.
use crate::artifacts::{self, Artifacts};
use crate::diskcases::{default_disk_copy, mcopy_out};
use crate::test::Tally;
use crate::{disk, qemu};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest wait for the shell after QEMU starts.
const BOOT_WAIT: Duration = Duration::from_secs(120);
/// Longest wait for one expected line.
const LINE_WAIT: Duration = Duration::from_secs(30);
/// The shell's first line.
const SHELL_UP: &str = "moxie shell: type help for the commands";
/// What a ticker prints when its module's data did not come back with it.
const DATA_LOST: &str = "module data lost";

/// One ticker line: `[LIVE ticker] ticker pid=PID [t=T] n=N core=CORE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tick {
    /// The pid in the core's prefix: the process's pid now.
    live: u64,
    /// The pid the ticker was started with (a resumed one keeps it).
    pid: u64,
    /// The thread, in the three-thread mode.
    thread: Option<u64>,
    n: u64,
    core: u64,
}

/// The live pid in the core's `[pid name]` prefix just before `at`.
fn prefix_pid(line: &str, at: usize) -> Option<u64> {
    let open = line[..at].rfind('[')?;
    line[open + 1..at].parse().ok()
}

fn tick(line: &str) -> Option<Tick> {
    const KEY: &str = " ticker] ticker pid=";
    let at = line.find(KEY)?;
    let mut t = Tick {
        live: prefix_pid(line, at)?,
        pid: 0,
        thread: None,
        n: 0,
        core: u64::MAX,
    };
    let mut seen_n = false;
    for word in line[at + KEY.len() - "pid=".len()..].split_whitespace() {
        let (k, v) = word.split_once('=')?;
        let v: u64 = v.parse().ok()?;
        match k {
            "pid" => t.pid = v,
            "t" => t.thread = Some(v),
            "n" => {
                t.n = v;
                seen_n = true;
            }
            "core" => t.core = v,
            _ => return None,
        }
    }
    (seen_n && t.core != u64::MAX).then_some(t)
}

/// A `tree-a n=N` line: (live pid, n).
fn tree_a(line: &str) -> Option<(u64, u64)> {
    const KEY: &str = " ticker] tree-a n=";
    let at = line.find(KEY)?;
    let n = line[at + KEY.len()..].parse().ok()?;
    Some((prefix_pid(line, at)?, n))
}

/// The number after `key` in `line`.
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `up H:MM:SS.mmm` as seconds.
fn uptime(line: &str) -> Option<f64> {
    let rest = line.trim().strip_prefix("up ")?;
    let mut parts = rest.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// A QEMU boot driven line by line.
struct Live {
    child: Child,
    input: ChildStdin,
    rx: mpsc::Receiver<String>,
    /// Every console line so far.
    log: Vec<String>,
    /// Lines before this one were already looked at by [`Live::wait`].
    seen: usize,
    /// Markers typed so far (each `end-of-N` is unique).
    markers: usize,
    /// Where the log goes when the boot ends.
    log_file: PathBuf,
}

impl Live {
    /// Boots `disk` on `smp` CPUs and waits for the shell.
    fn boot(a: &Artifacts, disk: &Path, smp: u32, name: &str) -> Result<Live, String> {
        Live::start(a, disk, smp, name)
            .map_err(|e| format!("{e:#}"))?
            .ready()
    }

    fn start(a: &Artifacts, disk: &Path, smp: u32, name: &str) -> Result<Live> {
        let mut args = qemu::machine_args(smp, false);
        args.extend(qemu::boot_args(a, &a.moxie_elf, None, ""));
        args.extend(qemu::disk_args(disk));
        let mut child = Command::new("qemu-system-x86_64")
            .args(&args)
            .args(["-serial", "stdio", "-monitor", "none"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting qemu-system-x86_64")?;
        let input = child.stdin.take().context("stdin")?;
        let rx = qemu::console_lines(&mut child)?;
        Ok(Live {
            child,
            input,
            rx,
            log: Vec::new(),
            seen: 0,
            markers: 0,
            log_file: artifacts::out_dir()?.join(format!("{name}.log")),
        })
    }

    /// Waits for the shell: input typed before it reads the console would be lost.
    fn ready(mut self) -> Result<Live, String> {
        self.wait_for("the shell", BOOT_WAIT, |l| l.contains(SHELL_UP))?;
        Ok(self)
    }

    /// Waits for a line from index `from` on that `pred` accepts; returns its index and text.
    /// A kernel panic, QEMU's end or the timeout is an error that shows the log's tail.
    fn wait_from(
        &mut self,
        from: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<(usize, String), String> {
        let deadline = Instant::now() + timeout;
        let mut i = from;
        loop {
            while i < self.log.len() {
                let l = &self.log[i];
                if l.contains("KERNEL PANIC") {
                    return Err(self.failure(&format!("kernel panic while waiting for {what}")));
                }
                if pred(l) {
                    return Ok((i, l.clone()));
                }
                i += 1;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => self.log.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(self.failure(&format!("waited {} s for {what}", timeout.as_secs())));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(self.failure(&format!("QEMU ended while waiting for {what}")));
                }
            }
        }
    }

    /// [`Live::wait_from`] from the first line not looked at yet; moves past the match.
    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<(usize, String), String> {
        let (i, l) = self.wait_from(self.seen, what, timeout, pred)?;
        self.seen = i + 1;
        Ok((i, l))
    }

    /// Takes in what the console printed until now (without waiting).
    fn pump(&mut self) {
        while let Ok(l) = self.rx.try_recv() {
            self.log.push(l);
        }
    }

    /// Takes in what the console prints during `d`.
    fn pump_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(l) => self.log.push(l),
                Err(_) => break,
            }
        }
    }

    /// Types a line; what comes after it is what later waits look at. Returns the index of
    /// the first line that can be its answer.
    fn type_line(&mut self, line: &str) -> Result<usize, String> {
        self.pump();
        self.seen = self.log.len();
        let sent = self
            .input
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| self.input.flush());
        if let Err(e) = sent {
            return Err(self.failure(&format!("typing {line:?}: {e}")));
        }
        Ok(self.seen)
    }

    /// Types `cmd` and waits for the line `pred` accepts.
    fn command(
        &mut self,
        cmd: &str,
        pred: impl Fn(&str) -> bool,
    ) -> Result<(usize, String), String> {
        self.type_line(cmd)?;
        self.wait_for(&format!("the answer to {cmd:?}"), LINE_WAIT, pred)
    }

    /// Types `cmd` and returns every line up to the shell's answer to a marker typed after it
    /// (an unknown command, so the answer is an error naming it): the command's whole output,
    /// with other processes' log lines among it.
    fn transcript(&mut self, cmd: &str) -> Result<String, String> {
        let from = self.type_line(cmd)?;
        self.markers += 1;
        let marker = format!("end-of-{}", self.markers);
        let sent = self
            .input
            .write_all(format!("{marker}\n").as_bytes())
            .and_then(|()| self.input.flush());
        if let Err(e) = sent {
            return Err(self.failure(&format!("typing {marker}: {e}")));
        }
        let answer = format!("unknown command \"{marker}\"");
        let (end, _) = self.wait_for(&format!("the end of {cmd:?}"), LINE_WAIT, |l| {
            l.contains(&answer)
        })?;
        Ok(self.log[from..end].join("\n"))
    }

    /// The guest's clock, from the shell's `uptime`, in seconds.
    fn guest_time(&mut self) -> Result<f64, String> {
        let (_, l) = self.command("uptime", |l| uptime(l).is_some())?;
        uptime(&l).ok_or_else(|| self.failure("uptime"))
    }

    /// Ticker lines in `from..to`.
    fn ticks(&self, from: usize, to: usize) -> Vec<Tick> {
        self.log[from..to.min(self.log.len())]
            .iter()
            .filter_map(|l| tick(l))
            .collect()
    }

    /// `spawn ticker ARG` and its pid.
    fn spawn_ticker(&mut self, arg: u64) -> Result<u64, String> {
        let cmd = if arg == 0 {
            "spawn ticker".to_string()
        } else {
            format!("spawn ticker {arg}")
        };
        let (_, l) = self.command(&cmd, |l| {
            l.contains("started /bin/ticker as pid") || l.contains("spawn: ")
        })?;
        number_after(&l, "as pid ").ok_or_else(|| self.failure(&format!("{cmd}: {l}")))
    }

    /// Waits for a ticker line of live pid `live` (and thread `thread`) with `n >= n`.
    fn wait_tick(&mut self, live: u64, thread: Option<u64>, n: u64) -> Result<Tick, String> {
        let (_, l) = self.wait_from(
            self.seen,
            &format!("ticker pid {live} thread {thread:?} to reach n={n}"),
            LINE_WAIT,
            |l| tick(l).is_some_and(|t| t.live == live && t.thread == thread && t.n >= n),
        )?;
        Ok(tick(&l).expect("matched"))
    }

    /// `suspend PID`: the image id, the index of the answer, and the answer.
    fn suspend(&mut self, pid: u64) -> Result<(u64, usize, String), String> {
        let (i, l) = self.command(&format!("suspend {pid}"), |l| {
            l.contains(&format!("suspended pid {pid} "))
                || l.starts_with(&format!("suspend {pid}: "))
        })?;
        match number_after(&l, "as image ") {
            Some(id) => Ok((id, i, l)),
            None => Err(self.failure(&format!("suspend {pid}: {l}"))),
        }
    }

    /// `resume ID [CPU]`: the new pid and the answer.
    fn resume(&mut self, id: u64, cpu: Option<u32>) -> Result<(u64, usize, String), String> {
        let cmd = match cpu {
            Some(c) => format!("resume {id} {c}"),
            None => format!("resume {id}"),
        };
        let (i, l) = self.command(&cmd, |l| {
            l.starts_with(&format!("resumed image {id} "))
                || l.starts_with(&format!("resume {id}: "))
        })?;
        match number_after(&l, " as pid ") {
            Some(pid) => Ok((pid, i, l)),
            None => Err(self.failure(&format!("{cmd}: {l}"))),
        }
    }

    /// The ids `images` lists, with their sizes.
    fn images(&mut self) -> Result<Vec<(u64, u64)>, String> {
        let text = self.transcript("images")?;
        Ok(text
            .lines()
            .filter(|l| l.contains(" /sys/suspended/"))
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
            })
            .collect())
    }

    /// `poweroff`, then QEMU's exit.
    fn power_off(mut self) -> Result<(), String> {
        self.type_line("poweroff")?;
        let r = self.wait_for("powering off", LINE_WAIT, |l| l.contains("powering off"));
        let deadline = Instant::now() + LINE_WAIT;
        while Instant::now() < deadline {
            self.pump();
            if let Ok(Some(status)) = self.child.try_wait() {
                let ok = abi::qemu::ExitCode::Success.qemu_status();
                return match (r, status.code()) {
                    (Ok(_), Some(c)) if c == ok => Ok(()),
                    (Err(e), _) => Err(e),
                    (_, c) => Err(self.failure(&format!(
                        "QEMU exited with {c:?} ({}) after poweroff",
                        qemu::describe(c)
                    ))),
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(self.failure("QEMU still runs after poweroff"))
    }

    /// The checks every case ends with: no kernel panic, no ticker that lost its module data.
    fn sound(&mut self) -> Result<(), String> {
        self.pump();
        if self.log.iter().any(|l| l.contains("KERNEL PANIC")) {
            return Err(self.failure("kernel panic"));
        }
        if let Some(l) = self.log.iter().find(|l| l.contains(DATA_LOST)) {
            let l = l.clone();
            return Err(self.failure(&format!("a resumed ticker lost its module's data: {l}")));
        }
        Ok(())
    }

    /// `why` with the last lines of the log.
    fn failure(&self, why: &str) -> String {
        let tail = self.log[self.log.len().saturating_sub(30)..].join("\n");
        format!(
            "{why}\n(whole log: {})\nserial log tail:\n{tail}",
            self.log_file.display()
        )
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.pump();
        let _ = std::fs::write(&self.log_file, self.log.join("\n") + "\n");
    }
}

/// The first ticker line from line `from` on of live pid `live` and thread `thread`: it must
/// say `want` (the counter carried on), `start_pid`, and `core` when given. `from` is before
/// the shell's answer to the resume: the resumed threads may print before the shell does (the
/// pid is new, so no earlier line has it).
fn carries_on(
    live_session: &mut Live,
    from: usize,
    live: u64,
    thread: Option<u64>,
    want: u64,
    start_pid: u64,
    core: Option<u64>,
) -> Result<Tick, String> {
    let (i, l) = live_session.wait_from(
        from,
        &format!("the resumed ticker (pid {live}, thread {thread:?})"),
        LINE_WAIT,
        |l| tick(l).is_some_and(|t| t.live == live && t.thread == thread),
    )?;
    let t = tick(&l).expect("matched");
    if t.n != want {
        return Err(live_session.failure(&format!(
            "the resumed ticker's first line says n={}, expected n={want} (line {i}: {l})",
            t.n
        )));
    }
    if t.pid != start_pid {
        return Err(live_session.failure(&format!(
            "the resumed ticker says pid={}, it was started as pid {start_pid}: {l}",
            t.pid
        )));
    }
    if let Some(c) = core
        && t.core != c
    {
        return Err(live_session.failure(&format!("expected core={c}: {l}")));
    }
    // And it goes on counting.
    let next = live_session.wait_from(
        i + 1,
        &format!("n={} from pid {live}", want + 1),
        LINE_WAIT,
        |l| tick(l).is_some_and(|t| t.live == live && t.thread == thread && t.n == want + 1),
    )?;
    let t2 = tick(&next.1).expect("matched");
    if let Some(c) = core
        && t2.core != c
    {
        return Err(live_session.failure(&format!("expected core={c}: {}", next.1)));
    }
    Ok(t)
}

/// The highest n of the ticker lines of `live` (and `thread`) before line `to`.
fn last_n(s: &Live, to: usize, live: u64, thread: Option<u64>) -> Result<u64, String> {
    s.ticks(0, to)
        .iter()
        .filter(|t| t.live == live && t.thread == thread)
        .map(|t| t.n)
        .max()
        .ok_or_else(|| s.failure(&format!("no line of pid {live} before the suspend")))
}

/// The record of a case: the error, or Ok.
type Outcome = Result<(), String>;

pub fn suspend_cases(a: &Artifacts, t: &mut Tally, wanted: &dyn Fn(&str) -> bool) -> Result<()> {
    let names = [
        "boot::suspend_resume_same_boot_counter_carries_on",
        "boot::suspend_discard_removes_the_image",
    ];
    if names.iter().any(|n| wanted(n)) {
        let (same, discard) = same_boot(a)?;
        t.record(names[0], same);
        t.record(names[1], discard);
    }
    let name = "boot::suspend_migrate_between_cores";
    if wanted(name) {
        t.record(name, migrate(a)?);
    }
    let names = [
        "boot::suspend_image_survives_qemu_kill",
        "boot::suspend_image_verified_by_host_tool",
        "boot::suspend_tree_resumes_after_a_reboot",
    ];
    if names.iter().any(|n| wanted(n)) {
        let (durable, host, tree) = durable(a)?;
        t.record(names[0], durable);
        t.record(names[1], host);
        t.record(names[2], tree);
    }
    let name = "boot::suspend_tree_of_three_resumes_as_one";
    if wanted(name) {
        t.record(name, tree(a)?);
    }
    let name = "boot::suspend_three_threads_count_on";
    if wanted(name) {
        t.record(name, threads(a)?);
    }
    let names = [
        "boot::suspend_refused_flipped_byte",
        "boot::suspend_refused_truncated",
        "boot::suspend_refused_other_version",
        "boot::suspend_refused_changed_module",
        "boot::suspend_refused_missing_module",
        "boot::suspend_refusals_leave_nothing_behind",
    ];
    if names.iter().any(|n| wanted(n)) {
        let results = refusals(a)?;
        for (n, r) in names.iter().zip(results) {
            t.record(n, r);
        }
    }
    let names = [
        "boot::suspend_shell_usage_errors",
        "boot::suspend_shell_errors_for_missing_things",
    ];
    if names.iter().any(|n| wanted(n)) {
        let (usage, missing) = shell_errors(a)?;
        t.record(names[0], usage);
        t.record(names[1], missing);
    }
    Ok(())
}

/// Boots a fresh copy of the default disk (the outer error: the host failed; the inner one:
/// the guest did not reach the shell).
fn boot_copy(a: &Artifacts, name: &str, smp: u32) -> Result<Result<Live, String>> {
    let disk = default_disk_copy(&format!("{name}.img"))?;
    Ok(Live::boot(a, &disk, smp, name))
}

/// Suspends a ticker, checks it stays quiet for at least half a second of guest time, that
/// `images` lists the image and `inspect` summarises it, resumes it and reads the counter go
/// on at last + 1; then suspends another and discards its image.
fn same_boot(a: &Artifacts) -> Result<(Outcome, Outcome)> {
    let started = Instant::now();
    let mut s = match boot_copy(a, "suspend-same-boot", 1)? {
        Ok(s) => s,
        Err(e) => return Ok((Err(e.clone()), Err(e))),
    };
    let same = (|| {
        let pid = s.spawn_ticker(0)?;
        s.wait_tick(pid, None, 3)?;
        let (id, at, _) = s.suspend(pid)?;
        let last = last_n(&s, at, pid, None)?;
        // Quiet: no line of it after the suspend while the guest's clock moves on.
        let t0 = s.guest_time()?;
        s.pump_for(Duration::from_millis(1200));
        let t1 = s.guest_time()?;
        if t1 - t0 < 0.5 {
            return Err(s.failure(&format!("the guest's clock moved only {:.3} s", t1 - t0)));
        }
        if let Some(l) = s.log[at..]
            .iter()
            .find(|l| tick(l).is_some_and(|t| t.pid == pid))
        {
            let l = l.clone();
            return Err(s.failure(&format!("the ticker printed after its suspend: {l}")));
        }
        let listed = s.images()?;
        match listed.iter().find(|(i, _)| *i == id) {
            Some((_, size)) if *size > 0 => {}
            _ => {
                return Err(s.failure(&format!(
                    "images does not list image {id} with a size: {listed:?}"
                )));
            }
        }
        let text = s.transcript(&format!("inspect {id}"))?;
        for want in [
            format!("image {id}: "),
            ", format version 1, 1 process, ".to_string(),
            format!("process 0: ticker (pid {pid}, root)"),
            "module /bin/ticker sha256 ".to_string(),
            "1 thread, ".to_string(),
            "sections: every CRC-32 ok".to_string(),
        ] {
            if !text.contains(&want) {
                return Err(s.failure(&format!("inspect {id} lacks {want:?}:\n{text}")));
            }
        }
        let (new, _, _) = s.resume(id, None)?;
        carries_on(&mut s, at, new, None, last + 1, pid, None)?;
        if s.images()?.iter().any(|(i, _)| *i == id) {
            return Err(s.failure(&format!("image {id} is still listed after its resume")));
        }
        s.sound()
    })();
    let discard = (|| {
        let pid = s.spawn_ticker(0)?;
        s.wait_tick(pid, None, 2)?;
        let (id, _, _) = s.suspend(pid)?;
        s.command(&format!("discard {id}"), |l| {
            l.contains(&format!("discarded image {id}")) || l.starts_with(&format!("discard {id}:"))
        })
        .and_then(|(_, l)| {
            if l.starts_with("discarded") {
                Ok(())
            } else {
                Err(s.failure(&l))
            }
        })?;
        if s.images()?.iter().any(|(i, _)| *i == id) {
            return Err(s.failure(&format!("image {id} is still listed after discard")));
        }
        let want = format!("resume {id}: no image /sys/suspended/{id}.img");
        s.command(&format!("resume {id}"), |l| {
            l.starts_with(&format!("resume {id}:")) || l.starts_with("resumed")
        })
        .and_then(|(_, l)| {
            if l == want {
                Ok(())
            } else {
                Err(s.failure(&format!("expected {want:?}, got {l:?}")))
            }
        })?;
        let want = format!("inspect {id}: no image /sys/suspended/{id}.img");
        s.command(&format!("inspect {id}"), |l| {
            l.starts_with(&format!("inspect {id}:")) || l.starts_with("image ")
        })
        .and_then(|(_, l)| {
            if l == want {
                Ok(())
            } else {
                Err(s.failure(&format!("expected {want:?}, got {l:?}")))
            }
        })?;
        s.sound()
    })();
    let off = s.power_off();
    println!(
        "    the same-boot session took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let discard = discard.and(off);
    Ok((same, discard))
}

/// On two CPUs: `migrate` to the other core and back; each time the lines name the new core
/// and the counter goes on. The first move is to core 1 when the ticker starts on core 0.
fn migrate(a: &Artifacts) -> Result<Outcome> {
    let started = Instant::now();
    let mut s = match boot_copy(a, "suspend-migrate", 2)? {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let r = (|| {
        let start = s.spawn_ticker(0)?;
        let first = s.wait_tick(start, None, 3)?;
        let mut pid = start;
        let mut core = first.core;
        for target in [1 - core.min(1), core.min(1)] {
            let target = target as u32;
            // Settled on its core before the move.
            s.wait_tick(pid, None, last_n(&s, s.log.len(), pid, None)? + 1)?;
            let cmd = format!("migrate {pid} {target}");
            let (at, l) = s.command(&cmd, |l| {
                l.starts_with(&format!("migrated pid {pid} "))
                    || l.starts_with(&format!("migrate {pid}: "))
            })?;
            let Some(new) = number_after(&l, " as pid ") else {
                return Err(s.failure(&format!("{cmd}: {l}")));
            };
            let before = s.ticks(0, at);
            let last = last_n(&s, at, pid, None)?;
            if let Some(t) = before.iter().rev().find(|t| t.live == pid)
                && t.core != core
            {
                return Err(s.failure(&format!("before {cmd} the ticker ran on core {}", t.core)));
            }
            carries_on(
                &mut s,
                0,
                new,
                None,
                last + 1,
                start,
                Some(u64::from(target)),
            )?;
            pid = new;
            core = u64::from(target);
        }
        s.sound()
    })();
    let off = s.power_off();
    println!(
        "    the migrate session took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(r.and(off))
}

/// The host's view of image `id` on `disk`: `cargo xtask image pull` copies and verifies it,
/// `image verify` and `image inspect` accept it, and its module reference is the SHA-256 of the
/// disk's `/bin/ticker`.
fn host_tool(disk: &Path, id: u64) -> Outcome {
    let dir = artifacts::out_dir()
        .map_err(|e| e.to_string())?
        .join("suspend-pulled");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let xtask = |args: &[&str]| -> Result<String, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let out = Command::new(exe)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("cargo xtask {} failed:\n{text}", args.join(" ")))
        }
    };
    let d = disk.display().to_string();
    let pulled = xtask(&["image", "pull", &d, &dir.display().to_string()])?;
    let file = dir.join(format!("{id}.img"));
    let f = file.display().to_string();
    if !pulled.contains(&format!("{f}: ok (")) {
        return Err(format!("image pull did not verify {f}:\n{pulled}"));
    }
    let verified = xtask(&["image", "verify", &f])?;
    if !verified.contains(": ok (") {
        return Err(format!("image verify: {verified}"));
    }
    let inspected = xtask(&["image", "inspect", &f])?;
    let ticker = mcopy_out(disk, "/bin/ticker")?;
    let hash: String = procimage::module_hash(&ticker)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for want in [
        "single process".to_string(),
        format!("module: /bin/ticker  sha256 {hash}"),
        "threads: 1".to_string(),
    ] {
        if !inspected.contains(&want) {
            return Err(format!("image inspect lacks {want:?}:\n{inspected}"));
        }
    }
    if inspected.contains(" BAD") {
        return Err(format!("image inspect shows a bad CRC:\n{inspected}"));
    }
    Ok(())
}

/// Suspends a tree, then a ticker, and kills QEMU (SIGKILL) as soon as the shell says the
/// ticker is suspended; the host tool checks the ticker's image on the disk; the next boot on
/// the same disk resumes it, the counter goes on, and the shell holds the resumed ticker's
/// parent channel (it reports its death); then the tree, whose internal channel is made
/// afresh, with `tree-a`'s round trips going on.
fn durable(a: &Artifacts) -> Result<(Outcome, Outcome, Outcome)> {
    let started = Instant::now();
    let disk = default_disk_copy("suspend-durable.img")?;
    let mut s = match Live::boot(a, &disk, 1, "suspend-durable-1") {
        Ok(s) => s,
        Err(e) => return Ok((Err(e.clone()), Err(e.clone()), Err(e))),
    };
    // (pid, image, last n) of the ticker, (image, last n) of the tree.
    type Suspended = ((u64, u64, u64), (u64, u64));
    let first = (|| -> Result<Suspended, String> {
        // A tree first (its image waits on the disk too), then the ticker QEMU dies after.
        let root = s.spawn_ticker(2)?;
        s.wait_for("tree-a n=3", LINE_WAIT, |l| {
            tree_a(l).is_some_and(|(_, n)| n >= 3)
        })?;
        let (tree_id, at, _) = s.suspend(root)?;
        let tree_last = s.log[..at]
            .iter()
            .filter_map(|l| tree_a(l))
            .map(|(_, n)| n)
            .max()
            .unwrap_or(0);
        let pid = s.spawn_ticker(0)?;
        s.wait_tick(pid, None, 3)?;
        let (id, at, _) = s.suspend(pid)?;
        Ok(((pid, id, last_n(&s, at, pid, None)?), (tree_id, tree_last)))
    })();
    drop(s);
    let ((pid, id, last), (tree_id, tree_last)) = match first {
        Ok(v) => v,
        Err(e) => return Ok((Err(e.clone()), Err(e.clone()), Err(e))),
    };
    let host = host_tool(&disk, id);
    let mut s = match Live::boot(a, &disk, 1, "suspend-durable-2") {
        Ok(s) => s,
        Err(e) => return Ok((Err(e.clone()), host, Err(e))),
    };
    let durable = (|| {
        if !s.images()?.iter().any(|(i, _)| *i == id) {
            return Err(s.failure(&format!("image {id} is not listed after the reboot")));
        }
        let (new, _, l) = s.resume(id, None)?;
        if !l.contains("its parent channel is the shell's now") {
            return Err(s.failure(&format!(
                "after a reboot the resumer should get the parent channel: {l}"
            )));
        }
        let resumed_at = Instant::now();
        carries_on(&mut s, 0, new, None, last + 1, pid, None)?;
        println!(
            "    the resumed ticker's first line came {:.1} s after the resume",
            resumed_at.elapsed().as_secs_f64()
        );
        s.command(&format!("kill {new}"), |l| {
            l.contains(&format!("(pid {new}) was killed]"))
        })?;
        s.sound()
    })();
    // The tree from the image alone: its internal channel is made afresh.
    let tree = (|| {
        s.pump();
        let from = s.log.len();
        let (_, _, l) = s.resume(tree_id, None)?;
        if !l.contains("(3 processes, 3 threads, its parent channel is the shell's now)") {
            return Err(s.failure(&format!("the tree after a reboot: {l}")));
        }
        tree_a_continues(&mut s, from, tree_last, "reboot")?;
        s.sound()
    })();
    let off = s.power_off();
    println!(
        "    the two boots took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok((durable, host, tree.and(off)))
}

/// Checks that `tree-a`'s first line from log line `from` on continues from `last` (n = last + 1)
/// and that its next round trip follows: the tree's internal channel works after the `after`.
fn tree_a_continues(s: &mut Live, from: usize, last: u64, after: &str) -> Result<(), String> {
    let (i, l) = s.wait_from(from, &format!("tree-a after the {after}"), LINE_WAIT, |l| {
        tree_a(l).is_some()
    })?;
    let n = tree_a(&l).map(|(_, n)| n).unwrap_or(0);
    if n != last + 1 {
        return Err(s.failure(&format!(
            "tree-a's first line after the {after} says n={n}, expected {} (line {i})",
            last + 1
        )));
    }
    s.wait_from(i + 1, "tree-a's next round trip", LINE_WAIT, |l| {
        tree_a(l).is_some_and(|(_, m)| m == n + 1)
    })?;
    Ok(())
}

/// A tree (the ticker's mode 2: a parent and two children joined by a channel) suspends as one
/// image of three processes and resumes with `tree-a`'s round trips going on.
fn tree(a: &Artifacts) -> Result<Outcome> {
    let started = Instant::now();
    let mut s = match boot_copy(a, "suspend-tree", 1)? {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let r = (|| {
        let root = s.spawn_ticker(2)?;
        s.wait_for("tree-a n=3", LINE_WAIT, |l| {
            tree_a(l).is_some_and(|(_, n)| n >= 3)
        })?;
        let (id, at, l) = s.suspend(root)?;
        if !l.contains("(and 2 children)") {
            return Err(s.failure(&format!("expected 2 children: {l}")));
        }
        let last = s.log[..at]
            .iter()
            .filter_map(|l| tree_a(l))
            .map(|(_, n)| n)
            .max()
            .unwrap_or(0);
        let text = s.transcript(&format!("inspect {id}"))?;
        if !text.contains("tree of 3 processes") || text.matches("module /bin/ticker").count() != 3
        {
            return Err(s.failure(&format!("inspect {id}:\n{text}")));
        }
        let (_, _, l) = s.resume(id, None)?;
        if !l.contains("(3 processes, 3 threads") {
            return Err(s.failure(&format!("expected 3 processes and 3 threads: {l}")));
        }
        // From the suspend on: the resumed tree-a may print before the shell's answer.
        tree_a_continues(&mut s, at, last, "resume")?;
        if let Some(l) = s
            .log
            .iter()
            .find(|l| l.contains("tree-a n=") && l.contains(": "))
        {
            let l = l.clone();
            return Err(s.failure(&format!("tree-a reports a problem: {l}")));
        }
        s.sound()
    })();
    let off = s.power_off();
    println!(
        "    the tree session took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(r.and(off))
}

/// The three-thread ticker: every thread's counter goes on after the resume.
fn threads(a: &Artifacts) -> Result<Outcome> {
    let started = Instant::now();
    let mut s = match boot_copy(a, "suspend-threads", 1)? {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let r = (|| {
        let pid = s.spawn_ticker(1)?;
        for t in 1..=3 {
            s.wait_from(0, &format!("thread {t} at n=3"), LINE_WAIT, |l| {
                tick(l).is_some_and(|x| x.live == pid && x.thread == Some(t) && x.n >= 3)
            })?;
        }
        let (id, at, _) = s.suspend(pid)?;
        let mut last = [0; 4];
        for t in 1..=3 {
            last[t as usize] = last_n(&s, at, pid, Some(t))?;
        }
        let text = s.transcript(&format!("inspect {id}"))?;
        if !text.contains("3 threads, ") {
            return Err(s.failure(&format!("inspect {id} should show 3 threads:\n{text}")));
        }
        let (new, _, l) = s.resume(id, None)?;
        if !l.contains("(1 process, 3 threads") {
            return Err(s.failure(&format!("expected 1 process and 3 threads: {l}")));
        }
        for t in 1..=3u64 {
            carries_on(&mut s, at, new, Some(t), last[t as usize] + 1, pid, None)?;
        }
        s.sound()
    })();
    let off = s.power_off();
    println!(
        "    the threads session took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(r.and(off))
}

/// Replaces `path` on `disk` with `bytes`.
fn mcopy_in(disk: &Path, path: &str, bytes: &[u8]) -> Result<(), String> {
    let local = disk.with_extension(format!("in-{}", path.replace('/', "_")));
    std::fs::write(&local, bytes).map_err(|e| e.to_string())?;
    let r = disk::run(
        "mcopy",
        &[
            "-o",
            "-i",
            &disk.display().to_string(),
            &local.display().to_string(),
            &format!("::{path}"),
        ],
    )
    .map(|_| ())
    .map_err(|e| format!("mcopy to {path}: {e}"));
    let _ = std::fs::remove_file(&local);
    r
}

/// Five tickers suspended in one boot; between the boots the host damages three images (a
/// byte flipped in the middle of the longest section, cut to half, version 2); in the next
/// boot each is refused with `image refused: corrupt or incompatible image`, the core's log
/// naming the defect; then `/bin/ticker` is overwritten (the fourth image's module changed)
/// and removed (the fifth's is missing), each refused too. The shell answers throughout, no
/// process is left half-resumed, no panic.
fn refusals(a: &Artifacts) -> Result<Vec<Outcome>> {
    const CASES: usize = 6;
    let started = Instant::now();
    let disk = default_disk_copy("suspend-refusals.img")?;
    let mut s = match Live::boot(a, &disk, 1, "suspend-refusals-1") {
        Ok(s) => s,
        Err(e) => return Ok(vec![Err(e); CASES]),
    };
    let first = (|| {
        let mut ids = Vec::new();
        for _ in 0..5 {
            let pid = s.spawn_ticker(0)?;
            s.wait_tick(pid, None, 2)?;
            ids.push(s.suspend(pid)?.0);
        }
        Ok(ids)
    })();
    let first = first.and_then(|ids| s.power_off().map(|()| ids));
    let ids = match first {
        Ok(ids) => ids,
        Err(e) => return Ok(vec![Err(e); CASES]),
    };
    // The damage, on the host.
    let damage = (|| -> Result<Vec<&str>, String> {
        let path = |id: u64| format!("/sys/suspended/{id}.img");
        let mut flipped = mcopy_out(&disk, &path(ids[0]))?;
        let layout = procimage::Layout::parse(&flipped).map_err(|e| e.to_string())?;
        let longest = layout
            .sections()
            .max_by_key(|x| x.length)
            .ok_or("no sections")?;
        let at = (longest.offset + longest.length / 2) as usize;
        flipped[at] ^= 0x5a;
        flipped[at + 1] ^= 0xa5;
        mcopy_in(&disk, &path(ids[0]), &flipped)?;
        let whole = mcopy_out(&disk, &path(ids[1]))?;
        mcopy_in(&disk, &path(ids[1]), &whole[..whole.len() / 2])?;
        let mut v2 = mcopy_out(&disk, &path(ids[2]))?;
        v2[8..10].copy_from_slice(&2u16.to_le_bytes());
        mcopy_in(&disk, &path(ids[2]), &v2)?;
        // What the core's log must name for each.
        Ok(vec!["CRC mismatch", "truncated", "version 2"])
    })();
    let defects = match damage {
        Ok(d) => d,
        Err(e) => return Ok(vec![Err(e); CASES]),
    };
    let mut s = match Live::boot(a, &disk, 1, "suspend-refusals-2") {
        Ok(s) => s,
        Err(e) => return Ok(vec![Err(e); CASES]),
    };
    let mut results = Vec::new();
    let refused = |s: &mut Live, id: u64, log_names: Option<&str>| -> Outcome {
        s.pump();
        let typed = s.log.len();
        let (_, l) = s.command(&format!("resume {id}"), |l| {
            l.starts_with(&format!("resume {id}: "))
                || l.starts_with(&format!("resumed image {id} "))
        })?;
        let want =
            format!("resume {id}: image refused: corrupt or incompatible image (see the log)");
        if l != want {
            return Err(s.failure(&format!("expected {want:?}, got {l:?}")));
        }
        if let Some(defect) = log_names
            && s.wait_from(typed, defect, Duration::from_secs(2), |l| {
                l.contains(defect)
            })
            .is_err()
        {
            return Err(s.failure(&format!("the log does not name the defect ({defect:?})")));
        }
        // The shell still answers.
        s.command("uptime", |l| uptime(l).is_some())?;
        Ok(())
    };
    for (i, defect) in defects.iter().enumerate() {
        results.push(refused(&mut s, ids[i], Some(defect)));
    }
    // The module changed: the shell's `write` makes /bin/ticker a text file.
    results.push(
        s.command("write /bin/ticker not the ticker any more", |l| {
            l.contains("wrote ") || l.starts_with("write: ")
        })
        .and_then(|_| refused(&mut s, ids[3], None)),
    );
    // The module is missing: either refusal is clear.
    results.push((|| {
        let rm = s.transcript("rm /bin/ticker")?;
        if rm.contains("rm: ") {
            return Err(s.failure(&format!("rm /bin/ticker:\n{rm}")));
        }
        let id = ids[4];
        let (_, l) = s.command(&format!("resume {id}"), |l| {
            l.starts_with(&format!("resume {id}: ")) || l.starts_with(&format!("resumed image {id} "))
        })?;
        let clear = [
            format!("resume {id}: image refused: corrupt or incompatible image (see the log)"),
            format!(
                "resume {id}: refused: not found (the image is there: is its module missing? see the log)"
            ),
        ];
        if !clear.contains(&l) {
            return Err(s.failure(&format!("a missing module: {l:?}")));
        }
        Ok(())
    })());
    // Nothing half-resumed: no ticker among the processes; the images are still there.
    results.push((|| {
        let ps = s.transcript("ps")?;
        if !ps.contains("PID PARENT STATE") {
            return Err(s.failure(&format!("ps:\n{ps}")));
        }
        if ps
            .lines()
            .any(|l| !l.starts_with('[') && l.trim_end().ends_with(" ticker"))
        {
            return Err(s.failure(&format!("a refused image left a process behind:\n{ps}")));
        }
        s.sound()
    })());
    let off = s.power_off();
    if let Some(last) = results.last_mut() {
        *last = last.clone().and(off);
    }
    println!(
        "    the refusal boots took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(results)
}

/// Each suspend command with wrong arguments prints its usage; with ids and pids that do
/// not exist, an error that says so.
fn shell_errors(a: &Artifacts) -> Result<(Outcome, Outcome)> {
    let mut s = match boot_copy(a, "suspend-shell-errors", 1)? {
        Ok(s) => s,
        Err(e) => return Ok((Err(e.clone()), Err(e))),
    };
    let usage = (|| {
        for (cmd, want) in [
            ("suspend", "error: usage: suspend PID"),
            ("suspend 1 2", "error: usage: suspend PID"),
            ("suspend five", "error: \"five\" is not a number"),
            ("resume", "error: usage: resume ID [CPU]"),
            ("resume 1 2 3", "error: usage: resume ID [CPU]"),
            ("resume 1 one", "error: \"one\" is not a number"),
            ("images now", "error: usage: images"),
            ("inspect", "error: usage: inspect ID"),
            ("inspect x", "error: \"x\" is not a number"),
            ("discard", "error: usage: discard ID"),
            ("migrate", "error: usage: migrate PID CPU"),
            ("migrate 5", "error: usage: migrate PID CPU"),
            (
                "migrate 5 4294967296",
                "error: \"4294967296\" is not a number",
            ),
        ] {
            let (_, l) = s.command(cmd, |l| l.starts_with("error: "))?;
            if l != want {
                return Err(s.failure(&format!("{cmd}: expected {want:?}, got {l:?}")));
            }
        }
        let help = s.transcript("help")?;
        for u in [
            "suspend PID",
            "resume ID [CPU]",
            "images",
            "inspect ID",
            "discard ID",
            "migrate PID CPU",
        ] {
            if !help.contains(&format!("  {u:<20} ")) {
                return Err(s.failure(&format!("help lacks {u:?}:\n{help}")));
            }
        }
        Ok(())
    })();
    let missing = (|| {
        for (cmd, want) in [
            ("suspend 999", "suspend 999: no process 999"),
            ("resume 999", "resume 999: no image /sys/suspended/999.img"),
            (
                "inspect 999",
                "inspect 999: no image /sys/suspended/999.img",
            ),
            (
                "discard 999",
                "discard 999: no image /sys/suspended/999.img",
            ),
            ("migrate 999 0", "migrate 999: no process 999"),
        ] {
            let head = cmd.split(' ').take(2).collect::<Vec<_>>().join(" ") + ":";
            let (_, l) = s.command(cmd, |l| l.starts_with(&head))?;
            if l != want {
                return Err(s.failure(&format!("{cmd}: expected {want:?}, got {l:?}")));
            }
        }
        let text = s.transcript("images")?;
        if !text.contains("(no images)") {
            return Err(s.failure(&format!("images on a fresh disk:\n{text}")));
        }
        s.sound()
    })();
    let off = s.power_off();
    Ok((usage, missing.and(off)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticker_lines_are_read_from_anywhere_in_a_line() {
        assert_eq!(
            tick("[5 ticker] ticker pid=5 n=3 core=0"),
            Some(Tick {
                live: 5,
                pid: 5,
                thread: None,
                n: 3,
                core: 0
            })
        );
        assert_eq!(
            tick("moxie> susp[12 ticker] ticker pid=5 t=2 n=14 core=1"),
            Some(Tick {
                live: 12,
                pid: 5,
                thread: Some(2),
                n: 14,
                core: 1
            })
        );
        assert_eq!(tick("[5 ticker] ticker pid=5 module data lost: x"), None);
        assert_eq!(tick("[5 ticker] ticker pid=5 tree: started"), None);
        assert_eq!(tick("ticker pid=5 n=3 core=0"), None);
        assert_eq!(tree_a("moxie> [7 ticker] tree-a n=12"), Some((7, 12)));
        assert_eq!(tree_a("[7 ticker] tree-a n=12: closed"), None);
        assert_eq!(
            number_after("resumed image 3 as pid 17 (1 process", " as pid "),
            Some(17)
        );
        assert_eq!(uptime("up 0:01:02.500"), Some(62.5));
        assert_eq!(uptime("[5 ticker] up 0:01:02.500"), None);
    }
}
