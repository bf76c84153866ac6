//! The file allocation table: reading, writing, allocating and freeing cluster entries.
use core::{borrow::BorrowMut, marker::PhantomData};

use crate::{
    error::{Error, IoError},
    fs::{FatType, FsStatusFlags},
    io::{self, Read, ReadLeExt, Seek, Write, WriteLeExt},
};

struct Fat<S> {
    phantom: PhantomData<S>,
}

type Fat12 = Fat<u8>;
type Fat16 = Fat<u16>;
type Fat32 = Fat<u32>;

pub const RESERVED_FAT_ENTRIES: u32 = 2;

#[derive(Copy, Clone, Eq, PartialEq, Debug)]
enum FatValue {
    Free,
    Data(u32),
    Bad,
    EndOfChain,
}

trait FatTrait {
    /// What a raw entry of `cluster` means.
    fn decode(raw: u32, cluster: u32) -> FatValue;

    fn get_raw<S, E>(fat: &mut S, cluster: u32) -> Result<u32, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>;

    fn get<S, E>(fat: &mut S, cluster: u32) -> Result<FatValue, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>;

    fn set_raw<S, E>(fat: &mut S, cluster: u32, raw_value: u32) -> Result<(), Error<E>>
    where
        S: Read + Write + Seek,
        E: IoError,
        Error<E>: From<S::Error>;

    fn set<S, E>(fat: &mut S, cluster: u32, value: FatValue) -> Result<(), Error<E>>
    where
        S: Read + Write + Seek,
        E: IoError,
        Error<E>: From<S::Error>;

    fn find_free<S, E>(fat: &mut S, start_cluster: u32, end_cluster: u32) -> Result<u32, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>;

    fn count_free<S, E>(fat: &mut S, end_cluster: u32) -> Result<u32, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>;
}

fn read_fat<S, E>(fat: &mut S, fat_type: FatType, cluster: u32) -> Result<FatValue, Error<E>>
where
    S: Read + Seek,
    E: IoError,
    Error<E>: From<S::Error>,
{
    match fat_type {
        FatType::Fat12 => Fat12::get(fat, cluster),
        FatType::Fat16 => Fat16::get(fat, cluster),
        FatType::Fat32 => Fat32::get(fat, cluster),
    }
}

fn write_fat<S, E>(
    fat: &mut S,
    fat_type: FatType,
    cluster: u32,
    value: FatValue,
) -> Result<(), Error<E>>
where
    S: Read + Write + Seek,
    E: IoError,
    Error<E>: From<S::Error>,
{
    trace!("write FAT - cluster {} value {:?}", cluster, value);
    match fat_type {
        FatType::Fat12 => Fat12::set(fat, cluster, value),
        FatType::Fat16 => Fat16::set(fat, cluster, value),
        FatType::Fat32 => Fat32::set(fat, cluster, value),
    }
}

fn get_next_cluster<S, E>(
    fat: &mut S,
    fat_type: FatType,
    cluster: u32,
) -> Result<Option<u32>, Error<E>>
where
    S: Read + Seek,
    E: IoError,
    Error<E>: From<S::Error>,
{
    let val = read_fat(fat, fat_type, cluster)?;
    match val {
        FatValue::Data(n) => Ok(Some(n)),
        _ => Ok(None),
    }
}

fn find_free_cluster<S, E>(
    fat: &mut S,
    fat_type: FatType,
    start_cluster: u32,
    end_cluster: u32,
) -> Result<u32, Error<E>>
where
    S: Read + Seek,
    E: IoError,
    Error<E>: From<S::Error>,
{
    match fat_type {
        FatType::Fat12 => Fat12::find_free(fat, start_cluster, end_cluster),
        _ => {
            // A sector of entries per read: the entry-by-entry scan cost a storage access each.
            let mut raws = [0_u32; CHUNK_BYTES / 2];
            let mut cluster = start_cluster;
            while cluster < end_cluster {
                let n = chunk_entries(fat_type, cluster).min(end_cluster - cluster);
                let got = read_raw(fat, fat_type, cluster, &mut raws[..n as usize])?;
                let (mask, special) = (value_bits(fat_type), first_special(fat_type));
                for (c, &raw) in (cluster..).zip(raws[..got].iter()) {
                    if raw & mask == 0 && c < special {
                        return Ok(c);
                    }
                }
                cluster += got as u32;
            }
            Err(Error::NotEnoughSpace)
        }
    }
}

// moxie: the functions below move runs of entries a sector at a time, so that following or
// building a chain of clusters that lie one after another costs a storage access per sector of
// the FAT rather than one (or three, for a write) per cluster.

/// Bytes of the FAT that the run functions read or write at once.
const CHUNK_BYTES: usize = 512;

/// Bytes per entry (FAT16 and FAT32; FAT12 entries share bytes and are moved one by one).
fn entry_bytes(fat_type: FatType) -> u32 {
    match fat_type {
        FatType::Fat16 => 2,
        _ => 4,
    }
}

/// Entries from `cluster` to the end of its chunk of the FAT: a read or write that stays inside
/// a chunk never reaches past the FAT, whose size is whole sectors.
fn chunk_entries(fat_type: FatType, cluster: u32) -> u32 {
    let per = CHUNK_BYTES as u32 / entry_bytes(fat_type);
    per - cluster % per
}

/// The bits of a FAT32 entry that are not the value and must be kept when it is written.
fn reserved_bits(fat_type: FatType) -> u32 {
    match fat_type {
        FatType::Fat32 => 0xF000_0000,
        _ => 0,
    }
}

/// The bits of an entry that hold its value (FAT16 and FAT32).
fn value_bits(fat_type: FatType) -> u32 {
    match fat_type {
        FatType::Fat32 => 0x0FFF_FFFF,
        _ => 0xFFFF,
    }
}

/// The first value that is not a cluster number (bad cluster, end of chain), and so the first
/// cluster number with a special meaning (FAT16 and FAT32).
fn first_special(fat_type: FatType) -> u32 {
    match fat_type {
        FatType::Fat32 => 0x0FFF_FFF7,
        _ => 0xFFF7,
    }
}

