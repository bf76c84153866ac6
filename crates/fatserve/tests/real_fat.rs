//! The FAT driver against real peers: images made by `mkfs.fat` and filled by mtools are read
//! with matching checksums; what the driver writes, `mcopy` reads back byte for byte; `fsck.fat`
//! finds the volume clean after a write-heavy run; fsynced files survive a crash.
mod common;

use common::*;
use fsproto::{Error, Kind};
use std::path::Path;

/// (path inside the image, size, seed) of the files `mcopy` puts in.
const FILES: &[(&str, usize, u64)] = &[
    ("/empty.bin", 0, 1),
    ("/one byte.txt", 1, 2),
    ("/Nested Directory/Page Of Four KiB.dat", 4096, 3),
    (
        "/Nested Directory/deeper level/A Rather Long File Name For One MiB Plus One.bin",
        (1 << 20) + 1,
        4,
    ),
    ("/big/twenty-MiB-file.raw", 20 << 20, 5),
    ("/UPPER.TXT", 100, 6),
    ("/MixedCase.Ext", 513, 7),
];

/// A 64 MiB FAT32 image filled by mtools with [`FILES`].
fn host_image(dir: &Path) -> std::path::PathBuf {
    let img = dir.join("host.img");
    mkfs(&img, 64 * 1024, 32);
    let i = img.to_str().unwrap();
    for d in [
        "/Nested Directory",
        "/Nested Directory/deeper level",
        "/big",
        "/empty dir",
    ] {
        run("mmd", &["-i", i, &format!("::{d}")]);
    }
    for &(path, size, seed) in FILES {
        let src = dir.join(format!("src{seed}"));
        std::fs::write(&src, contents(size, seed)).unwrap();
        run(
            "mcopy",
            &["-i", i, src.to_str().unwrap(), &format!("::{path}")],
        );
    }
    img
}

#[test]
fn reads_an_image_made_by_mkfs_and_mtools() {
    if !have_tools() {
        return;
    }
    let dir = scratch("reads");
    let img = host_image(&dir);
    let mut c = mount(&img);
    for &(path, size, seed) in FILES {
        let want = contents(size, seed);
        let got = c.read_all(path).unwrap();
        assert_eq!(got.len(), size, "{path}");
        assert_eq!(
            crc32fast::hash(&got),
            crc32fast::hash(&want),
            "{path}: checksum differs"
        );
        let st = c.stat(path).unwrap();
        assert_eq!((st.kind, st.size), (Kind::File, size as u64));
    }
    // Long names and their case come back as mtools wrote them; names match without case.
    let root: Vec<String> = c.ls("/").unwrap().into_iter().map(|e| e.name).collect();
    for name in [
        "empty.bin",
        "one byte.txt",
        "Nested Directory",
        "big",
        "empty dir",
        "UPPER.TXT",
        "MixedCase.Ext",
    ] {
        assert!(root.iter().any(|n| n == name), "{name} not in {root:?}");
    }
    assert_eq!(root.len(), 7, "{root:?}");
    assert_eq!(c.lookup("/nested directory/DEEPER LEVEL"), Ok(Kind::Dir));
    assert_eq!(c.lookup("/mixedcase.ext"), Ok(Kind::File));
    let deeper = c.ls("/Nested Directory/deeper level").unwrap();
    assert_eq!(deeper.len(), 1);
    assert_eq!(deeper[0].size, (1 << 20) + 1);
    assert_eq!(c.ls("/empty dir").unwrap(), []);
    // A read from the middle, across cluster boundaries, at and past the end.
    let big = contents(20 << 20, 5);
    let (d, size) = c
        .read("/big/twenty-MiB-file.raw", 12_345_678, 30_000)
        .unwrap();
    assert_eq!((&d[..], size), (&big[12_345_678..12_375_678], 20 << 20));
    let (d, _) = c.read("/one byte.txt", 1, 100).unwrap();
    assert!(d.is_empty());
    let (d, _) = c.read("/one byte.txt", u64::MAX, 100).unwrap();
    assert!(d.is_empty());
    // Reading changes nothing on disk.
    drop(c);
    fsck(&img).expect("clean after reading");
}

