//! Files: reading, writing, seeking and truncating along their cluster chains.
use core::convert::TryFrom;

use crate::{
    dir_entry::DirEntryEditor,
    error::Error,
    fs::{FileSystem, ReadWriteSeek},
    io::{IoBase, Read, Seek, SeekFrom, Write},
    time::{Date, DateTime, TimeProvider},
};

const MAX_FILE_SIZE: u32 = u32::MAX;

/// A FAT filesystem file object used for reading and writing data.
///
/// This struct is created by the `open_file` or `create_file` methods on `Dir`.
pub struct File<'a, IO: ReadWriteSeek, TP, OCC> {
    // Note first_cluster is None if file is empty
    first_cluster: Option<u32>,
    // Note: if offset points between clusters current_cluster is the previous cluster
    current_cluster: Option<u32>,
    // current position in this file
    offset: u32,
    // file dir entry editor - None for root dir
    entry: Option<DirEntryEditor>,
    // file-system reference
    fs: &'a FileSystem<IO, TP, OCC>,
}

/// An extent containing a file's data on disk.
///
/// This is created by the `extents` method on `File`, and represents
/// a byte range on the disk that contains a file's data. All values
/// are in bytes.
#[derive(Clone, Debug)]
pub struct Extent {
    pub offset: u64,
    pub size: u32,
}

impl<'a, IO: ReadWriteSeek, TP, OCC> File<'a, IO, TP, OCC> {
    pub(crate) fn new(
        first_cluster: Option<u32>,
        entry: Option<DirEntryEditor>,
        fs: &'a FileSystem<IO, TP, OCC>,
    ) -> Self {
        File {
            first_cluster,
            entry,
            fs,
            current_cluster: None, // cluster before first one
            offset: 0,
        }
    }

    /// Truncate file in current position.
    ///
    /// # Errors
    ///
    /// `Error::Io` will be returned if the underlying storage object returned an I/O error.
    ///
    /// # Panics
    ///
    /// Will panic if this is the root directory.
    pub fn truncate(&mut self) -> Result<(), Error<IO::Error>> {
        trace!("File::truncate");
        if let Some(ref mut e) = self.entry {
            e.set_size(self.offset);
            if self.offset == 0 {
                e.set_first_cluster(None, self.fs.fat_type());
            }
        } else {
            // Note: we cannot handle this case because there is no size field
            panic!("Trying to truncate a file without an entry");
        }
        if let Some(current_cluster) = self.current_cluster {
            // current cluster is none only if offset is 0
            debug_assert!(self.offset > 0);
            self.fs.truncate_cluster_chain(current_cluster)
        } else {
            debug_assert_eq!(self.offset, 0);
            if let Some(n) = self.first_cluster {
                self.fs.free_cluster_chain(n)?;
                self.first_cluster = None;
            }
            Ok(())
        }
    }

    /// Get the extents of a file on disk.
    ///
    /// This returns an iterator over the byte ranges on-disk occupied by
    /// this file.
    pub fn extents(&mut self) -> impl Iterator<Item = Result<Extent, Error<IO::Error>>> + 'a {
        let fs = self.fs;
        let cluster_size = fs.cluster_size();
        let Some(mut bytes_left) = self.size() else {
            return None.into_iter().flatten();
        };
        let Some(first) = self.first_cluster else {
            return None.into_iter().flatten();
        };

