//! The byte layout: the header, the encoders and the decoders of requests and replies, and the
//! entries of a directory page. Every decoder checks every field before it builds a value.
use crate::path::{self, MAX_NAME};
use crate::{
    DecodeError, END_CURSOR, EncodeError, Error, HEADER_LEN, Kind, MAGIC, MAX_DATA, Op, Reply,
    Request, STAT_LEN, Stat, Time, VERSION, create,
};

const REPLY_BIT: u8 = 0x80;
const OP_REJECTED: u8 = 0xFF;
/// Fixed bytes before each entry's name in a directory page.
const ENTRY_FIXED: usize = 11;

/// The header fields, as on the wire.
#[derive(Clone, Copy, Default)]
struct Header {
    op: u8,
    status: u8,
    id: u32,
    value: u64,
    arg: u32,
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Writes a header, the paths and the data into `out`; returns the length.
fn put(out: &mut [u8], h: Header, paths: [&str; 2], data: &[u8]) -> Result<usize, EncodeError> {
    let len = HEADER_LEN + paths[0].len() + paths[1].len() + data.len();
    if out.len() < len {
        return Err(EncodeError::BufferTooSmall);
    }
    out[0] = MAGIC;
    out[1] = VERSION;
    out[2] = h.op;
    out[3] = h.status;
    out[4..8].copy_from_slice(&h.id.to_le_bytes());
    out[8..16].copy_from_slice(&h.value.to_le_bytes());
    out[16..20].copy_from_slice(&h.arg.to_le_bytes());
    out[20..22].copy_from_slice(&(paths[0].len() as u16).to_le_bytes());
    out[22..24].copy_from_slice(&(paths[1].len() as u16).to_le_bytes());
    let mut at = HEADER_LEN;
    for part in [paths[0].as_bytes(), paths[1].as_bytes(), data] {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    Ok(len)
}

/// Writes a header and the paths into `out` for a message whose `data` bytes the caller puts
/// after them; returns where the data begins.
fn put_head(
    out: &mut [u8],
    h: Header,
    paths: [&str; 2],
    data: usize,
) -> Result<usize, EncodeError> {
    let head = HEADER_LEN + paths[0].len() + paths[1].len();
    if out.len() < head + data {
        return Err(EncodeError::BufferTooSmall);
    }
    put(&mut out[..head], h, paths, &[])
}

/// A parsed message: header, two path fields (possibly empty) and what follows them.
struct Parts<'a> {
    h: Header,
    paths: [&'a [u8]; 2],
    rest: &'a [u8],
}

fn parse(bytes: &[u8]) -> Result<Parts<'_>, DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    if bytes[0] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if bytes[1] != VERSION {
        return Err(DecodeError::BadVersion(bytes[1]));
    }
    let h = Header {
        op: bytes[2],
        status: bytes[3],
        id: le32(&bytes[4..8]),
        value: le64(&bytes[8..16]),
        arg: le32(&bytes[16..20]),
    };
    let (l0, l1) = (le16(&bytes[20..22]) as usize, le16(&bytes[22..24]) as usize);
    let body = &bytes[HEADER_LEN..];
    if body.len() < l0 + l1 {
        return Err(DecodeError::BadLength);
    }
    let (p0, body) = body.split_at(l0);
    let (p1, rest) = body.split_at(l1);
    Ok(Parts {
        h,
        paths: [p0, p1],
        rest,
    })
}

/// A valid path from wire bytes.
fn path_of(b: &[u8]) -> Result<&str, DecodeError> {
    let s = core::str::from_utf8(b).map_err(|_| DecodeError::Path(Error::BadPath))?;
    path::check(s).map_err(DecodeError::Path)?;
    Ok(s)
}

/// Requires fields to be zero.
fn zero(fields: &[u64]) -> Result<(), DecodeError> {
    if fields.iter().all(|&f| f == 0) {
        Ok(())
    } else {
        Err(DecodeError::BadField)
    }
}

fn no_bytes(parts: &[&[u8]]) -> Result<(), DecodeError> {
    if parts.iter().all(|p| p.is_empty()) {
        Ok(())
    } else {
        Err(DecodeError::BadLength)
    }
}

