//! The block protocol: the messages a client (the filesystem driver) and a block driver exchange
//! over a channel, encoded into and decoded from byte buffers without allocation.
//!
//! The wire format is specified in `docs/block-protocol.md`. Every message is a 24-byte
//! little-endian header, then data (only in a write request and a successful read reply):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | magic [`MAGIC`] |
//! | 1 | 1 | version [`VERSION`] |
//! | 2 | 1 | operation ([`Op`]; a reply sets bit 7) |
//! | 3 | 1 | status: 0 in requests and successful replies, else an [`Error`] code |
//! | 4 | 4 | request id, chosen by the client and echoed in the reply |
//! | 8 | 8 | first sector (read, write); sector count of the device (capacity reply); else 0 |
//! | 16 | 4 | sectors of data that follow (write request, read reply) or wanted (read request) |
//! | 20 | 4 | reserved, 0 |
//! | 24 | … | `count × 512` bytes of data, or nothing |
//!
//! Guarantees: [`Request::decode`] and [`Reply::decode`] never panic and accept only what
//! [`Request::encode`] and [`Reply::encode`] can produce (every field checked, the message length
//! exact), so a server can act on a decoded request without further checks of its shape.
#![no_std]
#![forbid(unsafe_code)]

/// First byte of every message.
pub const MAGIC: u8 = 0xB7;
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Bytes in the fixed header.
pub const HEADER_LEN: usize = 24;
/// Bytes in a sector; every offset and length in the protocol counts sectors.
pub const SECTOR_SIZE: usize = 512;
/// Most data bytes in one message (read reply or write request).
pub const MAX_DATA: usize = 60 * 1024;
/// Most sectors one read or write moves.
pub const MAX_SECTORS: u32 = (MAX_DATA / SECTOR_SIZE) as u32;
/// The largest message this protocol produces; a receive buffer of this size always suffices.
pub const MAX_MESSAGE: usize = HEADER_LEN + MAX_DATA;

// A message must fit in one channel message.
const _: () = assert!(MAX_MESSAGE <= abi::limits::MAX_MESSAGE_BYTES);

/// A message whose bytes are exactly these, with channel endpoints attached, hands a block
/// driver those endpoints as new client channels (the block protocol's connect; no reply).
pub const CONNECT: &[u8] = b"MXBKCONN";

/// Bit set in the operation byte of a reply.
const REPLY_BIT: u8 = 0x80;
/// Operation byte of a [`Reply::Rejected`].
const OP_REJECTED: u8 = 0xFF;

/// The operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Read sectors.
    Read = 1,
    /// Write sectors.
    Write = 2,
    /// Make every completed write durable.
    Flush = 3,
    /// Ask for the device's size in sectors.
    Capacity = 4,
}

impl Op {
    fn from_u8(b: u8) -> Option<Op> {
        Some(match b {
            1 => Op::Read,
            2 => Op::Write,
            3 => Op::Flush,
            4 => Op::Capacity,
            _ => return None,
        })
    }
}

/// Why the driver did not do what was asked (the status byte of a reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Error {
    /// The device reported an error.
    Io = 1,
    /// The sectors are not all below the device's capacity.
    OutOfRange = 2,
    /// The request could not be decoded.
    BadRequest = 3,
    /// The device cannot be written.
    ReadOnly = 4,
    /// The device does not support this operation.
    Unsupported = 5,
    /// More data than [`MAX_DATA`] was asked for.
    TooBig = 6,
}

impl Error {
    fn from_u8(b: u8) -> Option<Error> {
        Some(match b {
            1 => Error::Io,
            2 => Error::OutOfRange,
            3 => Error::BadRequest,
            4 => Error::ReadOnly,
            5 => Error::Unsupported,
            6 => Error::TooBig,
            _ => return None,
        })
    }

    /// A short description for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Error::Io => "I/O error",
            Error::OutOfRange => "sector out of range",
            Error::BadRequest => "bad request",
            Error::ReadOnly => "read-only device",
            Error::Unsupported => "unsupported operation",
            Error::TooBig => "request too big",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// An operation byte that is not one of [`Op`] (or a reply where a request was expected, or
    /// the reverse).
    BadOp(u8),
    /// A status byte that is not 0 or an [`Error`] code, or non-zero in a request.
    BadStatus(u8),
    /// A field that must be 0 is not, or a count that must be 1 ..= [`MAX_SECTORS`] is not.
    BadField,
    /// More than [`MAX_DATA`] bytes of data.
    TooBig,
    /// The message length is not the header plus the data its count announces.
    BadLength,
}

