//! A custom transport for raftor, complete in one file: every RPC is serialized with raftor's codec
//! (bincode 2) and carried over TCP as a length-prefixed frame.
//!
//! ```text
//!  node A's actor ─► TcpNetwork::append_entries(B, req)            (the Network trait)
//!                      │ encode WireRequest, write frame ──TCP──► serve_connection (node B)
//!                      │                                            │ decode, call RaftRpc on B's
//!                      │                                            │ Raft handle, encode the answer
//!                      └─ read frame, decode WireResponse ◄──TCP────┘
//! ```
//!
//! The two halves are the two traits: [`TcpNetwork`] implements `Network` (the sending side, one
//! per node, handed to `Raft::bootstrap`), and [`serve`] accepts connections and calls `RaftRpc`
//! on the local node's handle (the receiving side). [`Cluster`] wires three nodes together on
//! loopback for the example and its tests.
//!
//! Deliberately small: one request at a time per connection, a pool of idle connections per peer,
//! no TLS, no reconnect backoff. A lost or failed RPC is reported as a `NetworkError`, and the
//! protocol treats it as a lost message and retries.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use raftor::message::{
    AppendEntriesRequest, AppendEntriesResponse, ForwardRequest, ForwardResponse,
    InstallSnapshotRequest, InstallSnapshotResponse, ReadIndexRequest, ReadIndexResponse,
    TimeoutNowRequest, TimeoutNowResponse, VoteRequest, VoteResponse,
};
use raftor::{
    codec, Config, LogIndex, MemStorage, Network, NetworkError, NodeId, Raft, RaftRpc,
    StateMachine, StateMachineError,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

// ANCHOR: wire
/// One RPC as it travels: which call, and its request. raftor's messages are serde types, so the
/// transport only wraps them; it never looks inside.
#[derive(Debug, Serialize, Deserialize)]
pub enum WireRequest {
    AppendEntries(AppendEntriesRequest),
    RequestVote(VoteRequest),
    ForwardWrite(ForwardRequest),
    ReadIndex(ReadIndexRequest),
    InstallSnapshot(InstallSnapshotRequest),
    TimeoutNow(TimeoutNowRequest),
}

/// The answer to a [`WireRequest`], or why the receiving node could not give one.
#[derive(Debug, Serialize, Deserialize)]
pub enum WireResponse {
    AppendEntries(AppendEntriesResponse),
    RequestVote(VoteResponse),
    ForwardWrite(ForwardResponse),
    ReadIndex(ReadIndexResponse),
    InstallSnapshot(InstallSnapshotResponse),
    TimeoutNow(TimeoutNowResponse),
    /// The receiver's node refused (it is shutting down, or stopped).
    Failed(String),
}
// ANCHOR_END: wire

// ANCHOR: framing
/// A frame larger than this is refused: a corrupt or hostile length prefix must not make the
/// receiver allocate gigabytes.
pub const MAX_FRAME_BYTES: u32 = 64 << 20;

/// Writes `value` as one frame: a 4-byte big-endian length, then its bincode encoding. Returns
/// the bytes written.
pub async fn write_frame<W, T>(writer: &mut W, value: &T) -> io::Result<u64>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let bytes = codec::encode(value).map_err(io::Error::other)?;
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|len| *len <= MAX_FRAME_BYTES)
        .ok_or_else(|| io::Error::other(format!("frame of {} bytes is too large", bytes.len())))?;
    writer.write_all(&len.to_be_bytes()).await?;
    writer.write_all(&bytes).await?;
    writer.flush().await?;
    Ok(4 + u64::from(len))
}

/// Reads one frame written by [`write_frame`]. Bad input is an error, never a panic.
pub async fn read_frame<R, T>(reader: &mut R) -> io::Result<T>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::other(format!(
            "frame of {len} bytes exceeds the limit"
        )));
    }
    let mut bytes = vec![0u8; len as usize];
    reader.read_exact(&mut bytes).await?;
    codec::decode(&bytes).map_err(io::Error::other)
}
// ANCHOR_END: framing

