//! [`FaultyStorage`]: `MemStorage` whose appends go wrong after the first few, for the tests of
//! what a node does when its log cannot be written: fail (the node stops with `Fatal`) or never
//! finish (nothing more commits, and clients must still be answered by their deadline).

use std::sync::Arc;

use async_trait::async_trait;
use raftor::core::HardState;
use raftor::storage::SnapshotStorage;
use raftor::{Entry, LogId, LogIndex, LogStorage, MemStorage, StorageError, StoredState};

/// What an append does once the healthy ones are used up.
#[derive(Clone, Copy, Debug)]
pub enum AppendFault {
    /// Fails with an IO error.
    Fail,
    /// Never returns.
    Stall,
}

/// `MemStorage` whose appends after the first `healthy_appends` meet `fault`.
#[derive(Clone)]
pub struct FaultyStorage {
    inner: MemStorage,
    healthy_appends: usize,
    fault: AppendFault,
}

impl FaultyStorage {
    /// Empty storage; `healthy_appends` appends succeed, the rest meet `fault`.
    pub fn new(healthy_appends: usize, fault: AppendFault) -> FaultyStorage {
        FaultyStorage {
            inner: MemStorage::new(),
            healthy_appends,
            fault,
        }
    }
}

#[async_trait]
impl LogStorage for FaultyStorage {
    async fn load(&mut self) -> Result<StoredState, StorageError> {
        self.inner.load().await
    }
    async fn save_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        self.inner.save_hard_state(hard_state).await
    }
    async fn append(&mut self, entries: Vec<Entry>) -> Result<(), StorageError> {
        if self.healthy_appends == 0 {
            match self.fault {
                AppendFault::Fail => {
                    return Err(StorageError::Io {
                        operation: "append",
                        message: "disk on fire".into(),
                    })
                }
                AppendFault::Stall => std::future::pending::<()>().await,
            }
        }
        self.healthy_appends -= 1;
        self.inner.append(entries).await
    }
    async fn truncate(&mut self, from: LogIndex) -> Result<(), StorageError> {
        self.inner.truncate(from).await
    }
    async fn purge(&mut self, up_to: LogIndex) -> Result<(), StorageError> {
        self.inner.purge(up_to).await
    }
    async fn read(&mut self, start: LogIndex, end: LogIndex) -> Result<Vec<Entry>, StorageError> {
        self.inner.read(start, end).await
    }
    async fn last_log_id(&mut self) -> Result<LogId, StorageError> {
        self.inner.last_log_id().await
    }
    async fn reset(&mut self, base: LogId) -> Result<(), StorageError> {
        self.inner.reset(base).await
    }
    fn snapshots(&self) -> Arc<dyn SnapshotStorage> {
        self.inner.snapshots()
    }
}