fn check_path_enc(p: &str) -> Result<(), EncodeError> {
    path::check(p).map_err(|_| EncodeError::BadValue)
}

impl<'a> Request<'a> {
    /// Gives the request the id `new` (a client numbers its requests as it sends them).
    pub fn set_id(&mut self, new: u32) {
        use Request::*;
        match self {
            Lookup { id, .. }
            | Stat { id, .. }
            | Read { id, .. }
            | Write { id, .. }
            | Create { id, .. }
            | Mkdir { id, .. }
            | Readdir { id, .. }
            | Remove { id, .. }
            | Rename { id, .. }
            | Fsync { id }
            | Truncate { id, .. } => *id = new,
        }
    }

    /// The request's id.
    pub fn id(&self) -> u32 {
        use Request::*;
        match *self {
            Lookup { id, .. }
            | Stat { id, .. }
            | Read { id, .. }
            | Write { id, .. }
            | Create { id, .. }
            | Mkdir { id, .. }
            | Readdir { id, .. }
            | Remove { id, .. }
            | Rename { id, .. }
            | Fsync { id }
            | Truncate { id, .. } => id,
        }
    }

    /// The operation.
    pub fn op(&self) -> Op {
        match self {
            Request::Lookup { .. } => Op::Lookup,
            Request::Stat { .. } => Op::Stat,
            Request::Read { .. } => Op::Read,
            Request::Write { .. } => Op::Write,
            Request::Create { .. } => Op::Create,
            Request::Mkdir { .. } => Op::Mkdir,
            Request::Readdir { .. } => Op::Readdir,
            Request::Remove { .. } => Op::Remove,
            Request::Rename { .. } => Op::Rename,
            Request::Fsync { .. } => Op::Fsync,
            Request::Truncate { .. } => Op::Truncate,
        }
    }

