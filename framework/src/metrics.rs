//! [`RaftMetrics`]: what a node reports about itself, published on a watch channel after every
//! change, and [`Wait`], helpers that wait (with a timeout) for a condition on them.

use std::time::Duration;

use tokio::sync::watch;

use crate::core::Role;
use crate::error::WaitError;
use crate::membership::Membership;
use crate::types::{LogId, LogIndex, NodeId, Term};

/// A node's externally visible state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftMetrics {
    /// The node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// The last entry in its log.
    pub last_log_id: LogId,
    /// Its commit index.
    pub commit_index: LogIndex,
    /// The last index its state machine applied.
    pub last_applied: LogIndex,
    /// The configuration in effect.
    pub membership: Membership,
    /// The last entry covered by the latest snapshot this node holds (built or installed).
    pub snapshot: Option<LogId>,
    /// The log's base: entries up to it were compacted away (`0@0` if none ever were).
    pub log_base: LogId,
    /// Whether the node is running (false once shut down or stopped by a fatal error).
    pub running: bool,
}

/// Waits on a node's metrics; built by `Raft::wait(timeout)`.
pub struct Wait {
    pub(crate) rx: watch::Receiver<RaftMetrics>,
    pub(crate) timeout: Duration,
}

impl Wait {
    /// Waits until `condition` holds, and returns the metrics that satisfied it.
    pub async fn until(
        mut self,
        description: &str,
        condition: impl Fn(&RaftMetrics) -> bool,
    ) -> Result<RaftMetrics, WaitError> {
        let wait = self
            .rx
            .wait_for(|metrics| condition(metrics) || !metrics.running);
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(Ok(metrics)) if condition(&metrics) => Ok(metrics.clone()),
            Ok(_) => Err(WaitError::Stopped(description.to_string())),
            Err(_) => Err(WaitError::Timeout(self.timeout, description.to_string())),
        }
    }

    /// Until some leader is known.
    pub async fn leader_known(self) -> Result<NodeId, WaitError> {
        let metrics = self.until("a known leader", |m| m.leader.is_some()).await?;
        metrics
            .leader
            .ok_or_else(|| WaitError::Stopped("a known leader".into()))
    }

    /// Until the state machine applied `index` or beyond.
    pub async fn applied(self, index: LogIndex) -> Result<RaftMetrics, WaitError> {
        self.until(&format!("applied >= {index}"), |m| m.last_applied >= index)
            .await
    }

    /// Until the node plays `role`.
    pub async fn role(self, role: Role) -> Result<RaftMetrics, WaitError> {
        self.until(&format!("role {role:?}"), |m| m.role == role)
            .await
    }
}
