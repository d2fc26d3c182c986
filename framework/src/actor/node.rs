//! [`NodeActor`]: one node. Every handler is synchronous: turn the message into a core input,
//! step the core, execute the actions (see `driver.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use actix::{Actor, AsyncContext, Context, Handler};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, warn};

use crate::config::Config;
use crate::core::{Action, Core, Input, Proposal, Role};
use crate::error::{ClientReadError, ClientWriteError, Fatal};
use crate::message::Response;
use crate::metrics::RaftMetrics;
use crate::network::Network;
use crate::state_machine::StateMachine;
use crate::types::{LogIndex, RequestId, RpcId};

use super::messages::{
    ApplyDone, ClientRead, ClientWrite, Inbound, RunRead, Shutdown, StorageDone,
};
use super::workers::{ApplyWork, StorageOp};

/// A boxed IO worker, started with the actor and stopped with it.
pub(crate) type Worker = Pin<Box<dyn Future<Output = ()>>>;

/// Builds the IO workers once the actor's address exists.
pub(crate) type WorkerFactory<SM> =
    Box<dyn FnOnce(actix::Addr<NodeActor<SM>>) -> Vec<Worker> + Send>;

/// One Raft node as an actix actor. Owns the core; talks to storage and the state machine through
/// workers, and to peers through the network.
pub struct NodeActor<SM: StateMachine> {
    pub(super) core: Core,
    pub(super) config: Config,
    pub(super) network: Arc<dyn Network>,
    pub(super) storage_tx: mpsc::UnboundedSender<StorageOp>,
    pub(super) apply_tx: mpsc::UnboundedSender<ApplyWork<SM>>,
    workers: Option<WorkerFactory<SM>>,
    /// Inbound RPCs waiting for the core's reply.
    pub(super) pending_rpcs: BTreeMap<RpcId, oneshot::Sender<Response>>,
    /// Client writes waiting for their entry to be applied or refused.
    pub(super) pending_clients:
        BTreeMap<RequestId, oneshot::Sender<Result<SM::Response, ClientWriteError>>>,
    /// Reads waiting for the core to confirm (or refuse) them.
    pub(super) pending_reads:
        BTreeMap<RequestId, oneshot::Sender<Result<LogIndex, ClientReadError>>>,
    /// Proposals held while the leader's previous append is being written: they go out as one
    /// batch when it completes (one append, one message per follower).
    proposal_buffer: Vec<Proposal>,
    /// Appends handed to the storage worker and not yet reported durable.
    pub(super) appends_in_flight: u64,
    /// Actions held back until a `SaveHardState` before them is durable (contract 1).
    pub(super) deferred: VecDeque<Action>,
    pub(super) awaiting_hard_state: bool,
    next_rpc: u64,
    next_request: u64,
    ticks: u64,
    metrics_tx: watch::Sender<RaftMetrics>,
    /// Set when the node stopped on a fatal error; shared with the handle.
    pub(super) fatal: Arc<Mutex<Option<Fatal>>>,
    pub(super) stopping: bool,
    pub(super) span: tracing::Span,
}

/// Everything needed to build a node actor.
pub(crate) struct NodeParts<SM: StateMachine> {
    pub core: Core,
    pub config: Config,
    pub network: Arc<dyn Network>,
    pub storage_tx: mpsc::UnboundedSender<StorageOp>,
    pub apply_tx: mpsc::UnboundedSender<ApplyWork<SM>>,
    pub workers: WorkerFactory<SM>,
    pub metrics_tx: watch::Sender<RaftMetrics>,
    pub fatal: Arc<Mutex<Option<Fatal>>>,
}

