//! Reads on the handle: the consistency levels, follower reads through the leader's read index,
//! and running a read against the state machine.
//!
//! ```text
//!  ensure_readable(level) ──► leader? ── core: ReadIndex round / lease ──► read_index
//!                               │ no (forwarding on)
//!                               └──► network.read_index(leader) ──► leader confirms ──► read_index
//!                    wait until this node's state machine has applied read_index ──► Ok(applied)
//!  read(level, f) = ensure_readable(level), then f(&state_machine) on the apply worker
//! ```

use tokio::sync::oneshot;

use crate::actor::{ClientRead, RunRead};
use crate::core::ReadMode;
use crate::error::ClientReadError;
use crate::message::{ReadIndexRequest, ReadIndexResponse};
use crate::state_machine::StateMachine;
use crate::types::{LogIndex, NodeId};

use super::{Raft, MAX_REDIRECTS};

/// How fresh a read must be. Every level reads this node's own state machine; they differ in
/// what they wait for first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadLevel {
    /// Linearizable (ReadIndex, thesis §6.4): the leader confirms with a quorum round begun after
    /// the read arrived, and this node waits until it has applied the leader's commit index of
    /// that moment. The read sees every write acknowledged before it started. No clock
    /// assumption. Costs one heartbeat round trip, shared by all reads waiting at that moment.
    #[default]
    Linearizable,
    /// Linearizable while clocks behave: the leader answers at once while its lease holds
    /// (followers promise not to elect anyone else for `election_timeout_min_ticks` after hearing
    /// from it), else falls back to a round as `Linearizable` does. Relies on every node's ticks
    /// running at rates that differ by less than `lease_drift_margin_ticks` per lease, and on no
    /// voter crashing and restarting within one lease after acknowledging the leader (a
    /// restarted node does not remember that it heard from a leader, so it may vote at once).
    Lease,
    /// Whatever this node has applied: no waiting, no guarantee. May miss acknowledged writes, and
    /// a read on another node may see older data than this one.
    Stale,
}

impl<SM: StateMachine> Raft<SM> {
    /// Returns once this node's state machine may serve a read at `level`: its applied index,
    /// which covers every write acknowledged before the call (except for `Stale`). On a follower
    /// the read index comes from the leader (unless `forward_writes` is off, which turns
    /// forwarding off for reads too). Never waits longer than the config's `client_timeout`.
    pub async fn ensure_readable(&self, level: ReadLevel) -> Result<LogIndex, ClientReadError> {
        let mode = match level {
            ReadLevel::Stale => return Ok(self.metrics().last_applied),
            ReadLevel::Linearizable => ReadMode::ReadIndex,
            ReadLevel::Lease => ReadMode::Lease,
        };
        let forward = self.inner.config.forward_writes;
        let ensure = async {
            let read_index = self.read_index(mode, forward).await?;
            self.wait_applied(read_index).await
        };
        tokio::time::timeout(self.inner.config.client_timeout, ensure)
            .await
            .unwrap_or(Err(ClientReadError::Timeout))
    }

