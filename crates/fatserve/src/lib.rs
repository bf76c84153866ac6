//! The filesystem driver's logic: every filesystem-protocol operation (`fsproto`) carried out on
//! a FAT volume with `lamfat`, over a [`BlockDevice`] behind a write-back [`BlockCache`].
//!
//! `user/fs` is a thin program around [`FatServer::serve`]: bytes of a request in, bytes of the
//! reply out. The host tests run the same code over a file-backed device against images made
//! and checked by the host's own FAT tools.
//!
//! Guarantees: [`FatServer::serve`] answers every input, valid or not, with exactly one encoded
//! reply; nothing a client sends can make it panic (paths and sizes are checked by `fsproto`
//! before any operation runs). After a successful fsync every write is on the device and the
//! volume is marked clean; between fsyncs the volume carries FAT's dirty flag, so a crash is
//! visible to `fsck`.
//!
//! Between requests the server keeps up to [`MAX_OPEN`] files open (the open-file cache,
//! `files.rs`), so sequential reads and writes of a file continue where the previous request
//! ended instead of walking its cluster chain from the start; which requests close them, and
//! why durability is unchanged, is described there and in `docs/fs-protocol.md`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod cache;
mod files;
mod ops;

pub use cache::{
    BLOCK_BYTES, BlockCache, CacheStats, DIRECT_MIN, SharedCache, Storage, StorageError,
};
pub use files::MAX_OPEN;

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use files::OpenFiles;
use fsproto::{Error, Reply, Request};

/// A disk of 512-byte sectors, as the block protocol offers one. Each call moves at most
/// `blkproto::MAX_DATA` bytes, a whole number of sectors. A device is owned (`'static`): the
/// volume reaches it through a [`SharedCache`], which erases its type.
pub trait BlockDevice: 'static {
    /// The device's size in sectors.
    fn sectors(&mut self) -> Result<u64, blkproto::Error>;
    /// Reads `buf.len() / 512` sectors from `sector`.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), blkproto::Error>;
    /// Reads the sectors from `sector` into `frame[blkproto::HEADER_LEN..]`, using
    /// `frame[..HEADER_LEN]` as it likes: a block-protocol client receives the whole reply
    /// into the frame, its data landing in place, where a copy would otherwise follow.
    fn read_framed(&mut self, sector: u64, frame: &mut [u8]) -> Result<(), blkproto::Error> {
        self.read(sector, &mut frame[blkproto::HEADER_LEN..])
    }
    /// Writes `buf` at `sector`.
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), blkproto::Error>;
    /// Writes `frame[blkproto::HEADER_LEN..]` at `sector`, using `frame[..HEADER_LEN]` as it
    /// likes: a block-protocol client builds its request around the data in place.
    fn write_framed(&mut self, sector: u64, frame: &mut [u8]) -> Result<(), blkproto::Error> {
        self.write(sector, &frame[blkproto::HEADER_LEN..])
    }
    /// Makes every completed write durable.
    fn flush(&mut self) -> Result<(), blkproto::Error>;
}

self_cell::self_cell!(
    /// The mounted volume and the files open on it, which borrow it.
    struct Volume {
        owner: ops::Fs,
        #[covariant]
        dependent: OpenFiles,
    }
);

/// Cache blocks used by [`FatServer::mount`]: 256 × 4 KiB = 1 MiB.
pub const DEFAULT_CACHE_BLOCKS: usize = 256;

/// A mounted FAT volume answering filesystem-protocol requests.
pub struct FatServer<D: BlockDevice> {
    cache: Rc<RefCell<BlockCache<D>>>,
    /// `None` only if remounting after an fsync failed; every request then answers `Io`.
    vol: Option<Volume>,
    /// Where read data and directory pages are built before encoding.
    scratch: Vec<u8>,
}

/// Mounts the volume, with no file open yet.
fn mount_volume<D: BlockDevice>(cache: &Rc<RefCell<BlockCache<D>>>) -> Result<Volume, Error> {
    let shared: SharedCache = cache.clone();
    let fs = lamfat::FileSystem::new(Storage::new(shared.clone()), lamfat::FsOptions::new())
        .map_err(ops::fs_error)?;
    Ok(Volume::new(fs, |_| OpenFiles::new(shared)))
}

