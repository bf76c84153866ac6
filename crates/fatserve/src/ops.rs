//! The operations: each filesystem-protocol request carried out on the mounted volume, with
//! lamfat's errors translated into the protocol's. Kinds and existence are checked here before
//! lamfat is asked, so every error a client can cause has its own protocol error and lamfat's
//! panicking conversions (`to_file` on a directory) are never reached.
use crate::files::{self, OpenFiles};
use crate::{Storage, StorageError};
use alloc::string::String;
use fsproto::path;
use fsproto::{DirPageWriter, END_CURSOR, Error, Kind, Reply, Request, Stat, Time, create};
use lamfat::{Seek, SeekFrom, Write};

/// The mounted volume lamfat works on.
pub(crate) type Fs = lamfat::FileSystem<Storage>;
type Dir<'a> = lamfat::Dir<'a, Storage, lamfat::DefaultTimeProvider, lamfat::LossyOemCpConverter>;
pub(crate) type Entry<'a> =
    lamfat::DirEntry<'a, Storage, lamfat::DefaultTimeProvider, lamfat::LossyOemCpConverter>;
type FatError = lamfat::Error<StorageError>;

/// Largest FAT file: sizes are 32-bit.
const MAX_FILE_SIZE: u64 = u32::MAX as u64;
/// Most bytes of a FAT long name (lamfat's limit, counted in UTF-8 bytes).
const MAX_FAT_NAME: usize = 255;

/// The protocol error for a storage failure.
pub(crate) fn storage_error(e: StorageError) -> Error {
    match e {
        StorageError::Device(_) => Error::Io,
        // The volume's structures point past the end of the device.
        StorageError::UnexpectedEof => Error::Corrupt,
        StorageError::WriteZero => Error::NoSpace,
    }
}

/// The protocol error for a lamfat failure.
pub(crate) fn fs_error(e: FatError) -> Error {
    match e {
        lamfat::Error::Io(e) => storage_error(e),
        lamfat::Error::UnexpectedEof => Error::Corrupt,
        lamfat::Error::WriteZero | lamfat::Error::NotEnoughSpace => Error::NoSpace,
        lamfat::Error::NotFound => Error::NotFound,
        lamfat::Error::AlreadyExists => Error::Exists,
        lamfat::Error::DirectoryIsNotEmpty => Error::NotEmpty,
        lamfat::Error::CorruptedFileSystem => Error::Corrupt,
        lamfat::Error::InvalidFileNameLength => Error::NameTooLong,
        lamfat::Error::UnsupportedFileNameCharacter => Error::InvalidName,
        lamfat::Error::InvalidInput => Error::BadRequest,
        _ => Error::Io,
    }
}

/// Checks a name for a new entry the way lamfat will, so a bad name is refused before
/// anything changes.
fn check_new_name(name: &str) -> Result<(), Error> {
    if name.len() > MAX_FAT_NAME {
        return Err(Error::NameTooLong);
    }
    let ok = |c: char| {
        c.is_ascii_alphanumeric()
            || ('\u{80}'..='\u{FFFF}').contains(&c)
            || "$%'-_@~`!(){}. +,;=[]^#&".contains(c)
    };
    // Leading and trailing spaces or dots would be stripped or misread by other systems.
    if !name.chars().all(ok) || name.ends_with(['.', ' ']) || name.starts_with(' ') {
        return Err(Error::InvalidName);
    }
    Ok(())
}

/// Whether an entry answers to `name` (FAT names are case-insensitive; lamfat compares
/// ASCII letters without case).
fn matches(e: &Entry<'_>, name: &str) -> bool {
    e.file_name().eq_ignore_ascii_case(name) || e.short_file_name().eq_ignore_ascii_case(name)
}

/// What a path resolves to.
enum Node<'a> {
    Root,
    Entry(Entry<'a>),
}

impl Node<'_> {
    fn kind(&self) -> Kind {
        match self {
            Node::Root => Kind::Dir,
            Node::Entry(e) if e.is_dir() => Kind::Dir,
            Node::Entry(_) => Kind::File,
        }
    }
}