impl DecodeError {
    /// The [`Error`] a server answers with for this decoding failure.
    pub fn reply_error(self) -> Error {
        match self {
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
    /// The data is empty, longer than [`MAX_DATA`], or not a whole number of sectors; or a read
    /// count is 0 or above [`MAX_SECTORS`].
    BadData,
}

/// A request from a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// Read `count` sectors starting at `sector`.
    Read {
        /// Echoed in the reply.
        id: u32,
        /// First sector.
        sector: u64,
        /// Sectors, 1 ..= [`MAX_SECTORS`].
        count: u32,
    },
    /// Write `data` (a whole number of sectors, at most [`MAX_DATA`] bytes) at `sector`.
    Write {
        /// Echoed in the reply.
        id: u32,
        /// First sector.
        sector: u64,
        /// The bytes to write.
        data: &'a [u8],
    },
    /// Make every write completed so far durable.
    Flush {
        /// Echoed in the reply.
        id: u32,
    },
    /// Ask for the device's size in sectors.
    Capacity {
        /// Echoed in the reply.
        id: u32,
    },
}

/// A reply from the driver; `id` is the request's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The data read, or why not.
    Read {
        /// The request's id.
        id: u32,
        /// The sectors read (a whole number of sectors).
        result: Result<&'a [u8], Error>,
    },
    /// Whether the write completed.
    Write {
        /// The request's id.
        id: u32,
        /// Ok once the device has the data.
        result: Result<(), Error>,
    },
    /// Whether the flush completed.
    Flush {
        /// The request's id.
        id: u32,
        /// Ok once earlier writes are durable.
        result: Result<(), Error>,
    },
    /// The device's size.
    Capacity {
        /// The request's id.
        id: u32,
        /// Sectors on the device.
        result: Result<u64, Error>,
    },
    /// A request the driver could not decode far enough to know its operation.
    Rejected {
        /// The request's id if its header had one, else 0.
        id: u32,
        /// Why.
        error: Error,
    },
}

/// The header fields, as on the wire.
#[derive(Clone, Copy)]
struct Header {
    op: u8,
    status: u8,
    id: u32,
    sector: u64,
    count: u32,
}

impl Header {
    fn write(&self, out: &mut [u8], data_len: usize) -> Result<usize, EncodeError> {
        let len = HEADER_LEN + data_len;
        if out.len() < len {
            return Err(EncodeError::BufferTooSmall);
        }
        out[0] = MAGIC;
        out[1] = VERSION;
        out[2] = self.op;
        out[3] = self.status;
        out[4..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..16].copy_from_slice(&self.sector.to_le_bytes());
        out[16..20].copy_from_slice(&self.count.to_le_bytes());
        out[20..24].copy_from_slice(&[0; 4]);
        Ok(len)
    }

    /// Parses and checks the fixed part; `data` is what follows the header.
    fn read(bytes: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::Truncated);
        }
        if bytes[0] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if bytes[1] != VERSION {
            return Err(DecodeError::BadVersion(bytes[1]));
        }
        if bytes[20..24] != [0; 4] {
            return Err(DecodeError::BadField);
        }
        let h = Header {
            op: bytes[2],
            status: bytes[3],
            id: le32(&bytes[4..8]),
            sector: le64(&bytes[8..16]),
            count: le32(&bytes[16..20]),
        };
        Ok((h, &bytes[HEADER_LEN..]))
    }
}

fn le32(b: &[u8]) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(b);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(b);
    u64::from_le_bytes(a)
}

/// Checks that `data` can travel in one message and returns its sector count.
fn data_sectors(data: &[u8]) -> Result<u32, EncodeError> {
    if data.is_empty() || data.len() > MAX_DATA || !data.len().is_multiple_of(SECTOR_SIZE) {
        return Err(EncodeError::BadData);
    }
    Ok((data.len() / SECTOR_SIZE) as u32)
}

/// Checks that `count` is in 1 ..= [`MAX_SECTORS`].
fn check_count(count: u32) -> Result<(), DecodeError> {
    match count {
        0 => Err(DecodeError::BadField),
        c if c > MAX_SECTORS => Err(DecodeError::TooBig),
        _ => Ok(()),
    }
}

/// Checks that `data` is exactly `count` sectors, with `count` in 1 ..= [`MAX_SECTORS`].
fn check_data(count: u32, data: &[u8]) -> Result<(), DecodeError> {
    check_count(count)?;
    if data.len() != count as usize * SECTOR_SIZE {
        return Err(DecodeError::BadLength);
    }
    Ok(())
}