    /// Writes the message into `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut h = Header {
            op: self.op() as u8,
            id: self.id(),
            ..Header::default()
        };
        let (paths, data): ([&str; 2], &[u8]) = match *self {
            Request::Lookup { path, .. }
            | Request::Stat { path, .. }
            | Request::Mkdir { path, .. }
            | Request::Remove { path, .. } => ([path, ""], &[]),
            Request::Read {
                path, offset, len, ..
            } => {
                if len as usize > MAX_DATA {
                    return Err(EncodeError::BadValue);
                }
                h.value = offset;
                h.arg = len;
                ([path, ""], &[])
            }
            Request::Write {
                path, offset, data, ..
            } => {
                if data.len() > MAX_DATA {
                    return Err(EncodeError::BadValue);
                }
                h.value = offset;
                h.arg = data.len() as u32;
                ([path, ""], data)
            }
            Request::Create { path, flags, .. } => {
                if flags & !create::ALL != 0 {
                    return Err(EncodeError::BadValue);
                }
                h.arg = flags;
                ([path, ""], &[])
            }
            Request::Readdir { path, cursor, .. } => {
                h.value = cursor;
                ([path, ""], &[])
            }
            Request::Rename { from, to, .. } => {
                check_path_enc(to)?;
                ([from, to], &[])
            }
            Request::Fsync { .. } => return put(out, h, ["", ""], &[]),
            Request::Truncate { path, size, .. } => {
                h.value = size;
                ([path, ""], &[])
            }
        };
        check_path_enc(paths[0])?;
        put(out, h, paths, data)
    }

    /// Writes the header and path of a write request of `len` data bytes into `out`, which
    /// must have room for the data after them too; returns where the data begins. With the data
    /// placed there, `out[..returned + len]` is exactly what [`Request::encode`] writes: a
    /// client can build the message around data it writes in place.
    pub fn encode_write_head(
        id: u32,
        path: &str,
        offset: u64,
        len: usize,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        if len > MAX_DATA {
            return Err(EncodeError::BadValue);
        }
        check_path_enc(path)?;
        let h = Header {
            op: Op::Write as u8,
            id,
            value: offset,
            arg: len as u32,
            ..Header::default()
        };
        put_head(out, h, [path, ""], len)
    }

    /// Parses a request; paths and data borrow from `bytes`.
    pub fn decode(bytes: &'a [u8]) -> Result<Request<'a>, DecodeError> {
        let Parts { h, paths, rest } = parse(bytes)?;
        let op = Op::from_u8(h.op).ok_or(DecodeError::BadOp(h.op))?;
        if h.status != 0 {
            return Err(DecodeError::BadStatus(h.status));
        }
        let id = h.id;
        if op != Op::Rename {
            no_bytes(&[paths[1]])?;
        }
        if op != Op::Write {
            no_bytes(&[rest])?;
        }
        // Fsync names no path; every other operation names a valid one.
        let path = match op {
            Op::Fsync => {
                no_bytes(&[paths[0]])?;
                ""
            }
            _ => path_of(paths[0])?,
        };
        Ok(match op {
            Op::Lookup | Op::Stat | Op::Mkdir | Op::Remove => {
                zero(&[h.value, h.arg.into()])?;
                match op {
                    Op::Lookup => Request::Lookup { id, path },
                    Op::Stat => Request::Stat { id, path },
                    Op::Mkdir => Request::Mkdir { id, path },
                    _ => Request::Remove { id, path },
                }
            }
            Op::Read => {
                if h.arg as usize > MAX_DATA {
                    return Err(DecodeError::TooBig);
                }
                Request::Read {
                    id,
                    path,
                    offset: h.value,
                    len: h.arg,
                }
            }
            Op::Write => {
                if h.arg as usize > MAX_DATA {
                    return Err(DecodeError::TooBig);
                }
                if rest.len() != h.arg as usize {
                    return Err(DecodeError::BadLength);
                }
                Request::Write {
                    id,
                    path,
                    offset: h.value,
                    data: rest,
                }
            }
            Op::Create => {
                zero(&[h.value])?;
                if h.arg & !create::ALL != 0 {
                    return Err(DecodeError::BadField);
                }
                Request::Create {
                    id,
                    path,
                    flags: h.arg,
                }
            }
            Op::Readdir => {
                zero(&[h.arg.into()])?;
                Request::Readdir {
                    id,
                    path,
                    cursor: h.value,
                }
            }
            Op::Rename => {
                zero(&[h.value, h.arg.into()])?;
                Request::Rename {
                    id,
                    from: path,
                    to: path_of(paths[1])?,
                }
            }
            Op::Truncate => {
                zero(&[h.arg.into()])?;
                Request::Truncate {
                    id,
                    path,
                    size: h.value,
                }
            }
            Op::Fsync => {
                zero(&[h.value, h.arg.into()])?;
                Request::Fsync { id }
            }
        })
    }
}

fn encode_stat(s: &Stat) -> [u8; STAT_LEN] {
    let mut b = [0; STAT_LEN];
    b[0..8].copy_from_slice(&s.size.to_le_bytes());
    b[8..10].copy_from_slice(&s.modified.year.to_le_bytes());
    b[10] = s.modified.month;
    b[11] = s.modified.day;
    b[12] = s.modified.hour;
    b[13] = s.modified.minute;
    b[14] = s.modified.second;
    b[15] = s.kind as u8;
    b[16] = s.read_only as u8;
    b
}

fn decode_stat(b: &[u8]) -> Result<Stat, DecodeError> {
    if b.len() != STAT_LEN {
        return Err(DecodeError::BadLength);
    }
    let t = Time {
        year: le16(&b[8..10]),
        month: b[10],
        day: b[11],
        hour: b[12],
        minute: b[13],
        second: b[14],
    };
    let kind = Kind::from_u8(b[15]).ok_or(DecodeError::BadField)?;
    if t.month > 12
        || t.day > 31
        || t.hour > 23
        || t.minute > 59
        || t.second > 59
        || b[16] > 1
        || b[17..] != [0; 3]
    {
        return Err(DecodeError::BadField);
    }
    Ok(Stat {
        kind,
        size: le64(&b[0..8]),
        read_only: b[16] == 1,
        modified: t,
    })
}