        Some(
            core::iter::once(Ok(first))
                .chain(fs.cluster_iter(first))
                .map(move |cluster_err| match cluster_err {
                    Ok(cluster) => {
                        let size = cluster_size.min(bytes_left);
                        bytes_left -= size;
                        Ok(Extent {
                            offset: fs.offset_from_cluster(cluster),
                            size,
                        })
                    }
                    Err(e) => Err(e),
                }),
        )
        .into_iter()
        .flatten()
    }

    /// Where the file's data lies on the disk, as runs of clusters that lie one after another
    /// (moxie: one FAT access per run and sector of the FAT instead of one per cluster). Each
    /// extent is a run's bytes, the last one cut at the file's size.
    pub fn runs(&self) -> impl Iterator<Item = Result<Extent, Error<IO::Error>>> + 'a {
        let fs = self.fs;
        let cluster_size = u64::from(fs.cluster_size());
        let mut bytes_left = u64::from(self.size().unwrap_or(0));
        let mut next = self.first_cluster.filter(|_| bytes_left > 0);
        core::iter::from_fn(move || {
            let cluster = next.take()?;
            let max = u32::try_from(bytes_left.div_ceil(cluster_size)).unwrap_or(u32::MAX);
            match fs.contiguous_run(cluster, max) {
                Ok((run, after)) => {
                    let size = (u64::from(run) * cluster_size).min(bytes_left);
                    bytes_left -= size;
                    next = after.filter(|_| bytes_left > 0);
                    Some(Ok(Extent {
                        offset: fs.offset_from_cluster(cluster),
                        size: size as u32,
                    }))
                }
                Err(e) => Some(Err(e)),
            }
        })
    }

    pub(crate) fn abs_pos(&self) -> Option<u64> {
        // Returns current position relative to filesystem start
        // Note: when between clusters it returns position after previous cluster
        match self.current_cluster {
            Some(n) => {
                let cluster_size = self.fs.cluster_size();
                let offset_mod_cluster_size = self.offset % cluster_size;
                let offset_in_cluster = if offset_mod_cluster_size == 0 {
                    // position points between clusters - we are returning previous cluster so
                    // offset must be set to the cluster size
                    cluster_size
                } else {
                    offset_mod_cluster_size
                };
                let offset_in_fs = self.fs.offset_from_cluster(n) + u64::from(offset_in_cluster);
                Some(offset_in_fs)
            }
            None => None,
        }
    }

    fn flush_dir_entry(&mut self) -> Result<(), Error<IO::Error>> {
        if let Some(ref mut e) = self.entry {
            e.flush(self.fs)?;
        }
        Ok(())
    }

    /// Sets date and time of creation for this file.
    ///
    /// Note: it is set to a value from the `TimeProvider` when creating a file.
    pub fn set_created(&mut self, date_time: DateTime) {
        if let Some(ref mut e) = self.entry {
            e.set_created(date_time);
        }
    }

    /// Sets date of last access for this file.
    ///
    /// Note: it is overwritten by a value from the `TimeProvider` on every file read operation.
    pub fn set_accessed(&mut self, date: Date) {
        if let Some(ref mut e) = self.entry {
            e.set_accessed(date);
        }
    }

    /// Sets date and time of last modification for this file.
    ///
    /// Note: it is overwritten by a value from the `TimeProvider` on every file write operation.
    pub fn set_modified(&mut self, date_time: DateTime) {
        if let Some(ref mut e) = self.entry {
            e.set_modified(date_time);
        }
    }

    fn size(&self) -> Option<u32> {
        match self.entry {
            Some(ref e) => e.inner().size(),
            None => None,
        }
    }

    fn is_dir(&self) -> bool {
        match self.entry {
            Some(ref e) => e.inner().is_dir(),
            None => true, // root directory
        }
    }

    fn bytes_left_in_file(&self) -> Option<usize> {
        // Note: seeking beyond end of file is not allowed so overflow is impossible
        self.size().map(|s| (s - self.offset) as usize)
    }

    fn set_first_cluster(&mut self, cluster: u32) {
        self.first_cluster = Some(cluster);
        if let Some(ref mut e) = self.entry {
            e.set_first_cluster(self.first_cluster, self.fs.fat_type());
        }
    }

    pub(crate) fn first_cluster(&self) -> Option<u32> {
        self.first_cluster
    }

    /// How many clusters from `cluster` on lie one after another in the chain, as far as
    /// `bytes` from `offset_in_cluster` of it reach (at least 1).
    fn contiguous_span(
        &self,
        cluster: u32,
        offset_in_cluster: u32,
        bytes: usize,
    ) -> Result<u32, Error<IO::Error>> {
        let cluster_size = u64::from(self.fs.cluster_size());
        let clusters = (u64::from(offset_in_cluster) + bytes as u64).div_ceil(cluster_size);
        if clusters <= 1 {
            return Ok(1);
        }
        let max = u32::try_from(clusters).unwrap_or(u32::MAX);
        Ok(self.fs.contiguous_run(cluster, max)?.0)
    }

    fn flush(&mut self) -> Result<(), Error<IO::Error>> {
        self.flush_dir_entry()?;
        let mut disk = self.fs.disk.borrow_mut();
        disk.flush()?;
        Ok(())
    }

    pub(crate) fn is_root_dir(&self) -> bool {
        self.entry.is_none()
    }
}

