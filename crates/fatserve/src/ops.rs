//! The operations: each filesystem-protocol request carried out on the mounted volume, with
//! lamfat's errors translated into the protocol's. Kinds and existence are checked here before
//! lamfat is asked, so every error a client can cause has its own protocol error and lamfat's
//! panicking conversions (`to_file` on a directory) are never reached.
use crate::{BlockDevice, Fs, StorageError};
use alloc::string::String;
use fsproto::path;
use fsproto::{DirPageWriter, END_CURSOR, Error, Kind, Reply, Request, Stat, Time, create};
use lamfat::{Read, Seek, SeekFrom, Write};

type Dir<'a, D> =
    lamfat::Dir<'a, crate::Storage<D>, lamfat::DefaultTimeProvider, lamfat::LossyOemCpConverter>;
type Entry<'a, D> = lamfat::DirEntry<
    'a,
    crate::Storage<D>,
    lamfat::DefaultTimeProvider,
    lamfat::LossyOemCpConverter,
>;
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
fn matches<D: BlockDevice>(e: &Entry<'_, D>, name: &str) -> bool {
    e.file_name().eq_ignore_ascii_case(name) || e.short_file_name().eq_ignore_ascii_case(name)
}

/// What a path resolves to.
enum Node<'a, D: BlockDevice> {
    Root,
    Entry(Entry<'a, D>),
}

impl<'a, D: BlockDevice> Node<'a, D> {
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
fn find<'a, D: BlockDevice>(dir: &Dir<'a, D>, name: &str) -> Result<Option<Entry<'a, D>>, Error> {
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

/// Walks a checked path from the root.
fn resolve<'a, D: BlockDevice>(fs: &'a Fs<D>, p: &str) -> Result<Node<'a, D>, Error> {
    let mut node = Node::Root;
    for name in path::components(p) {
        let dir = match &node {
            Node::Root => fs.root_dir(),
            Node::Entry(e) if e.is_dir() => e.to_dir(),
            Node::Entry(_) => return Err(Error::NotADirectory),
        };
        node = Node::Entry(find(&dir, name)?.ok_or(Error::NotFound)?);
    }
    Ok(node)
}

/// The directory at a checked path.
fn resolve_dir<'a, D: BlockDevice>(fs: &'a Fs<D>, p: &str) -> Result<Dir<'a, D>, Error> {
    match resolve(fs, p)? {
        Node::Root => Ok(fs.root_dir()),
        Node::Entry(e) if e.is_dir() => Ok(e.to_dir()),
        Node::Entry(_) => Err(Error::NotADirectory),
    }
}

/// The file entry at a checked path.
fn resolve_file<'a, D: BlockDevice>(fs: &'a Fs<D>, p: &str) -> Result<Entry<'a, D>, Error> {
    match resolve(fs, p)? {
        Node::Entry(e) if !e.is_dir() => Ok(e),
        _ => Err(Error::IsADirectory),
    }
}

/// The parent directory and last name of a path that must not be the root.
fn parent_of<'a, 'p, D: BlockDevice>(
    fs: &'a Fs<D>,
    p: &'p str,
) -> Result<(Dir<'a, D>, &'p str), Error> {
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

fn stat(fs: &Fs<impl BlockDevice>, p: &str) -> Result<Stat, Error> {
    Ok(match resolve(fs, p)? {
        Node::Root => Stat {
            kind: Kind::Dir,
            size: 0,
            read_only: false,
            modified: Time::default(),
        },
        Node::Entry(e) => Stat {
            kind: if e.is_dir() { Kind::Dir } else { Kind::File },
            size: if e.is_dir() { 0 } else { e.len() },
            read_only: e.attributes().contains(lamfat::FileAttributes::READ_ONLY),
            modified: time_of(e.modified()),
        },
    })
}

fn read<'s, D: BlockDevice>(
    fs: &Fs<D>,
    p: &str,
    offset: u64,
    len: u32,
    scratch: &'s mut [u8],
) -> Result<(&'s [u8], u64), Error> {
    let e = resolve_file(fs, p)?;
    let size = e.len();
    if offset >= size {
        return Ok((&[], size));
    }
    let want = (len as u64).min(size - offset) as usize;
    let mut f = e.to_file();
    f.seek(SeekFrom::Start(offset)).map_err(fs_error)?;
    let buf = &mut scratch[..want];
    let mut done = 0;
    while done < want {
        match f.read(&mut buf[done..]).map_err(fs_error)? {
            // The cluster chain ends before the size says: the volume is inconsistent.
            0 => return Err(Error::Corrupt),
            n => done += n,
        }
    }
    Ok((&scratch[..want], size))
}

