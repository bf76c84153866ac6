//! In-kernel tests of the core's root-filesystem client (`crate::rootfs`): files written and
//! read back byte for byte (empty to several MiB, whole or piece by piece), an overwrite that
//! truncates, read limits, listings with sizes over several directory pages, removal, nested
//! directories, the error each call reports, calls from two threads at once, and changes that
//! survive a crash of the filesystem driver once the call returned (they were synced). The
//! harness attaches a fresh FAT volume as the last virtio-blk disk; each case mounts it with
//! `rootfs::start` and ends the drivers again, so the device is free for the next case.
use crate::arch::apic;
use crate::arch::context::Start;
use crate::device;
use crate::ensure;
use crate::rootfs::{self, FsError, MAX_IMAGE_BYTES};
use crate::sched;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::Cell;
use fsproto::Kind;
use spin::Mutex;

/// Where the cases put their files (each case in a folder of its own).
const DIR: &str = "/rootfs-test";

/// The mounted test volume; dropping it ends the drivers, also when a check fails early.
pub(super) struct Mounted;

impl Drop for Mounted {
    fn drop(&mut self) {
        rootfs::unmount();
    }
}

/// Mounts the last virtio-blk disk (the harness's FAT volume) as the root filesystem.
pub(super) fn mount() -> Result<Mounted, String> {
    ensure!(
        !rootfs::mounted(),
        "a root filesystem is mounted already (a case before did not end its drivers)"
    );
    let n = device::block_devices();
    ensure!(
        n > 0,
        "no virtio-blk disk (the harness attaches a FAT volume for the rootfs_ cases)"
    );
    rootfs::start(&format!("virtio-blk{}", n - 1))
        .map_err(|e| format!("cannot mount the test volume: {e}"))?;
    Ok(Mounted)
}

/// Ends the drivers and checks that the device is free again (a dying driver's claim goes a
/// moment after its death on another CPU).
pub(super) fn finish(m: Mounted) -> Result<(), String> {
    drop(m);
    ensure!(!rootfs::mounted(), "still mounted after unmount");
    let give_up = apic::now_ns() + 100_000_000;
    while device::claimed() != 0 && apic::now_ns() < give_up {
        sched::block_until(apic::now_ns() + 1_000_000);
    }
    ensure!(
        device::claimed() == 0,
        "the disk is still claimed after unmount"
    );
    Ok(())
}

/// Byte `i` of the pattern `seed`: it differs with the position (no period a misplaced chunk
/// could hide in) and with the seed.
fn pattern_byte(seed: u8, i: u64) -> u8 {
    ((i as u32).wrapping_mul(0x9e37_79b1) >> 24) as u8 ^ seed
}

/// The first `len` bytes of the pattern `seed`.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| pattern_byte(seed, i)).collect()
}

/// Compares every byte with the pattern (without a second buffer: the heap is 8 MiB).
fn is_pattern(path: &str, got: &[u8], seed: u8, len: usize) -> Result<(), String> {
    ensure!(
        got.len() == len,
        "{path}: read {} bytes, {len} were written",
        got.len()
    );
    if let Some(i) = (0..len).find(|&i| got[i] != pattern_byte(seed, i as u64)) {
        return Err(format!(
            "{path}: byte {i} reads {:#04x}, {:#04x} was written",
            got[i],
            pattern_byte(seed, i as u64)
        ));
    }
    Ok(())
}

/// Compares every byte; names the first that differs.
fn same(path: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    ensure!(
        got.len() == want.len(),
        "{path}: read {} bytes, {} were written",
        got.len(),
        want.len()
    );
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        return Err(format!(
            "{path}: byte {i} reads {:#04x}, {:#04x} was written",
            got[i], want[i]
        ));
    }
    Ok(())
}

fn write(path: &str, bytes: &[u8]) -> Result<(), String> {
    rootfs::write_file(path, bytes).map_err(|e| format!("write {path}: {e}"))
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    rootfs::read_file_limited(path, MAX_IMAGE_BYTES).map_err(|e| format!("read {path}: {e}"))
}

fn mkdir(path: &str) -> Result<(), String> {
    rootfs::mkdir_all(path).map_err(|e| format!("mkdir_all {path}: {e}"))
}

fn list(path: &str) -> Result<Vec<(String, u64)>, String> {
    rootfs::list_dir(path).map_err(|e| format!("list_dir {path}: {e}"))
}

