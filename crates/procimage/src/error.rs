//! Why an image was refused: [`ImageError`] names the first defect the parser found, with the
//! section, process, record and values involved, and its `Display` says it in one line (the
//! kernel logs it, `cargo xtask image verify` prints it). Every type here is `Copy` and holds no
//! reference into the image.
use crate::{KindName, ObjectKind, SectionKind, VERSION};
use core::fmt;

/// A place in an image where an object lives: a handle slot, or a handle a queued message
/// carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Handle slot `index` of process `process`.
    Handle {
        /// Process index.
        process: u16,
        /// Handle slot index.
        index: u16,
    },
    /// Carried handle `slot` of message `message` in process `process`'s MESSAGES section.
    Carried {
        /// Process index.
        process: u16,
        /// Message index.
        message: u32,
        /// Position among the message's carried handles.
        slot: u8,
    },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Place::Handle { process, index } => write!(f, "handle {index} of process {process}"),
            Place::Carried {
                process,
                message,
                slot,
            } => write!(
                f,
                "carried handle {slot} of message {message} of process {process}"
            ),
        }
    }
}

/// What is wrong with an object reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectDefect {
    /// The record is cut short (cannot happen once lengths are checked; kept for totality).
    Short,
    /// An object kind this version does not know.
    Kind(u16),
    /// A reserved byte is not zero.
    Reserved,
    /// Rights bits this version does not know.
    Rights(u32),
    /// A side other than 0 or 1 (or not 0 for an object other than an endpoint).
    Side(u8),
    /// A system or console object with an id other than 0.
    Id(u64),
    /// A link kind this version does not know.
    LinkKind(u8),
    /// A link kind this object kind cannot have.
    LinkForKind(u8),
    /// Link fields that must be 0 for this link kind are not.
    LinkFields,
    /// A link to a process index the image does not have.
    LinkProcess(u16),
    /// A carried-handle slot of 8 or more.
    CarriedSlot(u16),
    /// A live thread object naming a tid that has no record in the THREADS section of the
    /// process holding the handle.
    NoThread(u64),
    /// An object that never travels (a thread or a thread spawner) carried by a message.
    Travels(ObjectKind),
}

impl fmt::Display for ObjectDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ObjectDefect::Short => write!(f, "object reference cut short"),
            ObjectDefect::Kind(k) => write!(f, "unknown object kind {k}"),
            ObjectDefect::Reserved => write!(f, "reserved bytes of the object reference not zero"),
            ObjectDefect::Rights(r) => write!(f, "unknown rights bits in {r:#x}"),
            ObjectDefect::Side(s) => write!(f, "side {s} is not valid for this object"),
            ObjectDefect::Id(id) => write!(f, "id {id:#x} must be 0 for this object"),
            ObjectDefect::LinkKind(l) => write!(f, "unknown link kind {l}"),
            ObjectDefect::LinkForKind(l) => {
                write!(f, "link kind {l} is not valid for this object kind")
            }
            ObjectDefect::LinkFields => write!(f, "link fields not zero for its link kind"),
            ObjectDefect::LinkProcess(p) => write!(f, "link to process {p}, which the image lacks"),
            ObjectDefect::CarriedSlot(s) => write!(f, "carried-handle slot {s} (0 to 7 allowed)"),
            ObjectDefect::NoThread(tid) => {
                write!(f, "live thread {tid}, which the process has no record of")
            }
            ObjectDefect::Travels(k) => {
                write!(f, "a {} object cannot travel in a message", k.name())
            }
        }
    }
}

/// What is wrong with a link between two places of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkDefect {
    /// Nothing is at the place named.
    Missing,
    /// The object there is not a channel endpoint.
    NotEndpoint,
    /// The endpoint there has another channel reference id, or the same side.
    Channel,
    /// The endpoint there does not name this place as its peer.
    NotBack,
}

impl fmt::Display for LinkDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkDefect::Missing => "does not exist",
            LinkDefect::NotEndpoint => "is not a channel endpoint",
            LinkDefect::Channel => "is not the other side of the same channel",
            LinkDefect::NotBack => "does not name it as its peer",
        })
    }
}