impl<'a> Reply<'a> {
    /// The id of the request this answers.
    pub fn id(&self) -> u32 {
        use Reply::*;
        match *self {
            Lookup { id, .. }
            | Stat { id, .. }
            | Read { id, .. }
            | Write { id, .. }
            | Create { id, .. }
            | Mkdir { id, .. }
            | Readdir { id, .. }
            | Remove { id, .. }
            | Rename { id, .. }
            | Fsync { id, .. }
            | Truncate { id, .. }
            | Rejected { id, .. } => id,
        }
    }

    /// The error this reply carries, if any.
    pub fn error(&self) -> Option<Error> {
        use Reply::*;
        match *self {
            Lookup { result, .. } => result.err(),
            Stat { result, .. } => result.err(),
            Read { result, .. } => result.err(),
            Write { result, .. } => result.err(),
            Readdir { result, .. } => result.err(),
            Create { result, .. }
            | Mkdir { result, .. }
            | Remove { result, .. }
            | Rename { result, .. }
            | Fsync { result, .. }
            | Truncate { result, .. } => result.err(),
            Rejected { error, .. } => Some(error),
        }
    }

    /// The reply to a request with operation `op` and `id` that carries `error`.
    pub fn error_for(op: Op, id: u32, error: Error) -> Reply<'static> {
        match op {
            Op::Lookup => Reply::Lookup {
                id,
                result: Err(error),
            },
            Op::Stat => Reply::Stat {
                id,
                result: Err(error),
            },
            Op::Read => Reply::Read {
                id,
                result: Err(error),
            },
            Op::Write => Reply::Write {
                id,
                result: Err(error),
            },
            Op::Create => Reply::Create {
                id,
                result: Err(error),
            },
            Op::Mkdir => Reply::Mkdir {
                id,
                result: Err(error),
            },
            Op::Readdir => Reply::Readdir {
                id,
                result: Err(error),
            },
            Op::Remove => Reply::Remove {
                id,
                result: Err(error),
            },
            Op::Rename => Reply::Rename {
                id,
                result: Err(error),
            },
            Op::Fsync => Reply::Fsync {
                id,
                result: Err(error),
            },
            Op::Truncate => Reply::Truncate {
                id,
                result: Err(error),
            },
        }
    }

    /// Writes the message into `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut h = Header {
            id: self.id(),
            status: self.error().map_or(0, |e| e as u8),
            ..Header::default()
        };
        let stat_buf;
        let mut data: &[u8] = &[];
        let op = match *self {
            Reply::Lookup { result, .. } => {
                h.value = result.map_or(0, |k| k as u64);
                Op::Lookup
            }
            Reply::Stat { result, .. } => {
                if let Ok(s) = result {
                    stat_buf = encode_stat(&s);
                    data = &stat_buf;
                }
                Op::Stat
            }
            Reply::Read { result, .. } => {
                if let Ok((d, size)) = result {
                    if d.len() > MAX_DATA {
                        return Err(EncodeError::BadValue);
                    }
                    h.value = size;
                    h.arg = d.len() as u32;
                    data = d;
                }
                Op::Read
            }
            Reply::Write { result, .. } => {
                h.value = result.unwrap_or(0);
                Op::Write
            }
            Reply::Readdir { result, .. } => {
                if let Ok(p) = result {
                    h.value = p.next;
                    h.arg = p.count;
                    data = p.bytes;
                }
                Op::Readdir
            }
            Reply::Create { .. } => Op::Create,
            Reply::Mkdir { .. } => Op::Mkdir,
            Reply::Remove { .. } => Op::Remove,
            Reply::Rename { .. } => Op::Rename,
            Reply::Fsync { .. } => Op::Fsync,
            Reply::Truncate { .. } => Op::Truncate,
            Reply::Rejected { error, .. } => {
                h.op = OP_REJECTED;
                h.status = error as u8;
                return put(out, h, ["", ""], &[]);
            }
        };
        h.op = op as u8 | REPLY_BIT;
        put(out, h, ["", ""], data)
    }

    /// Writes the header of a successful read reply whose `len` data bytes the caller has
    /// already placed at `out[HEADER_LEN..]` (so a driver can read a file straight into its
    /// send buffer), for a file of `size` bytes; returns the message length.
    pub fn encode_read_in_place(
        out: &mut [u8],
        id: u32,
        size: u64,
        len: usize,
    ) -> Result<usize, EncodeError> {
        if len > MAX_DATA {
            return Err(EncodeError::BadValue);
        }
        let h = Header {
            op: Op::Read as u8 | REPLY_BIT,
            id,
            value: size,
            arg: len as u32,
            ..Header::default()
        };
        Ok(put_head(out, h, ["", ""], len)? + len)
    }

    /// Parses a reply; data and directory entries borrow from `bytes`.
    pub fn decode(bytes: &'a [u8]) -> Result<Reply<'a>, DecodeError> {
        let Parts { h, paths, rest } = parse(bytes)?;
        no_bytes(&[paths[0], paths[1]])?;
        let id = h.id;
        let error = match h.status {
            0 => None,
            s => Some(Error::from_u8(s).ok_or(DecodeError::BadStatus(s))?),
        };
        if h.op == OP_REJECTED {
            no_bytes(&[rest])?;
            zero(&[h.value, h.arg.into()])?;
            return match error {
                Some(error) => Ok(Reply::Rejected { id, error }),
                None => Err(DecodeError::BadStatus(0)),
            };
        }
        if h.op & REPLY_BIT == 0 {
            return Err(DecodeError::BadOp(h.op));
        }
        let op = Op::from_u8(h.op & !REPLY_BIT).ok_or(DecodeError::BadOp(h.op))?;
        if let Some(e) = error {
            no_bytes(&[rest])?;
            zero(&[h.value, h.arg.into()])?;
            return Ok(Reply::error_for(op, id, e));
        }
        let simple = |r: fn(u32, Result<(), Error>) -> Reply<'a>| {
            no_bytes(&[rest])?;
            zero(&[h.value, h.arg.into()])?;
            Ok(r(id, Ok(())))
        };
        match op {
            Op::Lookup => {
                no_bytes(&[rest])?;
                zero(&[h.arg.into()])?;
                let kind = u8::try_from(h.value)
                    .ok()
                    .and_then(Kind::from_u8)
                    .ok_or(DecodeError::BadField)?;
                Ok(Reply::Lookup {
                    id,
                    result: Ok(kind),
                })
            }
            Op::Stat => {
                zero(&[h.value, h.arg.into()])?;
                Ok(Reply::Stat {
                    id,
                    result: Ok(decode_stat(rest)?),
                })
            }
            Op::Read => {
                if h.arg as usize > MAX_DATA {
                    return Err(DecodeError::TooBig);
                }
                if rest.len() != h.arg as usize {
                    return Err(DecodeError::BadLength);
                }
                Ok(Reply::Read {
                    id,
                    result: Ok((rest, h.value)),
                })
            }
            Op::Write => {
                no_bytes(&[rest])?;
                zero(&[h.arg.into()])?;
                Ok(Reply::Write {
                    id,
                    result: Ok(h.value),
                })
            }
            Op::Readdir => {
                if rest.len() > MAX_DATA {
                    return Err(DecodeError::TooBig);
                }
                let page = DirPage::parse(rest, h.arg, h.value)?;
                Ok(Reply::Readdir {
                    id,
                    result: Ok(page),
                })
            }
            Op::Create => simple(|id, result| Reply::Create { id, result }),
            Op::Mkdir => simple(|id, result| Reply::Mkdir { id, result }),
            Op::Remove => simple(|id, result| Reply::Remove { id, result }),
            Op::Rename => simple(|id, result| Reply::Rename { id, result }),
            Op::Fsync => simple(|id, result| Reply::Fsync { id, result }),
            Op::Truncate => simple(|id, result| Reply::Truncate { id, result }),
        }
    }
}