/// The raw value that ends a chain.
fn end_of_chain(fat_type: FatType) -> u32 {
    match fat_type {
        FatType::Fat12 => 0xFFF,
        FatType::Fat16 => 0xFFFF,
        FatType::Fat32 => 0x0FFF_FFFF,
    }
}

fn decode(fat_type: FatType, raw: u32, cluster: u32) -> FatValue {
    match fat_type {
        FatType::Fat12 => Fat12::decode(raw, cluster),
        FatType::Fat16 => Fat16::decode(raw, cluster),
        FatType::Fat32 => Fat32::decode(raw, cluster),
    }
}

/// Reads the raw entries of the clusters `first..first + out.len()` (FAT16 and FAT32; at most
/// one chunk); returns how many it read, fewer at the end of the FAT but at least one.
fn read_raw<S, E>(
    fat: &mut S,
    fat_type: FatType,
    first: u32,
    out: &mut [u32],
) -> Result<usize, Error<E>>
where
    S: Read + Seek,
    E: IoError,
    Error<E>: From<S::Error>,
{
    let size = entry_bytes(fat_type) as usize;
    let mut buf = [0_u8; CHUNK_BYTES];
    fat.seek(io::SeekFrom::Start(u64::from(first) * size as u64))?;
    let mut got = 0;
    while got < out.len() * size {
        match fat.read(&mut buf[got..out.len() * size])? {
            0 => break,
            n => got += n,
        }
    }
    if got < size {
        return Err(Error::UnexpectedEof);
    }
    let bytes = &buf[..got];
    if size == 2 {
        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            if let [x, y] = *b {
                *o = u32::from(u16::from_le_bytes([x, y]));
            }
        }
    } else {
        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            if let [a, b, c, d] = *b {
                *o = u32::from_le_bytes([a, b, c, d]);
            }
        }
    }
    Ok(got / size)
}

/// Writes the entries of the clusters `first..first + count` (FAT16 and FAT32), entry `c` getting
/// `value(c)`, the reserved bits of each kept.
fn write_run<S, E>(
    fat: &mut S,
    fat_type: FatType,
    first: u32,
    count: u32,
    value: impl Fn(u32) -> u32,
) -> Result<(), Error<E>>
where
    S: Read + Write + Seek,
    E: IoError,
    Error<E>: From<S::Error>,
{
    let size = entry_bytes(fat_type) as usize;
    let keep = reserved_bits(fat_type);
    let mut raws = [0_u32; CHUNK_BYTES / 2];
    let mut buf = [0_u8; CHUNK_BYTES];
    let end = first + count;
    let mut cluster = first;
    while cluster < end {
        let n = chunk_entries(fat_type, cluster).min(end - cluster);
        let raws = &mut raws[..n as usize];
        if keep != 0 && read_raw(fat, fat_type, cluster, raws)? < raws.len() {
            return Err(Error::UnexpectedEof);
        }
        let bytes = &mut buf[..n as usize * size];
        // Entries of a fixed size, so that each is a store rather than a call to copy bytes.
        let entries = (cluster..).zip(raws.iter());
        if size == 2 {
            for ((c, raw), b) in entries.zip(bytes.chunks_exact_mut(2)) {
                b.copy_from_slice(&((value(c) | (raw & keep)) as u16).to_le_bytes());
            }
        } else {
            for ((c, raw), b) in entries.zip(bytes.chunks_exact_mut(4)) {
                b.copy_from_slice(&(value(c) | (raw & keep)).to_le_bytes());
            }
        }
        fat.seek(io::SeekFrom::Start(u64::from(cluster) * size as u64))?;
        fat.write_all(bytes)?;
        cluster += n;
    }
    Ok(())
}

/// The clusters of a chain that lie one after another from `cluster` on: how many (at least 1,
/// at most `max`), and the entry of the last of them (`None`: the chain ends there).
pub(crate) fn contiguous_run<S, E>(
    fat: &mut S,
    fat_type: FatType,
    cluster: u32,
    max: u32,
) -> Result<(u32, Option<u32>), Error<E>>
where
    S: Read + Seek,
    E: IoError,
    Error<E>: From<S::Error>,
{
    let next_of = |v: FatValue| match v {
        FatValue::Data(n) => Some(n),
        _ => None,
    };
    let mut count = 1;
    let mut c = cluster;
    if fat_type == FatType::Fat12 {
        loop {
            match read_fat(fat, fat_type, c)? {
                FatValue::Data(n) if n == c + 1 && count < max => (count, c) = (count + 1, n),
                v => return Ok((count, next_of(v))),
            }
        }
    }
    let mut raws = [0_u32; CHUNK_BYTES / 2];
    loop {
        // The entries of c and of at most the clusters the run may still take.
        let n = chunk_entries(fat_type, c).min(max.saturating_sub(count).saturating_add(1));
        let got = read_raw(fat, fat_type, c, &mut raws[..n as usize])?;
        let (mask, special) = (value_bits(fat_type), first_special(fat_type));
        for &raw in raws[..got].iter() {
            // The common case first: the next cluster follows.
            let next = raw & mask;
            if next == c + 1 && next < special && count < max {
                (count, c) = (count + 1, next);
                continue;
            }
            match decode(fat_type, raw, c) {
                FatValue::Data(n) if n == c + 1 && count < max => (count, c) = (count + 1, n),
                v => return Ok((count, next_of(v))),
            }
        }
    }
}

