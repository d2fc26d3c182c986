//! [`TcpConfig`]: the transport's knobs, with defaults that suit a LAN cluster running raftor's
//! default [`Config`](crate::Config).

use std::time::Duration;

use super::error::TcpError;

/// The largest `max_frame_bytes` accepted: frames are decoded in memory, and a limit this large
/// already means a quarter of a gigabyte per connection.
pub const MAX_FRAME_BYTES_LIMIT: u32 = 256 << 20;

/// The longest cluster id accepted, in bytes.
pub const MAX_CLUSTER_ID_BYTES: usize = 255;

// ANCHOR: tcp_config
/// Settings of the TCP transport, shared by a node's [`TcpNetwork`](super::TcpNetwork) and
/// [`TcpServer`](super::TcpServer). Every node of a cluster should use the same values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConfig {
    /// Names the cluster. Sent in the handshake; a peer with another cluster id is refused, so
    /// nodes of two clusters never exchange a message by mistake. At most
    /// [`MAX_CLUSTER_ID_BYTES`] bytes.
    pub cluster_id: String,
    /// The largest frame sent or accepted, in bytes (the length prefix excluded). A longer length
    /// prefix closes the connection before anything is allocated. Must comfortably exceed the
    /// largest message: `Config::snapshot_chunk_bytes` (1 MiB) and
    /// `Config::max_payload_bytes_per_message` (1 MiB) plus their envelopes.
    pub max_frame_bytes: u32,
    /// How long opening a connection and its handshake may take. Shorter than the node's
    /// `Config::rpc_timeout`, so a peer that does not answer costs less than an RPC.
    pub connect_timeout: Duration,
    /// Deadline of one AppendEntries, RequestVote or InstallSnapshot, from the call to the
    /// response (connecting included). The node applies its own, usually tighter,
    /// `Config::rpc_timeout` on top; this one bounds every other caller.
    pub rpc_timeout: Duration,
    /// Deadline of one `forward_write` or `read_index`. The receiving leader may take up to its
    /// `Config::client_timeout` (5 s by default) to answer these, so this must be longer.
    pub forward_timeout: Duration,
    /// The wait before the first reconnection attempt after a failed one; it doubles with each
    /// further failure, up to `reconnect_backoff_max`. While a peer is backing off, RPCs to it
    /// fail at once with `NetworkError::Unreachable`.
    pub reconnect_backoff_min: Duration,
    /// The longest wait between reconnection attempts.
    pub reconnect_backoff_max: Duration,
    /// RPCs in flight on one connection, in each direction. A caller beyond it gets an error at
    /// once (sending side); a request beyond it waits to be read (receiving side).
    pub max_inflight_rpcs: usize,
    /// Inbound connections a server holds open at once (handshaking or established). Beyond it,
    /// new connections wait in the kernel's backlog.
    pub max_inbound_connections: usize,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            cluster_id: "raftor".to_string(),
            max_frame_bytes: 16 << 20,
            connect_timeout: Duration::from_millis(250),
            rpc_timeout: Duration::from_secs(2),
            forward_timeout: Duration::from_secs(10),
            reconnect_backoff_min: Duration::from_millis(20),
            reconnect_backoff_max: Duration::from_millis(500),
            max_inflight_rpcs: 1024,
            max_inbound_connections: 1024,
        }
    }
}
// ANCHOR_END: tcp_config

impl TcpConfig {
    /// Checks that the settings make sense together, and returns them.
    pub fn validate(self) -> Result<TcpConfig, TcpError> {
        let fail = |reason: String| Err(TcpError::Config(reason));
        if self.cluster_id.len() > MAX_CLUSTER_ID_BYTES {
            return fail(format!(
                "cluster_id is {} bytes, more than {MAX_CLUSTER_ID_BYTES}",
                self.cluster_id.len()
            ));
        }
        if self.max_frame_bytes < 64 << 10 || self.max_frame_bytes > MAX_FRAME_BYTES_LIMIT {
            return fail(format!(
                "max_frame_bytes {} is outside [64 KiB, {MAX_FRAME_BYTES_LIMIT}]",
                self.max_frame_bytes
            ));
        }
        let timeouts = [
            ("connect_timeout", self.connect_timeout),
            ("rpc_timeout", self.rpc_timeout),
            ("forward_timeout", self.forward_timeout),
            ("reconnect_backoff_min", self.reconnect_backoff_min),
        ];
        if let Some((name, _)) = timeouts.iter().find(|(_, value)| value.is_zero()) {
            return fail(format!("{name} must be positive"));
        }
        if self.reconnect_backoff_max < self.reconnect_backoff_min {
            return fail("reconnect_backoff_max is below reconnect_backoff_min".to_string());
        }
        if self.max_inflight_rpcs == 0 || self.max_inbound_connections == 0 {
            return fail("max_inflight_rpcs and max_inbound_connections must be positive".into());
        }
        Ok(self)
    }

    /// The wait before the next reconnection attempt after `failures` failed ones in a row
    /// (at least 1): `reconnect_backoff_min` doubled per further failure, capped.
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.reconnect_backoff_min
            .saturating_mul(1 << doublings)
            .min(self.reconnect_backoff_max)
    }
}
