//! The transport's errors: [`TcpError`] for its public API (configuring, binding), and the
//! crate-private ones of its two layers, frames and the handshake. An RPC never returns these:
//! at the `Network` boundary each becomes a [`NetworkError`](crate::NetworkError).

use std::io;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::types::NodeId;

/// What can go wrong setting up the TCP transport.
#[derive(Debug, Error)]
pub enum TcpError {
    /// The [`TcpConfig`](super::TcpConfig) is inconsistent.
    #[error("invalid TCP transport config: {0}")]
    Config(String),
    /// The listening socket could not be bound (address in use, not a local address, ...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the operating system refused.
        #[source]
        source: io::Error,
    },
}

/// Why reading or writing one frame failed. Any of these closes the connection.
#[derive(Debug, Error)]
pub(crate) enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed by the peer")]
    Closed,
    /// The socket failed, or the peer closed it in the middle of a frame.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// A length prefix (or an encoded frame) over the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The frame's length.
        len: u64,
        /// The limit in force.
        max: u32,
    },
    /// The bytes are not a frame.
    #[error("undecodable frame: {0}")]
    Decode(String),
    /// A value could not be encoded (a bug in a message's serde implementation).
    #[error("cannot encode a frame: {0}")]
    Encode(String),
    /// A well-formed frame that has no business at this point of the conversation.
    #[error("unexpected {0} frame")]
    Unexpected(&'static str),
}

/// Why a node refuses a connection, sent to the connecting side in the handshake's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
pub(crate) enum Refusal {
    /// The peer speaks another version of the wire protocol.
    #[error("wire protocol version {got}, this node speaks {expected}")]
    Version {
        /// This node's version.
        expected: u16,
        /// The peer's version.
        got: u16,
    },
    /// The peer belongs to another cluster.
    #[error("cluster id {got:?}, this node belongs to cluster {expected:?}")]
    ClusterMismatch {
        /// This node's cluster id.
        expected: String,
        /// The peer's cluster id.
        got: String,
    },
    /// The peer meant to reach another node: its address map is wrong.
    #[error("the connection is meant for node {expected}, but this is node {actual}")]
    WrongNode {
        /// The node the peer meant to reach.
        expected: NodeId,
        /// This node.
        actual: NodeId,
    },
    /// The peer claims to be this node.
    #[error("the peer claims this node's own id {0}")]
    OwnId(NodeId),
}

/// Why a handshake failed, on either side.
#[derive(Debug, Error)]
pub(crate) enum HandshakeError {
    /// Reading or writing a handshake frame failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The other side refused us.
    #[error("refused by the peer: {0}")]
    RefusedByPeer(Refusal),
    /// We refused the other side.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// The peer that answered is not the node we meant to reach.
    #[error("expected node {expected} to answer, node {actual} did")]
    WrongPeer {
        /// The node we connected to reach.
        expected: NodeId,
        /// The node that answered.
        actual: NodeId,
    },
    /// No handshake within the connect timeout.
    #[error("no handshake in time")]
    Timeout,
}
