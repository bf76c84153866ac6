//! Why a module was refused: [`LoadError`], its shell-printable [`Display`](core::fmt::Display)
//! and its mapping to the system-call [`abi::Error`].

use core::fmt;

/// The longest symbol name a [`SymbolName`] keeps, in bytes; longer names are cut (at a
/// character boundary) and marked as truncated.
pub const SYMBOL_NAME_MAX: usize = 64;

/// A symbol's name, copied out of the module so that an error outlives the file's bytes.
///
/// Names longer than [`SYMBOL_NAME_MAX`] bytes keep their first bytes (cut at a character
/// boundary) and report [`is_truncated`](SymbolName::is_truncated); `Display` then ends them
/// with `...`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SymbolName {
    bytes: [u8; SYMBOL_NAME_MAX],
    len: u8,
    truncated: bool,
}

impl SymbolName {
    /// Copies `name`, cutting it to at most [`SYMBOL_NAME_MAX`] bytes at a character boundary.
    pub fn new(name: &str) -> SymbolName {
        let mut len = name.len().min(SYMBOL_NAME_MAX);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; SYMBOL_NAME_MAX];
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        SymbolName {
            bytes,
            // `len` is at most SYMBOL_NAME_MAX (64), so it fits.
            len: len as u8,
            truncated: len < name.len(),
        }
    }

    /// The name (its first [`SYMBOL_NAME_MAX`] bytes at most).
    pub fn as_str(&self) -> &str {
        // The bytes were copied from a `&str` and cut at a character boundary, so they are
        // valid UTF-8; the fallback is never taken.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// Whether the module's name was longer than what is kept.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl fmt::Display for SymbolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SymbolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())?;
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// Why [`plan`](crate::plan), [`load`](crate::load) or [`relocate`](crate::relocate) refused a
/// module.
///
/// Addresses carried by the variants are absolute (already offset by the load base) unless the
/// variant says "link-time", which means the value as written in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoadError {
    /// The file does not start with `\x7fELF`.
    BadMagic,
    /// `EI_CLASS` is not `ELFCLASS64` (the value found).
    WrongClass(u8),
    /// `EI_DATA` is not `ELFDATA2LSB`, little endian (the value found).
    WrongEndian(u8),
    /// `e_machine` is not `EM_X86_64` (the value found).
    WrongMachine(u16),
    /// `e_type` is not `ET_DYN` (the value found): modules must be position-independent shared
    /// objects, so `ET_EXEC` is refused as well as relocatable objects and core files.
    NotPositionIndependent(u16),
    /// A structure extends past the end of the file (which one).
    Truncated(&'static str),
    /// A header field has a value this loader cannot accept (which one, and why).
    BadHeader(&'static str),
    /// The load base is not page-aligned (the base given).
    BadBase(u64),
    /// A loadable segment (link-time `p_vaddr`) reaches outside
    /// `[base, base + MODULE_MAX_SIZE)`, above `USER_END`, or overflows.
    SegmentOutOfRange(u64),
    /// Two loadable segments share a page (the first shared page's absolute address).
    SegmentsOverlap(u64),
    /// A loadable segment (link-time `p_vaddr`) is both writable and executable (W^X).
    WritableExecutable(u64),
    /// More than [`MAX_SEGMENTS`](crate::MAX_SEGMENTS) non-empty `PT_LOAD` segments.
    TooManySegments,
    /// No non-empty `PT_LOAD` segment.
    NoSegments,
    /// A program header of a type the loader does not support (`PT_TLS`, `PT_INTERP`; the type).
    UnsupportedSegment(u32),
    /// The entry point (link-time `e_entry`) is not inside an executable segment's file bytes.
    EntryOutsideCode(u64),
    /// The image buffer given to [`load`](crate::load) is smaller than the plan's span.
    ImageTooSmall {
        /// Bytes the plan needs ([`Plan::span`](crate::Plan::span)).
        needed: u64,
        /// Bytes the buffer has.
        got: u64,
    },
    /// An undefined symbol is not in the kernel export table (its name).
    UnknownSymbol(SymbolName),
    /// A relocation of a type the loader does not apply (the `R_X86_64_*` number).
    UnsupportedRelocation(u32),
    /// A relocation writes inside a writable segment, but outside the image buffer given to
    /// [`relocate`](crate::relocate) (its absolute address): the buffer is shorter than the span.
    RelocationOutsideImage(u64),
    /// A relocation writes outside every writable segment (its absolute address, wrapped if the
    /// sum overflowed).
    RelocationNotWritable(u64),
    /// The dynamic section (or a table it points at) is malformed (what is wrong).
    BadDynamic(&'static str),
}

impl LoadError {
    /// The system-call error a loader call reports for this refusal:
    /// [`abi::Error::NotFound`] for [`LoadError::UnknownSymbol`] (a named thing that does not
    /// exist), [`abi::Error::Failed`] (malformed or unacceptable module) for everything else.
    pub const fn to_abi(&self) -> abi::Error {
        match self {
            LoadError::UnknownSymbol(_) => abi::Error::NotFound,
            _ => abi::Error::Failed,
        }
    }
}

impl From<LoadError> for abi::Error {
    fn from(e: LoadError) -> abi::Error {
        e.to_abi()
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::BadMagic => f.write_str("not an ELF file (bad magic)"),
            LoadError::WrongClass(c) => write!(f, "not a 64-bit ELF file (class {c})"),
            LoadError::WrongEndian(d) => write!(f, "not a little-endian ELF file (encoding {d})"),
            LoadError::WrongMachine(m) => {
                write!(
                    f,
                    "wrong machine {m} (expected x86_64, {})",
                    elf::abi::EM_X86_64
                )
            }
            LoadError::NotPositionIndependent(t) => write!(
                f,
                "not position-independent: ELF type {t} (a module must be a shared object, type 3)"
            ),
            LoadError::Truncated(what) => write!(f, "truncated file: {what} past its end"),
            LoadError::BadHeader(what) => write!(f, "bad ELF header: {what}"),
            LoadError::BadBase(b) => write!(f, "load base {b:#x} is not page-aligned"),
            LoadError::SegmentOutOfRange(v) => {
                write!(f, "segment at {v:#x} lies outside the module range")
            }
            LoadError::SegmentsOverlap(p) => write!(f, "segments overlap in the page at {p:#x}"),
            LoadError::WritableExecutable(v) => {
                write!(f, "segment at {v:#x} is both writable and executable")
            }
            LoadError::TooManySegments => write!(
                f,
                "too many loadable segments (at most {})",
                crate::MAX_SEGMENTS
            ),
            LoadError::NoSegments => f.write_str("no loadable segment"),
            LoadError::UnsupportedSegment(t) => write!(f, "unsupported segment type {t:#x}"),
            LoadError::EntryOutsideCode(e) => {
                write!(f, "entry point {e:#x} is outside executable code")
            }
            LoadError::ImageTooSmall { needed, got } => {
                write!(f, "image buffer too small: {got} bytes, {needed} needed")
            }
            LoadError::UnknownSymbol(name) => write!(f, "unknown symbol `{name}`"),
            LoadError::UnsupportedRelocation(t) => write!(f, "unsupported relocation type {t}"),
            LoadError::RelocationOutsideImage(a) => {
                write!(f, "relocation target {a:#x} is outside the image")
            }
            LoadError::RelocationNotWritable(a) => {
                write!(f, "relocation target {a:#x} is not in a writable segment")
            }
            LoadError::BadDynamic(what) => write!(f, "bad dynamic section: {what}"),
        }
    }
}

impl core::error::Error for LoadError {}
