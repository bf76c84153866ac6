//! What the shell prints for `suspend`, `resume`, `migrate`, `discard`, `images` and `inspect`:
//! the results and the errors, each error naming the `abi` error and what it means for that
//! command, and an image's summary made with `procimage` (the core's own parser). Here rather
//! than in the shell so the host tests see every text.
use abi::Error;
use abi::suspend::{NO_PARENT_HANDLE, ResumeInfo, SUSPENDED_DIR};
use alloc::format;
use alloc::string::String;
use core::fmt::Write;
use procimage::{Image, KindName, Layout};

/// Where image `id` lives.
pub fn image_path(id: u64) -> String {
    format!("{SUSPENDED_DIR}/{id}.img")
}

/// `N thing` or `N things`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `suspend PID` done: the image id, and how many descendants went with the process.
pub fn suspended(pid: u64, children: usize, id: u64) -> String {
    match children {
        0 => format!("suspended pid {pid} as image {id}"),
        n => format!(
            "suspended pid {pid} (and {}) as image {id}",
            count(n as u64, "child", "children")
        ),
    }
}

/// `suspend PID` refused.
pub fn suspend_error(pid: u64, e: Error) -> String {
    match e {
        Error::NotFound => format!("suspend {pid}: no process {pid}"),
        Error::Failed => format!(
            "suspend {pid}: refused: {e} (a thread is in a portal call, or the tree holds a \
             device; see the log)"
        ),
        Error::Io => format!("suspend {pid}: cannot write the image: {e}"),
        e => format!("suspend {pid}: {e}"),
    }
}

/// The counts a resume reports, after `resumed image ID ... as pid P`.
fn resumed_counts(info: &ResumeInfo) -> String {
    let mut s = format!(
        "{}, {}",
        count(info.processes.into(), "process", "processes"),
        count(info.threads.into(), "thread", "threads")
    );
    if info.reattached > 0 {
        let _ = write!(
            s,
            ", {} reattached",
            count(info.reattached.into(), "endpoint", "endpoints")
        );
    }
    if info.parent != NO_PARENT_HANDLE {
        s.push_str(", its parent channel is the shell's now");
    }
    s
}

/// `resume ID [CPU]` done.
pub fn resumed(id: u64, cpu: Option<u32>, info: &ResumeInfo) -> String {
    let on = cpu.map(|c| format!(" on core {c}")).unwrap_or_default();
    format!(
        "resumed image {id}{on} as pid {} ({})",
        info.pid,
        resumed_counts(info)
    )
}

/// `resume ID [CPU]` refused. `image_exists` tells apart, for `NotFound`, a missing image
/// from an image whose module is missing (`None`: not known).
pub fn resume_error(id: u64, cpu: Option<u32>, e: Error, image_exists: Option<bool>) -> String {
    match (e, image_exists) {
        (Error::NotFound, Some(true)) => format!(
            "resume {id}: refused: {e} (the image is there: is its module missing? see the log)"
        ),
        (Error::NotFound, _) => format!("resume {id}: no image {}", image_path(id)),
        (Error::Corrupt, _) => format!("resume {id}: image refused: {e} (see the log)"),
        (Error::Io, _) => format!("resume {id}: cannot read the image: {e}"),
        (e, _) => match cpu {
            Some(c) if e == Error::Failed => {
                format!("resume {id}: refused: {e} (is there a core {c}? see the log)")
            }
            _ => format!("resume {id}: refused: {e} (see the log)"),
        },
    }
}

/// `migrate PID CPU` done.
pub fn migrated(pid: u64, cpu: u32, info: &ResumeInfo) -> String {
    format!(
        "migrated pid {pid} to core {cpu} as pid {} ({})",
        info.pid,
        resumed_counts(info)
    )
}

/// `migrate PID CPU` refused.
pub fn migrate_error(pid: u64, cpu: u32, e: Error) -> String {
    match e {
        Error::NotFound => format!("migrate {pid}: no process {pid}"),
        Error::Failed => format!(
            "migrate {pid}: refused: {e} (a portal call, a device, or no core {cpu}; see the log)"
        ),
        Error::Corrupt => format!("migrate {pid}: image refused: {e} (see the log)"),
        Error::Io => format!("migrate {pid}: the image did not go through the disk: {e}"),
        e => format!("migrate {pid}: {e}"),
    }
}

/// `discard ID` done.
pub fn discarded(id: u64) -> String {
    format!("discarded image {id}")
}

/// `discard ID` refused.
pub fn discard_error(id: u64, e: Error) -> String {
    match e {
        Error::NotFound => format!("discard {id}: no image {}", image_path(id)),
        e => format!("discard {id}: {e}"),
    }
}

