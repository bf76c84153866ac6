//! Little-endian field access that cannot panic: every read returns `None` past the end of its
//! slice, every write returns `false`, and offsets are added with overflow checks.

/// The `N` bytes at `at`, if they are all inside `b`.
pub(crate) fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    let end = at.checked_add(N)?;
    b.get(at..end)?.try_into().ok()
}

pub(crate) fn u8_at(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    array(b, at).map(u16::from_le_bytes)
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    array(b, at).map(u32::from_le_bytes)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    array(b, at).map(u64::from_le_bytes)
}

/// `len` bytes at `at`, if they are all inside `b`.
pub(crate) fn slice(b: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    b.get(at..at.checked_add(len)?)
}

/// Whether `b[at..at + len]` exists and is all zero.
pub(crate) fn zero(b: &[u8], at: usize, len: usize) -> bool {
    slice(b, at, len).is_some_and(|s| s.iter().all(|&x| x == 0))
}

/// `x` rounded up to a multiple of `align` (a power of two), if that fits.
pub(crate) fn align_up(x: u64, align: u64) -> Option<u64> {
    let mask = align.checked_sub(1)?;
    Some(x.checked_add(mask)? & !mask)
}

/// A u64 as a `usize` index (always fits on the 64-bit targets moxie runs on).
pub(crate) fn idx(x: u64) -> Option<usize> {
    usize::try_from(x).ok()
}

/// Copies `src` into `out` at `at`; false when it does not fit.
pub(crate) fn put(out: &mut [u8], at: usize, src: &[u8]) -> bool {
    let Some(end) = at.checked_add(src.len()) else {
        return false;
    };
    match out.get_mut(at..end) {
        Some(dst) => {
            dst.copy_from_slice(src);
            true
        }
        None => false,
    }
}
