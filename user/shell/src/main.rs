//! `shell`: the command shell on the serial console, started by init with a copy of the system
//! handle (handle 1) and of the console handle (handle 2). It attaches to the console's input,
//! edits lines (`shellcmd::LineEditor`), parses them (`shellcmd::parse`) and carries them out:
//! process commands through the system handle, file commands through the filesystem protocol
//! on a channel to `fs` that it asks init for ([`Fs::channel`]); suspend, resume, migrate and
//! the images through the system handle, `inspect` by reading the image through the
//! filesystem. Every error says what went wrong; `write`, `rm` and `mkdir` end with an fsync, so a filesystem driver that dies
//! afterwards loses nothing the shell reported done. Ctrl-D on an empty line (what `cargo xtask run` sends at the end of piped input) is
//! the end of input: the shell powers the machine off, as `poweroff` does.
#![no_std]
#![no_main]

extern crate alloc;

use abi::syscall::{DEADLINE_NEVER, DEADLINE_NOW, DeathReport, WaitItem, signal};
use abi::system::state_name;
use abi::{Error, Handle};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use fsproto::{Kind, Reply, Request};
use moxie_rt::{chan, system};
use shellcmd::{Command, Event, LineEditor, suspend};

const PARENT: Handle = Handle(0);
const SYSTEM: Handle = Handle(1);
const CONSOLE: Handle = Handle(2);
const PROMPT: &str = "moxie> ";
/// How long a filesystem or init request may take before the shell gives up on it.
const CALL_TIMEOUT_NS: u64 = 5_000_000_000;

fn out(text: &str) {
    let _ = system::console_write(CONSOLE, text.as_bytes());
}

macro_rules! say {
    ($($arg:tt)*) => {
        out(&format!($($arg)*))
    };
}

/// A child the shell spawned (or resumed from an earlier boot's image), until its death report
/// arrives.
struct Child {
    parent: Handle,
    /// None for a resumed child: the core gives the resumer only its parent channel.
    process: Option<Handle>,
    module: String,
}

impl Child {
    fn close(&self) {
        let _ = chan::close(self.parent);
        if let Some(p) = self.process {
            let _ = chan::close(p);
        }
    }
}

/// The connection to the filesystem driver.
struct Fs {
    chan: Option<Handle>,
    next_id: u32,
    msg: Vec<u8>,
    reply: Vec<u8>,
}

impl Fs {
    /// The channel to `fs`, asked of init on first use and again after the driver went away.
    /// (Once the root disk is wired in, the same request reaches the driver of the disk.)
    fn channel(&mut self) -> Result<Handle, String> {
        if let Some(h) = self.chan {
            return Ok(h);
        }
        let mut req = [0u8; 64];
        let n = initconf::service_request("fs", &mut req).ok_or("bad request")?;
        let give_up = moxie_rt::now() + CALL_TIMEOUT_NS;
        loop {
            chan::send(PARENT, &req[..n], &[]).map_err(|e| format!("cannot ask init: {e}"))?;
            let mut buf = [0u8; 256];
            let mut hs = [Handle(0); 1];
            let (len, k) = chan::recv(PARENT, &mut buf, &mut hs, give_up)
                .map_err(|e| format!("no answer from init: {e}"))?;
            match initconf::ServiceReply::parse(&buf[..len]) {
                Some(initconf::ServiceReply::Connected) if k == 1 => {
                    self.chan = Some(hs[0]);
                    return Ok(hs[0]);
                }
                // Being restarted: ask again shortly.
                Some(initconf::ServiceReply::Refused(why))
                    if why.ends_with("is not running") && moxie_rt::now() < give_up =>
                {
                    moxie_rt::sleep_until(moxie_rt::now() + 100_000_000);
                }
                Some(initconf::ServiceReply::Refused(why)) => return Err(String::from(why)),
                _ => return Err(String::from("a strange answer from init")),
            }
        }
    }

