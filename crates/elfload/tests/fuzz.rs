//! Randomized robustness: over a million mutated modules (byte flips, field overwrites with
//! boundary values, truncations, splices of the fixtures) go through `plan`, `load` and
//! `relocate`. None may panic, and every plan that is accepted must satisfy the documented
//! invariants. Each case is generated from its number by a fixed PRNG, so a failure
//! reproduces: the panic message names the case, and `one_case` reruns it.

mod common;

use abi::layout::{MODULE_BASE, MODULE_MAX_SIZE, PAGE_SIZE, USER_END};
use common::*;
use elfload::{MAX_SEGMENTS, Plan};

/// Modules generated in all.
const CASES: u64 = 1_000_000;
/// The largest image buffer the test hands to `load` and `relocate`.
const IMAGE_CAP: usize = 64 * 1024;

/// xorshift64*: small, fast and good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Values that sit on the loader's boundaries.
const INTERESTING: [u64; 20] = [
    0,
    1,
    7,
    8,
    0x10,
    0x18,
    0x38,
    0x40,
    0xfff,
    PAGE_SIZE,
    PAGE_SIZE + 1,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    MODULE_MAX_SIZE - 1,
    MODULE_MAX_SIZE,
    USER_END,
    i64::MAX as u64,
    u64::MAX - 7,
    u64::MAX,
];

/// Offset in `buf` biased towards the headers and tables at the front of the fixtures.
fn offset(rng: &mut Rng, len: usize) -> usize {
    if rng.chance(4) {
        rng.below(len)
    } else {
        rng.below(len.min(0x700))
    }
}

