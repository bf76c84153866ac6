//! In-kernel tests of suspend and resume (`crate::suspend`): the probe's suspend behaviours
//! (49–51) driven from here through their parent channel, images written to and read from the
//! root filesystem the test boot mounts, damaged on purpose.
use crate::ensure;
use crate::ipc::{Endpoint, Msg};
use crate::process::{self, Death, Pid, SpawnOptions};
use crate::rootfs;
use crate::suspend;
use abi::Error;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use channel::{Message, RecvError};

const PROBE: &str = "bin/probe";
const COUNTER: u64 = 49;
const TREE: u64 = 50;
const THREADS: u64 = 51;
/// A request that makes the probe sleep this many milliseconds (the low bits).
const PAUSE: u64 = 1 << 63;

/// Runs `body` with the harness's FAT volume mounted as the root filesystem (where
/// `/sys/suspended` is), and ends its drivers afterwards.
fn on_disk(body: fn() -> Result<(), String>) -> Result<(), String> {
    let m = super::rootfs_cases::mount()?;
    let r = body();
    super::rootfs_cases::finish(m)?;
    r
}

fn spawn(behaviour: u64, core: Option<usize>) -> Result<(Pid, Endpoint), String> {
    let opts = SpawnOptions {
        core,
        ..SpawnOptions::default()
    };
    process::spawn_with(PROBE, behaviour, opts, Vec::new()).map_err(|(e, _)| format!("spawn: {e}"))
}

fn send(ep: &Endpoint, v: u64) -> Result<(), String> {
    let msg: Msg = Message::new(v.to_le_bytes().to_vec(), Vec::new());
    ep.send(msg)
        .map_err(|e| format!("send {v}: {:?}", e.error()))
}

