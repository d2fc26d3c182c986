//! Writes on the handle: through this node's actor when it leads, else forwarded to the leader.
//!
//! ```text
//!  client_write(cmd) ─► encode ─► deadline = now + client_timeout
//!    this node leads (or forwarding is off) ─► write queue ─► actor ─► core ─► committed, applied
//!        └─ answered by the apply worker, or `Timeout` by the node at the deadline
//!    refused, or a follower that knows its leader ─► follow_leader, under timeout_at(deadline):
//!        a leader named ─► network.forward_write(leader) ─► its answer
//!        no leader known ─► wait for one ─► again, at most MAX_REDIRECTS times
//! ```
//!
//! The common case, a write to the leader, arms no timer on the handle: the node keeps every
//! waiting write's deadline and answers `Timeout` itself (`actor/deadlines.rs`), which costs one
//! timer per node instead of one per write. The rare paths (an election, forwarding) run under
//! `timeout_at` with the same deadline, so no path waits past it.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::actor::{ClientWrite, DrainWrites, Pushed, WriteWaiter};
use crate::codec;
use crate::core::Role;
use crate::error::ClientWriteError;
use crate::message::{ForwardRequest, ForwardResponse};
use crate::state_machine::StateMachine;
use crate::types::NodeId;

use super::{Raft, MAX_REDIRECTS};

impl<SM: StateMachine> Raft<SM> {
    /// Replicates `command` and returns the state machine's response once it is applied. On a
    /// follower the write is forwarded to the leader (unless `forward_writes` is off). Never waits
    /// longer than the config's `client_timeout`: `Timeout` means the outcome is unknown (the
    /// write may still commit).
    pub async fn client_write(
        &self,
        command: SM::Command,
    ) -> Result<SM::Response, ClientWriteError> {
        let bytes = codec::encode_shared(&command).map_err(ClientWriteError::Codec)?;
        let deadline = Instant::now() + self.inner.config.client_timeout;
        self.write_bytes(bytes, self.inner.config.forward_writes, deadline)
            .await
    }

    /// Writes through this node, answered by `deadline`; with `forward`, follows the leader (an
    /// election in progress, a refusal naming another node) until then.
    pub(super) async fn write_bytes(
        &self,
        command: Arc<[u8]>,
        forward: bool,
        deadline: Instant,
    ) -> Result<SM::Response, ClientWriteError> {
        // A follower that knows its leader forwards at once: asking its own actor first would
        // cost a round trip through the actor thread per write only to hear `NotLeader`. A stale
        // view is harmless: the target refuses and `follow_leader` follows its answer.
        let first = match self.known_leader_elsewhere() {
            Some(leader) if forward => Err(ClientWriteError::NotLeader {
                leader: Some(leader),
            }),
            _ => self.write_locally(Arc::clone(&command), deadline).await,
        };
        match first {
            Err(ClientWriteError::NotLeader { .. }) if forward => {}
            done => return done,
        }
        let follow = self.follow_leader(command, first, deadline);
        tokio::time::timeout_at(deadline, follow)
            .await
            .unwrap_or(Err(ClientWriteError::Timeout))
    }

    /// Follows `NotLeader` answers, starting from `result`: to the leader named, or to this node
    /// once a leader is known. The caller bounds the whole with its deadline.
    async fn follow_leader(
        &self,
        command: Arc<[u8]>,
        mut result: Result<SM::Response, ClientWriteError>,
        deadline: Instant,
    ) -> Result<SM::Response, ClientWriteError> {
        // One more turn than MAX_REDIRECTS: the first `NotLeader` may be this node's own view.
        for _ in 0..=MAX_REDIRECTS {
            result = match result {
                Err(ClientWriteError::NotLeader { leader: None }) => {
                    self.wait_for_new_leader(None).await?;
                    self.write_locally(Arc::clone(&command), deadline).await
                }
                Err(ClientWriteError::NotLeader {
                    leader: Some(leader),
                }) => {
                    if leader == self.id() {
                        // This node learned it leads after refusing: the write is local after all.
                        self.write_locally(Arc::clone(&command), deadline).await
                    } else {
                        self.forward(leader, command.to_vec()).await
                    }
                }
                other => return other,
            };
        }
        result
    }

    /// The leader this node's latest metrics name, when it is another node and this one follows.
    /// None once this node stopped: a stopped node answers `ShuttingDown` rather than forward.
    fn known_leader_elsewhere(&self) -> Option<NodeId> {
        let metrics = self.inner.metrics.borrow();
        match metrics.leader {
            Some(leader)
                if leader != self.id() && metrics.role != Role::Leader && metrics.running =>
            {
                Some(leader)
            }
            _ => None,
        }
    }

    /// Waits until this node knows a leader other than `stale`.
    async fn wait_for_new_leader(&self, stale: Option<NodeId>) -> Result<(), ClientWriteError> {
        if self.leader_known_besides(stale).await {
            Ok(())
        } else {
            Err(self.stopped_error())
        }
    }

    /// Waits until this node knows a leader other than `stale`; false if the node stopped first.
    pub(super) async fn leader_known_besides(&self, stale: Option<NodeId>) -> bool {
        let mut metrics = self.inner.metrics.clone();
        let known = metrics
            .wait_for(|m| !m.running || (m.leader.is_some() && m.leader != stale))
            .await;
        matches!(known, Ok(m) if m.running)
    }

    /// Hands the write to this node's actor, which answers it by `deadline`.
    async fn write_locally(
        &self,
        command: Arc<[u8]>,
        deadline: Instant,
    ) -> Result<SM::Response, ClientWriteError> {
        let (tx, rx) = oneshot::channel();
        let waiter = WriteWaiter::new(tx, deadline);
        match self.inner.writes.push(ClientWrite { command, waiter }) {
            Pushed::Queued => {}
            Pushed::Schedule => self.inner.addr.do_send(DrainWrites),
            Pushed::Closed => return Err(self.stopped_error()),
        }
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(self.stopped_error()),
        }
    }

    /// Sends the write to `leader`. A refusal comes back as `NotLeader` for `follow_leader` to
    /// follow.
    async fn forward(
        &self,
        leader: NodeId,
        command: Vec<u8>,
    ) -> Result<SM::Response, ClientWriteError> {
        let request = ForwardRequest { command };
        match self.inner.network.forward_write(leader, request).await? {
            ForwardResponse::Applied(bytes) => {
                codec::decode(&bytes).map_err(ClientWriteError::Codec)
            }
            ForwardResponse::NotLeader { leader: Some(next) } if next == leader => {
                // The target still names itself, though it refused: its view is stale. Wait for
                // this node to learn of a different leader before trying again.
                self.wait_for_new_leader(Some(leader)).await?;
                Err(ClientWriteError::NotLeader {
                    leader: self.metrics().leader,
                })
            }
            ForwardResponse::NotLeader { leader } => Err(ClientWriteError::NotLeader { leader }),
            ForwardResponse::Dropped { leader } => Err(ClientWriteError::Dropped { leader }),
            ForwardResponse::Timeout => Err(ClientWriteError::Timeout),
            ForwardResponse::ShuttingDown => Err(ClientWriteError::ShuttingDown),
            ForwardResponse::Failed(message) => Err(ClientWriteError::Remote(message)),
        }
    }
}
