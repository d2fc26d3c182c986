//! [`Connection`]: one outgoing connection to a peer, carrying many RPCs at once.
//!
//! ```text
//!  call(rpc) ─► id = next_id; pending[id] = oneshot tx ─► outgoing queue ─► writer ─► socket
//!  call(rpc) ◄─ oneshot rx ◄─ pending.remove(id) ◄─ reader ◄─ Response { id, result } ◄─ socket
//! ```
//!
//! One task per connection runs the reader and the writer. When either stops (the peer closed,
//! a malformed frame, a write failed) the task ends and every waiting call fails at once; the
//! owning [`TcpNetwork`](super::TcpNetwork) opens a new connection for the next RPC. A call that
//! gives up (its deadline passed, or its caller dropped it) removes its own entry, so the
//! pending map holds only calls that still wait, never more than `max_inflight_rpcs`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::BufReader;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{debug, warn, Instrument};

use crate::network::NetworkError;
use crate::types::NodeId;

use super::config::TcpConfig;
use super::error::{FrameError, HandshakeError};
use super::frame::{
    encode_frame, read_frame, write_frames, Frame, Hello, RemoteError, RpcRequest, RpcResponse,
    MAGIC, READ_BUFFER_BYTES, VERSION,
};
use super::handshake;

/// Where a waiting call's answer goes.
type Reply = oneshot::Sender<Result<RpcResponse, RemoteError>>;

/// An open, handshaken connection to one peer. Dropping it stops its task and closes the socket.
pub(crate) struct Connection {
    /// The peer at the other end.
    peer: NodeId,
    /// Encoded frames for the writer.
    outgoing: mpsc::Sender<Vec<u8>>,
    /// Calls waiting for their response, by correlation id.
    pending: Arc<Pending>,
    /// The next correlation id. Unique per connection, which is all a response needs.
    next_id: AtomicU64,
    /// Frames longer than this are refused before they are sent.
    max_frame_bytes: u32,
    /// The reader/writer task.
    task: AbortHandle,
}

/// The calls waiting on one connection.
struct Pending {
    /// Invariant: `waiting.len() <= max`.
    max: usize,
    state: Mutex<PendingState>,
}

struct PendingState {
    /// False once the connection's task has stopped: nothing will answer any more.
    open: bool,
    /// When the last response arrived (or the connection opened).
    last_heard: Instant,
    waiting: HashMap<u64, Reply>,
}

impl Connection {
    /// Connects to `peer` at `addr` from `source_ip` (when given) and runs the handshake, all
    /// within the connect timeout, then starts the connection's task on the current runtime.
    pub(crate) async fn open(
        hello: Hello,
        addr: SocketAddr,
        source_ip: Option<IpAddr>,
        config: &TcpConfig,
    ) -> Result<Connection, NetworkError> {
        let (peer, from) = (hello.to, hello.from);
        let socket = bind_to(addr, source_ip).map_err(|error| {
            warn!(node_id = %from, ?source_ip, %error, "cannot bind an outgoing connection");
            NetworkError::Transport(format!(
                "cannot bind a connection to node {peer} to {source_ip:?}: {error}"
            ))
        })?;
        let connect = async {
            let mut stream = connect(socket, addr).await.map_err(|error| {
                debug!(peer = %peer, %addr, %error, "connect failed");
                NetworkError::Unreachable(peer)
            })?;
            handshake::offer(&mut stream, hello)
                .await
                .map_err(|error| handshake_failed(from, peer, addr, error))?;
            Ok::<_, NetworkError>(stream)
        };
        let stream = tokio::time::timeout(config.connect_timeout, connect)
            .await
            .map_err(|_| {
                debug!(peer = %peer, %addr, "connect timed out");
                NetworkError::Unreachable(peer)
            })??;
        debug!(peer = %peer, %addr, "connected");
        Ok(Connection::start(peer, stream, config))
    }

    fn start(peer: NodeId, stream: TcpStream, config: &TcpConfig) -> Connection {
        let pending = Arc::new(Pending {
            max: config.max_inflight_rpcs,
            state: Mutex::new(PendingState {
                open: true,
                last_heard: Instant::now(),
                waiting: HashMap::new(),
            }),
        });
        let (outgoing, rx) = mpsc::channel(config.max_inflight_rpcs);
        let run = run(
            stream,
            rx,
            Arc::clone(&pending),
            config.max_frame_bytes,
            peer,
        );
        let task = tokio::spawn(run.in_current_span()).abort_handle();
        Connection {
            peer,
            outgoing,
            pending,
            next_id: AtomicU64::new(0),
            max_frame_bytes: config.max_frame_bytes,
            task,
        }
    }

    /// Whether the connection can still carry RPCs.
    pub(crate) fn is_open(&self) -> bool {
        self.pending.lock().open && !self.outgoing.is_closed()
    }

