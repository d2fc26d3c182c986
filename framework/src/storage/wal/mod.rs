//! [`WalStorage`]: the durable [`LogStorage`]. A write-ahead log of segment files, plus a
//! hard-state file, in one data directory.
//!
//! ## Files
//! ```text
//!  data_dir/
//!    LOCK                        flock'd while open; holds the owner's pid
//!    hard_state                  term and vote: one record, replaced atomically
//!    log_base                    where the log starts (purge point, reset): one record, the same
//!    00000000000000000001.wal    segment: entries 1, 2, ... (named by its first index)
//!    00000000000000004097.wal    the next segment, from index 4097
//!    ...                         the last segment is the only one ever written to
//!    snapshots/                  the SnapshotStore (WalStorage::snapshots): see its docs
//! ```
//! Each segment is a run of records, one entry per record, indexes contiguous from the index in
//! its name; the segments join up without a gap. A record is framed as
//! ```text
//!  ┌──────────┬──────────┬──────────┬────────────────────────────┐
//!  │ len: u32 │ crc: u32 │hcrc: u32 │ payload: len bytes         │
//!  └──────────┴──────────┴──────────┴────────────────────────────┘
//!    len, crc = CRC-32C(payload), hcrc = CRC-32C(len ‖ crc), all little-endian;
//!    payload = the Entry in bincode 2 (crate::codec)
//! ```
//! The header has its own checksum so that a damaged length is never trusted: without it a flip
//! in the length of an early record would look like a record running past the end of the file,
//! a torn tail, and recovery would drop every record after it.
//!
//! ## Writing
//! - `append` frames the entries, writes them with one `write` at the end of the last segment
//!   and fsyncs (fdatasync) once; it returns only after that. When the segment has reached
//!   [`WalOptions::segment_bytes`] it is fsynced and a new one is created (and the directory
//!   fsynced) first, so a segment is complete and durable before the next one exists.
//! - Group commit: the node's storage worker merges the appends that queued while the previous
//!   one was being written into a single `append` call, and the node batches the proposals that
//!   arrive meanwhile, so many entries share one fsync ([`WalStats::entries_per_sync`]).
//! - `truncate` removes later segments newest first, then cuts the segment holding the first
//!   removed index and fsyncs it. `purge` first makes the new purge point durable in
//!   `log_base`, then hands the whole segments below it to a thread that deletes them oldest
//!   first (`reaper.rs`: an unlink of a large file can take tens of milliseconds, which appends
//!   would otherwise wait out), never the one holding the last entry. A crash in the middle of
//!   either leaves a contiguous log.
//! - The hard state and the log base are each one record in a file of their own, replaced
//!   atomically: written to `<name>.tmp`, fsynced, renamed over `<name>`, directory fsynced.
//!
//! ## The log base, and reset
//! `log_base` holds a [`LogId`], the *base*: the last purged entry, or the last entry a
//! snapshot covers after a `reset`. Readers never see entries at or below it; while no entry
//! follows it, it is the last log id. It makes two things survive a restart that whole-segment
//! files alone cannot tell: a purge point inside a segment (so `truncate` at or below it stays
//! `Invalid`, and `load` returns nothing purged), and the term of the last entry when none is
//! held any more.
//!
//! `reset(base)` replaces the whole log by an empty one after `base` (a snapshot from the
//! leader covers it, §7). It must be atomic: the old log, entries above `base` included, must
//! vanish as one. Its steps, each durable before the next:
//! ```text
//!  1. log_base := { base, resetting: true }    the commit point: the old log no longer counts
//!  2. delete every segment, fsync the directory
//!  3. log_base := { base, resetting: false }
//!  4. create the empty segment base+1, fsync the directory
//! ```
//! A crash before 1 leaves the old log whole. Recovery that finds `resetting` set redoes 2 and 3;
//! with no segment at all it creates the segment `base + 1`, which is 4. The flag is cleared
//! before the new segment exists, because recovery would delete it as part of the old log.
//! - A failed write or fsync is returned as [`StorageError::Io`] (the node then stops with
//!   `Fatal`), and poisons the store: every later write is refused. An fsync is never retried:
//!   after a failed fsync the kernel may have dropped the dirty pages, and a retry that
//!   "succeeds" would lie.
//! - Every file operation runs on the store's own IO thread; the async methods only send it a
//!   job and await the answer, so the node's actor thread never blocks on the disk.
//!
//! ## Recovery (on [`WalStorage::open`])
//! Every record of every segment is read and verified (both checksums, the entry decodes, its
//! index is the next one). The first bad record ends the log:
//! - in the **last** segment, if it is a torn write (the file ends inside it, or only zero
//!   bytes follow the damaged part), the file is cut there, with a `warn!`. Such a record was
//!   never acknowledged: `append` had not returned.
//! - anywhere else, or followed by more data, it is damage: open fails with
//!   [`StorageError::Corrupt`] naming the file and the record's offset, and the node does not
//!   start. Data is never skipped silently.
//!
//! A segment that does not start where the previous one ended is `Corrupt` too, and so is a
//! log that starts after `base + 1` or ends below the base (a segment went missing: purge
//! writes the base before it deletes anything). Entries at or below the base are left out of
//! `load`. A leftover `<name>.tmp` (a crash before its rename) is removed; a damaged
//! `hard_state` or `log_base` is `Corrupt`.
//!
//! NB: whether the last record of the last segment was torn by a crash or damaged later cannot
//! be told apart; it is treated as torn. Durable media that silently rot acknowledged data are
//! out of scope, as for every fsync-based log.

