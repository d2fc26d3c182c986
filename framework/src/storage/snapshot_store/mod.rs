//! [`SnapshotStore`]: the durable [`SnapshotStorage`], snapshot files in a directory of their
//! own (`<wal dir>/snapshots` for a [`super::WalStorage`]).
//!
//! ```text
//!  dir/
//!    snapshot-<term>-<index>.snap      the latest complete snapshot (normally the only one)
//!    snapshot-<term>-<index>.<n>.tmp   a snapshot being saved (n tells concurrent saves apart)
//!    partial-<term>-<index>.part       a snapshot being received
//! ```
//! The file format is in `file.rs`: a metadata record, the data, then the data's length and
//! CRC-32C. Data is streamed in and out, so a snapshot never has to fit in memory.
//!
//! ## How a snapshot becomes the latest
//! ```text
//!  save:    data ──stream──► .tmp ─┐
//!                                  ├─ fsync ─► rename to .snap ─► fsync dir ─► delete the others
//!  receive: chunks ──► .part ──────┘  (install_partial: trailer first)          ─► fsync dir
//! ```
//! Both end in the same publish step, under one lock: a save whose snapshot is not newer than
//! the latest drops its file instead. A crash anywhere leaves the old latest or the new one, and
//! perhaps `.tmp`/`.part` leftovers, which [`SnapshotStore::open`] deletes: a temp file never
//! counted, and a partial snapshot is volatile (the leader resends from where the follower says).
//!
//! ## Reading beside writing
//! Methods take `&self` and run on several threads at once: a build's `save` beside the
//! chunk reads that send the previous snapshot, beside a receive. Complete files are never
//! changed, only created by rename and deleted, so a handle from `open_chunks` (an open file)
//! reads the bytes it opened to the end even once a newer snapshot replaced it (unix keeps a
//! deleted file readable while it is open; its space is freed at the last close), and an
//! `open_chunks` after the delete gets `Ok(None)`. The node holds one handle per follower for
//! the whole transfer, so compaction never pulls a snapshot away from a slow download.
//!
//! NB: a file is addressed by `last_included` alone. Saving a snapshot with the `last_included`
//! of the one already stored keeps the stored one (the same log prefix gives the same state);
//! only `install_partial` replaces a file under its own name, which the protocol never asks for
//! (a follower installs only snapshots past its commit index, its own snapshots are below it).
//!
//! The latest snapshot's metadata is verified once, on open (its data is read through and
//! checked), and then kept in memory; `open` checks the data again as it streams it.
//! [`SnapshotStore::open`] expects to be the only store using its directory (inside a
//! `WalStorage` the data directory's lock sees to that).

mod file;
mod partial;

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::warn;

use crate::membership::Membership;
use crate::types::{LogId, SnapshotMeta};

use super::wal::{io_error, Crc32c};
use super::{SnapshotChunks, SnapshotData, SnapshotStorage, StorageError};

pub use file::SnapshotReader;
use file::{
    corrupt, file_name, list, newness, parse_file_name, read_header, sync_dir, PARTIAL_EXTENSION,
    SNAPSHOT_EXTENSION, TEMP_EXTENSION,
};
use partial::Partial;

/// Chunk size for streaming data in.
const CHUNK_BYTES: usize = 64 << 10;

/// A snapshot being saved is flushed to disk every this many bytes, not all at the end. The
/// log's fsyncs share the disk (and, on ext4, the journal) with it: one fsync of a whole 26 MB
/// snapshot made the log's next fsync wait for all 26 MB, and every write with it (raftor-kv,
/// 4 KiB values: p99 55-75 ms). Flushed a mebibyte at a time, the log waits for one mebibyte
/// at most.
const SYNC_EVERY_BYTES: u64 = 1 << 20;

/// A directory of snapshot files, of which the newest complete one counts.
#[derive(Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    /// The latest complete, durable snapshot. Held while a snapshot is published, so publishing
    /// is one step for every other thread. Lock order: `partial`, then `latest`.
    latest: Mutex<Option<SnapshotMeta>>,
    /// The snapshot being received, if any.
    partial: Mutex<Option<Partial>>,
    /// Numbers the temp files of concurrent saves.
    next_temp: AtomicU64,
}