// ANCHOR: client
/// The sending side: one per node, given to `Raft::bootstrap` as its `Network`. Clones share
/// the connections and counters.
#[derive(Clone)]
pub struct TcpNetwork {
    /// Where each peer listens.
    peers: BTreeMap<NodeId, SocketAddr>,
    /// Connections not in use, per peer. An RPC takes one (or connects) and puts it back after a
    /// complete exchange, so concurrent RPCs to one peer use separate connections.
    idle: Arc<Mutex<BTreeMap<NodeId, Vec<TcpStream>>>>,
    /// Requests sent and their bytes on the wire, for the example's summary.
    rpcs: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl TcpNetwork {
    /// A network that reaches each peer at its address.
    pub fn new(peers: BTreeMap<NodeId, SocketAddr>) -> TcpNetwork {
        TcpNetwork {
            peers,
            idle: Arc::default(),
            rpcs: Arc::default(),
            bytes: Arc::default(),
        }
    }

    /// One request, one response. Any failure is a `NetworkError`: the caller (the node)
    /// treats the message as lost.
    async fn call(
        &self,
        target: NodeId,
        request: WireRequest,
    ) -> Result<WireResponse, NetworkError> {
        let mut stream = match self.take_idle(target) {
            Some(stream) => stream,
            None => {
                let addr = self
                    .peers
                    .get(&target)
                    .ok_or(NetworkError::Unreachable(target))?;
                let stream = TcpStream::connect(addr)
                    .await
                    .map_err(|_| NetworkError::Unreachable(target))?;
                stream.set_nodelay(true).map_err(transport_error)?;
                stream
            }
        };
        let written = write_frame(&mut stream, &request)
            .await
            .map_err(transport_error)?;
        self.rpcs.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(written, Ordering::Relaxed);
        let response = read_frame(&mut stream).await.map_err(transport_error)?;
        self.put_idle(target, stream);
        Ok(response)
    }

    fn take_idle(&self, target: NodeId) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.get_mut(&target)?.pop()
    }

    fn put_idle(&self, target: NodeId, stream: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.entry(target).or_default().push(stream);
    }