/// The entry named `name` in `dir`. A name longer than FAT can store is `NameTooLong`
/// (no entry can have it), so a path with such a component says why it names nothing.
fn find<'a>(dir: &Dir<'a>, name: &str) -> Result<Option<Entry<'a>>, Error> {
    if name.encode_utf16().count() > MAX_FAT_NAME {
        return Err(Error::NameTooLong);
    }
    for e in dir.iter() {
        let e = e.map_err(fs_error)?;
        if matches(&e, name) {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// Walks a checked path from the root; with `key`, appends each component's stored name to it.
fn resolve_with<'a>(fs: &'a Fs, p: &str, mut key: Option<&mut String>) -> Result<Node<'a>, Error> {
    let mut node = Node::Root;
    for name in path::components(p) {
        let dir = match &node {
            Node::Root => fs.root_dir(),
            Node::Entry(e) if e.is_dir() => e.to_dir(),
            Node::Entry(_) => return Err(Error::NotADirectory),
        };
        let e = find(&dir, name)?.ok_or(Error::NotFound)?;
        if let Some(k) = key.as_deref_mut() {
            k.push('/');
            k.push_str(&e.file_name());
        }
        node = Node::Entry(e);
    }
    Ok(node)
}

/// Walks a checked path from the root.
fn resolve<'a>(fs: &'a Fs, p: &str) -> Result<Node<'a>, Error> {
    resolve_with(fs, p, None)
}

/// The file at a checked path, and its canonical path (each component's stored name, ASCII
/// lower-cased): the same for every spelling of the path, short names included.
pub(crate) fn resolve_keyed<'a>(fs: &'a Fs, p: &str) -> Result<(Entry<'a>, String), Error> {
    let mut key = String::with_capacity(p.len());
    match resolve_with(fs, p, Some(&mut key))? {
        Node::Entry(e) => {
            key.make_ascii_lowercase();
            Ok((e, key))
        }
        Node::Root => Err(Error::IsADirectory),
    }
}

/// The directory at a checked path.
fn resolve_dir<'a>(fs: &'a Fs, p: &str) -> Result<Dir<'a>, Error> {
    match resolve(fs, p)? {
        Node::Root => Ok(fs.root_dir()),
        Node::Entry(e) if e.is_dir() => Ok(e.to_dir()),
        Node::Entry(_) => Err(Error::NotADirectory),
    }
}

/// The file entry at a checked path.
fn resolve_file<'a>(fs: &'a Fs, p: &str) -> Result<Entry<'a>, Error> {
    match resolve(fs, p)? {
        Node::Entry(e) if !e.is_dir() => Ok(e),
        _ => Err(Error::IsADirectory),
    }
}

/// The parent directory and last name of a path that must not be the root.
fn parent_of<'a, 'p>(fs: &'a Fs, p: &'p str) -> Result<(Dir<'a>, &'p str), Error> {
    let (parent, name) = path::split_last(p).ok_or(Error::BadPath)?;
    Ok((resolve_dir(fs, parent)?, name))
}

fn time_of(t: lamfat::DateTime) -> Time {
    Time {
        year: t.date.year,
        month: t.date.month as u8,
        day: t.date.day as u8,
        hour: t.time.hour as u8,
        minute: t.time.min as u8,
        second: t.time.sec as u8,
    }
}

/// The stat of a checked path. A file is opened too (kept among the open files), since what
/// usually follows a stat is reading the file, which then needs no walk of its path.
fn stat<'a>(fs: &'a Fs, files: &mut OpenFiles<'a>, p: &str) -> Result<Stat, Error> {
    if path::components(p).next().is_none() {
        return Ok(Stat {
            kind: Kind::Dir,
            size: 0,
            read_only: false,
            modified: Time::default(),
        });
    }
    let (e, key) = resolve_keyed(fs, p)?;
    let stat = Stat {
        kind: if e.is_dir() { Kind::Dir } else { Kind::File },
        size: if e.is_dir() { 0 } else { e.len() },
        read_only: e.attributes().contains(lamfat::FileAttributes::READ_ONLY),
        modified: time_of(e.modified()),
    };
    if !e.is_dir() {
        files.adopt(e, key);
    }
    Ok(stat)
}

