//! The suspended-process image: what `/sys/suspended/<id>.img` holds, written by
//! [`ImageBuilder`] and read by [`Image::parse`], the one implementation the kernel and the host
//! tool (`cargo xtask image`) share. The format is specified byte by byte in
//! `docs/image-format.md`; the constants below are its numbers.
//!
//! An image is a 64-byte header, a table of 32-byte section entries and the sections, all
//! little-endian. Each section belongs to one process of the image (index 0 is the root of a
//! tree) and has a kind: the process record, its module reference, its threads, its handle
//! table, the messages queued for its endpoints, its arena pages, its stack pages and the
//! writable pages of its module (statics: `.data`, `.bss`).
//!
//! What the types guarantee:
//! - [`Image::parse`] accepts an image only when every check of the specification passed: magic,
//!   version, both header CRCs, the total length against the buffer, the placement of every
//!   section, every section's CRC, the contents of every section and the links between them
//!   (channel peers, message receivers, process references, live threads' handles, the tree's
//!   parent indexes). An
//!   accepted image can be restored without another check of its structure; a refused one is
//!   named by a precise [`ImageError`].
//! - The parser works on a borrowed `&[u8]`, never allocates, never panics, never indexes out of
//!   bounds and never overflows on any input (clippy's `indexing_slicing`,
//!   `arithmetic_side_effects`, `unwrap_used` and `panic` lints are denied in this crate, and a
//!   million mutated images run through it in the tests).
//! - [`ImageBuilder::build`] parses what it wrote before returning it, so it never hands out an
//!   image the parser refuses.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

extern crate alloc;

mod build;
mod bytes;
pub mod checksum;
mod error;
mod parse;
mod records;
pub mod sample;

pub use build::{BuildError, ImageBuilder, Message, ProcessParts};
pub use checksum::Crc32c;
pub use error::{ContentError, Defect, ImageError, LinkDefect, ObjectDefect, Place};
pub use parse::{
    CarriedHandles, Handles, Header, Image, Layout, MessageView, Messages, Pages, Process, Section,
    Sections, Threads,
};
pub use records::{
    HandleRecord, Link, ModuleRef, ObjectKind, ObjectRef, Page, ProcessRecord, Receiver, Registers,
    ThreadRecord, ThreadState,
};

/// The magic at offset 0.
pub const MAGIC: [u8; 8] = *b"MOXIEIMG";
/// The only format version this code reads and writes.
pub const VERSION: u16 = 1;
/// Header flag: the image holds a process tree (root at index 0) rather than one process.
pub const FLAG_TREE: u16 = 1 << 0;
/// Every flag this version knows; any other bit is refused.
pub const KNOWN_FLAGS: u16 = FLAG_TREE;
/// Size of the header in bytes.
pub const HEADER_LEN: usize = 64;
/// Size of one section-table entry in bytes.
pub const ENTRY_LEN: usize = 32;
/// Sections start at multiples of this (from the start of the image); the gaps are zero.
pub const SECTION_ALIGN: u64 = 16;
/// A "no process" index (a root's parent).
pub const NO_PROCESS: u16 = 0xffff;
/// Section kinds with this bit set are optional: a reader that does not know one checks its
/// bounds, its CRC and its process index, then skips it. Any other unknown kind is refused.
pub const OPTIONAL_KIND: u16 = 0x8000;
/// Bytes in one page of memory.
pub const PAGE: usize = 4096;
/// Bytes in an FXSAVE area.
pub const FXSAVE_LEN: usize = 512;
/// Longest process name and module path, in bytes.
pub const MAX_NAME: usize = abi::syscall::MAX_PATH;
/// Size of one thread record.
pub const THREAD_LEN: usize = 704;
/// Size of one handle record.
pub const HANDLE_LEN: usize = 40;
/// Size of one object reference (in a handle record or carried by a message).
pub const OBJECT_LEN: usize = 32;
/// Size of one message index record.
pub const MESSAGE_LEN: usize = 32;
/// Size of the fixed part of a PROCESS section (the name follows).
pub const PROCESS_LEN: usize = 80;
/// Size of the fixed part of a MODULE section (the path follows).
pub const MODULE_LEN: usize = 48;
/// Size of the count header of THREADS, HANDLES, MESSAGES, ARENA, STACKS and DATA.
pub const COUNT_LEN: usize = 16;

/// What a section holds. The numbers are the `kind` field of the section table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u16)]
pub enum SectionKind {
    /// The process record: pid, parent, name, memory regions, scheduling figures.
    Process = 1,
    /// The module the process was spawned from: path, SHA-256 of the file, load base.
    Module = 2,
    /// Every thread: registers, FXSAVE area, scheduling figures.
    Threads = 3,
    /// The handle table: per slot its index, generation and object reference.
    Handles = 4,
    /// The messages queued for the process's endpoints.
    Messages = 5,
    /// Arena pages (sparse: only the pages that were mapped).
    Arena = 6,
    /// User stack pages (sparse).
    Stacks = 7,
    /// The module's writable pages (sparse): `.data`, `.bss`, relocated tables, the statics.
    Data = 8,
}

impl SectionKind {
    /// Every kind, in table order.
    pub const ALL: [SectionKind; 8] = [
        SectionKind::Process,
        SectionKind::Module,
        SectionKind::Threads,
        SectionKind::Handles,
        SectionKind::Messages,
        SectionKind::Arena,
        SectionKind::Stacks,
        SectionKind::Data,
    ];

    /// The kind with this number, if this version knows it.
    pub const fn from_u16(v: u16) -> Option<SectionKind> {
        Some(match v {
            1 => SectionKind::Process,
            2 => SectionKind::Module,
            3 => SectionKind::Threads,
            4 => SectionKind::Handles,
            5 => SectionKind::Messages,
            6 => SectionKind::Arena,
            7 => SectionKind::Stacks,
            8 => SectionKind::Data,
            _ => return None,
        })
    }

    /// Its name in messages and in `docs/image-format.md`.
    pub const fn name(self) -> &'static str {
        match self {
            SectionKind::Process => "PROCESS",
            SectionKind::Module => "MODULE",
            SectionKind::Threads => "THREADS",
            SectionKind::Handles => "HANDLES",
            SectionKind::Messages => "MESSAGES",
            SectionKind::Arena => "ARENA",
            SectionKind::Stacks => "STACKS",
            SectionKind::Data => "DATA",
        }
    }

    /// Whether every process must have one (the others may be left out when empty).
    pub const fn required(self) -> bool {
        matches!(
            self,
            SectionKind::Process
                | SectionKind::Module
                | SectionKind::Threads
                | SectionKind::Handles
        )
    }
}

/// A section kind number as messages show it: its name, or `optional 0x8001`, or
/// `unknown 0x0009`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindName(pub u16);

impl core::fmt::Display for KindName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match SectionKind::from_u16(self.0) {
            Some(k) => f.write_str(k.name()),
            None if self.0 & OPTIONAL_KIND != 0 => write!(f, "optional {:#06x}", self.0),
            None => write!(f, "unknown {:#06x}", self.0),
        }
    }
}

/// The SHA-256 of a module file, as the MODULE section records it.
pub fn module_hash(file: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(file).into()
}
