//! [`NodeActor`]: one node. Every handler is synchronous: hand the message to the node's
//! [`Executor`] (which steps the core and keeps the bookkeeping), then perform the effects it
//! returns with actix and tokio (see `driver.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use actix::{Actor, AsyncContext, Context, Handler};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, warn};

use crate::config::Config;
use crate::core::Core;
use crate::driver::{Effect, Executor, StorageOp};
use crate::error::{ChangeError, ClientReadError, ClientWriteError, Fatal};
use crate::message::Response;
use crate::metrics::RaftMetrics;
use crate::network::Network;
use crate::state_machine::StateMachine;
use crate::storage::SnapshotStorage;
use crate::types::LogIndex;

use super::deadlines::{WriteTimer, WriteWaiter};
use super::messages::{
    ApplyDone, Change, ChangeRequest, ClientRead, DrainWrites, Inbound, Replication, RunRead,
    Shutdown, StorageDone,
};
use super::snapshot_io::SnapshotSends;
use super::workers::ApplyWork;
use super::write_queue::WriteInbox;

/// A boxed IO worker, started with the actor and stopped with it.
pub(crate) type Worker = Pin<Box<dyn Future<Output = ()>>>;

/// How an inbound RPC is answered.
pub(super) type ReplyTx = oneshot::Sender<Response>;

/// How a client write is answered, and by when.
pub(super) type ClientTx<R> = WriteWaiter<R>;

/// How a read is answered: with the read index, for the handle to wait on.
pub(super) type ReadTx = oneshot::Sender<Result<LogIndex, ClientReadError>>;

/// How a membership change or leadership transfer is answered.
pub(super) type ChangeTx = oneshot::Sender<Result<crate::membership::Membership, ChangeError>>;

/// The effects of one executor call, as the actor performs them.
pub(super) type NodeEffect<R> = Effect<ReplyTx, ClientTx<R>, ReadTx, ChangeTx>;

/// Builds the IO workers once the actor's address exists.
pub(crate) type WorkerFactory<SM> =
    Box<dyn FnOnce(actix::Addr<NodeActor<SM>>) -> Vec<Worker> + Send>;

/// One Raft node as an actix actor. Owns the executor (and through it the core); talks to storage
/// and the state machine through workers, and to peers through the network.
pub struct NodeActor<SM: StateMachine> {
    /// The core and the bookkeeping between it and the IO, shared with the simulator.
    pub(super) executor: Executor<ReplyTx, ClientTx<SM::Response>, ReadTx, ChangeTx>,
    pub(super) config: Config,
    pub(super) network: Arc<dyn Network>,
    pub(super) storage_tx: mpsc::UnboundedSender<StorageOp>,
    pub(super) apply_tx: mpsc::UnboundedSender<ApplyWork<SM>>,
    /// Client writes, queued by the handles.
    writes: WriteInbox<SM::Response>,
    /// The timer for the earliest deadline of the waiting writes, when armed (`deadlines.rs`).
    pub(super) write_timer: Option<WriteTimer>,
    /// The snapshots being sent to followers, held open for their transfers.
    pub(super) sending: Arc<SnapshotSends>,
    workers: Option<WorkerFactory<SM>>,
    ticks: u64,
    metrics_tx: watch::Sender<RaftMetrics>,
    /// Set when the node stopped on a fatal error; shared with the handle.
    pub(super) fatal: Arc<Mutex<Option<Fatal>>>,
    pub(super) stopping: bool,
    pub(super) span: tracing::Span,
    /// The core's `membership_version` when the metrics last took its configuration.
    published_membership: std::cell::Cell<u64>,
}

/// Everything needed to build a node actor.
pub(crate) struct NodeParts<SM: StateMachine> {
    pub core: Core,
    pub config: Config,
    pub network: Arc<dyn Network>,
    pub storage_tx: mpsc::UnboundedSender<StorageOp>,
    pub apply_tx: mpsc::UnboundedSender<ApplyWork<SM>>,
    pub writes: WriteInbox<SM::Response>,
    pub snapshots: Arc<dyn SnapshotStorage>,
    pub workers: WorkerFactory<SM>,
    pub metrics_tx: watch::Sender<RaftMetrics>,
    pub fatal: Arc<Mutex<Option<Fatal>>>,
}