    /// Runs `read` against the state machine once it may serve a read at `level` (see
    /// [`Raft::ensure_readable`]), on the worker that applies entries, so it sees a state at or
    /// after the read index and never a half-applied batch.
    pub async fn read<R, F>(&self, level: ReadLevel, read: F) -> Result<R, ClientReadError>
    where
        F: FnOnce(&SM) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.ensure_readable(level).await?;
        let (tx, rx) = oneshot::channel();
        let read = Box::new(move |state_machine: &SM| {
            let _ = tx.send(read(state_machine));
        });
        self.inner.addr.do_send(RunRead { read });
        rx.await.map_err(|_| self.stopped_read_error())
    }

    /// The leader's confirmed read index: from this node's core if it leads, else (with
    /// `forward`) from the leader.
    async fn read_index(&self, mode: ReadMode, forward: bool) -> Result<LogIndex, ClientReadError> {
        let mut result = self.read_index_locally(mode).await;
        for _ in 0..MAX_REDIRECTS {
            result = match result {
                Err(ClientReadError::NotLeader { leader: None }) if forward => {
                    if !self.leader_known_besides(None).await {
                        return Err(self.stopped_read_error());
                    }
                    self.read_index_locally(mode).await
                }
                Err(ClientReadError::NotLeader {
                    leader: Some(leader),
                }) if forward && leader != self.id() => self.read_index_from(leader, mode).await,
                Err(ClientReadError::NotLeader {
                    leader: Some(_), ..
                }) if forward => self.read_index_locally(mode).await,
                other => return other,
            };
        }
        result
    }

    async fn read_index_locally(&self, mode: ReadMode) -> Result<LogIndex, ClientReadError> {
        let (tx, rx) = oneshot::channel();
        self.inner.addr.do_send(ClientRead { mode, tx });
        rx.await.unwrap_or_else(|_| Err(self.stopped_read_error()))
    }

    /// Asks `leader` for its read index. A refusal comes back as `NotLeader` for `read_index`
    /// to follow.
    async fn read_index_from(
        &self,
        leader: NodeId,
        mode: ReadMode,
    ) -> Result<LogIndex, ClientReadError> {
        let request = ReadIndexRequest {
            lease: mode == ReadMode::Lease,
        };
        match self.inner.network.read_index(leader, request).await? {
            ReadIndexResponse::Ready { read_index } => Ok(read_index),
            ReadIndexResponse::NotLeader { leader: Some(next) } if next == leader => {
                // The target names itself though it refused: wait for news of another leader.
                if !self.leader_known_besides(Some(leader)).await {
                    return Err(self.stopped_read_error());
                }
                Err(ClientReadError::NotLeader {
                    leader: self.metrics().leader,
                })
            }
            ReadIndexResponse::NotLeader { leader } => Err(ClientReadError::NotLeader { leader }),
            ReadIndexResponse::Timeout => Err(ClientReadError::Timeout),
            ReadIndexResponse::ShuttingDown => Err(ClientReadError::ShuttingDown),
            ReadIndexResponse::Failed(message) => Err(ClientReadError::Remote(message)),
        }
    }

    /// Waits until this node's state machine has applied `read_index`; returns what it applied.
    async fn wait_applied(&self, read_index: LogIndex) -> Result<LogIndex, ClientReadError> {
        let mut metrics = self.inner.metrics.clone();
        let caught_up = metrics
            .wait_for(|m| !m.running || m.last_applied >= read_index)
            .await;
        match caught_up {
            Ok(m) if m.running => Ok(m.last_applied),
            _ => Err(self.stopped_read_error()),
        }
    }

    /// Answers a follower's [`ReadIndexRequest`] (the `RaftRpc` side of follower reads).
    pub(super) async fn answer_read_index(&self, req: ReadIndexRequest) -> ReadIndexResponse {
        let mode = if req.lease {
            ReadMode::Lease
        } else {
            ReadMode::ReadIndex
        };
        let confirm = self.read_index(mode, false);
        let result = tokio::time::timeout(self.inner.config.client_timeout, confirm)
            .await
            .unwrap_or(Err(ClientReadError::Timeout));
        match result {
            Ok(read_index) => ReadIndexResponse::Ready { read_index },
            Err(ClientReadError::NotLeader { leader }) => ReadIndexResponse::NotLeader { leader },
            Err(ClientReadError::Timeout) => ReadIndexResponse::Timeout,
            Err(ClientReadError::ShuttingDown) => ReadIndexResponse::ShuttingDown,
            Err(other) => ReadIndexResponse::Failed(other.to_string()),
        }
    }

    fn stopped_read_error(&self) -> ClientReadError {
        match self.inner.fatal.lock().ok().and_then(|fatal| fatal.clone()) {
            Some(fatal) => ClientReadError::Fatal(fatal),
            None => ClientReadError::ShuttingDown,
        }
    }
}