#[test]
fn what_the_driver_writes_mcopy_reads_back() {
    if !have_tools() {
        return;
    }
    let dir = scratch("writes");
    let img = dir.join("w.img");
    mkfs(&img, 64 * 1024, 32);
    let mut c = mount(&img);
    c.mkdir("/docs").unwrap();
    c.mkdir("/docs/A Long Directory Name").unwrap();
    let files: Vec<(String, Vec<u8>)> = [
        ("/docs/empty", 0usize, 11u64),
        ("/docs/a", 1, 12),
        ("/docs/A Long Directory Name/four kib page.bin", 4096, 13),
        (
            "/docs/A Long Directory Name/odd sized file name.dat",
            100_003,
            14,
        ),
        ("/megabyte plus one.bin", (1 << 20) + 1, 15),
    ]
    .iter()
    .map(|&(p, n, s)| (p.to_string(), contents(n, s)))
    .collect();
    for (p, data) in &files {
        c.put(p, data).unwrap();
    }
    // Overwrite in the middle, extend past the end with a gap, shrink and grow.
    let mut patched = contents(50_000, 16);
    c.put("/patched.bin", &patched).unwrap();
    c.write("/patched.bin", 1000, b"middle").unwrap();
    patched[1000..1006].copy_from_slice(b"middle");
    assert_eq!(c.write("/patched.bin", 60_000, b"after a gap"), Ok(60_011));
    patched.resize(60_000, 0);
    patched.extend_from_slice(b"after a gap");
    c.truncate("/patched.bin", 55_555).unwrap();
    patched.truncate(55_555);
    c.truncate("/patched.bin", 56_000).unwrap();
    patched.resize(56_000, 0);
    // Renames in one directory and across directories, of files and of a directory tree.
    c.put("/docs/old name.txt", b"renamed").unwrap();
    c.rename("/docs/old name.txt", "/docs/New Name.txt")
        .unwrap();
    c.mkdir("/tree").unwrap();
    c.mkdir("/tree/sub").unwrap();
    c.put("/tree/sub/leaf.txt", b"leaf").unwrap();
    c.put("/tree/top.txt", b"top").unwrap();
    c.rename("/tree", "/docs/moved tree").unwrap();
    c.rename("/megabyte plus one.bin", "/docs/moved.bin")
        .unwrap();
    c.fsync().unwrap();
    drop(c);

    for (p, data) in &files {
        let p = if p == "/megabyte plus one.bin" {
            "/docs/moved.bin"
        } else {
            p
        };
        assert!(mcopy_out(&img, p, &dir) == *data, "{p} differs");
    }
    assert!(mcopy_out(&img, "/patched.bin", &dir) == patched);
    assert_eq!(mcopy_out(&img, "/docs/New Name.txt", &dir), b"renamed");
    assert_eq!(
        mcopy_out(&img, "/docs/moved tree/sub/leaf.txt", &dir),
        b"leaf"
    );
    assert_eq!(mcopy_out(&img, "/docs/moved tree/top.txt", &dir), b"top");
    let listing = run("mdir", &["-i", img.to_str().unwrap(), "-b", "::/"]);
    assert!(
        !listing.contains("tree"),
        "the old tree is still there:\n{listing}"
    );
    assert!(!listing.contains("megabyte"), "{listing}");
    let docs = run("mdir", &["-i", img.to_str().unwrap(), "-b", "::/docs"]);
    assert!(!docs.contains("old name"), "{docs}");
    fsck(&img).expect("fsck.fat finds the volume clean");
}

#[test]
fn write_heavy_run_leaves_fsck_clean() {
    if !have_tools() {
        return;
    }
    let dir = scratch("heavy");
    let img = dir.join("h.img");
    mkfs(&img, 64 * 1024, 32);
    // A small cache, so that blocks are evicted and written back mid-run.
    let srv = fatserve::FatServer::mount_with_cache(FileDevice::open(&img), 16).unwrap();
    let mut c = Client::new(srv);
    let mut kept = Vec::new();
    for d in 0..6 {
        let dpath = format!("/dir {d}");
        c.mkdir(&dpath).unwrap();
        for f in 0..40u64 {
            let p = format!("{dpath}/file number {f} with a long name.bin");
            let data = contents(((f * 7919 + d * 31) % 70_000) as usize, f + 100 * d);
            c.put(&p, &data).unwrap();
            if f % 3 == 0 {
                c.remove(&p).unwrap();
            } else if f % 5 == 0 {
                let q = format!("/dir {}/moved {f} from {d}", (d + 1) % 6);
                if c.lookup(&format!("/dir {}", (d + 1) % 6)).is_ok() {
                    c.rename(&p, &q).unwrap();
                    kept.push((q, data));
                } else {
                    kept.push((p, data));
                }
            } else {
                kept.push((p, data));
            }
        }
        if d % 2 == 1 {
            c.fsync().unwrap();
        }
    }
    // Everything reads back through the driver before and after a remount.
    for (p, data) in &kept {
        assert!(c.read_all(p).unwrap() == *data, "{p}");
    }
    c.fsync().unwrap();
    let writes = c.srv.with_device(|d| d.writes);
    drop(c);
    assert!(
        writes > 100,
        "only {writes} device writes: is the cache writing back?"
    );
    fsck(&img).expect("fsck.fat finds the volume clean after a write-heavy run");
    let mut c = mount(&img);
    for (p, data) in kept.iter().step_by(7) {
        assert!(c.read_all(p).unwrap() == *data, "{p} after remount");
        assert!(mcopy_out(&img, p, &dir) == *data, "{p} by mcopy");
    }
}

