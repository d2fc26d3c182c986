//! What goes into the core and what comes out of it.

use std::sync::Arc;

use crate::error::{ChangeError, ProposeError};
use crate::membership::{Membership, MembershipChange};
use crate::message::{InstallSnapshotRequest, Request, Response};
use crate::types::{Entry, LogId, LogIndex, NodeId, RequestId, RpcId, SnapshotMeta, Term};

/// The durable part of a node's protocol state besides its log (§5, Figure 2, "Persistent state").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HardState {
    /// The latest term this node has seen. Invariant: never decreases.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any. Invariant: set at most once per term.
    pub voted_for: Option<NodeId>,
}

/// One client command proposed to the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Echoed back when the command is applied or refused.
    pub request: RequestId,
    /// The serialized command.
    pub command: Arc<[u8]>,
}

/// Everything that can happen to a node, as the core sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// One unit of logical time passed.
    Tick,
    /// An RPC request arrived from a peer. The core produces exactly one [`Action::Reply`] for it.
    Request {
        /// The sending peer.
        from: NodeId,
        /// Echoed in the reply.
        rpc: RpcId,
        /// The request.
        request: Request,
    },
    /// The response to a request this node sent earlier.
    Response {
        /// The responding peer.
        from: NodeId,
        /// The response.
        response: Response,
    },
    /// Client commands, batched: they become one log append and one message per follower.
    Propose(Vec<Proposal>),
    /// Storage made the log durable up to and including `up_to` (appends complete in order).
    LogPersisted {
        /// The last durable entry. Ignored if the log no longer holds it (it was truncated).
        up_to: LogId,
    },
    /// The state machine applied every entry up to and including `up_to`.
    Applied {
        /// The last applied index.
        up_to: LogIndex,
    },
    /// A client wants to read: answered with [`Action::ReadReady`] once the state machine may
    /// serve it, or [`Action::RejectRead`].
    Read {
        /// Echoed in the answer.
        request: RequestId,
        /// How the leader confirms it may serve the read.
        mode: ReadMode,
    },
    /// The snapshot asked for with [`Action::BuildSnapshot`] is durable in the snapshot store.
    SnapshotBuilt {
        /// Its metadata, with the size of its data.
        meta: SnapshotMeta,
    },
    /// Change the cluster's members (leader only): answered with [`Action::ChangeDone`] once the
    /// final configuration is committed, or refused.
    ChangeMembership {
        /// Echoed in the answer.
        request: RequestId,
        /// What to change.
        change: MembershipChange,
    },
    /// Hand leadership to `to` (leader only): answered with [`Action::ChangeDone`] once this
    /// node stepped down, or with `Timeout` after an election timeout.
    TransferLeader {
        /// Echoed in the answer.
        request: RequestId,
        /// The voter to lead next.
        to: NodeId,
    },
    /// Storage completed an [`Action::InstallSnapshot`] (and every log write issued before it):
    /// the snapshot is durable and the log is empty after it.
    SnapshotInstalled {
        /// The installed snapshot's last included entry.
        last_included: LogId,
    },
}

/// How a leader makes sure a read sees every write committed before it (thesis §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReadMode {
    /// ReadIndex: confirm leadership with a quorum round begun after the read arrived.
    ReadIndex,
    /// Serve at once while the leader lease holds (bounded clock drift); else as `ReadIndex`.
    Lease,
}