/// Locks a mutex whose data every operation leaves consistent (a panic cannot tear it).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SnapshotStore {
    /// Opens (creating it if needed) the snapshot directory, deletes unfinished writes and finds
    /// the latest snapshot: the newest that verifies (metadata, length and data checksum).
    /// Newer files that fail verification are skipped with a warning (and deleted by the next
    /// snapshot that becomes the latest).
    pub fn open(dir: impl AsRef<Path>) -> Result<SnapshotStore, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_error("create snapshot directory"))?;
        for extension in [TEMP_EXTENSION, PARTIAL_EXTENSION] {
            for path in list(&dir, extension)? {
                fs::remove_file(&path).map_err(io_error("remove unfinished snapshot"))?;
            }
        }
        let latest = find_latest(&dir)?;
        Ok(SnapshotStore {
            dir,
            latest: Mutex::new(latest),
            partial: Mutex::new(None),
            next_temp: AtomicU64::new(0),
        })
    }

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, last_included: LogId) -> PathBuf {
        self.dir.join(file_name(last_included))
    }

    /// Makes the complete, fsynced file `source` the latest snapshot `meta`: renames it into
    /// place, fsyncs the directory, then deletes every other snapshot.
    fn publish(
        &self,
        source: &Path,
        meta: &SnapshotMeta,
        latest: &mut Option<SnapshotMeta>,
    ) -> Result<(), StorageError> {
        let path = self.path_of(meta.last_included);
        fs::rename(source, &path).map_err(io_error("rename snapshot"))?;
        sync_dir(&self.dir)?;
        *latest = Some(meta.clone());
        let mut removed = false;
        for other in list(&self.dir, SNAPSHOT_EXTENSION)? {
            if other != path {
                fs::remove_file(&other).map_err(io_error("remove old snapshot"))?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Opens the complete snapshot ending at `last_included`: the file and its metadata, or
    /// `None` if it is not held.
    fn open_file(
        &self,
        last_included: LogId,
    ) -> Result<Option<(File, SnapshotMeta, u64, PathBuf)>, StorageError> {
        let path = self.path_of(last_included);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("open snapshot")(e)),
        };
        let (meta, header_bytes) = read_header(&mut file, &path)?;
        Ok(Some((file, meta, header_bytes, path)))
    }
}

/// The newest snapshot in `dir` that verifies.
fn find_latest(dir: &Path) -> Result<Option<SnapshotMeta>, StorageError> {
    let mut found: Vec<(LogId, PathBuf)> = list(dir, SNAPSHOT_EXTENSION)?
        .into_iter()
        .filter_map(|path| Some((parse_file_name(&path)?, path)))
        .collect();
    found.sort_by_key(|(last_included, _)| std::cmp::Reverse(newness(*last_included)));
    for (_, path) in found {
        match file::verify(&path) {
            Ok(meta) => return Ok(Some(meta)),
            Err(error) => warn!(file = %path.display(), %error, "skipping a bad snapshot"),
        }
    }
    Ok(None)
}

impl SnapshotStorage for SnapshotStore {
    fn latest(&self) -> Result<Option<SnapshotMeta>, StorageError> {
        Ok(lock(&self.latest).clone())
    }

    fn save(
        &self,
        last_included: LogId,
        membership: Membership,
        data: &mut dyn Read,
    ) -> Result<SnapshotMeta, StorageError> {
        let serial = self.next_temp.fetch_add(1, Ordering::Relaxed);
        let temp = self
            .path_of(last_included)
            .with_extension(format!("{serial}.tmp"));
        let written = write_temp(&temp, last_included, &membership, data);
        let size_bytes = match written {
            Ok(size_bytes) => size_bytes,
            Err(error) => {
                let _ = fs::remove_file(&temp);
                return Err(error);
            }
        };
        let meta = SnapshotMeta {
            last_included,
            membership,
            size_bytes,
        };
        let mut latest = lock(&self.latest);
        if let Some(stored) = latest
            .as_ref()
            .filter(|stored| newness(stored.last_included) >= newness(last_included))
        {
            let _ = fs::remove_file(&temp);
            return Ok(stored.clone());
        }
        self.publish(&temp, &meta, &mut latest)?;
        Ok(meta)
    }