    /// Sends one request and decodes its reply with `f`; reconnects once if the driver went
    /// away (it may have been restarted).
    fn call<T>(
        &mut self,
        req: Request<'_>,
        f: impl Fn(Reply<'_>) -> Option<Result<T, fsproto::Error>>,
    ) -> Result<T, String> {
        for attempt in 0..2 {
            let h = self.channel()?;
            self.next_id = self.next_id.wrapping_add(1);
            let mut req = req;
            req.set_id(self.next_id);
            let len = req
                .encode(&mut self.msg)
                .map_err(|e| format!("cannot encode: {e:?}"))?;
            let sent = chan::send(h, &self.msg[..len], &[]);
            let got = sent.and_then(|()| {
                let deadline = moxie_rt::now() + CALL_TIMEOUT_NS;
                chan::recv(h, &mut self.reply, &mut [], deadline)
            });
            match got {
                Ok((n, _)) => {
                    let reply = Reply::decode(&self.reply[..n])
                        .map_err(|e| format!("bad reply from fs: {e:?}"))?;
                    if let Reply::Rejected { error, .. } = reply {
                        return Err(String::from(error.as_str()));
                    }
                    return match f(reply) {
                        Some(r) => r.map_err(|e| String::from(e.as_str())),
                        None => Err(String::from("a reply to another request")),
                    };
                }
                Err(Error::Closed) if attempt == 0 => {
                    say!("(the filesystem driver closed the connection; reconnecting)\n");
                    let _ = chan::close(h);
                    self.chan = None;
                }
                Err(e) => return Err(format!("filesystem driver: {e}")),
            }
        }
        Err(String::from("filesystem driver unreachable"))
    }
}

impl Fs {
    /// Makes what the driver holds durable on the device (a driver that dies later loses
    /// nothing the shell reported done).
    fn sync(&mut self) -> Result<(), String> {
        self.call(Request::Fsync { id: 0 }, |r| match r {
            Reply::Fsync { result, .. } => Some(result),
            _ => None,
        })
    }
}

/// Entry, called by the runtime.
#[unsafe(no_mangle)]
pub extern "C" fn main(_arg: u64) -> i32 {
    STARTED.store(moxie_rt::now(), core::sync::atomic::Ordering::Relaxed);
    STARTED_BUSY.store(busy(), core::sync::atomic::Ordering::Relaxed);
    let input = match system::console_attach(CONSOLE) {
        Ok(h) => h,
        Err(e) => {
            moxie_rt::println!("shell: cannot read the console: {}", e);
            return 1;
        }
    };
    let mut fs = Fs {
        chan: None,
        next_id: 0,
        msg: vec![0; fsproto::MAX_MESSAGE],
        reply: vec![0; fsproto::MAX_MESSAGE],
    };
    let mut children: Vec<Child> = Vec::new();
    let mut editor = LineEditor::default();
    let mut buf = [0u8; 512];
    out("moxie shell: type help for the commands\n");
    out(PROMPT);
    loop {
        let mut items = vec![WaitItem {
            handle: input.0,
            wanted: signal::READABLE | signal::PEER_CLOSED,
            ..WaitItem::default()
        }];
        items.extend(children.iter().take(15).map(|c| WaitItem {
            handle: c.parent.0,
            wanted: signal::READABLE | signal::PEER_CLOSED,
            ..WaitItem::default()
        }));
        if chan::wait(&mut items, DEADLINE_NEVER).is_err() {
            return 2;
        }
        reap(&mut children);
        let n = match chan::recv(input, &mut buf, &mut [], DEADLINE_NOW) {
            Ok((n, _)) => n,
            Err(Error::Timeout) => continue,
            Err(e) => {
                moxie_rt::println!("shell: console input ended: {}", e);
                return 3;
            }
        };
        for &b in &buf[..n] {
            match editor.feed(b) {
                Event::None => {}
                Event::Echo(e) => {
                    let _ = system::console_write(CONSOLE, e);
                }
                Event::EchoByte(c) => {
                    let _ = system::console_write(CONSOLE, &[c]);
                }
                Event::Line(line) => {
                    out("\n");
                    run(&line, &mut fs, &mut children);
                    reap(&mut children);
                    out(PROMPT);
                }
                Event::EndOfInput => {
                    out("\nend of input\n");
                    power_off(&mut fs);
                }
            }
        }
    }
}

/// Prints the death reports of children that died.
fn reap(children: &mut Vec<Child>) {
    let mut buf = [0u8; DeathReport::SIZE];
    children.retain(
        |c| match chan::recv(c.parent, &mut buf, &mut [], DEADLINE_NOW) {
            Ok((n, _)) => {
                if let Some(r) = DeathReport::from_bytes(&buf[..n]) {
                    let how = match r.kind {
                        abi::syscall::DEATH_EXIT => format!("exited with code {}", r.code),
                        abi::syscall::DEATH_KILLED => String::from("was killed"),
                        abi::syscall::DEATH_PANIC => format!("panicked: {}", r.text()),
                        _ => format!("faulted (kind {}) at {:#x}", r.code, r.addr),
                    };
                    say!("[{} (pid {}) {}]\n", c.module, r.pid, how);
                    c.close();
                    false
                } else {
                    true
                }
            }
            // A suspended child's channel is dormant: kept for its resume.
            Err(Error::Timeout | Error::PeerSuspended) => true,
            Err(_) => {
                c.close();
                false
            }
        },
    );
}

fn run(line: &str, fs: &mut Fs, children: &mut Vec<Child>) {
    let cmd = match shellcmd::parse(line) {
        Ok(c) => c,
        Err(e) => {
            say!("error: {}\n", e);
            return;
        }
    };
    match cmd {
        Command::Nothing => {}
        Command::Help => {
            out("commands:\n");
            for (usage, what) in shellcmd::HELP {
                say!("  {:<20} {}\n", usage, what);
            }
        }
        Command::Ps => ps(),
        Command::Spawn { module, arg } => spawn(&module, arg, children),
        Command::Kill { pid } => match system::kill(SYSTEM, pid) {
            Ok(()) => say!("killed pid {}\n", pid),
            Err(Error::NotFound) => say!("kill: no process {}\n", pid),
            Err(e) => say!("kill: {}: {}\n", pid, e),
        },
        Command::Suspend { pid } => suspend(pid),
        Command::Resume { id, cpu } => resume(fs, id, cpu, children),
        Command::Migrate { pid, cpu } => migrate(pid, cpu, children),
        Command::Images => images(fs),
        Command::Inspect { id } => inspect(fs, id),
        Command::Discard { id } => match system::discard(SYSTEM, id) {
            Ok(()) => say!("{}\n", suspend::discarded(id)),
            Err(e) => say!("{}\n", suspend::discard_error(id, e)),
        },
        Command::Mem => mem(),
        Command::DiskBench { path } => disk_bench(fs, &path),
        Command::Uptime => {
            let ns = moxie_rt::now();
            let s = ns / 1_000_000_000;
            say!(
                "up {}:{:02}:{:02}.{:03}\n",
                s / 3600,
                s / 60 % 60,
                s % 60,
                ns / 1_000_000 % 1000
            );
        }
        Command::PowerOff => power_off(fs),
        Command::Ls { path } => ls(fs, &path),
        Command::Cat { path } => cat(fs, &path),
        Command::Crc { path } => crc(fs, &path),
        Command::Fill { path, bytes } => fill(fs, &path, bytes),
        Command::Write { path, text } => {
            let mut data = Vec::from(text.as_bytes());
            data.push(b'\n');
            let r = fs
                .call(
                    Request::Create {
                        id: 0,
                        path: &path,
                        flags: 1,
                    },
                    |r| match r {
                        Reply::Create { result, .. } => Some(result),
                        _ => None,
                    },
                )
                .and_then(|()| {
                    fs.call(
                        Request::Write {
                            id: 0,
                            path: &path,
                            offset: 0,
                            data: &data,
                        },
                        |r| match r {
                            Reply::Write { result, .. } => Some(result),
                            _ => None,
                        },
                    )
                });
            match r.and_then(|size| fs.sync().map(|()| size)) {
                Ok(size) => say!("wrote {} bytes to {}\n", size, path),
                Err(e) => say!("write: {}: {}\n", path, e),
            }
        }
        Command::Rm { path } => {
            let r = fs.call(Request::Remove { id: 0, path: &path }, |r| match r {
                Reply::Remove { result, .. } => Some(result),
                _ => None,
            });
            let r = r.and_then(|()| fs.sync());
            if let Err(e) = r {
                say!("rm: {}: {}\n", path, e);
            }
        }
        Command::Mkdir { path } => {
            let r = fs.call(Request::Mkdir { id: 0, path: &path }, |r| match r {
                Reply::Mkdir { result, .. } => Some(result),
                _ => None,
            });
            let r = r.and_then(|()| fs.sync());
            if let Err(e) = r {
                say!("mkdir: {}: {}\n", path, e);
            }
        }
    }
}

fn ps() {
    let list = match system::processes(SYSTEM) {
        Ok(l) => l,
        Err(e) => {
            say!("ps: {}\n", e);
            return;
        }
    };
    say!(
        "{:>5} {:>6} {:<8} {:>7} {:>9} {:>10}  {}\n",
        "PID",
        "PARENT",
        "STATE",
        "THREADS",
        "ARENA",
        "CPU",
        "MODULE"
    );
    for p in list {
        say!(
            "{:>5} {:>6} {:<8} {:>7} {:>8}K {:>8}ms  {}\n",
            p.pid,
            p.parent,
            state_name(p.state),
            p.threads,
            p.arena_bytes >> 10,
            p.cpu_ns / 1_000_000,
            p.name()
        );
    }
}

fn mem() {
    match system::memory(SYSTEM) {
        Ok(m) => {
            say!(
                "frames: {} free of {} ({} KiB free)\n",
                m.free_frames,
                m.total_frames,
                m.free_frames * 4
            );
            say!(
                "kernel heap: {} KiB used, {} KiB free\n",
                m.heap_used >> 10,
                m.heap_free >> 10
            );
            say!(
                "channel buffers: {} bytes queued by {} processes\n",
                m.channel_bytes,
                m.processes
            );
            let u = moxie_rt::arena::usage();
            say!(
                "this shell: {} bytes in {} allocations, heap spans {} KiB\n",
                u.allocated,
                u.allocations,
                u.arena >> 10
            );
        }
        Err(e) => say!("mem: {}\n", e),
    }
}

fn spawn(module: &str, arg: u64, children: &mut Vec<Child>) {
    // Pids only grow: the child is the first process with its name above the newest pid now.
    let before = system::processes(SYSTEM)
        .map(|l| l.iter().map(|p| p.pid).max().unwrap_or(0))
        .unwrap_or(0);
    match chan::spawn(module, arg, &[]) {
        Ok((parent, process)) => {
            let name = module.rsplit('/').next().unwrap_or(module);
            let pid = system::processes(SYSTEM)
                .ok()
                .and_then(|l| {
                    l.iter()
                        .filter(|p| p.pid > before && p.name() == name)
                        .map(|p| p.pid)
                        .min()
                })
                .unwrap_or(0);
            match pid {
                0 => say!("started {} (it has already ended)\n", module),
                _ => say!("started {} as pid {}\n", module, pid),
            }
            if children.len() < 15 {
                children.push(Child {
                    parent,
                    process: Some(process),
                    module: String::from(module),
                });
            } else {
                let _ = chan::close(parent);
                let _ = chan::close(process);
            }
        }
        Err(Error::NotFound) => say!("spawn: no module {}\n", module),
        Err(Error::Failed) => say!(
            "spawn: {} cannot be loaded (malformed module, or a bad option)\n",
            module
        ),
        Err(e) => say!("spawn: {}: {}\n", module, e),
    }
}

/// `suspend PID`: the tree's size is taken from the process list first, to say how many
/// descendants went with it.
fn suspend(pid: u64) {
    let children = system::processes(SYSTEM)
        .map(|l| descendants(&l, pid))
        .unwrap_or(0);
    match system::suspend(SYSTEM, pid) {
        Ok(id) => say!("{}\n", suspend::suspended(pid, children, id)),
        Err(e) => say!("{}\n", suspend::suspend_error(pid, e)),
    }
}

/// How many live processes descend from `pid`.
fn descendants(list: &[abi::system::ProcessInfo], pid: u64) -> usize {
    let mut tree = vec![pid];
    // Parents have lower pids than their children, so one pass in pid order finds them all.
    for p in list {
        if tree.contains(&p.parent) && !tree.contains(&p.pid) {
            tree.push(p.pid);
        }
    }
    tree.len() - 1
}

/// A resumed root whose parent channel came to the shell (its old parent is gone, or it comes
/// from an earlier boot) is the shell's child from now on: its death is reported like a
/// spawned one's.
fn adopt(info: &abi::suspend::ResumeInfo, children: &mut Vec<Child>) {
    if info.parent == abi::suspend::NO_PARENT_HANDLE {
        return;
    }
    let parent = Handle(info.parent);
    if children.len() >= 15 {
        let _ = chan::close(parent);
        return;
    }
    let module = system::processes(SYSTEM)
        .ok()
        .and_then(|l| {
            l.iter()
                .find(|p| p.pid == info.pid)
                .map(|p| String::from(p.name()))
        })
        .unwrap_or_else(|| format!("pid {}", info.pid));
    children.push(Child {
        parent,
        process: None,
        module,
    });
}

fn resume(fs: &mut Fs, id: u64, cpu: Option<u32>, children: &mut Vec<Child>) {
    match system::resume(SYSTEM, id, cpu) {
        Ok(info) => {
            say!("{}\n", suspend::resumed(id, cpu, &info));
            adopt(&info, children);
        }
        Err(e) => {
            // `NotFound` for an image that is there means its module is missing.
            let exists = match e {
                Error::NotFound => image_exists(fs, id),
                _ => None,
            };
            say!("{}\n", suspend::resume_error(id, cpu, e, exists));
        }
    }
}

fn migrate(pid: u64, cpu: u32, children: &mut Vec<Child>) {
    match system::migrate(SYSTEM, pid, cpu) {
        Ok(info) => {
            say!("{}\n", suspend::migrated(pid, cpu, &info));
            adopt(&info, children);
        }
        Err(e) => say!("{}\n", suspend::migrate_error(pid, cpu, e)),
    }
}

/// Whether `/sys/suspended/ID.img` is there (`None` when the filesystem does not say).
fn image_exists(fs: &mut Fs, id: u64) -> Option<bool> {
    let path = suspend::image_path(id);
    let r = fs.call(Request::Lookup { id: 0, path: &path }, |r| match r {
        Reply::Lookup { result, .. } => Some(result.map(|_| ())),
        _ => None,
    });
    match r {
        Ok(()) => Some(true),
        Err(e) if e == fsproto::Error::NotFound.as_str() => Some(false),
        Err(_) => None,
    }
}

/// `images`: the ids from the core, the sizes from one listing of the directory.
fn images(fs: &mut Fs) {
    let ids = match system::images(SYSTEM) {
        Ok(ids) => ids,
        Err(e) => {
            say!("images: {}\n", e);
            return;
        }
    };
    let mut sizes: Vec<(String, u64)> = Vec::new();
    if !ids.is_empty() {
        let mut cursor = 0;
        loop {
            let r = fs.call(
                Request::Readdir {
                    id: 0,
                    path: abi::suspend::SUSPENDED_DIR,
                    cursor,
                },
                |r| match r {
                    Reply::Readdir { result, .. } => Some(result.map(|page| {
                        let entries: Vec<(String, u64)> = page
                            .entries()
                            .map(|e| (String::from(e.name), e.size))
                            .collect();
                        (entries, page.next)
                    })),
                    _ => None,
                },
            );
            // Without the listing the ids still show, with unknown sizes.
            let Ok((entries, next)) = r else { break };
            sizes.extend(entries);
            if next == fsproto::END_CURSOR {
                break;
            }
            cursor = next;
        }
    }
    let rows: Vec<(u64, Option<u64>)> = ids
        .iter()
        .map(|&id| {
            let name = format!("{id}.img");
            (id, sizes.iter().find(|(n, _)| *n == name).map(|(_, s)| *s))
        })
        .collect();
    out(&suspend::images_table(&rows));
}

/// `inspect ID`: reads the image through the filesystem and summarises it.
fn inspect(fs: &mut Fs, id: u64) {
    let path = suspend::image_path(id);
    match read_file(fs, &path) {
        Ok(bytes) => out(&suspend::inspect(id, &bytes)),
        Err(e) if e == fsproto::Error::NotFound.as_str() => {
            say!("inspect {}: no image {}\n", id, path)
        }
        Err(e) => say!("inspect {}: {}: {}\n", id, path, e),
    }
}

/// A whole file.
fn read_file(fs: &mut Fs, path: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    loop {
        let r = fs.call(
            Request::Read {
                id: 0,
                path,
                offset: bytes.len() as u64,
                len: fsproto::MAX_DATA as u32,
            },
            |r| match r {
                Reply::Read { result, .. } => Some(result.map(|(d, _)| Vec::from(d))),
                _ => None,
            },
        )?;
        bytes.extend_from_slice(&r);
        if r.len() < fsproto::MAX_DATA {
            return Ok(bytes);
        }
    }
}

fn ls(fs: &mut Fs, path: &str) {
    let mut cursor = 0;
    let mut lines = Vec::new();
    loop {
        let r = fs.call(
            Request::Readdir {
                id: 0,
                path,
                cursor,
            },
            |r| match r {
                Reply::Readdir { result, .. } => Some(result.map(|page| {
                    let entries: Vec<String> = page
                        .entries()
                        .map(|e| match e.kind {
                            Kind::Dir => format!("{:>10}  {}/\n", "<dir>", e.name),
                            Kind::File => format!("{:>10}  {}\n", e.size, e.name),
                        })
                        .collect();
                    (entries, page.next)
                })),
                _ => None,
            },
        );
        match r {
            Ok((entries, next)) => {
                lines.extend(entries);
                if next == fsproto::END_CURSOR {
                    break;
                }
                cursor = next;
            }
            Err(e) => {
                say!("ls: {}: {}\n", path, e);
                return;
            }
        }
    }
    if lines.is_empty() {
        out("(empty)\n");
    }
    for l in lines {
        out(&l);
    }
}

fn cat(fs: &mut Fs, path: &str) {
    let mut offset = 0u64;
    loop {
        let r = fs.call(
            Request::Read {
                id: 0,
                path,
                offset,
                len: fsproto::MAX_DATA as u32,
            },
            |r| match r {
                Reply::Read { result, .. } => Some(result.map(|(d, _)| Vec::from(d))),
                _ => None,
            },
        );
        match r {
            Ok(data) => {
                let _ = system::console_write(CONSOLE, &data);
                if data.len() < fsproto::MAX_DATA {
                    return;
                }
                offset += data.len() as u64;
            }
            Err(e) => {
                say!("cat: {}: {}\n", path, e);
                return;
            }
        }
    }
}

/// Prints `crc32 XXXXXXXX SIZE PATH` for the file.
fn crc(fs: &mut Fs, path: &str) {
    let mut h = crc32fast::Hasher::new();
    let mut offset = 0u64;
    loop {
        let r = fs.call(
            Request::Read {
                id: 0,
                path,
                offset,
                len: fsproto::MAX_DATA as u32,
            },
            |r| match r {
                Reply::Read { result, .. } => Some(result.map(|(d, _)| Vec::from(d))),
                _ => None,
            },
        );
        match r {
            Ok(d) => {
                h.update(&d);
                let n = d.len();
                offset += n as u64;
                if n < fsproto::MAX_DATA {
                    break;
                }
            }
            Err(e) => {
                say!(
                    "crc: {}: {}
",
                    path,
                    e
                );
                return;
            }
        }
    }
    say!("crc32 {:08x} {} {}\n", h.finalize(), offset, path);
}

/// Makes `path` hold `bytes` bytes of `shellcmd::fill_byte`'s pattern, then fsyncs.
fn fill(fs: &mut Fs, path: &str, bytes: u64) {
    let created = fs.call(
        Request::Create {
            id: 0,
            path,
            flags: 1,
        },
        |r| match r {
            Reply::Create { result, .. } => Some(result),
            _ => None,
        },
    );
    if let Err(e) = created {
        say!("fill: {}: {}\n", path, e);
        return;
    }
    let mut data = Vec::with_capacity(fsproto::MAX_DATA);
    let mut offset = 0u64;
    while offset < bytes {
        let n = (bytes - offset).min(fsproto::MAX_DATA as u64);
        data.clear();
        data.extend((offset..offset + n).map(shellcmd::fill_byte));
        let r = fs.call(
            Request::Write {
                id: 0,
                path,
                offset,
                data: &data,
            },
            |r| match r {
                Reply::Write { result, .. } => Some(result),
                _ => None,
            },
        );
        if let Err(e) = r {
            say!("fill: {}: {} (at byte {})\n", path, e, offset);
            return;
        }
        offset += n;
    }
    match fs.sync() {
        Ok(()) => say!("filled {} with {} bytes\n", path, bytes),
        Err(e) => say!("fill: {}: {}\n", path, e),
    }
}

/// When the shell started (ns since boot; under `-icount` instructions).
static STARTED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// The CPU time of every process when the shell started.
static STARTED_BUSY: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The CPU time of every live process together (ns; under `-icount shift=0` instructions).
fn busy() -> u64 {
    system::processes(SYSTEM)
        .map(|l| l.iter().map(|p| p.cpu_ns).sum())
        .unwrap_or(0)
}

/// `diskbench FILE`: 16 MiB written to FILE 32 KiB at a time and fsynced, read back
/// sequentially, then 256 reads of 4 KiB at pseudo-random 4 KiB-aligned offsets. Each phase
/// is printed as `bench: KEY VALUE instr_per_MiB`, VALUE the CPU time all processes (shell,
/// fs, blk: each includes the core's work in its system calls) used in it, which under
/// `-icount shift=0` counts their instructions; `KEY_elapsed` is the clock's advance, which
/// also counts the jumps QEMU makes over idle time (`docs/benchmarks.md`). `boot_to_shell`
/// is the clock when the shell started, `boot_to_shell_busy` the CPU time of the processes
/// until then.
fn disk_bench(fs: &mut Fs, path: &str) {
    const TOTAL: u64 = 16 << 20;
    // 32 KiB requests, as the Linux baseline's (not the protocol's largest).
    const CHUNK: usize = 32 << 10;
    const RANDOM_READS: u64 = 256;
    say!(
        "bench: boot_to_shell {} instr\n",
        STARTED.load(core::sync::atomic::Ordering::Relaxed)
    );
    say!(
        "bench: boot_to_shell_busy {} instr\n",
        STARTED_BUSY.load(core::sync::atomic::Ordering::Relaxed)
    );
    let create = fs.call(
        Request::Create {
            id: 0,
            path,
            flags: 1,
        },
        |r| match r {
            Reply::Create { result, .. } => Some(result),
            _ => None,
        },
    );
    if let Err(e) = create {
        say!("diskbench: {}: {}\n", path, e);
        return;
    }
    let data: Vec<u8> = (0..CHUNK as u64).map(shellcmd::fill_byte).collect();
    let t0 = (moxie_rt::now(), busy());
    let mut offset = 0;
    while offset < TOTAL {
        let r = fs.call(
            Request::Write {
                id: 0,
                path,
                offset,
                data: &data,
            },
            |r| match r {
                Reply::Write { result, .. } => Some(result),
                _ => None,
            },
        );
        if let Err(e) = r {
            say!("diskbench: {}: {} (at byte {})\n", path, e, offset);
            return;
        }
        offset += data.len() as u64;
    }
    if let Err(e) = fs.sync() {
        say!("diskbench: {}: {}\n", path, e);
        return;
    }
    let t1 = (moxie_rt::now(), busy());
    let read = |fs: &mut Fs, offset: u64, len: usize| {
        fs.call(
            Request::Read {
                id: 0,
                path,
                offset,
                len: len as u32,
            },
            |r| match r {
                Reply::Read { result, .. } => Some(result.map(|(d, _)| d.len())),
                _ => None,
            },
        )
    };
    let mut offset = 0;
    while offset < TOTAL {
        match read(fs, offset, CHUNK) {
            Ok(0) => break,
            Ok(n) => offset += n as u64,
            Err(e) => {
                say!("diskbench: {}: {} (at byte {})\n", path, e, offset);
                return;
            }
        }
    }
    let t2 = (moxie_rt::now(), busy());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..RANDOM_READS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (x % (TOTAL / 4096)) * 4096;
        if let Err(e) = read(fs, at, 4096) {
            say!("diskbench: {}: {} (at byte {})\n", path, e, at);
            return;
        }
    }
    let t3 = (moxie_rt::now(), busy());
    let mib = TOTAL >> 20;
    let random_mib = RANDOM_READS * 4096;
    for (key, from, to, per) in [
        ("file_write_16m_fsync", t0, t1, mib << 20),
        ("file_read_16m", t1, t2, mib << 20),
        ("file_read_4k_random", t2, t3, random_mib),
    ] {
        // Per MiB: the figure times 2^20 over the bytes moved.
        let scale = |d: u64| (d as u128 * (1 << 20) / per as u128) as u64;
        say!(
            "bench: {} {} instr_per_MiB\n",
            key,
            scale(to.1.saturating_sub(from.1))
        );
        say!(
            "bench: {}_elapsed {} instr_per_MiB\n",
            key,
            scale(to.0.saturating_sub(from.0))
        );
    }
}

fn power_off(fs: &mut Fs) -> ! {
    if fs.chan.is_some() {
        let r = fs.call(Request::Fsync { id: 0 }, |r| match r {
            Reply::Fsync { result, .. } => Some(result),
            _ => None,
        });
        if let Err(e) = r {
            say!("poweroff: fsync failed: {}\n", e);
        }
    }
    out("powering off\n");
    let e = system::power_off(SYSTEM);
    say!("poweroff: {}\n", e);
    moxie_rt::exit(4)
}