#[test]
fn fsynced_files_survive_a_crash() {
    if !have_tools() {
        return;
    }
    let dir = scratch("crash");
    let img = dir.join("c.img");
    mkfs(&img, 64 * 1024, 32);
    let srv = fatserve::FatServer::mount_with_cache(FileDevice::open(&img), 16).unwrap();
    let mut c = Client::new(srv);
    let safe = contents(300_000, 77);
    c.put("/safe.bin", &safe).unwrap();
    c.fsync().unwrap();
    // Unsynced work, some of which the small cache writes back before the crash.
    for i in 0..20 {
        c.put(&format!("/unsynced {i}.bin"), &contents(40_000, i))
            .unwrap();
    }
    c.srv.crash().expect("device back");
    // The volume is marked dirty (the dirty flag went to the device first) or is consistent.
    if let Err(report) = fsck(&img) {
        let repair = std::process::Command::new(tool("fsck.fat").unwrap())
            .args(["-a", img.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            repair.status.code().is_some_and(|c| c <= 1),
            "fsck.fat -a could not repair:\n{report}"
        );
        fsck(&img).expect("clean after fsck.fat -a");
    }
    assert!(mcopy_out(&img, "/safe.bin", &dir) == safe);
    let mut c = mount(&img);
    assert_eq!(c.read_all("/safe.bin").unwrap(), safe);
}

#[test]
fn directory_pages_list_every_entry_once() {
    if !have_tools() {
        return;
    }
    let dir = scratch("pages");
    let img = dir.join("p.img");
    mkfs(&img, 64 * 1024, 32);
    let mut c = mount(&img);
    c.mkdir("/many").unwrap();
    // More names than one page (60 KiB) holds.
    let names: Vec<String> = (0..600)
        .map(|i| format!("entry {i:03} {}", "x".repeat(100 + i % 40)))
        .collect();
    for n in &names {
        c.create(&format!("/many/{n}"), 0).unwrap();
    }
    let (first, next) = c.readdir("/many", 0).unwrap();
    assert!(
        next != fsproto::END_CURSOR && first.len() < names.len(),
        "one page holds all"
    );
    let all = c.ls("/many").unwrap();
    let got: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(got, names.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(all.iter().all(|e| e.kind == Kind::File && e.size == 0));
    let (rest, end) = c.readdir("/many", 1000).unwrap();
    assert_eq!((rest.len(), end), (0, fsproto::END_CURSOR));
    c.fsync().unwrap();
    drop(c);
    let listing = run("mdir", &["-i", img.to_str().unwrap(), "-b", "::/many"]);
    assert_eq!(listing.lines().count(), names.len(), "{listing}");
    fsck(&img).expect("clean");
}

#[test]
fn full_volume_answers_no_space_and_stays_consistent() {
    if !have_tools() {
        return;
    }
    let dir = scratch("full");
    let img = dir.join("small.img");
    // A 2 MiB FAT12 volume fills quickly; the driver handles FAT12/16 as well as FAT32.
    mkfs(&img, 2048, 12);
    let mut c = mount(&img);
    c.create("/filler", 0).unwrap();
    let chunk = contents(fsproto::MAX_DATA, 9);
    let mut written = 0u64;
    let err = loop {
        match c.write("/filler", written, &chunk) {
            Ok(_) => written += chunk.len() as u64,
            Err(e) => break e,
        }
        assert!(written < 4 << 20, "a 2 MiB volume took {written} bytes");
    };
    assert_eq!(err, Error::NoSpace);
    assert_eq!(c.mkdir("/one more").err(), Some(Error::NoSpace));
    // Freeing space makes room again.
    c.remove("/filler").unwrap();
    c.put("/after", b"room again").unwrap();
    c.fsync().unwrap();
    drop(c);
    assert_eq!(mcopy_out(&img, "/after", &dir), b"room again");
    fsck(&img).expect("clean after filling up");
}