    /// Requests sent so far, and their bytes on the wire.
    pub fn sent(&self) -> (u64, u64) {
        (
            self.rpcs.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

fn transport_error(error: io::Error) -> NetworkError {
    NetworkError::Transport(error.to_string())
}

fn unexpected(response: WireResponse) -> NetworkError {
    match response {
        WireResponse::Failed(message) => NetworkError::Transport(message),
        other => NetworkError::Transport(format!("unexpected response {other:?}")),
    }
}

/// raftor's `Network` trait: one method per RPC, each a [`TcpNetwork::call`].
#[async_trait]
impl Network for TcpNetwork {
    async fn append_entries(
        &self,
        target: NodeId,
        req: AppendEntriesRequest,
    ) -> Result<AppendEntriesResponse, NetworkError> {
        match self.call(target, WireRequest::AppendEntries(req)).await? {
            WireResponse::AppendEntries(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }

    async fn request_vote(
        &self,
        target: NodeId,
        req: VoteRequest,
    ) -> Result<VoteResponse, NetworkError> {
        match self.call(target, WireRequest::RequestVote(req)).await? {
            WireResponse::RequestVote(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }

    async fn forward_write(
        &self,
        target: NodeId,
        req: ForwardRequest,
    ) -> Result<ForwardResponse, NetworkError> {
        match self.call(target, WireRequest::ForwardWrite(req)).await? {
            WireResponse::ForwardWrite(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }

    async fn read_index(
        &self,
        target: NodeId,
        req: ReadIndexRequest,
    ) -> Result<ReadIndexResponse, NetworkError> {
        match self.call(target, WireRequest::ReadIndex(req)).await? {
            WireResponse::ReadIndex(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }

    async fn install_snapshot(
        &self,
        target: NodeId,
        req: InstallSnapshotRequest,
    ) -> Result<InstallSnapshotResponse, NetworkError> {
        match self.call(target, WireRequest::InstallSnapshot(req)).await? {
            WireResponse::InstallSnapshot(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }

    async fn timeout_now(
        &self,
        target: NodeId,
        req: TimeoutNowRequest,
    ) -> Result<TimeoutNowResponse, NetworkError> {
        match self.call(target, WireRequest::TimeoutNow(req)).await? {
            WireResponse::TimeoutNow(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }
}
// ANCHOR_END: client

// ANCHOR: server
/// The receiving side: accepts connections and answers each request by calling `RaftRpc` on the
/// local node's `Raft` handle. Dropping (or aborting) the future closes every connection.
pub async fn serve(listener: TcpListener, node: Arc<dyn RaftRpc>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(stream, Arc::clone(&node)));
                }
                // Out of file descriptors, say: wait a little rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves one connection until the peer closes it or sends something undecodable.
async fn serve_connection(mut stream: TcpStream, node: Arc<dyn RaftRpc>) {
    while let Ok(request) = read_frame::<_, WireRequest>(&mut stream).await {
        let response = match request {
            WireRequest::AppendEntries(req) => node
                .append_entries(req)
                .await
                .map(WireResponse::AppendEntries),
            WireRequest::RequestVote(req) => {
                node.request_vote(req).await.map(WireResponse::RequestVote)
            }
            WireRequest::ForwardWrite(req) => node
                .forward_write(req)
                .await
                .map(WireResponse::ForwardWrite),
            WireRequest::ReadIndex(req) => node.read_index(req).await.map(WireResponse::ReadIndex),
            WireRequest::InstallSnapshot(req) => node
                .install_snapshot(req)
                .await
                .map(WireResponse::InstallSnapshot),
            WireRequest::TimeoutNow(req) => {
                node.timeout_now(req).await.map(WireResponse::TimeoutNow)
            }
        };
        let response = response.unwrap_or_else(|error| WireResponse::Failed(error.to_string()));
        if write_frame(&mut stream, &response).await.is_err() {
            return;
        }
    }
}
// ANCHOR_END: server

/// The replicated state of the example: a journal of lines, shared with the caller so it can
/// show (and the tests can compare) what each node applied.
pub struct Journal {
    lines: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl StateMachine for Journal {
    type Command = String;
    /// The journal's length after the command: the line's position.
    type Response = usize;

    async fn apply(
        &mut self,
        _index: LogIndex,
        command: String,
    ) -> Result<usize, StateMachineError> {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.push(command);
        Ok(lines.len())
    }
}

/// One node of a [`Cluster`]: its handle, its server task and what it applied.
pub struct Node {
    pub raft: Raft<Journal>,
    pub network: TcpNetwork,
    server: JoinHandle<()>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// The lines this node's state machine applied, in order.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops the node and its server, as if its process exited.
    pub async fn stop(&self) {
        self.server.abort();
        self.raft.shutdown().await;
    }
}

/// Three (or more) nodes on loopback, each listening on a port of its own.
pub struct Cluster {
    pub nodes: Vec<Node>,
}

impl Cluster {
    // ANCHOR: cluster
    /// Binds a listener per node first, so every node knows every address before any starts.
    pub async fn start(ids: &[NodeId], config: Config) -> anyhow::Result<Cluster> {
        let mut listeners = Vec::new();
        let mut addresses = BTreeMap::new();
        for id in ids {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            addresses.insert(*id, listener.local_addr()?);
            listeners.push(listener);
        }
        let mut nodes = Vec::new();
        for (id, listener) in ids.iter().copied().zip(listeners) {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let journal = Journal {
                lines: Arc::clone(&lines),
            };
            let network = TcpNetwork::new(addresses.clone());
            let raft = Raft::bootstrap(
                id,
                ids.iter().copied(),
                config.clone(),
                network.clone(),
                MemStorage::new(),
                journal,
            )
            .await?;
            let server = tokio::spawn(serve(listener, Arc::new(raft.clone())));
            nodes.push(Node {
                raft,
                network,
                server,
                lines,
            });
        }
        Ok(Cluster { nodes })
    }
    // ANCHOR_END: cluster

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> anyhow::Result<&Node> {
        self.nodes
            .iter()
            .find(|node| node.raft.id() == id)
            .ok_or_else(|| anyhow::anyhow!("no node {id}"))
    }

    /// Waits until every node in `among` agrees on one leader other than `not`, and returns it.
    pub async fn agreed_leader(
        &self,
        among: &[NodeId],
        not: Option<NodeId>,
        timeout: Duration,
    ) -> anyhow::Result<NodeId> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let views: Vec<Option<NodeId>> = among
                .iter()
                .map(|id| self.node(*id).map(|node| node.raft.metrics().leader))
                .collect::<anyhow::Result<_>>()?;
            if let Some(Some(leader)) = views.first() {
                if views.iter().all(|view| *view == Some(*leader)) && Some(*leader) != not {
                    return Ok(*leader);
                }
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("no agreed leader within {timeout:?}: {views:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until every node in `among` applied the same lines, and returns them.
    pub async fn converged(
        &self,
        among: &[NodeId],
        timeout: Duration,
    ) -> anyhow::Result<Vec<String>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let journals: Vec<Vec<String>> = among
                .iter()
                .map(|id| self.node(*id).map(Node::lines))
                .collect::<anyhow::Result<_>>()?;
            if journals.windows(2).all(|pair| pair[0] == pair[1]) {
                return Ok(journals.into_iter().next().unwrap_or_default());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("journals did not converge within {timeout:?}: {journals:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops every node.
    pub async fn shutdown(&self) {
        for node in &self.nodes {
            node.stop().await;
        }
    }
}