impl<SM: StateMachine> NodeActor<SM> {
    pub(crate) fn new(parts: NodeParts<SM>) -> NodeActor<SM> {
        let span = tracing::info_span!("raft", node_id = %parts.core.id());
        NodeActor {
            core: parts.core,
            config: parts.config,
            network: parts.network,
            storage_tx: parts.storage_tx,
            apply_tx: parts.apply_tx,
            workers: Some(parts.workers),
            pending_rpcs: BTreeMap::new(),
            pending_clients: BTreeMap::new(),
            pending_reads: BTreeMap::new(),
            proposal_buffer: Vec::new(),
            appends_in_flight: 0,
            deferred: VecDeque::new(),
            awaiting_hard_state: false,
            next_rpc: 1,
            next_request: 1,
            ticks: 0,
            metrics_tx: parts.metrics_tx,
            fatal: parts.fatal,
            stopping: false,
            span,
        }
    }

    /// Steps the core with one input and executes what it asks for.
    pub(super) fn step(&mut self, input: Input, ctx: &mut Context<Self>) {
        let actions = self.core.step(input);
        self.execute(actions, ctx);
        self.publish_metrics();
    }

    pub(super) fn publish_metrics(&self) {
        let core = &self.core;
        let running = !self.stopping;
        self.metrics_tx.send_if_modified(|metrics| {
            let changed = metrics.role != core.role()
                || metrics.term != core.term()
                || metrics.leader != core.leader()
                || metrics.last_log_id != core.last_log_id()
                || metrics.commit_index != core.commit_index()
                || metrics.last_applied != core.last_applied()
                || metrics.running != running
                || metrics.membership != *core.membership();
            if changed {
                *metrics = metrics_of(core, running);
            }
            changed
        });
    }

    fn flush_proposals(&mut self, ctx: &mut Context<Self>) {
        if !self.proposal_buffer.is_empty() {
            let batch = std::mem::take(&mut self.proposal_buffer);
            self.step(Input::Propose(batch), ctx);
        }
    }

    /// Stops the node: every waiting client is answered, the actor and its workers stop.
    pub(super) fn stop_with(&mut self, error: ClientWriteError, ctx: &mut Context<Self>) {
        self.stopping = true;
        for (_, tx) in std::mem::take(&mut self.pending_clients) {
            let _ = tx.send(Err(error.clone()));
        }
        let read_error = match &error {
            ClientWriteError::Fatal(fatal) => ClientReadError::Fatal(fatal.clone()),
            _ => ClientReadError::ShuttingDown,
        };
        for (_, tx) in std::mem::take(&mut self.pending_reads) {
            let _ = tx.send(Err(read_error.clone()));
        }
        self.pending_rpcs.clear();
        self.proposal_buffer.clear();
        self.publish_metrics();
        actix::ActorContext::stop(ctx);
    }
}

/// The metrics of a core.
pub(crate) fn metrics_of(core: &Core, running: bool) -> RaftMetrics {
    RaftMetrics {
        id: core.id(),
        role: core.role(),
        term: core.term(),
        leader: core.leader(),
        last_log_id: core.last_log_id(),
        commit_index: core.commit_index(),
        last_applied: core.last_applied(),
        membership: core.membership().clone(),
        running,
    }
}

impl<SM: StateMachine> Actor for NodeActor<SM> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(factory) = self.workers.take() {
            for worker in factory(ctx.address()) {
                ctx.spawn(actix::fut::wrap_future(worker));
            }
        }
        ctx.run_interval(self.config.tick_interval, |actor, ctx| {
            actor.handle_tick(ctx)
        });
        // Apply what the log already holds committed (the bootstrap entry, or entries recovered
        // beyond the state machine's applied index).
        self.step(Input::Tick, ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let _guard = self.span.enter();
        debug!("node stopped");
    }
}

impl<SM: StateMachine> NodeActor<SM> {
    fn handle_tick(&mut self, ctx: &mut Context<Self>) {
        let _guard = self.span.clone().entered();
        self.ticks += 1;
        self.flush_proposals(ctx);
        self.step(Input::Tick, ctx);
        // Forget clients that gave up (their timeout fired), so the map cannot grow without bound.
        if self.ticks % 100 == 0 {
            self.pending_clients.retain(|_, tx| !tx.is_closed());
            self.pending_reads.retain(|_, tx| !tx.is_closed());
        }
    }
}

