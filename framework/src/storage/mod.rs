//! Durable storage of the log and of term and vote: the [`LogStorage`] trait, [`MemStorage`],
//! an in-memory implementation for tests and examples, [`WalStorage`], the durable one (a
//! segmented write-ahead log, see [`wal`]), the [`SnapshotStorage`] trait with
//! [`MemSnapshots`] and [`SnapshotStore`] (durable snapshot files, the one a `WalStorage` keeps
//! in `<dir>/snapshots`), and (with the `testing` feature) the [`conformance`] suite every
//! implementation must pass.
//!
//! The node keeps one storage worker per node: every write the core asks for (save term/vote,
//! truncate, append) goes through it in order, and it reports completion back to the node. A
//! write that returns `Ok` must be durable (for a disk store: fsync'd); the node acknowledges
//! entries to the leader, and votes, only after that.

#[cfg(feature = "testing")]
pub mod conformance;
mod memory;
mod snapshot_store;
mod snapshots;
pub mod wal;

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

use crate::core::HardState;
use crate::types::{Entry, LogId, LogIndex};

pub use crate::types::SnapshotMeta;
pub use memory::MemStorage;
pub use snapshot_store::{SnapshotReader, SnapshotStore};
pub use snapshots::{MemSnapshots, SnapshotChunks, SnapshotData, SnapshotStorage};
#[cfg(feature = "testing")]
pub use wal::FaultInjector;
pub use wal::{WalOptions, WalStats, WalStorage};

/// What storage holds when a node starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredState {
    /// Term and vote.
    pub hard_state: HardState,
    /// The log, contiguous: from index 1, or from some index after the last purge point (a store
    /// may keep purged entries, never drop unpurged ones).
    pub entries: Vec<Entry>,
}

// ANCHOR: log_storage
/// Storage for one node's log and hard state.
///
/// Calls come one at a time, in order. Every implementation must pass the conformance suite
/// (`storage::conformance`, `testing` feature), which checks the contract stated here.
#[async_trait]
pub trait LogStorage: Send + 'static {
    /// Reads everything needed to restart: hard state and the whole held log.
    async fn load(&mut self) -> Result<StoredState, StorageError>;
    /// Durably records term and vote; after `Ok`, a restart reads them back.
    async fn save_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError>;
    /// Durably appends entries. They must be contiguous and start right after the last entry,
    /// else `Invalid` and nothing is written; after `Ok`, a restart reads them all back. An
    /// empty `entries` is a no-op.
    async fn append(&mut self, entries: Vec<Entry>) -> Result<(), StorageError>;
    /// Removes every entry at `from` and above (a conflicting suffix; never committed entries),
    /// durably. `from` past the end is a no-op; `from` at or below the purge point is `Invalid`.
    async fn truncate(&mut self, from: LogIndex) -> Result<(), StorageError>;
    /// Discards entries up to and including `up_to` (compacted into a snapshot); `up_to` past
    /// the end counts as the end. Reads no longer return them, but a store may keep some on disk
    /// (e.g. it frees whole files) and `load` may return those after a restart. The last log id
    /// does not change.
    async fn purge(&mut self, up_to: LogIndex) -> Result<(), StorageError>;
    /// The held entries with indexes in `[start, end]`, in order. Indexes outside the held log
    /// (purged, past the end, or `start > end`) are simply not returned: never an error.
    async fn read(&mut self, start: LogIndex, end: LogIndex) -> Result<Vec<Entry>, StorageError>;
    /// The id of the last entry, even if it was purged, or `0@0` if there never was one (or it
    /// was truncated).
    async fn last_log_id(&mut self) -> Result<LogId, StorageError>;
    /// Replaces the whole log by an empty one whose last log id is `base`, durably: a snapshot
    /// received from the leader covers everything up to `base` (§7, step 7). After `Ok`, `load`
    /// returns no entry at or below `base` (and none above it until appended), `last_log_id` is
    /// `base`, and the next append starts at `base + 1` — also after a restart.
    async fn reset(&mut self, base: LogId) -> Result<(), StorageError>;
    /// Where this node keeps its snapshots. Compaction purges the log only once a snapshot here
    /// is durable, so a durable log store needs a durable snapshot store beside it.
    fn snapshots(&self) -> Arc<dyn SnapshotStorage>;
}
// ANCHOR_END: log_storage

/// Storage failed. The node stops: it cannot promise durability any more.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StorageError {
    /// An IO operation failed.
    #[error("storage {operation} failed: {message}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The underlying error.
        message: String,
    },
    /// The caller broke the storage contract (a gap, or truncating a purged range).
    #[error("invalid storage request: {0}")]
    Invalid(String),
    /// Stored data failed verification (a checksum mismatch, or records out of sequence)
    /// somewhere a crash cannot explain. The store refuses to open rather than skip data.
    #[error("corrupt data in {} at byte {offset}: {reason}", file.display())]
    Corrupt {
        /// The damaged file.
        file: std::path::PathBuf,
        /// Where the first bad record starts.
        offset: u64,
        /// What failed.
        reason: String,
    },
    /// Another process (or another open store in this one) holds the data directory.
    #[error("data directory {} is locked by {}", dir.display(), describe_holder(*.pid))]
    Locked {
        /// The data directory.
        dir: std::path::PathBuf,
        /// The holder's process id, as its lock file says.
        pid: Option<u32>,
    },
}

fn describe_holder(pid: Option<u32>) -> String {
    pid.map_or_else(
        || "an unknown process".to_string(),
        |pid| format!("process {pid}"),
    )
}