/// Checks that `got` is the error `want`.
fn expect<T: core::fmt::Debug>(
    what: &str,
    got: Result<T, FsError>,
    want: FsError,
) -> Result<(), String> {
    match got {
        Err(e) if e == want => Ok(()),
        other => Err(format!("{what}: expected {want:?}, got {other:?}")),
    }
}

/// Without a root filesystem every call says so (the test boots start none).
pub fn no_root_filesystem() -> Result<(), String> {
    ensure!(
        !rootfs::mounted(),
        "a root filesystem is mounted (a case before did not end its drivers)"
    );
    expect("write", rootfs::write_file("/f", b"x"), FsError::NoRoot)?;
    expect("read", rootfs::read_file_limited("/f", 16), FsError::NoRoot)?;
    expect("module read", rootfs::read_file("/f"), FsError::NoRoot)?;
    expect("remove", rootfs::remove("/f"), FsError::NoRoot)?;
    expect("list", rootfs::list_dir("/"), FsError::NoRoot)?;
    expect("mkdir_all", rootfs::mkdir_all("/a/b"), FsError::NoRoot)?;
    expect("lookup", rootfs::lookup("/"), FsError::NoRoot)?;
    let text = FsError::NoRoot.to_string();
    ensure!(
        text.contains("root="),
        "the message does not say what to do: {text}"
    );
    Ok(())
}

/// Files of 0 B, 1 B, one protocol chunk, 100 KiB and 3 MiB read back byte for byte; a
/// shorter overwrite truncates; read limits refuse a larger file before reading it.
pub fn write_read_back() -> Result<(), String> {
    let m = mount()?;
    let dir = format!("{DIR}/sizes");
    mkdir(&dir)?;
    let sizes: [(&str, usize); 5] = [
        ("empty", 0),
        ("one", 1),
        ("chunk", fsproto::MAX_DATA),
        ("hundred", 100 << 10),
        ("three-mib", 3 << 20),
    ];
    for (seed, (name, len)) in sizes.iter().enumerate() {
        let path = format!("{dir}/{name}");
        let seed = seed as u8 + 1;
        let want = pattern(seed, *len);
        let t0 = apic::now_ns();
        write(&path, &want)?;
        let t1 = apic::now_ns();
        drop(want);
        let got = read(&path)?;
        let t2 = apic::now_ns();
        is_pattern(&path, &got, seed, *len)?;
        if *len >= 1 << 20 {
            crate::println!(
                "ktest: info rootfs: {} KiB written and synced in {} ms, read in {} ms",
                len >> 10,
                (t1 - t0) / 1_000_000,
                (t2 - t1) / 1_000_000
            );
        }
    }
    let big = format!("{dir}/three-mib");
    expect(
        "read over the limit",
        rootfs::read_file_limited(&big, 1 << 20),
        FsError::TooBig {
            size: 3 << 20,
            limit: 1 << 20,
        },
    )?;
    let exact =
        rootfs::read_file_limited(&big, 3 << 20).map_err(|e| format!("exact limit: {e}"))?;
    ensure!(
        exact.len() == 3 << 20,
        "the exact limit read {} bytes",
        exact.len()
    );

    // Overwrites: shorter (the old tail must go), then empty, then longer again.
    let path = format!("{dir}/hundred");
    for len in [5usize, 0, 40_000] {
        let want = pattern(0x5a ^ len as u8, len);
        write(&path, &want)?;
        same(&path, &read(&path)?, &want)?;
        let listed = list(&dir)?;
        ensure!(
            listed
                .iter()
                .any(|(n, s)| n == "hundred" && *s == len as u64),
            "after an overwrite with {len} bytes the listing says {listed:?}"
        );
    }
    finish(m)
}

