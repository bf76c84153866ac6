//! The open-file cache (`files.rs`): files kept open between requests must answer exactly as
//! files opened afresh for each request would. Reads and writes are checked against a model
//! of every file's bytes after interleaved, random and aliased access, around remove, rename,
//! truncate and create, and across fsync and crashes; the results are checked again by
//! `fsck.fat` and `mcopy`. The last test checks that sequential reads and writes now cost time
//! proportional to the file's length.
mod common;

use common::*;
use fsproto::{Error, Kind, MAX_DATA};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A fresh image of `kib` KiB made by `mkfs.fat -F bits`.
fn image(dir: &Path, kib: u64, bits: u32) -> PathBuf {
    let img = dir.join("v.img");
    mkfs(&img, kib, bits);
    img
}

/// Every file's bytes as the driver should have them.
type Model = BTreeMap<String, Vec<u8>>;

/// Writes `data` at `offset` into the model's copy (a gap before it reads as zeros).
fn model_write(m: &mut Vec<u8>, offset: usize, data: &[u8]) {
    if m.len() < offset + data.len() {
        m.resize(offset + data.len(), 0);
    }
    m[offset..offset + data.len()].copy_from_slice(data);
}

/// Reads `len` bytes at `offset` and checks them, and the size, against the model.
fn check_read<D: fatserve::BlockDevice>(
    c: &mut Client<D>,
    p: &str,
    want: &[u8],
    offset: usize,
    len: usize,
) {
    let (got, size) = c.read(p, offset as u64, len as u32).unwrap();
    assert_eq!(size, want.len() as u64, "size of {p}");
    let end = (offset + len).min(want.len()).max(offset);
    let expect = want.get(offset..end).unwrap_or(&[]);
    assert!(got == expect, "{p}: {len} bytes at {offset} differ");
}

/// Checks every file of the model through the driver, then (after fsync) with fsck and mcopy.
fn check_everywhere<D: fatserve::BlockDevice>(
    mut c: Client<D>,
    img: &Path,
    dir: &Path,
    model: &Model,
) {
    for (p, want) in model {
        assert!(c.read_all(p).unwrap() == *want, "{p} through the driver");
        assert_eq!(c.stat(p).unwrap().size, want.len() as u64, "stat {p}");
    }
    c.fsync().unwrap();
    drop(c);
    fsck(img).expect("fsck.fat finds the volume clean");
    for (p, want) in model {
        assert!(mcopy_out(img, p, dir) == *want, "{p} by mcopy");
    }
}

#[test]
fn interleaved_reads_and_writes_of_two_files() {
    if !have_tools() {
        return;
    }
    let dir = scratch("open-interleaved");
    let img = image(&dir, 64 * 1024, 32);
    let mut c = mount(&img);
    let mut model = Model::new();
    for p in ["/one.bin", "/two.bin"] {
        c.create(p, 0).unwrap();
        model.insert(p.into(), Vec::new());
    }
    // Chunks of sizes that do not divide a cluster, so each request starts mid-cluster.
    let sizes = [MAX_DATA, 5000, 1, 4096, 12_345, 511, 513];
    for i in 0..120 {
        for (k, p) in ["/one.bin", "/two.bin"].into_iter().enumerate() {
            let m = model.get_mut(p).unwrap();
            let data = contents(sizes[(i + k) % sizes.len()], (i * 2 + k) as u64);
            let at = m.len();
            assert_eq!(
                c.write(p, at as u64, &data).unwrap(),
                (at + data.len()) as u64
            );
            model_write(m, at, &data);
            // Others see the new size at once: the entry is written after every write.
            assert_eq!(c.stat(p).unwrap().size, m.len() as u64);
        }
    }
    let listed = c.ls("/").unwrap();
    for e in listed {
        assert_eq!(e.size, model[&format!("/{}", e.name)].len() as u64);
    }
    // Interleaved sequential reads in a size that is not a cluster's.
    let mut at = [0usize; 2];
    while at
        .iter()
        .zip(["/one.bin", "/two.bin"])
        .any(|(a, p)| *a < model[p].len())
    {
        for (k, p) in ["/one.bin", "/two.bin"].into_iter().enumerate() {
            check_read(&mut c, p, &model[p], at[k], 7000);
            at[k] += 7000;
        }
    }
    // Overwrites in the middle, then reads on both sides of them.
    for (k, p) in ["/one.bin", "/two.bin"].into_iter().enumerate() {
        let data = contents(20_000, 900 + k as u64);
        let at = 100_000 + k * 3333;
        c.write(p, at as u64, &data).unwrap();
        model_write(model.get_mut(p).unwrap(), at, &data);
        check_read(&mut c, p, &model[p], at - 1000, 30_000);
        check_read(&mut c, p, &model[p], 0, MAX_DATA);
    }
    check_everywhere(c, &img, &dir, &model);
}

