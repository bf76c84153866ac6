//! The filesystem protocol: the messages a client and the filesystem driver exchange over a
//! channel, encoded into and decoded from byte buffers without allocation.
//!
//! The protocol is path-based and stateless (`docs/decisions.md`): every request names its file
//! by absolute path, reads and writes carry an offset. The wire format is specified in
//! `docs/fs-protocol.md`: a 24-byte little-endian header, then the path(s), then data.
//!
//! Guarantees: [`Request::decode`] and [`Reply::decode`] never panic and accept only what
//! [`Request::encode`] and [`Reply::encode`] produce; a decoded request's paths are valid
//! ([`path::check`]) and its sizes within the limits below, so the driver acts on it without
//! further checks of its shape.
#![no_std]
#![forbid(unsafe_code)]

pub mod path;

mod wire;

pub use wire::{DirEntries, DirEntry, DirPage, DirPageWriter};

/// First byte of every message.
pub const MAGIC: u8 = 0xF5;
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Bytes in the fixed header.
pub const HEADER_LEN: usize = 24;
/// Most data bytes one read or write moves, and most bytes of entries in a directory page.
pub const MAX_DATA: usize = 60 * 1024;
/// The largest message this protocol produces; a receive buffer of this size always suffices.
pub const MAX_MESSAGE: usize = HEADER_LEN + 2 * path::MAX_PATH + MAX_DATA;
/// Bytes of a [`Stat`] on the wire.
pub const STAT_LEN: usize = 20;
/// The cursor of a [`Reply::Readdir`] when the directory has no more entries.
pub const END_CURSOR: u64 = u64::MAX;

const _: () = assert!(MAX_MESSAGE <= abi::limits::MAX_MESSAGE_BYTES);

/// The operations (the operation byte; a reply sets bit 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Whether a path exists, and its kind.
    Lookup = 1,
    /// A path's metadata.
    Stat = 2,
    /// Bytes of a file from an offset.
    Read = 3,
    /// Bytes into a file at an offset.
    Write = 4,
    /// A new empty file.
    Create = 5,
    /// A new directory.
    Mkdir = 6,
    /// A page of a directory's entries.
    Readdir = 7,
    /// Remove a file or an empty directory.
    Remove = 8,
    /// Rename or move a file or directory.
    Rename = 9,
    /// Make everything written so far durable.
    Fsync = 10,
    /// Set a file's length.
    Truncate = 11,
}

impl Op {
    fn from_u8(b: u8) -> Option<Op> {
        use Op::*;
        Some(match b {
            1 => Lookup,
            2 => Stat,
            3 => Read,
            4 => Write,
            5 => Create,
            6 => Mkdir,
            7 => Readdir,
            8 => Remove,
            9 => Rename,
            10 => Fsync,
            11 => Truncate,
            _ => return None,
        })
    }
}

/// Why the driver did not do what was asked (the status byte of a reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Error {
    /// No file or directory at that path (or a parent is missing).
    NotFound = 1,
    /// Something already exists at that path.
    Exists = 2,
    /// A component that must be a directory is a file.
    NotADirectory = 3,
    /// The path names a directory where a file is needed.
    IsADirectory = 4,
    /// The directory to remove has entries.
    NotEmpty = 5,
    /// The disk is full.
    NoSpace = 6,
    /// The block device failed.
    Io = 7,
    /// The request does not decode.
    BadRequest = 8,
    /// The path or one of its names is too long.
    NameTooLong = 9,
    /// The path is not absolute, has empty, `.` or `..` components, or moves a directory into
    /// itself, or names the root where that makes no sense.
    BadPath = 10,
    /// A name holds characters the filesystem cannot store.
    InvalidName = 11,
    /// More data than [`MAX_DATA`], or a file beyond the filesystem's largest size.
    TooBig = 12,
    /// The filesystem's structures on disk are inconsistent.
    Corrupt = 13,
    /// The driver does not do this operation.
    Unsupported = 14,
}

impl Error {
    fn from_u8(b: u8) -> Option<Error> {
        use Error::*;
        Some(match b {
            1 => NotFound,
            2 => Exists,
            3 => NotADirectory,
            4 => IsADirectory,
            5 => NotEmpty,
            6 => NoSpace,
            7 => Io,
            8 => BadRequest,
            9 => NameTooLong,
            10 => BadPath,
            11 => InvalidName,
            12 => TooBig,
            13 => Corrupt,
            14 => Unsupported,
            _ => return None,
        })
    }