impl<SM: StateMachine> NodeActor<SM> {
    pub(crate) fn new(parts: NodeParts<SM>) -> NodeActor<SM> {
        let span = tracing::info_span!("raft", node_id = %parts.core.id());
        let max_batch = parts.config.max_entries_per_message;
        let core_membership_version = parts.core.membership_version();
        NodeActor {
            executor: Executor::new(parts.core, max_batch),
            config: parts.config,
            network: parts.network,
            storage_tx: parts.storage_tx,
            apply_tx: parts.apply_tx,
            writes: parts.writes,
            write_timer: None,
            sending: Arc::new(SnapshotSends::new(parts.snapshots)),
            workers: Some(parts.workers),
            ticks: 0,
            metrics_tx: parts.metrics_tx,
            fatal: parts.fatal,
            stopping: false,
            span,
            published_membership: std::cell::Cell::new(core_membership_version),
        }
    }

    /// Performs the effects of one executor call, then publishes the metrics.
    pub(super) fn run(&mut self, effects: Vec<NodeEffect<SM::Response>>, ctx: &mut Context<Self>) {
        self.perform(effects, ctx);
        self.publish_metrics();
    }

    /// Publishes what changed since the last publication. Runs after every message, so it
    /// updates the fields in place (cloning the membership only when it changed) and wakes the
    /// watchers only when something did.
    pub(super) fn publish_metrics(&self) {
        let core = self.executor.core();
        let running = !self.stopping;
        self.metrics_tx.send_if_modified(|metrics| {
            let scalars = [
                update(&mut metrics.role, core.role()),
                update(&mut metrics.term, core.term()),
                update(&mut metrics.leader, core.leader()),
                update(&mut metrics.last_log_id, core.last_log_id()),
                update(&mut metrics.commit_index, core.commit_index()),
                update(&mut metrics.last_applied, core.last_applied()),
                update(&mut metrics.running, running),
                update(
                    &mut metrics.snapshot,
                    core.snapshot().map(|meta| meta.last_included),
                ),
                update(&mut metrics.log_base, core.log_base()),
            ];
            let membership = self.published_membership.get() != core.membership_version();
            if membership {
                metrics.membership = core.membership().clone();
                self.published_membership.set(core.membership_version());
            }
            membership || scalars.contains(&true)
        });
    }

    /// Stops the node: every waiting client is answered, the actor and its workers stop.
    pub(super) fn stop_with(&mut self, error: ClientWriteError, ctx: &mut Context<Self>) {
        self.stopping = true;
        for waiter in self.executor.shut_down() {
            waiter.answer(Err(error.clone()));
        }
        let read_error = match &error {
            ClientWriteError::Fatal(fatal) => ClientReadError::Fatal(fatal.clone()),
            _ => ClientReadError::ShuttingDown,
        };
        for tx in self.executor.abandon_reads() {
            let _ = tx.send(Err(read_error.clone()));
        }
        for tx in self.executor.abandon_changes() {
            let _ = tx.send(Err(ChangeError::ShuttingDown));
        }
        self.publish_metrics();
        actix::ActorContext::stop(ctx);
    }
}

/// Stores `value` in `field` if it differs; says whether it did.
fn update<T: PartialEq>(field: &mut T, value: T) -> bool {
    let changed = *field != value;
    if changed {
        *field = value;
    }
    changed
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
        snapshot: core.snapshot().map(|meta| meta.last_included),
        log_base: core.log_base(),
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
        let effects = self.executor.tick();
        self.run(effects, ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let _guard = self.span.enter();
        debug!("node stopped");
    }
}