/// Allocates free clusters that lie one after another, up to `want` of them (at least one):
/// the first free one at or after `hint` (the volume's start when none is free there), and the
/// free ones right after it. They become a chain, linked after `prev_cluster`; returns the
/// first and how many.
pub(crate) fn alloc_run<S, E>(
    fat: &mut S,
    fat_type: FatType,
    prev_cluster: Option<u32>,
    hint: Option<u32>,
    want: u32,
    total_clusters: u32,
) -> Result<(u32, u32), Error<E>>
where
    S: Read + Write + Seek,
    E: IoError,
    Error<E>: From<S::Error>,
{
    if fat_type == FatType::Fat12 || want <= 1 {
        return alloc_cluster(fat, fat_type, prev_cluster, hint, total_clusters).map(|c| (c, 1));
    }
    let end_cluster = total_clusters + RESERVED_FAT_ENTRIES;
    let start_cluster = match hint {
        Some(n) if n < end_cluster => n,
        _ => RESERVED_FAT_ENTRIES,
    };
    // At most a chunk's worth: the run is written in one or two pieces per FAT.
    let cap = want.min(CHUNK_BYTES as u32 / entry_bytes(fat_type));
    // The common case, a file growing at the hint: the scan starts at the previous cluster, so
    // that its entry is read with the run's and written with them.
    let from = match prev_cluster {
        Some(p) if p >= RESERVED_FAT_ENTRIES && p + 1 == start_cluster => p,
        _ => start_cluster,
    };
    // keep[0]: the entry before the run when the scan saw it; keep[1..]: the run's entries.
    let mut keep = [0_u32; CHUNK_BYTES / 2 + 1];
    let found = match free_run(fat, fat_type, from, end_cluster, cap, &mut keep)? {
        Some(f) => f,
        None if from > RESERVED_FAT_ENTRIES => {
            free_run(fat, fat_type, RESERVED_FAT_ENTRIES, from, cap, &mut keep)?
                .ok_or(Error::NotEnoughSpace)?
        }
        None => return Err(Error::NotEnoughSpace),
    };
    let (first, count, before_seen) = found;
    let last = first + count - 1;
    let eoc = end_of_chain(fat_type);
    let value = |c: u32| if c == last { eoc } else { c + 1 };
    match prev_cluster {
        Some(p) if before_seen && p + 1 == first => {
            // The previous cluster's entry and the run's, in one write.
            let link = |c: u32| if c == p { first } else { value(c) };
            write_entries(fat, fat_type, p, &keep[..=count as usize], link)?;
        }
        _ => {
            write_entries(fat, fat_type, first, &keep[1..=count as usize], value)?;
            if let Some(n) = prev_cluster {
                write_fat(fat, fat_type, n, FatValue::Data(first))?;
            }
        }
    }
    trace!("allocated clusters {}..={}", first, last);
    Ok((first, count))
}

/// Finds the first free cluster in `from..to` and the free ones right after it, at most `cap`
/// in all, reading the FAT a chunk at a time: (first, count, whether the entry before the
/// first was read in the same scan). The raw entries go to `keep[1..]`, the one before the
/// first to `keep[0]`.
fn free_run<S, E>(
    fat: &mut S,
    fat_type: FatType,
    from: u32,
    to: u32,
    cap: u32,
    keep: &mut [u32; CHUNK_BYTES / 2 + 1],
) -> Result<Option<(u32, u32, bool)>, Error<E>>
where
    S: Read + Seek,
    E: IoError,
    Error<E>: From<S::Error>,
{
    let (mask, special) = (value_bits(fat_type), first_special(fat_type));
    let mut raws = [0_u32; CHUNK_BYTES / 2];
    let mut first: Option<u32> = None;
    let mut count = 0;
    let mut c = from;
    while c < to {
        let n = chunk_entries(fat_type, c).min(to - c);
        let got = read_raw(fat, fat_type, c, &mut raws[..n as usize])?;
        for (cl, &raw) in (c..).zip(raws[..got].iter()) {
            let free = raw & mask == 0 && cl < special;
            match first {
                Some(f) if !free || count == cap => return Ok(Some((f, count, f > from))),
                Some(_) => {
                    count += 1;
                    keep[count as usize] = raw;
                }
                None if free => {
                    first = Some(cl);
                    count = 1;
                    keep[1] = raw;
                }
                // The entry before the run, if the run starts at the next one.
                None => keep[0] = raw,
            }
        }
        if let Some(f) = first.filter(|_| count == cap) {
            return Ok(Some((f, count, f > from)));
        }
        c += got as u32;
    }
    Ok(first.map(|f| (f, count, f > from)))
}

/// Writes the entries of the clusters `first..first + raws.len()` (FAT16 and FAT32), entry `c`
/// getting `value(c)` with the reserved bits of its old raw value in `raws`, a chunk at a time.
fn write_entries<S, E>(
    fat: &mut S,
    fat_type: FatType,
    first: u32,
    raws: &[u32],
    value: impl Fn(u32) -> u32,
) -> Result<(), Error<E>>
where
    S: Read + Write + Seek,
    E: IoError,
    Error<E>: From<S::Error>,
{
    let size = entry_bytes(fat_type) as usize;
    let keep = reserved_bits(fat_type);
    let mut buf = [0_u8; CHUNK_BYTES];
    let mut done = 0;
    while done < raws.len() {
        let cluster = first + done as u32;
        let n = (chunk_entries(fat_type, cluster) as usize).min(raws.len() - done);
        let bytes = &mut buf[..n * size];
        let entries = (cluster..).zip(raws[done..done + n].iter());
        // Entries of a fixed size, so that each is a store rather than a call to copy bytes.
        if size == 2 {
            for ((c, raw), b) in entries.zip(bytes.chunks_exact_mut(2)) {
                b.copy_from_slice(&((value(c) | (raw & keep)) as u16).to_le_bytes());
            }
        } else {
            for ((c, raw), b) in entries.zip(bytes.chunks_exact_mut(4)) {
                b.copy_from_slice(&(value(c) | (raw & keep)).to_le_bytes());
            }
        }
        fat.seek(io::SeekFrom::Start(u64::from(cluster) * size as u64))?;
        fat.write_all(bytes)?;
        done += n;
    }
    Ok(())
}

/// Frees the chain that starts at `cluster`, a run of neighbouring clusters at a time; returns
/// how many clusters were freed.
fn free_chain<S, E>(fat: &mut S, fat_type: FatType, cluster: u32) -> Result<u32, Error<E>>
where
    S: Read + Write + Seek,
    E: IoError,
    Error<E>: From<S::Error>,
{
    let mut freed = 0;
    let mut next = Some(cluster);
    while let Some(c) = next {
        if fat_type == FatType::Fat12 {
            next = get_next_cluster(fat, fat_type, c)?;
            write_fat(fat, fat_type, c, FatValue::Free)?;
            freed += 1;
            continue;
        }
        let (count, after) = contiguous_run(fat, fat_type, c, u32::MAX)?;
        write_run(fat, fat_type, c, count, |_| 0)?;
        freed += count;
        next = after;
    }
    Ok(freed)
}