/// The next answer: three words.
fn answer(ep: &Endpoint) -> Result<[u64; 3], String> {
    let deadline = crate::arch::apic::now_ns() + 10_000_000_000;
    let m = ep
        .recv_blocking(deadline)
        .map_err(|e| format!("no answer: {e:?}"))?;
    ensure!(m.bytes.len() == 24, "an answer of {} bytes", m.bytes.len());
    let w = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&m.bytes[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    Ok([w(0), w(1), w(2)])
}

fn ask(ep: &Endpoint, v: u64) -> Result<[u64; 3], String> {
    send(ep, v)?;
    answer(ep)
}

fn end(pid: Pid) {
    process::die(pid, Death::Killed);
}

fn image(id: u64) -> Result<Vec<u8>, String> {
    rootfs::read_file_limited(&suspend::image_path(id), rootfs::MAX_IMAGE_BYTES)
        .map_err(|e| format!("read image {id}: {e}"))
}

fn put_image(id: u64, bytes: &[u8]) -> Result<(), String> {
    rootfs::write_file(&suspend::image_path(id), bytes).map_err(|e| format!("write image: {e}"))
}

/// The counter: suspended, its peer's 100 sends all succeed and its receives say
/// `PeerSuspended`; resumed, it answers all 100 in order and its counts (arena, stack, data
/// page) go on from where they were.
fn suspend_counter_keeps_messages_and_count_body() -> Result<(), String> {
    let (pid, ep) = spawn(COUNTER, None)?;
    for v in 1..=5 {
        let a = ask(&ep, v)?;
        ensure!(
            a[0] == v && a[1] == v,
            "before: answer {a:?} to request {v}"
        );
    }
    let id = suspend::suspend(pid).map_err(|e| format!("suspend: {e}"))?;
    ensure!(
        !process::is_live(pid),
        "process {pid} still live after its suspend"
    );
    ensure!(
        suspend::list().is_ok_and(|l| l.contains(&id)),
        "image {id} not listed"
    );
    ensure!(
        matches!(ep.try_recv(), Err(RecvError::PeerSuspended)),
        "a receive from the suspended peer did not say PeerSuspended"
    );
    for v in 6..=105 {
        send(&ep, v)?;
    }
    ensure!(
        matches!(ep.try_recv(), Err(RecvError::PeerSuspended)),
        "the peer answered while suspended"
    );
    let r = suspend::resume(id, None).map_err(|e| format!("resume: {e}"))?;
    ensure!(
        r.parent.is_none() && r.info.reattached >= 1,
        "the parent channel was not reattached ({} reattached)",
        r.info.reattached
    );
    for v in 6..=105 {
        let a = answer(&ep)?;
        ensure!(
            a[0] == v && a[1] == v,
            "after: answer {a:?} to request {v} (0 in the first word: arena, stack and data counts disagree)"
        );
    }
    ensure!(
        suspend::list().is_ok_and(|l| !l.contains(&id)),
        "image {id} still listed after its resume"
    );
    end(r.info.pid);
    Ok(())
}

/// Without the endpoints this boot kept (as after a reboot): the resumer gets a fresh parent
/// channel, the messages queued in the image are answered first, the sleep that was cut
/// short is slept again.
fn suspend_resume_from_image_alone_body() -> Result<(), String> {
    let (pid, ep) = spawn(COUNTER, None)?;
    for v in 1..=2 {
        ask(&ep, v)?;
    }
    send(&ep, PAUSE | 300)?;
    for v in 3..=5 {
        send(&ep, v)?;
    }
    let id = suspend::suspend(pid).map_err(|e| format!("suspend: {e}"))?;
    suspend::forget_dormant(id);
    ensure!(
        matches!(ep.try_recv(), Err(RecvError::Closed)),
        "the forgotten peer is not closed"
    );
    let r = suspend::resume(id, None).map_err(|e| format!("resume: {e}"))?;
    let Some(fresh) = r.parent else {
        return Err("no fresh parent channel for the resumer".into());
    };
    ensure!(
        r.info.reattached == 0,
        "endpoints reattached after a forget"
    );
    for v in 3..=5 {
        let a = answer(&fresh)?;
        ensure!(
            a[0] == v && a[1] == v,
            "replayed: answer {a:?} to request {v}"
        );
    }
    let a = ask(&fresh, 6)?;
    ensure!(a[0] == 6, "a new request after the replay: {a:?}");
    end(r.info.pid);
    Ok(())
}

/// A parent and its child on an internal channel leave as one image of two processes and
/// come back as one (the channel rebuilt from the image, both ends linked).
fn suspend_tree_resumes_as_a_unit_body() -> Result<(), String> {
    let (pid, ep) = spawn(TREE, None)?;
    for v in 1..=3 {
        let a = ask(&ep, v)?;
        ensure!(a[0] == v && a[1] == v, "before: {a:?} for {v}");
    }
    let tree = process::tree_of(pid);
    ensure!(tree.len() == 2, "the tree has {} processes", tree.len());
    let id = suspend::suspend(pid).map_err(|e| format!("suspend: {e}"))?;
    ensure!(
        tree.iter().all(|p| !process::is_live(*p)),
        "a process of the tree is still live"
    );
    let bytes = image(id)?;
    let parsed = procimage::Image::parse(&bytes).map_err(|e| format!("parse: {e}"))?;
    ensure!(
        parsed.process_count() == 2 && parsed.is_tree(),
        "the image holds {} processes",
        parsed.process_count()
    );
    suspend::forget_dormant(id);
    let r = suspend::resume(id, None).map_err(|e| format!("resume: {e}"))?;
    ensure!(
        r.info.processes == 2,
        "{} processes resumed",
        r.info.processes
    );
    let fresh = r.parent.ok_or("no parent channel")?;
    for v in 4..=6 {
        let a = ask(&fresh, v)?;
        ensure!(
            a[0] == v && a[1] == v,
            "after: {a:?} for {v} (the internal channel)"
        );
    }
    let tree = process::tree_of(r.info.pid);
    ensure!(
        tree.len() == 2,
        "the resumed tree has {} processes",
        tree.len()
    );
    end(r.info.pid);
    for p in tree {
        end(p);
    }
    Ok(())
}

/// Three threads: all come back, and the two counting ones go on counting from their values.
fn suspend_threads_all_resume_body() -> Result<(), String> {
    let (pid, ep) = spawn(THREADS, None)?;
    let before = ask(&ep, 1)?;
    crate::sched::block_until(crate::arch::apic::now_ns() + 20_000_000);
    let id = suspend::suspend(pid).map_err(|e| format!("suspend: {e}"))?;
    let r = suspend::resume(id, None).map_err(|e| format!("resume: {e}"))?;
    ensure!(r.info.threads == 3, "{} threads resumed", r.info.threads);
    let after = ask(&ep, 2)?;
    crate::sched::block_until(crate::arch::apic::now_ns() + 20_000_000);
    let later = ask(&ep, 3)?;
    ensure!(
        after[0] == 2 && later[0] == 3,
        "requests counted {} then {}",
        after[0],
        later[0]
    );
    for i in 1..=2 {
        ensure!(
            after[i] >= before[i] && later[i] > after[i],
            "thread {i} counted {} before, {} after, {} later",
            before[i],
            after[i],
            later[i]
        );
    }
    end(r.info.pid);
    Ok(())
}

/// Recomputes every CRC of an image whose contents were edited on purpose.
fn reseal(img: &mut [u8]) {
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let u64_at = |b: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(w) as usize
    };
    let count = u32_at(img, 12) as usize;
    for i in 0..count {
        let e = 64 + 32 * i;
        let (off, len) = (u64_at(img, e + 8), u64_at(img, e + 16));
        let crc = procimage::checksum::crc32c(&img[off..off + len]);
        img[e + 24..e + 28].copy_from_slice(&crc.to_le_bytes());
    }
    let table = procimage::checksum::crc32c(&img[64..64 + 32 * count]);
    img[28..32].copy_from_slice(&table.to_le_bytes());
    let header = procimage::checksum::crc32c(&img[..60]);
    img[60..64].copy_from_slice(&header.to_le_bytes());
}