/// Random writes (some past the end, leaving a gap) and reads over more files than stay
/// open, in two folders, with an fsync now and then, checked against the model after each.
fn random_access(test: &str, kib: u64, bits: u32, seed: u64) {
    let dir = scratch(test);
    let img = image(&dir, kib, bits);
    let mut c = mount(&img);
    c.mkdir("/sub").unwrap();
    let paths: Vec<String> = (0..fatserve::MAX_OPEN + 3)
        .map(|i| {
            if i % 2 == 0 {
                format!("/file {i} with a long name.bin")
            } else {
                format!("/sub/F{i}.DAT")
            }
        })
        .collect();
    let mut model = Model::new();
    for p in &paths {
        c.create(p, 0).unwrap();
        model.insert(p.clone(), Vec::new());
    }
    let mut rng = Rng(seed);
    for step in 0..1500u64 {
        // Mostly the first few files, so that some stay open and others are evicted.
        let p = &paths[if rng.below(4) == 0 {
            rng.below(paths.len() as u64)
        } else {
            rng.below(3)
        } as usize];
        let m = model.get_mut(p).unwrap();
        match rng.below(10) {
            0..=3 => {
                let len = 1 + rng.below(MAX_DATA as u64) as usize;
                let at = match rng.below(3) {
                    0 => m.len(),
                    1 => rng.below(m.len() as u64 + 1) as usize,
                    _ => m.len() + rng.below(20_000) as usize,
                };
                if at + len > 400_000 {
                    continue;
                }
                let data = contents(len, step);
                let size = c.write(p, at as u64, &data).unwrap();
                model_write(m, at, &data);
                assert_eq!(size, m.len() as u64, "size after writing {p}");
            }
            4..=8 => {
                let len = 1 + rng.below(MAX_DATA as u64) as usize;
                let at = rng.below(m.len() as u64 + 5000) as usize;
                check_read(&mut c, p, m, at, len);
            }
            _ => {
                if rng.below(8) == 0 {
                    c.fsync().unwrap();
                } else {
                    assert_eq!(c.stat(p).unwrap().size, m.len() as u64, "stat {p}");
                }
            }
        }
    }
    check_everywhere(c, &img, &dir, &model);
}

#[test]
fn random_reads_and_writes_match_a_model_fat32() {
    if !have_tools() {
        return;
    }
    random_access("open-random32", 64 * 1024, 32, 1);
}

#[test]
fn random_reads_and_writes_match_a_model_fat16() {
    if !have_tools() {
        return;
    }
    random_access("open-random16", 16 * 1024, 16, 2);
}

#[test]
fn random_reads_and_writes_match_a_model_fat12() {
    if !have_tools() {
        return;
    }
    random_access("open-random12", 8 * 1024, 12, 3);
}

#[test]
fn fragmented_files_read_at_random() {
    if !have_tools() {
        return;
    }
    let dir = scratch("open-fragmented");
    let img = image(&dir, 64 * 1024, 32);
    let mut c = mount(&img);
    // Two files grown one 512-byte cluster at a time in turn: every piece of each is one
    // cluster long, more pieces than a file's map keeps.
    let mut model = Model::new();
    for p in ["/x.bin", "/y.bin"] {
        c.create(p, 0).unwrap();
        model.insert(p.into(), Vec::new());
    }
    for i in 0..1500u64 {
        for (k, p) in ["/x.bin", "/y.bin"].into_iter().enumerate() {
            let data = contents(512, i * 2 + k as u64);
            c.write(p, i * 512, &data).unwrap();
            model.get_mut(p).unwrap().extend_from_slice(&data);
        }
    }
    let mut rng = Rng(5);
    for _ in 0..400 {
        let p = if rng.below(2) == 0 {
            "/x.bin"
        } else {
            "/y.bin"
        };
        let len = 1 + rng.below(MAX_DATA as u64) as usize;
        let at = rng.below(model[p].len() as u64) as usize;
        check_read(&mut c, p, &model[p], at, len);
    }
    check_everywhere(c, &img, &dir, &model);
}