    fn open_chunks(
        &self,
        last_included: LogId,
    ) -> Result<Option<Arc<dyn SnapshotChunks>>, StorageError> {
        let Some((file, meta, header_bytes, path)) = self.open_file(last_included)? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(FileChunks {
            file,
            header_bytes,
            size_bytes: meta.size_bytes,
            path,
        })))
    }

    fn open(&self, meta: &SnapshotMeta) -> Result<Option<SnapshotData>, StorageError> {
        let Some((file, stored, _, path)) = self.open_file(meta.last_included)? else {
            return Ok(None);
        };
        if stored != *meta {
            return Ok(None);
        }
        // `read_header` left the file right after the header: the reader starts at the data.
        let reader = SnapshotReader::new(BufReader::new(file), meta.size_bytes, path);
        Ok(Some(Box::new(reader)))
    }

    fn write_partial(
        &self,
        meta: &SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> Result<(), StorageError> {
        let mut partial = lock(&self.partial);
        if offset == 0 {
            if let Some(other) = partial.take() {
                other.discard();
            }
            *partial = Some(Partial::create(&self.dir, meta)?);
        }
        let Some(receiving) = partial
            .as_mut()
            .filter(|p| p.meta == *meta && p.written == offset)
        else {
            return Err(StorageError::Invalid(format!(
                "snapshot chunk at {offset} of {} does not continue the partial snapshot",
                meta.last_included
            )));
        };
        let result = receiving.write(data);
        if let Err(StorageError::Io { .. }) = result {
            // The file may hold part of the chunk: start over rather than trust it.
            if let Some(broken) = partial.take() {
                broken.discard();
            }
        }
        result
    }

    fn install_partial(&self, meta: &SnapshotMeta) -> Result<(), StorageError> {
        let mut partial = lock(&self.partial);
        let receiving = match partial.take() {
            Some(p) if p.meta == *meta && p.is_complete() => p,
            other => {
                *partial = other;
                return Err(StorageError::Invalid(format!(
                    "no complete partial snapshot of {} to install",
                    meta.last_included
                )));
            }
        };
        let mut latest = lock(&self.latest);
        let installed = receiving
            .seal()
            .and_then(|()| self.publish(&receiving.path, meta, &mut latest));
        if installed.is_err() {
            receiving.discard();
        }
        installed
    }
}

/// Writes metadata, data and trailer to `temp` and fsyncs it; returns the data's length.
fn write_temp(
    temp: &Path,
    last_included: LogId,
    membership: &Membership,
    data: &mut dyn Read,
) -> Result<u64, StorageError> {
    let file = File::create(temp).map_err(io_error("create snapshot"))?;
    let mut out = BufWriter::new(file);
    let write = io_error("write snapshot");
    // The length is not known until the data has been read: the header says 0 until rewritten.
    let placeholder = file::encode_header(last_included, membership, 0)?;
    out.write_all(&placeholder).map_err(&write)?;
    let mut size_bytes = 0u64;
    let mut unsynced = 0u64;
    let mut crc = Crc32c::default();
    let mut chunk = vec![0u8; CHUNK_BYTES];
    loop {
        let read = match data.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("read snapshot data")(e)),
        };
        crc.update(&chunk[..read]);
        out.write_all(&chunk[..read]).map_err(&write)?;
        size_bytes += read as u64;
        unsynced += read as u64;
        if unsynced >= SYNC_EVERY_BYTES {
            out.flush().map_err(&write)?;
            out.get_ref()
                .sync_data()
                .map_err(io_error("fsync snapshot"))?;
            unsynced = 0;
        }
    }
    out.write_all(&file::encode_trailer(size_bytes, crc.finish()))
        .map_err(&write)?;
    let file = out.into_inner().map_err(|e| write(e.into_error()))?;
    let header = file::encode_header(last_included, membership, size_bytes)?;
    // Fixed-width length: the real header is exactly as long as the placeholder.
    file.write_all_at(&header, 0).map_err(&write)?;
    file.sync_all().map_err(io_error("fsync snapshot"))?;
    Ok(size_bytes)
}

#[cfg(test)]
mod tests;

/// An open snapshot file, read at offsets: it stays readable while held even once a newer
/// snapshot replaced it and its name is gone (the file system frees it at the last close).
struct FileChunks {
    file: File,
    header_bytes: u64,
    size_bytes: u64,
    path: PathBuf,
}

impl SnapshotChunks for FileChunks {
    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, StorageError> {
        let start = offset.min(self.size_bytes);
        let end = offset.saturating_add(len).min(self.size_bytes);
        let mut chunk = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
        self.file
            .read_exact_at(&mut chunk, self.header_bytes + start)
            .map_err(|e| corrupt(&self.path, self.header_bytes + start, e.to_string()))?;
        Ok(chunk)
    }
}
