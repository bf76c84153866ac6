//! `init`: the first process and the root of the process tree. The core gives it the system
//! handle (handle 1) and the console handle (handle 2), and, when there is a root filesystem,
//! its driver's parent channel (handle 3). It reads its configuration (`docs/init.md`:
//! `/etc/init.conf` from the root filesystem, see [`config_text`]),
//! starts each service in order with the handles the configuration names, logs every death
//! report it receives (exit code, fault kind and address, panic text), and starts a dead
//! service again according to its restart policy after an exponential back-off (100 ms,
//! doubling, at most 10 s; reset after 30 s of life). Services that hold a channel to a dead
//! service are ended too, so that they restart connected to its successor.
//!
//! The root filesystem's driver, which the core started, is supervised the same way: its
//! parent channel is handle 3, and init restarts it through `system_root_restart`.
//!
//! A child may ask init for a new channel to a service by name (`initconf::service_request`
//! on its parent channel); init creates the channel, hands one end to the service with the
//! service's connect message, and returns the other.
#![no_std]
#![no_main]

extern crate alloc;

use abi::syscall::{DEADLINE_NEVER, DeathReport, WaitItem, fault, signal};
use abi::{Error, Handle, Rights};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use initconf::{Config, Gift, Service};
use moxie_rt::{chan, println, system};

const SYSTEM: Handle = Handle(1);
const CONSOLE: Handle = Handle(2);
/// init's channel to the root filesystem's driver (0: none).
static ROOT_FS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
/// Whether the core gave init a root filesystem (it is then restarted when it dies).
static HAS_ROOT_FS: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// The name under which init hands out channels to the root filesystem.
const ROOT_FS_SERVICE: &str = "fs";

/// The configuration read from the root disk.
const CONFIG_PATH: &str = "/etc/init.conf";
/// The built-in copy of the root disk's configuration, used when the file is missing.
const DISK_DEFAULT: &str = include_str!("../../../rootfs/etc/init.conf");
/// The built-in configuration for a boot without a root filesystem: a RAM disk, the
/// filesystem driver on it and the shell, all from the boot bundle.
const RAM_CONFIG: &str = include_str!("../ram.conf");
/// Largest configuration file read.
const MAX_CONFIG: usize = 64 * 1024;

/// The configuration text: `/etc/init.conf` from the root filesystem (`root`: the channel
/// the core gave init), the built-in copy of the default when that file is missing (with a
/// warning), or the built-in RAM-disk configuration when there is no root filesystem.
fn config_text(root: Option<Handle>) -> Result<String, String> {
    let Some(root) = root else {
        println!("init: no root filesystem; using the built-in RAM-disk configuration");
        return Ok(String::from(RAM_CONFIG));
    };
    match read_file(root, CONFIG_PATH) {
        Ok(bytes) => {
            String::from_utf8(bytes).map_err(|_| format!("{CONFIG_PATH} is not UTF-8 text"))
        }
        Err(fsproto::Error::NotFound) => {
            println!("init: warning: no {CONFIG_PATH}; using the built-in default configuration");
            Ok(String::from(DISK_DEFAULT))
        }
        Err(e) => Err(format!("cannot read {CONFIG_PATH}: {}", e.as_str())),
    }
}

/// Reads the whole file at `path` over the filesystem protocol on `h`.
fn read_file(h: Handle, path: &str) -> Result<Vec<u8>, fsproto::Error> {
    let mut msg = alloc::vec![0u8; fsproto::MAX_MESSAGE];
    let mut reply = alloc::vec![0u8; fsproto::MAX_MESSAGE];
    let mut out = Vec::new();
    for id in 1.. {
        let req = fsproto::Request::Read {
            id,
            path,
            offset: out.len() as u64,
            len: fsproto::MAX_DATA as u32,
        };
        let n = req.encode(&mut msg).map_err(|_| fsproto::Error::BadPath)?;
        chan::send(h, &msg[..n], &[]).map_err(|_| fsproto::Error::Io)?;
        let deadline = moxie_rt::now() + 10_000_000_000;
        let (n, _) =
            chan::recv(h, &mut reply, &mut [], deadline).map_err(|_| fsproto::Error::Io)?;
        match fsproto::Reply::decode(&reply[..n]) {
            Ok(fsproto::Reply::Read { id: got, result }) if got == id => {
                let (data, _size) = result?;
                out.extend_from_slice(data);
                if data.len() < fsproto::MAX_DATA {
                    break;
                }
                if out.len() > MAX_CONFIG {
                    return Err(fsproto::Error::TooBig);
                }
            }
            Ok(fsproto::Reply::Rejected { error, .. }) => return Err(error),
            _ => return Err(fsproto::Error::Io),
        }
    }
    Ok(out)
}

