//! `cargo xtask image ...`: suspended-process images (`/sys/suspended/<id>.img`, the format of
//! `docs/image-format.md`) on the host, read with the same `procimage` parser the core uses.
//!
//! | command | what it does |
//! |---|---|
//! | `image inspect FILE [--json]` | the header, every section (kind, process, offset, length, CRC ok/bad), and per process its module reference, record (spawn limits included), memory pages (arena, stacks, module data), threads, handles (thread spawners and live or ended threads among them) and queued messages |
//! | `image verify FILE` | `FILE: ok (N sections, M bytes)` and exit 0, or the defect and exit 1 |
//! | `image pull DISK [DIR]` | copies every `/sys/suspended/*.img` out of a FAT disk image (`mcopy`) into DIR (default `.`) and verifies each |
//! | `image make-sample FILE [--single]` | writes a valid sample image (a tree of three processes, or one process) |
use crate::{disk, prereq};
use anyhow::{Context, Result};
use clap::Subcommand;
use procimage::{
    Image, KindName, Layout, Link, ObjectKind, Process, Receiver, SectionKind, ThreadState,
};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What `cargo xtask image` does.
#[derive(Subcommand)]
pub enum Action {
    /// Print an image's header, sections, processes, threads, handles and messages.
    Inspect {
        /// The image file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check an image completely; exit 0 when the core would accept it.
    Verify {
        /// The image file.
        file: PathBuf,
    },
    /// Copy every /sys/suspended/*.img out of a FAT disk image and verify each.
    Pull {
        /// The disk image (e.g. a copy of target/moxie/root.img).
        disk: PathBuf,
        /// Where the images go (default: the current directory).
        dir: Option<PathBuf>,
    },
    /// Write a valid sample image (no kernel needed).
    MakeSample {
        /// The file to write.
        file: PathBuf,
        /// One process instead of a tree of three.
        #[arg(long)]
        single: bool,
    },
}

/// Runs an image command; returns false when an image was refused (the caller exits with 1).
pub fn run(action: Action) -> Result<bool> {
    match action {
        Action::Inspect { file, json } => {
            let bytes = read(&file)?;
            let (out, ok) = if json {
                let v = inspect_json(&file.display().to_string(), &bytes);
                let ok = v["ok"] == Value::Bool(true);
                (serde_json::to_string_pretty(&v)? + "\n", ok)
            } else {
                inspect_text(&file.display().to_string(), &bytes)
            };
            print!("{out}");
            Ok(ok)
        }
        Action::Verify { file } => Ok(report(&file, verify(&read(&file)?))),
        Action::Pull { disk, dir } => {
            prereq::ensure_fat_tools()?;
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            let pulled = pull(&disk, &dir)?;
            if pulled.is_empty() {
                println!("{}: no images in /sys/suspended", disk.display());
            }
            let mut ok = true;
            for (path, result) in pulled {
                ok &= report(&path, result);
            }
            Ok(ok)
        }
        Action::MakeSample { file, single } => {
            let bytes = if single {
                procimage::sample::single()
            } else {
                procimage::sample::tree()
            };
            std::fs::write(&file, &bytes).with_context(|| format!("writing {}", file.display()))?;
            println!("{}: sample image, {} bytes", file.display(), bytes.len());
            Ok(true)
        }
    }
}

fn read(file: &Path) -> Result<Vec<u8>> {
    std::fs::read(file).with_context(|| format!("reading {}", file.display()))
}

/// Prints a verification result as `FILE: ...`; returns whether it was ok.
fn report(file: &Path, result: Result<String, String>) -> bool {
    match result {
        Ok(line) => {
            println!("{}: {line}", file.display());
            true
        }
        Err(defect) => {
            eprintln!("{}: {defect}", file.display());
            false
        }
    }
}

/// `ok (N sections, M bytes)`, or the defect the parser names.
pub fn verify(bytes: &[u8]) -> Result<String, String> {
    let img = Image::parse(bytes).map_err(|e| e.to_string())?;
    Ok(format!(
        "ok ({} sections, {} bytes)",
        img.header().sections,
        img.total_len()
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn state(s: ThreadState) -> &'static str {
    match s {
        ThreadState::Runnable => "runnable",
        ThreadState::Blocked => "blocked",
    }
}

fn link_text(kind: ObjectKind, l: Link) -> String {
    match l {
        // A thread object without a link is a live thread of the holder.
        Link::None if kind == ObjectKind::Thread => "live".into(),
        Link::None => "outside the image".into(),
        Link::PeerClosed => "peer closed".into(),
        Link::Handle { process, index } => format!("peer: handle {index} of process {process}"),
        Link::Carried {
            process,
            message,
            slot,
        } => format!("peer: carried handle {slot} of message {message} of process {process}"),
        Link::Process { index } => format!("process {index} of the image"),
        Link::Ended { code } => format!("ended, exit code {code}"),
    }
}

fn link_json(kind: ObjectKind, l: Link) -> Value {
    match l {
        Link::None if kind == ObjectKind::Thread => json!({ "kind": "live" }),
        Link::None => json!({ "kind": "outside" }),
        Link::PeerClosed => json!({ "kind": "peer_closed" }),
        Link::Handle { process, index } => {
            json!({ "kind": "handle", "process": process, "handle": index })
        }
        Link::Carried {
            process,
            message,
            slot,
        } => json!({ "kind": "carried", "process": process, "message": message, "slot": slot }),
        Link::Process { index } => json!({ "kind": "process", "process": index }),
        Link::Ended { code } => json!({ "kind": "ended", "code": code }),
    }
}

fn object_text(o: &procimage::ObjectRef) -> String {
    let what = match o.kind {
        ObjectKind::Endpoint => format!("endpoint channel {} side {}", o.id, o.side),
        ObjectKind::Process => format!("process pid {}", o.id),
        ObjectKind::Device => format!("device {:#x}", o.id),
        ObjectKind::Thread => format!("thread tid {}", o.id),
        ObjectKind::System | ObjectKind::Console | ObjectKind::ThreadSpawner => {
            o.kind.name().to_string()
        }
    };
    format!(
        "{what}, rights {:#x}, {}",
        o.rights,
        link_text(o.kind, o.link)
    )
}

fn object_json(o: &procimage::ObjectRef) -> Value {
    json!({
        "kind": o.kind.name(),
        "rights": o.rights,
        "id": o.id,
        "side": o.side,
        "link": link_json(o.kind, o.link),
    })
}

/// Messages queued for handle slot `index`.
fn queued_on(p: &Process<'_>, index: u16) -> usize {
    p.messages()
        .filter(|m| m.receiver == Receiver::Handle { index })
        .count()
}

fn receiver_text(r: Receiver) -> String {
    match r {
        Receiver::Handle { index } => format!("handle {index}"),
        Receiver::Carried { message, slot } => {
            format!("carried handle {slot} of message {message}")
        }
    }
}

/// The addresses of some pages, as ` at 0x…, 0x…` (empty for none).
fn pages_text(pages: procimage::Pages<'_>) -> String {
    let vas: Vec<String> = pages.map(|p| format!("{:#x}", p.va)).collect();
    if vas.is_empty() {
        String::new()
    } else {
        format!(" at {}", vas.join(", "))
    }
}

/// The text `inspect` prints, and whether the image was accepted.
pub fn inspect_text(name: &str, bytes: &[u8]) -> (String, bool) {
    let mut o = String::new();
    let layout = match Layout::parse(bytes) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(o, "{name}: refused: {e}");
            return (o, false);
        }
    };
    let h = layout.header();
    let shape = if h.flags & procimage::FLAG_TREE != 0 {
        format!("tree of {} processes", h.processes)
    } else {
        "single process".to_string()
    };
    let _ = writeln!(
        o,
        "{name}: moxie process image version {}, {shape}, {} sections, {} bytes",
        h.version, h.sections, h.total
    );
    let _ = writeln!(
        o,
        "header: flags {:#06x}, header CRC {:#010x}, table CRC {:#010x}",
        h.flags, h.header_crc, h.table_crc
    );
    let _ = writeln!(
        o,
        "sections:\n  {:>3}  {:<16} {:>7} {:>10} {:>10}  CRC",
        "#", "kind", "process", "offset", "length"
    );
    for s in layout.sections() {
        let _ = writeln!(
            o,
            "  {:>3}  {:<16} {:>7} {:>10} {:>10}  {:#010x} {}",
            s.index,
            KindName(s.kind).to_string(),
            s.process,
            s.offset,
            s.length,
            s.crc,
            if s.crc_ok() { "ok" } else { "BAD" }
        );
    }
    let img = match Image::parse(bytes) {
        Ok(i) => i,
        Err(e) => {
            let _ = writeln!(o, "refused: {e}");
            return (o, false);
        }
    };
    for p in img.processes() {
        let r = p.record();
        let m = p.module();
        let parent = r
            .parent
            .map_or("none (root)".to_string(), |q| format!("process {q}"));
        let _ = writeln!(
            o,
            "process {}: {} (pid {}, parent pid {}, parent {parent})",
            p.index(),
            r.name,
            r.pid,
            r.parent_pid
        );
        let _ = writeln!(
            o,
            "  module: {}  sha256 {}  load base {:#x}",
            m.path,
            hex(&m.hash),
            m.load_base
        );
        let _ = writeln!(
            o,
            "  arena: {:#x}, ceiling {} KiB, {} pages; stack slots {:#x}..{:#x}, {} pages",
            r.arena_base,
            r.arena_ceiling / 1024,
            p.arena().len(),
            r.stack_low,
            r.stack_high,
            p.stacks().len()
        );
        let _ = writeln!(
            o,
            "  module data: {} pages{}",
            p.data().len(),
            pages_text(p.data())
        );
        let _ = writeln!(
            o,
            "  scheduling: priority {}, core {}, {} ns of CPU",
            r.priority, r.core, r.cpu_ns
        );
        let _ = writeln!(
            o,
            "  spawn limits: {} threads, {} kernel-stack pages",
            r.thread_limit, r.kernel_stack_pages
        );
        let _ = writeln!(o, "  threads: {}", p.threads().len());
        for t in p.threads() {
            let _ = writeln!(
                o,
                "    tid {:<4} gen {:<6} {:<9} rip {:#018x}  rsp {:#018x}  fs base {:#x}",
                t.tid,
                t.generation,
                state(t.state),
                t.regs.rip,
                t.regs.rsp,
                t.fs_base
            );
        }
        let _ = writeln!(o, "  handles: {}", p.handles().len());
        for hr in p.handles() {
            let queued = match hr.object.kind {
                ObjectKind::Endpoint => format!(", {} queued", queued_on(&p, hr.index)),
                _ => String::new(),
            };
            let _ = writeln!(
                o,
                "    {:>4} gen {:<5} {}{queued}",
                hr.index,
                hr.generation,
                object_text(&hr.object)
            );
        }
        let _ = writeln!(o, "  messages: {}", p.messages().len());
        for (i, msg) in p.messages().enumerate() {
            let _ = writeln!(
                o,
                "    {i:>4} for {} (channel {} side {}): {} bytes, {} handles",
                receiver_text(msg.receiver),
                msg.channel,
                msg.side,
                msg.bytes.len(),
                msg.handle_count()
            );
        }
    }
    (o, true)
}

/// The JSON `inspect --json` prints: the same as the text, plus `ok` and `error`.
pub fn inspect_json(name: &str, bytes: &[u8]) -> Value {
    let layout = match Layout::parse(bytes) {
        Ok(l) => l,
        Err(e) => return json!({ "file": name, "ok": false, "error": e.to_string() }),
    };
    let h = layout.header();
    let sections: Vec<Value> = layout
        .sections()
        .map(|s| {
            json!({
                "index": s.index,
                "kind": s.kind,
                "kind_name": KindName(s.kind).to_string(),
                "known": SectionKind::from_u16(s.kind).is_some(),
                "process": s.process,
                "offset": s.offset,
                "length": s.length,
                "crc": s.crc,
                "crc_ok": s.crc_ok(),
            })
        })
        .collect();
    let mut v = json!({
        "file": name,
        "header": {
            "version": h.version,
            "flags": h.flags,
            "tree": h.flags & procimage::FLAG_TREE != 0,
            "sections": h.sections,
            "total": h.total,
            "processes": h.processes,
            "header_crc": h.header_crc,
            "table_crc": h.table_crc,
        },
        "sections": sections,
    });
    let img = match Image::parse(bytes) {
        Ok(i) => i,
        Err(e) => {
            v["ok"] = json!(false);
            v["error"] = json!(e.to_string());
            return v;
        }
    };
    let processes: Vec<Value> = img
        .processes()
        .map(|p| {
            let r = p.record();
            let m = p.module();
            let threads: Vec<Value> = p
                .threads()
                .map(|t| {
                    json!({
                        "tid": t.tid,
                        "generation": t.generation,
                        "state": state(t.state),
                        "core": t.core,
                        "cpu_ns": t.cpu_ns,
                        "rip": t.regs.rip,
                        "rsp": t.regs.rsp,
                        "rflags": t.regs.rflags,
                        "fs_base": t.fs_base,
                        "gs_base": t.gs_base,
                    })
                })
                .collect();
            let handles: Vec<Value> = p
                .handles()
                .map(|hr| {
                    let mut o = object_json(&hr.object);
                    o["index"] = json!(hr.index);
                    o["generation"] = json!(hr.generation);
                    if hr.object.kind == ObjectKind::Endpoint {
                        o["queued"] = json!(queued_on(&p, hr.index));
                    }
                    o
                })
                .collect();
            let messages: Vec<Value> = p
                .messages()
                .map(|msg| {
                    let receiver = match msg.receiver {
                        Receiver::Handle { index } => json!({ "handle": index }),
                        Receiver::Carried { message, slot } => {
                            json!({ "message": message, "slot": slot })
                        }
                    };
                    json!({
                        "channel": msg.channel,
                        "side": msg.side,
                        "receiver": receiver,
                        "bytes": msg.bytes.len(),
                        "handles": msg.handles().map(|o| object_json(&o)).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "index": p.index(),
                "pid": r.pid,
                "parent_pid": r.parent_pid,
                "parent": r.parent,
                "name": r.name,
                "module": { "path": m.path, "sha256": hex(&m.hash), "load_base": m.load_base },
                "arena": { "base": r.arena_base, "ceiling": r.arena_ceiling, "pages": p.arena().len() },
                "stacks": { "low": r.stack_low, "high": r.stack_high, "pages": p.stacks().len() },
                "data": {
                    "pages": p.data().len(),
                    "addresses": p.data().map(|pg| pg.va).collect::<Vec<_>>(),
                },
                "thread_limit": r.thread_limit,
                "kernel_stack_pages": r.kernel_stack_pages,
                "priority": r.priority,
                "core": r.core,
                "cpu_ns": r.cpu_ns,
                "threads": threads,
                "handles": handles,
                "message_count": messages.len(),
                "messages": messages,
            })
        })
        .collect();
    v["ok"] = json!(true);
    v["error"] = Value::Null;
    v["processes"] = Value::Array(processes);
    v
}

/// The `*.img` files in `/sys/suspended` of a FAT disk image, by name.
fn suspended_names(img: &str) -> Result<Vec<String>> {
    let listing = disk::run("mdir", &["-i", img, "-b", "::/sys/suspended"])?;
    let mut names: Vec<String> = listing
        .lines()
        .map(str::trim)
        .filter(|l| !l.ends_with('/'))
        .filter_map(|l| l.rsplit('/').next())
        .filter(|n| n.to_ascii_lowercase().ends_with(".img"))
        .map(str::to_string)
        .collect();
    names.sort();
    Ok(names)
}

/// Copies every `/sys/suspended/*.img` of `disk_img` into `dir` with `mcopy` and verifies
/// each: (copied file, verification).
pub fn pull(disk_img: &Path, dir: &Path) -> Result<Vec<(PathBuf, Result<String, String>)>> {
    let img = disk_img.to_str().context("disk path is not UTF-8")?;
    if !disk_img.is_file() {
        anyhow::bail!("no disk image {}", disk_img.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dest = format!("{}/", dir.to_str().context("folder path is not UTF-8")?);
    let mut out = Vec::new();
    for name in suspended_names(img)? {
        disk::run(
            "mcopy",
            &["-n", "-i", img, &format!("::/sys/suspended/{name}"), &dest],
        )?;
        let path = dir.join(&name);
        let result = verify(&read(&path)?);
        out.push((path, result));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh scratch folder for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = crate::root()
            .join("target/tmp")
            .join(format!("xtask-image-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The sample tree, and the table entry (kind, offset, length) of each of its sections.
    fn sample() -> (Vec<u8>, Vec<(u16, usize, usize)>) {
        let b = procimage::sample::tree();
        let l = Layout::parse(&b).unwrap();
        let e = l
            .sections()
            .map(|s| (s.kind, s.offset as usize, s.length as usize))
            .collect();
        (b, e)
    }

    #[test]
    fn make_sample_writes_a_valid_image() {
        let dir = scratch("make-sample");
        let f = dir.join("s.img");
        assert!(
            run(Action::MakeSample {
                file: f.clone(),
                single: false
            })
            .unwrap()
        );
        assert_eq!(std::fs::read(&f).unwrap(), procimage::sample::tree());
        let one = dir.join("one.img");
        run(Action::MakeSample {
            file: one.clone(),
            single: true,
        })
        .unwrap();
        let b = std::fs::read(&one).unwrap();
        assert_eq!(Image::parse(&b).unwrap().process_count(), 1);
    }

    #[test]
    fn inspect_sample() {
        let (b, entries) = sample();
        let (text, ok) = inspect_text("s.img", &b);
        assert!(ok, "{text}");
        assert!(text.starts_with(&format!(
            "s.img: moxie process image version 1, tree of 3 processes, {} sections, {} bytes\n",
            entries.len(),
            b.len()
        )));
        let hash = hex(&procimage::module_hash(procimage::sample::MODULE_BYTES));
        for want in [
            "process 0: supervisor (pid 7, parent pid 1, parent none (root))",
            "process 1: worker-a (pid 8, parent pid 7, parent process 0)",
            "process 2: worker-b",
            &format!("  module: /bin/probe  sha256 {hash}  load base 0x400000"),
            "  threads: 3",
            "    tid 10   gen 1      runnable  rip 0x0000000000401000  rsp 0x0000700003ffff78  fs base 0x100000000",
            "       1 gen 3     endpoint channel 200 side 0, rights 0x7, peer: handle 0 of process 1, 2 queued",
            "       3 gen 9     process pid 8, rights 0x18, process 1 of the image",
            "       4 gen 12    endpoint channel 300 side 0, rights 0x7, peer: carried handle 0 of message 1 of process 1, 0 queued",
            "       2 gen 6     endpoint channel 500 side 0, rights 0x7, peer closed, 0 queued",
            "       5 gen 15    thread spawner, rights 0x0, outside the image",
            "       6 gen 18    thread tid 11, rights 0x0, live",
            "       7 gen 21    thread tid 12, rights 0x0, ended, exit code -2",
            "  module data: 2 pages at 0x403000, 0x405000",
            "  module data: 0 pages\n",
            "  spawn limits: 16 threads, 64 kernel-stack pages",
            "  messages: 3",
            "       1 for handle 0 (channel 200 side 1): 17 bytes, 1 handles",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        // Every section listed with a good CRC.
        let listed = text.lines().filter(|l| l.ends_with(" ok")).count();
        assert_eq!(listed, entries.len(), "{text}");
        assert!(text.contains("  ARENA                  0"), "{text}");

        let v = inspect_json("s.img", &b);
        assert_eq!(v["ok"], json!(true));
        assert_eq!(v["error"], Value::Null);
        assert_eq!(v["header"]["processes"], json!(3));
        assert_eq!(v["header"]["tree"], json!(true));
        assert_eq!(v["header"]["total"], json!(b.len()));
        assert_eq!(v["sections"].as_array().unwrap().len(), entries.len());
        assert!(
            v["sections"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["crc_ok"] == json!(true))
        );
        let p0 = &v["processes"][0];
        assert_eq!(p0["name"], json!("supervisor"));
        assert_eq!(p0["module"]["sha256"], json!(hash));
        assert_eq!(p0["module"]["load_base"], json!(0x40_0000));
        assert_eq!(p0["threads"][0]["rip"], json!(0x40_1000));
        assert_eq!(p0["threads"][1]["state"], json!("blocked"));
        assert_eq!(p0["handles"][1]["queued"], json!(2));
        assert_eq!(p0["handles"][1]["link"]["kind"], json!("handle"));
        assert_eq!(p0["message_count"], json!(3));
        assert_eq!(
            v["processes"][1]["messages"][1]["handles"][0]["id"],
            json!(300)
        );
        assert_eq!(v["processes"][2]["threads"].as_array().unwrap().len(), 3);
        assert_eq!(p0["data"]["pages"], json!(2));
        assert_eq!(p0["data"]["addresses"], json!([0x40_3000, 0x40_5000]));
        assert_eq!(v["processes"][1]["data"]["pages"], json!(0));
        assert_eq!(p0["thread_limit"], json!(16));
        assert_eq!(p0["kernel_stack_pages"], json!(64));
        assert_eq!(p0["handles"][5]["kind"], json!("thread spawner"));
        assert_eq!(p0["handles"][5]["link"]["kind"], json!("outside"));
        assert_eq!(p0["handles"][6]["kind"], json!("thread"));
        assert_eq!(p0["handles"][6]["id"], json!(11));
        assert_eq!(p0["handles"][6]["link"], json!({ "kind": "live" }));
        assert_eq!(
            p0["handles"][7]["link"],
            json!({ "kind": "ended", "code": -2 })
        );
        // The JSON text is what the command prints, and it parses back.
        let text = serde_json::to_string_pretty(&v).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    }

    #[test]
    fn verify_sample_ok() {
        let (b, entries) = sample();
        assert_eq!(
            verify(&b),
            Ok(format!(
                "ok ({} sections, {} bytes)",
                entries.len(),
                b.len()
            ))
        );
    }

    #[test]
    fn verify_flipped_byte_names_the_section() {
        let (mut b, entries) = sample();
        let (i, &(_, offset, _)) = entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.0 == SectionKind::Arena as u16)
            .unwrap();
        b[offset + 700] ^= 0x01;
        let e = verify(&b).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "section {i} (ARENA of process 0): CRC mismatch: stored 0x"
            )),
            "{e}"
        );
        // inspect still lists the sections, with that one marked bad.
        let (text, ok) = inspect_text("f.img", &b);
        assert!(!ok);
        assert_eq!(text.lines().filter(|l| l.ends_with(" BAD")).count(), 1);
        assert!(text.contains(&format!("refused: {e}")), "{text}");
        let v = inspect_json("f.img", &b);
        assert_eq!(v["ok"], json!(false));
        assert_eq!(v["error"], json!(e));
        assert_eq!(v["sections"][i]["crc_ok"], json!(false));
    }

    #[test]
    fn verify_truncated() {
        let (b, _) = sample();
        assert_eq!(
            verify(&b[..4000]),
            Err(format!(
                "truncated: header says {} bytes, file has 4000",
                b.len()
            ))
        );
        assert_eq!(
            verify(&b[..20]),
            Err("truncated: file has 20 bytes, the header alone is 64".into())
        );
    }

    #[test]
    fn verify_wrong_version() {
        let (mut b, _) = sample();
        b[8] = 7;
        assert_eq!(
            verify(&b),
            Err("unsupported version 7 (this build reads 1)".into())
        );
        let (text, ok) = inspect_text("v.img", &b);
        assert!(!ok);
        assert_eq!(
            text,
            "v.img: refused: unsupported version 7 (this build reads 1)\n"
        );
    }

    /// Whether the FAT tools are here; under CI=true their absence fails the test.
    fn have_tools() -> bool {
        let ok = ["mkfs.fat", "mcopy", "mmd", "mdir"]
            .iter()
            .all(|t| disk::tool(t).is_ok());
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "dosfstools and mtools are missing"
            );
            eprintln!("skipped: dosfstools and mtools are missing");
        }
        ok
    }

    #[test]
    fn pull_from_a_fat_image() {
        if !have_tools() {
            return;
        }
        let dir = scratch("pull");
        let fat = dir.join("disk.img");
        let f = fat.to_str().unwrap();
        disk::run("mkfs.fat", &["-C", f, "4096"]).unwrap();
        for d in ["::/sys", "::/sys/suspended", "::/etc"] {
            disk::run("mmd", &["-i", f, d]).unwrap();
        }
        let good = dir.join("12.img");
        std::fs::write(&good, procimage::sample::tree()).unwrap();
        let mut bad = procimage::sample::single();
        let last = bad.len() - 1;
        bad.truncate(last);
        let bad_file = dir.join("13.img");
        std::fs::write(&bad_file, &bad).unwrap();
        let other = dir.join("notes.txt");
        std::fs::write(&other, "not an image").unwrap();
        for (src, name) in [
            (&good, "12.img"),
            (&bad_file, "13.img"),
            (&other, "notes.txt"),
        ] {
            disk::run(
                "mcopy",
                &[
                    "-i",
                    f,
                    src.to_str().unwrap(),
                    &format!("::/sys/suspended/{name}"),
                ],
            )
            .unwrap();
        }
        let out = dir.join("out");
        let pulled = pull(&fat, &out).unwrap();
        assert_eq!(pulled.len(), 2, "{pulled:?}");
        assert_eq!(pulled[0].0, out.join("12.img"));
        assert_eq!(
            std::fs::read(out.join("12.img")).unwrap(),
            procimage::sample::tree()
        );
        assert_eq!(pulled[0].1, verify(&procimage::sample::tree()));
        assert!(
            pulled[0]
                .1
                .as_ref()
                .unwrap()
                .starts_with("ok (19 sections, ")
        );
        assert_eq!(pulled[1].0, out.join("13.img"));
        assert_eq!(
            pulled[1].1,
            Err(format!(
                "truncated: header says {} bytes, file has {last}",
                last + 1
            ))
        );
        assert!(!out.join("notes.txt").exists());
        // Pulling again overwrites without asking; an empty folder gives nothing.
        assert_eq!(pull(&fat, &out).unwrap().len(), 2);
        let empty = dir.join("empty.img");
        let e = empty.to_str().unwrap();
        disk::run("mkfs.fat", &["-C", e, "2048"]).unwrap();
        disk::run("mmd", &["-i", e, "::/sys"]).unwrap();
        disk::run("mmd", &["-i", e, "::/sys/suspended"]).unwrap();
        assert!(pull(&empty, &out).unwrap().is_empty());
        // A disk without the folder is an error that says so.
        let bare = dir.join("bare.img");
        disk::run("mkfs.fat", &["-C", bare.to_str().unwrap(), "2048"]).unwrap();
        let err = pull(&bare, &out).unwrap_err().to_string();
        assert!(err.contains("mdir"), "{err}");
    }
}
