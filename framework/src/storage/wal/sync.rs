//! Every write and fsync the WAL makes goes through a [`Syncer`]: it counts them (for
//! [`WalStats`]) and, with the `testing` feature, fails the ones a test asked to fail.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::storage::StorageError;

use super::io_error;

/// Counters of a WAL's work since it was opened, shared with the store's users: clone it before
/// handing the store to a node, and read it while the node runs.
#[derive(Debug, Clone, Default)]
pub struct WalStats {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    syncs: AtomicU64,
    append_syncs: AtomicU64,
    appends: AtomicU64,
    entries: AtomicU64,
}

impl WalStats {
    /// Every fsync (files and directories, appends, rotation, hard state, truncation).
    pub fn syncs(&self) -> u64 {
        self.inner.syncs.load(Ordering::Relaxed)
    }

    /// The fsyncs that made appended entries durable (one per `append` call, plus one per
    /// segment rotated in the middle of a call).
    pub fn append_syncs(&self) -> u64 {
        self.inner.append_syncs.load(Ordering::Relaxed)
    }

    /// `append` calls that wrote at least one entry.
    pub fn appends(&self) -> u64 {
        self.inner.appends.load(Ordering::Relaxed)
    }

    /// Entries appended.
    pub fn entries(&self) -> u64 {
        self.inner.entries.load(Ordering::Relaxed)
    }

    /// Entries appended per append fsync: how well group commit works (1.0 means none).
    pub fn entries_per_sync(&self) -> f64 {
        self.entries() as f64 / self.append_syncs().max(1) as f64
    }

    pub(crate) fn record_append(&self, entries: u64) {
        self.inner.appends.fetch_add(1, Ordering::Relaxed);
        self.inner.entries.fetch_add(entries, Ordering::Relaxed);
    }

    pub(crate) fn record_append_sync(&self) {
        self.inner.append_syncs.fetch_add(1, Ordering::Relaxed);
    }
}

/// Writes and fsyncs, counted and (for tests) fallible on demand.
#[derive(Debug, Clone, Default)]
pub(crate) struct Syncer {
    pub(crate) stats: WalStats,
    #[cfg(feature = "testing")]
    pub(crate) faults: super::faults::FaultInjector,
}

impl Syncer {
    /// Writes all of `buf` at `offset`.
    pub(crate) fn write_at(
        &self,
        file: &File,
        buf: &[u8],
        offset: u64,
    ) -> Result<(), StorageError> {
        #[cfg(feature = "testing")]
        if self.faults.take_write_failure() {
            // A full disk: part of the buffer lands, then the write fails.
            let _ = file.write_all_at(&buf[..buf.len() / 2], offset);
            return Err(StorageError::Io {
                operation: "write",
                message: "No space left on device (injected)".into(),
            });
        }
        file.write_all_at(buf, offset).map_err(io_error("write"))
    }

    /// fdatasync: the file's data and what is needed to read it back (its length) are durable.
    pub(crate) fn sync_file(&self, file: &File) -> Result<(), StorageError> {
        self.count_sync()?;
        file.sync_data().map_err(io_error("fsync"))
    }

    /// fsyncs a directory, making the creation, removal or renaming of its entries durable.
    pub(crate) fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        self.count_sync()?;
        File::open(dir)
            .and_then(|handle| handle.sync_all())
            .map_err(io_error("fsync directory"))
    }

    fn count_sync(&self) -> Result<(), StorageError> {
        self.stats.inner.syncs.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "testing")]
        if self.faults.take_sync_failure() {
            return Err(StorageError::Io {
                operation: "fsync",
                message: "Input/output error (injected)".into(),
            });
        }
        Ok(())
    }
}