pub(crate) fn alloc_cluster<S, E>(
    fat: &mut S,
    fat_type: FatType,
    prev_cluster: Option<u32>,
    hint: Option<u32>,
    total_clusters: u32,
) -> Result<u32, Error<E>>
where
    S: Read + Write + Seek,
    E: IoError,
    Error<E>: From<S::Error>,
{
    let end_cluster = total_clusters + RESERVED_FAT_ENTRIES;
    let start_cluster = match hint {
        Some(n) if n < end_cluster => n,
        _ => RESERVED_FAT_ENTRIES,
    };
    let new_cluster = match find_free_cluster(fat, fat_type, start_cluster, end_cluster) {
        Ok(n) => n,
        Err(_) if start_cluster > RESERVED_FAT_ENTRIES => {
            find_free_cluster(fat, fat_type, RESERVED_FAT_ENTRIES, start_cluster)?
        }
        Err(e) => return Err(e),
    };
    write_fat(fat, fat_type, new_cluster, FatValue::EndOfChain)?;
    if let Some(n) = prev_cluster {
        write_fat(fat, fat_type, n, FatValue::Data(new_cluster))?;
    }
    trace!("allocated cluster {}", new_cluster);
    Ok(new_cluster)
}

pub(crate) fn read_fat_flags<S, E>(
    fat: &mut S,
    fat_type: FatType,
) -> Result<FsStatusFlags, Error<E>>
where
    S: Read + Seek,
    E: IoError,
    Error<E>: From<S::Error>,
{
    // check MSB (except in FAT12)
    let val = match fat_type {
        FatType::Fat12 => 0xFFF,
        FatType::Fat16 => Fat16::get_raw(fat, 1)?,
        FatType::Fat32 => Fat32::get_raw(fat, 1)?,
    };
    let dirty = match fat_type {
        FatType::Fat12 => false,
        FatType::Fat16 => val & (1 << 15) == 0,
        FatType::Fat32 => val & (1 << 27) == 0,
    };
    let io_error = match fat_type {
        FatType::Fat12 => false,
        FatType::Fat16 => val & (1 << 14) == 0,
        FatType::Fat32 => val & (1 << 26) == 0,
    };
    Ok(FsStatusFlags { dirty, io_error })
}

pub(crate) fn count_free_clusters<S, E>(
    fat: &mut S,
    fat_type: FatType,
    total_clusters: u32,
) -> Result<u32, Error<E>>
where
    S: Read + Seek,
    E: IoError,
    Error<E>: From<S::Error>,
{
    let end_cluster = total_clusters + RESERVED_FAT_ENTRIES;
    match fat_type {
        FatType::Fat12 => Fat12::count_free(fat, end_cluster),
        FatType::Fat16 => Fat16::count_free(fat, end_cluster),
        FatType::Fat32 => Fat32::count_free(fat, end_cluster),
    }
}

pub(crate) fn format_fat<S, E>(
    fat: &mut S,
    fat_type: FatType,
    media: u8,
    bytes_per_fat: u64,
    total_clusters: u32,
) -> Result<(), Error<E>>
where
    S: Read + Write + Seek,
    E: IoError,
    Error<E>: From<S::Error>,
{
    const BITS_PER_BYTE: u64 = 8;
    // init first two reserved entries to FAT ID
    match fat_type {
        FatType::Fat12 => {
            fat.write_u8(media)?;
            fat.write_u16_le(0xFFFF)?;
        }
        FatType::Fat16 => {
            fat.write_u16_le(u16::from(media) | 0xFF00)?;
            fat.write_u16_le(0xFFFF)?;
        }
        FatType::Fat32 => {
            fat.write_u32_le(u32::from(media) | 0xFFF_FF00)?;
            fat.write_u32_le(0xFFFF_FFFF)?;
        }
    };
    // mark entries at the end of FAT as used (after FAT but before sector end)
    let start_cluster = total_clusters + RESERVED_FAT_ENTRIES;
    let end_cluster =
        (bytes_per_fat * BITS_PER_BYTE / u64::from(fat_type.bits_per_fat_entry())) as u32;
    for cluster in start_cluster..end_cluster {
        write_fat(fat, fat_type, cluster, FatValue::EndOfChain)?;
    }
    // mark special entries 0x0FFFFFF0 - 0x0FFFFFFF as BAD if they exists on FAT32 volume
    if end_cluster > 0x0FFF_FFF0 {
        let end_bad_cluster = (0x0FFF_FFFF + 1).min(end_cluster);
        for cluster in 0x0FFF_FFF0..end_bad_cluster {
            write_fat(fat, fat_type, cluster, FatValue::Bad)?;
        }
    }
    Ok(())
}

impl FatTrait for Fat12 {
    fn decode(raw: u32, _cluster: u32) -> FatValue {
        match raw {
            0 => FatValue::Free,
            0xFF7 => FatValue::Bad,
            0xFF8..=0xFFF => FatValue::EndOfChain,
            n => FatValue::Data(n),
        }
    }