/// Checks a header-only message: no data, and the listed fields zero.
fn check_empty(data: &[u8], zero_fields: &[u64]) -> Result<(), DecodeError> {
    if !data.is_empty() {
        return Err(DecodeError::BadLength);
    }
    if zero_fields.iter().any(|&f| f != 0) {
        return Err(DecodeError::BadField);
    }
    Ok(())
}

impl<'a> Request<'a> {
    /// The request's id.
    pub fn id(&self) -> u32 {
        match *self {
            Request::Read { id, .. }
            | Request::Write { id, .. }
            | Request::Flush { id }
            | Request::Capacity { id } => id,
        }
    }

    /// The operation.
    pub fn op(&self) -> Op {
        match self {
            Request::Read { .. } => Op::Read,
            Request::Write { .. } => Op::Write,
            Request::Flush { .. } => Op::Flush,
            Request::Capacity { .. } => Op::Capacity,
        }
    }

    /// Writes the message into `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let (sector, count, data): (u64, u32, &[u8]) = match *self {
            Request::Read { sector, count, .. } => {
                if count == 0 || count > MAX_SECTORS {
                    return Err(EncodeError::BadData);
                }
                (sector, count, &[])
            }
            Request::Write { sector, data, .. } => (sector, data_sectors(data)?, data),
            Request::Flush { .. } | Request::Capacity { .. } => (0, 0, &[]),
        };
        let h = Header {
            op: self.op() as u8,
            status: 0,
            id: self.id(),
            sector,
            count,
        };
        let len = h.write(out, data.len())?;
        out[HEADER_LEN..len].copy_from_slice(data);
        Ok(len)
    }

    /// Writes the header of a write request whose `len` data bytes the caller has already
    /// placed at `out[HEADER_LEN..]` (so a client can send data on from where it lies);
    /// returns the message length.
    pub fn encode_write_in_place(
        out: &mut [u8],
        id: u32,
        sector: u64,
        len: usize,
    ) -> Result<usize, EncodeError> {
        if len == 0 || len > MAX_DATA || !len.is_multiple_of(SECTOR_SIZE) {
            return Err(EncodeError::BadData);
        }
        let h = Header {
            op: Op::Write as u8,
            status: 0,
            id,
            sector,
            count: (len / SECTOR_SIZE) as u32,
        };
        h.write(out, len)
    }

    /// Parses a request; the data of a write borrows from `bytes`.
    pub fn decode(bytes: &'a [u8]) -> Result<Request<'a>, DecodeError> {
        let (h, data) = Header::read(bytes)?;
        let op = Op::from_u8(h.op).ok_or(DecodeError::BadOp(h.op))?;
        if h.status != 0 {
            return Err(DecodeError::BadStatus(h.status));
        }
        let id = h.id;
        Ok(match op {
            Op::Read => {
                check_count(h.count)?;
                check_empty(data, &[])?;
                Request::Read {
                    id,
                    sector: h.sector,
                    count: h.count,
                }
            }
            Op::Write => {
                check_data(h.count, data)?;
                Request::Write {
                    id,
                    sector: h.sector,
                    data,
                }
            }
            Op::Flush => {
                check_empty(data, &[h.sector, h.count.into()])?;
                Request::Flush { id }
            }
            Op::Capacity => {
                check_empty(data, &[h.sector, h.count.into()])?;
                Request::Capacity { id }
            }
        })
    }
}

/// Reads the id of a message whose header is intact enough to hold one, so that a server can
/// answer a request it cannot decode with [`Reply::Rejected`] under the client's id.
pub fn peek_id(bytes: &[u8]) -> Option<u32> {
    if bytes.len() >= HEADER_LEN && bytes[0] == MAGIC {
        Some(le32(&bytes[4..8]))
    } else {
        None
    }
}

fn status_of<T>(r: &Result<T, Error>) -> u8 {
    match r {
        Ok(_) => 0,
        Err(e) => *e as u8,
    }
}

impl<'a> Reply<'a> {
    /// The id of the request this answers.
    pub fn id(&self) -> u32 {
        match *self {
            Reply::Read { id, .. }
            | Reply::Write { id, .. }
            | Reply::Flush { id, .. }
            | Reply::Capacity { id, .. }
            | Reply::Rejected { id, .. } => id,
        }
    }

    /// The operation answered; `None` for [`Reply::Rejected`].
    pub fn op(&self) -> Option<Op> {
        Some(match self {
            Reply::Read { .. } => Op::Read,
            Reply::Write { .. } => Op::Write,
            Reply::Flush { .. } => Op::Flush,
            Reply::Capacity { .. } => Op::Capacity,
            Reply::Rejected { .. } => return None,
        })
    }