impl<SM: StateMachine> Handler<ClientWrite<SM::Response>> for NodeActor<SM> {
    type Result = ();

    fn handle(&mut self, msg: ClientWrite<SM::Response>, ctx: &mut Context<Self>) {
        let _guard = self.span.clone().entered();
        if self.stopping {
            let _ = msg.tx.send(Err(ClientWriteError::ShuttingDown));
            return;
        }
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.pending_clients.insert(request, msg.tx);
        self.proposal_buffer.push(Proposal {
            request,
            command: Arc::from(msg.command),
        });
        let must_wait = self.core.role() == Role::Leader && self.appends_in_flight > 0;
        if !must_wait || self.proposal_buffer.len() as u64 >= self.config.max_entries_per_message {
            self.flush_proposals(ctx);
        }
    }
}

impl<SM: StateMachine> Handler<ClientRead> for NodeActor<SM> {
    type Result = ();

    fn handle(&mut self, msg: ClientRead, ctx: &mut Context<Self>) {
        let _guard = self.span.clone().entered();
        if self.stopping {
            let _ = msg.tx.send(Err(ClientReadError::ShuttingDown));
            return;
        }
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.pending_reads.insert(request, msg.tx);
        self.step(
            Input::Read {
                request,
                mode: msg.mode,
            },
            ctx,
        );
    }
}

impl<SM: StateMachine> Handler<RunRead<SM>> for NodeActor<SM> {
    type Result = ();

    fn handle(&mut self, msg: RunRead<SM>, _ctx: &mut Context<Self>) {
        if !self.stopping {
            // Dropped (the caller sees ShuttingDown) only if the worker stopped on a fatal error.
            let _ = self.apply_tx.send(ApplyWork::Read(msg.read));
        }
    }
}

impl<SM: StateMachine> Handler<Inbound> for NodeActor<SM> {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Context<Self>) {
        let _guard = self.span.clone().entered();
        if self.stopping {
            return;
        }
        let rpc = RpcId(self.next_rpc);
        self.next_rpc += 1;
        self.pending_rpcs.insert(rpc, msg.tx);
        self.step(
            Input::Request {
                from: msg.from,
                rpc,
                request: msg.request,
            },
            ctx,
        );
    }
}

impl<SM: StateMachine> Handler<StorageDone> for NodeActor<SM> {
    type Result = ();

    fn handle(&mut self, msg: StorageDone, ctx: &mut Context<Self>) {
        let _guard = self.span.clone().entered();
        match msg {
            StorageDone::HardStateSaved => self.resume_deferred(ctx),
            StorageDone::LogPersisted { up_to, appends } => {
                self.appends_in_flight = self.appends_in_flight.saturating_sub(appends);
                self.step(Input::LogPersisted { up_to }, ctx);
                self.flush_proposals(ctx);
            }
            StorageDone::Failed(error) => self.fail(Fatal::Storage(error), ctx),
        }
    }
}

impl<SM: StateMachine> Handler<ApplyDone> for NodeActor<SM> {
    type Result = ();

    fn handle(&mut self, msg: ApplyDone, ctx: &mut Context<Self>) {
        let _guard = self.span.clone().entered();
        match msg {
            ApplyDone::Applied(up_to) => self.step(Input::Applied { up_to }, ctx),
            ApplyDone::Failed(fatal) => self.fail(fatal, ctx),
        }
    }
}

impl<SM: StateMachine> Handler<Shutdown> for NodeActor<SM> {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) {
        let _guard = self.span.clone().entered();
        debug!("shutting down");
        self.stop_with(ClientWriteError::ShuttingDown, ctx);
        let _ = msg.tx.send(());
    }
}

impl<SM: StateMachine> NodeActor<SM> {
    fn fail(&mut self, fatal: Fatal, ctx: &mut Context<Self>) {
        warn!(error = %fatal, "node stopped on a fatal error");
        if let Ok(mut slot) = self.fatal.lock() {
            *slot = Some(fatal.clone());
        }
        self.stop_with(ClientWriteError::Fatal(fatal), ctx);
    }
}
