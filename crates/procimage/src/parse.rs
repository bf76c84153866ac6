//! The parser: [`Layout::parse`] checks the header and the section table (what a tool needs to
//! list the sections, even of an image whose sections are damaged); [`Image::parse`] adds every
//! section's CRC, the contents of every section and the links between them, in the order
//! `docs/image-format.md` gives. The views ([`Process`], [`Threads`], [`Handles`], [`Messages`],
//! [`Pages`]) decode records from the borrowed bytes on demand and never allocate; on an
//! accepted image each yields exactly the records its section holds.
use crate::bytes::{align_up, array, idx, slice, u8_at, u16_at, u32_at, u64_at, zero};
use crate::error::{ContentError, Defect, ImageError, LinkDefect, ObjectDefect, Place};
use crate::records::{
    HandleRecord, Link, MAX_CARRIED, ModuleRef, ObjectKind, ObjectRef, Page, ProcessRecord,
    Receiver, ThreadDefect, ThreadRecord, decode_object, decode_thread,
};
use crate::{
    COUNT_LEN, Crc32c, ENTRY_LEN, FLAG_TREE, HANDLE_LEN, HEADER_LEN, KNOWN_FLAGS, MAGIC, MAX_NAME,
    MESSAGE_LEN, MODULE_LEN, NO_PROCESS, OBJECT_LEN, OPTIONAL_KIND, PAGE, PROCESS_LEN,
    SECTION_ALIGN, SectionKind, THREAD_LEN, VERSION,
};
use abi::layout::{MODULE_MAX_SIZE, USER_END};

const PAGE_U64: u64 = PAGE as u64;

/// `base + i * size`, if it fits.
fn at(base: usize, i: usize, size: usize) -> Option<usize> {
    base.checked_add(i.checked_mul(size)?)
}

fn crc(b: &[u8]) -> u32 {
    crate::checksum::crc32c(b)
}

/// The header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u16,
    /// Flags ([`FLAG_TREE`]).
    pub flags: u16,
    /// Entries in the section table.
    pub sections: u32,
    /// Length of the whole image in bytes.
    pub total: u64,
    /// Processes in the image.
    pub processes: u16,
    /// CRC-32C of the section table.
    pub table_crc: u32,
    /// CRC-32C of header bytes 0..60.
    pub header_crc: u32,
}

/// One section: its table entry and its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section<'a> {
    /// Position in the table.
    pub index: u32,
    /// Kind number ([`SectionKind`] or an optional kind).
    pub kind: u16,
    /// Process index.
    pub process: u16,
    /// Offset in the image.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// CRC-32C from the table.
    pub crc: u32,
    /// Its bytes.
    pub bytes: &'a [u8],
}

impl Section<'_> {
    /// The CRC-32C of its bytes (portable code: [`crate::checksum::crc32c`]).
    pub fn computed_crc(&self) -> u32 {
        crc(self.bytes)
    }

    /// Whether its bytes match the CRC in the table.
    pub fn crc_ok(&self) -> bool {
        self.computed_crc() == self.crc
    }

    /// Its kind, if this version knows it.
    pub fn known_kind(&self) -> Option<SectionKind> {
        SectionKind::from_u16(self.kind)
    }

    fn error(&self, defect: Defect) -> ImageError {
        ImageError::Section {
            index: self.index,
            kind: self.kind,
            process: self.process,
            defect,
        }
    }

    fn content(&self, e: ContentError) -> ImageError {
        self.error(Defect::Content(e))
    }
}

/// An image whose header and section table have been checked (not the sections' CRCs or
/// contents): enough to list its sections.
#[derive(Clone, Copy, Debug)]
pub struct Layout<'a> {
    bytes: &'a [u8],
    header: Header,
}

