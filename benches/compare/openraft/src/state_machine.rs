//! [`Counter`]: a state machine that only counts the requests it applied, as raftor's benchmark
//! does, so the run measures the framework and not an application.
//!
//! Its snapshot is the count (8 bytes, little-endian); openraft keeps the last applied log id and
//! membership beside it in the snapshot's metadata.

use std::io::Cursor;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};

use crate::{NodeId, Types};

/// One node's state machine. Clones share it: the benchmark keeps one to read the count, and
/// openraft takes one more as its snapshot builder.
#[derive(Clone, Default)]
pub struct Counter {
    inner: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Requests applied: the sum of the batch counts of the applied commands.
    requests: u64,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, ()>,
    /// The last snapshot built or installed, with its data.
    snapshot: Option<(SnapshotMeta<NodeId, ()>, Vec<u8>)>,
    /// Snapshots built so far, to name each one differently.
    built: u64,
}

impl Counter {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Requests applied so far.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Snapshots this node built itself.
    pub fn snapshots_built(&self) -> u64 {
        self.lock().built
    }
}

impl RaftSnapshotBuilder<Types> for Counter {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Types>, StorageError<NodeId>> {
        let mut state = self.lock();
        state.built += 1;
        let data = state.requests.to_le_bytes().to_vec();
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                state.last_applied.map_or(0, |log_id| log_id.index),
                state.built
            ),
        };
        state.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<Types> for Counter {
    type SnapshotBuilder = Counter;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, ()>), StorageError<NodeId>> {
        let state = self.lock();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<Types>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries = entries.into_iter();
        let mut responses = Vec::with_capacity(entries.size_hint().0);
        let mut state = self.lock();
        for entry in entries {
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(requests) => state.requests += u64::from(requests),
                EntryPayload::Membership(membership) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            state.last_applied = Some(entry.log_id);
            // One response per entry, blank and membership ones included.
            responses.push(());
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Counter {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, ()>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let requests = <[u8; 8]>::try_from(data.as_slice())
            .map(u64::from_le_bytes)
            .map_err(|_| {
                let why = format!("a snapshot of {} bytes, not 8", data.len());
                StorageIOError::read_snapshot(Some(meta.signature()), AnyError::error(why))
            })?;
        let mut state = self.lock();
        state.requests = requests;
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.snapshot = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<Types>>, StorageError<NodeId>> {
        Ok(self.lock().snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftStateMachine;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};

    use super::Counter;
    use crate::Types;

    fn normal(index: u64, requests: u32) -> Entry<Types> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(requests),
        }
    }

    #[tokio::test]
    async fn counts_and_carries_the_count_in_a_snapshot() {
        let mut counter = Counter::default();
        let blank = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
            payload: EntryPayload::Blank,
        };
        let responses = counter
            .apply([blank, normal(2, 4), normal(3, 1)])
            .await
            .expect("apply");
        assert_eq!(responses.len(), 3, "one response per entry");
        assert_eq!(counter.requests(), 5);

        let snapshot = counter.build_snapshot().await.expect("build");
        assert_eq!(
            snapshot.meta.last_log_id.map(|log_id| log_id.index),
            Some(3)
        );
        let mut other = Counter::default();
        other
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .expect("install");
        assert_eq!(other.requests(), 5);
        let (last_applied, _) = other.applied_state().await.expect("applied state");
        assert_eq!(last_applied.map(|log_id| log_id.index), Some(3));
        assert!(other.get_current_snapshot().await.expect("get").is_some());
    }
}