    /// Sends `rpc` and waits for its response. No deadline of its own: the caller sets one, and
    /// dropping the future forgets the call.
    pub(crate) async fn call(&self, rpc: RpcRequest) -> Result<RpcResponse, NetworkError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame =
            encode_frame(&Frame::Request { id, rpc }, self.max_frame_bytes).map_err(|error| {
                NetworkError::Transport(format!("request to node {}: {error}", self.peer))
            })?;
        let (reply, answer) = oneshot::channel();
        let _registration = self.pending.register(id, reply, self.peer)?;
        self.outgoing.send(frame).await.map_err(|_| self.lost())?;
        match answer.await {
            Ok(result) => result.map_err(NetworkError::from),
            Err(_) => Err(self.lost()),
        }
    }

    /// Closes the connection if nothing has arrived on it since `since`: a call timed out, and
    /// the peer has not answered anything else either. The peer may be wedged, or the connection
    /// half-open (the peer's host vanished without a word); a fresh connection finds out. Calls
    /// still waiting fail at once.
    pub(crate) fn close_if_silent_since(&self, since: Instant) {
        let silent = {
            let state = self.pending.lock();
            state.open && state.last_heard < since
        };
        if silent {
            warn!(peer = %self.peer, "nothing received since a timed-out call began: closing");
            self.pending.close();
            self.task.abort();
        }
    }

    /// Calls waiting for a response.
    #[cfg(test)]
    pub(crate) fn pending_calls(&self) -> usize {
        self.pending.lock().waiting.len()
    }

    fn lost(&self) -> NetworkError {
        NetworkError::Transport(format!("connection to node {} lost", self.peer))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A socket to reach `addr` from `source_ip` when given: binding the socket to the
/// node's own IP makes the connection come from the node's address, so firewall rules on
/// addresses partition nodes exactly.
fn bind_to(addr: SocketAddr, source_ip: Option<IpAddr>) -> std::io::Result<TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = source_ip.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    Ok(socket)
}

/// Connects `socket` to `addr`, with Nagle's algorithm off: RPCs are small and latency-bound.
async fn connect(socket: TcpSocket, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Logs a failed handshake (a refusal loudly: it is a configuration error) and says why.
fn handshake_failed(
    from: NodeId,
    peer: NodeId,
    addr: SocketAddr,
    error: HandshakeError,
) -> NetworkError {
    match &error {
        HandshakeError::RefusedByPeer(_) | HandshakeError::WrongPeer { .. } => {
            warn!(node_id = %from, peer = %peer, %addr, %error, "peer refused the connection");
        }
        _ => debug!(peer = %peer, %addr, %error, "handshake failed"),
    }
    NetworkError::Transport(format!(
        "handshake with node {peer} at {addr} failed: {error}"
    ))
}

/// The connection's task: reads responses and writes requests until either fails.
async fn run(
    stream: TcpStream,
    outgoing: mpsc::Receiver<Vec<u8>>,
    pending: Arc<Pending>,
    max_frame_bytes: u32,
    peer: NodeId,
) {
    // Fails every waiting call when the task ends, also when it is aborted or its runtime stops.
    let _close = CloseOnDrop(Arc::clone(&pending));
    let (reader, writer) = stream.into_split();
    let result = tokio::select! {
        result = read_responses(BufReader::with_capacity(READ_BUFFER_BYTES, reader), &pending, max_frame_bytes) => result,
        result = write_frames(writer, outgoing) => result,
    };
    match result {
        Ok(()) | Err(FrameError::Closed) => debug!(peer = %peer, "connection closed"),
        Err(error) => warn!(peer = %peer, %error, "closing the connection"),
    }
}

async fn read_responses(
    mut reader: BufReader<OwnedReadHalf>,
    pending: &Pending,
    max_frame_bytes: u32,
) -> Result<(), FrameError> {
    loop {
        match read_frame(&mut reader, max_frame_bytes).await? {
            Frame::Response { id, result } => pending.answer(id, result),
            _ => return Err(FrameError::Unexpected("non-response")),
        }
    }
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, PendingState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers call `id`; the returned guard forgets it when the call ends, however it ends.
    fn register(
        &self,
        id: u64,
        reply: Reply,
        peer: NodeId,
    ) -> Result<Registration<'_>, NetworkError> {
        let mut state = self.lock();
        if !state.open {
            return Err(NetworkError::Transport(format!(
                "connection to node {peer} lost"
            )));
        }
        if state.waiting.len() >= self.max {
            return Err(NetworkError::Transport(format!(
                "{} RPCs already in flight to node {peer}",
                self.max
            )));
        }
        state.waiting.insert(id, reply);
        Ok(Registration { pending: self, id })
    }

    /// Hands a response to its call. A response nobody waits for any more is dropped.
    fn answer(&self, id: u64, result: Result<RpcResponse, RemoteError>) {
        let reply = {
            let mut state = self.lock();
            state.last_heard = Instant::now();
            state.waiting.remove(&id)
        };
        match reply {
            Some(reply) => {
                let _ = reply.send(result);
            }
            None => debug!(id, "late response dropped"),
        }
    }

    /// Nothing will answer any more: fails every waiting call.
    fn close(&self) {
        let mut state = self.lock();
        state.open = false;
        state.waiting.clear();
    }
}

/// A call's entry in the pending map, removed when the call ends.
struct Registration<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.pending.lock().waiting.remove(&self.id);
    }
}

struct CloseOnDrop(Arc<Pending>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The introduction node `from` of `cluster_id` makes to node `to`.
pub(crate) fn hello(cluster_id: &str, from: NodeId, to: NodeId) -> Hello {
    Hello {
        magic: MAGIC,
        version: VERSION,
        cluster_id: cluster_id.to_string(),
        from,
        to,
    }
}