impl<'a> Layout<'a> {
    /// Checks, in this order: the length against the header's size, the magic, the version,
    /// the header CRC, the flags and reserved header bytes, the total length against the
    /// buffer, the process count, the section table's bounds and CRC, then each table entry
    /// (reserved fields, kind, process index, order, placement, bounds, padding) and that the
    /// image ends where its last section does, and that every process has its required
    /// sections.
    pub fn parse(bytes: &'a [u8]) -> Result<Layout<'a>, ImageError> {
        Layout::parse_with(bytes, crate::checksum::crc32c)
    }

    /// [`Layout::parse`] with another implementation of the checksum.
    pub fn parse_with(bytes: &'a [u8], crc: Crc32c) -> Result<Layout<'a>, ImageError> {
        let have = bytes.len() as u64;
        let head = bytes
            .get(..HEADER_LEN)
            .ok_or(ImageError::TooShort { have })?;
        let magic = array::<8>(head, 0).ok_or(ImageError::TooShort { have })?;
        if magic != MAGIC {
            return Err(ImageError::BadMagic { found: magic });
        }
        let r16 = |at| u16_at(head, at).unwrap_or(0);
        let r32 = |at| u32_at(head, at).unwrap_or(0);
        let version = r16(8);
        if version != VERSION {
            return Err(ImageError::UnsupportedVersion { found: version });
        }
        let header_crc = r32(60);
        let computed = crc(head.get(..60).unwrap_or(&[]));
        if computed != header_crc {
            return Err(ImageError::HeaderCrc {
                stored: header_crc,
                computed,
            });
        }
        let flags = r16(10);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(ImageError::UnknownFlags { flags });
        }
        for reserved in [26..28usize, 32..60] {
            for i in reserved {
                if u8_at(head, i) != Some(0) {
                    return Err(ImageError::HeaderReserved { at: i as u8 });
                }
            }
        }
        let header = Header {
            version,
            flags,
            sections: r32(12),
            total: u64_at(head, 16).unwrap_or(0),
            processes: r16(24),
            table_crc: r32(28),
            header_crc,
        };
        let total = header.total;
        if total > have {
            return Err(ImageError::Truncated { total, have });
        }
        if total < have {
            return Err(ImageError::TrailingBytes { total, have });
        }
        // At most 2^32 entries of 32 bytes: no overflow in u64.
        let table_end = (HEADER_LEN as u64)
            .saturating_add(u64::from(header.sections).saturating_mul(ENTRY_LEN as u64));
        if total < table_end {
            return Err(ImageError::TotalTooSmall {
                total,
                need: table_end,
            });
        }
        if header.processes == 0 {
            return Err(ImageError::NoProcesses);
        }
        if flags & FLAG_TREE == 0 && header.processes != 1 {
            return Err(ImageError::NotATree {
                processes: header.processes,
            });
        }
        let table = idx(table_end)
            .and_then(|end| bytes.get(HEADER_LEN..end))
            .ok_or(ImageError::Truncated { total, have })?;
        let computed = crc(table);
        if computed != header.table_crc {
            return Err(ImageError::TableCrc {
                stored: header.table_crc,
                computed,
            });
        }
        let layout = Layout { bytes, header };
        layout.check_entries(table_end)?;
        Ok(layout)
    }

    /// The table walk of [`Layout::parse`].
    fn check_entries(&self, table_end: u64) -> Result<(), ImageError> {
        let total = self.header.total;
        let processes = self.header.processes;
        let mut expected = table_end;
        let mut prev: Option<(u16, u16)> = None;
        // Required kinds seen for the current process (bit = kind number).
        let mut seen = 0u16;
        for index in 0..self.header.sections {
            let e = self.entry(index).ok_or(ImageError::TotalTooSmall {
                total,
                need: table_end,
            })?;
            let err = |defect| ImageError::Section {
                index,
                kind: e.kind,
                process: e.process,
                defect,
            };
            if !e.reserved_zero {
                return Err(err(Defect::Reserved));
            }
            let known = SectionKind::from_u16(e.kind);
            if known.is_none() && e.kind & OPTIONAL_KIND == 0 {
                return Err(err(Defect::UnknownKind));
            }
            if e.process >= processes {
                return Err(err(Defect::ProcessOutOfRange { processes }));
            }
            let key = (e.process, e.kind);
            match prev {
                Some(p) if p == key => return Err(err(Defect::Duplicate)),
                Some(p) if p > key => return Err(err(Defect::OutOfOrder)),
                _ => {}
            }
            let next_process = match prev {
                None => Some(0),
                Some((p, _)) if p != e.process => {
                    missing_required(p, seen)?;
                    seen = 0;
                    p.checked_add(1)
                }
                Some(_) => None,
            };
            if let Some(want) = next_process
                && want != e.process
            {
                return Err(ImageError::MissingSection {
                    process: want,
                    kind: SectionKind::Process,
                });
            }
            prev = Some(key);
            if let Some(k) = known.filter(|k| k.required()) {
                seen |= 1 << (k as u16);
            }
            if e.offset != expected {
                return Err(err(Defect::Misplaced {
                    offset: e.offset,
                    expected,
                }));
            }
            let end = e
                .offset
                .checked_add(e.length)
                .filter(|&end| end <= total)
                .ok_or(err(Defect::OutOfBounds {
                    offset: e.offset,
                    length: e.length,
                    total,
                }))?;
            let padded = align_up(end, SECTION_ALIGN).unwrap_or(u64::MAX);
            let mut at = end;
            while at < padded.min(total) {
                if idx(at).and_then(|i| u8_at(self.bytes, i)) != Some(0) {
                    return Err(err(Defect::PaddingNotZero { at }));
                }
                at = at.saturating_add(1);
            }
            expected = padded;
        }
        match prev {
            None => {
                return Err(ImageError::MissingSection {
                    process: 0,
                    kind: SectionKind::Process,
                });
            }
            Some((p, _)) => {
                missing_required(p, seen)?;
                if p.checked_add(1) != Some(processes) {
                    return Err(ImageError::MissingSection {
                        process: p.saturating_add(1),
                        kind: SectionKind::Process,
                    });
                }
            }
        }
        if expected != total {
            return Err(ImageError::LayoutEnd {
                end: expected,
                total,
            });
        }
        Ok(())
    }

    /// The raw fields of table entry `index`.
    fn entry(&self, index: u32) -> Option<Entry> {
        let base = at(HEADER_LEN, index as usize, ENTRY_LEN)?;
        let e = slice(self.bytes, base, ENTRY_LEN)?;
        Some(Entry {
            kind: u16_at(e, 0)?,
            process: u16_at(e, 2)?,
            offset: u64_at(e, 8)?,
            length: u64_at(e, 16)?,
            crc: u32_at(e, 24)?,
            reserved_zero: zero(e, 4, 4) && zero(e, 28, 4),
        })
    }

    /// The header.
    pub fn header(&self) -> Header {
        self.header
    }

    /// The whole image.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Section `index` of the table.
    pub fn section(&self, index: u32) -> Option<Section<'a>> {
        if index >= self.header.sections {
            return None;
        }
        let e = self.entry(index)?;
        let bytes = slice(self.bytes, idx(e.offset)?, idx(e.length)?)?;
        Some(Section {
            index,
            kind: e.kind,
            process: e.process,
            offset: e.offset,
            length: e.length,
            crc: e.crc,
            bytes,
        })
    }

    /// Every section, in table (and file) order.
    pub fn sections(&self) -> Sections<'a> {
        Sections {
            layout: *self,
            next: 0,
        }
    }

    /// The section of `kind` for `process` (a binary search: the table is sorted).
    pub fn find(&self, process: u16, kind: SectionKind) -> Option<Section<'a>> {
        let want = (process, kind as u16);
        let (mut lo, mut hi) = (0u32, self.header.sections);
        while lo < hi {
            let mid = lo.wrapping_add(hi.wrapping_sub(lo) / 2);
            let e = self.entry(mid)?;
            match (e.process, e.kind).cmp(&want) {
                core::cmp::Ordering::Less => lo = mid.wrapping_add(1),
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return self.section(mid),
            }
        }
        None
    }
}