/// NB: a node whose [`NodeThread`](crate::NodeThread) stops is dropped without `stop_with` (the
/// system's event loop ends before the actor could stop). Its waiting clients see their answer
/// channels close, which the handle reads as `ShuttingDown`; the metrics must say so too, or a
/// watcher would see a dead node `running` forever.
impl<SM: StateMachine> Drop for NodeActor<SM> {
    fn drop(&mut self) {
        if !self.stopping {
            self.stopping = true;
            self.publish_metrics();
        }
    }
}

impl<SM: StateMachine> NodeActor<SM> {
    fn handle_tick(&mut self, ctx: &mut Context<Self>) {
        let _guard = self.span.clone().entered();
        self.ticks += 1;
        let effects = self.executor.tick();
        self.run(effects, ctx);
        if self.executor.core().role() != crate::core::Role::Leader {
            self.sending.clear();
        }
        // Forget clients that gave up (their timeout fired), so the map cannot grow without bound.
        if self.ticks % 100 == 0 {
            self.executor.retain_clients(|waiter| !waiter.is_closed());
            self.executor.retain_reads(|tx| !tx.is_closed());
        }
    }
}

impl<SM: StateMachine> Handler<DrainWrites> for NodeActor<SM> {
    type Result = ();

    /// Every queued write goes to the executor in one call: one batch of effects for the burst.
    fn handle(&mut self, _: DrainWrites, ctx: &mut Context<Self>) {
        let _guard = self.span.clone().entered();
        let writes = self.writes.drain();
        if self.stopping {
            for write in writes {
                write.waiter.answer(Err(ClientWriteError::ShuttingDown));
            }
            return;
        }
        let deadlines = writes
            .as_slice()
            .iter()
            .map(|write| write.waiter.deadline());
        let Some(earliest) = deadlines.min() else {
            return;
        };
        let effects = self
            .executor
            .client_writes(writes.map(|write| (write.command, write.waiter)));
        self.run(effects, ctx);
        self.watch_deadline(earliest, ctx);
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
        let effects = self.executor.read(msg.mode, msg.tx);
        self.run(effects, ctx);
    }
}

impl<SM: StateMachine> Handler<Change> for NodeActor<SM> {
    type Result = ();

    fn handle(&mut self, msg: Change, ctx: &mut Context<Self>) {
        let _guard = self.span.clone().entered();
        if self.stopping {
            let _ = msg.tx.send(Err(ChangeError::ShuttingDown));
            return;
        }
        let effects = match msg.request {
            ChangeRequest::Change(change) => self.executor.change_membership(change, msg.tx),
            ChangeRequest::Transfer(to) => self.executor.transfer_leader(to, msg.tx),
        };
        self.run(effects, ctx);
    }
}

impl<SM: StateMachine> Handler<Replication> for NodeActor<SM> {
    type Result = ();

    fn handle(&mut self, msg: Replication, _ctx: &mut Context<Self>) {
        let _ = msg.tx.send(self.executor.core().replication());
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
        let effects = self.executor.inbound(msg.from, msg.request, msg.tx);
        self.run(effects, ctx);
    }
}

impl<SM: StateMachine> Handler<StorageDone> for NodeActor<SM> {
    type Result = ();

    fn handle(&mut self, msg: StorageDone, ctx: &mut Context<Self>) {
        let _guard = self.span.clone().entered();
        match msg {
            StorageDone::HardStateSaved => {
                let effects = self.executor.hard_state_saved();
                self.run(effects, ctx);
            }
            StorageDone::LogPersisted { up_to, appends } => {
                let effects = self.executor.log_persisted(up_to, appends);
                self.run(effects, ctx);
            }
            StorageDone::SnapshotInstalled(last_included) => {
                let effects = self.executor.snapshot_installed(last_included);
                self.run(effects, ctx);
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
            ApplyDone::Applied(up_to) => {
                let effects = self.executor.applied(up_to);
                self.run(effects, ctx);
            }
            ApplyDone::SnapshotBuilt(meta) => {
                let effects = self.executor.snapshot_built(meta);
                self.run(effects, ctx);
            }
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
