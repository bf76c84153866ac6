//! The writer: [`ImageBuilder`] lays out the sections of one process or a process tree, writes
//! them with their CRCs into a caller's buffer ([`ImageBuilder::write`], no allocation) or a new
//! vector ([`ImageBuilder::build`], which also parses the result, so it never returns an image
//! the parser would refuse). It borrows everything it writes: page contents, message payloads,
//! names; the kernel hands it views of the suspended process and copies nothing twice.
use crate::bytes::{align_up, idx, put};
use crate::error::ImageError;
use crate::records::{
    HandleRecord, ModuleRef, ObjectRef, Page, ProcessRecord, Receiver, ThreadRecord, encode_handle,
    encode_object, encode_thread, parent_code,
};
use crate::{
    COUNT_LEN, ENTRY_LEN, FLAG_TREE, HANDLE_LEN, HEADER_LEN, Image, MAGIC, MESSAGE_LEN, MODULE_LEN,
    OBJECT_LEN, OPTIONAL_KIND, PAGE, PROCESS_LEN, SECTION_ALIGN, SectionKind, THREAD_LEN, VERSION,
};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// A message to write into a MESSAGES section.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// The channel reference id of the endpoint it waits in.
    pub channel: u64,
    /// That endpoint's side.
    pub side: u8,
    /// That endpoint's place in the process.
    pub receiver: Receiver,
    /// Its payload.
    pub bytes: &'a [u8],
    /// The handles it carries.
    pub handles: &'a [ObjectRef],
}

/// Everything about one process, as the builder writes it. Records must already be in the
/// order the format requires (threads by tid, handles by index, pages by address, messages
/// grouped by receiver); [`ImageBuilder::build`] refuses an image that breaks a rule.
#[derive(Clone, Copy, Debug)]
pub struct ProcessParts<'a> {
    /// The PROCESS record.
    pub record: ProcessRecord<'a>,
    /// The MODULE reference.
    pub module: ModuleRef<'a>,
    /// The threads (at least one).
    pub threads: &'a [ThreadRecord],
    /// The handle table.
    pub handles: &'a [HandleRecord],
    /// Messages queued for its endpoints (no MESSAGES section when empty).
    pub messages: &'a [Message<'a>],
    /// Mapped arena pages (no ARENA section when empty).
    pub arena: &'a [Page<'a>],
    /// Mapped stack pages (no STACKS section when empty).
    pub stacks: &'a [Page<'a>],
    /// The module's writable pages: `.data`, `.bss`, relocated tables (no DATA section when
    /// empty).
    pub data: &'a [Page<'a>],
}

/// Why an image could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// A length or count does not fit its field.
    TooLarge {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// An optional section's kind lacks the optional bit, or repeats one of the same process.
    OptionalKind {
        /// The kind.
        kind: u16,
    },
    /// No process was added.
    Empty,
    /// The output buffer is shorter than the image.
    BufferTooSmall {
        /// Bytes needed.
        need: u64,
        /// Bytes given.
        have: u64,
    },
    /// The written image breaks a rule of the format (see the error).
    Invalid(ImageError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BuildError::TooLarge { field, value } => {
                write!(f, "{field} ({value}) does not fit its field")
            }
            BuildError::OptionalKind { kind } => write!(
                f,
                "optional section kind {kind:#06x} lacks bit 15 or is repeated"
            ),
            BuildError::Empty => write!(f, "an image needs at least one process"),
            BuildError::BufferTooSmall { need, have } => {
                write!(f, "the image takes {need} bytes, the buffer has {have}")
            }
            BuildError::Invalid(e) => write!(f, "the image would be refused: {e}"),
        }
    }
}

impl core::error::Error for BuildError {}

/// An optional section the builder carries through untouched.
#[derive(Clone, Copy, Debug)]
struct Extra<'a> {
    process: u16,
    kind: u16,
    bytes: &'a [u8],
}

/// Writes an image of one process or of a process tree.
#[derive(Clone, Debug, Default)]
pub struct ImageBuilder<'a> {
    tree: bool,
    processes: Vec<ProcessParts<'a>>,
    extras: Vec<Extra<'a>>,
}