/// The first required kind missing from `seen` for `process`.
fn missing_required(process: u16, seen: u16) -> Result<(), ImageError> {
    for k in SectionKind::ALL {
        if k.required() && seen & (1 << (k as u16)) == 0 {
            return Err(ImageError::MissingSection { process, kind: k });
        }
    }
    Ok(())
}

struct Entry {
    kind: u16,
    process: u16,
    offset: u64,
    length: u64,
    crc: u32,
    reserved_zero: bool,
}

/// The sections of a [`Layout`], in table order.
#[derive(Clone, Debug)]
pub struct Sections<'a> {
    layout: Layout<'a>,
    next: u32,
}

impl<'a> Iterator for Sections<'a> {
    type Item = Section<'a>;

    fn next(&mut self) -> Option<Section<'a>> {
        let s = self.layout.section(self.next)?;
        self.next = self.next.saturating_add(1);
        Some(s)
    }
}

/// A section's count header: the count, and whether the reserved bytes after it are zero.
fn count_header(s: &Section<'_>, wide: bool) -> Result<u64, ImageError> {
    let b = s.bytes;
    if b.len() < COUNT_LEN {
        return Err(s.content(ContentError::TooShort {
            length: s.length,
            need: COUNT_LEN as u64,
        }));
    }
    let (count, reserved_at) = if wide {
        (u64_at(b, 0), 8)
    } else {
        (u32_at(b, 0).map(u64::from), 4)
    };
    let reserved_len = COUNT_LEN.saturating_sub(reserved_at);
    if !zero(b, reserved_at, reserved_len) {
        return Err(s.content(ContentError::Reserved {
            at: reserved_at as u64,
        }));
    }
    count.ok_or(s.content(ContentError::TooShort {
        length: s.length,
        need: COUNT_LEN as u64,
    }))
}

/// Checks that a section of `count` records of `size` bytes after its count header has exactly
/// that length; returns the count as an index.
fn exact_records(s: &Section<'_>, count: u64, size: u64) -> Result<usize, ImageError> {
    let expected = count
        .checked_mul(size)
        .and_then(|n| n.checked_add(COUNT_LEN as u64));
    match expected {
        Some(e) if e == s.length => idx(count).ok_or(s.content(ContentError::Length {
            length: s.length,
            expected: e,
        })),
        _ => Err(s.content(ContentError::Length {
            length: s.length,
            expected: expected.unwrap_or(u64::MAX),
        })),
    }
}

/// A text field of `len` bytes at `at`: UTF-8 and 1 to [`MAX_NAME`] bytes.
fn text<'a>(
    s: &Section<'a>,
    at_: usize,
    len: u16,
    field: &'static str,
) -> Result<&'a str, ImageError> {
    if len == 0 || usize::from(len) > MAX_NAME {
        return Err(s.content(ContentError::TextLength {
            field,
            length: u64::from(len),
        }));
    }
    let raw = slice(s.bytes, at_, usize::from(len)).ok_or(s.content(ContentError::TooShort {
        length: s.length,
        need: (at_ as u64).saturating_add(u64::from(len)),
    }))?;
    core::str::from_utf8(raw).map_err(|_| s.content(ContentError::Text { field }))
}

/// Checks a fixed part plus a variable tail whose length is the u16 at `len_at`.
fn fixed_plus_tail(s: &Section<'_>, fixed: usize, len_at: usize) -> Result<u16, ImageError> {
    if s.bytes.len() < fixed {
        return Err(s.content(ContentError::TooShort {
            length: s.length,
            need: fixed as u64,
        }));
    }
    let tail = u16_at(s.bytes, len_at).unwrap_or(0);
    let expected = (fixed as u64).saturating_add(u64::from(tail));
    if expected != s.length {
        return Err(s.content(ContentError::Length {
            length: s.length,
            expected,
        }));
    }
    Ok(tail)
}

fn reserved(s: &Section<'_>, at_: usize, len: usize) -> Result<(), ImageError> {
    if zero(s.bytes, at_, len) {
        Ok(())
    } else {
        Err(s.content(ContentError::Reserved { at: at_ as u64 }))
    }
}

/// A page-aligned region `start..start + len` (or `start..end`) inside user space.
fn region(
    s: &Section<'_>,
    field: &'static str,
    start: u64,
    end: Option<u64>,
) -> Result<(), ImageError> {
    if !start.is_multiple_of(PAGE_U64) {
        return Err(s.content(ContentError::Unaligned {
            field,
            value: start,
        }));
    }
    match end {
        Some(e) if !e.is_multiple_of(PAGE_U64) => {
            Err(s.content(ContentError::Unaligned { field, value: e }))
        }
        Some(e) if start <= e && e <= USER_END => Ok(()),
        e => Err(s.content(ContentError::Region {
            field,
            start,
            end: e.unwrap_or(u64::MAX),
        })),
    }
}