impl<IO: ReadWriteSeek, TP: TimeProvider, OCC> File<'_, IO, TP, OCC> {
    fn update_dir_entry_after_write(&mut self) {
        let offset = self.offset;
        if let Some(ref mut e) = self.entry {
            let now = self.fs.options.time_provider.get_current_date_time();
            e.set_modified(now);
            if e.inner().size().is_some_and(|s| offset > s) {
                e.set_size(offset);
            }
        }
    }
}

impl<IO: ReadWriteSeek, TP, OCC> Drop for File<'_, IO, TP, OCC> {
    fn drop(&mut self) {
        if let Err(err) = self.flush() {
            error!("flush failed {:?}", err);
        }
    }
}

// Note: derive cannot be used because of invalid bounds. See: https://github.com/rust-lang/rust/issues/26925
impl<IO: ReadWriteSeek, TP, OCC> Clone for File<'_, IO, TP, OCC> {
    fn clone(&self) -> Self {
        File {
            first_cluster: self.first_cluster,
            current_cluster: self.current_cluster,
            offset: self.offset,
            entry: self.entry.clone(),
            fs: self.fs,
        }
    }
}

impl<IO: ReadWriteSeek, TP, OCC> IoBase for File<'_, IO, TP, OCC> {
    type Error = Error<IO::Error>;
}

impl<IO: ReadWriteSeek, TP: TimeProvider, OCC> Read for File<'_, IO, TP, OCC> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        trace!("File::read");
        let cluster_size = self.fs.cluster_size();
        let current_cluster_opt = if self.offset % cluster_size == 0 {
            // next cluster
            match self.current_cluster {
                None => self.first_cluster,
                Some(n) => {
                    let r = self.fs.cluster_iter(n).next();
                    match r {
                        Some(Err(err)) => return Err(err),
                        Some(Ok(n)) => Some(n),
                        None => None,
                    }
                }
            }
        } else {
            self.current_cluster
        };
        let Some(current_cluster) = current_cluster_opt else {
            return Ok(0);
        };
        let offset_in_cluster = self.offset % cluster_size;
        let bytes_left_in_file = self.bytes_left_in_file().unwrap_or(usize::MAX);
        let want = buf.len().min(bytes_left_in_file);
        if want == 0 {
            return Ok(0);
        }
        // moxie: one read for the clusters that lie one after another, not one per cluster.
        let run = self.contiguous_span(current_cluster, offset_in_cluster, want)?;
        let read_size = want.min(run_bytes(run, cluster_size, offset_in_cluster));
        trace!("read {} bytes in cluster {}", read_size, current_cluster);
        let offset_in_fs =
            self.fs.offset_from_cluster(current_cluster) + u64::from(offset_in_cluster);
        let read_bytes = {
            let mut disk = self.fs.disk.borrow_mut();
            disk.seek(SeekFrom::Start(offset_in_fs))?;
            disk.read(&mut buf[..read_size])?
        };
        if read_bytes == 0 {
            return Ok(0);
        }
        self.offset += read_bytes as u32;
        self.current_cluster = Some(last_cluster(
            current_cluster,
            offset_in_cluster,
            read_bytes,
            cluster_size,
        ));

        if let Some(ref mut e) = self.entry {
            if self.fs.options.update_accessed_date {
                let now = self.fs.options.time_provider.get_current_date();
                e.set_accessed(now);
            }
        }
        Ok(read_bytes)
    }
}

/// Bytes from `offset_in_cluster` of the first of `run` clusters to the end of the last.
fn run_bytes(run: u32, cluster_size: u32, offset_in_cluster: u32) -> usize {
    (u64::from(run) * u64::from(cluster_size) - u64::from(offset_in_cluster))
        .try_into()
        .unwrap_or(usize::MAX)
}

/// The cluster holding the last of `bytes` bytes moved from `offset_in_cluster` of `first`, in
/// a run of clusters that lie one after another.
fn last_cluster(first: u32, offset_in_cluster: u32, bytes: usize, cluster_size: u32) -> u32 {
    first + ((u64::from(offset_in_cluster) + bytes as u64 - 1) / u64::from(cluster_size)) as u32
}

