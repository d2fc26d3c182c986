//! [`TcpNetwork`]: the sending side, one per node, given to `Raft::start` as its
//! [`Network`]. It keeps one [`Connection`] per peer, opened on the first RPC and reopened
//! after a failure, with backoff.
//!
//! ```text
//!  append_entries(B, req) ─► peers[B] ─► link: open connection? ──yes──► Connection::call
//!                                          │ no: backing off? ── yes ──► Err(Unreachable(B))
//!                                          └ no: connect (one attempt at a time per peer)
//! ```
//!
//! A reconnection attempt is charged to the backoff before it starts, not after it fails: an
//! attempt abandoned half-way (its caller's deadline passed) must still slow the next one down.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::time::Instant;
use tracing::debug;

use crate::message::{
    AppendEntriesRequest, AppendEntriesResponse, ForwardRequest, ForwardResponse,
    InstallSnapshotRequest, InstallSnapshotResponse, ReadIndexRequest, ReadIndexResponse,
    TimeoutNowRequest, TimeoutNowResponse, VoteRequest, VoteResponse,
};
use crate::network::{Network, NetworkError};
use crate::types::NodeId;

use super::config::TcpConfig;
use super::connection::{hello, Connection};
use super::error::TcpError;
use super::frame::{RpcRequest, RpcResponse};

/// The sending side of the TCP transport: implements [`Network`] for one node. Cheap to clone;
/// clones share the connections and the address map. Dropping the last clone closes every
/// connection. A connection's task runs on the tokio runtime of the RPC that opened it (for a
/// node, its actor's runtime).
#[derive(Clone)]
pub struct TcpNetwork {
    shared: Arc<Shared>,
}

struct Shared {
    /// The node this network sends for, named in every handshake.
    id: NodeId,
    /// Outgoing connections are bound to this address (the node's own IP) before connecting.
    /// `None` when the node's address is a wildcard: the operating system picks.
    source_ip: Option<IpAddr>,
    config: TcpConfig,
    peers: Mutex<BTreeMap<NodeId, Arc<Peer>>>,
}

/// One peer: its address, and the state of the link to it.
struct Peer {
    id: NodeId,
    addr: SocketAddr,
    /// Held while connecting, so one attempt at a time is made per peer.
    link: tokio::sync::Mutex<Link>,
}

#[derive(Default)]
struct Link {
    /// The current connection, if one was opened (it may have closed since).
    connection: Option<Arc<Connection>>,
    /// Connection attempts begun since the last successful one.
    failures: u32,
    /// No attempt before this instant.
    retry_at: Option<Instant>,
    /// Connections opened to this address so far.
    opened: u64,
}

impl TcpNetwork {
    /// The network of node `id`, whose own raft address is `addr`, reaching each peer at its
    /// address in `peers` (an entry for `id` itself is ignored). Connections open from `addr`'s
    /// IP (unless it is a wildcard such as `0.0.0.0`). Nothing connects until the first RPC.
    pub fn new(
        id: NodeId,
        addr: SocketAddr,
        peers: impl IntoIterator<Item = (NodeId, SocketAddr)>,
        config: TcpConfig,
    ) -> Result<TcpNetwork, TcpError> {
        let config = config.validate()?;
        let source_ip = Some(addr.ip()).filter(|ip| !ip.is_unspecified());
        let network = TcpNetwork {
            shared: Arc::new(Shared {
                id,
                source_ip,
                config,
                peers: Mutex::new(BTreeMap::new()),
            }),
        };
        for (peer, peer_addr) in peers {
            network.set_peer(peer, peer_addr);
        }
        Ok(network)
    }

    /// The node this network sends for.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// Adds peer `id` at `addr`, or moves it there. A moved peer's connection closes (RPCs in
    /// flight on it fail) and the next RPC connects to the new address.
    pub fn set_peer(&self, id: NodeId, addr: SocketAddr) {
        if id == self.shared.id {
            return;
        }
        let mut peers = self.peers();
        if peers.get(&id).is_some_and(|peer| peer.addr == addr) {
            return;
        }
        let link = tokio::sync::Mutex::new(Link::default());
        peers.insert(id, Arc::new(Peer { id, addr, link }));
    }

    /// Forgets peer `id`: its connection closes, and RPCs to it fail as unreachable.
    pub fn remove_peer(&self, id: NodeId) {
        self.peers().remove(&id);
    }

    /// Every peer's address.
    pub fn peer_addrs(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.peers()
            .iter()
            .map(|(id, peer)| (*id, peer.addr))
            .collect()
    }

    fn peers(&self) -> MutexGuard<'_, BTreeMap<NodeId, Arc<Peer>>> {
        self.shared
            .peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One RPC to `target` under its deadline: connect if needed, send, wait for the answer.
    async fn call(&self, target: NodeId, rpc: RpcRequest) -> Result<RpcResponse, NetworkError> {
        let peer = self
            .peers()
            .get(&target)
            .cloned()
            .ok_or(NetworkError::Unreachable(target))?;
        let deadline = rpc.timeout(&self.shared.config);
        let started = Instant::now();
        let mut used = None;
        let call = async {
            let connection = self.connection(&peer).await?;
            used = Some(Arc::clone(&connection));
            connection.call(rpc).await
        };
        match tokio::time::timeout(deadline, call).await {
            Ok(result) => result,
            Err(_) => {
                if let Some(connection) = used {
                    connection.close_if_silent_since(started);
                }
                Err(NetworkError::Timeout(target))
            }
        }
    }

