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
    // is judged when it ends, in order, as a split into components would: `len` bytes so far,
    // `dots` of them dots.
    let (mut len, mut dots) = (0usize, 0usize);
    for &x in &b[1..] {
        match x {
            b'/' => {
                judge(len, dots)?;
                (len, dots) = (0, 0);
            }
            0 => return Err(Error::BadPath),
            b'.' => (len, dots) = (len + 1, dots + 1),
            _ => len += 1,
        }
    }
    judge(len, dots)
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
