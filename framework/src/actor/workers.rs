//! The two IO workers each node runs beside its actor: one owns the storage, one owns the state
//! machine. Each takes jobs in order from a channel, does the IO, and reports back to the actor.
//! They hold no protocol state: the actor decides, the workers only execute.

use std::sync::Arc;

use actix::{Actor, Addr, Handler};
use tokio::sync::mpsc;
use tracing::error;

use crate::driver::{merge_appends, StorageOp};
use crate::error::Fatal;
use crate::membership::Membership;
use crate::state_machine::StateMachine;
use crate::storage::{LogStorage, SnapshotStorage, StorageError};
use crate::types::{Entry, LogId, LogIndex, SnapshotMeta};

use super::apply_job::apply_job;
use super::deadlines::WriteWaiter;
use super::messages::{ApplyDone, StorageDone};
use super::snapshot_io::{blocking, restore_state_machine, spawn_save};

/// Committed entries to apply, and the clients waiting on some of them.
pub(crate) struct ApplyJob<R> {
    pub entries: Vec<Entry>,
    pub clients: Vec<(LogIndex, WriteWaiter<R>)>,
}

/// A read run against the state machine, after every apply job queued before it.
pub(crate) type StateMachineRead<SM> = Box<dyn FnOnce(&SM) + Send>;

/// Work for the apply worker, in order.
pub(crate) enum ApplyWork<SM: StateMachine> {
    /// Apply committed entries.
    Apply(ApplyJob<SM::Response>),
    /// Run a read (its index is already applied: the handle waited for it).
    Read(StateMachineRead<SM>),
    /// Take an image of the state machine and store it as a snapshot, beside applying.
    Build {
        last_included: LogId,
        membership: Membership,
    },
    /// Replace the state with the (durable) snapshot `meta`.
    Restore(SnapshotMeta),
}

/// Runs storage writes in order. Appends that queued up while the previous write ran are merged
/// into one call (one fsync for a durable store): group commit.
pub(crate) async fn run_storage<S, A>(
    mut storage: S,
    mut rx: mpsc::UnboundedReceiver<StorageOp>,
    actor: Addr<A>,
) where
    S: LogStorage,
    A: Actor<Context = actix::Context<A>> + Handler<StorageDone>,
{
    let snapshots = storage.snapshots();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(next) = rx.try_recv() {
            batch.push(next);
        }
        for (op, appends) in merge_appends(batch) {
            match perform_storage_op(&mut storage, &snapshots, op, appends).await {
                Ok(Some(done)) => actor.do_send(done),
                Ok(None) => {}
                Err(e) => {
                    error!(error = %e, "storage failed; stopping the node");
                    actor.do_send(StorageDone::Failed(e));
                    return;
                }
            }
        }
    }
}

/// Performs one storage write; returns what to report, if anything.
async fn perform_storage_op<S: LogStorage>(
    storage: &mut S,
    snapshots: &Arc<dyn SnapshotStorage>,
    op: StorageOp,
    appends: u64,
) -> Result<Option<StorageDone>, StorageError> {
    match op {
        StorageOp::SaveHardState(hard_state) => {
            storage.save_hard_state(hard_state).await?;
            Ok(Some(StorageDone::HardStateSaved))
        }
        StorageOp::Truncate(from) => storage.truncate(from).await.map(|()| None),
        StorageOp::Append(entries) => {
            let Some(up_to) = entries.last().map(|entry| entry.log_id) else {
                return Ok(None);
            };
            storage.append(entries).await?;
            Ok(Some(StorageDone::LogPersisted { up_to, appends }))
        }
        StorageOp::Purge(up_to) => storage.purge(up_to).await.map(|()| None),
        StorageOp::SnapshotChunk { meta, offset, data } => {
            let snapshots = Arc::clone(snapshots);
            blocking(move || snapshots.write_partial(&meta, offset, &data)).await?;
            Ok(None)
        }
        StorageOp::InstallSnapshot(meta) => {
            let last_included = meta.last_included;
            let snapshots = Arc::clone(snapshots);
            blocking(move || snapshots.install_partial(&meta)).await?;
            storage.reset(last_included).await?;
            Ok(Some(StorageDone::SnapshotInstalled(last_included)))
        }
    }
}

/// Applies committed entries in order and answers the clients waiting on them; builds and
/// restores snapshots in that same order.
pub(crate) async fn run_apply<SM, A>(
    mut state_machine: SM,
    snapshots: Arc<dyn SnapshotStorage>,
    mut rx: mpsc::UnboundedReceiver<ApplyWork<SM>>,
    actor: Addr<A>,
) where
    SM: StateMachine,
    A: Actor<Context = actix::Context<A>> + Handler<ApplyDone>,
{
    while let Some(work) = rx.recv().await {
        let job = match work {
            ApplyWork::Apply(job) => job,
            ApplyWork::Read(read) => {
                read(&state_machine);
                continue;
            }
            ApplyWork::Build {
                last_included,
                membership,
            } => match state_machine.snapshot().await {
                Ok(data) => {
                    let snapshots = Arc::clone(&snapshots);
                    spawn_save(snapshots, last_included, membership, data, actor.clone());
                    continue;
                }
                Err(e) => {
                    error!(error = %e, "state machine snapshot failed; stopping the node");
                    actor.do_send(ApplyDone::Failed(Fatal::StateMachine(e)));
                    return;
                }
            },
            ApplyWork::Restore(meta) => {
                let up_to = meta.last_included.index;
                match restore_state_machine(state_machine, Arc::clone(&snapshots), meta).await {
                    Ok(restored) => {
                        state_machine = restored;
                        actor.do_send(ApplyDone::Applied(up_to));
                        continue;
                    }
                    Err(fatal) => {
                        error!(error = %fatal, "restoring a snapshot failed; stopping the node");
                        actor.do_send(ApplyDone::Failed(fatal));
                        return;
                    }
                }
            }
        };
        match apply_job(&mut state_machine, job).await {
            Ok(Some(last)) => actor.do_send(ApplyDone::Applied(last)),
            Ok(None) => {}
            Err(fatal) => {
                error!(error = %fatal, "state machine failed; stopping the node");
                actor.do_send(ApplyDone::Failed(fatal));
                return;
            }
        }
    }
}