/// Refuses a volume whose boot sector claims more sectors than the device has (a truncated
/// image): lamfat would mount it and fail later, half-way through some operation.
fn check_volume_fits<D: BlockDevice + ?Sized>(cache: &mut BlockCache<D>) -> Result<(), Error> {
    let mut boot = [0u8; 40];
    cache.read_at(0, &mut boot).map_err(ops::storage_error)?;
    let bytes_per_sector = u16::from_le_bytes([boot[11], boot[12]]) as u64;
    let total16 = u16::from_le_bytes([boot[19], boot[20]]) as u64;
    let total32 = u32::from_le_bytes([boot[32], boot[33], boot[34], boot[35]]) as u64;
    let total = if total16 != 0 { total16 } else { total32 };
    if total * bytes_per_sector > cache.len() {
        return Err(Error::Corrupt);
    }
    Ok(())
}

/// Sectors from which [`format`] makes FAT32 (65,525 clusters of 512 bytes and the FATs).
pub const FAT32_MIN_SECTORS: u64 = 66_600;

/// Formats `dev` with a new, empty FAT volume named `label`: FAT32 with 512-byte clusters
/// when the device has at least [`FAT32_MIN_SECTORS`], else the FAT type that fits (lamfat's
/// choice). Everything is written and the device flushed; the device comes back for mounting.
pub fn format<D: BlockDevice>(dev: D, label: &[u8; 11]) -> Result<D, Error> {
    let cache = BlockCache::new(dev, 64).map_err(ops::storage_error)?;
    let sectors = cache.len() / blkproto::SECTOR_SIZE as u64;
    let cache = Rc::new(RefCell::new(cache));
    let mut opts = lamfat::FormatVolumeOptions::new()
        .volume_label(*label)
        .volume_id(0x4d58_4f45);
    if sectors >= FAT32_MIN_SECTORS {
        opts = opts.fat_type(lamfat::FatType::Fat32).bytes_per_cluster(512);
    }
    let shared: SharedCache = cache.clone();
    let mut storage = Storage::new(shared);
    lamfat::format_volume(&mut storage, opts).map_err(ops::fs_error)?;
    drop(storage);
    let mut cache = Rc::into_inner(cache).ok_or(Error::Io)?.into_inner();
    cache.flush().map_err(ops::storage_error)?;
    Ok(cache.into_device())
}

impl<D: BlockDevice> FatServer<D> {
    /// Mounts the FAT volume on `dev` with a cache of [`DEFAULT_CACHE_BLOCKS`].
    pub fn mount(dev: D) -> Result<Self, Error> {
        Self::mount_with_cache(dev, DEFAULT_CACHE_BLOCKS)
    }

    /// Mounts with a cache of `blocks` blocks of [`BLOCK_BYTES`].
    pub fn mount_with_cache(dev: D, blocks: usize) -> Result<Self, Error> {
        let mut cache = BlockCache::new(dev, blocks).map_err(ops::storage_error)?;
        check_volume_fits(&mut cache)?;
        let cache = Rc::new(RefCell::new(cache));
        let vol = mount_volume(&cache)?;
        Ok(FatServer {
            cache,
            vol: Some(vol),
            // Room for the device's header before a read's data (`BlockDevice::read_framed`).
            scratch: vec![0; blkproto::HEADER_LEN + fsproto::MAX_DATA],
        })
    }

    /// Decodes one request, carries it out and encodes the reply into `out` (at least
    /// [`fsproto::MAX_MESSAGE`] bytes); returns the reply's length. Undecodable input gets the
    /// reply of its operation with the error, or a rejection. The request's bytes may be
    /// overwritten: a write's data goes on to the device from where it lies, with the block
    /// protocol's header written before it.
    pub fn serve(&mut self, msg: &mut [u8], out: &mut [u8]) -> usize {
        let (id, path, offset, len) = match Request::decode(msg) {
            Ok(Request::Write {
                id,
                path,
                offset,
                data,
            }) => (id, String::from(path), offset, data.len()),
            decoded => return self.answer(decoded, msg, out),
        };
        // The data ends the message; the room before it overlaps the path, kept aside above.
        let at = msg.len() - len;
        let result = self.write_in_place(&path, offset, &mut msg[at - ops::ROOM..]);
        Reply::Write { id, result }.encode(out).unwrap_or(0)
    }

