//! How nodes talk: the [`Network`] trait a transport implements to send each RPC to a peer, and
//! [`RaftRpc`], the receiving side a transport calls on the local node.
//!
//! ```text
//!  node A core ─Send─► Network::append_entries(B, req) ══ transport ══► RaftRpc::append_entries(req)
//!                                                                           (node B's handle)
//!  node A core ◄─Response── Ok(resp) ◄══════════════════════════════════════ resp
//! ```
//!
//! Shipped transports: [`Router`] (in-process, with fault injection for tests) and [`tcp`]
//! (tokio TCP: length-prefixed bincode frames, requests multiplexed over one connection per peer,
//! a handshake checking the cluster id, reconnection with backoff). A transport never needs to
//! understand the messages beyond serializing them; every one is serde-derived.

mod in_process;
pub mod tcp;

use async_trait::async_trait;
use thiserror::Error;

use crate::message::{
    AppendEntriesRequest, AppendEntriesResponse, ForwardRequest, ForwardResponse,
    InstallSnapshotRequest, InstallSnapshotResponse, ReadIndexRequest, ReadIndexResponse,
    TimeoutNowRequest, TimeoutNowResponse, VoteRequest, VoteResponse,
};
use crate::types::NodeId;

pub use in_process::{InProcessNetwork, Router, RpcStats, Unreliable};

// ANCHOR: network_trait
/// Sends RPCs to peers. One method per RPC: typed request in, typed response or error out.
#[async_trait]
pub trait Network: Send + Sync + 'static {
    /// Sends AppendEntries to `target`.
    async fn append_entries(
        &self,
        target: NodeId,
        req: AppendEntriesRequest,
    ) -> Result<AppendEntriesResponse, NetworkError>;

    /// Sends RequestVote (or a pre-vote) to `target`.
    async fn request_vote(
        &self,
        target: NodeId,
        req: VoteRequest,
    ) -> Result<VoteResponse, NetworkError>;

    /// Forwards a client write to `target`, the leader.
    async fn forward_write(
        &self,
        target: NodeId,
        req: ForwardRequest,
    ) -> Result<ForwardResponse, NetworkError>;

    /// Asks `target`, the leader, for a read index (a read on a follower).
    async fn read_index(
        &self,
        target: NodeId,
        req: ReadIndexRequest,
    ) -> Result<ReadIndexResponse, NetworkError>;

    /// Sends one InstallSnapshot chunk to `target` (§7).
    async fn install_snapshot(
        &self,
        target: NodeId,
        req: InstallSnapshotRequest,
    ) -> Result<InstallSnapshotResponse, NetworkError>;

    /// Tells `target` to campaign now: the leader hands leadership over (thesis §3.10).
    async fn timeout_now(
        &self,
        target: NodeId,
        req: TimeoutNowRequest,
    ) -> Result<TimeoutNowResponse, NetworkError>;
}
// ANCHOR_END: network_trait

// ANCHOR: raft_rpc_trait
/// The receiving side of the RPCs: implemented by the `Raft` handle, called by transports.
#[async_trait]
pub trait RaftRpc: Send + Sync + 'static {
    /// Handles an inbound AppendEntries.
    async fn append_entries(
        &self,
        req: AppendEntriesRequest,
    ) -> Result<AppendEntriesResponse, NetworkError>;
    /// Handles an inbound RequestVote.
    async fn request_vote(&self, req: VoteRequest) -> Result<VoteResponse, NetworkError>;
    /// Handles a forwarded client write.
    async fn forward_write(&self, req: ForwardRequest) -> Result<ForwardResponse, NetworkError>;
    /// Handles a follower's request for a read index.
    async fn read_index(&self, req: ReadIndexRequest) -> Result<ReadIndexResponse, NetworkError>;
    /// Handles an inbound InstallSnapshot chunk.
    async fn install_snapshot(
        &self,
        req: InstallSnapshotRequest,
    ) -> Result<InstallSnapshotResponse, NetworkError>;
    /// Handles an inbound TimeoutNow.
    async fn timeout_now(&self, req: TimeoutNowRequest)
        -> Result<TimeoutNowResponse, NetworkError>;
}
// ANCHOR_END: raft_rpc_trait

// ANCHOR: network_error
/// An RPC did not get a response. The protocol treats it as a lost message and retries.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NetworkError {
    /// The peer could not be reached.
    #[error("node {0} is unreachable")]
    Unreachable(NodeId),
    /// No response in time.
    #[error("RPC to node {0} timed out")]
    Timeout(NodeId),
    /// The peer's node is shutting down or stopped.
    #[error("node {0} is shutting down")]
    ShuttingDown(NodeId),
    /// Anything else the transport reports.
    #[error("transport error: {0}")]
    Transport(String),
}
// ANCHOR_END: network_error
