//! [`Raft`]: the handle users hold. `Clone + Send + Sync`, usable from any tokio runtime or from
//! inside actix; it exposes no actix type.
//!
//! ```text
//!  Raft::bootstrap / Raft::start ──► loads storage, builds the core, starts the NodeActor
//!  raft.client_write(cmd) ──► actor ──► core ──► ... ──► applied ──► response
//!            └── on a follower: NotLeader { leader } ──► forwarded to the leader (default)
//!                                                      ──► see `raft/write.rs`
//!  raft.ensure_readable(level) / raft.read(level, f) ──► see `raft/read.rs`
//!  raft.add_learner / change_membership / add_voter / remove_node / transfer_leader
//!                                                      ──► see `raft/membership.rs`
//!  transport ──► raft.append_entries / request_vote / forward_write / read_index (RaftRpc)
//! ```

mod membership;
mod read;
mod recovery;
mod write;

pub use read::ReadLevel;

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr};
use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

use crate::actor::{self, Inbound, NodeActor, NodeParts, Shutdown, Worker, WriteQueue};
use crate::codec;
use crate::config::Config;
use crate::core::Core;
use crate::error::{ClientWriteError, Fatal, StartError};
use crate::message::{
    AppendEntriesRequest, AppendEntriesResponse, ForwardRequest, ForwardResponse,
    InstallSnapshotRequest, InstallSnapshotResponse, ReadIndexRequest, ReadIndexResponse, Request,
    Response, TimeoutNowRequest, TimeoutNowResponse, VoteRequest, VoteResponse,
};
use crate::metrics::{RaftMetrics, Wait};
use crate::network::{Network, NetworkError, RaftRpc};
use crate::node_thread::NodeThread;
use crate::state_machine::StateMachine;
use crate::storage::LogStorage;
use crate::types::NodeId;

/// How many times one write follows a redirect (or waits for a leader) before giving up.
const MAX_REDIRECTS: usize = 5;

/// A handle to one running Raft node. Cheap to clone.
///
/// Where the node runs: started inside an actix system (an actix test, `#[actix_rt::main]`, or a
/// [`NodeThread::run`]), its actor runs on that system's current arbiter, which may host other
/// nodes; started anywhere else (say `#[tokio::main]`), on a private [`NodeThread`] that
/// [`shutdown`](Raft::shutdown) stops (as does dropping the node's last handle, abruptly, as
/// stopping a `NodeThread` does). To put several nodes on one thread:
/// `thread.run(Raft::bootstrap(..)).await??` for each (see [`NodeThread`] for the trade-off).
pub struct Raft<SM: StateMachine> {
    inner: Arc<Inner<SM>>,
}

struct Inner<SM: StateMachine> {
    id: NodeId,
    config: Config,
    addr: Addr<NodeActor<SM>>,
    /// Client writes go to the actor through this queue (see `actor/write_queue.rs`).
    writes: WriteQueue<SM::Response>,
    network: Arc<dyn Network>,
    metrics: watch::Receiver<RaftMetrics>,
    fatal: Arc<Mutex<Option<Fatal>>>,
    /// The node's private thread, when it was started outside actix; `shutdown` stops it.
    /// `None` on a thread the caller owns (an actix system, or a shared [`NodeThread`]).
    thread: Mutex<Option<NodeThread>>,
    _state_machine: PhantomData<fn() -> SM>,
}

