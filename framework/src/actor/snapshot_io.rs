//! Snapshot IO for the node's workers: everything that touches a snapshot's bytes runs on a
//! blocking thread, so neither the actor nor applying waits on it.
//!
//! ```text
//!  BuildSnapshot ──► apply worker: state_machine.snapshot() (a cheap image, between two applies)
//!                      └─► blocking thread: SnapshotStorage::save(image) ──► SnapshotBuilt
//!  RestoreSnapshot ─► apply worker: the state machine moves to a blocking thread,
//!                      restore(open(meta)) runs there, the state machine comes back ──► Applied
//!  SendSnapshotChunk ► blocking thread: the follower's held snapshot (SnapshotSends), a chunk
//!                      of it ──► Network::install_snapshot (driver.rs)
//!  chunk / install ──► storage worker, in order with log writes: write_partial, install_partial
//!                      then LogStorage::reset ──► SnapshotInstalled
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use actix::{Actor, Addr, Handler};

use crate::error::Fatal;
use crate::membership::Membership;
use crate::state_machine::{SnapshotData, StateMachine, StateMachineError};
use crate::storage::{SnapshotChunks, SnapshotStorage, StorageError};
use crate::types::{LogId, NodeId, SnapshotMeta};

use super::messages::ApplyDone;

/// Runs blocking storage work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join| {
            Err(StorageError::Io {
                operation: "snapshot",
                message: format!("snapshot IO thread failed: {join}"),
            })
        })
}

/// Stores the state machine's image beside applying, then reports `SnapshotBuilt` (or the
/// failure, which stops the node).
pub(crate) fn spawn_save<A>(
    snapshots: Arc<dyn SnapshotStorage>,
    last_included: LogId,
    membership: Membership,
    mut data: SnapshotData,
    actor: Addr<A>,
) where
    A: Actor<Context = actix::Context<A>> + Handler<ApplyDone>,
{
    let started = Instant::now();
    let save = blocking(move || snapshots.save(last_included, membership, &mut data));
    actix_rt::spawn(async move {
        let done = match save.await {
            Ok(meta) => {
                tracing::info!(
                    last_included = %meta.last_included,
                    bytes = meta.size_bytes,
                    ms = started.elapsed().as_millis() as u64,
                    "snapshot stored"
                );
                ApplyDone::SnapshotBuilt(meta)
            }
            Err(error) => ApplyDone::Failed(Fatal::Storage(error)),
        };
        actor.do_send(done);
    });
}

/// Restores the snapshot `meta` into the state machine on a blocking thread (reading the data
/// may block) and gives the state machine back.
pub(crate) async fn restore_state_machine<SM: StateMachine>(
    state_machine: SM,
    snapshots: Arc<dyn SnapshotStorage>,
    meta: SnapshotMeta,
) -> Result<SM, Fatal> {
    let runtime = tokio::runtime::Handle::current();
    let restore = move || -> Result<SM, Fatal> {
        let mut state_machine = state_machine;
        let data = snapshots.open(&meta)?.ok_or_else(|| {
            StorageError::Invalid(format!("snapshot {} is no longer held", meta.last_included))
        })?;
        runtime.block_on(state_machine.restore(&meta, data))?;
        Ok(state_machine)
    };
    tokio::task::spawn_blocking(restore)
        .await
        .unwrap_or_else(|join| {
            Err(Fatal::StateMachine(StateMachineError::Io(format!(
                "restoring a snapshot failed: {join}"
            ))))
        })
}

/// The snapshot each follower is being sent, held open for the whole transfer: a newer snapshot
/// replacing it in the store cannot pull it away mid-transfer (which would restart a slow
/// follower's download with every compaction). One per follower; all are let go once the node
/// stops leading.
pub(crate) struct SnapshotSends {
    snapshots: Arc<dyn SnapshotStorage>,
    open: Mutex<HeldSends>,
}

/// Per follower: the snapshot being sent, and the handle on its data.
type HeldSends = BTreeMap<NodeId, (LogId, Arc<dyn SnapshotChunks>)>;

impl SnapshotSends {
    pub(crate) fn new(snapshots: Arc<dyn SnapshotStorage>) -> SnapshotSends {
        SnapshotSends {
            snapshots,
            open: Mutex::new(BTreeMap::new()),
        }
    }

    /// Reads a chunk of the snapshot ending at `last_included` for `to` (blocking);
    /// `Ok(None)` if the node no longer holds it.
    pub(crate) fn read(
        &self,
        to: NodeId,
        last_included: &LogId,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let held = self
            .lock()
            .get(&to)
            .filter(|(id, _)| id == last_included)
            .map(|(_, chunks)| Arc::clone(chunks));
        let chunks = match held {
            Some(chunks) => chunks,
            None => match self.snapshots.open_chunks(*last_included)? {
                Some(chunks) => {
                    self.lock()
                        .insert(to, (*last_included, Arc::clone(&chunks)));
                    chunks
                }
                None => return Ok(None),
            },
        };
        chunks.read_at(offset, len).map(Some)
    }

    /// Lets every held snapshot go.
    pub(crate) fn clear(&self) {
        let mut open = self.lock();
        if !open.is_empty() {
            open.clear();
        }
    }

    fn lock(&self) -> MutexGuard<'_, HeldSends> {
        // Every operation is one map call: a panic cannot leave the map half-changed.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