#[test]
fn remove_while_open() {
    if !have_tools() {
        return;
    }
    let dir = scratch("open-remove");
    let img = image(&dir, 64 * 1024, 32);
    let mut c = mount(&img);
    let old = contents(100_000, 1);
    c.put("/victim.bin", &old).unwrap();
    check_read(&mut c, "/victim.bin", &old, 40_000, 1000);
    c.remove("/victim.bin").unwrap();
    assert_eq!(c.read("/victim.bin", 41_000, 100), Err(Error::NotFound));
    assert_eq!(c.write("/victim.bin", 100_000, b"x"), Err(Error::NotFound));
    assert_eq!(c.stat("/victim.bin").err(), Some(Error::NotFound));
    // Another file takes the freed clusters; the removed one must not write into them.
    let other = contents(100_000, 2);
    c.put("/other.bin", &other).unwrap();
    assert_eq!(c.write("/victim.bin", 0, b"stale"), Err(Error::NotFound));
    // The same name again is a new, empty file.
    c.create("/victim.bin", 0).unwrap();
    assert_eq!(c.read("/victim.bin", 0, 100).unwrap(), (Vec::new(), 0));
    let new = contents(50_000, 3);
    c.write_all("/victim.bin", 0, &new).unwrap();

    // Removed by its short name while open under its long one.
    let long = "/A Long Name For Removal.bin";
    let gone = contents(70_000, 4);
    c.put(long, &gone).unwrap();
    check_read(&mut c, long, &gone, 65_000, 1000);
    assert_eq!(c.lookup("/ALONGN~1.BIN"), Ok(Kind::File), "the short name");
    c.remove("/ALONGN~1.BIN").unwrap();
    assert_eq!(c.read(long, 66_000, 100), Err(Error::NotFound));
    assert_eq!(c.write(long, 70_000, b"x"), Err(Error::NotFound));

    let model = Model::from([
        ("/other.bin".to_string(), other),
        ("/victim.bin".to_string(), new),
    ]);
    check_everywhere(c, &img, &dir, &model);
}

#[test]
fn rename_while_open() {
    if !have_tools() {
        return;
    }
    let dir = scratch("open-rename");
    let img = image(&dir, 64 * 1024, 32);
    let mut c = mount(&img);
    c.mkdir("/d1").unwrap();
    c.mkdir("/sub").unwrap();
    let mut g = contents(90_000, 1);
    c.put("/d1/f.bin", &g).unwrap();
    check_read(&mut c, "/d1/f.bin", &g, 50_000, 3000);
    c.rename("/d1/f.bin", "/d1/g.bin").unwrap();
    assert_eq!(c.read("/d1/f.bin", 53_000, 10), Err(Error::NotFound));
    assert_eq!(c.write("/d1/f.bin", 0, b"x"), Err(Error::NotFound));
    check_read(&mut c, "/d1/g.bin", &g, 53_000, 3000);
    // A new file under the old name is another file.
    let f = contents(30_000, 2);
    c.put("/d1/f.bin", &f).unwrap();
    let tail = contents(40_000, 3);
    c.write_all("/d1/g.bin", g.len() as u64, &tail).unwrap();
    g.extend_from_slice(&tail);
    check_read(&mut c, "/d1/f.bin", &f, 0, MAX_DATA);
    check_read(&mut c, "/d1/g.bin", &g, 80_000, MAX_DATA);
    // The folder renamed in place, then moved under another one (entry by entry).
    c.rename("/d1", "/d2").unwrap();
    assert_eq!(c.read("/d1/g.bin", 0, 10), Err(Error::NotFound));
    check_read(&mut c, "/d2/g.bin", &g, 100_000, MAX_DATA);
    c.rename("/d2", "/sub/d3").unwrap();
    assert_eq!(c.read("/d2/g.bin", 0, 10), Err(Error::NotFound));
    assert_eq!(c.write("/d2/f.bin", 0, b"x"), Err(Error::NotFound));
    check_read(&mut c, "/sub/d3/g.bin", &g, 120_000, MAX_DATA);
    let more = contents(10_000, 4);
    c.write_all("/sub/d3/g.bin", g.len() as u64, &more).unwrap();
    g.extend_from_slice(&more);
    let model = Model::from([
        ("/sub/d3/f.bin".to_string(), f),
        ("/sub/d3/g.bin".to_string(), g),
    ]);
    check_everywhere(c, &img, &dir, &model);
}