/// What is wrong inside one section's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentError {
    /// Shorter than the section's fixed part.
    TooShort {
        /// Section length.
        length: u64,
        /// Bytes the fixed part takes.
        need: u64,
    },
    /// The length is not what its counts and sizes add up to.
    Length {
        /// Section length.
        length: u64,
        /// What the contents take.
        expected: u64,
    },
    /// A reserved byte (offset within the section) is not zero.
    Reserved {
        /// Offset within the section.
        at: u64,
    },
    /// A text field is not UTF-8.
    Text {
        /// Which field.
        field: &'static str,
    },
    /// A text field is empty where it may not be, or longer than allowed.
    TextLength {
        /// Which field.
        field: &'static str,
        /// Its length.
        length: u64,
    },
    /// An address that must be page-aligned is not.
    Unaligned {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A memory region that is inverted, overflows or leaves user space.
    Region {
        /// Which region.
        field: &'static str,
        /// Its start.
        start: u64,
        /// Its end (as stored or computed, saturated).
        end: u64,
    },
    /// A parent index that is not an earlier process of the image.
    Parent {
        /// The parent index stored.
        parent: u16,
    },
    /// The root (process 0) names a parent.
    RootParent {
        /// The parent index stored.
        parent: u16,
    },
    /// A thread limit outside 1 to `abi::thread::THREAD_LIMIT`.
    ThreadLimit {
        /// The limit stored.
        limit: u32,
    },
    /// A kernel-stack budget outside `abi::thread::KERNEL_STACK_PAGES` to
    /// `abi::thread::KERNEL_STACK_BUDGET` pages.
    KernelStackPages {
        /// The budget stored, in pages.
        pages: u32,
    },
    /// A THREADS section with no thread.
    NoThreads,
    /// Thread ids not in strictly ascending order (a duplicate or a misordered one).
    ThreadOrder {
        /// The tid out of order.
        tid: u64,
    },
    /// A thread state this version does not know.
    ThreadState {
        /// The thread.
        tid: u64,
        /// The state stored.
        state: u8,
    },
    /// Handle indexes not in strictly ascending order.
    HandleOrder {
        /// The index out of order.
        index: u16,
    },
    /// A handle index at or above `abi::limits::MAX_HANDLES`.
    HandleIndex {
        /// The index.
        index: u16,
    },
    /// An object reference is malformed.
    Object {
        /// Where it is.
        at: Place,
        /// What is wrong.
        defect: ObjectDefect,
    },
    /// A page address that is not page-aligned.
    PageUnaligned {
        /// The address.
        va: u64,
    },
    /// Page addresses not in strictly ascending order.
    PageOrder {
        /// The address out of order.
        va: u64,
    },
    /// A page outside the region its section covers.
    PageOutside {
        /// The address.
        va: u64,
        /// The region's start.
        start: u64,
        /// The region's end.
        end: u64,
    },
    /// A message larger than `abi::limits::MAX_MESSAGE_BYTES`.
    MessageBytes {
        /// Message index.
        message: u32,
        /// Its length.
        bytes: u32,
    },
    /// A message carrying more than `abi::limits::MAX_MESSAGE_HANDLES` handles.
    MessageHandles {
        /// Message index.
        message: u32,
        /// Its count.
        count: u8,
    },
    /// A message's data is not where the messages before it end.
    DataOffset {
        /// Message index.
        message: u32,
        /// The offset stored.
        offset: u64,
        /// Where it must be.
        expected: u64,
    },
    /// Messages not grouped by receiver in the documented order.
    MessageOrder {
        /// The message out of order.
        message: u32,
    },
    /// A receiver kind this version does not know.
    ReceiverKind {
        /// Message index.
        message: u32,
        /// The kind stored.
        kind: u8,
    },
    /// A message's receiver is missing or is not the endpoint the message names.
    Receiver {
        /// Message index.
        message: u32,
        /// The receiver's place.
        at: Place,
        /// What is wrong.
        defect: LinkDefect,
    },
}