/// `images`: one line per id with its size in bytes (`None`: not known), or `(no images)`.
pub fn images_table(images: &[(u64, Option<u64>)]) -> String {
    if images.is_empty() {
        return String::from("(no images)\n");
    }
    let mut s = format!("{:>6} {:>10}  FILE\n", "ID", "BYTES");
    for (id, size) in images {
        let size = size.map_or(String::from("?"), |b| format!("{b}"));
        let _ = writeln!(s, "{id:>6} {size:>10}  {}", image_path(*id));
    }
    s
}

/// `inspect ID`: a summary of the image's bytes, or, for an image the parser refuses, what can
/// be listed (the sections, when the header and table are sound) and the defect, as the core
/// would name it.
pub fn inspect(id: u64, bytes: &[u8]) -> String {
    let mut s = String::new();
    let layout = match Layout::parse(bytes) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(s, "inspect {id}: refused: {e}");
            return s;
        }
    };
    let h = layout.header();
    let shape = if h.flags & procimage::FLAG_TREE != 0 {
        format!(
            "tree of {}",
            count(h.processes.into(), "process", "processes")
        )
    } else {
        String::from("1 process")
    };
    let _ = writeln!(
        s,
        "image {id}: {} bytes, format version {}, {shape}, {}",
        h.total,
        h.version,
        count(h.sections.into(), "section", "sections")
    );
    let image = Image::parse(bytes);
    if let Ok(img) = &image {
        for p in img.processes() {
            let r = p.record();
            let m = p.module();
            let parent = r
                .parent
                .map_or(String::from("root"), |q| format!("child of process {q}"));
            let _ = writeln!(
                s,
                "process {}: {} (pid {}, {parent})\n  module {} sha256 {}\n  {}, {}, {}, arena {} bytes, stacks {} bytes, module data {} bytes",
                p.index(),
                r.name,
                r.pid,
                m.path,
                hex_prefix(&m.hash),
                count(p.threads().len() as u64, "thread", "threads"),
                count(p.handles().len() as u64, "handle", "handles"),
                count(p.messages().len() as u64, "message", "messages"),
                p.arena().len() * procimage::PAGE,
                p.stacks().len() * procimage::PAGE,
                p.data().len() * procimage::PAGE,
            );
        }
    }
    let bad = layout.sections().filter(|x| !x.crc_ok()).count();
    let _ = writeln!(
        s,
        "sections: {}",
        match bad {
            0 => String::from("every CRC-32 ok"),
            n => format!(
                "{} with a bad CRC-32",
                count(n as u64, "section", "sections")
            ),
        }
    );
    for x in layout.sections() {
        let _ = writeln!(
            s,
            "  {:>3} {:<9} process {:<3} {:>9} bytes  crc {:08x} {}",
            x.index,
            format!("{}", KindName(x.kind)),
            x.process,
            x.length,
            x.crc,
            if x.crc_ok() { "ok" } else { "BAD" }
        );
    }
    if let Err(e) = image {
        let _ = writeln!(s, "inspect {id}: refused: {e}");
    }
    s
}

