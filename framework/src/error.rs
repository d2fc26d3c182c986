//! Typed errors. Protocol-level answers to proposals live here; the handle's client errors are
//! built on them.

use thiserror::Error;

use crate::types::NodeId;

/// Why the core refused or dropped a proposal. Either way the command was not applied and will
/// not be: the client may retry it on the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProposeError {
    /// This node is not the leader; `leader` is the one it knows of, if any.
    #[error("not the leader (leader: {})", display_leader(.leader))]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// The proposal was appended by this node as leader, but another entry was committed at its
    /// index (a newer leader overwrote it): it was not applied and never will be.
    #[error("proposal overwritten by a newer leader (leader: {})", display_leader(.leader))]
    Dropped {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
}

fn display_leader(leader: &Option<NodeId>) -> String {
    leader.map_or_else(|| "unknown".to_string(), |id| id.to_string())
}

/// Why a membership change or a leadership transfer was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChangeError {
    /// This node is not the leader (or stopped leading before the change completed: it may
    /// still complete; asking again is safe, a change to what is already in effect is a no-op).
    #[error("not the leader (leader: {})", display_leader(.leader))]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// Another membership change or a leadership transfer is in flight, or the new leader has
    /// not yet committed an entry of its term: one change at a time. Retry once it completes.
    #[error("another membership change or leadership transfer is in progress")]
    InProgress,
    /// The change makes no sense (no voters left, a transfer to a non-voter...).
    #[error("invalid membership change: {0}")]
    Invalid(String),
    /// The leadership transfer did not complete within an election timeout; the leader
    /// resumed taking writes.
    #[error("leadership transfer timed out")]
    Timeout,
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// Forwarding to the leader failed in transit.
    #[error("forwarding to the leader failed: {0}")]
    Forward(#[from] crate::network::NetworkError),
}

/// Why a node could not be started from its recovered state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecoveryError {
    /// The configuration is invalid.
    #[error("invalid config: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// The recovered log has a gap, does not start at 1, or its terms go backwards.
    #[error("recovered log is broken at {at} (previous entry {previous})")]
    BrokenLog {
        /// The offending entry.
        at: crate::types::LogId,
        /// The entry before it.
        previous: crate::types::LogId,
    },
    /// The recovered term is older than an entry in the log: term and log disagree.
    #[error("recovered term {term} is older than log entry {entry}")]
    TermBehindLog {
        /// The recovered term.
        term: crate::types::Term,
        /// The entry with a newer term.
        entry: crate::types::LogId,
    },
    /// The state machine has not applied the snapshot the node restarts from (the driver must
    /// restore it first).
    #[error("state machine applied up to {applied}, below the snapshot at {snapshot}")]
    AppliedBelowSnapshot {
        /// The state machine's applied index.
        applied: crate::types::LogIndex,
        /// The snapshot's last included entry.
        snapshot: crate::types::LogId,
    },
    /// The state machine claims to have applied entries the log does not hold.
    #[error("state machine applied up to {applied}, but the log ends at {last}")]
    AppliedBeyondLog {
        /// The state machine's applied index.
        applied: crate::types::LogIndex,
        /// The log's last index.
        last: crate::types::LogIndex,
    },
}

/// The node stopped because it can no longer keep its promises (storage or state machine
/// failure). Not retryable on this node.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Fatal {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The state machine failed.
    #[error(transparent)]
    StateMachine(#[from] crate::state_machine::StateMachineError),
    /// A committed entry could not be decoded by this node's state machine type.
    #[error("entry {index} does not decode as a command: {message}")]
    Undecodable {
        /// The entry's index.
        index: crate::types::LogIndex,
        /// The decoder's message.
        message: String,
    },
}

/// Why `Raft::client_write` did not return a response.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientWriteError {
    /// Not the leader, and forwarding is off (or the leader is unknown). Retry on `leader`.
    #[error("not the leader (leader: {})", display_leader(.leader))]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// Another entry was committed at the write's index (a newer leader overwrote it): it was
    /// not applied and never will be. Safe to retry.
    #[error("write overwritten by a newer leader (leader: {})", display_leader(.leader))]
    Dropped {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// No answer within the client timeout. The write may or may not be applied.
    #[error("client write timed out; it may or may not have been applied")]
    Timeout,
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// Forwarding to the leader failed in transit. The write may or may not be applied.
    #[error("forwarding to the leader failed: {0}")]
    Forward(#[from] crate::network::NetworkError),
    /// The command or its response could not be (de)serialized.
    #[error("codec error: {0}")]
    Codec(String),
    /// The node stopped on a fatal error.
    #[error("node stopped: {0}")]
    Fatal(#[from] Fatal),
    /// The leader reported a failure while handling a forwarded write.
    #[error("the leader failed the write: {0}")]
    Remote(String),
}

/// Why a read (`Raft::ensure_readable`, `Raft::read`) could not be served.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientReadError {
    /// Not the leader, and forwarding is off (or no leader is known). Retry on `leader`.
    #[error("not the leader (leader: {})", display_leader(.leader))]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// Leadership could not be confirmed, or the state machine did not catch up, within the
    /// client timeout (an isolated old leader ends here). Nothing was read; safe to retry.
    #[error("read timed out")]
    Timeout,
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// Asking the leader for a read index failed in transit. Safe to retry.
    #[error("asking the leader for a read index failed: {0}")]
    Forward(#[from] crate::network::NetworkError),
    /// The node stopped on a fatal error.
    #[error("node stopped: {0}")]
    Fatal(#[from] Fatal),
    /// The leader reported a failure while handling a forwarded read.
    #[error("the leader failed the read: {0}")]
    Remote(String),
}

/// Why a node could not start.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StartError {
    /// The recovered state or the config is invalid.
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    /// Storage could not be read.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The state machine could not report its applied index.
    #[error(transparent)]
    StateMachine(#[from] crate::state_machine::StateMachineError),
    /// The actor system could not be started.
    #[error("could not start the node's runtime: {0}")]
    Runtime(String),
    /// The [`NodeThread`](crate::NodeThread) named here had stopped, or stopped before the
    /// future given to its `run` finished.
    #[error("node thread {0:?} has stopped")]
    ThreadStopped(String),
    /// The config asks for something the node cannot do yet.
    #[error("unsupported config: {0}")]
    Unsupported(&'static str),
}

/// A wait on the metrics did not see its condition in time.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WaitError {
    /// The timeout passed first.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(std::time::Duration, String),
    /// The node stopped.
    #[error("the node stopped while waiting for {0}")]
    Stopped(String),
}