    fn get_raw<S, E>(fat: &mut S, cluster: u32) -> Result<u32, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        let fat_offset = cluster + (cluster / 2);
        fat.seek(io::SeekFrom::Start(u64::from(fat_offset)))?;
        let packed_val = fat.read_u16_le()?;
        Ok(u32::from(match cluster & 1 {
            0 => packed_val & 0x0FFF,
            _ => packed_val >> 4,
        }))
    }

    fn get<S, E>(fat: &mut S, cluster: u32) -> Result<FatValue, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        Ok(Self::decode(Self::get_raw(fat, cluster)?, cluster))
    }

    fn set<S, E>(fat: &mut S, cluster: u32, value: FatValue) -> Result<(), Error<E>>
    where
        S: Read + Write + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        let raw_val = match value {
            FatValue::Free => 0,
            FatValue::Bad => 0xFF7,
            FatValue::EndOfChain => 0xFFF,
            FatValue::Data(n) => n,
        };
        Self::set_raw(fat, cluster, raw_val)
    }

    fn set_raw<S, E>(fat: &mut S, cluster: u32, raw_val: u32) -> Result<(), Error<E>>
    where
        S: Read + Write + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        let fat_offset = cluster + (cluster / 2);
        fat.seek(io::SeekFrom::Start(u64::from(fat_offset)))?;
        let old_packed = fat.read_u16_le()?;
        fat.seek(io::SeekFrom::Start(u64::from(fat_offset)))?;
        let new_packed = match cluster & 1 {
            0 => (old_packed & 0xF000) | raw_val as u16,
            _ => (old_packed & 0x000F) | ((raw_val as u16) << 4),
        };
        fat.write_u16_le(new_packed)?;
        Ok(())
    }

    fn find_free<S, E>(fat: &mut S, start_cluster: u32, end_cluster: u32) -> Result<u32, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        let mut cluster = start_cluster;
        let fat_offset = cluster + (cluster / 2);
        fat.seek(io::SeekFrom::Start(u64::from(fat_offset)))?;
        let mut packed_val = fat.read_u16_le()?;
        loop {
            let val = match cluster & 1 {
                0 => packed_val & 0x0FFF,
                _ => packed_val >> 4,
            };
            if val == 0 {
                return Ok(cluster);
            }
            cluster += 1;
            if cluster == end_cluster {
                return Err(Error::NotEnoughSpace);
            }
            packed_val = if cluster & 1 == 0 {
                fat.read_u16_le()?
            } else {
                let next_byte = fat.read_u8()?;
                (packed_val >> 8) | (u16::from(next_byte) << 8)
            };
        }
    }

    fn count_free<S, E>(fat: &mut S, end_cluster: u32) -> Result<u32, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        let mut count = 0;
        let mut cluster = RESERVED_FAT_ENTRIES;
        fat.seek(io::SeekFrom::Start(u64::from(cluster * 3 / 2)))?;
        let mut prev_packed_val = 0_u16;
        while cluster < end_cluster {
            let res = match cluster & 1 {
                0 => fat.read_u16_le(),
                _ => fat.read_u8().map(u16::from),
            };
            let packed_val = match res {
                Err(err) => return Err(err.into()),
                Ok(n) => n,
            };
            let val = match cluster & 1 {
                0 => packed_val & 0x0FFF,
                _ => (packed_val << 8) | (prev_packed_val >> 12),
            };
            prev_packed_val = packed_val;
            if val == 0 {
                count += 1;
            }
            cluster += 1;
        }
        Ok(count)
    }
}

impl FatTrait for Fat16 {
    fn decode(raw: u32, _cluster: u32) -> FatValue {
        match raw {
            0 => FatValue::Free,
            0xFFF7 => FatValue::Bad,
            0xFFF8..=0xFFFF => FatValue::EndOfChain,
            n => FatValue::Data(n),
        }
    }

    fn get_raw<S, E>(fat: &mut S, cluster: u32) -> Result<u32, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        fat.seek(io::SeekFrom::Start(u64::from(cluster * 2)))?;
        Ok(u32::from(fat.read_u16_le()?))
    }

    fn get<S, E>(fat: &mut S, cluster: u32) -> Result<FatValue, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        Ok(Self::decode(Self::get_raw(fat, cluster)?, cluster))
    }

    fn set_raw<S, E>(fat: &mut S, cluster: u32, raw_value: u32) -> Result<(), Error<E>>
    where
        S: Read + Write + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        fat.seek(io::SeekFrom::Start(u64::from(cluster * 2)))?;
        fat.write_u16_le(raw_value as u16)?;
        Ok(())
    }

    fn set<S, E>(fat: &mut S, cluster: u32, value: FatValue) -> Result<(), Error<E>>
    where
        S: Read + Write + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        let raw_value = match value {
            FatValue::Free => 0,
            FatValue::Bad => 0xFFF7,
            FatValue::EndOfChain => 0xFFFF,
            FatValue::Data(n) => n,
        };
        Self::set_raw(fat, cluster, raw_value)
    }

    fn find_free<S, E>(fat: &mut S, start_cluster: u32, end_cluster: u32) -> Result<u32, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        let mut cluster = start_cluster;
        fat.seek(io::SeekFrom::Start(u64::from(cluster * 2)))?;
        while cluster < end_cluster {
            let val = fat.read_u16_le()?;
            if val == 0 {
                return Ok(cluster);
            }
            cluster += 1;
        }
        Err(Error::NotEnoughSpace)
    }

    fn count_free<S, E>(fat: &mut S, end_cluster: u32) -> Result<u32, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        let mut count = 0;
        let mut cluster = RESERVED_FAT_ENTRIES;
        fat.seek(io::SeekFrom::Start(u64::from(cluster * 2)))?;
        while cluster < end_cluster {
            let val = fat.read_u16_le()?;
            if val == 0 {
                count += 1;
            }
            cluster += 1;
        }
        Ok(count)
    }
}

impl FatTrait for Fat32 {
    fn decode(raw: u32, cluster: u32) -> FatValue {
        match raw & 0x0FFF_FFFF {
            0 if (0x0FFF_FFF7..=0x0FFF_FFFF).contains(&cluster) => {
                let tmp = if cluster == 0x0FFF_FFF7 {
                    "BAD_CLUSTER"
                } else {
                    "end-of-chain"
                };
                warn!(
                    "cluster number {} is a special value in FAT to indicate {}; it should never be seen as free",
                    cluster, tmp
                );
                FatValue::Bad // avoid accidental use or allocation into a FAT chain
            }
            0 => FatValue::Free,
            0x0FFF_FFF7 => FatValue::Bad,
            0x0FFF_FFF8..=0x0FFF_FFFF => FatValue::EndOfChain,
            n if (0x0FFF_FFF7..=0x0FFF_FFFF).contains(&cluster) => {
                let tmp = if cluster == 0x0FFF_FFF7 {
                    "BAD_CLUSTER"
                } else {
                    "end-of-chain"
                };
                warn!("cluster number {} is a special value in FAT to indicate {}; hiding potential FAT chain value {} and instead reporting as a bad sector", cluster, tmp, n);
                FatValue::Bad // avoid accidental use or allocation into a FAT chain
            }
            n => FatValue::Data(n),
        }
    }

