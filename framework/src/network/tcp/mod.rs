//! raftor's TCP transport: [`TcpNetwork`] sends a node's RPCs (it implements
//! [`Network`](crate::network::Network)), and [`TcpServer`] receives its peers' RPCs and hands
//! each to the node's `Raft` handle (through [`RaftRpc`](crate::network::RaftRpc)).
//!
//! ```text
//!  node A                                                    node B
//!  core ─► TcpNetwork::append_entries(B, req)                TcpServer (serving B's Raft handle)
//!            │ one connection per peer, many RPCs on it         │
//!            ├─ Request { id: 7, AppendEntries } ══ TCP ══════► ├─► task: raft.append_entries(req)
//!            ├─ Request { id: 8, RequestVote }   ══════════════► ├─► task: raft.request_vote(req)
//!            │                                                   │   (answered concurrently)
//!  core ◄─ Ok(resp) ◄─ Response { id: 7, Ok(..) } ◄══════════════┘
//! ```
//!
//! # Starting a node
//!
//! The server needs the `Raft` handle to answer, and the handle needs its network to start, so
//! the steps are: bind the listener ([`TcpServer::bind`], which also fixes the address when the
//! port is 0), build the [`TcpNetwork`] with every peer's address, start the `Raft` with it, then
//! [`TcpServer::serve`] the handle. Until then peers' connections wait in the listen backlog.
//! `serve` returns a [`ServerHandle`]: its `shutdown()` stops accepting, closes every inbound
//! connection and waits until they are gone. Outgoing connections close when the last clone of
//! the `TcpNetwork` is dropped (the `Raft` holds one until it is dropped).
//!
//! # Frames
//!
//! A connection carries frames, each a length prefix and a bincode 2 payload (standard
//! configuration, via serde):
//!
//! ```text
//!  ┌──────────────────────┬────────────────────────────────────────────────────────┐
//!  │ length: u32, big end │ payload: bincode(Frame), `length` bytes                 │
//!  └──────────────────────┴────────────────────────────────────────────────────────┘
//!  Frame = Hello { magic "RFTR", version, cluster_id, from, to }     connecting → accepting
//!        | Welcome { node } | Refused(reason)                        accepting → connecting
//!        | Request { id, rpc }                                       connecting → accepting
//!        | Response { id, result: Ok(response) | Err(NetworkError) } accepting → connecting
//! ```
//!
//! A length over [`TcpConfig::max_frame_bytes`] (16 MiB by default: an InstallSnapshot chunk is
//! 1 MiB, an AppendEntries at most `max_payload_bytes_per_message`, 1 MiB, plus their envelopes)
//! closes the connection before anything is allocated, and so do undecodable bytes; the node
//! logs a warning and carries on, and the peer sees its RPCs on that connection as lost. Until the
//! handshake is done, frames are limited to 1 KiB. Decoding is bounded too: a frame claiming a
//! string of a terabyte is refused, not allocated.
//!
//! # Handshake
//!
//! The connecting node speaks first: `Hello` names its cluster, itself and the node it means to
//! reach. The accepting node refuses (with the reason, and a warning in its log) a peer of another
//! cluster, a connection meant for another node (the sender's address map is wrong), a peer
//! claiming its own id, or another protocol version; the connecting node's RPC then fails with a
//! `NetworkError::Transport` saying why, and it logs a warning as well.
//!
//! # Multiplexing
//!
//! Each node keeps at most one connection to each peer, opened by the first RPC, and each
//! request carries a correlation id its response echoes: RPCs to a peer share the connection, in
//! any number up to [`TcpConfig::max_inflight_rpcs`], and are answered in whatever order the
//! receiving node finishes them. A connection between two nodes carries requests one way only:
//! B's RPCs to A use B's own connection to A.
//!
//! Outgoing connections are bound to the IP of the node's own raft address before connecting,
//! so a node on 127.0.0.2 always talks from 127.0.0.2: firewall rules on addresses cut exactly
//! the links they name.
//!
//! # Failures, timeouts and reconnection
//!
//! Nothing waits without a deadline. Connecting and the handshake must finish within
//! [`TcpConfig::connect_timeout`]; each RPC within [`TcpConfig::rpc_timeout`] (or
//! [`TcpConfig::forward_timeout`] for `forward_write` and `read_index`, which a leader may take
//! its client timeout to answer), after which it fails with `NetworkError::Timeout` and its
//! entry leaves the pending map; a response arriving later is dropped. If nothing at all arrived
//! on the connection while the call waited, the connection closes too: the peer may be wedged,
//! or the connection half-open after its host vanished. When a connection breaks,
//! the RPCs waiting on it fail at once and the next RPC reconnects. A failed attempt makes the
//! peer back off (from [`TcpConfig::reconnect_backoff_min`], doubling up to
//! [`TcpConfig::reconnect_backoff_max`]); meanwhile RPCs to it fail at once as
//! `NetworkError::Unreachable`. To the protocol every one of these errors is a lost message,
//! which it already tolerates: the next heartbeat or election retries.
//!
//! Errors the receiving node's `RaftRpc` returns (it is shutting down, say) travel back in the
//! response and come out of the sender's `Network` call as the same `NetworkError`.
//!
//! # Limits
//!
//! No TLS or authentication: the cluster id guards against mistakes, not attackers. Keep the
//! raft ports on a trusted network. Frames on one connection are written in order, so a large
//! AppendEntries delays the heartbeats queued behind it; keep `max_payload_bytes_per_message`
//! small enough to cross the network well within the election timeout.

mod client;
mod config;
mod connection;
mod error;
mod frame;
mod handshake;
mod inbound;
mod server;
#[cfg(test)]
mod tests;

pub use client::TcpNetwork;
pub use config::{TcpConfig, MAX_CLUSTER_ID_BYTES, MAX_FRAME_BYTES_LIMIT};
pub use error::TcpError;
pub use server::{ServerHandle, TcpServer};
