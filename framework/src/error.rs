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
    /// The state machine claims to have applied entries the log does not hold.
    #[error("state machine applied up to {applied}, but the log ends at {last}")]
    AppliedBeyondLog {
        /// The state machine's applied index.
        applied: crate::types::LogIndex,
        /// The log's last index.
        last: crate::types::LogIndex,
    },
}
