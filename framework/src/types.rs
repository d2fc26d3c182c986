//! Identities and positions: the newtypes every other module speaks in.
//!
//! A bare `u64` never appears in a signature: a `Term` cannot be passed where a `LogIndex` is
//! expected, and a [`LogId`] displays as `term@index` (`3@17`) everywhere: logs, errors, golden files.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::membership::Membership;

/// The identity of a node in the cluster. Stable for the node's lifetime, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

/// A Raft term (§5.1): a logical clock that only moves forward; at most one leader per term.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Term(pub u64);

/// The position of an entry in the log. Index 0 is the empty prefix; the first entry is at 1.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogIndex(pub u64);

/// Identifies one log entry: by the log matching property (§5.3) two logs holding the same
/// `LogId` hold identical prefixes up to it. `LogId::default()` (`0@0`) is the empty prefix.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogId {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: LogIndex,
}

/// A snapshot as the protocol sees it: which prefix of the log it replaces, the configuration in
/// effect there, and how many bytes its data takes. The data itself never passes through the core
/// (it may be larger than memory): drivers stream it between the state machine, the snapshot store
/// and the network, addressed by `last_included`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last log entry whose effect the snapshot includes (§7, "last included index/term").
    pub last_included: LogId,
    /// The configuration in effect at `last_included` (§7: "last included configuration").
    pub membership: Membership,
    /// The length of the snapshot's data in bytes: a transfer is complete at this offset.
    pub size_bytes: u64,
}

/// An opaque identifier a driver attaches to a client proposal, echoed back when the proposal is
/// answered (applied, or rejected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub u64);

/// An opaque identifier a driver attaches to an inbound RPC request; the core echoes it in the one
/// reply it produces for that request, so the driver can route the reply to the waiting caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RpcId(pub u64);

/// What a log entry carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPayload {
    /// No command: a new leader appends one to commit entries of earlier terms (§5.4.2, §8).
    Blank,
    /// A serialized client command for the state machine. Shared, so fan-out to peers is cheap.
    Command(#[serde(with = "crate::codec::bytes")] Arc<[u8]>),
    /// A cluster configuration; it takes effect as soon as it is appended (design.md, contract 7).
    /// Boxed, so that every entry stays small (40 bytes, not 64) for the commands' sake; the
    /// encoding is the same as unboxed.
    Membership(Box<Membership>),
}

/// One entry of the replicated log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Where the entry sits and which term's leader created it.
    pub log_id: LogId,
    /// What the entry carries.
    pub payload: EntryPayload,
}

impl NodeId {
    /// The node id as a plain number, for display and addressing.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl Term {
    /// The term after this one.
    pub fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

impl LogIndex {
    /// The index after this one.
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The index before this one; `LogIndex(0).prev()` is `LogIndex(0)`.
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }

    /// This index moved forward by `count` positions.
    pub fn plus(self, count: u64) -> LogIndex {
        LogIndex(self.0 + count)
    }
}

impl LogId {
    /// A log id from its parts.
    pub fn new(term: Term, index: LogIndex) -> LogId {
        LogId { term, index }
    }
}

impl Entry {
    /// The number of payload bytes this entry adds to a message, used for byte budgets.
    pub fn payload_bytes(&self) -> u64 {
        match &self.payload {
            EntryPayload::Blank => 0,
            EntryPayload::Command(bytes) => bytes.len() as u64,
            EntryPayload::Membership(membership) => 16 * membership.node_count() as u64,
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.term, self.index)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

impl fmt::Display for RpcId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_id_displays_as_term_at_index() {
        assert_eq!(LogId::new(Term(3), LogIndex(17)).to_string(), "3@17");
    }

    #[test]
    fn log_ids_order_by_term_then_index() {
        let older = LogId::new(Term(2), LogIndex(9));
        let newer = LogId::new(Term(3), LogIndex(1));
        assert!(older < newer);
    }
}