/// Decodes and checks a PROCESS section of process `index`.
fn process_record<'a>(s: &Section<'a>) -> Result<ProcessRecord<'a>, ImageError> {
    let name_len = fixed_plus_tail(s, PROCESS_LEN, 18)?;
    let b = s.bytes;
    let q = |at_| u64_at(b, at_).unwrap_or(0);
    let parent_raw = u16_at(b, 16).unwrap_or(NO_PROCESS);
    let parent = if s.process == 0 {
        if parent_raw != NO_PROCESS {
            return Err(s.content(ContentError::RootParent { parent: parent_raw }));
        }
        None
    } else {
        if parent_raw >= s.process {
            return Err(s.content(ContentError::Parent { parent: parent_raw }));
        }
        Some(parent_raw)
    };
    let rec = ProcessRecord {
        pid: q(0),
        parent_pid: q(8),
        parent,
        name: text(s, PROCESS_LEN, name_len, "name")?,
        thread_limit: u32_at(b, 20).unwrap_or(0),
        arena_base: q(24),
        arena_ceiling: q(32),
        stack_low: q(40),
        stack_high: q(48),
        priority: q(56),
        core: u32_at(b, 64).unwrap_or(0),
        kernel_stack_pages: u32_at(b, 68).unwrap_or(0),
        cpu_ns: q(72),
    };
    if !rec.arena_ceiling.is_multiple_of(PAGE_U64) {
        return Err(s.content(ContentError::Unaligned {
            field: "arena ceiling",
            value: rec.arena_ceiling,
        }));
    }
    region(
        s,
        "arena",
        rec.arena_base,
        rec.arena_base.checked_add(rec.arena_ceiling),
    )?;
    region(s, "stack slots", rec.stack_low, Some(rec.stack_high))?;
    // The spawn limits: a resume restores them, so they must be ones a spawn could set.
    if !(1..=abi::thread::THREAD_LIMIT).contains(&u64::from(rec.thread_limit)) {
        return Err(s.content(ContentError::ThreadLimit {
            limit: rec.thread_limit,
        }));
    }
    let stack_pages = abi::thread::KERNEL_STACK_PAGES..=abi::thread::KERNEL_STACK_BUDGET;
    if !stack_pages.contains(&u64::from(rec.kernel_stack_pages)) {
        return Err(s.content(ContentError::KernelStackPages {
            pages: rec.kernel_stack_pages,
        }));
    }
    Ok(rec)
}

/// Decodes and checks a MODULE section.
fn module_ref<'a>(s: &Section<'a>) -> Result<ModuleRef<'a>, ImageError> {
    let path_len = fixed_plus_tail(s, MODULE_LEN, 40)?;
    reserved(s, 42, 6)?;
    let load_base = u64_at(s.bytes, 0).unwrap_or(0);
    region(s, "load base", load_base, Some(load_base))?;
    Ok(ModuleRef {
        path: text(s, MODULE_LEN, path_len, "path")?,
        hash: array::<32>(s.bytes, 8).unwrap_or([0; 32]),
        load_base,
    })
}

/// Checks a THREADS section; returns its thread count.
fn check_threads(s: &Section<'_>) -> Result<usize, ImageError> {
    let count = count_header(s, false)?;
    let n = exact_records(s, count, THREAD_LEN as u64)?;
    if n == 0 {
        return Err(s.content(ContentError::NoThreads));
    }
    let mut prev: Option<u64> = None;
    for i in 0..n {
        let base = at(COUNT_LEN, i, THREAD_LEN).unwrap_or(usize::MAX);
        let t = slice(s.bytes, base, THREAD_LEN)
            .ok_or(ThreadDefect::Short)
            .and_then(decode_thread);
        let t = match t {
            Ok(t) => t,
            Err(ThreadDefect::State(state)) => {
                let tid = u64_at(s.bytes, base).unwrap_or(0);
                return Err(s.content(ContentError::ThreadState { tid, state }));
            }
            Err(ThreadDefect::Reserved(off)) => {
                return Err(s.content(ContentError::Reserved {
                    at: base.saturating_add(off) as u64,
                }));
            }
            Err(ThreadDefect::Short) => {
                return Err(s.content(ContentError::Length {
                    length: s.length,
                    expected: u64::MAX,
                }));
            }
        };
        if prev.is_some_and(|p| p >= t.tid) {
            return Err(s.content(ContentError::ThreadOrder { tid: t.tid }));
        }
        prev = Some(t.tid);
    }
    Ok(n)
}

