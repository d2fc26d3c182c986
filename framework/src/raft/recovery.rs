//! What a node restarts from (contract 6): the hard state and log from storage, the latest
//! durable snapshot, and the state machine brought up to that snapshot.
//!
//! ```text
//!  LogStorage::load ──────────────► hard state, log (maybe starting after a purge point)
//!  SnapshotStorage::latest ───────► snapshot S (if the node ever compacted or installed)
//!  StateMachine::applied_index ───► A; if A < S: restore S into the state machine, A = S
//!  ──► Recovered { hard_state, log, last_applied: A, snapshot: S } ──► Core::new
//! ```
//! The core drops the log entries S covers (all of them if the log disagrees with S at its
//! last included entry: an install whose log reset did not happen before a crash), and applies
//! the tail after A again: every entry is applied exactly once.

use std::collections::BTreeSet;

use crate::actor::{blocking, restore_state_machine};
use crate::core::{Core, Recovered};
use crate::error::StartError;
use crate::state_machine::StateMachine;
use crate::storage::LogStorage;
use crate::types::{LogId, NodeId};

/// Reads storage and brings the state machine up to the latest snapshot.
pub(super) async fn recover<S: LogStorage, SM: StateMachine>(
    storage: &mut S,
    state_machine: SM,
) -> Result<(Recovered, SM), StartError> {
    let stored = storage.load().await?;
    let snapshots = storage.snapshots();
    let latest = {
        let snapshots = std::sync::Arc::clone(&snapshots);
        blocking(move || snapshots.latest()).await?
    };
    let mut state_machine = state_machine;
    let mut last_applied = state_machine.applied_index().await?;
    if let Some(meta) = latest
        .as_ref()
        .filter(|meta| meta.last_included.index > last_applied)
    {
        last_applied = meta.last_included.index;
        state_machine = restore_state_machine(state_machine, snapshots, meta.clone())
            .await
            .map_err(fatal_to_start)?;
    }
    let recovered = Recovered {
        hard_state: stored.hard_state,
        log: stored.entries,
        last_applied,
        snapshot: latest,
    };
    Ok((recovered, state_machine))
}

/// Writes a new cluster's initial configuration, unless storage shows the node ever ran (a log,
/// a purge point, or a snapshot).
pub(super) async fn bootstrap_if_new<S: LogStorage>(
    storage: &mut S,
    members: BTreeSet<NodeId>,
) -> Result<(), StartError> {
    let stored = storage.load().await?;
    let last = storage.last_log_id().await?;
    let snapshots = storage.snapshots();
    let snapshot = blocking(move || snapshots.latest()).await?;
    if stored.entries.is_empty() && last == LogId::default() && snapshot.is_none() {
        storage.append(Core::bootstrap_log(members)).await?;
    }
    Ok(())
}

fn fatal_to_start(fatal: crate::error::Fatal) -> StartError {
    match fatal {
        crate::error::Fatal::Storage(error) => StartError::Storage(error),
        crate::error::Fatal::StateMachine(error) => StartError::StateMachine(error),
        other @ crate::error::Fatal::Undecodable { .. } => {
            StartError::Runtime(format!("restoring the latest snapshot failed: {other}"))
        }
    }
}
