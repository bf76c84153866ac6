//! Randomized robustness: a million mutated images go through the parser — bit flips, byte
//! and field overwrites with boundary values, truncations, extensions, section-table edits,
//! object-reference edits (kinds, sides, link kinds, ids and exit codes of handles, threads and
//! spawners among them), record copies and insertions or deletions inside a section — about
//! half of them with every
//! CRC repaired afterwards, so the mutation reaches the placement, content and link checks
//! behind the CRCs. None may panic; every accepted image is walked through every view, and
//! every refusal is formatted. Each case is generated from its number by a fixed PRNG, so a
//! failure reproduces: the panic message names the case, and `one_case` reruns it.
mod common;

use common::*;
use procimage::*;
use std::collections::BTreeMap;

/// Images generated in all.
const CASES: u64 = 1_000_000;

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// splitmix64: a case number into a seed.
fn seed(case: u64) -> u64 {
    let mut z = case.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

/// Values on the parser's boundaries.
const INTERESTING: [u64; 24] = [
    0,
    1,
    2,
    3,
    7,
    8,
    15,
    16,
    32,
    64,
    0xff,
    0x100,
    0x3ff,
    0x400,
    0xfff,
    0x1000,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    abi::layout::ARENA_BASE,
    abi::layout::USER_END,
    u32::MAX as u64,
    u64::MAX,
];

/// The images mutations start from: small ones mostly, the rich tree (large pages and a
/// 64 KiB message) now and then.
struct Seeds {
    small: Vec<Vec<u8>>,
    rich: Vec<u8>,
}

fn seeds() -> Seeds {
    let mut compact = rich();
    for p in &mut compact {
        p.arena.truncate(1);
        p.stacks.truncate(1);
        p.data.truncate(1);
        for m in &mut p.messages {
            m.bytes.truncate(40);
        }
    }
    let with_extra = build(true, &compact, &[(1, 0x8001, b"opt")]).unwrap();
    Seeds {
        small: vec![
            build(true, &compact, &[]).unwrap(),
            with_extra,
            build(false, &minimal(), &[]).unwrap(),
            sample::single(),
        ],
        rich: build(true, &rich(), &[]).unwrap(),
    }
}

/// A value for a field: a boundary value (nudged by -1, 0 or +1), a random one, or a value
/// near the image's length.
fn value(rng: &mut Rng, len: usize) -> u64 {
    match rng.below(4) {
        0 => rng.next(),
        1 => rng.below(len + 64) as u64,
        _ => INTERESTING[rng.below(INTERESTING.len())]
            .wrapping_add(rng.below(3) as u64)
            .wrapping_sub(1),
    }
}

fn write_field(buf: &mut [u8], at: usize, width: usize, v: u64) {
    let end = (at + width).min(buf.len());
    if at < end {
        buf[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
    }
}

/// The well-formed entries of `buf`'s table (those that point inside the buffer).
fn sane_entries(buf: &[u8]) -> Vec<Entry> {
    if buf.len() < HEADER_LEN {
        return vec![];
    }
    let n = rd32(buf, 12) as usize;
    if n > 4096 || HEADER_LEN + n * ENTRY_LEN > buf.len() {
        return vec![];
    }
    entries(buf)
        .into_iter()
        .filter(|e| {
            e.offset
                .checked_add(e.length)
                .is_some_and(|end| end <= buf.len())
        })
        .collect()
}

/// The offset of a random object reference in `buf`: in a handle record, or carried by a
/// message.
fn object_at(rng: &mut Rng, buf: &[u8]) -> Option<usize> {
    let es: Vec<Entry> = sane_entries(buf)
        .into_iter()
        .filter(|e| {
            (e.kind == SectionKind::Handles as u16 || e.kind == SectionKind::Messages as u16)
                && e.length >= 16 + 40
        })
        .collect();
    let s = *es.get(rng.below(es.len()))?;
    if s.kind == SectionKind::Handles as u16 {
        return Some(s.offset + 16 + 40 * rng.below((s.length - 16) / 40) + 8);
    }
    let count = (rd32(buf, s.offset) as usize).min((s.length - 16) / 32);
    let rec = s.offset + 16 + 32 * rng.below(count);
    let carried = buf[rec + 9] as usize;
    let data = rd64(buf, rec + 24) as usize;
    let o = data
        .checked_add(32 * rng.below(carried.max(1)))?
        .checked_add(s.offset)?;
    (carried > 0 && o.checked_add(32)? <= s.offset + s.length).then_some(o)
}

/// Applies one mutation; returns whether the CRCs should be repaired afterwards.
fn mutate(rng: &mut Rng, buf: &mut Vec<u8>) -> bool {
    let len = buf.len();
    if len == 0 {
        buf.extend((0..rng.below(80)).map(|_| rng.next() as u8));
        return false;
    }
    match rng.below(18) {
        // Flip a bit.
        0 | 1 => {
            let at = rng.below(len);
            buf[at] ^= 1 << rng.below(8);
            rng.chance(2)
        }
        // Overwrite a byte.
        2 => {
            let at = rng.below(len);
            buf[at] = rng.next() as u8;
            rng.chance(2)
        }
        // Truncate.
        3 => {
            buf.truncate(rng.below(len));
            rng.chance(2)
        }
        // Extend, and sometimes say so in the header.
        4 => {
            let n = rng.below(64) + 1;
            buf.extend((0..n).map(|_| if rng.chance(2) { 0 } else { rng.next() as u8 }));
            if rng.chance(2) && buf.len() >= HEADER_LEN {
                let total = buf.len() as u64;
                wr64(buf, 16, total);
            }
            true
        }
        // A header field.
        5 => {
            let (at, width) =
                [(8, 2), (10, 2), (12, 4), (16, 8), (24, 2), (26, 2), (28, 4)][rng.below(7)];
            let v = value(rng, len);
            write_field(buf, at, width, v);
            rng.below(4) != 0
        }
        // A section-table field.
        6..=8 => {
            let n = if len >= HEADER_LEN {
                rd32(buf, 12) as usize
            } else {
                0
            };
            if n == 0 || n > 4096 {
                return false;
            }
            let e = HEADER_LEN + rng.below(n) * ENTRY_LEN;
            let (off, width) =
                [(0, 2), (2, 2), (4, 4), (8, 8), (16, 8), (24, 4), (28, 4)][rng.below(7)];
            let v = match off {
                0 if rng.chance(2) => [1, 2, 3, 4, 5, 6, 7, 8, 9, 0x8000, 0x8001][rng.below(11)],
                2 if rng.chance(2) => rng.below(4) as u64,
                8 | 16 if rng.chance(2) => {
                    // A nearby offset or length: a few aligned steps away.
                    let cur = rd64(buf, (e + off).min(len - 8));
                    cur.wrapping_add((rng.below(7) as u64).wrapping_sub(3).wrapping_mul(16))
                }
                _ => value(rng, len),
            };
            write_field(buf, e + off, width, v);
            rng.below(4) != 0
        }
        // A field inside a section.
        9..=12 => {
            let es = sane_entries(buf);
            if es.is_empty() {
                return false;
            }
            let s = es[rng.below(es.len())];
            if s.length == 0 {
                return false;
            }
            // Fields are mostly aligned to their width, and sit near the front of a record.
            let width = [1, 2, 4, 8][rng.below(4)];
            let within = if rng.chance(2) {
                rng.below(s.length.min(256))
            } else {
                rng.below(s.length)
            };
            let at = s.offset + (within & !(width - 1));
            let v = value(rng, len);
            write_field(buf, at, width.min(s.offset + s.length - at), v);
            rng.below(8) != 0
        }
        // A field of an object reference, a handle's or one a message carries: the kinds,
        // sides, link kinds, ids (tids) and exit codes the object checks tell apart.
        16 | 17 => {
            let Some(o) = object_at(rng, buf) else {
                return false;
            };
            if rng.chance(4) {
                // A whole thread or spawner object, live or ended, over whatever was there.
                let mut obj = [0u8; 32];
                obj[0] = 6 + rng.below(2) as u8;
                obj[3] = [0, 5][rng.below(2)];
                obj[8] = rng.below(12) as u8;
                obj[24] = rng.next() as u8;
                buf[o..o + 32].copy_from_slice(&obj);
                return rng.below(8) != 0;
            }
            let (at, width, v) = match rng.below(6) {
                0 => (0, 2, 1 + rng.below(8) as u64),
                1 => (2, 1, rng.below(3) as u64),
                2 => (3, 1, rng.below(7) as u64),
                3 => (8, 8, rng.below(12) as u64),
                4 => (24, 8, value(rng, len)),
                _ => (16 + 2 * rng.below(3), 2, rng.below(3) as u64),
            };
            write_field(buf, o + at, width, v);
            rng.below(8) != 0
        }
        // Copy a record-sized chunk inside a section over another.
        13 => {
            let es = sane_entries(buf);
            if es.is_empty() {
                return false;
            }
            let s = es[rng.below(es.len())];
            let size = [8, 32, 40, 704][rng.below(4)];
            if s.length < size + 16 {
                return false;
            }
            let from = s.offset + 16 + rng.below(s.length - 16 - size + 1);
            let to = s.offset + 16 + rng.below(s.length - 16 - size + 1);
            buf.copy_within(from..from + size, to);
            true
        }
        // Insert or delete bytes inside a section, keeping the table consistent: the section's
        // length and the later offsets move, the total follows.
        _ => {
            let es = sane_entries(buf);
            if es.is_empty() {
                return false;
            }
            let i = rng.below(es.len());
            let s = es[i];
            let delta = [16usize, 32, 8, 40, 4104, 704][rng.below(6)];
            let insert = rng.chance(2);
            let at = s.offset + rng.below(s.length + 1);
            if insert {
                let bytes: Vec<u8> = (0..delta).map(|_| rng.next() as u8).collect();
                buf.splice(at..at, bytes);
            } else if at + delta <= s.offset + s.length {
                buf.drain(at..at + delta);
            } else {
                return false;
            }
            let sign = |v: u64| {
                if insert {
                    v.wrapping_add(delta as u64)
                } else {
                    v.wrapping_sub(delta as u64)
                }
            };
            wr64(buf, s.at + 16, sign(s.length as u64));
            for later in &es[i + 1..] {
                wr64(buf, later.at + 8, sign(later.offset as u64));
            }
            let total = buf.len() as u64;
            wr64(buf, 16, total);
            true
        }
    }
}

/// Walks everything an accepted image offers; checks what the parser promised.
fn walk(img: &Image<'_>, len: usize) {
    assert_eq!(img.total_len(), len as u64);
    assert!(img.process_count() >= 1);
    let mut n = 0;
    for s in img.sections() {
        assert!(s.crc_ok());
        assert_eq!(s.offset % SECTION_ALIGN, 0);
        n += 1;
    }
    assert_eq!(n, img.header().sections);
    let mut processes = 0;
    for p in img.processes() {
        processes += 1;
        let r = p.record();
        if p.index() == 0 {
            assert_eq!(r.parent, None);
        } else {
            assert!(r.parent.is_some_and(|q| q < p.index()));
        }
        assert!(!p.module().path.is_empty());
        let threads = p.threads();
        let expected = threads.len();
        assert!(expected >= 1);
        assert_eq!(threads.count(), expected);
        assert_eq!(p.handles().count(), p.handles().len());
        for h in p.handles() {
            assert_eq!(p.handle(h.index), Some(h));
        }
        assert_eq!(p.messages().count(), p.messages().len());
        assert_eq!(p.stacks().count(), p.stacks().len());
        let load = p.module().load_base;
        let data = p.data();
        let expected = data.len();
        let inside = |pg: &Page<'_>| pg.va >= load && pg.va - load < abi::layout::MODULE_MAX_SIZE;
        assert_eq!(data.filter(inside).count(), expected);
        for h in p.handles() {
            let o = h.object;
            match (o.kind, o.link) {
                (ObjectKind::Thread, Link::None) => {
                    assert!(p.threads().any(|t| t.tid == o.id));
                }
                (ObjectKind::Thread, Link::Ended { .. }) => {}
                (ObjectKind::ThreadSpawner, l) => assert_eq!((l, o.id), (Link::None, 0)),
                (_, l) => assert!(!matches!(l, Link::Ended { .. })),
            }
        }
        for (i, m) in p.messages().enumerate() {
            assert_eq!(m.handles().count(), m.handle_count());
            assert!(
                m.handles()
                    .all(|o| !matches!(o.kind, ObjectKind::Thread | ObjectKind::ThreadSpawner))
            );
            assert!(p.message(i as u32).is_some());
        }
        let arena = p.arena();
        let expected = arena.len();
        let start = r.arena_base;
        assert!(arena.inspect(|pg| assert!(pg.va >= start)).count() == expected);
    }
    assert_eq!(processes, img.process_count());
}

/// A short name for an error's kind, to show how deep the mutations reach.
fn category(e: &ImageError) -> &'static str {
    match e {
        ImageError::TooShort { .. } | ImageError::Truncated { .. } => "truncated",
        ImageError::TrailingBytes { .. } => "trailing bytes",
        ImageError::BadMagic { .. } => "magic",
        ImageError::UnsupportedVersion { .. } => "version",
        ImageError::HeaderCrc { .. } => "header CRC",
        ImageError::UnknownFlags { .. }
        | ImageError::HeaderReserved { .. }
        | ImageError::TotalTooSmall { .. }
        | ImageError::NoProcesses
        | ImageError::NotATree { .. } => "header field",
        ImageError::TableCrc { .. } => "table CRC",
        ImageError::Section { defect, .. } => match defect {
            Defect::Crc { .. } => "section CRC",
            Defect::Content(_) => "section contents",
            _ => "section placement",
        },
        ImageError::LayoutEnd { .. } | ImageError::MissingSection { .. } => "layout",
        ImageError::Link { .. } => "links",
    }
}

/// Runs case `case`; returns the error's category, or `None` when the image was accepted.
fn case(case: u64, seeds: &Seeds, buf: &mut Vec<u8>) -> Option<&'static str> {
    let mut rng = Rng(seed(case));
    buf.clear();
    if rng.chance(64) {
        buf.extend_from_slice(&seeds.rich);
    } else {
        buf.extend_from_slice(&seeds.small[rng.below(seeds.small.len())]);
    }
    let mut fix = false;
    for _ in 0..1 + rng.below(3) {
        fix |= mutate(&mut rng, buf);
    }
    if fix {
        repair(buf);
    }
    let layout = Layout::parse(buf);
    match Image::parse(buf) {
        Ok(img) => {
            assert!(layout.is_ok());
            walk(&img, buf.len());
            None
        }
        Err(e) => {
            // Display must work for every refusal (written to a sink that does not allocate).
            use std::fmt::Write;
            struct Sink(usize);
            impl Write for Sink {
                fn write_str(&mut self, s: &str) -> std::fmt::Result {
                    self.0 += s.len();
                    Ok(())
                }
            }
            let mut sink = Sink(0);
            write!(sink, "{e}").unwrap();
            assert!(sink.0 > 0);
            if let Ok(l) = layout {
                // The layout was fine, so the defect is in a section's CRC or contents.
                assert!(matches!(
                    e,
                    ImageError::Section { .. } | ImageError::Link { .. }
                ));
                for s in l.sections() {
                    let _ = s.crc_ok();
                }
            }
            Some(category(&e))
        }
    }
}