impl fmt::Display for ContentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ContentError::TooShort { length, need } => {
                write!(f, "{length} bytes, shorter than its {need}-byte fixed part")
            }
            ContentError::Length { length, expected } => {
                write!(f, "{length} bytes, but its contents take {expected}")
            }
            ContentError::Reserved { at } => write!(f, "reserved byte at {at} is not zero"),
            ContentError::Text { field } => write!(f, "{field} is not UTF-8"),
            ContentError::TextLength { field, length } => write!(
                f,
                "{field} is {length} bytes (1 to {} allowed)",
                crate::MAX_NAME
            ),
            ContentError::Unaligned { field, value } => {
                write!(f, "{field} {value:#x} is not page-aligned")
            }
            ContentError::Region { field, start, end } => write!(
                f,
                "{field} {start:#x}..{end:#x} is not a region of user space"
            ),
            ContentError::Parent { parent } => write!(
                f,
                "parent index {parent} is not an earlier process of the image"
            ),
            ContentError::RootParent { parent } => {
                write!(f, "the root process names parent index {parent}")
            }
            ContentError::ThreadLimit { limit } => write!(
                f,
                "thread limit {limit} (1 to {} allowed)",
                abi::thread::THREAD_LIMIT
            ),
            ContentError::KernelStackPages { pages } => write!(
                f,
                "kernel-stack budget of {pages} pages ({} to {} allowed)",
                abi::thread::KERNEL_STACK_PAGES,
                abi::thread::KERNEL_STACK_BUDGET
            ),
            ContentError::NoThreads => write!(f, "no thread"),
            ContentError::ThreadOrder { tid } => {
                write!(
                    f,
                    "thread {tid} is not after the one before it (ascending tids)"
                )
            }
            ContentError::ThreadState { tid, state } => {
                write!(f, "thread {tid} has unknown state {state}")
            }
            ContentError::HandleOrder { index } => write!(
                f,
                "handle {index} is not after the one before it (ascending indexes)"
            ),
            ContentError::HandleIndex { index } => write!(
                f,
                "handle index {index} is beyond the table ({} slots)",
                abi::limits::MAX_HANDLES
            ),
            ContentError::Object { at, defect } => write!(f, "{at}: {defect}"),
            ContentError::PageUnaligned { va } => write!(f, "page {va:#x} is not page-aligned"),
            ContentError::PageOrder { va } => write!(
                f,
                "page {va:#x} is not after the one before it (ascending addresses)"
            ),
            ContentError::PageOutside { va, start, end } => {
                write!(f, "page {va:#x} is outside {start:#x}..{end:#x}")
            }
            ContentError::MessageBytes { message, bytes } => write!(
                f,
                "message {message} has {bytes} bytes (at most {})",
                abi::limits::MAX_MESSAGE_BYTES
            ),
            ContentError::MessageHandles { message, count } => write!(
                f,
                "message {message} carries {count} handles (at most {})",
                abi::limits::MAX_MESSAGE_HANDLES
            ),
            ContentError::DataOffset {
                message,
                offset,
                expected,
            } => write!(
                f,
                "message {message}'s data is at {offset}, expected {expected}"
            ),
            ContentError::MessageOrder { message } => write!(
                f,
                "message {message} is not grouped with its receiver in receiver order"
            ),
            ContentError::ReceiverKind { message, kind } => {
                write!(f, "message {message} has unknown receiver kind {kind}")
            }
            ContentError::Receiver {
                message,
                at,
                defect,
            } => write!(f, "message {message}'s receiver, {at}, {defect}"),
        }
    }
}