    /// The reply to `req` that carries `error`.
    pub fn error_for(req: &Request<'_>, error: Error) -> Reply<'static> {
        Reply::error_for_op(req.op(), req.id(), error)
    }

    /// Writes the message into `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let id = self.id();
        let (op, status, sector, data): (u8, u8, u64, &[u8]) = match *self {
            Reply::Read { result, .. } => (
                Op::Read as u8 | REPLY_BIT,
                status_of(&result),
                0,
                result.unwrap_or(&[]),
            ),
            Reply::Write { result, .. } => {
                (Op::Write as u8 | REPLY_BIT, status_of(&result), 0, &[])
            }
            Reply::Flush { result, .. } => {
                (Op::Flush as u8 | REPLY_BIT, status_of(&result), 0, &[])
            }
            Reply::Capacity { result, .. } => (
                Op::Capacity as u8 | REPLY_BIT,
                status_of(&result),
                result.unwrap_or(0),
                &[],
            ),
            Reply::Rejected { error, .. } => (OP_REJECTED, error as u8, 0, &[]),
        };
        let count = if let Reply::Read { result: Ok(d), .. } = self {
            data_sectors(d)?
        } else {
            0
        };
        let h = Header {
            op,
            status,
            id,
            sector,
            count,
        };
        let len = h.write(out, data.len())?;
        out[HEADER_LEN..len].copy_from_slice(data);
        Ok(len)
    }

    /// Writes the header of a successful read reply whose `len` data bytes the caller has
    /// already placed at `out[HEADER_LEN..]` (so a driver can read the device straight into its
    /// send buffer); returns the message length.
    pub fn encode_read_in_place(out: &mut [u8], id: u32, len: usize) -> Result<usize, EncodeError> {
        if len == 0 || len > MAX_DATA || !len.is_multiple_of(SECTOR_SIZE) {
            return Err(EncodeError::BadData);
        }
        let h = Header {
            op: Op::Read as u8 | REPLY_BIT,
            status: 0,
            id,
            sector: 0,
            count: (len / SECTOR_SIZE) as u32,
        };
        h.write(out, len)
    }

    /// Parses a reply; the data of a read borrows from `bytes`.
    pub fn decode(bytes: &'a [u8]) -> Result<Reply<'a>, DecodeError> {
        let (h, data) = Header::read(bytes)?;
        let id = h.id;
        let error = match h.status {
            0 => None,
            s => Some(Error::from_u8(s).ok_or(DecodeError::BadStatus(s))?),
        };
        if h.op == OP_REJECTED {
            check_empty(data, &[h.sector, h.count.into()])?;
            return match error {
                Some(error) => Ok(Reply::Rejected { id, error }),
                None => Err(DecodeError::BadStatus(0)),
            };
        }
        if h.op & REPLY_BIT == 0 {
            return Err(DecodeError::BadOp(h.op));
        }
        let op = Op::from_u8(h.op & !REPLY_BIT).ok_or(DecodeError::BadOp(h.op))?;
        // A failed reply carries nothing but its status.
        if let Some(e) = error {
            check_empty(data, &[h.sector, h.count.into()])?;
            return Ok(Reply::error_for_op(op, id, e));
        }
        Ok(match op {
            Op::Read => {
                check_data(h.count, data)?;
                if h.sector != 0 {
                    return Err(DecodeError::BadField);
                }
                Reply::Read {
                    id,
                    result: Ok(data),
                }
            }
            Op::Write => {
                check_empty(data, &[h.sector, h.count.into()])?;
                Reply::Write { id, result: Ok(()) }
            }
            Op::Flush => {
                check_empty(data, &[h.sector, h.count.into()])?;
                Reply::Flush { id, result: Ok(()) }
            }
            Op::Capacity => {
                check_empty(data, &[h.count.into()])?;
                Reply::Capacity {
                    id,
                    result: Ok(h.sector),
                }
            }
        })
    }

    fn error_for_op(op: Op, id: u32, error: Error) -> Reply<'static> {
        match op {
            Op::Read => Reply::Read {
                id,
                result: Err(error),
            },
            Op::Write => Reply::Write {
                id,
                result: Err(error),
            },
            Op::Flush => Reply::Flush {
                id,
                result: Err(error),
            },
            Op::Capacity => Reply::Capacity {
                id,
                result: Err(error),
            },
        }
    }
}
