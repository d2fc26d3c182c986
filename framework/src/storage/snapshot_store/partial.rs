//! [`Partial`]: a snapshot being received, chunk by chunk, into `partial-<term>-<index>.part`.
//! The file is laid out like a complete snapshot (the metadata is known from the first chunk);
//! sealing it writes the trailer and fsyncs it, after which the store renames it into place.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::storage::wal::{io_error, Crc32c};
use crate::storage::StorageError;
use crate::types::SnapshotMeta;

use super::file::{self, PARTIAL_EXTENSION};

/// A snapshot being received.
/// Invariant: the file holds the header and exactly `written` bytes of data after it, and `crc`
/// is their CRC-32C.
#[derive(Debug)]
pub(super) struct Partial {
    /// What the sender said the snapshot is.
    pub meta: SnapshotMeta,
    /// The file.
    pub path: PathBuf,
    file: File,
    /// Where the data starts in the file.
    header_bytes: u64,
    /// Data bytes written so far: the offset the next chunk must start at.
    pub written: u64,
    /// CRC-32C of the data written so far.
    crc: Crc32c,
}

impl Partial {
    /// Creates (or truncates) the partial file for `meta` and writes its header.
    pub(super) fn create(dir: &Path, meta: &SnapshotMeta) -> Result<Partial, StorageError> {
        let header = file::encode_header(meta.last_included, &meta.membership, meta.size_bytes)?;
        let last = meta.last_included;
        let name = format!(
            "partial-{:020}-{:020}.{PARTIAL_EXTENSION}",
            last.term.0, last.index.0
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_error("create partial snapshot"))?;
        file.write_all_at(&header, 0)
            .map_err(io_error("write partial snapshot"))?;
        Ok(Partial {
            meta: meta.clone(),
            path,
            file,
            header_bytes: header.len() as u64,
            written: 0,
            crc: Crc32c::default(),
        })
    }

    /// Writes `data` right after what was written before; refuses to write past `size_bytes`.
    pub(super) fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        let end = self.written.saturating_add(data.len() as u64);
        if end > self.meta.size_bytes {
            return Err(StorageError::Invalid(format!(
                "snapshot chunk of {} ends at {end}, past its size {}",
                self.meta.last_included, self.meta.size_bytes
            )));
        }
        self.file
            .write_all_at(data, self.header_bytes + self.written)
            .map_err(io_error("write partial snapshot"))?;
        self.crc.update(data);
        self.written = end;
        Ok(())
    }

    /// Whether every byte of the snapshot was written.
    pub(super) fn is_complete(&self) -> bool {
        self.written == self.meta.size_bytes
    }

    /// Writes the trailer and fsyncs the file: it is now a complete snapshot, under the
    /// partial name still.
    pub(super) fn seal(&self) -> Result<(), StorageError> {
        let trailer = file::encode_trailer(self.written, self.crc.finish());
        self.file
            .write_all_at(&trailer, self.header_bytes + self.written)
            .map_err(io_error("write snapshot trailer"))?;
        self.file
            .sync_all()
            .map_err(io_error("fsync partial snapshot"))
    }

    /// Deletes the file (best effort: a leftover is removed when the store is next opened).
    pub(super) fn discard(self) {
        drop(self.file);
        let _ = fs::remove_file(&self.path);
    }
}