    fn get_raw<S, E>(fat: &mut S, cluster: u32) -> Result<u32, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        fat.seek(io::SeekFrom::Start(u64::from(cluster * 4)))?;
        Ok(fat.read_u32_le()?)
    }

    fn get<S, E>(fat: &mut S, cluster: u32) -> Result<FatValue, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        Ok(Self::decode(Self::get_raw(fat, cluster)?, cluster))
    }

    fn set_raw<S, E>(fat: &mut S, cluster: u32, raw_value: u32) -> Result<(), Error<E>>
    where
        S: Read + Write + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        fat.seek(io::SeekFrom::Start(u64::from(cluster * 4)))?;
        fat.write_u32_le(raw_value)?;
        Ok(())
    }

    fn set<S, E>(fat: &mut S, cluster: u32, value: FatValue) -> Result<(), Error<E>>
    where
        S: Read + Write + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        let old_reserved_bits = Self::get_raw(fat, cluster)? & 0xF000_0000;

        if value == FatValue::Free && (0x0FFF_FFF7..=0x0FFF_FFFF).contains(&cluster) {
            // NOTE: it is technically allowed for them to store FAT chain loops,
            //       or even have them all store value '4' as their next cluster.
            //       Some believe only FatValue::Bad should be allowed for this edge case.
            let tmp = if cluster == 0x0FFF_FFF7 {
                "BAD_CLUSTER"
            } else {
                "end-of-chain"
            };
            panic!(
                "cluster number {} is a special value in FAT to indicate {}; it should never be set as free",
                cluster, tmp
            );
        };
        let raw_val = match value {
            FatValue::Free => 0,
            FatValue::Bad => 0x0FFF_FFF7,
            FatValue::EndOfChain => 0x0FFF_FFFF,
            FatValue::Data(n) => n,
        };
        let raw_val = raw_val | old_reserved_bits; // must preserve original reserved values
        Self::set_raw(fat, cluster, raw_val)
    }

    fn find_free<S, E>(fat: &mut S, start_cluster: u32, end_cluster: u32) -> Result<u32, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        let mut cluster = start_cluster;
        fat.seek(io::SeekFrom::Start(u64::from(cluster * 4)))?;
        while cluster < end_cluster {
            let val = fat.read_u32_le()? & 0x0FFF_FFFF;
            if val == 0 {
                return Ok(cluster);
            }
            cluster += 1;
        }
        Err(Error::NotEnoughSpace)
    }

    fn count_free<S, E>(fat: &mut S, end_cluster: u32) -> Result<u32, Error<E>>
    where
        S: Read + Seek,
        E: IoError,
        Error<E>: From<S::Error>,
    {
        let mut count = 0;
        let mut cluster = RESERVED_FAT_ENTRIES;
        fat.seek(io::SeekFrom::Start(u64::from(cluster * 4)))?;
        while cluster < end_cluster {
            let val = fat.read_u32_le()? & 0x0FFF_FFFF;
            if val == 0 {
                count += 1;
            }
            cluster += 1;
        }
        Ok(count)
    }
}

pub(crate) struct ClusterIterator<B, E, S = B> {
    fat: B,
    fat_type: FatType,
    cluster: Option<u32>,
    err: bool,
    // phantom is needed to add type bounds on the storage type
    phantom_s: PhantomData<S>,
    phantom_e: PhantomData<E>,
}

impl<B, E, S> ClusterIterator<B, E, S>
where
    B: BorrowMut<S>,
    E: IoError,
    S: Read + Write + Seek,
    Error<E>: From<S::Error>,
{
    pub(crate) fn new(fat: B, fat_type: FatType, cluster: u32) -> Self {
        Self {
            fat,
            fat_type,
            cluster: Some(cluster),
            err: false,
            phantom_s: PhantomData,
            phantom_e: PhantomData,
        }
    }

    pub(crate) fn truncate(&mut self) -> Result<u32, Error<E>> {
        if let Some(n) = self.cluster {
            // Move to the next cluster
            self.next();
            // Mark previous cluster as end of chain
            write_fat(
                self.fat.borrow_mut(),
                self.fat_type,
                n,
                FatValue::EndOfChain,
            )?;
            // Free rest of chain
            self.free()
        } else {
            Ok(0)
        }
    }

    pub(crate) fn free(&mut self) -> Result<u32, Error<E>> {
        match self.cluster.take() {
            Some(n) => free_chain(self.fat.borrow_mut(), self.fat_type, n),
            None => Ok(0),
        }
    }
}

