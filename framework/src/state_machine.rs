//! The trait users implement to replicate their own state: [`StateMachine`], whose heart is
//! [`StateMachine::apply`].
//!
//! ## The determinism contract
//! Every node applies the same commands in the same order, and must reach the same state and
//! return the same responses. So `apply` must depend only on the state and the command: no clock,
//! no randomness, no reading other files. A command that fails *as a command* (a missing key, a
//! failed compare-and-set) is a normal response — make `Response` say so (e.g. a `Result`) and it
//! goes back to the client. An error *returned* from `apply` means the state machine itself broke
//! (a disk error): the node stops with a fatal error rather than let replicas diverge.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

pub use crate::storage::SnapshotData;
use crate::types::{LogIndex, SnapshotMeta};

/// A replicated state machine.
#[async_trait]
pub trait StateMachine: Send + 'static {
    /// What clients ask for. Serialized into the log, so it must round-trip through serde.
    type Command: Serialize + DeserializeOwned + Send + 'static;
    /// What `apply` answers. Serializable, because a write forwarded from a follower gets its
    /// answer back over the network.
    type Response: Serialize + DeserializeOwned + Send + 'static;

    /// Applies one committed command at `index`, in log order, exactly once per index.
    async fn apply(
        &mut self,
        index: LogIndex,
        command: Self::Command,
    ) -> Result<Self::Response, StateMachineError>;

    /// Applies several committed commands, in order, and answers each: exactly what calling
    /// [`apply`](StateMachine::apply) on each in turn does, which is the default. The node calls
    /// this once per batch of committed entries, so overriding it saves a call (and, with
    /// `async_trait`, a boxed future) per command — worth it for a state machine whose own work
    /// per command is tiny. It must return one response per command, in order; any other count
    /// stops the node with an error.
    async fn apply_batch(
        &mut self,
        commands: Vec<(LogIndex, Self::Command)>,
    ) -> Result<Vec<Self::Response>, StateMachineError> {
        let mut responses = Vec::with_capacity(commands.len());
        for (index, command) in commands {
            responses.push(self.apply(index, command).await?);
        }
        Ok(responses)
    }

    /// The index of the last entry whose effect this state machine holds. An in-memory state
    /// machine starts empty and answers 0; a durable one answers what it had applied, and
    /// application resumes after it (contract 6).
    async fn applied_index(&mut self) -> Result<LogIndex, StateMachineError> {
        Ok(LogIndex(0))
    }

    /// An image of the applied state, for a snapshot (log compaction, §7): exactly the effect
    /// of every entry applied so far. Called on the apply worker between two `apply` calls, so
    /// return quickly — a cheap copy (a clone of a persistent map, a checkpoint of a storage
    /// engine) whose bytes the returned reader produces. The node reads it to its end on a
    /// blocking thread, beside applying, and stores it; the encoding is yours, `restore` reads
    /// it back. A state larger than memory streams (e.g. a reader over checkpoint files).
    ///
    /// Only called when `Config::snapshot_threshold_entries` or `snapshot_threshold_bytes` is
    /// set; the default refuses, and the node stops with that error.
    async fn snapshot(&mut self) -> Result<SnapshotData, StateMachineError> {
        Err(StateMachineError::Unsupported("snapshot"))
    }

    /// Replaces the whole state with a snapshot's (one received from the leader, or the latest
    /// on restart): afterwards the state machine holds exactly the effect of the entries up to
    /// `meta.last_included`, and `applied_index` answers that index. Runs on a blocking thread:
    /// reading `data` (to its end) may block. Applying waits for it.
    async fn restore(
        &mut self,
        meta: &SnapshotMeta,
        data: SnapshotData,
    ) -> Result<(), StateMachineError> {
        let _ = (meta, data);
        Err(StateMachineError::Unsupported("restore"))
    }
}

/// The state machine cannot go on. The node stops rather than diverge from its peers.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateMachineError {
    /// An IO failure underneath the state machine.
    #[error("state machine IO failed: {0}")]
    Io(String),
    /// The operation is not implemented by this state machine.
    #[error("state machine does not support {0}")]
    Unsupported(&'static str),
}