mod base;
mod crc;
mod engine;
#[cfg(feature = "testing")]
mod faults;
mod hard_state;
mod lock;
mod reaper;
pub(crate) mod record;
mod record_file;
mod recovery;
mod segment;
mod sync;
mod thread;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::core::HardState;
use crate::types::{Entry, LogId, LogIndex};

use super::{LogStorage, SnapshotStorage, SnapshotStore, StorageError, StoredState};

use engine::Engine;
use thread::IoThread;

pub(crate) use crc::Crc32c;
#[cfg(feature = "testing")]
pub use faults::FaultInjector;
pub use sync::WalStats;

/// Options of a [`WalStorage`]. Build with `WalOptions { segment_bytes, ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// A segment that has reached this size is closed and the next append starts a new one.
    /// Purging frees space a whole segment at a time. Default 64 MiB.
    pub segment_bytes: u64,
    /// Failures to inject (tests only).
    #[cfg(feature = "testing")]
    pub faults: FaultInjector,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 64 << 20,
            #[cfg(feature = "testing")]
            faults: FaultInjector::default(),
        }
    }
}

/// The durable [`LogStorage`]: a segmented, checksummed write-ahead log in a data directory
/// (see the module docs for the format and the recovery rules).
///
/// Dropping the store waits for its IO thread to finish the operation in hand, then releases
/// the directory.
pub struct WalStorage {
    io: IoThread,
    dir: PathBuf,
    stats: WalStats,
    /// The snapshots in `dir/snapshots`, opened once (after the directory is locked) and shared
    /// with whoever asks for [`LogStorage::snapshots`].
    snapshots: Arc<SnapshotStore>,
}

/// The snapshot directory's name inside the data directory.
const SNAPSHOTS_DIR: &str = "snapshots";

impl std::fmt::Debug for WalStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalStorage")
            .field("dir", &self.dir)
            .finish()
    }
}

impl WalStorage {
    /// Opens (or creates) the store in `dir`: locks the directory, replays and verifies the log,
    /// then opens the snapshot store in `dir/snapshots` (removing unfinished snapshot writes).
    ///
    /// Fails with [`StorageError::Locked`] if another process (or another open store) holds the
    /// directory, [`StorageError::Corrupt`] if data fails verification, and
    /// [`StorageError::Io`] if the files cannot be read.
    pub async fn open(
        dir: impl AsRef<Path>,
        options: WalOptions,
    ) -> Result<WalStorage, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        let stats = WalStats::default();
        let syncer = sync::Syncer {
            stats: stats.clone(),
            #[cfg(feature = "testing")]
            faults: options.faults.clone(),
        };
        let engine_dir = dir.clone();
        let name = format!(
            "raftor-wal-{}",
            dir.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        );
        let io = IoThread::start(name, move || Engine::open(&engine_dir, &options, syncer)).await?;
        // On the IO thread too: opening verifies the newest snapshot, reading it whole.
        let snapshots_dir = dir.join(SNAPSHOTS_DIR);
        let snapshots = io.call(move |_| SnapshotStore::open(snapshots_dir)).await?;
        Ok(WalStorage {
            io,
            dir,
            stats,
            snapshots: Arc::new(snapshots),
        })
    }

    /// The snapshot store beside the log (the same one [`LogStorage::snapshots`] hands out).
    pub fn snapshot_store(&self) -> Arc<SnapshotStore> {
        Arc::clone(&self.snapshots)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counters of the work done since `open`; the handle stays valid after the store is moved
    /// into a node.
    pub fn stats(&self) -> WalStats {
        self.stats.clone()
    }
}

#[async_trait]
impl LogStorage for WalStorage {
    async fn load(&mut self) -> Result<StoredState, StorageError> {
        self.io.call(Engine::load).await
    }

    async fn save_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        self.io
            .call(move |engine| engine.save_hard_state(hard_state))
            .await
    }

    async fn append(&mut self, entries: Vec<Entry>) -> Result<(), StorageError> {
        self.io.call(move |engine| engine.append(entries)).await
    }

    async fn truncate(&mut self, from: LogIndex) -> Result<(), StorageError> {
        self.io.call(move |engine| engine.truncate(from)).await
    }

    async fn purge(&mut self, up_to: LogIndex) -> Result<(), StorageError> {
        self.io.call(move |engine| engine.purge(up_to)).await
    }

    async fn read(&mut self, start: LogIndex, end: LogIndex) -> Result<Vec<Entry>, StorageError> {
        self.io.call(move |engine| engine.read(start, end)).await
    }

    async fn last_log_id(&mut self) -> Result<LogId, StorageError> {
        self.io.call(|engine| Ok(engine.last_log_id())).await
    }

    async fn reset(&mut self, base: LogId) -> Result<(), StorageError> {
        self.io.call(move |engine| engine.reset(base)).await
    }

    fn snapshots(&self) -> Arc<dyn SnapshotStorage> {
        self.snapshot_store()
    }
}

/// Maps an IO error to [`StorageError::Io`] for `operation`.
pub(crate) fn io_error(operation: &'static str) -> impl Fn(std::io::Error) -> StorageError {
    move |error| StorageError::Io {
        operation,
        message: error.to_string(),
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests;
