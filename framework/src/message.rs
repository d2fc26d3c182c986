//! The wire messages peers exchange (Raft §5, Figure 2), serde-derived so any transport can carry
//! them. Every RPC request gets exactly one response.

use serde::{Deserialize, Serialize};

use crate::types::{Entry, LogId, LogIndex, NodeId, SnapshotMeta, Term};

/// An RPC request from one node to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Replicate entries, or a heartbeat when `entries` is empty (§5.3).
    AppendEntries(AppendEntriesRequest),
    /// Ask for a vote, or a pre-vote (§5.2, thesis §9.6).
    RequestVote(VoteRequest),
    /// One chunk of a snapshot, for a follower whose next entry the leader compacted (§7).
    InstallSnapshot(InstallSnapshotRequest),
    /// The leader hands leadership over: start an election now (thesis §3.10).
    TimeoutNow(TimeoutNowRequest),
}

/// The response to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answers [`Request::AppendEntries`].
    AppendEntries(AppendEntriesResponse),
    /// Answers [`Request::RequestVote`].
    RequestVote(VoteResponse),
    /// Answers [`Request::InstallSnapshot`].
    InstallSnapshot(InstallSnapshotResponse),
    /// Answers [`Request::TimeoutNow`].
    TimeoutNow(TimeoutNowResponse),
}

/// TimeoutNow (thesis §3.10): the leader, having brought this follower's log up to date, asks
/// it to start an election at once, skipping PreVote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutNowRequest {
    /// The leader's term.
    pub term: Term,
    /// The leader handing over.
    pub leader_id: NodeId,
}

/// The answer to a [`TimeoutNowRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutNowResponse {
    /// The responder's term (before it campaigns).
    pub term: Term,
    /// Whether it starts an election.
    pub accepted: bool,
}

/// AppendEntries (§5.3): the leader's log from `prev_log_id` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntriesRequest {
    /// The leader's term.
    pub term: Term,
    /// The leader, so followers can redirect clients.
    pub leader_id: NodeId,
    /// The entry immediately before `entries`; the follower must hold it to accept.
    pub prev_log_id: LogId,
    /// Entries to store, contiguous from `prev_log_id.index + 1`; empty for a heartbeat.
    pub entries: Vec<Entry>,
    /// The leader's commit index, capped at what this follower is known to match.
    pub leader_commit: LogIndex,
    /// The leader's latest quorum round when it sent this message, echoed in the response. A
    /// quorum of echoes of round `r` proves the sender was still leader after round `r` began:
    /// ReadIndex and the leader lease are built on it. 0 from a node that does not count rounds.
    pub round: u64,
}

/// The follower's answer to AppendEntries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntriesResponse {
    /// The responder's current term, for the leader to update itself (§5.1).
    pub term: Term,
    /// What happened.
    pub outcome: AppendOutcome,
    /// The request's `round`, echoed.
    pub round: u64,
}

/// What a follower did with an AppendEntries request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// The follower's log matches the leader's, durably, up to `match_index`.
    Success {
        /// Highest index known to match the leader's log and persisted on the follower.
        match_index: LogIndex,
    },
    /// The follower does not hold `prev_log_id`; `hint` says where the leader should retry.
    Conflict {
        /// The `prev_log_id.index` of the rejected request.
        rejected_index: LogIndex,
        /// Where the logs may start to differ, so the leader backs up a term at a time.
        hint: ConflictHint,
    },
    /// The request's term is older than the follower's: the sender is not the leader any more.
    StaleTerm,
}

/// A rejecting follower's summary of its log near the rejected position (§5.3, the optimisation
/// at the end of the section): the leader backs up one term per round trip, not one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictHint {
    /// The term of the follower's entry at the rejected index, or `None` if its log is shorter.
    pub conflict_term: Option<Term>,
    /// The first index the follower holds for `conflict_term`, or its last index + 1.
    pub first_index: LogIndex,
}