/// A running (or waiting to restart) service.
struct Running {
    /// init's end of its parent channel, while it runs.
    parent: Option<Handle>,
    /// Its process handle, while it runs.
    process: Option<Handle>,
    /// Its pid (learnt from its death report or the process list).
    pid: u64,
    /// When it was started (ns since boot).
    started: u64,
    /// Deaths in a row without a long life between them.
    failures: u32,
    /// When to start it again (ns since boot), if it is waiting to.
    restart_at: Option<u64>,
}

/// Entry, called by the runtime.
#[unsafe(no_mangle)]
pub extern "C" fn main(arg: u64) -> i32 {
    let root = (arg & abi::system::INIT_HAS_ROOT_FS != 0)
        .then_some(Handle(abi::system::INIT_ROOT_FS_HANDLE));
    ROOT_FS.store(
        root.map_or(0, |h| h.0),
        core::sync::atomic::Ordering::Relaxed,
    );
    HAS_ROOT_FS.store(root.is_some(), core::sync::atomic::Ordering::Relaxed);
    let text = match config_text(root) {
        Ok(t) => t,
        Err(e) => {
            println!("init: {}", e);
            return 1;
        }
    };
    let config = match initconf::parse(&text) {
        Ok(c) => c,
        Err(e) => {
            println!("init: bad configuration: {}", e);
            return 1;
        }
    };
    println!("init: {} services configured", config.services.len());
    // The root filesystem's driver, which the core started: supervised like a service
    // (restart always), restarted through the system handle.
    let mut root_fs = root.map(|h| Running {
        parent: Some(h),
        process: None,
        pid: newest_pid_of("fs"),
        started: moxie_rt::now(),
        failures: 0,
        restart_at: None,
    });
    let mut run: Vec<Running> = config
        .services
        .iter()
        .map(|_| Running {
            parent: None,
            process: None,
            pid: 0,
            started: 0,
            failures: 0,
            restart_at: Some(0),
        })
        .collect();
    loop {
        let now = moxie_rt::now();
        for i in 0..run.len() {
            if run[i].restart_at.is_some_and(|t| t <= now) {
                run[i].restart_at = None;
                start(&config, &mut run, i);
            }
        }
        if let Some(r) = root_fs.as_mut()
            && r.restart_at.is_some_and(|t| t <= now)
        {
            r.restart_at = None;
            restart_root_fs(r);
        }
        let next_restart = run
            .iter()
            .chain(root_fs.iter())
            .filter_map(|r| r.restart_at)
            .min();
        let watched: Vec<usize> = (0..run.len())
            .filter(|&i| run[i].parent.is_some())
            .collect();
        let root_watched = root_fs.as_ref().and_then(|r| r.parent);
        if watched.is_empty() && root_watched.is_none() {
            match next_restart {
                Some(t) => {
                    moxie_rt::sleep_until(t);
                    continue;
                }
                None => {
                    println!("init: no service left to run or restart");
                    return 0;
                }
            }
        }
        let mut items: Vec<WaitItem> = watched
            .iter()
            .map(|&i| WaitItem {
                handle: run[i].parent.map_or(0, |h| h.0),
                wanted: signal::READABLE | signal::PEER_CLOSED,
                ..WaitItem::default()
            })
            .collect();
        if let Some(h) = root_watched {
            items.push(WaitItem {
                handle: h.0,
                wanted: signal::READABLE | signal::PEER_CLOSED,
                ..WaitItem::default()
            });
        }
        match chan::wait(&mut items, next_restart.unwrap_or(DEADLINE_NEVER)) {
            Ok(_) | Err(Error::Timeout) => {}
            Err(e) => {
                println!("init: wait failed: {}", e);
                moxie_rt::sleep_until(moxie_rt::now() + 10_000_000);
                continue;
            }
        }
        for (k, &i) in watched.iter().enumerate() {
            if items[k].observed & (signal::READABLE | signal::PEER_CLOSED) != 0 {
                drain(&config, &mut run, i);
            }
        }
        if let (Some(r), Some(item)) = (root_fs.as_mut(), items.get(watched.len()))
            && root_watched.is_some()
            && item.observed & (signal::READABLE | signal::PEER_CLOSED) != 0
            && drain_root_fs(r)
        {
            // Services given a channel to the old driver restart connected to the new one.
            for (j, other) in config.services.iter().enumerate() {
                if other.gifts.contains(&Gift::Service(ROOT_FS_SERVICE))
                    && let Some(p) = run[j].process
                {
                    println!("init: ending {} (it used {})", other.name, ROOT_FS_SERVICE);
                    let _ = chan::kill(p);
                }
            }
        }
    }
}