/// One entry of a directory page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// The entry's name (a single valid path component).
    pub name: &'a str,
    /// File or directory.
    pub kind: Kind,
    /// Bytes in the file (0 for a directory).
    pub size: u64,
}

/// A page of directory entries: the entries and the cursor of the next page ([`END_CURSOR`]
/// when this page ends the directory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirPage<'a> {
    bytes: &'a [u8],
    count: u32,
    /// The cursor to ask for next, or [`END_CURSOR`].
    pub next: u64,
}

/// Whether `name` can be an entry name: one valid path component.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
}

impl<'a> DirPage<'a> {
    /// Checks every entry of an encoded page.
    fn parse(bytes: &'a [u8], count: u32, next: u64) -> Result<DirPage<'a>, DecodeError> {
        let mut at = 0;
        let mut seen = 0u32;
        while at < bytes.len() {
            let (_, len) = entry_at(bytes, at).ok_or(DecodeError::BadField)?;
            at += len;
            seen += 1;
        }
        if seen != count {
            return Err(DecodeError::BadLength);
        }
        Ok(DirPage { bytes, count, next })
    }

    /// Number of entries in the page.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the page has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether this is the last page.
    pub fn is_last(&self) -> bool {
        self.next == END_CURSOR
    }

    /// The entries, in directory order.
    pub fn entries(&self) -> DirEntries<'a> {
        DirEntries {
            bytes: self.bytes,
            at: 0,
        }
    }
}

