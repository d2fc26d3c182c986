//! [`MemStorage`]: the log and hard state in memory, shared between clones so a test can "crash"
//! a node and hand the same store to its restarted incarnation.

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::core::HardState;
use crate::types::{Entry, LogId, LogIndex};

use super::{LogStorage, MemSnapshots, SnapshotStorage, StorageError, StoredState};

/// In-memory [`LogStorage`], with [`MemSnapshots`] beside it. Clones share one store.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    inner: Arc<Mutex<Inner>>,
    snapshots: MemSnapshots,
}

#[derive(Debug, Default)]
struct Inner {
    hard_state: HardState,
    /// Entries after `purged`, contiguous.
    entries: Vec<Entry>,
    /// The last purged entry (`0@0` if none): entries up to its index were purged.
    purged: LogId,
}

impl MemStorage {
    /// An empty store.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the store half-written: every operation
        // below finishes its mutation in one step. Recover the data rather than poison callers.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of the stored entries (for tests).
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().entries.clone()
    }

    /// The stored hard state (for tests).
    pub fn hard_state(&self) -> HardState {
        self.lock().hard_state
    }

    /// The snapshot store beside the log (shared with clones).
    pub fn mem_snapshots(&self) -> &MemSnapshots {
        &self.snapshots
    }
}

impl Inner {
    fn last_index(&self) -> LogIndex {
        self.last_log_id().index
    }

    fn last_log_id(&self) -> LogId {
        self.entries
            .last()
            .map_or(self.purged, |entry| entry.log_id)
    }

    /// Where `index` sits in `entries`; 0 for indexes at or below the purge point.
    fn position(&self, index: LogIndex) -> usize {
        index.0.saturating_sub(self.purged.index.0 + 1) as usize
    }
}

#[async_trait]
impl LogStorage for MemStorage {
    async fn load(&mut self) -> Result<StoredState, StorageError> {
        let inner = self.lock();
        Ok(StoredState {
            hard_state: inner.hard_state,
            entries: inner.entries.clone(),
        })
    }

    async fn save_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        self.lock().hard_state = hard_state;
        Ok(())
    }

    async fn append(&mut self, entries: Vec<Entry>) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let mut expected = inner.last_index().next();
        for entry in &entries {
            if entry.log_id.index != expected {
                return Err(StorageError::Invalid(format!(
                    "append of {} where index {expected} belongs",
                    entry.log_id
                )));
            }
            expected = expected.next();
        }
        inner.entries.extend(entries);
        Ok(())
    }

    async fn truncate(&mut self, from: LogIndex) -> Result<(), StorageError> {
        let mut inner = self.lock();
        if from <= inner.purged.index {
            return Err(StorageError::Invalid(format!(
                "truncate from {from}: purged up to {}",
                inner.purged.index
            )));
        }
        let keep = inner.position(from);
        inner.entries.truncate(keep);
        Ok(())
    }

    async fn purge(&mut self, up_to: LogIndex) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let up_to = up_to.min(inner.last_index());
        if up_to <= inner.purged.index {
            return Ok(());
        }
        let drop = inner.position(up_to.next());
        inner.purged = inner.entries[drop - 1].log_id;
        inner.entries.drain(..drop);
        Ok(())
    }

    async fn read(&mut self, start: LogIndex, end: LogIndex) -> Result<Vec<Entry>, StorageError> {
        let inner = self.lock();
        let end = end.min(inner.last_index());
        let from = inner.position(start.max(inner.purged.index.next()));
        let to = inner.position(end.next()).min(inner.entries.len());
        Ok(inner
            .entries
            .get(from..to)
            .map(<[Entry]>::to_vec)
            .unwrap_or_default())
    }

    async fn last_log_id(&mut self) -> Result<LogId, StorageError> {
        Ok(self.lock().last_log_id())
    }

    async fn reset(&mut self, base: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.purged = base;
        Ok(())
    }

    fn snapshots(&self) -> Arc<dyn SnapshotStorage> {
        Arc::new(self.snapshots.clone())
    }
}