#[test]
fn truncate_while_open() {
    if !have_tools() {
        return;
    }
    let dir = scratch("open-truncate");
    let img = image(&dir, 64 * 1024, 32);
    let mut c = mount(&img);
    let p = "/t.bin";
    let mut m = contents(200_000, 1);
    c.put(p, &m).unwrap();
    // Open, positioned past where the file is about to end.
    check_read(&mut c, p, &m, 150_000, 1000);
    c.truncate(p, 10_000).unwrap();
    m.truncate(10_000);
    assert_eq!(c.read(p, 151_000, 100).unwrap(), (Vec::new(), 10_000));
    check_read(&mut c, p, &m, 0, MAX_DATA);
    let tail = contents(50_000, 2);
    c.write_all(p, 10_000, &tail).unwrap();
    m.extend_from_slice(&tail);
    check_read(&mut c, p, &m, 5_000, MAX_DATA);
    // Grown: zeros after the old end.
    c.truncate(p, 300_000).unwrap();
    m.resize(300_000, 0);
    check_read(&mut c, p, &m, 55_000, MAX_DATA);
    check_read(&mut c, p, &m, 280_000, MAX_DATA);
    // Shrunk to nothing, then written again.
    c.truncate(p, 0).unwrap();
    m.clear();
    assert_eq!(c.read(p, 0, 100).unwrap(), (Vec::new(), 0));
    let again = contents(70_000, 3);
    c.write_all(p, 0, &again).unwrap();
    m.extend_from_slice(&again);
    check_read(&mut c, p, &m, 60_000, MAX_DATA);
    // Emptied by create's truncate flag while open.
    c.create(p, fsproto::create::TRUNCATE).unwrap();
    assert_eq!(c.read(p, 60_000, 100).unwrap(), (Vec::new(), 0));
    let last = contents(5_000, 4);
    c.write(p, 0, &last).unwrap();
    let model = Model::from([(p.to_string(), last)]);
    check_everywhere(c, &img, &dir, &model);
}

#[test]
fn spellings_of_a_path_share_one_open_file() {
    if !have_tools() {
        return;
    }
    let dir = scratch("open-alias");
    let img = image(&dir, 64 * 1024, 32);
    let mut c = mount(&img);
    c.mkdir("/Some Folder").unwrap();
    let p = "/Some Folder/Mixed Case Long Name.dat";
    let mut m = contents(64_000, 1);
    c.put(p, &m).unwrap();
    let lower = "/some folder/mixed case long name.dat";
    let short = "/SOMEFO~1/MIXEDC~1.DAT";
    assert_eq!(c.lookup(short), Ok(Kind::File), "the short names");
    let more = contents(40_000, 2);
    c.write_all(lower, m.len() as u64, &more).unwrap();
    m.extend_from_slice(&more);
    check_read(&mut c, short, &m, 0, MAX_DATA);
    check_read(&mut c, p, &m, 60_000, MAX_DATA);
    let mid = contents(9_000, 3);
    c.write(short, 30_000, &mid).unwrap();
    model_write(&mut m, 30_000, &mid);
    let end = contents(3_000, 4);
    c.write(p, m.len() as u64, &end).unwrap();
    let at = m.len();
    model_write(&mut m, at, &end);
    for q in [p, lower, short] {
        check_read(&mut c, q, &m, 25_000, MAX_DATA);
        check_read(&mut c, q, &m, 90_000, MAX_DATA);
        assert_eq!(c.stat(q).unwrap().size, m.len() as u64, "stat {q}");
    }
    let model = Model::from([(p.to_string(), m)]);
    check_everywhere(c, &img, &dir, &model);
}

#[test]
fn fsync_with_open_files_is_durable() {
    if !have_tools() {
        return;
    }
    let dir = scratch("open-crash");
    let img = image(&dir, 64 * 1024, 32);
    // A small cache, so that blocks are written back between fsyncs too.
    let srv = fatserve::FatServer::mount_with_cache(FileDevice::open(&img), 16).unwrap();
    let mut c = Client::new(srv);
    let mut a = contents(1 << 20, 1);
    let b = contents(300_000, 2);
    c.put("/a.bin", &a).unwrap();
    c.put("/b.bin", &b).unwrap();
    check_read(&mut c, "/a.bin", &a, 500_000, MAX_DATA);
    c.fsync().unwrap();
    // A crash right after an fsync leaves a clean volume with everything on it.
    let dev = c.srv.crash().expect("device back");
    drop(dev);
    fsck(&img).expect("clean after a crash right after fsync");
    assert!(mcopy_out(&img, "/a.bin", &dir) == a);
    assert!(mcopy_out(&img, "/b.bin", &dir) == b);

    // Again, with unsynced appends to an open file and another file before the crash.
    let srv = fatserve::FatServer::mount_with_cache(FileDevice::open(&img), 16).unwrap();
    let mut c = Client::new(srv);
    check_read(&mut c, "/a.bin", &a, 0, MAX_DATA);
    let more = contents(200_000, 3);
    c.write_all("/a.bin", a.len() as u64, &more).unwrap();
    c.fsync().unwrap();
    a.extend_from_slice(&more);
    let synced = a.len();
    c.write_all("/a.bin", a.len() as u64, &contents(300_000, 4))
        .unwrap();
    c.write_all("/b.bin", 0, &contents(300_000, 5)).unwrap();
    c.srv.crash().expect("device back");
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
    let got = mcopy_out(&img, "/a.bin", &dir);
    assert!(
        got.len() >= synced,
        "{} of {synced} fsynced bytes",
        got.len()
    );
    assert!(got[..synced] == a[..], "the fsynced bytes");
}