    /// The open connection to `peer`, opening one unless the peer is backing off.
    async fn connection(&self, peer: &Peer) -> Result<Arc<Connection>, NetworkError> {
        let mut link = peer.link.lock().await;
        if let Some(connection) = link.connection.as_ref().filter(|c| c.is_open()) {
            return Ok(Arc::clone(connection));
        }
        link.connection = None;
        let now = Instant::now();
        if link.retry_at.is_some_and(|retry_at| now < retry_at) {
            return Err(NetworkError::Unreachable(peer.id));
        }
        link.failures += 1;
        link.retry_at = Some(now + self.shared.config.backoff(link.failures));
        let hello = hello(&self.shared.config.cluster_id, self.shared.id, peer.id);
        let connection =
            Connection::open(hello, peer.addr, self.shared.source_ip, &self.shared.config).await?;
        let connection = Arc::new(connection);
        link.failures = 0;
        link.retry_at = None;
        link.opened += 1;
        link.connection = Some(Arc::clone(&connection));
        Ok(connection)
    }
}

impl fmt::Debug for TcpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpNetwork")
            .field("id", &self.shared.id)
            .field("source_ip", &self.shared.source_ip)
            .field("peers", &self.peer_addrs())
            .finish()
    }
}

#[cfg(test)]
impl TcpNetwork {
    fn link_of<T>(&self, id: NodeId, read: impl FnOnce(&Link) -> T) -> T {
        let peer = self.peers().get(&id).cloned().expect("a known peer");
        let link = peer.link.try_lock().expect("an idle link");
        read(&link)
    }

    /// Connections opened to peer `id` (at its current address).
    pub(crate) fn connections_opened(&self, id: NodeId) -> u64 {
        self.link_of(id, |link| link.opened)
    }

    /// Calls waiting on the connection to peer `id`.
    pub(crate) fn pending_calls(&self, id: NodeId) -> usize {
        self.link_of(id, |link| {
            link.connection.as_ref().map_or(0, |c| c.pending_calls())
        })
    }
}

/// A response of the wrong kind: the peer is broken (or not raftor).
fn mismatch(target: NodeId, response: &RpcResponse) -> NetworkError {
    debug!(peer = %target, ?response, "response of the wrong kind");
    NetworkError::Transport(format!(
        "node {target} answered with the wrong kind of response"
    ))
}

#[async_trait]
impl Network for TcpNetwork {
    async fn append_entries(
        &self,
        target: NodeId,
        req: AppendEntriesRequest,
    ) -> Result<AppendEntriesResponse, NetworkError> {
        match self.call(target, RpcRequest::AppendEntries(req)).await? {
            RpcResponse::AppendEntries(resp) => Ok(resp),
            other => Err(mismatch(target, &other)),
        }
    }

    async fn request_vote(
        &self,
        target: NodeId,
        req: VoteRequest,
    ) -> Result<VoteResponse, NetworkError> {
        match self.call(target, RpcRequest::RequestVote(req)).await? {
            RpcResponse::RequestVote(resp) => Ok(resp),
            other => Err(mismatch(target, &other)),
        }
    }

    async fn forward_write(
        &self,
        target: NodeId,
        req: ForwardRequest,
    ) -> Result<ForwardResponse, NetworkError> {
        match self.call(target, RpcRequest::ForwardWrite(req)).await? {
            RpcResponse::ForwardWrite(resp) => Ok(resp),
            other => Err(mismatch(target, &other)),
        }
    }

    async fn read_index(
        &self,
        target: NodeId,
        req: ReadIndexRequest,
    ) -> Result<ReadIndexResponse, NetworkError> {
        match self.call(target, RpcRequest::ReadIndex(req)).await? {
            RpcResponse::ReadIndex(resp) => Ok(resp),
            other => Err(mismatch(target, &other)),
        }
    }

    async fn install_snapshot(
        &self,
        target: NodeId,
        req: InstallSnapshotRequest,
    ) -> Result<InstallSnapshotResponse, NetworkError> {
        match self.call(target, RpcRequest::InstallSnapshot(req)).await? {
            RpcResponse::InstallSnapshot(resp) => Ok(resp),
            other => Err(mismatch(target, &other)),
        }
    }

    async fn timeout_now(
        &self,
        target: NodeId,
        req: TimeoutNowRequest,
    ) -> Result<TimeoutNowResponse, NetworkError> {
        match self.call(target, RpcRequest::TimeoutNow(req)).await? {
            RpcResponse::TimeoutNow(resp) => Ok(resp),
            other => Err(mismatch(target, &other)),
        }
    }
}