fn read<'a, 's>(
    fs: &'a Fs,
    files: &mut OpenFiles<'a>,
    p: &str,
    offset: u64,
    len: u32,
    scratch: &'s mut [u8],
) -> Result<(&'s [u8], u64), Error> {
    let (want, size) = files.with(fs, p, |of, disk| {
        let size = of.size;
        if offset >= size {
            return Ok((0, size));
        }
        let want = (len as u64).min(size - offset) as usize;
        of.read_framed(disk, offset, &mut scratch[..ROOM + want])?;
        Ok((want, size))
    })?;
    Ok((&scratch[ROOM..ROOM + want], size))
}

/// The room a device may use before the data of a framed read or write
/// (`BlockDevice::read_framed`, `BlockDevice::write_framed`).
pub(crate) const ROOM: usize = blkproto::HEADER_LEN;

/// A read into `out`: the data at `out[fsproto::HEADER_LEN..]` (the reply's place for it),
/// the bytes before it free for the device to use; returns the bytes read and the file's size.
pub(crate) fn read_in_place<'a>(
    fs: &'a Fs,
    files: &mut OpenFiles<'a>,
    p: &str,
    offset: u64,
    len: u32,
    out: &mut [u8],
) -> Result<(usize, u64), Error> {
    // The device's room lies inside the reply's header.
    const { assert!(ROOM <= fsproto::HEADER_LEN) };
    let at = fsproto::HEADER_LEN - ROOM;
    files.with(fs, p, |of, disk| {
        let size = of.size;
        if offset >= size {
            return Ok((0, size));
        }
        let want = (len as u64).min(size - offset) as usize;
        of.read_framed(disk, offset, &mut out[at..fsproto::HEADER_LEN + want])?;
        Ok((want, size))
    })
}

/// Zeros for filling gaps.
const ZEROS: [u8; 4096] = [0; 4096];

fn write<'a>(
    fs: &'a Fs,
    files: &mut OpenFiles<'a>,
    p: &str,
    offset: u64,
    data: &[u8],
) -> Result<u64, Error> {
    files.with(fs, p, |of, _| {
        let size = of.size;
        if data.is_empty() {
            return Ok(size);
        }
        let end = offset.checked_add(data.len() as u64).ok_or(Error::TooBig)?;
        if end > MAX_FILE_SIZE {
            return Err(Error::TooBig);
        }
        let f = &mut of.file;
        if offset > size {
            // lamfat seeks no further than the end: fill the gap with zeros.
            files::seek(f, size)?;
            fill_zeros(f, offset - size)?;
        } else {
            files::seek(f, offset)?;
        }
        f.write_all(data).map_err(fs_error)?;
        // The directory entry (size, time) is written now, so other requests see it.
        f.flush().map_err(fs_error)?;
        of.size = size.max(end);
        Ok(of.size)
    })
}

/// A write of `frame[ROOM..]` at `offset`, as [`write`] does, the data sent on to the device
/// from the frame (each piece's header written in the room before it, which belongs to the
/// piece before, already written).
pub(crate) fn write_in_place<'a>(
    fs: &'a Fs,
    files: &mut OpenFiles<'a>,
    p: &str,
    offset: u64,
    frame: &mut [u8],
) -> Result<u64, Error> {
    let len = (frame.len() - ROOM) as u64;
    files.with(fs, p, |of, disk| {
        let size = of.size;
        if len == 0 {
            return Ok(size);
        }
        let end = offset.checked_add(len).ok_or(Error::TooBig)?;
        if end > MAX_FILE_SIZE {
            return Err(Error::TooBig);
        }
        let f = &mut of.file;
        if offset > size {
            // lamfat seeks no further than the end: fill the gap with zeros.
            files::seek(f, size)?;
            fill_zeros(f, offset - size)?;
        } else {
            files::seek(f, offset)?;
        }
        f.write_placed(len as usize, |at, from, n| {
            disk.write_framed(at, &mut frame[from..ROOM + from + n])
        })
        .map_err(fs_error)?;
        // The directory entry (size, time) is written now, so other requests see it.
        f.flush().map_err(fs_error)?;
        of.size = size.max(end);
        Ok(of.size)
    })
}