/// A directory of long names, spread over more than one reply page, lists every entry once
/// with its size, subdirectories with size 0.
pub fn list_dir_pages_and_sizes() -> Result<(), String> {
    let m = mount()?;
    let dir = format!("{DIR}/list");
    mkdir(&format!("{dir}/sub"))?;
    ensure!(
        list(&format!("{dir}/sub"))?.is_empty(),
        "a new directory is not empty"
    );
    // 200-character names: 211 bytes per entry on the wire, so 170 entries take two pages.
    let count = 170usize;
    let name = |i: usize| format!("{i:03}-{}", "n".repeat(196));
    for i in 0..count {
        write(&format!("{dir}/{}", name(i)), &pattern(i as u8, i))?;
    }
    let listed = list(&dir)?;
    ensure!(
        listed.len() == count + 1,
        "{} entries listed, {} expected",
        listed.len(),
        count + 1
    );
    for i in 0..count {
        let n = name(i);
        let hits: Vec<_> = listed.iter().filter(|(l, _)| *l == n).collect();
        ensure!(
            hits.len() == 1 && hits[0].1 == i as u64,
            "entry {i} listed as {hits:?}"
        );
    }
    ensure!(
        listed.iter().any(|(n, s)| n == "sub" && *s == 0),
        "the subdirectory is not listed with size 0"
    );
    let root = list("/")?;
    ensure!(
        root.iter().any(|(n, _)| n == &DIR[1..]),
        "/ does not list {DIR}: {root:?}"
    );
    finish(m)
}

/// A removed file reads as missing and leaves the listing; a directory goes once empty.
pub fn remove_then_not_found() -> Result<(), String> {
    let m = mount()?;
    let dir = format!("{DIR}/remove");
    mkdir(&dir)?;
    let (a, b) = (format!("{dir}/a"), format!("{dir}/b"));
    write(&a, b"first")?;
    write(&b, b"second")?;
    rootfs::remove(&a).map_err(|e| format!("remove {a}: {e}"))?;
    expect("read after remove", read_raw(&a), FsError::NotFound)?;
    expect("lookup after remove", rootfs::lookup(&a), FsError::NotFound)?;
    expect("remove again", rootfs::remove(&a), FsError::NotFound)?;
    let listed = list(&dir)?;
    ensure!(
        listed == [(String::from("b"), 6)],
        "after the removal the listing says {listed:?}"
    );
    expect(
        "remove a full directory",
        rootfs::remove(&dir),
        FsError::NotEmpty,
    )?;
    rootfs::remove(&b).map_err(|e| format!("remove {b}: {e}"))?;
    rootfs::remove(&dir).map_err(|e| format!("remove {dir}: {e}"))?;
    expect(
        "lookup of the removed directory",
        rootfs::lookup(&dir),
        FsError::NotFound,
    )?;
    finish(m)
}

fn read_raw(path: &str) -> Result<Vec<u8>, FsError> {
    rootfs::read_file_limited(path, MAX_IMAGE_BYTES)
}

/// Nested directories appear in one call; a second call, and a call for a directory that
/// exists, succeed; a file in the way is `NotADirectory`.
pub fn mkdir_all_nested_and_idempotent() -> Result<(), String> {
    let m = mount()?;
    let deep = format!("{DIR}/mkdir/a/b/c");
    mkdir(&deep)?;
    for p in [
        DIR.to_string(),
        format!("{DIR}/mkdir"),
        format!("{DIR}/mkdir/a"),
        format!("{DIR}/mkdir/a/b"),
        deep.clone(),
    ] {
        ensure!(
            rootfs::lookup(&p) == Ok(Kind::Dir),
            "{p} is {:?} after mkdir_all",
            rootfs::lookup(&p)
        );
    }
    mkdir(&deep)?;
    mkdir(&format!("{DIR}/mkdir/a"))?;
    mkdir("/")?;
    let file = format!("{deep}/file");
    write(&file, b"inside")?;
    same(&file, &read(&file)?, b"inside")?;
    expect(
        "mkdir_all through a file",
        rootfs::mkdir_all(&format!("{file}/x")),
        FsError::NotADirectory,
    )?;
    expect(
        "mkdir_all onto a file",
        rootfs::mkdir_all(&file),
        FsError::NotADirectory,
    )?;
    finish(m)
}