    /// A short description, for shells and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Error::NotFound => "no such file or directory",
            Error::Exists => "already exists",
            Error::NotADirectory => "not a directory",
            Error::IsADirectory => "is a directory",
            Error::NotEmpty => "directory not empty",
            Error::NoSpace => "no space left on the disk",
            Error::Io => "I/O error",
            Error::BadRequest => "bad request",
            Error::NameTooLong => "name too long",
            Error::BadPath => "bad path",
            Error::InvalidName => "invalid name",
            Error::TooBig => "too big",
            Error::Corrupt => "filesystem corrupt",
            Error::Unsupported => "unsupported operation",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A regular file.
    File = 1,
    /// A directory.
    Dir = 2,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::File),
            2 => Some(Kind::Dir),
            _ => None,
        }
    }
}

/// A calendar time as the filesystem stores it (FAT keeps local time, two-second steps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Time {
    /// Full year, e.g. 2024.
    pub year: u16,
    /// 1 ..= 12 (0 when unknown).
    pub month: u8,
    /// 1 ..= 31 (0 when unknown).
    pub day: u8,
    /// 0 ..= 23.
    pub hour: u8,
    /// 0 ..= 59.
    pub minute: u8,
    /// 0 ..= 59.
    pub second: u8,
}

/// A path's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// File or directory.
    pub kind: Kind,
    /// Bytes in the file (0 for a directory).
    pub size: u64,
    /// The filesystem's read-only attribute.
    pub read_only: bool,
    /// Last modification.
    pub modified: Time,
}

/// Flags of [`Request::Create`].
pub mod create {
    /// If a file exists at the path, empty it and succeed instead of answering `Exists`.
    pub const TRUNCATE: u32 = 1;
    /// Every flag this version knows.
    pub const ALL: u32 = TRUNCATE;
}

/// A request from a client. Paths are absolute and valid ([`path::check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// Does `path` exist, and is it a file or a directory?
    Lookup {
        /// Echoed in the reply.
        id: u32,
        /// What to look up.
        path: &'a str,
    },
    /// `path`'s metadata.
    Stat {
        /// Echoed in the reply.
        id: u32,
        /// What to describe.
        path: &'a str,
    },
    /// Up to `len` bytes of the file at `path` from `offset` (fewer at the end of the file).
    Read {
        /// Echoed in the reply.
        id: u32,
        /// The file.
        path: &'a str,
        /// First byte.
        offset: u64,
        /// Most bytes wanted, at most [`MAX_DATA`].
        len: u32,
    },
    /// Write `data` into the existing file at `path` at `offset`; a gap past the end reads as
    /// zeros.
    Write {
        /// Echoed in the reply.
        id: u32,
        /// The file.
        path: &'a str,
        /// Where the data goes.
        offset: u64,
        /// At most [`MAX_DATA`] bytes.
        data: &'a [u8],
    },
    /// Create an empty file at `path` (whose parent must exist).
    Create {
        /// Echoed in the reply.
        id: u32,
        /// The new file.
        path: &'a str,
        /// [`create`] flags.
        flags: u32,
    },
    /// Create an empty directory at `path` (whose parent must exist).
    Mkdir {
        /// Echoed in the reply.
        id: u32,
        /// The new directory.
        path: &'a str,
    },
    /// The entries of the directory at `path`, from the `cursor`th (0 first), as many as fit
    /// in one reply.
    Readdir {
        /// Echoed in the reply.
        id: u32,
        /// The directory.
        path: &'a str,
        /// 0, or the cursor a previous reply returned.
        cursor: u64,
    },
    /// Remove the file or empty directory at `path`.
    Remove {
        /// Echoed in the reply.
        id: u32,
        /// What to remove.
        path: &'a str,
    },
    /// Rename or move `from` to `to`; `to` must not exist and its parent must.
    Rename {
        /// Echoed in the reply.
        id: u32,
        /// What to move.
        from: &'a str,
        /// Where to.
        to: &'a str,
    },
    /// Make everything written so far durable on the device and the filesystem clean.
    Fsync {
        /// Echoed in the reply.
        id: u32,
    },
    /// Set the length of the file at `path` (a longer file reads as zeros past the old end).
    Truncate {
        /// Echoed in the reply.
        id: u32,
        /// The file.
        path: &'a str,
        /// The new length.
        size: u64,
    },
}