/// One section as laid out: its table entry's kind and process, and what writes its bytes.
#[derive(Clone, Copy)]
enum Body<'a> {
    Process(&'a ProcessRecord<'a>),
    Module(&'a ModuleRef<'a>),
    Threads(&'a [ThreadRecord]),
    Handles(&'a [HandleRecord]),
    Messages(&'a [Message<'a>]),
    Pages(&'a [Page<'a>]),
    Raw(&'a [u8]),
}

fn too_large(field: &'static str, value: usize) -> BuildError {
    BuildError::TooLarge {
        field,
        value: value as u64,
    }
}

fn fits_u16(field: &'static str, v: usize) -> Result<u16, BuildError> {
    u16::try_from(v).map_err(|_| too_large(field, v))
}

fn fits_u32(field: &'static str, v: usize) -> Result<u32, BuildError> {
    u32::try_from(v).map_err(|_| too_large(field, v))
}

fn overflow() -> BuildError {
    BuildError::TooLarge {
        field: "image length",
        value: u64::MAX,
    }
}

/// `a + b` for sizes, as a build error on overflow.
fn add(a: u64, b: u64) -> Result<u64, BuildError> {
    a.checked_add(b).ok_or_else(overflow)
}

fn mul(a: u64, b: u64) -> Result<u64, BuildError> {
    a.checked_mul(b).ok_or_else(overflow)
}

impl<'a> Body<'a> {
    fn kind(&self, fallback: u16) -> u16 {
        match self {
            Body::Process(_) => SectionKind::Process as u16,
            Body::Module(_) => SectionKind::Module as u16,
            Body::Threads(_) => SectionKind::Threads as u16,
            Body::Handles(_) => SectionKind::Handles as u16,
            Body::Messages(_) => SectionKind::Messages as u16,
            Body::Pages(_) | Body::Raw(_) => fallback,
        }
    }

    /// Its length in bytes.
    fn len(&self) -> Result<u64, BuildError> {
        let n = |x: usize| x as u64;
        Ok(match *self {
            Body::Process(r) => add(n(PROCESS_LEN), n(r.name.len()))?,
            Body::Module(m) => add(n(MODULE_LEN), n(m.path.len()))?,
            Body::Threads(t) => add(n(COUNT_LEN), mul(n(t.len()), n(THREAD_LEN))?)?,
            Body::Handles(h) => add(n(COUNT_LEN), mul(n(h.len()), n(HANDLE_LEN))?)?,
            Body::Messages(ms) => {
                let mut len = add(n(COUNT_LEN), mul(n(ms.len()), n(MESSAGE_LEN))?)?;
                for m in ms {
                    len = add(len, message_data_len(m)?)?;
                }
                len
            }
            Body::Pages(p) => add(n(COUNT_LEN), mul(n(p.len()), n(PAGE).saturating_add(8))?)?,
            Body::Raw(b) => n(b.len()),
        })
    }