/// InstallSnapshot (§7, Figure 13): one chunk of the leader's snapshot. Chunks go one at a time,
/// each acknowledged; the follower says which offset it expects next, so a transfer resumes where
/// it stopped after a lost message or a reconnect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshotRequest {
    /// The leader's term.
    pub term: Term,
    /// The leader, so followers can redirect clients.
    pub leader_id: NodeId,
    /// Which snapshot: its last included entry, configuration and size. Together with `term`
    /// and `leader_id` it identifies the bytes, so chunks of different snapshots never mix.
    pub meta: SnapshotMeta,
    /// Where `data` starts in the snapshot.
    pub offset: u64,
    /// The chunk.
    #[serde(with = "crate::codec::bytes")]
    pub data: Vec<u8>,
    /// This chunk ends the snapshot (`offset + data.len() == meta.size_bytes`).
    pub done: bool,
    /// The leader's latest quorum round, echoed like AppendEntries' (`read_index.rs`).
    pub round: u64,
}

/// The follower's answer to an InstallSnapshot chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshotResponse {
    /// The responder's current term, for the leader to update itself (§5.1).
    pub term: Term,
    /// The request's `meta.last_included`: which snapshot this answers.
    pub last_included: LogId,
    /// What happened.
    pub outcome: SnapshotOutcome,
    /// The request's `round`, echoed.
    pub round: u64,
}

/// What a follower did with an InstallSnapshot chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotOutcome {
    /// Send the chunk at `next_offset` next: the one after this chunk, or, if this chunk was not
    /// where the follower stands (lost chunk, restart, another snapshot), where it does.
    Continue {
        /// The offset the follower expects.
        next_offset: u64,
    },
    /// The follower's log matches the leader's, durably, up to `match_index`: it installed the
    /// snapshot, or already held its last included entry (§7, step 6).
    Installed {
        /// Highest index known to match the leader's log and durable on the follower.
        match_index: LogIndex,
    },
    /// Refused: the snapshot is at or below what the follower has already committed. Its
    /// committed, durable log matches the leader's up to `match_index`.
    Stale {
        /// Highest index known to match the leader's log and durable on the follower.
        match_index: LogIndex,
    },
    /// The request's term is older than the follower's: the sender is not the leader any more.
    StaleTerm,
}

/// RequestVote (§5.2), or a pre-vote (thesis §9.6) when `pre_vote` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRequest {
    /// The candidate's term; for a pre-vote, the term it would campaign in (not yet adopted).
    pub term: Term,
    /// The node asking for the vote.
    pub candidate_id: NodeId,
    /// The candidate's last log entry, for the up-to-date check (§5.4.1).
    pub last_log_id: LogId,
    /// A pre-vote: the voter neither changes its term nor records a vote.
    pub pre_vote: bool,
    /// The leader handed leadership to this candidate (TimeoutNow, thesis §3.10): voters grant
    /// even though they heard from that leader moments ago.
    pub transfer: bool,
}

/// The answer to a [`VoteRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteResponse {
    /// The voter's term; for a granted pre-vote, the term of the request.
    pub term: Term,
    /// Whether the vote (or pre-vote) was granted.
    pub granted: bool,
    /// Echoes the request's flag, so a late pre-vote answer is never counted as a vote.
    pub pre_vote: bool,
}

/// A client write forwarded by a follower to the leader: the command, already serialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardRequest {
    /// The bincode-encoded command.
    #[serde(with = "crate::codec::bytes")]
    pub command: Vec<u8>,
}

/// The leader's answer to a [`ForwardRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardResponse {
    /// Applied; the bincode-encoded response of the state machine.
    Applied(#[serde(with = "crate::codec::bytes")] Vec<u8>),
    /// The receiver is not the leader (any more).
    NotLeader {
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
    /// Accepted, then overwritten by a newer leader: not applied.
    Dropped {
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
    /// Not answered in time: the write may or may not be applied.
    Timeout,
    /// The receiver is shutting down.
    ShuttingDown,
    /// The receiver failed (a fatal error, or an undecodable command).
    Failed(String),
}

/// A follower asks the leader for a read index (follower reads, thesis §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexRequest {
    /// Confirm with the leader lease when it holds, instead of a quorum round.
    pub lease: bool,
}

/// The leader's answer to a [`ReadIndexRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadIndexResponse {
    /// Leadership confirmed: the asker may serve the read once it has applied `read_index`.
    Ready {
        /// Every write committed before the request arrived is at or below this index.
        read_index: LogIndex,
    },
    /// The receiver is not the leader (any more).
    NotLeader {
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
    /// Leadership was not confirmed in time.
    Timeout,
    /// The receiver is shutting down.
    ShuttingDown,
    /// The receiver failed (a fatal error).
    Failed(String),
}