/// Whether a checked THREADS section holds a record with `tid` (binary search: tids ascend).
fn thread_in(threads: &[u8], tid: u64) -> bool {
    let n = count_of(threads, false);
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo.wrapping_add(hi.wrapping_sub(lo) / 2);
        let Some(this) = at(COUNT_LEN, mid, THREAD_LEN).and_then(|a| u64_at(threads, a)) else {
            return false;
        };
        match this.cmp(&tid) {
            core::cmp::Ordering::Less => lo = mid.wrapping_add(1),
            core::cmp::Ordering::Greater => hi = mid,
            core::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// Checks a HANDLES section of an image with `processes` processes, whose process's checked
/// THREADS section is `threads`; returns its count.
fn check_handles(s: &Section<'_>, processes: u16, threads: &[u8]) -> Result<usize, ImageError> {
    let count = count_header(s, false)?;
    let n = exact_records(s, count, HANDLE_LEN as u64)?;
    let mut prev: Option<u16> = None;
    for i in 0..n {
        let base = at(COUNT_LEN, i, HANDLE_LEN).unwrap_or(usize::MAX);
        let index = u16_at(s.bytes, base).unwrap_or(u16::MAX);
        if usize::from(index) >= abi::limits::MAX_HANDLES {
            return Err(s.content(ContentError::HandleIndex { index }));
        }
        if prev.is_some_and(|p| p >= index) {
            return Err(s.content(ContentError::HandleOrder { index }));
        }
        prev = Some(index);
        reserved(s, base.saturating_add(4), 4)?;
        let obj = slice(s.bytes, base.saturating_add(8), OBJECT_LEN).unwrap_or(&[]);
        let object_error = |defect| {
            s.content(ContentError::Object {
                at: Place::Handle {
                    process: s.process,
                    index,
                },
                defect,
            })
        };
        let o = decode_object(obj, processes).map_err(object_error)?;
        // A live thread is one the resume recreates from its record.
        if o.kind == ObjectKind::Thread && o.link == Link::None && !thread_in(threads, o.id) {
            return Err(object_error(ObjectDefect::NoThread(o.id)));
        }
    }
    Ok(n)
}

/// The handle record with slot `index` in a checked HANDLES section (binary search).
fn handle_in(handles: &[u8], index: u16, processes: u16) -> Option<HandleRecord> {
    let n = u32_at(handles, 0)? as usize;
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo.wrapping_add(hi.wrapping_sub(lo) / 2);
        let base = at(COUNT_LEN, mid, HANDLE_LEN)?;
        let this = u16_at(handles, base)?;
        match this.cmp(&index) {
            core::cmp::Ordering::Less => lo = mid.wrapping_add(1),
            core::cmp::Ordering::Greater => hi = mid,
            core::cmp::Ordering::Equal => return handle_at(handles, mid, processes),
        }
    }
    None
}

/// Handle record `i` of a checked HANDLES section.
fn handle_at(handles: &[u8], i: usize, processes: u16) -> Option<HandleRecord> {
    let base = at(COUNT_LEN, i, HANDLE_LEN)?;
    Some(HandleRecord {
        index: u16_at(handles, base)?,
        generation: u16_at(handles, base.checked_add(2)?)?,
        object: decode_object(slice(handles, base.checked_add(8)?, OBJECT_LEN)?, processes).ok()?,
    })
}

/// The raw index record of a message.
#[derive(Clone, Copy)]
struct RawMessage {
    channel: u64,
    side: u8,
    carried: u8,
    receiver_kind: u8,
    receiver_slot: u8,
    len: u32,
    receiver_handle: u16,
    receiver_message: u32,
    data: u64,
    reserved_zero: bool,
}

impl RawMessage {
    fn at(b: &[u8], i: usize) -> Option<RawMessage> {
        let base = at(COUNT_LEN, i, MESSAGE_LEN)?;
        let m = slice(b, base, MESSAGE_LEN)?;
        Some(RawMessage {
            channel: u64_at(m, 0)?,
            side: u8_at(m, 8)?,
            carried: u8_at(m, 9)?,
            receiver_kind: u8_at(m, 10)?,
            receiver_slot: u8_at(m, 11)?,
            len: u32_at(m, 12)?,
            receiver_handle: u16_at(m, 16)?,
            receiver_message: u32_at(m, 20)?,
            data: u64_at(m, 24)?,
            reserved_zero: zero(m, 18, 2),
        })
    }

    fn receiver(&self) -> Option<Receiver> {
        match self.receiver_kind {
            2 if self.receiver_slot == 0 && self.receiver_message == 0 => Some(Receiver::Handle {
                index: self.receiver_handle,
            }),
            3 if self.receiver_handle == 0 => Some(Receiver::Carried {
                message: self.receiver_message,
                slot: self.receiver_slot,
            }),
            _ => None,
        }
    }

    /// Bytes its data takes: carried handles, then the bytes padded to 8.
    fn data_len(&self) -> u64 {
        let handles = u64::from(self.carried).saturating_mul(OBJECT_LEN as u64);
        handles.saturating_add(align_up(u64::from(self.len), 8).unwrap_or(u64::MAX))
    }
}

/// Carried handle `slot` of message `i` of a checked MESSAGES section.
fn carried_at(messages: &[u8], i: usize, slot: u8, processes: u16) -> Option<ObjectRef> {
    let m = RawMessage::at(messages, i)?;
    if slot >= m.carried {
        return None;
    }
    let base = at(idx(m.data)?, usize::from(slot), OBJECT_LEN)?;
    decode_object(slice(messages, base, OBJECT_LEN)?, processes).ok()
}

/// Checks a MESSAGES section of process `s.process`, whose HANDLES section is `handles`.
fn check_messages(s: &Section<'_>, handles: &[u8], processes: u16) -> Result<usize, ImageError> {
    let count = count_header(s, false)?;
    let table_end = count
        .checked_mul(MESSAGE_LEN as u64)
        .and_then(|n| n.checked_add(COUNT_LEN as u64))
        .filter(|&e| e <= s.length)
        .ok_or(
            s.content(ContentError::TooShort {
                length: s.length,
                need: count
                    .saturating_mul(MESSAGE_LEN as u64)
                    .saturating_add(COUNT_LEN as u64),
            }),
        )?;
    let n = idx(count).unwrap_or(usize::MAX);
    let mut expected = table_end;
    let mut prev_key = None;
    // Pass 1: each message's own fields, data placement and carried objects.
    for i in 0..n {
        let message = i as u32;
        let m = RawMessage::at(s.bytes, i).ok_or(s.content(ContentError::TooShort {
            length: s.length,
            need: table_end,
        }))?;
        let record = at(COUNT_LEN, i, MESSAGE_LEN).unwrap_or(usize::MAX);
        if !m.reserved_zero {
            return Err(s.content(ContentError::Reserved {
                at: record.saturating_add(18) as u64,
            }));
        }
        if usize::from(m.carried) > MAX_CARRIED {
            return Err(s.content(ContentError::MessageHandles {
                message,
                count: m.carried,
            }));
        }
        if m.len as usize > abi::limits::MAX_MESSAGE_BYTES {
            return Err(s.content(ContentError::MessageBytes {
                message,
                bytes: m.len,
            }));
        }
        let receiver = m
            .receiver()
            .ok_or(s.content(if matches!(m.receiver_kind, 2 | 3) {
                ContentError::Reserved {
                    at: record.saturating_add(11) as u64,
                }
            } else {
                ContentError::ReceiverKind {
                    message,
                    kind: m.receiver_kind,
                }
            }))?;
        let key = receiver.key();
        if prev_key.is_some_and(|p| p > key) {
            return Err(s.content(ContentError::MessageOrder { message }));
        }
        prev_key = Some(key);
        if m.data != expected {
            return Err(s.content(ContentError::DataOffset {
                message,
                offset: m.data,
                expected,
            }));
        }
        let end = expected.saturating_add(m.data_len());
        if end > s.length {
            return Err(s.content(ContentError::Length {
                length: s.length,
                expected: end,
            }));
        }
        let data = idx(m.data).unwrap_or(usize::MAX);
        for slot in 0..m.carried {
            let base = at(data, usize::from(slot), OBJECT_LEN).unwrap_or(usize::MAX);
            let obj = slice(s.bytes, base, OBJECT_LEN).unwrap_or(&[]);
            let object_error = |defect| {
                s.content(ContentError::Object {
                    at: Place::Carried {
                        process: s.process,
                        message,
                        slot,
                    },
                    defect,
                })
            };
            let o = decode_object(obj, processes).map_err(object_error)?;
            // Threads and spawners belong to the process that holds them: they never travel.
            if matches!(o.kind, ObjectKind::Thread | ObjectKind::ThreadSpawner) {
                return Err(object_error(ObjectDefect::Travels(o.kind)));
            }
        }
        let bytes_end = m
            .data
            .saturating_add(u64::from(m.carried).saturating_mul(OBJECT_LEN as u64))
            .saturating_add(u64::from(m.len));
        let mut p = bytes_end;
        while p < end {
            if idx(p).and_then(|i| u8_at(s.bytes, i)) != Some(0) {
                return Err(s.content(ContentError::Reserved { at: p }));
            }
            p = p.saturating_add(1);
        }
        expected = end;
    }
    if expected != s.length {
        return Err(s.content(ContentError::Length {
            length: s.length,
            expected,
        }));
    }
    // Pass 2: every receiver is an endpoint of this process on the message's channel side.
    for i in 0..n {
        let message = i as u32;
        let Some(m) = RawMessage::at(s.bytes, i) else {
            break;
        };
        let (place, target) = match m.receiver() {
            Some(Receiver::Handle { index }) => (
                Place::Handle {
                    process: s.process,
                    index,
                },
                handle_in(handles, index, processes).map(|h| h.object),
            ),
            Some(Receiver::Carried { message: rm, slot }) => (
                Place::Carried {
                    process: s.process,
                    message: rm,
                    slot,
                },
                idx(u64::from(rm))
                    .filter(|&r| r < n)
                    .and_then(|r| carried_at(s.bytes, r, slot, processes)),
            ),
            None => continue,
        };
        let defect = match target {
            None => Some(LinkDefect::Missing),
            Some(o) if o.kind != ObjectKind::Endpoint => Some(LinkDefect::NotEndpoint),
            Some(o) if o.id != m.channel || o.side != m.side => Some(LinkDefect::Channel),
            Some(_) => None,
        };
        if let Some(defect) = defect {
            return Err(s.content(ContentError::Receiver {
                message,
                at: place,
                defect,
            }));
        }
    }
    Ok(n)
}

/// Checks an ARENA, STACKS or DATA section whose pages must lie in `start..end`; returns its
/// count.
fn check_pages(s: &Section<'_>, start: u64, end: u64) -> Result<usize, ImageError> {
    let count = count_header(s, true)?;
    let n = exact_records(s, count, (PAGE as u64).saturating_add(8))?;
    let mut prev: Option<u64> = None;
    for i in 0..n {
        let va = at(COUNT_LEN, i, 8)
            .and_then(|a| u64_at(s.bytes, a))
            .unwrap_or(u64::MAX);
        if !va.is_multiple_of(PAGE_U64) {
            return Err(s.content(ContentError::PageUnaligned { va }));
        }
        if prev.is_some_and(|p| p >= va) {
            return Err(s.content(ContentError::PageOrder { va }));
        }
        prev = Some(va);
        if va < start || va.checked_add(PAGE_U64).is_none_or(|e| e > end) {
            return Err(s.content(ContentError::PageOutside { va, start, end }));
        }
    }
    Ok(n)
}

/// A checked image: every check of the specification passed.
#[derive(Clone, Copy, Debug)]
pub struct Image<'a> {
    layout: Layout<'a>,
}