/// Applies one random mutation to `buf`.
fn mutate(rng: &mut Rng, buf: &mut Vec<u8>) {
    if buf.is_empty() {
        buf.extend_from_slice(FIXTURES[rng.below(2)]);
        return;
    }
    let len = buf.len();
    match rng.below(10) {
        // Flip one bit.
        0 | 1 => {
            let at = offset(rng, len);
            buf[at] ^= 1 << rng.below(8);
        }
        // Overwrite one byte.
        2 => {
            let at = offset(rng, len);
            buf[at] = rng.next() as u8;
        }
        // Overwrite an aligned field with a boundary value (or a small offset from it).
        3 | 4 => {
            let width = [2, 4, 8][rng.below(3)];
            let at = offset(rng, len) & !(width - 1);
            let v = INTERESTING[rng.below(INTERESTING.len())]
                .wrapping_add(rng.below(3) as u64)
                .wrapping_sub(1);
            let bytes = v.to_le_bytes();
            let end = (at + width).min(len);
            buf[at..end].copy_from_slice(&bytes[..end - at]);
        }
        // Overwrite a field with a value that points back into the file.
        5 => {
            let at = offset(rng, len) & !7;
            let v = rng.below(len + 0x4000) as u64;
            let end = (at + 8).min(len);
            buf[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
        }
        // Truncate.
        6 => buf.truncate(rng.below(len)),
        // Copy an aligned record (a program header, a relocation, a symbol, a dynamic entry)
        // over another one.
        7 => {
            let size = [56, 24, 16, 8][rng.below(4)];
            let from = offset(rng, len) & !7;
            let to = offset(rng, len) & !7;
            if from + size <= len && to + size <= len {
                buf.copy_within(from..from + size, to);
            }
        }
        // Splice a chunk of a fixture in, overwriting.
        8 => {
            let src = FIXTURES[rng.below(2)];
            let from = rng.below(src.len());
            let n = (rng.below(256) + 1).min(src.len() - from);
            let to = offset(rng, len);
            let end = (to + n).min(len);
            buf[to..end].copy_from_slice(&src[from..from + (end - to)]);
        }
        // Splice a chunk of a fixture in, inserting (shifts everything after it).
        _ => {
            let src = FIXTURES[rng.below(2)];
            let from = rng.below(src.len());
            let n = (rng.below(64) + 1).min(src.len() - from);
            let to = offset(rng, len);
            buf.splice(to..to, src[from..from + n].iter().copied());
        }
    }
}

/// The documented properties of an accepted plan.
fn check_plan(p: &Plan, base: u64, file_len: usize) {
    assert_eq!(p.base(), base);
    assert_eq!(base % PAGE_SIZE, 0);
    let segs = p.segments();
    assert!(!segs.is_empty() && segs.len() <= MAX_SEGMENTS);
    assert_eq!(p.span() % PAGE_SIZE, 0);
    assert!(p.span() <= MODULE_MAX_SIZE && base + p.span() <= USER_END);
    for (i, s) in segs.iter().enumerate() {
        let pages = s.pages();
        assert!(pages.start >= base && pages.end <= base + p.span());
        assert!(pages.start < pages.end);
        assert!(s.mem_size() > 0 && s.file_size() <= s.mem_size());
        assert!(s.file_range().end <= file_len);
        assert!(s.image_range().end as u64 <= p.span());
        assert!(!(s.perms().writable() && s.perms().executable()));
        if let Some(next) = segs.get(i + 1) {
            assert!(
                pages.end <= next.pages().start,
                "segments sorted and disjoint"
            );
        }
    }
    assert!(segs.iter().any(|s| s.perms().executable()
        && s.vaddr() <= p.entry()
        && p.entry() < s.vaddr() + s.file_size()));
    if let Some(r) = p.relro() {
        assert!(r.start < r.end && r.start % PAGE_SIZE == 0 && r.end % PAGE_SIZE == 0);
        assert!(
            segs.iter().any(|s| s.perms().writable()
                && s.pages().start <= r.start
                && r.end <= s.pages().end)
        );
    }
}

/// splitmix64: turns a case number into a well-mixed seed.
fn seed(case: u64) -> u64 {
    let mut z = case.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

/// Builds and runs case number `case`; returns whether it was planned and relocated. Each case
/// depends on its number alone, so a failing one is rerun by number (see `one_case`).
fn case(case: u64, buf: &mut Vec<u8>, image: &mut [u8]) -> (bool, bool) {
    let mut rng = Rng(seed(case));
    buf.clear();
    buf.extend_from_slice(FIXTURES[rng.below(2)]);
    for _ in 0..rng.below(4) + 1 {
        mutate(&mut rng, buf);
    }
    let base = match rng.below(16) {
        0 => rng.next() & !(PAGE_SIZE - 1),
        1 => rng.next(),
        _ => MODULE_BASE,
    };
    let Ok(p) = elfload::plan(buf, base) else {
        return (false, false);
    };
    check_plan(&p, base, buf.len());
    let image = &mut image[..(p.span() as usize).min(IMAGE_CAP)];
    let _ = elfload::load(buf, &p, image);
    // Known exports, made-up addresses for other names, and some names unknown.
    let lookup = |name: &str| match name.len() % 4 {
        0 => None,
        _ => exports(name).or(Some(0x1_0000 + name.len() as u64)),
    };
    (true, elfload::relocate(buf, &p, image, &lookup).is_ok())
}

/// Reruns a single case: `ELFLOAD_CASE=n cargo test -p elfload --test fuzz one_case`.
#[test]
fn one_case() {
    if let Some(n) = std::env::var("ELFLOAD_CASE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        case(n, &mut Vec::new(), &mut vec![0; IMAGE_CAP]);
    }
}

#[test]
fn a_million_mutated_modules_never_panic() {
    let threads = std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .clamp(1, 16) as u64;
    let start = std::time::Instant::now();
    let (planned, relocated) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut image = vec![0u8; IMAGE_CAP];
                    let mut buf = Vec::with_capacity(8192);
                    let (mut planned, mut relocated) = (0u64, 0u64);
                    for n in (t..CASES).step_by(threads as usize) {
                        let run = std::panic::AssertUnwindSafe(|| case(n, &mut buf, &mut image));
                        match std::panic::catch_unwind(run) {
                            Ok((p, r)) => {
                                planned += u64::from(p);
                                relocated += u64::from(r);
                            }
                            Err(_) => panic!("case {n} panicked; rerun it with ELFLOAD_CASE={n}"),
                        }
                    }
                    (planned, relocated)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    eprintln!(
        "{CASES} modules on {threads} threads in {:.1?}: {planned} planned, {relocated} relocated",
        start.elapsed()
    );
    // The mutations must leave enough modules valid for `relocate` to be exercised.
    assert!(planned > CASES / 10, "only {planned} plans");
    assert!(relocated > CASES / 20, "only {relocated} relocations");
}