/// Writes `n` zeros at the file's position.
fn fill_zeros(f: &mut files::File<'_>, mut n: u64) -> Result<(), Error> {
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        f.write_all(&ZEROS[..k]).map_err(fs_error)?;
        n -= k as u64;
    }
    Ok(())
}

fn truncate(fs: &Fs, p: &str, new_size: u64) -> Result<(), Error> {
    let e = resolve_file(fs, p)?;
    let size = e.len();
    if new_size > MAX_FILE_SIZE {
        return Err(Error::TooBig);
    }
    let mut f = e.to_file();
    if new_size > size {
        f.seek(SeekFrom::End(0)).map_err(fs_error)?;
        fill_zeros(&mut f, new_size - size)?;
    } else if new_size < size {
        f.seek(SeekFrom::Start(new_size)).map_err(fs_error)?;
        f.truncate().map_err(fs_error)?;
    }
    f.flush().map_err(fs_error)
}

fn create_file(fs: &Fs, p: &str, flags: u32) -> Result<(), Error> {
    let (dir, name) = parent_of(fs, p)?;
    match find(&dir, name)? {
        Some(e) if e.is_dir() => Err(if flags & create::TRUNCATE != 0 {
            Error::IsADirectory
        } else {
            Error::Exists
        }),
        Some(e) if flags & create::TRUNCATE != 0 => {
            let mut f = e.to_file();
            f.truncate().map_err(fs_error)?;
            f.flush().map_err(fs_error)
        }
        Some(_) => Err(Error::Exists),
        None => {
            check_new_name(name)?;
            let mut f = dir.create_file(name).map_err(fs_error)?;
            f.flush().map_err(fs_error)
        }
    }
}

fn mkdir(fs: &Fs, p: &str) -> Result<(), Error> {
    let (dir, name) = parent_of(fs, p)?;
    if find(&dir, name)?.is_some() {
        return Err(Error::Exists);
    }
    check_new_name(name)?;
    dir.create_dir(name).map(|_| ()).map_err(fs_error)
}

fn readdir<'s>(
    fs: &Fs,
    p: &str,
    cursor: u64,
    scratch: &'s mut [u8],
) -> Result<fsproto::DirPage<'s>, Error> {
    let dir = resolve_dir(fs, p)?;
    let mut page = DirPageWriter::new(scratch);
    let mut index = 0u64;
    for e in dir.iter() {
        let e = e.map_err(fs_error)?;
        let name = e.file_name();
        if name == "." || name == ".." {
            continue;
        }
        if index >= cursor {
            let (kind, size) = if e.is_dir() {
                (Kind::Dir, 0)
            } else {
                (Kind::File, e.len())
            };
            // A name the protocol cannot carry (written by another system) is skipped.
            match page.push(&name, kind, size) {
                Ok(true) | Err(_) => {}
                Ok(false) => return Ok(into_page(page, index)),
            }
        }
        index += 1;
    }
    Ok(into_page(page, END_CURSOR))
}

