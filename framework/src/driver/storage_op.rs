//! [`StorageOp`]: one storage write, in the order the core asked for it, and the group commit of
//! consecutive appends.

use crate::core::HardState;
use crate::types::{Entry, LogIndex, SnapshotMeta};

/// A storage write. A storage worker performs them strictly in the order received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageOp {
    /// Persist term and vote; report [`crate::driver::Executor::hard_state_saved`] when durable.
    SaveHardState(HardState),
    /// Remove every entry at this index and above. Reported by nothing: the append that follows
    /// it is.
    Truncate(LogIndex),
    /// Append these entries; report [`crate::driver::Executor::log_persisted`] when durable.
    Append(Vec<Entry>),
    /// Purge entries up to and including this index (a durable snapshot covers them). Reported
    /// by nothing.
    Purge(LogIndex),
    /// Write a chunk of the snapshot being received into the partial snapshot (offset 0 starts
    /// a new one). Reported by nothing: it is volatile until installed.
    SnapshotChunk {
        /// The snapshot the chunk belongs to.
        meta: SnapshotMeta,
        /// Where the chunk goes.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Make the completely received snapshot durable as the latest, then reset the log to an
    /// empty one based at its last included entry; report
    /// [`crate::driver::Executor::snapshot_installed`].
    InstallSnapshot(SnapshotMeta),
}

/// Merges runs of consecutive appends that queued up while the previous write ran into one write
/// (one fsync for a durable store); returns each op with how many appends it stands for.
pub fn merge_appends(batch: Vec<StorageOp>) -> Vec<(StorageOp, u64)> {
    let mut merged: Vec<(StorageOp, u64)> = Vec::with_capacity(batch.len());
    for op in batch {
        match (merged.last_mut(), op) {
            (Some((StorageOp::Append(entries), count)), StorageOp::Append(more)) => {
                entries.extend(more);
                *count += 1;
            }
            (_, StorageOp::Append(entries)) => merged.push((StorageOp::Append(entries), 1)),
            (_, other) => merged.push((other, 0)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{EntryPayload, LogId, Term};

    fn append(index: u64) -> StorageOp {
        StorageOp::Append(vec![Entry {
            log_id: LogId::new(Term(1), LogIndex(index)),
            payload: EntryPayload::Blank,
        }])
    }

    #[test]
    fn consecutive_appends_merge_and_count() {
        let merged = merge_appends(vec![
            append(1),
            append(2),
            StorageOp::Truncate(LogIndex(2)),
            append(2),
        ]);
        let shape: Vec<(usize, u64)> = merged
            .iter()
            .map(|(op, count)| match op {
                StorageOp::Append(entries) => (entries.len(), *count),
                _ => (0, *count),
            })
            .collect();
        assert_eq!(shape, vec![(2, 2), (0, 0), (1, 1)]);
    }
}