/// Damaged images are refused with a clear error and leave nothing behind; the intact image
/// still resumes afterwards.
fn suspend_refuses_damaged_images_body() -> Result<(), String> {
    let (pid, ep) = spawn(COUNTER, None)?;
    ask(&ep, 1)?;
    let id = suspend::suspend(pid).map_err(|e| format!("suspend: {e}"))?;
    let good = image(id)?;
    let layout = procimage::Layout::parse(&good).map_err(|e| format!("layout: {e}"))?;
    let mut damaged: Vec<(String, Vec<u8>, Error)> = Vec::new();
    for s in layout.sections() {
        let mut b = good.clone();
        b[s.offset as usize + s.length as usize / 2] ^= 0x40;
        damaged.push((
            format!("a flipped byte in section {}", s.index),
            b,
            Error::Corrupt,
        ));
    }
    damaged.push((
        "a truncated file".into(),
        good[..good.len() - 100].to_vec(),
        Error::Corrupt,
    ));
    let mut v2 = good.clone();
    v2[8] = 2;
    damaged.push(("version 2".into(), v2, Error::Corrupt));
    let module = layout
        .find(0, procimage::SectionKind::Module)
        .ok_or("no MODULE section")?;
    let mut hash = good.clone();
    hash[module.offset as usize + 8] ^= 1;
    reseal(&mut hash);
    damaged.push(("another module hash".into(), hash, Error::Corrupt));
    let mut missing = good.clone();
    let path_at = module.offset as usize + 48;
    ensure!(
        &missing[path_at..path_at + 4] == b"bin/",
        "module path not where expected"
    );
    missing[path_at..path_at + 4].copy_from_slice(b"nix/");
    reseal(&mut missing);
    damaged.push(("a missing module".into(), missing, Error::NotFound));
    let procs = process::list().len();
    for (what, bytes, want) in &damaged {
        put_image(id, bytes)?;
        match suspend::resume(id, None) {
            Err(e) if e == *want => {}
            Err(e) => return Err(format!("{what}: refused with {e}, expected {want}")),
            Ok(r) => return Err(format!("{what}: resumed as process {}", r.info.pid)),
        }
        ensure!(
            process::list().len() == procs,
            "{what}: a refused resume left a process behind"
        );
    }
    put_image(id, &good)?;
    let r = suspend::resume(id, None).map_err(|e| format!("the intact image: {e}"))?;
    let a = ask(&ep, 2)?;
    ensure!(a[0] == 2, "after the refusals: {a:?}");
    end(r.info.pid);
    Ok(())
}