impl<B, E, S> Iterator for ClusterIterator<B, E, S>
where
    B: BorrowMut<S>,
    E: IoError,
    S: Read + Write + Seek,
    Error<E>: From<S::Error>,
{
    type Item = Result<u32, Error<E>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.err {
            return None;
        }
        if let Some(current_cluster) = self.cluster {
            self.cluster =
                match get_next_cluster(self.fat.borrow_mut(), self.fat_type, current_cluster) {
                    Ok(next_cluster) => next_cluster,
                    Err(err) => {
                        self.err = true;
                        return Some(Err(err));
                    }
                }
        }
        self.cluster.map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use io::StdIoWrapper;

    use super::*;

    fn test_fat<S: Read + Write + Seek>(fat_type: FatType, mut cur: S) {
        // based on cluster maps from Wikipedia:
        // https://en.wikipedia.org/wiki/Design_of_the_FAT_file_system#Cluster_map
        assert_eq!(
            read_fat(&mut cur, fat_type, 1).ok(),
            Some(FatValue::EndOfChain)
        );
        assert_eq!(
            read_fat(&mut cur, fat_type, 4).ok(),
            Some(FatValue::Data(5))
        );
        assert_eq!(
            read_fat(&mut cur, fat_type, 5).ok(),
            Some(FatValue::Data(6))
        );
        assert_eq!(
            read_fat(&mut cur, fat_type, 8).ok(),
            Some(FatValue::EndOfChain)
        );
        assert_eq!(
            read_fat(&mut cur, fat_type, 9).ok(),
            Some(FatValue::Data(0xA))
        );
        assert_eq!(
            read_fat(&mut cur, fat_type, 0xA).ok(),
            Some(FatValue::Data(0x14))
        );
        assert_eq!(
            read_fat(&mut cur, fat_type, 0x12).ok(),
            Some(FatValue::Free)
        );
        assert_eq!(read_fat(&mut cur, fat_type, 0x17).ok(), Some(FatValue::Bad));
        assert_eq!(read_fat(&mut cur, fat_type, 0x18).ok(), Some(FatValue::Bad));
        assert_eq!(
            read_fat(&mut cur, fat_type, 0x1B).ok(),
            Some(FatValue::Free)
        );

        assert_eq!(
            find_free_cluster(&mut cur, fat_type, 2, 0x20).ok(),
            Some(0x12)
        );
        assert_eq!(
            find_free_cluster(&mut cur, fat_type, 0x12, 0x20).ok(),
            Some(0x12)
        );
        assert_eq!(
            find_free_cluster(&mut cur, fat_type, 0x13, 0x20).ok(),
            Some(0x1B)
        );
        assert!(find_free_cluster(&mut cur, fat_type, 0x13, 0x14).is_err());

        assert_eq!(count_free_clusters(&mut cur, fat_type, 0x1E).ok(), Some(5));

        // test allocation
        assert_eq!(
            alloc_cluster(&mut cur, fat_type, None, Some(0x13), 0x1E).ok(),
            Some(0x1B)
        );
        assert_eq!(
            read_fat(&mut cur, fat_type, 0x1B).ok(),
            Some(FatValue::EndOfChain)
        );
        assert_eq!(
            alloc_cluster(&mut cur, fat_type, Some(0x1B), None, 0x1E).ok(),
            Some(0x12)
        );
        assert_eq!(
            read_fat(&mut cur, fat_type, 0x1B).ok(),
            Some(FatValue::Data(0x12))
        );
        assert_eq!(
            read_fat(&mut cur, fat_type, 0x12).ok(),
            Some(FatValue::EndOfChain)
        );
        assert_eq!(count_free_clusters(&mut cur, fat_type, 0x1E).ok(), Some(3));
        // test reading from iterator
        {
            let iter = ClusterIterator::<&mut S, S::Error, S>::new(&mut cur, fat_type, 0x9);
            let actual_cluster_numbers = iter.map(Result::ok).collect::<Vec<_>>();
            let expected_cluster_numbers =
                [0xA_u32, 0x14_u32, 0x15_u32, 0x16_u32, 0x19_u32, 0x1A_u32]
                    .iter()
                    .copied()
                    .map(Some)
                    .collect::<Vec<_>>();
            assert_eq!(actual_cluster_numbers, expected_cluster_numbers);
        }
        // runs of neighbouring clusters
        assert_eq!(
            contiguous_run(&mut cur, fat_type, 3, 100).ok(),
            Some((6, None))
        );
        assert_eq!(
            contiguous_run(&mut cur, fat_type, 3, 2).ok(),
            Some((2, Some(5)))
        );
        assert_eq!(
            contiguous_run(&mut cur, fat_type, 9, 10).ok(),
            Some((2, Some(0x14)))
        );
        assert_eq!(
            contiguous_run(&mut cur, fat_type, 0x14, 10).ok(),
            Some((3, Some(0x19)))
        );
        assert_eq!(
            contiguous_run(&mut cur, fat_type, 0x14, 1).ok(),
            Some((1, Some(0x15)))
        );
        // test truncating a chain
        {
            let mut iter = ClusterIterator::<&mut S, S::Error, S>::new(&mut cur, fat_type, 0x9);
            assert_eq!(iter.nth(3).map(Result::ok), Some(Some(0x16)));
            assert!(iter.truncate().is_ok());
        }
        assert_eq!(
            read_fat(&mut cur, fat_type, 0x16).ok(),
            Some(FatValue::EndOfChain)
        );
        assert_eq!(
            read_fat(&mut cur, fat_type, 0x19).ok(),
            Some(FatValue::Free)
        );
        assert_eq!(
            read_fat(&mut cur, fat_type, 0x1A).ok(),
            Some(FatValue::Free)
        );
        // test freeing a chain
        {
            let mut iter = ClusterIterator::<&mut S, S::Error, S>::new(&mut cur, fat_type, 0x9);
            assert!(iter.free().is_ok());
        }
        assert_eq!(read_fat(&mut cur, fat_type, 0x9).ok(), Some(FatValue::Free));
        assert_eq!(read_fat(&mut cur, fat_type, 0xA).ok(), Some(FatValue::Free));
        assert_eq!(
            read_fat(&mut cur, fat_type, 0x14).ok(),
            Some(FatValue::Free)
        );
        assert_eq!(
            read_fat(&mut cur, fat_type, 0x15).ok(),
            Some(FatValue::Free)
        );
        assert_eq!(
            read_fat(&mut cur, fat_type, 0x16).ok(),
            Some(FatValue::Free)
        );
    }

    /// Runs allocated and freed on a FAT of 64 entries: 2..=5 and 10 in use, entry 12 with
    /// reserved bits (FAT32), the rest free.
    fn test_runs(fat_type: FatType) {
        let bytes = 64 * fat_type.bits_per_fat_entry() as usize / 8;
        let mut cur = StdIoWrapper::new(Cursor::<Vec<u8>>::new(vec![0; bytes]));
        for c in [2, 3, 4, 5, 10] {
            write_fat(&mut cur, fat_type, c, FatValue::EndOfChain).unwrap();
        }
        if fat_type == FatType::Fat32 {
            Fat32::set_raw(&mut cur, 12, 0x1000_0000).unwrap();
        }
        let total = 62;
        let free = |cur: &mut _| count_free_clusters(cur, fat_type, total).unwrap();
        assert_eq!(free(&mut cur), 57);
        let get = |cur: &mut _, c| read_fat(cur, fat_type, c).unwrap();
        // Three free neighbours from the hint on.
        let three = alloc_run(&mut cur, fat_type, None, Some(2), 3, total).ok();
        if fat_type == FatType::Fat12 {
            // FAT12 entries share bytes: allocated one at a time.
            assert_eq!(three, Some((6, 1)));
            return;
        }
        assert_eq!(three, Some((6, 3)));
        assert_eq!(get(&mut cur, 6), FatValue::Data(7));
        assert_eq!(get(&mut cur, 7), FatValue::Data(8));
        assert_eq!(get(&mut cur, 8), FatValue::EndOfChain);
        // Cut short by a cluster in use; linked after the previous run (whose last entry is
        // written with the run's: its reserved bits kept).
        if fat_type == FatType::Fat32 {
            Fat32::set_raw(&mut cur, 8, 0x2FFF_FFFF).unwrap();
        }
        let one = alloc_run(&mut cur, fat_type, Some(8), Some(9), 5, total).ok();
        let four = alloc_run(&mut cur, fat_type, Some(9), Some(10), 4, total).ok();
        assert_eq!((one, four), (Some((9, 1)), Some((11, 4))));
        assert_eq!(get(&mut cur, 8), FatValue::Data(9));
        assert_eq!(get(&mut cur, 9), FatValue::Data(11));
        assert_eq!(get(&mut cur, 14), FatValue::EndOfChain);
        assert_eq!(
            contiguous_run(&mut cur, fat_type, 6, 100).ok(),
            Some((4, Some(11)))
        );
        assert_eq!(free(&mut cur), 49);
        if fat_type == FatType::Fat32 {
            assert_eq!(Fat32::get_raw(&mut cur, 12).unwrap(), 0x1000_000D);
            assert_eq!(Fat32::get_raw(&mut cur, 8).unwrap(), 0x2000_0009);
        }
        // Wrapping to the volume's start when nothing is free after the hint.
        for c in 15..64 {
            write_fat(&mut cur, fat_type, c, FatValue::EndOfChain).unwrap();
        }
        assert!(alloc_run(&mut cur, fat_type, None, Some(20), 2, total).is_err());
        assert_eq!(free_chain(&mut cur, fat_type, 6).ok(), Some(8));
        assert_eq!(
            alloc_run(&mut cur, fat_type, None, Some(40), 9, total).ok(),
            Some((6, 4))
        );
        if fat_type == FatType::Fat32 {
            assert_eq!(Fat32::get_raw(&mut cur, 12).unwrap(), 0x1000_0000);
        }
    }

    #[test]
    fn runs_of_clusters() {
        test_runs(FatType::Fat12);
        test_runs(FatType::Fat16);
        test_runs(FatType::Fat32);
    }

    #[test]
    fn test_fat12() {
        let fat: Vec<u8> = vec![
            0xF0, 0xFF, 0xFF, 0x03, 0x40, 0x00, 0x05, 0x60, 0x00, 0x07, 0x80, 0x00, 0xFF, 0xAF,
            0x00, 0x14, 0xC0, 0x00, 0x0D, 0xE0, 0x00, 0x0F, 0x00, 0x01, 0x11, 0xF0, 0xFF, 0x00,
            0xF0, 0xFF, 0x15, 0x60, 0x01, 0x19, 0x70, 0xFF, 0xF7, 0xAF, 0x01, 0xFF, 0x0F, 0x00,
            0x00, 0x70, 0xFF, 0x00, 0x00, 0x00,
        ];
        test_fat(
            FatType::Fat12,
            StdIoWrapper::new(Cursor::<Vec<u8>>::new(fat)),
        );
    }

    #[test]
    fn test_fat16() {
        let fat: Vec<u8> = vec![
            0xF0, 0xFF, 0xFF, 0xFF, 0x03, 0x00, 0x04, 0x00, 0x05, 0x00, 0x06, 0x00, 0x07, 0x00,
            0x08, 0x00, 0xFF, 0xFF, 0x0A, 0x00, 0x14, 0x00, 0x0C, 0x00, 0x0D, 0x00, 0x0E, 0x00,
            0x0F, 0x00, 0x10, 0x00, 0x11, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xFF, 0x15, 0x00,
            0x16, 0x00, 0x19, 0x00, 0xF7, 0xFF, 0xF7, 0xFF, 0x1A, 0x00, 0xFF, 0xFF, 0x00, 0x00,
            0x00, 0x00, 0xF7, 0xFF, 0x00, 0x00, 0x00, 0x00,
        ];
        test_fat(
            FatType::Fat16,
            StdIoWrapper::new(Cursor::<Vec<u8>>::new(fat)),
        );
    }

    #[test]
    fn test_fat32() {
        let fat: Vec<u8> = vec![
            0xF0, 0xFF, 0xFF, 0x0F, 0xFF, 0xFF, 0xFF, 0x0F, 0xFF, 0xFF, 0xFF, 0x0F, 0x04, 0x00,
            0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
            0x08, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x0F, 0x0A, 0x00, 0x00, 0x00, 0x14, 0x00,
            0x00, 0x00, 0x0C, 0x00, 0x00, 0x00, 0x0D, 0x00, 0x00, 0x00, 0x0E, 0x00, 0x00, 0x00,
            0x0F, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0xFF, 0xFF,
            0xFF, 0x0F, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x0F, 0x15, 0x00, 0x00, 0x00,
            0x16, 0x00, 0x00, 0x00, 0x19, 0x00, 0x00, 0x00, 0xF7, 0xFF, 0xFF, 0x0F, 0xF7, 0xFF,
            0xFF, 0x0F, 0x1A, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x0F, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0xF7, 0xFF, 0xFF, 0x0F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00,
        ];
        test_fat(
            FatType::Fat32,
            StdIoWrapper::new(Cursor::<Vec<u8>>::new(fat)),
        );
    }
}