impl<'a> Image<'a> {
    /// Checks everything, in the order of `docs/image-format.md`: the header and table
    /// ([`Layout::parse`]), every section's CRC in table order, every section's contents in table
    /// order, then the links between places (channel peers). Allocates nothing.
    pub fn parse(bytes: &'a [u8]) -> Result<Image<'a>, ImageError> {
        Image::parse_with(bytes, crate::checksum::crc32c)
    }

    /// [`Image::parse`] with another implementation of the checksum (a faster one of the same
    /// function).
    pub fn parse_with(bytes: &'a [u8], crc: Crc32c) -> Result<Image<'a>, ImageError> {
        let layout = Layout::parse_with(bytes, crc)?;
        for s in layout.sections() {
            let computed = crc(s.bytes);
            if computed != s.crc {
                return Err(s.error(Defect::Crc {
                    stored: s.crc,
                    computed,
                }));
            }
        }
        let processes = layout.header.processes;
        for s in layout.sections() {
            match s.known_kind() {
                Some(SectionKind::Process) => {
                    process_record(&s)?;
                }
                Some(SectionKind::Module) => {
                    module_ref(&s)?;
                }
                Some(SectionKind::Threads) => {
                    check_threads(&s)?;
                }
                Some(SectionKind::Handles) => {
                    // THREADS sorts before HANDLES, so it was checked already.
                    let threads = layout
                        .find(s.process, SectionKind::Threads)
                        .map_or(&[][..], |t| t.bytes);
                    check_handles(&s, processes, threads)?;
                }
                Some(SectionKind::Messages) => {
                    let handles = layout
                        .find(s.process, SectionKind::Handles)
                        .map_or(&[][..], |h| h.bytes);
                    check_messages(&s, handles, processes)?;
                }
                Some(kind @ (SectionKind::Arena | SectionKind::Stacks)) => {
                    let rec = layout
                        .find(s.process, SectionKind::Process)
                        .and_then(|p| process_record(&p).ok())
                        .ok_or(ImageError::MissingSection {
                            process: s.process,
                            kind: SectionKind::Process,
                        })?;
                    let (start, end) = if kind == SectionKind::Arena {
                        (
                            rec.arena_base,
                            rec.arena_base.saturating_add(rec.arena_ceiling),
                        )
                    } else {
                        (rec.stack_low, rec.stack_high)
                    };
                    check_pages(&s, start, end)?;
                }
                Some(SectionKind::Data) => {
                    let module = layout
                        .find(s.process, SectionKind::Module)
                        .and_then(|m| module_ref(&m).ok())
                        .ok_or(ImageError::MissingSection {
                            process: s.process,
                            kind: SectionKind::Module,
                        })?;
                    // The module's loaded span, which ends inside user space.
                    let end = module
                        .load_base
                        .saturating_add(MODULE_MAX_SIZE)
                        .min(USER_END);
                    check_pages(&s, module.load_base, end)?;
                }
                // Optional kinds: bounds and CRC were checked; the contents are not ours.
                None => {}
            }
        }
        let image = Image { layout };
        image.check_links()?;
        Ok(image)
    }

    /// Every endpoint linked to a place of the image finds there the other side of its
    /// channel, linked back.
    fn check_links(&self) -> Result<(), ImageError> {
        for p in self.processes() {
            for h in p.handles() {
                let from = Place::Handle {
                    process: p.index,
                    index: h.index,
                };
                self.check_peer(from, &h.object)?;
            }
            for (i, m) in p.messages().enumerate() {
                for (slot, o) in (0..MAX_CARRIED as u8).zip(m.handles()) {
                    let from = Place::Carried {
                        process: p.index,
                        message: i as u32,
                        slot,
                    };
                    self.check_peer(from, &o)?;
                }
            }
        }
        Ok(())
    }

    fn check_peer(&self, from: Place, o: &ObjectRef) -> Result<(), ImageError> {
        let to = match o.link {
            Link::Handle { process, index } => Place::Handle { process, index },
            Link::Carried {
                process,
                message,
                slot,
            } => Place::Carried {
                process,
                message,
                slot,
            },
            _ => return Ok(()),
        };
        let defect = match self.object_at(to) {
            None => LinkDefect::Missing,
            Some(t) if t.kind != ObjectKind::Endpoint => LinkDefect::NotEndpoint,
            Some(t) if t.id != o.id || t.side == o.side => LinkDefect::Channel,
            Some(t) if link_place(t.link) != Some(from) => LinkDefect::NotBack,
            Some(_) => return Ok(()),
        };
        Err(ImageError::Link { from, to, defect })
    }

    /// The object at a place of the image.
    pub fn object_at(&self, place: Place) -> Option<ObjectRef> {
        match place {
            Place::Handle { process, index } => {
                self.process(process)?.handle(index).map(|h| h.object)
            }
            Place::Carried {
                process,
                message,
                slot,
            } => {
                let s = self.layout.find(process, SectionKind::Messages)?;
                let i = idx(u64::from(message))?;
                if i >= idx(u64::from(u32_at(s.bytes, 0)?))? {
                    return None;
                }
                carried_at(s.bytes, i, slot, self.layout.header.processes)
            }
        }
    }

    /// The header.
    pub fn header(&self) -> Header {
        self.layout.header
    }

    /// The header and section table.
    pub fn layout(&self) -> &Layout<'a> {
        &self.layout
    }

    /// Whether the image holds a process tree.
    pub fn is_tree(&self) -> bool {
        self.layout.header.flags & FLAG_TREE != 0
    }

    /// The image's length in bytes.
    pub fn total_len(&self) -> u64 {
        self.layout.header.total
    }

    /// Every section, in table order.
    pub fn sections(&self) -> Sections<'a> {
        self.layout.sections()
    }