/// The error paths of the directory: no such process, no such image, discard closes the
/// kept endpoints.
fn suspend_errors_and_discard_body() -> Result<(), String> {
    ensure!(
        suspend::suspend(999_999) == Err(Error::NotFound),
        "suspending no process"
    );
    ensure!(
        matches!(suspend::resume(999_999, None), Err(Error::NotFound)),
        "resuming no image"
    );
    ensure!(
        matches!(suspend::resume(1, Some(999)), Err(Error::Failed)),
        "resuming on no such core"
    );
    let (pid, ep) = spawn(COUNTER, None)?;
    let id = suspend::suspend(pid).map_err(|e| format!("suspend: {e}"))?;
    suspend::discard(id).map_err(|e| format!("discard: {e}"))?;
    ensure!(
        matches!(ep.try_recv(), Err(RecvError::Closed)),
        "the discarded process's peer is not closed"
    );
    ensure!(
        suspend::list().is_ok_and(|l| !l.contains(&id)),
        "image {id} listed after its discard"
    );
    ensure!(
        matches!(suspend::resume(id, None), Err(Error::NotFound)),
        "a discarded image resumed"
    );
    ensure!(
        suspend::discard(id) == Err(Error::NotFound),
        "discarding twice"
    );
    Ok(())
}

/// `migrate` to core 1: the counter answers from core 1 and counts on.
fn suspend_migrate_to_another_core_body() -> Result<(), String> {
    let (pid, ep) = spawn(COUNTER, Some(0))?;
    let a = ask(&ep, 1)?;
    ensure!(a[2] == 0, "started on core {}", a[2]);
    let r = suspend::migrate(pid, 1).map_err(|e| format!("migrate: {e}"))?;
    let b = ask(&ep, 2)?;
    ensure!(b[2] == 1 && b[0] == 2, "after the migration: {b:?}");
    end(r.info.pid);
    Ok(())
}

/// See [`suspend_counter_keeps_messages_and_count_body`] (on the harness's FAT volume, mounted as the root filesystem).
pub fn suspend_counter_keeps_messages_and_count() -> Result<(), String> {
    on_disk(suspend_counter_keeps_messages_and_count_body)
}

/// See [`suspend_resume_from_image_alone_body`] (on the harness's FAT volume, mounted as the root filesystem).
pub fn suspend_resume_from_image_alone() -> Result<(), String> {
    on_disk(suspend_resume_from_image_alone_body)
}

/// See [`suspend_tree_resumes_as_a_unit_body`] (on the harness's FAT volume, mounted as the root filesystem).
pub fn suspend_tree_resumes_as_a_unit() -> Result<(), String> {
    on_disk(suspend_tree_resumes_as_a_unit_body)
}

/// See [`suspend_threads_all_resume_body`] (on the harness's FAT volume, mounted as the root filesystem).
pub fn suspend_threads_all_resume() -> Result<(), String> {
    on_disk(suspend_threads_all_resume_body)
}

/// See [`suspend_refuses_damaged_images_body`] (on the harness's FAT volume, mounted as the root filesystem).
pub fn suspend_refuses_damaged_images() -> Result<(), String> {
    on_disk(suspend_refuses_damaged_images_body)
}

/// See [`suspend_errors_and_discard_body`] (on the harness's FAT volume, mounted as the root filesystem).
pub fn suspend_errors_and_discard() -> Result<(), String> {
    on_disk(suspend_errors_and_discard_body)
}

/// See [`suspend_migrate_to_another_core_body`] (on the harness's FAT volume, mounted as the root filesystem).
pub fn suspend_migrate_to_another_core() -> Result<(), String> {
    on_disk(suspend_migrate_to_another_core_body)
}
