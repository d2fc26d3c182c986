//! What travels on a connection: [`Frame`]s, each a 4-byte big-endian length followed by that
//! many bytes of bincode 2 (standard configuration, via serde). Reading refuses a length over the
//! limit before allocating, and decoding is bounded so that a small frame claiming a huge string
//! cannot make the node allocate more than a small multiple of the frame's size.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

use crate::message::{
    AppendEntriesRequest, AppendEntriesResponse, ForwardRequest, ForwardResponse,
    InstallSnapshotRequest, InstallSnapshotResponse, ReadIndexRequest, ReadIndexResponse,
    TimeoutNowRequest, TimeoutNowResponse, VoteRequest, VoteResponse,
};
use crate::network::NetworkError;
use crate::types::NodeId;

use super::config::TcpConfig;
use super::error::{FrameError, Refusal};

/// The first bytes of every handshake: a quick check that the peer speaks this protocol at all.
pub(crate) const MAGIC: [u8; 4] = *b"RFTR";
/// The wire protocol's version, checked in the handshake.
pub(crate) const VERSION: u16 = 1;
/// The limit on frames before the handshake completes: an unknown peer gets no big buffers.
pub(crate) const HANDSHAKE_FRAME_BYTES: u32 = 1024;
/// The length prefix's size.
const PREFIX_BYTES: usize = 4;

/// One message on a connection.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Frame {
    /// The connecting side introduces itself (the first frame it sends).
    Hello(Hello),
    /// The accepting side agrees, naming itself.
    Welcome {
        /// The accepting node.
        node: NodeId,
    },
    /// The accepting side refuses; it closes the connection after this frame.
    Refused(Refusal),
    /// An RPC, from the connecting side. `id` is unique among the connection's requests.
    Request {
        /// The correlation id the response carries back.
        id: u64,
        /// The call.
        rpc: RpcRequest,
    },
    /// The answer to the request with the same `id`, from the accepting side.
    Response {
        /// The request's correlation id.
        id: u64,
        /// What the receiving node's `RaftRpc` returned.
        result: Result<RpcResponse, RemoteError>,
    },
}

/// The handshake's first frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The connecting side's [`VERSION`].
    pub version: u16,
    /// The connecting side's cluster id; must equal the accepting side's.
    pub cluster_id: String,
    /// The connecting node.
    pub from: NodeId,
    /// The node the connecting side means to reach; must be the accepting node.
    pub to: NodeId,
}

/// The six RPCs of [`Network`](crate::Network), as they travel.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RpcRequest {
    AppendEntries(AppendEntriesRequest),
    RequestVote(VoteRequest),
    ForwardWrite(ForwardRequest),
    ReadIndex(ReadIndexRequest),
    InstallSnapshot(InstallSnapshotRequest),
    TimeoutNow(TimeoutNowRequest),
}

/// The answers to [`RpcRequest`]s, variant for variant.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RpcResponse {
    AppendEntries(AppendEntriesResponse),
    RequestVote(VoteResponse),
    ForwardWrite(ForwardResponse),
    ReadIndex(ReadIndexResponse),
    InstallSnapshot(InstallSnapshotResponse),
    TimeoutNow(TimeoutNowResponse),
}

/// A [`NetworkError`] returned by the receiving node's `RaftRpc`, as it travels. A mirror rather
/// than `NetworkError` itself, so the public type can change without changing the wire format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RemoteError {
    Unreachable(NodeId),
    Timeout(NodeId),
    ShuttingDown(NodeId),
    Transport(String),
}

impl RpcRequest {
    /// The RPC's deadline: the leader may take up to its client timeout to answer a forwarded
    /// write or a read index, every other RPC is answered promptly.
    pub(crate) fn timeout(&self, config: &TcpConfig) -> std::time::Duration {
        match self {
            RpcRequest::ForwardWrite(_) | RpcRequest::ReadIndex(_) => config.forward_timeout,
            _ => config.rpc_timeout,
        }
    }
}

impl From<NetworkError> for RemoteError {
    fn from(error: NetworkError) -> RemoteError {
        match error {
            NetworkError::Unreachable(node) => RemoteError::Unreachable(node),
            NetworkError::Timeout(node) => RemoteError::Timeout(node),
            NetworkError::ShuttingDown(node) => RemoteError::ShuttingDown(node),
            NetworkError::Transport(message) => RemoteError::Transport(message),
        }
    }
}

