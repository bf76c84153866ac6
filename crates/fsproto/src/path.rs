//! Path syntax shared by the filesystem driver and its clients: what a valid path is, checked
//! once in decoding so the driver only ever sees valid paths.
use crate::Error;

/// Most bytes in a path.
pub const MAX_PATH: usize = 1024;
/// Most bytes in one component (a FAT long name holds 255 UTF-16 units; the driver checks that
/// limit itself, this one bounds the bytes).
pub const MAX_NAME: usize = 255 * 3;

/// Checks `path`: absolute (`/` first), components separated by one `/`, none empty, `.` or
/// `..`, none containing NUL, no trailing `/` except for the root `/` itself; at most
/// [`MAX_PATH`] bytes and [`MAX_NAME`] per component.
pub fn check(path: &str) -> Result<(), Error> {
    if path.len() > MAX_PATH {
        return Err(Error::NameTooLong);
    }
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return Err(Error::BadPath);
    }
    if b.len() == 1 {
        return Ok(());
    }
    // One pass over the bytes (every request's path is checked on both ends); each component
    // is judged when it ends, in order, as a split into components would.
    let (mut len, mut dots) = (0usize, 0usize);
    // Eight bytes at a time while none of them is `/`, `.` or NUL (most of a name), each byte
    // of the others alone.
    let words = b[1..].chunks_exact(8);
    let tail = words.remainder();
    for w in words {
        let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        if has_zero_byte(v) || has_zero_byte(v ^ spread(b'/')) || has_zero_byte(v ^ spread(b'.')) {
            for &x in w {
                step(x, &mut len, &mut dots)?;
            }
        } else {
            // Eight bytes of a name, none a dot.
            len += 8;
        }
    }
    for &x in tail {
        step(x, &mut len, &mut dots)?;
    }
    judge(len, dots)
}

/// One byte of a path after its first `/`: a component of `len` bytes so far, `dots` of them
/// dots, ends at `/`.
fn step(x: u8, len: &mut usize, dots: &mut usize) -> Result<(), Error> {
    match x {
        b'/' => {
            judge(*len, *dots)?;
            (*len, *dots) = (0, 0);
        }
        0 => return Err(Error::BadPath),
        b'.' => (*len, *dots) = (*len + 1, *dots + 1),
        _ => *len += 1,
    }
    Ok(())
}

/// `x` in every byte of a word.
const fn spread(x: u8) -> u64 {
    x as u64 * 0x0101_0101_0101_0101
}

/// Whether some byte of `v` is zero.
const fn has_zero_byte(v: u64) -> bool {
    v.wrapping_sub(spread(1)) & !v & spread(0x80) != 0
}

/// A component of `len` bytes, `dots` of them dots: none, `.` and `..` are no names.
fn judge(len: usize, dots: usize) -> Result<(), Error> {
    if len == 0 || (len <= 2 && dots == len) {
        return Err(Error::BadPath);
    }
    if len > MAX_NAME {
        return Err(Error::NameTooLong);
    }
    Ok(())
}

/// The components of a checked path, root first (none for `/`).
pub fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// Splits a checked path into its parent and last component; `None` for the root.
pub fn split_last(path: &str) -> Option<(&str, &str)> {
    let i = path.rfind('/')?;
    let name = &path[i + 1..];
    if name.is_empty() {
        return None;
    }
    Some((if i == 0 { "/" } else { &path[..i] }, name))
}