    /// The reply to a request other than a write (or to bytes that do not decode), in `out`.
    fn answer(
        &mut self,
        decoded: Result<Request<'_>, fsproto::DecodeError>,
        msg: &[u8],
        out: &mut [u8],
    ) -> usize {
        let reply = match decoded {
            Ok(Request::Read {
                id,
                path,
                offset,
                len,
            }) => match self.read_in_place(id, path, offset, len, out) {
                Ok(n) => return n,
                Err(e) => Reply::Read { id, result: Err(e) },
            },
            Ok(req) => self.handle(&req),
            Err(e) => {
                let id = fsproto::peek_id(msg).unwrap_or(0);
                match fsproto::peek_op(msg) {
                    Some(op) => Reply::error_for(op, id, e.reply_error()),
                    None => Reply::Rejected {
                        id,
                        error: e.reply_error(),
                    },
                }
            }
        };
        match reply.encode(out) {
            Ok(n) => n,
            // Only a too-small `out` gets here; answer what still fits.
            Err(_) => Reply::Rejected {
                id: reply.id(),
                error: Error::TooBig,
            }
            .encode(out)
            .unwrap_or(0),
        }
    }

    /// A read, its reply built in `out`: the file's bytes are read straight to where the
    /// reply carries them, then the header is written before them; returns the reply's length.
    fn read_in_place(
        &mut self,
        id: u32,
        path: &str,
        offset: u64,
        len: u32,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let vol = self.vol.as_mut().ok_or(Error::Io)?;
        if out.len() < fsproto::HEADER_LEN + len as usize {
            return Err(Error::TooBig);
        }
        let (n, size) = vol.with_dependent_mut(|fs, files| {
            ops::read_in_place(fs, files, path, offset, len, out)
        })?;
        Reply::encode_read_in_place(out, id, size, n).map_err(|_| Error::TooBig)
    }

    /// A write of `frame[ops::ROOM..]` at `offset` of the file at `path`; the device may
    /// overwrite the room before each piece it is given.
    fn write_in_place(&mut self, path: &str, offset: u64, frame: &mut [u8]) -> Result<u64, Error> {
        let vol = self.vol.as_mut().ok_or(Error::Io)?;
        vol.with_dependent_mut(|fs, files| ops::write_in_place(fs, files, path, offset, frame))
    }

    /// Carries out one decoded request.
    pub fn handle(&mut self, req: &Request<'_>) -> Reply<'_> {
        let id = req.id();
        if let Request::Fsync { .. } = req {
            return Reply::Fsync {
                id,
                result: self.fsync(),
            };
        }
        let Some(vol) = self.vol.as_mut() else {
            return Reply::error_for(req.op(), id, Error::Io);
        };
        let scratch = &mut self.scratch;
        vol.with_dependent_mut(|fs, files| ops::handle(fs, files, req, scratch))
    }

    /// Closes the open files, unmounts (writing FAT's free-space information and clearing the
    /// dirty flag), writes every cached block, flushes the device and mounts again.
    pub fn fsync(&mut self) -> Result<(), Error> {
        if let Some(vol) = self.vol.take() {
            // The open files go first: they borrow the volume.
            vol.into_owner().unmount().map_err(ops::fs_error)?;
        }
        self.cache
            .borrow_mut()
            .flush()
            .map_err(ops::storage_error)?;
        self.vol = Some(mount_volume(&self.cache)?);
        Ok(())
    }

    /// The cache's counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.borrow().stats()
    }

    /// Runs `f` on the device (tests use it to inspect or break the device).
    pub fn with_device<R>(&mut self, f: impl FnOnce(&mut D) -> R) -> R {
        f(self.cache.borrow_mut().device())
    }

    /// Drops the volume and every cached block without writing anything more: what a crash
    /// of the driver leaves on the device. `None` only if the cache were still shared.
    pub fn crash(self) -> Option<D> {
        let FatServer { cache, vol, .. } = self;
        cache.borrow_mut().discard();
        // lamfat writes its state when dropped; that lands in the cache, discarded again.
        drop(vol);
        cache.borrow_mut().discard();
        Rc::try_unwrap(cache)
            .ok()
            .map(|c| c.into_inner().into_device())
    }
}
