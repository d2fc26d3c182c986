//! One inbound connection, from handshake to close:
//!
//! ```text
//!  socket ─► handshake ─► reader ─► Request { id, rpc } ─► task: RaftRpc call ─► Response { id }
//!                                   (one task per request, at most max_inflight_rpcs)    │
//!  socket ◄──────────────────────────────── writer ◄── outgoing queue ◄──────────────────┘
//! ```
//!
//! Requests are answered concurrently, so a slow one (a forwarded write waiting to commit) does
//! not hold up the heartbeats behind it; responses go out in the order they are ready, each
//! with its request's correlation id. Anything malformed closes the connection with a warning;
//! the node and its other connections carry on, and the sender sees lost messages.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::BufReader;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, warn, Instrument};

use crate::network::{NetworkError, RaftRpc};
use crate::types::NodeId;

use super::config::TcpConfig;
use super::error::{FrameError, HandshakeError};
use super::frame::{
    encode_frame, read_frame, write_frames, Frame, RemoteError, RpcRequest, RpcResponse,
    READ_BUFFER_BYTES,
};
use super::handshake;

/// The node a server answers for.
pub(crate) struct Local {
    /// The node's id: the one a peer's handshake must name.
    pub id: NodeId,
    /// The transport's settings.
    pub config: TcpConfig,
    /// The node's `Raft` handle.
    pub node: Arc<dyn RaftRpc>,
}

/// Serves one accepted connection for the `local` node until it closes. `_slot` is the
/// connection's place among the server's `max_inbound_connections`, given back when it ends.
pub(crate) async fn serve(
    mut stream: TcpStream,
    remote: SocketAddr,
    local: Arc<Local>,
    _slot: OwnedSemaphorePermit,
) {
    let (id, config) = (local.id, &local.config);
    let _ = stream.set_nodelay(true);
    let handshake = handshake::accept(&mut stream, id, &config.cluster_id);
    let peer = match tokio::time::timeout(config.connect_timeout, handshake).await {
        Ok(Ok(hello)) => hello.from,
        Ok(Err(error)) => return refused(id, remote, error),
        Err(_) => return refused(id, remote, HandshakeError::Timeout),
    };
    let span = tracing::debug_span!("peer", peer = %peer, %remote);
    async {
        debug!("accepted");
        let (reader, writer) = stream.into_split();
        let (outgoing, queued) = mpsc::channel(config.max_inflight_rpcs);
        let result = tokio::select! {
            result = read_requests(BufReader::with_capacity(READ_BUFFER_BYTES, reader), outgoing, &local) => result,
            result = write_frames(writer, queued) => result,
        };
        match result {
            Ok(()) | Err(FrameError::Closed) => debug!("connection closed"),
            Err(error) => warn!(%error, "closing the connection"),
        }
    }
    .instrument(span)
    .await;
}

/// Logs a failed handshake: a refusal is a misconfigured peer, worth a warning.
fn refused(id: NodeId, remote: SocketAddr, error: HandshakeError) {
    match error {
        HandshakeError::Refused(_) => {
            warn!(node_id = %id, %remote, %error, "refused a connection")
        }
        _ => warn!(
            node_id = %id, %remote, %error,
            "closing a connection that did not complete the handshake"
        ),
    }
}

/// Reads requests and starts a task answering each, until the peer closes the connection or
/// sends something that is not a request. Returning stops the tasks still running.
async fn read_requests(
    mut reader: BufReader<OwnedReadHalf>,
    outgoing: mpsc::Sender<Vec<u8>>,
    local: &Arc<Local>,
) -> Result<(), FrameError> {
    let config = &local.config;
    let slots = Arc::new(Semaphore::new(config.max_inflight_rpcs));
    let mut requests = JoinSet::new();
    loop {
        let (request_id, rpc) = match read_frame(&mut reader, config.max_frame_bytes).await? {
            Frame::Request { id, rpc } => (id, rpc),
            _ => return Err(FrameError::Unexpected("non-request")),
        };
        // Back-pressure: beyond the limit, stop reading until a request is answered.
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .map_err(|_| FrameError::Unexpected("request after close"))?;
        let answer = Answer {
            request_id,
            local: Arc::clone(local),
            outgoing: outgoing.clone(),
        };
        requests.spawn(answer.run(rpc, slot).in_current_span());
        while requests.try_join_next().is_some() {}
    }
}

/// What a request's task needs to answer it.
struct Answer {
    request_id: u64,
    local: Arc<Local>,
    outgoing: mpsc::Sender<Vec<u8>>,
}

impl Answer {
    /// Calls the node, under the RPC's deadline (past it the sender has given up), and queues
    /// the response.
    async fn run(self, rpc: RpcRequest, _slot: OwnedSemaphorePermit) {
        let local = &self.local;
        let deadline = rpc.timeout(&local.config);
        let result = match tokio::time::timeout(deadline, dispatch(&*local.node, rpc)).await {
            Ok(result) => result.map_err(RemoteError::from),
            Err(_) => Err(RemoteError::Timeout(local.id)),
        };
        let max = local.config.max_frame_bytes;
        let id = self.request_id;
        let frame = encode_frame(&Frame::Response { id, result }, max).or_else(|error| {
            warn!(%error, "cannot send a response");
            let result = Err(RemoteError::Transport(error.to_string()));
            encode_frame(&Frame::Response { id, result }, max)
        });
        if let Ok(frame) = frame {
            let _ = self.outgoing.send(frame).await;
        }
    }
}

/// Hands one request to the matching `RaftRpc` method.
async fn dispatch(node: &dyn RaftRpc, rpc: RpcRequest) -> Result<RpcResponse, NetworkError> {
    Ok(match rpc {
        RpcRequest::AppendEntries(req) => {
            RpcResponse::AppendEntries(node.append_entries(req).await?)
        }
        RpcRequest::RequestVote(req) => RpcResponse::RequestVote(node.request_vote(req).await?),
        RpcRequest::ForwardWrite(req) => RpcResponse::ForwardWrite(node.forward_write(req).await?),
        RpcRequest::ReadIndex(req) => RpcResponse::ReadIndex(node.read_index(req).await?),
        RpcRequest::InstallSnapshot(req) => {
            RpcResponse::InstallSnapshot(node.install_snapshot(req).await?)
        }
        RpcRequest::TimeoutNow(req) => RpcResponse::TimeoutNow(node.timeout_now(req).await?),
    })
}