/// Zeros for filling gaps.
const ZEROS: [u8; 4096] = [0; 4096];

fn write(fs: &Fs<impl BlockDevice>, p: &str, offset: u64, data: &[u8]) -> Result<u64, Error> {
    let e = resolve_file(fs, p)?;
    let size = e.len();
    if data.is_empty() {
        return Ok(size);
    }
    let end = offset.checked_add(data.len() as u64).ok_or(Error::TooBig)?;
    if end > MAX_FILE_SIZE {
        return Err(Error::TooBig);
    }
    let mut f = e.to_file();
    if offset > size {
        // lamfat seeks no further than the end: fill the gap with zeros.
        f.seek(SeekFrom::End(0)).map_err(fs_error)?;
        let mut gap = offset - size;
        while gap > 0 {
            let n = gap.min(ZEROS.len() as u64) as usize;
            f.write_all(&ZEROS[..n]).map_err(fs_error)?;
            gap -= n as u64;
        }
    } else {
        f.seek(SeekFrom::Start(offset)).map_err(fs_error)?;
    }
    f.write_all(data).map_err(fs_error)?;
    f.flush().map_err(fs_error)?;
    Ok(size.max(end))
}

fn truncate(fs: &Fs<impl BlockDevice>, p: &str, new_size: u64) -> Result<(), Error> {
    let e = resolve_file(fs, p)?;
    let size = e.len();
    if new_size > MAX_FILE_SIZE {
        return Err(Error::TooBig);
    }
    let mut f = e.to_file();
    if new_size > size {
        f.seek(SeekFrom::End(0)).map_err(fs_error)?;
        let mut gap = new_size - size;
        while gap > 0 {
            let n = gap.min(ZEROS.len() as u64) as usize;
            f.write_all(&ZEROS[..n]).map_err(fs_error)?;
            gap -= n as u64;
        }
    } else if new_size < size {
        f.seek(SeekFrom::Start(new_size)).map_err(fs_error)?;
        f.truncate().map_err(fs_error)?;
    }
    f.flush().map_err(fs_error)
}

fn create_file(fs: &Fs<impl BlockDevice>, p: &str, flags: u32) -> Result<(), Error> {
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

fn mkdir(fs: &Fs<impl BlockDevice>, p: &str) -> Result<(), Error> {
    let (dir, name) = parent_of(fs, p)?;
    if find(&dir, name)?.is_some() {
        return Err(Error::Exists);
    }
    check_new_name(name)?;
    dir.create_dir(name).map(|_| ()).map_err(fs_error)
}

fn readdir<'s, D: BlockDevice>(
    fs: &Fs<D>,
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

fn remove(fs: &Fs<impl BlockDevice>, p: &str) -> Result<(), Error> {
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

fn rename(fs: &Fs<impl BlockDevice>, from: &str, to: &str) -> Result<(), Error> {
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
fn move_dir(fs: &Fs<impl BlockDevice>, from: &str, to: &str) -> Result<(), Error> {
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

/// Carries out one request other than fsync.
pub(crate) fn handle<'s, D: BlockDevice>(
    fs: &Fs<D>,
    req: &Request<'_>,
    scratch: &'s mut [u8],
) -> Reply<'s> {
    let id = req.id();
    match *req {
        Request::Lookup { path, .. } => Reply::Lookup {
            id,
            result: resolve(fs, path).map(|n| n.kind()),
        },
        Request::Stat { path, .. } => Reply::Stat {
            id,
            result: stat(fs, path),
        },
        Request::Read {
            path, offset, len, ..
        } => Reply::Read {
            id,
            result: read(fs, path, offset, len, scratch),
        },
        Request::Write {
            path, offset, data, ..
        } => Reply::Write {
            id,
            result: write(fs, path, offset, data),
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
            result: readdir(fs, path, cursor, scratch),
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