    /// Processes in the image (at least 1; exactly 1 unless it is a tree).
    pub fn process_count(&self) -> u16 {
        self.layout.header.processes
    }

    /// Process `index` (0 is the root).
    pub fn process(&self, index: u16) -> Option<Process<'a>> {
        let l = &self.layout;
        let record = process_record(&l.find(index, SectionKind::Process)?).ok()?;
        let module = module_ref(&l.find(index, SectionKind::Module)?).ok()?;
        let part = |k| l.find(index, k).map_or(&[][..], |s: Section<'a>| s.bytes);
        Some(Process {
            index,
            processes: l.header.processes,
            record,
            module,
            threads: part(SectionKind::Threads),
            handles: part(SectionKind::Handles),
            messages: part(SectionKind::Messages),
            arena: part(SectionKind::Arena),
            stacks: part(SectionKind::Stacks),
            data: part(SectionKind::Data),
        })
    }

    /// Every process, root first; a child comes after its parent.
    pub fn processes(&self) -> impl Iterator<Item = Process<'a>> + 'a {
        let image = *self;
        (0..self.process_count()).filter_map(move |i| image.process(i))
    }
}

fn link_place(l: Link) -> Option<Place> {
    match l {
        Link::Handle { process, index } => Some(Place::Handle { process, index }),
        Link::Carried {
            process,
            message,
            slot,
        } => Some(Place::Carried {
            process,
            message,
            slot,
        }),
        _ => None,
    }
}

/// One process of a checked image.
#[derive(Clone, Copy, Debug)]
pub struct Process<'a> {
    index: u16,
    processes: u16,
    record: ProcessRecord<'a>,
    module: ModuleRef<'a>,
    threads: &'a [u8],
    handles: &'a [u8],
    messages: &'a [u8],
    arena: &'a [u8],
    stacks: &'a [u8],
    data: &'a [u8],
}

/// The count at the start of a section's bytes (0 for an absent section).
fn count_of(b: &[u8], wide: bool) -> usize {
    let n = if wide {
        u64_at(b, 0)
    } else {
        u32_at(b, 0).map(u64::from)
    };
    n.and_then(idx).unwrap_or(0)
}

impl<'a> Process<'a> {
    /// Its index in the image (0: the root).
    pub fn index(&self) -> u16 {
        self.index
    }