impl From<RemoteError> for NetworkError {
    fn from(error: RemoteError) -> NetworkError {
        match error {
            RemoteError::Unreachable(node) => NetworkError::Unreachable(node),
            RemoteError::Timeout(node) => NetworkError::Timeout(node),
            RemoteError::ShuttingDown(node) => NetworkError::ShuttingDown(node),
            RemoteError::Transport(message) => NetworkError::Transport(message),
        }
    }
}

/// Encodes `frame` with its length prefix, refusing one longer than `max_frame_bytes`.
pub(crate) fn encode_frame(frame: &Frame, max_frame_bytes: u32) -> Result<Vec<u8>, FrameError> {
    let mut bytes = vec![0u8; PREFIX_BYTES];
    bincode::serde::encode_into_std_write(frame, &mut bytes, bincode::config::standard())
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = bytes.len() - PREFIX_BYTES;
    let prefix = u32::try_from(len)
        .ok()
        .filter(|len| *len <= max_frame_bytes)
        .ok_or(FrameError::TooLarge {
            len: len as u64,
            max: max_frame_bytes,
        })?;
    bytes[..PREFIX_BYTES].copy_from_slice(&prefix.to_be_bytes());
    Ok(bytes)
}

/// How much a connection's reader takes from the socket at once: every frame already received
/// comes out of one `recv` instead of two (prefix, then body) per frame.
pub(crate) const READ_BUFFER_BYTES: usize = 64 << 10;

/// Reads one frame. A length over `max_frame_bytes` is refused before anything is allocated.
/// Not cancel-safe: a frame half read is lost with the future.
pub(crate) async fn read_frame<R>(reader: &mut R, max_frame_bytes: u32) -> Result<Frame, FrameError>
where
    R: AsyncRead + Unpin,
{
    let mut prefix = [0u8; PREFIX_BYTES];
    if let Err(error) = reader.read_exact(&mut prefix).await {
        return Err(match error.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Closed,
            _ => FrameError::Io(error),
        });
    }
    let len = u32::from_be_bytes(prefix);
    if len > max_frame_bytes {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            max: max_frame_bytes,
        });
    }
    let mut bytes = vec![0u8; len as usize];
    reader.read_exact(&mut bytes).await?;
    decode_frame(&bytes)
}

/// Writes the encoded frames from `outgoing` until the channel closes, flushing whenever it runs
/// empty: frames queued together leave in one write.
pub(crate) async fn write_frames<W>(
    writer: W,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
{
    let mut writer = BufWriter::new(writer);
    while let Some(frame) = outgoing.recv().await {
        writer.write_all(&frame).await?;
        while let Ok(frame) = outgoing.try_recv() {
            writer.write_all(&frame).await?;
        }
        writer.flush().await?;
    }
    Ok(())
}

/// Decodes a frame's bytes. bincode allocates a string or byte vector as long as its (claimed)
/// length before reading it, so decoding runs with a limit on what it may claim: eight times the
/// frame's size (a varint of one byte claims the eight of a `u64`), rounded up to a power of 16.
fn decode_frame(bytes: &[u8]) -> Result<Frame, FrameError> {
    let claim = bytes.len().saturating_mul(8);
    if claim <= 64 << 10 {
        decode_limited::<{ 64 << 10 }>(bytes)
    } else if claim <= 1 << 20 {
        decode_limited::<{ 1 << 20 }>(bytes)
    } else if claim <= 16 << 20 {
        decode_limited::<{ 16 << 20 }>(bytes)
    } else if claim <= 256 << 20 {
        decode_limited::<{ 256 << 20 }>(bytes)
    } else {
        decode_limited::<{ 1 << 31 }>(bytes)
    }
}

fn decode_limited<const LIMIT: usize>(bytes: &[u8]) -> Result<Frame, FrameError> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let (frame, read) = bincode::serde::decode_from_slice(bytes, config)
        .map_err(|e| FrameError::Decode(e.to_string()))?;
    if read != bytes.len() {
        return Err(FrameError::Decode(format!(
            "{} trailing bytes",
            bytes.len() - read
        )));
    }
    Ok(frame)
}