    /// Writes its bytes into `out` (exactly its length, zeroed beforehand except for a page
    /// body, which writes every byte after its count header).
    fn write(&self, out: &mut [u8]) -> Result<(), BuildError> {
        let short = BuildError::BufferTooSmall {
            need: self.len()?,
            have: out.len() as u64,
        };
        let ok = match *self {
            Body::Process(r) => {
                let name_len = fits_u16("process name length", r.name.len())?;
                [
                    put(out, 0, &r.pid.to_le_bytes()),
                    put(out, 8, &r.parent_pid.to_le_bytes()),
                    put(out, 16, &parent_code(r.parent).to_le_bytes()),
                    put(out, 18, &name_len.to_le_bytes()),
                    put(out, 20, &r.thread_limit.to_le_bytes()),
                    put(out, 24, &r.arena_base.to_le_bytes()),
                    put(out, 32, &r.arena_ceiling.to_le_bytes()),
                    put(out, 40, &r.stack_low.to_le_bytes()),
                    put(out, 48, &r.stack_high.to_le_bytes()),
                    put(out, 56, &r.priority.to_le_bytes()),
                    put(out, 64, &r.core.to_le_bytes()),
                    put(out, 68, &r.kernel_stack_pages.to_le_bytes()),
                    put(out, 72, &r.cpu_ns.to_le_bytes()),
                    put(out, PROCESS_LEN, r.name.as_bytes()),
                ]
                .iter()
                .all(|&b| b)
            }
            Body::Module(m) => {
                let path_len = fits_u16("module path length", m.path.len())?;
                put(out, 0, &m.load_base.to_le_bytes())
                    && put(out, 8, &m.hash)
                    && put(out, 40, &path_len.to_le_bytes())
                    && put(out, MODULE_LEN, m.path.as_bytes())
            }
            Body::Threads(ts) => {
                let mut ok = put(out, 0, &fits_u32("thread count", ts.len())?.to_le_bytes());
                for (i, t) in ts.iter().enumerate() {
                    let at = record_at(i, THREAD_LEN)?;
                    ok &= put(out, at, &encode_thread(t));
                }
                ok
            }
            Body::Handles(hs) => {
                let mut ok = put(out, 0, &fits_u32("handle count", hs.len())?.to_le_bytes());
                for (i, h) in hs.iter().enumerate() {
                    let at = record_at(i, HANDLE_LEN)?;
                    ok &= put(out, at, &encode_handle(h));
                }
                ok
            }
            Body::Messages(ms) => write_messages(ms, out)?,
            Body::Pages(ps) => {
                let mut ok = put(out, 0, &(ps.len() as u64).to_le_bytes());
                let data = record_at(ps.len(), 8)?;
                for (i, p) in ps.iter().enumerate() {
                    ok &= put(out, record_at(i, 8)?, &p.va.to_le_bytes());
                    let at = i
                        .checked_mul(PAGE)
                        .and_then(|o| o.checked_add(data))
                        .ok_or_else(overflow)?;
                    ok &= put(out, at, p.bytes);
                }
                ok
            }
            Body::Raw(b) => put(out, 0, b),
        };
        if ok { Ok(()) } else { Err(short) }
    }
}

/// Offset of record `i` of `size` bytes after a count header.
fn record_at(i: usize, size: usize) -> Result<usize, BuildError> {
    i.checked_mul(size)
        .and_then(|o| o.checked_add(COUNT_LEN))
        .ok_or_else(overflow)
}

/// Bytes a message's data takes: its carried handles, then its payload padded to 8.
fn message_data_len(m: &Message<'_>) -> Result<u64, BuildError> {
    let handles = mul(m.handles.len() as u64, OBJECT_LEN as u64)?;
    let bytes = align_up(m.bytes.len() as u64, 8).ok_or_else(overflow)?;
    add(handles, bytes)
}

