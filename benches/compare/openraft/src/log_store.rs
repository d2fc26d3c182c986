//! [`LogStore`]: an in-memory Raft log for openraft, the counterpart of raftor's `MemStorage`.
//!
//! The entries after the last purged one sit contiguously in a `VecDeque` behind a mutex, with the
//! vote and the committed log id beside them. Nothing is written anywhere else, so an append is
//! "flushed" as soon as it is in memory.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError,
    Vote,
};

use crate::{NodeId, Types};

/// The log, the vote and the committed log id of one node. Clones share the same log: openraft
/// takes one as the store and asks it for more as log readers (one per replication stream).
#[derive(Clone, Default)]
pub struct LogStore {
    inner: Arc<Mutex<Log>>,
}

#[derive(Default)]
struct Log {
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    /// The last purged entry: the entries up to its index are gone.
    purged: Option<LogId<NodeId>>,
    /// The index of `entries[0]`, or of the next entry while `entries` is empty; past `purged`.
    first: u64,
    /// Invariant: the entries from index `first` on, contiguous, with no hole.
    entries: VecDeque<Entry<Types>>,
}

impl Log {
    /// One past the last index held.
    fn end_index(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// The position in `entries` of `index`, which must be in `first..=end_index()`.
    fn position(&self, index: u64) -> usize {
        (index - self.first) as usize
    }
}

impl LogStore {
    fn lock(&self) -> MutexGuard<'_, Log> {
        // A panic while the lock was held would have stopped the benchmark already.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl RaftLogReader<Types> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<Types>>, StorageError<NodeId>> {
        let log = self.lock();
        let start = match range.start_bound() {
            Bound::Included(&start) => start,
            Bound::Excluded(&start) => start.saturating_add(1),
            Bound::Unbounded => 0,
        }
        .max(log.first);
        let end = match range.end_bound() {
            Bound::Included(&end) => end.saturating_add(1),
            Bound::Excluded(&end) => end,
            Bound::Unbounded => u64::MAX,
        }
        .min(log.end_index());
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(log
            .entries
            .range(log.position(start)..log.position(end))
            .cloned()
            .collect())
    }
}

impl RaftLogStorage<Types> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<Types>, StorageError<NodeId>> {
        let log = self.lock();
        Ok(LogState {
            last_purged_log_id: log.purged,
            last_log_id: log.entries.back().map(|entry| entry.log_id).or(log.purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<Types>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<Types>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        {
            let mut log = self.lock();
            for entry in entries {
                let index = entry.log_id.index;
                if log.purged.is_some_and(|purged| index <= purged.index) {
                    // Already in the state machine and purged: nothing to keep. openraft does not
                    // do this in a run, but its storage test suite does.
                    continue;
                }
                if log.entries.is_empty() {
                    // An empty log takes its first entry at any index past the purged ones.
                    log.first = index;
                } else if index < log.first || index > log.end_index() {
                    let why = format!(
                        "appending index {index} to a log holding {}..{}",
                        log.first,
                        log.end_index()
                    );
                    return Err(StorageIOError::write_logs(AnyError::error(why)).into());
                }
                // An entry at an index already held replaces it and everything after it.
                let position = log.position(index);
                log.entries.truncate(position);
                log.entries.push_back(entry);
            }
        }
        // In memory is as durable as this store gets.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut log = self.lock();
        let keep = log_id.index.clamp(log.first, log.end_index());
        let position = log.position(keep);
        log.entries.truncate(position);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut log = self.lock();
        if log
            .purged
            .is_some_and(|purged| purged.index >= log_id.index)
        {
            return Ok(());
        }
        // Up to `log_id` inclusive; past the last entry (after a snapshot was installed) it
        // simply empties the log.
        let upto = (log_id.index + 1).clamp(log.first, log.end_index());
        let count = log.position(upto);
        log.entries.drain(..count);
        log.first = log.first.max(log_id.index + 1);
        log.purged = Some(log_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};
    use openraft::StorageError;

    use super::LogStore;
    use crate::state_machine::Counter;
    use crate::{NodeId, Types};

    struct Fresh;

    impl StoreBuilder<Types, LogStore, Counter> for Fresh {
        async fn build(&self) -> Result<((), LogStore, Counter), StorageError<NodeId>> {
            Ok(((), LogStore::default(), Counter::default()))
        }
    }

    /// openraft's own conformance suite for a log store and state machine, shipped in its public
    /// `testing` module: logs, purge, truncate, vote, membership, apply, snapshot transfer.
    #[test]
    fn passes_openraft_storage_suite() {
        Suite::test_all(Fresh).expect("openraft's storage suite");
    }
}