/// Each mistake gets its own error, and no call creates what it was not asked to.
pub fn errors_are_clear() -> Result<(), String> {
    let m = mount()?;
    let dir = format!("{DIR}/errors");
    mkdir(&dir)?;
    // A missing directory is not created by a write.
    let missing = format!("{dir}/missing/file");
    let e = rootfs::write_file(&missing, b"x");
    expect(
        "write into a missing directory",
        e.clone(),
        FsError::NoParent,
    )?;
    let text = e.err().map(|e| e.to_string()).unwrap_or_default();
    ensure!(
        text.contains("create it first"),
        "the message does not say what to do: {text}"
    );
    expect(
        "lookup of the missing directory",
        rootfs::lookup(&format!("{dir}/missing")),
        FsError::NotFound,
    )?;
    // Paths: over 1,024 bytes (refused before sending), a name over FAT's 255 characters and
    // one with a character FAT cannot store (refused by the driver), a relative path.
    let long = format!("{dir}/{}", "d/".repeat(520)) + "f";
    let too_long = FsError::BadPath(fsproto::Error::NameTooLong);
    expect(
        "write, long path",
        rootfs::write_file(&long, b"x"),
        too_long.clone(),
    )?;
    expect(
        "mkdir, long path",
        rootfs::mkdir_all(&long),
        too_long.clone(),
    )?;
    expect("remove, long path", rootfs::remove(&long), too_long.clone())?;
    expect("list, long path", rootfs::list_dir(&long), too_long.clone())?;
    expect("read, long path", read_raw(&long), FsError::NotFound)?;
    let long_name = format!("{dir}/{}", "x".repeat(300));
    expect(
        "write, long name",
        rootfs::write_file(&long_name, b"x"),
        too_long,
    )?;
    expect(
        "write, invalid name",
        rootfs::write_file(&format!("{dir}/what?"), b"x"),
        FsError::BadPath(fsproto::Error::InvalidName),
    )?;
    expect(
        "write, relative path",
        rootfs::write_file("rootfs-test/x", b"x"),
        FsError::BadPath(fsproto::Error::BadPath),
    )?;
    let text = FsError::BadPath(fsproto::Error::NameTooLong).to_string();
    ensure!(
        text.contains("1024 bytes"),
        "the path message does not give the limit: {text}"
    );
    // Files and directories mixed up.
    expect(
        "write onto a directory",
        rootfs::write_file(&dir, b"x"),
        FsError::IsADirectory,
    )?;
    let file = format!("{dir}/file");
    write(&file, b"data")?;
    expect(
        "write below a file",
        rootfs::write_file(&format!("{file}/x"), b"x"),
        FsError::NotADirectory,
    )?;
    expect(
        "list a file",
        rootfs::list_dir(&file),
        FsError::NotADirectory,
    )?;
    expect(
        "list a missing directory",
        rootfs::list_dir(&format!("{dir}/missing")),
        FsError::NotFound,
    )?;
    expect("read a directory", read_raw(&dir), FsError::NotFound)?;
    expect(
        "read a missing file",
        read_raw(&format!("{dir}/nothing")),
        FsError::NotFound,
    )?;
    let listed = list(&dir)?;
    ensure!(
        listed == [(String::from("file"), 4)],
        "the failed calls left {listed:?}"
    );
    finish(m)
}

/// What a call wrote or removed is on the disk when it returns: the filesystem driver is
/// killed (its cache lost) and started again after each change, the last call before it, and
/// the new driver sees the change (each call syncs by itself: nothing after it did).
pub fn synced_changes_survive_a_driver_crash() -> Result<(), String> {
    let m = mount()?;
    let dir = format!("{DIR}/durable");
    mkdir(&dir)?;
    let (kept, gone) = (format!("{dir}/kept"), format!("{dir}/gone"));
    let want = pattern(0x33, 100 << 10);
    write(&gone, b"removed before the second crash")?;
    write(&kept, &want)?;
    crash()?;
    same(&kept, &read(&kept)?, &want)?;
    rootfs::remove(&gone).map_err(|e| format!("remove {gone}: {e}"))?;
    crash()?;
    expect(
        "the removed file after the crash",
        rootfs::lookup(&gone),
        FsError::NotFound,
    )?;
    rootfs::mkdir_all(&format!("{dir}/new/deeper")).map_err(|e| format!("mkdir_all: {e}"))?;
    crash()?;
    ensure!(
        rootfs::lookup(&format!("{dir}/new/deeper")) == Ok(Kind::Dir),
        "the directories mkdir_all made are gone after the crash"
    );
    finish(m)
}

/// Kills both drivers without a flush and starts them again on the same disk.
fn crash() -> Result<(), String> {
    rootfs::restart()
        .map(drop)
        .map_err(|e| format!("restart: {e:?}"))
}

/// Results of the second writer thread of [`two_threads_at_once`].
static OTHER: Mutex<Option<Result<(), String>>> = Mutex::new(None);

/// Writes and reads back files in its own folder, several rounds.
fn write_rounds(who: u8) -> Result<(), String> {
    let dir = format!("{DIR}/threads/{who}");
    mkdir(&dir)?;
    for round in 0..4u8 {
        let path = format!("{dir}/f{round}");
        let want = pattern(who.wrapping_mul(16) ^ round, 96 << 10);
        write(&path, &want)?;
        same(&path, &read(&path)?, &want)?;
    }
    Ok(())
}