/// A reply; `id` is the request's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// What the path is.
    Lookup {
        /// The request's id.
        id: u32,
        /// Its kind.
        result: Result<Kind, Error>,
    },
    /// The path's metadata.
    Stat {
        /// The request's id.
        id: u32,
        /// The metadata.
        result: Result<Stat, Error>,
    },
    /// The bytes read (empty at or past the end) and the file's size.
    Read {
        /// The request's id.
        id: u32,
        /// `(data, file size)`.
        result: Result<(&'a [u8], u64), Error>,
    },
    /// The file's size after the write (all the data is written, or none is reported).
    Write {
        /// The request's id.
        id: u32,
        /// The new file size.
        result: Result<u64, Error>,
    },
    /// Whether the file was created.
    Create {
        /// The request's id.
        id: u32,
        /// Ok when created (or emptied, with [`create::TRUNCATE`]).
        result: Result<(), Error>,
    },
    /// Whether the directory was created.
    Mkdir {
        /// The request's id.
        id: u32,
        /// Ok when created.
        result: Result<(), Error>,
    },
    /// A page of entries.
    Readdir {
        /// The request's id.
        id: u32,
        /// The entries and the cursor of the next page.
        result: Result<DirPage<'a>, Error>,
    },
    /// Whether the path was removed.
    Remove {
        /// The request's id.
        id: u32,
        /// Ok when removed.
        result: Result<(), Error>,
    },
    /// Whether the rename happened.
    Rename {
        /// The request's id.
        id: u32,
        /// Ok when renamed.
        result: Result<(), Error>,
    },
    /// Whether everything is durable.
    Fsync {
        /// The request's id.
        id: u32,
        /// Ok once flushed.
        result: Result<(), Error>,
    },
    /// Whether the length was set.
    Truncate {
        /// The request's id.
        id: u32,
        /// Ok when set.
        result: Result<(), Error>,
    },
    /// A request the driver could not decode far enough to know its operation.
    Rejected {
        /// The request's id if its header had one, else 0.
        id: u32,
        /// Why.
        error: Error,
    },
}

/// Why bytes were not a valid message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the header.
    Truncated,
    /// The first byte is not [`MAGIC`].
    BadMagic,
    /// A version this crate does not speak.
    BadVersion(u8),
    /// An unknown operation byte (or a reply where a request was expected, or the reverse).
    BadOp(u8),
    /// A status byte that is not 0 or an [`Error`] code, or non-zero in a request.
    BadStatus(u8),
    /// A field that must be 0 is not, or a value outside its range (kind, flags, time, cursor).
    BadField,
    /// The length is not the header plus the paths and data the header announces.
    BadLength,
    /// A path is not UTF-8 or not valid; the error says which way ([`Error::BadPath`],
    /// [`Error::NameTooLong`]).
    Path(Error),
    /// More than [`MAX_DATA`] bytes of data or wanted.
    TooBig,
}

impl DecodeError {
    /// The [`Error`] a server answers with for this decoding failure.
    pub fn reply_error(self) -> Error {
        match self {
            DecodeError::Path(e) => e,
            DecodeError::TooBig => Error::TooBig,
            DecodeError::BadOp(_) => Error::Unsupported,
            _ => Error::BadRequest,
        }
    }
}

/// Why a message could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is smaller than the message.
    BufferTooSmall,
    /// A path is not valid, or data or a length is over [`MAX_DATA`], or a flag is unknown.
    BadValue,
}

/// Reads the id of a message whose header is intact enough to hold one, so that a server can
/// answer a request it cannot decode with [`Reply::Rejected`] under the client's id.
pub fn peek_id(bytes: &[u8]) -> Option<u32> {
    if bytes.len() >= HEADER_LEN && bytes[0] == MAGIC {
        Some(u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]))
    } else {
        None
    }
}

/// Reads the operation of a request whose header is intact enough to name one, so that a
/// server can answer a request it cannot decode with its operation's reply and the error.
pub fn peek_op(bytes: &[u8]) -> Option<Op> {
    if bytes.len() >= HEADER_LEN && bytes[0] == MAGIC && bytes[1] == VERSION {
        Op::from_u8(bytes[2])
    } else {
        None
    }
}

/// The bytes of a connect message: sent on a channel the driver serves, with one or more
/// channel endpoints attached; the driver serves each endpoint as a new client from then on
/// (`docs/fs-protocol.md`). It has no reply.
pub const CONNECT: &[u8; 8] = b"MXFSCONN";