/// Reads the root filesystem driver's parent channel; on its death report (or the channel
/// closing) logs the death, forgets the channel and schedules the restart. Returns whether
/// the driver died.
fn drain_root_fs(r: &mut Running) -> bool {
    let Some(parent) = r.parent else {
        return false;
    };
    let mut buf = [0u8; 512];
    let mut hs = [Handle(0); abi::limits::MAX_MESSAGE_HANDLES];
    let report = loop {
        match chan::recv(parent, &mut buf, &mut hs, abi::syscall::DEADLINE_NOW) {
            Ok((n, k)) => {
                for h in &hs[..k] {
                    let _ = chan::close(*h);
                }
                if let Some(d) = DeathReport::from_bytes(&buf[..n]) {
                    break Some(d);
                }
            }
            Err(Error::Timeout) => return false,
            Err(_) => break None,
        }
    };
    match report {
        Some(d) => println!("init: {} (pid {}) {}", ROOT_FS_SERVICE, d.pid, how(&d)),
        None => println!("init: {} closed its channel", ROOT_FS_SERVICE),
    }
    let _ = chan::close(parent);
    r.parent = None;
    ROOT_FS.store(0, core::sync::atomic::Ordering::Relaxed);
    let now = moxie_rt::now();
    if now.saturating_sub(r.started) >= initconf::BACKOFF_RESET_MS * 1_000_000 {
        r.failures = 0;
    }
    r.failures = r.failures.saturating_add(1);
    let wait = initconf::backoff_ms(r.failures);
    println!("init: restarting {} in {} ms", ROOT_FS_SERVICE, wait);
    r.restart_at = Some(now + wait * 1_000_000);
    true
}

/// Asks the core to start the root filesystem's drivers again (`system_root_restart`); the
/// core reads modules through the new driver, and init serves it as [`ROOT_FS_SERVICE`].
fn restart_root_fs(r: &mut Running) {
    r.started = moxie_rt::now();
    match system::root_restart(SYSTEM) {
        Ok(h) => {
            r.parent = Some(h);
            r.pid = newest_pid_of("fs");
            ROOT_FS.store(h.0, core::sync::atomic::Ordering::Relaxed);
            println!(
                "init: started {} (the root filesystem, bin/fs) as pid {}",
                ROOT_FS_SERVICE, r.pid
            );
        }
        Err(e) => {
            r.failures = r.failures.saturating_add(1);
            let wait = initconf::backoff_ms(r.failures);
            println!(
                "init: cannot restart {}: {}; trying again in {} ms",
                ROOT_FS_SERVICE, e, wait
            );
            r.restart_at = Some(moxie_rt::now() + wait * 1_000_000);
        }
    }
}