#[cfg(feature = "std")]
impl<IO: ReadWriteSeek, TP: TimeProvider, OCC> std::io::Read for File<'_, IO, TP, OCC>
where
    std::io::Error: From<Error<IO::Error>>,
{
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Ok(Read::read(self, buf)?)
    }
}

impl<IO: ReadWriteSeek, TP: TimeProvider, OCC> File<'_, IO, TP, OCC> {
    /// Writes `len` bytes at the file's position as [`Write::write_all`] does, allocating
    /// clusters and updating the position and the directory entry, except that the bytes are
    /// the caller's to place: for each stretch, `put(disk_offset, from, n)` writes bytes
    /// `from..from + n` of the caller's data at `disk_offset` of the storage (moxie: the driver
    /// sends a file's data on from the buffer it arrived in, without a copy through lamfat).
    ///
    /// # Errors
    ///
    /// `put`'s error, or those of allocating clusters (`NotEnoughSpace`) and of the storage.
    pub fn write_placed(
        &mut self,
        len: usize,
        mut put: impl FnMut(u64, usize, usize) -> Result<(), IO::Error>,
    ) -> Result<(), Error<IO::Error>> {
        let mut done = 0;
        while done < len {
            let n = self.write_span(len - done, |at, n| {
                put(at, done, n)?;
                Ok(n)
            })?;
            if n == 0 {
                return Err(Error::WriteZero);
            }
            done += n;
        }
        Ok(())
    }

    /// Writes up to `want` bytes at the file's position, as many as the clusters from there
    /// that lie one after another take (allocating them at the end of the chain), through
    /// `put(disk_offset, n)`, which returns how many it wrote; updates the position and the
    /// directory entry.
    fn write_span(
        &mut self,
        want: usize,
        put: impl FnOnce(u64, usize) -> Result<usize, IO::Error>,
    ) -> Result<usize, Error<IO::Error>> {
        trace!("File::write");
        let cluster_size = self.fs.cluster_size();
        let offset_in_cluster = self.offset % cluster_size;
        let bytes_left_until_max_file_size = (MAX_FILE_SIZE - self.offset) as usize;
        let want = want.min(bytes_left_until_max_file_size);
        // Exit early if we are going to write no data
        if want == 0 {
            return Ok(0);
        }
        // Mark the volume 'dirty'
        self.fs.set_dirty_flag(true)?;
        // moxie: the clusters the write can fill in one go: the run of neighbours from the
        // current one, or a run allocated at the end of the chain.
        let (current_cluster, run) = if self.offset % cluster_size == 0 {
            // next cluster
            let next_cluster = match self.current_cluster {
                None => self.first_cluster,
                Some(n) => {
                    let r = self.fs.cluster_iter(n).next();
                    match r {
                        Some(Err(err)) => return Err(err),
                        Some(Ok(n)) => Some(n),
                        None => None,
                    }
                }
            };
            if let Some(n) = next_cluster {
                (n, self.contiguous_span(n, 0, want)?)
            } else if self.is_dir() {
                // end of chain reached - allocate new cluster (zeroed: directory entries)
                let new_cluster = self.fs.alloc_cluster(self.current_cluster, true)?;
                trace!("allocated cluster {}", new_cluster);
                if self.first_cluster.is_none() {
                    self.set_first_cluster(new_cluster);
                }
                (new_cluster, 1)
            } else {
                // end of chain reached - allocate as many clusters as the write fills
                let clusters = want.div_ceil(cluster_size as usize);
                let (first, count) = self.fs.alloc_run(
                    self.current_cluster,
                    u32::try_from(clusters).unwrap_or(u32::MAX),
                )?;
                trace!("allocated {} clusters from {}", count, first);
                if self.first_cluster.is_none() {
                    self.set_first_cluster(first);
                }
                (first, count)
            }
        } else {
            // self.current_cluster should be a valid cluster
            match self.current_cluster {
                Some(n) => (n, self.contiguous_span(n, offset_in_cluster, want)?),
                None => panic!("Offset inside cluster but no cluster allocated"),
            }
        };
        let write_size = want.min(run_bytes(run, cluster_size, offset_in_cluster));
        trace!("write {} bytes in cluster {}", write_size, current_cluster);
        let offset_in_fs =
            self.fs.offset_from_cluster(current_cluster) + u64::from(offset_in_cluster);
        let written_bytes = put(offset_in_fs, write_size)?;
        if written_bytes == 0 {
            return Ok(0);
        }
        // some bytes were writter - update position and optionally size
        self.offset += written_bytes as u32;
        self.current_cluster = Some(last_cluster(
            current_cluster,
            offset_in_cluster,
            written_bytes,
            cluster_size,
        ));
        self.update_dir_entry_after_write();
        Ok(written_bytes)
    }
}