impl<SM: StateMachine> Clone for Raft<SM> {
    fn clone(&self) -> Self {
        Raft {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<SM: StateMachine> Raft<SM> {
    /// Starts a member of a brand-new cluster of `members`. On empty storage it first writes the
    /// cluster's initial configuration; on storage that already holds a log it simply restarts.
    /// Every initial member must be given the same `members`. See [`Raft`] for where the node
    /// runs.
    pub async fn bootstrap<N: Network, S: LogStorage>(
        id: NodeId,
        members: impl IntoIterator<Item = NodeId>,
        config: Config,
        network: N,
        mut storage: S,
        state_machine: SM,
    ) -> Result<Raft<SM>, StartError> {
        let members: BTreeSet<NodeId> = members.into_iter().collect();
        recovery::bootstrap_if_new(&mut storage, members).await?;
        Raft::start(id, config, network, storage, state_machine).await
    }

    /// Starts a node from what `storage` and `state_machine` hold: a restart after a crash, or a
    /// new node with empty storage that waits to be added to a cluster. See [`Raft`] for where
    /// the node runs.
    pub async fn start<N: Network, S: LogStorage>(
        id: NodeId,
        config: Config,
        network: N,
        mut storage: S,
        state_machine: SM,
    ) -> Result<Raft<SM>, StartError> {
        let config = config
            .validate()
            .map_err(crate::error::RecoveryError::from)?;
        let (recovered, state_machine) = recovery::recover(&mut storage, state_machine).await?;
        let snapshots = storage.snapshots();
        let seed = config.seed.unwrap_or_else(entropy);
        let core = Core::new(id, config.clone(), recovered, seed)?;
        let (metrics_tx, metrics) = watch::channel(actor::metrics_of(&core, true));
        let network: Arc<dyn Network> = Arc::new(network);
        let fatal = Arc::new(Mutex::new(None));
        let (storage_tx, storage_rx) = mpsc::unbounded_channel();
        let (apply_tx, apply_rx) = mpsc::unbounded_channel();
        let (writes, write_inbox) = actor::write_queue();
        let parts = NodeParts {
            core,
            config: config.clone(),
            network: Arc::clone(&network),
            storage_tx,
            apply_tx,
            writes: write_inbox,
            snapshots: Arc::clone(&snapshots),
            workers: Box::new(move |addr: Addr<NodeActor<SM>>| -> Vec<Worker> {
                vec![
                    Box::pin(actor::run_storage(storage, storage_rx, addr.clone())),
                    Box::pin(actor::run_apply(state_machine, snapshots, apply_rx, addr)),
                ]
            }),
            metrics_tx,
            fatal: Arc::clone(&fatal),
        };
        let (addr, thread) = spawn_actor(id, parts)?;
        let inner = Inner {
            id,
            config,
            addr,
            writes,
            network,
            metrics,
            fatal,
            thread: Mutex::new(thread),
            _state_machine: PhantomData,
        };
        Ok(Raft {
            inner: Arc::new(inner),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The latest metrics.
    pub fn metrics(&self) -> RaftMetrics {
        self.inner.metrics.borrow().clone()
    }

    /// A receiver that sees every metrics change.
    pub fn metrics_watch(&self) -> watch::Receiver<RaftMetrics> {
        self.inner.metrics.clone()
    }

    /// Wait helpers that give up after `timeout`.
    pub fn wait(&self, timeout: Duration) -> Wait {
        Wait {
            rx: self.inner.metrics.clone(),
            timeout,
        }
    }

    pub(super) fn stopped_error(&self) -> ClientWriteError {
        match self.inner.fatal.lock().ok().and_then(|fatal| fatal.clone()) {
            Some(fatal) => ClientWriteError::Fatal(fatal),
            None => ClientWriteError::ShuttingDown,
        }
    }

    /// Stops the node: waiting clients get `ShuttingDown`, the actor and its IO workers stop, and
    /// the node's private thread (if it has one) exits. A node on a shared [`NodeThread`] (or in
    /// the caller's actix system) stops alone: the thread and its other nodes run on. Idempotent,
    /// and returns at once if the node's thread has already stopped.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        self.inner.addr.do_send(Shutdown { tx });
        let _ = rx.await;
        let thread = self
            .inner
            .thread
            .lock()
            .ok()
            .and_then(|mut slot| slot.take());
        if let Some(thread) = thread {
            thread.stop().await;
        }
    }

    async fn inbound(&self, from: NodeId, request: Request) -> Result<Response, NetworkError> {
        let (tx, rx) = oneshot::channel();
        self.inner.addr.do_send(Inbound { from, request, tx });
        rx.await.map_err(|_| NetworkError::ShuttingDown(self.id()))
    }
}

#[async_trait]
impl<SM: StateMachine> RaftRpc for Raft<SM> {
    async fn append_entries(
        &self,
        req: AppendEntriesRequest,
    ) -> Result<AppendEntriesResponse, NetworkError> {
        match self
            .inbound(req.leader_id, Request::AppendEntries(req))
            .await?
        {
            Response::AppendEntries(resp) => Ok(resp),
            other => Err(NetworkError::Transport(format!(
                "unexpected response {other:?}"
            ))),
        }
    }

    async fn request_vote(&self, req: VoteRequest) -> Result<VoteResponse, NetworkError> {
        match self
            .inbound(req.candidate_id, Request::RequestVote(req))
            .await?
        {
            Response::RequestVote(resp) => Ok(resp),
            other => Err(NetworkError::Transport(format!(
                "unexpected response {other:?}"
            ))),
        }
    }

    async fn install_snapshot(
        &self,
        req: InstallSnapshotRequest,
    ) -> Result<InstallSnapshotResponse, NetworkError> {
        match self
            .inbound(req.leader_id, Request::InstallSnapshot(req))
            .await?
        {
            Response::InstallSnapshot(resp) => Ok(resp),
            other => Err(NetworkError::Transport(format!(
                "unexpected response {other:?}"
            ))),
        }
    }

    async fn timeout_now(
        &self,
        req: TimeoutNowRequest,
    ) -> Result<TimeoutNowResponse, NetworkError> {
        match self
            .inbound(req.leader_id, Request::TimeoutNow(req))
            .await?
        {
            Response::TimeoutNow(resp) => Ok(resp),
            other => Err(NetworkError::Transport(format!(
                "unexpected response {other:?}"
            ))),
        }
    }

    async fn forward_write(&self, req: ForwardRequest) -> Result<ForwardResponse, NetworkError> {
        // Only commands this node's state machine can decode enter the log.
        if let Err(message) = codec::decode::<SM::Command>(&req.command) {
            return Ok(ForwardResponse::Failed(format!(
                "undecodable command: {message}"
            )));
        }
        let deadline = tokio::time::Instant::now() + self.inner.config.client_timeout;
        let result = self
            .write_bytes(Arc::from(req.command), false, deadline)
            .await;
        Ok(match result {
            Ok(response) => match codec::encode(&response) {
                Ok(bytes) => ForwardResponse::Applied(bytes),
                Err(message) => ForwardResponse::Failed(message),
            },
            Err(ClientWriteError::NotLeader { leader }) => ForwardResponse::NotLeader { leader },
            Err(ClientWriteError::Dropped { leader }) => ForwardResponse::Dropped { leader },
            Err(ClientWriteError::Timeout) => ForwardResponse::Timeout,
            Err(ClientWriteError::ShuttingDown) => ForwardResponse::ShuttingDown,
            Err(other) => ForwardResponse::Failed(other.to_string()),
        })
    }

    async fn read_index(&self, req: ReadIndexRequest) -> Result<ReadIndexResponse, NetworkError> {
        Ok(self.answer_read_index(req).await)
    }
}

/// Starts the actor on the current actix arbiter if there is one (the caller's actix system, or
/// a [`NodeThread`] the start runs on), else on a private [`NodeThread`] of its own.
fn spawn_actor<SM: StateMachine>(
    id: NodeId,
    parts: NodeParts<SM>,
) -> Result<(Addr<NodeActor<SM>>, Option<NodeThread>), StartError> {
    if actix_rt::Arbiter::try_current().is_some() && actix_rt::System::try_current().is_some() {
        return Ok((NodeActor::new(parts).start(), None));
    }
    let thread = NodeThread::start(format!("raftor-node-{id}"))?;
    let addr = NodeActor::start_in_arbiter(thread.arbiter(), move |_| NodeActor::new(parts));
    Ok((addr, Some(thread)))
}

/// A seed for the election timer when the config gives none.
fn entropy() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}
