//! Durable storage of the log and of term and vote: the [`LogStorage`] trait, and [`MemStorage`],
//! an in-memory implementation for tests and examples.
//!
//! The node keeps one storage worker per node: every write the core asks for (save term/vote,
//! truncate, append) goes through it in order, and it reports completion back to the node. A
//! write that returns `Ok` must be durable (for a disk store: fsync'd); the node acknowledges
//! entries to the leader, and votes, only after that.

mod memory;

use async_trait::async_trait;
use thiserror::Error;

use crate::core::HardState;
use crate::types::{Entry, LogId, LogIndex};

pub use memory::MemStorage;

/// What storage holds when a node starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredState {
    /// Term and vote.
    pub hard_state: HardState,
    /// The log, contiguous from index 1.
    pub entries: Vec<Entry>,
}

/// Storage for one node's log and hard state.
#[async_trait]
pub trait LogStorage: Send + 'static {
    /// Reads everything needed to restart: hard state and the whole log.
    async fn load(&mut self) -> Result<StoredState, StorageError>;
    /// Durably records term and vote.
    async fn save_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError>;
    /// Durably appends entries that follow the current last entry.
    async fn append(&mut self, entries: Vec<Entry>) -> Result<(), StorageError>;
    /// Removes every entry at `from` and above (a conflicting suffix; never committed entries).
    async fn truncate(&mut self, from: LogIndex) -> Result<(), StorageError>;
    /// Discards entries up to and including `up_to` (compacted into a snapshot).
    async fn purge(&mut self, up_to: LogIndex) -> Result<(), StorageError>;
    /// Entries with indexes in `[start, end]` that are held.
    async fn read(&mut self, start: LogIndex, end: LogIndex) -> Result<Vec<Entry>, StorageError>;
    /// The id of the last entry, or `0@0` if the log is empty.
    async fn last_log_id(&mut self) -> Result<LogId, StorageError>;
}

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
}