impl<IO: ReadWriteSeek, TP: TimeProvider, OCC> Write for File<'_, IO, TP, OCC> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let disk = &self.fs.disk;
        self.write_span(buf.len(), |at, n| {
            let mut disk = disk.borrow_mut();
            disk.seek(SeekFrom::Start(at))?;
            disk.write(&buf[..n])
        })
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Self::flush(self)
    }
}

#[cfg(feature = "std")]
impl<IO: ReadWriteSeek, TP: TimeProvider, OCC> std::io::Write for File<'_, IO, TP, OCC>
where
    std::io::Error: From<Error<IO::Error>>,
{
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(Write::write(self, buf)?)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        Ok(Write::write_all(self, buf)?)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(Write::flush(self)?)
    }
}

impl<IO: ReadWriteSeek, TP, OCC> Seek for File<'_, IO, TP, OCC> {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64, Self::Error> {
        trace!("File::seek");
        let size_opt = self.size();
        let new_offset_opt: Option<u32> = match pos {
            SeekFrom::Current(x) => i64::from(self.offset)
                .checked_add(x)
                .and_then(|n| u32::try_from(n).ok()),
            SeekFrom::Start(x) => u32::try_from(x).ok(),
            SeekFrom::End(o) => size_opt
                .and_then(|s| i64::from(s).checked_add(o))
                .and_then(|n| u32::try_from(n).ok()),
        };
        let Some(mut new_offset) = new_offset_opt else {
            error!("Invalid seek offset");
            return Err(Error::InvalidInput);
        };
        if let Some(size) = size_opt {
            if new_offset > size {
                warn!("Seek beyond the end of the file");
                new_offset = size;
            }
        }
        trace!(
            "file seek {} -> {} - entry {:?}",
            self.offset,
            new_offset,
            self.entry
        );
        if new_offset == self.offset {
            // position is the same - nothing to do
            return Ok(u64::from(self.offset));
        }
        let new_offset_in_clusters = self.fs.clusters_from_bytes(u64::from(new_offset));
        let old_offset_in_clusters = self.fs.clusters_from_bytes(u64::from(self.offset));
        let new_cluster = if new_offset == 0 {
            None
        } else if new_offset_in_clusters == old_offset_in_clusters {
            self.current_cluster
        } else if let Some(first_cluster) = self.first_cluster {
            // calculate number of clusters to skip
            // return the previous cluster if the offset points to the cluster boundary
            // Note: new_offset_in_clusters cannot be 0 here because new_offset is not 0
            debug_assert!(new_offset_in_clusters > 0);
            let clusters_to_skip = new_offset_in_clusters - 1;
            // moxie: a run of neighbouring clusters is skipped at once.
            let mut cluster = first_cluster;
            let mut left = clusters_to_skip;
            while left > 0 {
                let (run, next) = self.fs.contiguous_run(cluster, left.saturating_add(1))?;
                let step = (run - 1).min(left);
                cluster += step;
                left -= step;
                if left == 0 {
                    break;
                }
                if let Some(n) = next {
                    cluster = n;
                    left -= 1;
                } else {
                    // cluster chain ends before the new position - seek to the end of the last cluster
                    new_offset = self.fs.bytes_from_clusters(clusters_to_skip - left + 1) as u32;
                    break;
                }
            }
            Some(cluster)
        } else {
            // empty file - always seek to 0
            new_offset = 0;
            None
        };
        self.offset = new_offset;
        self.current_cluster = new_cluster;
        Ok(u64::from(self.offset))
    }
}

#[cfg(feature = "std")]
impl<IO: ReadWriteSeek, TP: TimeProvider, OCC> std::io::Seek for File<'_, IO, TP, OCC>
where
    std::io::Error: From<Error<IO::Error>>,
{
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        Ok(Seek::seek(self, pos.into())?)
    }
}