/// Work the driver must do, in order. The ordering rules that keep Raft safe:
///
/// - [`Action::SaveHardState`] must be durable before any later action in the same batch starts
///   (contract 1: a vote or new term is on disk before the message that depends on it leaves).
/// - [`Action::TruncateLog`] and [`Action::AppendLog`] are applied to storage in the order given;
///   the driver reports durability with [`Input::LogPersisted`] and may run later `Send`s
///   meanwhile (a leader replicates in parallel with its own write, contract 2). The core itself
///   holds back a follower's acknowledgement until the entries are persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Persist term and vote.
    SaveHardState(HardState),
    /// Remove every log entry at index `from` and above. Never at or below the commit index.
    TruncateLog {
        /// The first index removed.
        from: LogIndex,
    },
    /// Append these entries (contiguous, following the current last entry) to the log.
    AppendLog {
        /// The entries to store.
        entries: Vec<Entry>,
    },
    /// Send a request to a peer; its response comes back as [`Input::Response`].
    Send {
        /// The destination.
        to: NodeId,
        /// The request.
        request: Request,
    },
    /// Answer an RPC request received with [`Input::Request`].
    Reply {
        /// The node that sent the request.
        to: NodeId,
        /// The id given with the request.
        rpc: RpcId,
        /// The answer.
        response: Response,
    },
    /// Apply these committed, persisted entries to the state machine, in order, then report
    /// [`Input::Applied`]. For each `(index, request)` in `clients`, answer that client with the
    /// state machine's result for the entry at `index`.
    Apply {
        /// Contiguous committed entries, starting right after the last ones handed out.
        entries: Vec<Entry>,
        /// Clients waiting on some of these entries.
        clients: Vec<(LogIndex, RequestId)>,
    },
    /// Answer a client whose proposal will not be applied.
    Reject {
        /// The proposal's request id.
        request: RequestId,
        /// Why.
        error: ProposeError,
    },
    /// The read may be served once the state machine has applied `read_index`.
    ReadReady {
        /// The read's request id.
        request: RequestId,
        /// Every write committed before the read arrived is at or below this index.
        read_index: LogIndex,
    },
    /// This node cannot serve the read (it is not the leader, or stopped leading).
    RejectRead {
        /// The read's request id.
        request: RequestId,
        /// Why (`NotLeader`, with the leader if known).
        error: ProposeError,
    },
    /// Answer a membership change or leadership transfer.
    ChangeDone {
        /// The change's request id.
        request: RequestId,
        /// The membership in effect, or why not.
        result: Result<Membership, ChangeError>,
    },
    /// Snapshot the state machine exactly as it is after every `Apply` issued before this action
    /// (it runs on the apply stream, in order, so its state ends at `last_included`), store it
    /// durably as the node's latest snapshot, then report [`Input::SnapshotBuilt`]. Applying
    /// must go on meanwhile: the state machine hands over a cheap image and the encoding and
    /// writing happen beside it.
    BuildSnapshot {
        /// The last entry the snapshot includes: the last one handed to `Apply`.
        last_included: LogId,
        /// The configuration in effect at `last_included`, to store with the snapshot.
        membership: Membership,
    },
    /// Remove every log entry up to and including `up_to` from storage, and remember `up_to` as
    /// the log's base (a durable snapshot covers it). Ordered with the other log writes; no
    /// completion is reported.
    PurgeLog {
        /// The last entry removed.
        up_to: LogId,
    },
    /// Read `len` bytes of this node's snapshot `request.meta.last_included` at `request.offset`
    /// into `request.data` (empty here) and send the request to `to`; its response comes back as
    /// [`Input::Response`]. If that snapshot is gone (replaced by a newer one), send nothing: the
    /// core times the chunk out and moves the transfer to its latest snapshot.
    SendSnapshotChunk {
        /// The destination.
        to: NodeId,
        /// The request, complete but for its data.
        request: InstallSnapshotRequest,
        /// How many bytes to read into `request.data`.
        len: u64,
    },
    /// Write this chunk of a snapshot being received at `offset` into a partial snapshot (volatile
    /// until installed). Offset 0 starts a new partial snapshot, discarding any other.
    ReceiveSnapshotChunk {
        /// The snapshot the chunk belongs to.
        meta: SnapshotMeta,
        /// Where the chunk goes.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// On the log storage stream, in order with the other log writes: make the completely
    /// received snapshot durable as this node's latest, and replace the whole log by an empty one
    /// based at `meta.last_included` (§7). Then report [`Input::SnapshotInstalled`].
    InstallSnapshot {
        /// The snapshot received.
        meta: SnapshotMeta,
    },
    /// On the apply stream, after every `Apply` issued before it, and not before the
    /// `InstallSnapshot` before it is durable: replace the state machine's state with the
    /// snapshot's, then report [`Input::Applied`] up to `meta.last_included.index`.
    RestoreSnapshot {
        /// The snapshot to restore.
        meta: SnapshotMeta,
    },
}

/// The state a node restarts from: what its storage and state machine hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Term and vote as last persisted.
    pub hard_state: HardState,
    /// The durable log: contiguous, from index 1, or (after compaction) from any index up to
    /// right after `snapshot`'s last included entry. Entries the snapshot covers are dropped.
    pub log: Vec<Entry>,
    /// The last index the state machine has applied (0 for a volatile state machine that starts
    /// empty). At least the snapshot's last included index: the driver restores the snapshot into
    /// the state machine before the core starts, and the log tail after it is applied again.
    pub last_applied: LogIndex,
    /// The latest durable snapshot, if this node ever compacted its log or installed one.
    pub snapshot: Option<SnapshotMeta>,
}