/// Reruns a single case: `PROCIMAGE_CASE=n cargo test -p procimage --test fuzz one_case`.
#[test]
fn one_case() {
    if let Some(n) = std::env::var("PROCIMAGE_CASE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        let s = seeds();
        println!("{:?}", case(n, &s, &mut Vec::new()));
    }
}

#[test]
fn a_million_mutated_images_never_panic() {
    let seeds = seeds();
    let threads = std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .clamp(1, 16) as u64;
    let start = std::time::Instant::now();
    let tallies: Vec<BTreeMap<&'static str, u64>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let seeds = &seeds;
                s.spawn(move || {
                    let mut buf = Vec::with_capacity(256 * 1024);
                    let mut tally = BTreeMap::new();
                    for n in (t..CASES).step_by(threads as usize) {
                        let run = std::panic::AssertUnwindSafe(|| case(n, seeds, &mut buf));
                        match std::panic::catch_unwind(run) {
                            Ok(r) => *tally.entry(r.unwrap_or("accepted")).or_insert(0) += 1,
                            Err(_) => {
                                panic!("case {n} panicked; rerun it with PROCIMAGE_CASE={n}")
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut total: BTreeMap<&'static str, u64> = BTreeMap::new();
    for t in tallies {
        for (k, v) in t {
            *total.entry(k).or_insert(0) += v;
        }
    }
    let sum: u64 = total.values().sum();
    assert_eq!(sum, CASES);
    println!(
        "{CASES} mutated images in {:.1} s on {threads} threads: {total:?}",
        start.elapsed().as_secs_f64()
    );
    // The mutations reach past the CRCs into every later stage, and some images survive.
    for stage in [
        "accepted",
        "section placement",
        "section contents",
        "links",
        "layout",
        "section CRC",
        "table CRC",
        "header CRC",
        "truncated",
    ] {
        assert!(
            total.get(stage).copied().unwrap_or(0) > 100,
            "{stage}: {total:?}"
        );
    }
}