fn write_messages(ms: &[Message<'_>], out: &mut [u8]) -> Result<bool, BuildError> {
    let mut ok = put(out, 0, &fits_u32("message count", ms.len())?.to_le_bytes());
    let mut data = record_at(ms.len(), MESSAGE_LEN)?;
    for (i, m) in ms.iter().enumerate() {
        let rec = record_at(i, MESSAGE_LEN)?;
        let carried = u8::try_from(m.handles.len())
            .map_err(|_| too_large("carried handles", m.handles.len()))?;
        let len = fits_u32("message length", m.bytes.len())?;
        let (kind, slot, handle, message) = match m.receiver {
            Receiver::Handle { index } => (2u8, 0u8, index, 0u32),
            Receiver::Carried { message, slot } => (3, slot, 0, message),
        };
        let fields: [(usize, &[u8]); 9] = [
            (0, &m.channel.to_le_bytes()),
            (8, &[m.side]),
            (9, &[carried]),
            (10, &[kind]),
            (11, &[slot]),
            (12, &len.to_le_bytes()),
            (16, &handle.to_le_bytes()),
            (20, &message.to_le_bytes()),
            (24, &(data as u64).to_le_bytes()),
        ];
        for (at, v) in fields {
            ok &= put(out, rec.checked_add(at).ok_or_else(overflow)?, v);
        }
        let mut at = data;
        for h in m.handles {
            ok &= put(out, at, &encode_object(h));
            at = at.checked_add(OBJECT_LEN).ok_or_else(overflow)?;
        }
        ok &= put(out, at, m.bytes);
        data = data
            .checked_add(idx(message_data_len(m)?).ok_or_else(overflow)?)
            .ok_or_else(overflow)?;
    }
    Ok(ok)
}

impl<'a> ImageBuilder<'a> {
    /// A builder for a single-process image.
    pub fn new() -> ImageBuilder<'a> {
        ImageBuilder::default()
    }

    /// A builder for a process tree: add the root first, then each child after its parent.
    pub fn tree() -> ImageBuilder<'a> {
        ImageBuilder {
            tree: true,
            ..ImageBuilder::default()
        }
    }

    /// Adds a process; returns its index.
    pub fn add(&mut self, parts: ProcessParts<'a>) -> Result<u16, BuildError> {
        let index = fits_u16("process count", self.processes.len())?;
        if index == crate::NO_PROCESS {
            return Err(too_large("process count", self.processes.len()));
        }
        self.processes.push(parts);
        Ok(index)
    }

    /// Adds an optional section (a kind with bit 15 set) to process `process`: readers that
    /// do not know the kind skip it.
    pub fn add_optional(
        &mut self,
        process: u16,
        kind: u16,
        bytes: &'a [u8],
    ) -> Result<(), BuildError> {
        if kind & OPTIONAL_KIND == 0
            || self
                .extras
                .iter()
                .any(|e| e.process == process && e.kind == kind)
        {
            return Err(BuildError::OptionalKind { kind });
        }
        self.extras.push(Extra {
            process,
            kind,
            bytes,
        });
        self.extras.sort_by_key(|e| (e.process, e.kind));
        Ok(())
    }

    /// The sections in table order: (kind, process, body).
    fn layout(&self) -> Vec<(u16, u16, Body<'_>)> {
        let mut out = Vec::new();
        for (i, p) in self.processes.iter().enumerate() {
            let process = i as u16;
            out.push((0, process, Body::Process(&p.record)));
            out.push((0, process, Body::Module(&p.module)));
            out.push((0, process, Body::Threads(p.threads)));
            out.push((0, process, Body::Handles(p.handles)));
            if !p.messages.is_empty() {
                out.push((0, process, Body::Messages(p.messages)));
            }
            if !p.arena.is_empty() {
                out.push((SectionKind::Arena as u16, process, Body::Pages(p.arena)));
            }
            if !p.stacks.is_empty() {
                out.push((SectionKind::Stacks as u16, process, Body::Pages(p.stacks)));
            }
            if !p.data.is_empty() {
                out.push((SectionKind::Data as u16, process, Body::Pages(p.data)));
            }
            for e in self.extras.iter().filter(|e| e.process == process) {
                out.push((e.kind, process, Body::Raw(e.bytes)));
            }
        }
        // Optional sections of processes that do not exist stay in, for the parser to refuse.
        let count = self.processes.len();
        for e in self
            .extras
            .iter()
            .filter(|e| usize::from(e.process) >= count)
        {
            out.push((e.kind, e.process, Body::Raw(e.bytes)));
        }
        out
    }

    /// The image's length in bytes.
    pub fn len(&self) -> Result<u64, BuildError> {
        let sections = self.layout();
        let mut end = add(
            HEADER_LEN as u64,
            mul(sections.len() as u64, ENTRY_LEN as u64)?,
        )?;
        for (_, _, body) in &sections {
            end = align_up(add(end, body.len()?)?, SECTION_ALIGN).ok_or_else(overflow)?;
        }
        Ok(end)
    }

    /// Whether no process was added.
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
    }

    /// Writes the image into `out`, which must hold at least [`ImageBuilder::len`] bytes;
    /// returns the length written. Allocates only the section list; checks nothing beyond the
    /// field widths (see [`ImageBuilder::build`]).
    pub fn write(&self, out: &mut [u8]) -> Result<usize, BuildError> {
        self.write_with(out, crate::checksum::crc32c)
    }

    /// [`ImageBuilder::write`] with another implementation of the checksum (a faster one of
    /// the same function).
    pub fn write_with(&self, out: &mut [u8], crc: crate::Crc32c) -> Result<usize, BuildError> {
        if self.processes.is_empty() {
            return Err(BuildError::Empty);
        }
        let total = self.len()?;
        let total_usize = idx(total).ok_or_else(overflow)?;
        let have = out.len() as u64;
        let out = out
            .get_mut(..total_usize)
            .ok_or(BuildError::BufferTooSmall { need: total, have })?;
        let sections = self.layout();
        let count = fits_u32("section count", sections.len())?;
        let table_end = record_offset(sections.len())?;
        let mut offset = table_end;
        for (i, (kind, process, body)) in sections.iter().enumerate() {
            let len = idx(body.len()?).ok_or_else(overflow)?;
            let end = offset.checked_add(len).ok_or_else(overflow)?;
            let dst = out.get_mut(offset..end).ok_or_else(overflow)?;
            // Zeroed first where the body leaves bytes alone (reserved fields, padding); page
            // bodies are written whole after their count (the bulk of an image: not zeroed
            // twice).
            match body {
                Body::Pages(_) => dst.iter_mut().take(COUNT_LEN).for_each(|b| *b = 0),
                _ => dst.fill(0),
            }
            body.write(dst)?;
            let sum = crc(dst);
            let entry = record_offset(i)?;
            let mut e = [0u8; ENTRY_LEN];
            put(&mut e, 0, &body.kind(*kind).to_le_bytes());
            put(&mut e, 2, &process.to_le_bytes());
            put(&mut e, 8, &(offset as u64).to_le_bytes());
            put(&mut e, 16, &(len as u64).to_le_bytes());
            put(&mut e, 24, &sum.to_le_bytes());
            if !put(out, entry, &e) {
                return Err(overflow());
            }
            offset = idx(align_up(end as u64, SECTION_ALIGN).ok_or_else(overflow)?)
                .ok_or_else(overflow)?;
            // The padding up to the next section.
            out.get_mut(end..offset.min(total_usize))
                .ok_or_else(overflow)?
                .fill(0);
        }
        let processes = fits_u16("process count", self.processes.len())?;
        let table_crc = crc(out.get(HEADER_LEN..table_end).unwrap_or(&[]));
        let flags = if self.tree { FLAG_TREE } else { 0 };
        let mut h = [0u8; HEADER_LEN];
        put(&mut h, 0, &MAGIC);
        put(&mut h, 8, &VERSION.to_le_bytes());
        put(&mut h, 10, &flags.to_le_bytes());
        put(&mut h, 12, &count.to_le_bytes());
        put(&mut h, 16, &total.to_le_bytes());
        put(&mut h, 24, &processes.to_le_bytes());
        put(&mut h, 28, &table_crc.to_le_bytes());
        let header_crc = crc(h.get(..60).unwrap_or(&[]));
        put(&mut h, 60, &header_crc.to_le_bytes());
        put(out, 0, &h);
        Ok(total_usize)
    }

    /// Writes the image into a new vector and parses it: an image the parser would refuse is
    /// [`BuildError::Invalid`], naming the rule it breaks.
    pub fn build(&self) -> Result<Vec<u8>, BuildError> {
        let len = idx(self.len()?).ok_or_else(overflow)?;
        let mut out = vec![0u8; len];
        self.write(&mut out)?;
        Image::parse(&out).map_err(BuildError::Invalid)?;
        Ok(out)
    }
}

/// Offset of table entry `i` (and, for `i` = the count, the end of the table).
fn record_offset(i: usize) -> Result<usize, BuildError> {
    i.checked_mul(ENTRY_LEN)
        .and_then(|o| o.checked_add(HEADER_LEN))
        .ok_or_else(overflow)
}
