//! The errors every moxie system call can return, by name.
//!
//! A system call returns a status in `rax` (0 for success, otherwise an [`Error`] code) and a
//! value in `rdx`. The codes are stable: they cross the user/kernel boundary and appear in images.

/// A system-call error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Error {
    /// The handle names no object: never issued, closed, or given away.
    InvalidHandle = 1,
    /// The handle names an object of another type than the call needs.
    WrongType = 2,
    /// The handle lacks a right the call needs.
    NoRights = 3,
    /// The peer's buffer has no room; the message was not sent (nothing blocked).
    Full = 4,
    /// The peer endpoint is closed.
    Closed = 5,
    /// The peer process is suspended; its sends still succeed into the buffer.
    PeerSuspended = 6,
    /// The deadline passed.
    Timeout = 7,
    /// A pointer or range is null, in the kernel half, unmapped, read-only where a write was
    /// needed, or overflows.
    BadAddress = 8,
    /// A size exceeds its limit (message bytes, handles per message, path length, ...).
    TooBig = 9,
    /// A named thing (module, file, symbol) does not exist.
    NotFound = 10,
    /// A quota or resource limit is exhausted; the call was rolled back.
    Overloaded = 11,
    /// The request is invalid for the object's state or its arguments are malformed.
    Failed = 12,
    /// No memory for the request; the call was rolled back.
    NoMemory = 13,
    /// There is nothing to receive right now (non-blocking receive).
    Empty = 14,
    /// The system-call number is not known.
    BadSyscall = 15,
    /// Stored data (a suspended-process image) is damaged, of another version, or names a
    /// module that changed; the core's log names the defect.
    Corrupt = 16,
    /// A request to a device or to the root filesystem failed, or there is no root filesystem.
    Io = 17,
}

impl Error {
    /// Every error, in code order.
    pub const ALL: [Error; 17] = [
        Error::InvalidHandle,
        Error::WrongType,
        Error::NoRights,
        Error::Full,
        Error::Closed,
        Error::PeerSuspended,
        Error::Timeout,
        Error::BadAddress,
        Error::TooBig,
        Error::NotFound,
        Error::Overloaded,
        Error::Failed,
        Error::NoMemory,
        Error::Empty,
        Error::BadSyscall,
        Error::Corrupt,
        Error::Io,
    ];

    /// The error with this code, if any.
    pub fn from_code(code: u64) -> Option<Error> {
        Error::ALL.iter().copied().find(|e| *e as u64 == code)
    }

    /// A short description for logs and shells.
    pub const fn as_str(self) -> &'static str {
        match self {
            Error::InvalidHandle => "invalid handle",
            Error::WrongType => "wrong object type",
            Error::NoRights => "missing rights",
            Error::Full => "peer buffer full",
            Error::Closed => "closed",
            Error::PeerSuspended => "peer suspended",
            Error::Timeout => "timed out",
            Error::BadAddress => "bad address",
            Error::TooBig => "too big",
            Error::NotFound => "not found",
            Error::Overloaded => "overloaded",
            Error::Failed => "failed",
            Error::NoMemory => "out of memory",
            Error::Empty => "nothing to receive",
            Error::BadSyscall => "unknown system call",
            Error::Corrupt => "corrupt or incompatible image",
            Error::Io => "input/output error",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_nonzero() {
        for e in Error::ALL {
            assert_ne!(e as u64, 0);
            assert_eq!(Error::from_code(e as u64), Some(e));
        }
        assert_eq!(Error::from_code(0), None);
        assert_eq!(Error::from_code(999), None);
    }
}