/// The first eight bytes of a hash, in hex: enough to tell modules apart by eye.
fn hex_prefix(hash: &[u8; 32]) -> String {
    let mut s = String::new();
    for b in &hash[..8] {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::vec::Vec;

    fn info(pid: u64, processes: u32, threads: u32) -> ResumeInfo {
        ResumeInfo {
            pid,
            processes,
            threads,
            parent: NO_PARENT_HANDLE,
            reattached: 0,
        }
    }

    #[test]
    fn results_name_the_new_pid_and_the_counts() {
        assert_eq!(suspended(5, 0, 3), "suspended pid 5 as image 3");
        assert_eq!(
            suspended(5, 1, 3),
            "suspended pid 5 (and 1 child) as image 3"
        );
        assert_eq!(
            suspended(5, 2, 3),
            "suspended pid 5 (and 2 children) as image 3"
        );
        assert_eq!(
            resumed(3, None, &info(7, 1, 1)),
            "resumed image 3 as pid 7 (1 process, 1 thread)"
        );
        let mut i = info(9, 3, 3);
        i.reattached = 2;
        i.parent = 12;
        assert_eq!(
            resumed(3, Some(1), &i),
            "resumed image 3 on core 1 as pid 9 (3 processes, 3 threads, 2 endpoints \
             reattached, its parent channel is the shell's now)"
        );
        assert_eq!(
            migrated(5, 1, &info(8, 1, 3)),
            "migrated pid 5 to core 1 as pid 8 (1 process, 3 threads)"
        );
        assert_eq!(discarded(4), "discarded image 4");
    }

    #[test]
    fn errors_name_the_abi_error() {
        assert_eq!(
            resume_error(7, None, Error::NotFound, Some(false)),
            "resume 7: no image /sys/suspended/7.img"
        );
        assert_eq!(
            resume_error(7, None, Error::NotFound, None),
            "resume 7: no image /sys/suspended/7.img"
        );
        assert_eq!(
            resume_error(7, None, Error::NotFound, Some(true)),
            "resume 7: refused: not found (the image is there: is its module missing? see the log)"
        );
        assert_eq!(
            resume_error(7, None, Error::Corrupt, Some(true)),
            "resume 7: image refused: corrupt or incompatible image (see the log)"
        );
        assert_eq!(
            resume_error(7, None, Error::Io, None),
            "resume 7: cannot read the image: input/output error"
        );
        assert_eq!(
            resume_error(7, Some(9), Error::Failed, None),
            "resume 7: refused: failed (is there a core 9? see the log)"
        );
        assert_eq!(
            resume_error(7, None, Error::BadSyscall, None),
            "resume 7: refused: unknown system call (see the log)"
        );
        assert_eq!(suspend_error(5, Error::NotFound), "suspend 5: no process 5");
        assert!(suspend_error(5, Error::Failed).starts_with("suspend 5: refused: failed ("));
        assert_eq!(
            suspend_error(5, Error::Io),
            "suspend 5: cannot write the image: input/output error"
        );
        assert_eq!(
            suspend_error(5, Error::NoRights),
            "suspend 5: missing rights"
        );
        assert_eq!(
            migrate_error(5, 1, Error::NotFound),
            "migrate 5: no process 5"
        );
        assert!(migrate_error(5, 1, Error::Failed).contains("no core 1"));
        assert_eq!(
            migrate_error(5, 1, Error::Corrupt),
            "migrate 5: image refused: corrupt or incompatible image (see the log)"
        );
        assert_eq!(
            discard_error(4, Error::NotFound),
            "discard 4: no image /sys/suspended/4.img"
        );
    }

    #[test]
    fn images_are_listed_with_sizes() {
        assert_eq!(images_table(&[]), "(no images)\n");
        assert_eq!(
            images_table(&[(3, Some(45056)), (12, None)]),
            "    ID      BYTES  FILE\n     3      45056  /sys/suspended/3.img\n    12          ?  \
             /sys/suspended/12.img\n"
        );
    }

    #[test]
    fn inspect_summarises_a_tree() {
        let bytes = procimage::sample::tree();
        let text = inspect(3, &bytes);
        let img = Image::parse(&bytes).unwrap();
        assert!(
            text.starts_with(&format!(
                "image 3: {} bytes, format version 1, tree of 3 processes, {} sections\n",
                bytes.len(),
                img.header().sections
            )),
            "{text}"
        );
        assert_eq!(text.matches("\nprocess ").count(), 3, "{text}");
        let hash = procimage::module_hash(procimage::sample::MODULE_BYTES);
        assert!(text.contains(&hex_prefix(&hash)), "{text}");
        assert!(text.contains("process 1: ") && text.contains("child of process 0"));
        assert!(text.contains("sections: every CRC-32 ok\n"), "{text}");
        assert!(!text.contains("BAD") && !text.contains("refused"), "{text}");
        // One line per section.
        let rows = text.lines().filter(|l| l.contains(" crc ")).count();
        assert_eq!(rows, img.header().sections as usize);
        let single = inspect(4, &procimage::sample::single());
        assert!(single.contains(", 1 process, "), "{single}");
        assert!(
            single.contains("(pid ") && single.contains(", root)"),
            "{single}"
        );
    }

    #[test]
    fn inspect_names_the_defect() {
        let good = procimage::sample::single();
        // A byte in the last section: the table still lists it, with a bad CRC.
        let mut flipped = good.clone();
        let last = flipped.len() - 20;
        flipped[last] ^= 0x40;
        let text = inspect(1, &flipped);
        assert!(text.contains("with a bad CRC-32"), "{text}");
        assert!(text.contains(" BAD\n"), "{text}");
        assert!(text.contains("inspect 1: refused: section "), "{text}");
        assert!(text.contains("CRC mismatch"), "{text}");
        assert!(!text.contains("\nprocess "), "{text}");
        // Truncated: nothing but the defect.
        let cut: Vec<u8> = good[..good.len() / 2].to_vec();
        let text = inspect(2, &cut);
        assert!(text.starts_with("inspect 2: refused: truncated"), "{text}");
        assert_eq!(text.lines().count(), 1);
        // Another version.
        let mut v2 = good.clone();
        v2[8] = 2;
        let text = inspect(3, &v2);
        assert!(text.starts_with("inspect 3: refused: "), "{text}");
        assert!(text.contains("version 2"), "{text}");
        assert_eq!(
            inspect(4, b""),
            "inspect 4: refused: truncated: file has 0 bytes, the header alone is 64\n"
        );
    }
}