fn into_page(w: DirPageWriter<'_>, next: u64) -> fsproto::DirPage<'_> {
    w.into_page(next)
}

fn remove(fs: &Fs, p: &str) -> Result<(), Error> {
    let (dir, name) = parent_of(fs, p)?;
    // Look first so that the answer for a missing entry is NotFound whatever lamfat says.
    if find(&dir, name)?.is_none() {
        return Err(Error::NotFound);
    }
    dir.remove(name).map_err(fs_error)
}

/// Whether `inner` is `outer` or below it, comparing names without ASCII case as FAT does.
fn within(inner: &str, outer: &str) -> bool {
    let mut i = path::components(inner);
    path::components(outer).all(|o| i.next().is_some_and(|c| c.eq_ignore_ascii_case(o)))
}

fn rename(fs: &Fs, from: &str, to: &str) -> Result<(), Error> {
    let (src_dir, src_name) = parent_of(fs, from)?;
    let (dst_dir, dst_name) = parent_of(fs, to)?;
    let src = find(&src_dir, src_name)?.ok_or(Error::NotFound)?;
    if within(to, from) {
        // Onto itself is nothing to do; below itself would detach the tree.
        return if path::components(to).count() == path::components(from).count() {
            Ok(())
        } else {
            Err(Error::BadPath)
        };
    }
    if find(&dst_dir, dst_name)?.is_some() {
        return Err(Error::Exists);
    }
    check_new_name(dst_name)?;
    let same_parent = path::split_last(from).map(|x| x.0) == path::split_last(to).map(|x| x.0);
    if src.is_dir() && !same_parent {
        // lamfat moves the entry but leaves the moved directory's `..` pointing at its old
        // parent; rebuild it under the new parent instead, moving its entries one by one.
        drop(src);
        return move_dir(fs, from, to);
    }
    src_dir
        .rename(src_name, &dst_dir, dst_name)
        .map_err(fs_error)
}

/// Moves a directory to another parent: a new directory, each entry moved into it (files by
/// rename, subdirectories by the same procedure), then the empty old one removed.
fn move_dir(fs: &Fs, from: &str, to: &str) -> Result<(), Error> {
    mkdir(fs, to)?;
    loop {
        // Re-read the source after each move: renaming changes the directory being listed.
        let names: alloc::vec::Vec<String> = resolve_dir(fs, from)?
            .iter()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .filter(|n| n != "." && n != "..")
            .take(16)
            .collect();
        if names.is_empty() {
            break;
        }
        for n in names {
            let (f, t) = (alloc::format!("{from}/{n}"), alloc::format!("{to}/{n}"));
            rename(fs, &f, &t)?;
        }
    }
    remove(fs, from)
}

/// Carries out one request other than fsync. Requests that change the tree or a size other
/// than by writing close every open file first, so none is left with a stale entry or chain.
pub(crate) fn handle<'a, 's>(
    fs: &'a Fs,
    files: &mut OpenFiles<'a>,
    req: &Request<'_>,
    scratch: &'s mut [u8],
) -> Reply<'s> {
    let id = req.id();
    if matches!(
        req,
        Request::Create { .. }
            | Request::Mkdir { .. }
            | Request::Remove { .. }
            | Request::Rename { .. }
            | Request::Truncate { .. }
    ) {
        files.clear();
    }
    match *req {
        Request::Lookup { path, .. } => Reply::Lookup {
            id,
            result: resolve(fs, path).map(|n| n.kind()),
        },
        Request::Stat { path, .. } => Reply::Stat {
            id,
            result: stat(fs, files, path),
        },
        Request::Read {
            path, offset, len, ..
        } => Reply::Read {
            id,
            result: read(fs, files, path, offset, len, scratch),
        },
        Request::Write {
            path, offset, data, ..
        } => Reply::Write {
            id,
            result: write(fs, files, path, offset, data),
        },
        Request::Create { path, flags, .. } => Reply::Create {
            id,
            result: create_file(fs, path, flags),
        },
        Request::Mkdir { path, .. } => Reply::Mkdir {
            id,
            result: mkdir(fs, path),
        },
        Request::Readdir { path, cursor, .. } => Reply::Readdir {
            id,
            result: readdir(fs, path, cursor, &mut scratch[..fsproto::MAX_DATA]),
        },
        Request::Remove { path, .. } => Reply::Remove {
            id,
            result: remove(fs, path),
        },
        Request::Rename { from, to, .. } => Reply::Rename {
            id,
            result: rename(fs, from, to),
        },
        Request::Truncate { path, size, .. } => Reply::Truncate {
            id,
            result: truncate(fs, path, size),
        },
        // The server handles fsync itself (it remounts the volume).
        Request::Fsync { .. } => Reply::Fsync {
            id,
            result: Err(Error::BadRequest),
        },
    }
}