/// Parses the entry at `at`: the entry and its encoded length.
fn entry_at(bytes: &[u8], at: usize) -> Option<(DirEntry<'_>, usize)> {
    let fixed = bytes.get(at..at.checked_add(ENTRY_FIXED)?)?;
    let size = le64(&fixed[0..8]);
    let name_len = le16(&fixed[8..10]) as usize;
    let kind = Kind::from_u8(fixed[10])?;
    let start = at + ENTRY_FIXED;
    let name = core::str::from_utf8(bytes.get(start..start + name_len)?).ok()?;
    if !valid_name(name) {
        return None;
    }
    Some((DirEntry { name, kind, size }, ENTRY_FIXED + name_len))
}

/// An iterator over a page's entries.
#[derive(Clone, Debug)]
pub struct DirEntries<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Iterator for DirEntries<'a> {
    type Item = DirEntry<'a>;

    fn next(&mut self) -> Option<DirEntry<'a>> {
        let (e, len) = entry_at(self.bytes, self.at)?;
        self.at += len;
        Some(e)
    }
}

/// Builds a directory page in a caller's buffer (the driver's side of [`Reply::Readdir`]).
pub struct DirPageWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    count: u32,
}

impl<'b> DirPageWriter<'b> {
    /// A writer that fills at most `min(buf.len(), MAX_DATA)` bytes.
    pub fn new(buf: &'b mut [u8]) -> DirPageWriter<'b> {
        let cap = buf.len().min(MAX_DATA);
        DirPageWriter {
            buf: &mut buf[..cap],
            len: 0,
            count: 0,
        }
    }

    /// Appends an entry; `Ok(false)` when it does not fit (the page is full), `Err` when the
    /// name is not a valid entry name.
    pub fn push(&mut self, name: &str, kind: Kind, size: u64) -> Result<bool, EncodeError> {
        if !valid_name(name) {
            return Err(EncodeError::BadValue);
        }
        let need = ENTRY_FIXED + name.len();
        if self.buf.len() - self.len < need {
            return Ok(false);
        }
        let b = &mut self.buf[self.len..self.len + need];
        b[0..8].copy_from_slice(&size.to_le_bytes());
        b[8..10].copy_from_slice(&(name.len() as u16).to_le_bytes());
        b[10] = kind as u8;
        b[ENTRY_FIXED..].copy_from_slice(name.as_bytes());
        self.len += need;
        self.count += 1;
        Ok(true)
    }

    /// Entries pushed so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The finished page, borrowing the caller's buffer, with `next` as the cursor of the
    /// following page.
    pub fn into_page(self, next: u64) -> DirPage<'b> {
        DirPage {
            bytes: &self.buf[..self.len],
            count: self.count,
            next,
        }
    }

    /// The page so far, with `next` as the cursor of the following page.
    pub fn page(&self, next: u64) -> DirPage<'_> {
        DirPage {
            bytes: &self.buf[..self.len],
            count: self.count,
            next,
        }
    }
}