/// What is wrong with one section (its table entry, its placement, its CRC or its contents).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defect {
    /// A reserved field of its table entry is not zero.
    Reserved,
    /// A kind this version does not know and that is not optional.
    UnknownKind,
    /// A process index the header does not count.
    ProcessOutOfRange {
        /// Processes the header counts.
        processes: u16,
    },
    /// Its entry is not after the previous one in (process, kind) order.
    OutOfOrder,
    /// A second section of the same kind for the same process.
    Duplicate,
    /// It does not start where the previous section ends (rounded up to 16).
    Misplaced {
        /// Offset stored.
        offset: u64,
        /// Where it must start.
        expected: u64,
    },
    /// It runs past the end of the image.
    OutOfBounds {
        /// Offset stored.
        offset: u64,
        /// Length stored.
        length: u64,
        /// The image's length.
        total: u64,
    },
    /// A padding byte after it is not zero.
    PaddingNotZero {
        /// Offset of the byte in the image.
        at: u64,
    },
    /// Its bytes do not match the CRC in its entry.
    Crc {
        /// From the table.
        stored: u32,
        /// Computed.
        computed: u32,
    },
    /// Its contents are malformed.
    Content(ContentError),
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Defect::Reserved => write!(f, "reserved field of its table entry is not zero"),
            Defect::UnknownKind => write!(
                f,
                "unknown section kind that a reader must understand (this build reads version {VERSION})"
            ),
            Defect::ProcessOutOfRange { processes } => {
                write!(f, "process index beyond the {processes} the header counts")
            }
            Defect::OutOfOrder => write!(
                f,
                "table entry out of order (entries are sorted by process, then kind)"
            ),
            Defect::Duplicate => write!(f, "a second section of this kind for this process"),
            Defect::Misplaced { offset, expected } => {
                write!(f, "starts at {offset}, expected {expected}")
            }
            Defect::OutOfBounds {
                offset,
                length,
                total,
            } => write!(
                f,
                "{length} bytes at {offset} run past the image's end at {total}"
            ),
            Defect::PaddingNotZero { at } => write!(f, "padding byte at {at} is not zero"),
            Defect::Crc { stored, computed } => write!(
                f,
                "CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            Defect::Content(c) => c.fmt(f),
        }
    }
}

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Shorter than the header.
    TooShort {
        /// Bytes present.
        have: u64,
    },
    /// The magic is not `MOXIEIMG`.
    BadMagic {
        /// The first eight bytes.
        found: [u8; 8],
    },
    /// A format version this build does not read.
    UnsupportedVersion {
        /// The version stored.
        found: u16,
    },
    /// The header's bytes do not match its CRC.
    HeaderCrc {
        /// From the header.
        stored: u32,
        /// Computed.
        computed: u32,
    },
    /// Flag bits this version does not know.
    UnknownFlags {
        /// The flags stored.
        flags: u16,
    },
    /// A reserved header byte is not zero.
    HeaderReserved {
        /// Its offset.
        at: u8,
    },
    /// The header's total length is smaller than the header and its section table.
    TotalTooSmall {
        /// The total stored.
        total: u64,
        /// Header plus section table.
        need: u64,
    },
    /// The buffer is shorter than the header's total length.
    Truncated {
        /// Bytes the header says the image has.
        total: u64,
        /// Bytes present.
        have: u64,
    },
    /// The buffer is longer than the header's total length.
    TrailingBytes {
        /// Bytes the header says the image has.
        total: u64,
        /// Bytes present.
        have: u64,
    },
    /// The header counts no process.
    NoProcesses,
    /// Without the tree flag an image holds exactly one process.
    NotATree {
        /// Processes the header counts.
        processes: u16,
    },
    /// The section table's bytes do not match the CRC in the header.
    TableCrc {
        /// From the header.
        stored: u32,
        /// Computed.
        computed: u32,
    },
    /// One section is malformed.
    Section {
        /// Its position in the table.
        index: u32,
        /// Its kind.
        kind: u16,
        /// Its process index.
        process: u16,
        /// What is wrong.
        defect: Defect,
    },
    /// The image does not end where its last section (rounded up to 16) ends.
    LayoutEnd {
        /// Where the sections end.
        end: u64,
        /// The header's total length.
        total: u64,
    },
    /// A process lacks a section every process must have.
    MissingSection {
        /// Process index.
        process: u16,
        /// The missing kind.
        kind: SectionKind,
    },
    /// A link between two places of the image is broken.
    Link {
        /// The place whose link is broken.
        from: Place,
        /// The place it names.
        to: Place,
        /// What is wrong there.
        defect: LinkDefect,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ImageError::TooShort { have } => write!(
                f,
                "truncated: file has {have} bytes, the header alone is {}",
                crate::HEADER_LEN
            ),
            ImageError::BadMagic { found } => write!(
                f,
                "bad magic {:?} (not a moxie process image)",
                found.escape_ascii()
            ),
            ImageError::UnsupportedVersion { found } => {
                write!(
                    f,
                    "unsupported version {found} (this build reads {VERSION})"
                )
            }
            ImageError::HeaderCrc { stored, computed } => write!(
                f,
                "header CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            ImageError::UnknownFlags { flags } => write!(
                f,
                "unknown header flags {flags:#06x} (this build knows {:#06x})",
                crate::KNOWN_FLAGS
            ),
            ImageError::HeaderReserved { at } => {
                write!(f, "reserved header byte at {at} is not zero")
            }
            ImageError::TotalTooSmall { total, need } => write!(
                f,
                "header says {total} bytes, less than its header and section table ({need})"
            ),
            ImageError::Truncated { total, have } => {
                write!(f, "truncated: header says {total} bytes, file has {have}")
            }
            ImageError::TrailingBytes { total, have } => write!(
                f,
                "trailing bytes: header says {total} bytes, file has {have}"
            ),
            ImageError::NoProcesses => write!(f, "the header counts no process"),
            ImageError::NotATree { processes } => write!(
                f,
                "{processes} processes without the tree flag (a single-process image has 1)"
            ),
            ImageError::TableCrc { stored, computed } => write!(
                f,
                "section table CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            ImageError::Section {
                index,
                kind,
                process,
                defect,
            } => write!(
                f,
                "section {index} ({} of process {process}): {defect}",
                KindName(kind)
            ),
            ImageError::LayoutEnd { end, total } => write!(
                f,
                "sections end at {end} (rounded up to 16), but the header says {total} bytes"
            ),
            ImageError::MissingSection { process, kind } => {
                write!(f, "process {process} has no {} section", kind.name())
            }
            ImageError::Link { from, to, defect } => {
                write!(f, "{from}: its peer, {to}, {defect}")
            }
        }
    }
}

impl core::error::Error for ImageError {}