/// Reads what service `i`'s parent channel holds: requests, its death report, the close.
fn drain(config: &Config<'_>, run: &mut [Running], i: usize) {
    let Some(parent) = run[i].parent else {
        return;
    };
    let mut buf = [0u8; 512];
    let mut hs = [Handle(0); abi::limits::MAX_MESSAGE_HANDLES];
    loop {
        match chan::recv(parent, &mut buf, &mut hs, abi::syscall::DEADLINE_NOW) {
            Ok((n, k)) => {
                for h in &hs[..k] {
                    let _ = chan::close(*h);
                }
                let msg = &buf[..n];
                if let Some(r) = DeathReport::from_bytes(msg) {
                    died(config, run, i, &r);
                    return;
                }
                if let Some(name) = initconf::parse_request(msg) {
                    answer(config, run, parent, name);
                }
            }
            Err(Error::Timeout) => return,
            Err(_) => {
                // Closed without a report (never expected: the kernel reports first).
                println!("init: {} closed its channel", config.services[i].name);
                gone(config, run, i, false);
                return;
            }
        }
    }
}

/// Answers a child's request for a channel to service `name`.
fn answer(config: &Config<'_>, run: &[Running], to: Handle, name: &str) {
    match connect(config, run, name) {
        Ok(end) => {
            if chan::send(to, initconf::REPLY_OK, &[end]).is_err() {
                let _ = chan::close(end);
            }
        }
        Err(why) => {
            let mut msg = Vec::from(initconf::REPLY_ERR);
            msg.extend_from_slice(why.as_bytes());
            let _ = chan::send(to, &msg, &[]);
        }
    }
}

/// A new channel to the running service `name`: one end goes to the service with its connect
/// message, the other is returned.
fn connect(config: &Config<'_>, run: &[Running], name: &str) -> Result<Handle, String> {
    let Some(i) = config.services.iter().position(|s| s.name == name) else {
        return connect_root_fs(name);
    };
    let magic = config.services[i]
        .connect
        .ok_or_else(|| format!("service \"{name}\" takes no connections"))?;
    let to = run[i]
        .parent
        .ok_or_else(|| format!("service \"{name}\" is not running"))?;
    let (mine, theirs) = chan::channel_create().map_err(|e| format!("channel: {e}"))?;
    if let Err(e) = chan::send(to, magic.as_bytes(), &[theirs]) {
        let _ = chan::close(mine);
        let _ = chan::close(theirs);
        return Err(format!("service \"{name}\" does not answer: {e}"));
    }
    Ok(mine)
}

/// A new channel to the root filesystem's driver (the service [`ROOT_FS_SERVICE`] when the
/// configuration does not define it): the other end goes to the driver with its connect
/// message, on init's own channel to it.
fn connect_root_fs(name: &str) -> Result<Handle, String> {
    let root = ROOT_FS.load(core::sync::atomic::Ordering::Relaxed);
    if name != ROOT_FS_SERVICE || !HAS_ROOT_FS.load(core::sync::atomic::Ordering::Relaxed) {
        return Err(format!("no service \"{name}\""));
    }
    if root == 0 {
        return Err(format!("service \"{name}\" is not running"));
    }
    let (mine, theirs) = chan::channel_create().map_err(|e| format!("channel: {e}"))?;
    if chan::send(Handle(root), fsproto::CONNECT, &[theirs]).is_err() {
        // Its channel is closed: the driver died, and its death report is on the way; it
        // is restarted then. Clients ask again.
        let _ = chan::close(mine);
        let _ = chan::close(theirs);
        return Err(format!("service \"{name}\" is not running"));
    }
    Ok(mine)
}

/// Starts service `i`.
fn start(config: &Config<'_>, run: &mut [Running], i: usize) {
    let s = &config.services[i];
    let mut gifts = Vec::new();
    let mut problem = None;
    for g in &s.gifts {
        let h = match g {
            Gift::System => {
                system::duplicate(SYSTEM, Rights::SYSTEM_ALL).map_err(|e| format!("{e}"))
            }
            Gift::Console => {
                system::duplicate(CONSOLE, Rights::CONSOLE_ALL).map_err(|e| format!("{e}"))
            }
            Gift::Service(name) => connect(config, run, name),
        };
        match h {
            Ok(h) => gifts.push(h),
            Err(e) => {
                problem = Some(e);
                break;
            }
        }
    }
    let result = match problem {
        Some(e) => Err(e),
        None => chan::spawn_with_ceiling(s.module, s.arg, &gifts, s.ceiling_mib << 20)
            .map_err(|e| format!("{e}")),
    };
    match result {
        Ok((parent, process)) => {
            let pid = newest_pid(s);
            println!("init: started {} ({}) as pid {}", s.name, s.module, pid);
            let r = &mut run[i];
            r.parent = Some(parent);
            r.process = Some(process);
            r.pid = pid;
            r.started = moxie_rt::now();
        }
        Err(e) => {
            for h in gifts {
                let _ = chan::close(h);
            }
            println!("init: cannot start {} ({}): {}", s.name, s.module, e);
            schedule(s, &mut run[i], false);
        }
    }
}