extern "C" fn second_writer(_: u64) -> ! {
    let r = write_rounds(2);
    *OTHER.lock() = Some(r);
    sched::exit_current()
}

/// Two kernel threads (on two CPUs where there are two) write and read at the same time, each
/// call on its own connection; both see exactly their own data.
pub fn two_threads_at_once() -> Result<(), String> {
    let m = mount()?;
    *OTHER.lock() = None;
    let other_core = (sched::cores() > 1).then(|| sched::cores() - 1);
    sched::spawn_on(
        Start::Kernel {
            entry: second_writer,
            arg: 0,
        },
        None,
        None,
        other_core,
        schedpolicy::Priority::NORMAL,
    )
    .map_err(|_| String::from("no memory for a thread"))?;
    let mine = write_rounds(1);
    let theirs = loop {
        if let Some(r) = OTHER.lock().take() {
            break r;
        }
        sched::block_until(apic::now_ns() + 1_000_000);
    };
    mine.map_err(|e| format!("first thread: {e}"))?;
    theirs.map_err(|e| format!("second thread: {e}"))?;
    finish(m)
}

/// A file written piece by piece from a generator and read piece by piece into a check, with
/// no buffer of its size anywhere; an error from either callback ends the call and comes
/// back, and a write that failed leaves no partial file.
pub fn pieces_without_a_buffer() -> Result<(), String> {
    let m = mount()?;
    let dir = format!("{DIR}/pieces");
    mkdir(&dir)?;
    let path = format!("{dir}/streamed");
    // Not a multiple of the protocol's chunk: the last piece is short.
    let len = (3u64 << 20) + 5;
    let asked = Cell::new(0u64);
    rootfs::write_file_with(&path, len, |offset, buf| {
        if offset != asked.get() || buf.is_empty() || buf.len() > fsproto::MAX_DATA {
            return Err(FsError::Io(format!(
                "asked for {} bytes at {offset}, {} expected next",
                buf.len(),
                asked.get()
            )));
        }
        for (i, b) in buf.iter_mut().enumerate() {
            *b = pattern_byte(0x77, offset + i as u64);
        }
        asked.set(offset + buf.len() as u64);
        Ok(())
    })
    .map_err(|e| format!("write_file_with: {e}"))?;
    ensure!(asked.get() == len, "filled {} of {len} bytes", asked.get());
    let mut next = 0u64;
    let size = rootfs::read_file_with(&path, MAX_IMAGE_BYTES, |size, offset, bytes| {
        if size != len || offset != next {
            return Err(FsError::Io(format!(
                "a piece at {offset} of a {size}-byte file, {next} of {len} expected"
            )));
        }
        if let Some(i) =
            (0..bytes.len()).find(|&i| bytes[i] != pattern_byte(0x77, offset + i as u64))
        {
            return Err(FsError::Io(format!("byte {} differs", offset + i as u64)));
        }
        next += bytes.len() as u64;
        Ok(())
    })
    .map_err(|e| format!("read_file_with: {e}"))?;
    ensure!(
        size == len && next == len,
        "read {next} bytes of a {size}-byte file"
    );

    // The callbacks' errors come back as they were.
    let stop = FsError::Io(String::from("stopped by the test"));
    expect(
        "a read the piece callback stops",
        rootfs::read_file_with(&path, MAX_IMAGE_BYTES, |_, offset, _| {
            if offset > 0 {
                Err(stop.clone())
            } else {
                Ok(())
            }
        }),
        stop.clone(),
    )?;
    expect(
        "a read over its limit",
        rootfs::read_file_with(&path, len - 1, |_, _, _| Ok(())),
        FsError::TooBig {
            size: len,
            limit: len - 1,
        },
    )?;
    let failed = format!("{dir}/failed");
    expect(
        "a write the fill callback stops",
        rootfs::write_file_with(&failed, 1 << 20, |offset, buf| {
            buf.fill(1);
            if offset >= 256 << 10 {
                Err(stop.clone())
            } else {
                Ok(())
            }
        }),
        stop.clone(),
    )?;
    expect(
        "the partial file of the failed write",
        rootfs::lookup(&failed),
        FsError::NotFound,
    )?;
    finish(m)
}