/// Block look-ups (the cache's hits and misses) while `f` runs.
fn lookups<D: fatserve::BlockDevice>(c: &mut Client<D>, f: impl FnOnce(&mut Client<D>)) -> u64 {
    let before = c.srv.cache_stats();
    f(c);
    let after = c.srv.cache_stats();
    (after.hits + after.misses) - (before.hits + before.misses)
}

#[test]
fn sequential_io_costs_grow_linearly() {
    if !have_tools() {
        return;
    }
    let dir = scratch("open-linear");
    // FAT32 with 512-byte clusters: a MiB is 2,048 clusters to walk.
    let img = image(&dir, 64 * 1024, 32);
    let mut c = mount(&img);
    let chunk = contents(MAX_DATA, 1);
    let write = |c: &mut Client<FileDevice>, p: &str, mib: usize| {
        c.create(p, 0).unwrap();
        lookups(c, |c| {
            for i in 0..mib * 32 {
                c.write(p, (i * MAX_DATA) as u64, &chunk).unwrap();
            }
        })
    };
    let (w1, w4) = (write(&mut c, "/one.bin", 1), write(&mut c, "/four.bin", 4));
    let read = |c: &mut Client<FileDevice>, p: &str, mib: usize| {
        lookups(c, |c| {
            for i in 0..mib * 32 {
                c.read(p, (i * MAX_DATA) as u64, MAX_DATA as u32).unwrap();
            }
        })
    };
    let (r1, r4) = (read(&mut c, "/one.bin", 1), read(&mut c, "/four.bin", 4));
    // Linear is 4 times the work for 4 times the bytes; walking each chain from its start
    // for every request would be about 16 times.
    assert!(
        w4 < 5 * w1,
        "writes: {w1} look-ups for 1 MiB, {w4} for 4 MiB"
    );
    assert!(
        r4 < 5 * r1,
        "reads: {r1} look-ups for 1 MiB, {r4} for 4 MiB"
    );
}

#[test]
fn random_reads_walk_the_chain_once() {
    if !have_tools() {
        return;
    }
    let dir = scratch("open-random-cost");
    let img = image(&dir, 64 * 1024, 32);
    let mut c = mount(&img);
    let data = contents(4 << 20, 1);
    c.put("/big.bin", &data).unwrap();
    let mut rng = Rng(9);
    let n = lookups(&mut c, |c| {
        for _ in 0..200 {
            let at = rng.below(1024) as usize * 4096;
            check_read(c, "/big.bin", &data, at, 4096);
        }
    });
    // One walk maps the 8,192 clusters; each read is then a block or two. Walking from the
    // first cluster for each read would cost about 4,096 look-ups per read.
    assert!(n < 8192 + 200 * 20, "{n} look-ups for 200 random reads");
}

#[test]
fn a_stat_opens_the_file_for_the_reads_after_it() {
    if !have_tools() {
        return;
    }
    let dir = scratch("open-stat");
    let img = image(&dir, 64 * 1024, 32);
    let mut c = mount(&img);
    c.mkdir("/deep").unwrap();
    c.mkdir("/deep/er").unwrap();
    let data = contents(100_000, 3);
    c.put("/deep/er/file.bin", &data).unwrap();
    // fsync closes every open file: each read below starts from a closed file.
    c.fsync().unwrap();
    let cold = lookups(&mut c, |c| {
        assert!(c.read_all("/DEEP/er/file.bin").unwrap() == data);
    });
    c.fsync().unwrap();
    let st = c.stat("/deep/er/file.bin").unwrap();
    assert_eq!((st.kind, st.size), (Kind::File, data.len() as u64));
    let after_stat = lookups(&mut c, |c| {
        assert!(c.read_all("/DEEP/er/file.bin").unwrap() == data);
    });
    assert!(
        after_stat < cold,
        "{after_stat} look-ups after a stat, {cold} without"
    );
    // A directory's stat opens nothing; the root's neither.
    assert_eq!(c.stat("/deep").unwrap().kind, Kind::Dir);
    assert_eq!(c.stat("/").unwrap().kind, Kind::Dir);
    assert_eq!(c.read("/deep", 0, 1), Err(Error::IsADirectory));
}