/// The pid of the newest process spawned from `s`'s module (init has just spawned it).
fn newest_pid(s: &Service<'_>) -> u64 {
    newest_pid_of(s.module.rsplit('/').next().unwrap_or(s.module))
}

/// The pid of the newest live process whose module is called `module`.
fn newest_pid_of(module: &str) -> u64 {
    system::processes(SYSTEM)
        .ok()
        .and_then(|l| l.iter().filter(|p| p.name() == module).map(|p| p.pid).max())
        .unwrap_or(0)
}

/// Logs a death report and handles the death.
fn died(config: &Config<'_>, run: &mut [Running], i: usize, r: &DeathReport) {
    let name = config.services[i].name;
    println!("init: {} (pid {}) {}", name, r.pid, how(r));
    let clean = r.kind == abi::syscall::DEATH_EXIT && r.code == 0;
    gone(config, run, i, clean);
}

/// How a death report says the process died.
fn how(r: &DeathReport) -> String {
    match r.kind {
        abi::syscall::DEATH_EXIT => format!("exited with code {}", r.code),
        abi::syscall::DEATH_KILLED => String::from("was killed"),
        abi::syscall::DEATH_PANIC => format!("panicked: {}", r.text()),
        abi::syscall::DEATH_FAULT => format!(
            "faulted: {} at address {:#x} (instruction {:#x})",
            fault_name(r.code),
            r.addr,
            r.rip
        ),
        k => format!("died (report kind {k})"),
    }
}

fn fault_name(code: i64) -> &'static str {
    match code {
        fault::PAGE_FAULT => "page fault",
        fault::PROTECTION => "protection fault",
        fault::GENERAL_PROTECTION => "general protection fault",
        fault::INVALID_OPCODE => "invalid opcode",
        fault::DIVIDE_BY_ZERO => "divide by zero",
        fault::STACK_OVERFLOW => "stack overflow",
        fault::ARENA_CEILING => "arena ceiling",
        _ => "exception",
    }
}

/// Service `i` is gone: close its handles, end the services holding channels to it, and
/// schedule its restart if its policy says so.
fn gone(config: &Config<'_>, run: &mut [Running], i: usize, clean: bool) {
    let r = &mut run[i];
    for h in [r.parent.take(), r.process.take()].into_iter().flatten() {
        let _ = chan::close(h);
    }
    let s = &config.services[i];
    schedule(s, &mut run[i], clean);
    for (j, other) in config.services.iter().enumerate() {
        let uses = other.gifts.contains(&Gift::Service(s.name));
        if uses && let Some(p) = run[j].process {
            println!("init: ending {} (it used {})", other.name, s.name);
            let _ = chan::kill(p);
        }
    }
}

/// Decides on a restart of `s` after a death (or a failed start).
fn schedule(s: &Service<'_>, r: &mut Running, clean: bool) {
    if !s.restart.restarts(clean) {
        println!("init: {} stays down (restart policy)", s.name);
        return;
    }
    let now = moxie_rt::now();
    if r.started != 0 && now.saturating_sub(r.started) >= initconf::BACKOFF_RESET_MS * 1_000_000 {
        r.failures = 0;
    }
    r.failures = r.failures.saturating_add(1);
    let wait = initconf::backoff_ms(r.failures);
    println!("init: restarting {} in {} ms", s.name, wait);
    r.restart_at = Some(now + wait * 1_000_000);
}