    /// Its PROCESS record.
    pub fn record(&self) -> ProcessRecord<'a> {
        self.record
    }

    /// Its module reference.
    pub fn module(&self) -> ModuleRef<'a> {
        self.module
    }

    /// Its threads, in ascending tid order.
    pub fn threads(&self) -> Threads<'a> {
        Threads {
            b: self.threads,
            next: 0,
            end: count_of(self.threads, false),
        }
    }

    /// Its handle slots, in ascending index order.
    pub fn handles(&self) -> Handles<'a> {
        Handles {
            b: self.handles,
            processes: self.processes,
            next: 0,
            end: count_of(self.handles, false),
        }
    }

    /// Its handle slot `index`, if it holds one.
    pub fn handle(&self, index: u16) -> Option<HandleRecord> {
        handle_in(self.handles, index, self.processes)
    }

    /// The messages queued for its endpoints, grouped by receiver, oldest first.
    pub fn messages(&self) -> Messages<'a> {
        Messages {
            b: self.messages,
            processes: self.processes,
            next: 0,
            end: count_of(self.messages, false),
        }
    }

    /// Message `index` of its MESSAGES section.
    pub fn message(&self, index: u32) -> Option<MessageView<'a>> {
        let i = idx(u64::from(index))?;
        if i >= count_of(self.messages, false) {
            return None;
        }
        message_view(self.messages, i, self.processes)
    }

    /// Its arena pages, in ascending address order.
    pub fn arena(&self) -> Pages<'a> {
        Pages::new(self.arena)
    }

    /// Its stack pages, in ascending address order.
    pub fn stacks(&self) -> Pages<'a> {
        Pages::new(self.stacks)
    }

    /// Its module's writable pages (`.data`, `.bss`, relocated tables), in ascending address
    /// order: on resume they replace the freshly loaded module's.
    pub fn data(&self) -> Pages<'a> {
        Pages::new(self.data)
    }
}

/// The threads of a process.
#[derive(Clone, Debug)]
pub struct Threads<'a> {
    b: &'a [u8],
    next: usize,
    end: usize,
}

impl Iterator for Threads<'_> {
    type Item = ThreadRecord;

    fn next(&mut self) -> Option<ThreadRecord> {
        if self.next >= self.end {
            return None;
        }
        let base = at(COUNT_LEN, self.next, THREAD_LEN)?;
        self.next = self.next.saturating_add(1);
        decode_thread(slice(self.b, base, THREAD_LEN)?).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end.saturating_sub(self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Threads<'_> {}

/// The handle slots of a process.
#[derive(Clone, Debug)]
pub struct Handles<'a> {
    b: &'a [u8],
    processes: u16,
    next: usize,
    end: usize,
}

impl Iterator for Handles<'_> {
    type Item = HandleRecord;

    fn next(&mut self) -> Option<HandleRecord> {
        if self.next >= self.end {
            return None;
        }
        let h = handle_at(self.b, self.next, self.processes);
        self.next = self.next.saturating_add(1);
        h
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end.saturating_sub(self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Handles<'_> {}

/// One queued message of a checked image.
#[derive(Clone, Copy, Debug)]
pub struct MessageView<'a> {
    /// The channel reference id of the endpoint it waits in.
    pub channel: u64,
    /// That endpoint's side.
    pub side: u8,
    /// That endpoint's place in the process.
    pub receiver: Receiver,
    /// Its payload.
    pub bytes: &'a [u8],
    carried: &'a [u8],
    processes: u16,
}

impl<'a> MessageView<'a> {
    /// How many handles it carries.
    pub fn handle_count(&self) -> usize {
        self.carried.len() / OBJECT_LEN
    }

    /// The handles it carries, in order.
    pub fn handles(&self) -> CarriedHandles<'a> {
        CarriedHandles {
            b: self.carried,
            processes: self.processes,
            next: 0,
        }
    }
}

fn message_view(b: &[u8], i: usize, processes: u16) -> Option<MessageView<'_>> {
    let m = RawMessage::at(b, i)?;
    let data = idx(m.data)?;
    let carried_len = usize::from(m.carried).checked_mul(OBJECT_LEN)?;
    Some(MessageView {
        channel: m.channel,
        side: m.side,
        receiver: m.receiver()?,
        carried: slice(b, data, carried_len)?,
        bytes: slice(b, data.checked_add(carried_len)?, m.len as usize)?,
        processes,
    })
}

/// The messages queued for a process's endpoints.
#[derive(Clone, Debug)]
pub struct Messages<'a> {
    b: &'a [u8],
    processes: u16,
    next: usize,
    end: usize,
}

impl<'a> Iterator for Messages<'a> {
    type Item = MessageView<'a>;

    fn next(&mut self) -> Option<MessageView<'a>> {
        if self.next >= self.end {
            return None;
        }
        let m = message_view(self.b, self.next, self.processes);
        self.next = self.next.saturating_add(1);
        m
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end.saturating_sub(self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Messages<'_> {}

/// The handles a message carries.
#[derive(Clone, Debug)]
pub struct CarriedHandles<'a> {
    b: &'a [u8],
    processes: u16,
    next: usize,
}

impl Iterator for CarriedHandles<'_> {
    type Item = ObjectRef;

    fn next(&mut self) -> Option<ObjectRef> {
        let base = at(0, self.next, OBJECT_LEN)?;
        let o = decode_object(slice(self.b, base, OBJECT_LEN)?, self.processes).ok();
        self.next = self.next.saturating_add(1);
        o
    }
}

/// The pages of an ARENA, STACKS or DATA section.
#[derive(Clone, Debug)]
pub struct Pages<'a> {
    b: &'a [u8],
    next: usize,
    end: usize,
}

impl<'a> Pages<'a> {
    fn new(b: &'a [u8]) -> Pages<'a> {
        Pages {
            b,
            next: 0,
            end: count_of(b, true),
        }
    }
}

impl<'a> Iterator for Pages<'a> {
    type Item = Page<'a>;

    fn next(&mut self) -> Option<Page<'a>> {
        if self.next >= self.end {
            return None;
        }
        let va = u64_at(self.b, at(COUNT_LEN, self.next, 8)?)?;
        let data = at(at(COUNT_LEN, self.end, 8)?, self.next, PAGE)?;
        let bytes = slice(self.b, data, PAGE)?.try_into().ok()?;
        self.next = self.next.saturating_add(1);
        Some(Page { va, bytes })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end.saturating_sub(self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Pages<'_> {}
