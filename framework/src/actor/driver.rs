//! Performs the [`Effect`]s of the node's executor with actix and tokio. The decisions — what to
//! hold back until the hard state is durable, how to batch client writes, which caller each answer
//! goes to — are the executor's (`crate::driver`, shared with the simulator); here is only IO:
//!
//! - `Storage` goes to the storage worker, which keeps the order and reports completions.
//! - `Send` spawns the RPC on the actor's context with a timeout; a response goes back to the
//!   executor, a failure is a lost message (the core retries).
//! - `Reply` answers the waiting inbound RPC on its channel.
//! - `Apply` hands the entries, and the waiting clients' channels, to the apply worker.
//! - `Reject` answers a client with an error.
//! - `BuildSnapshot` / `RestoreSnapshot` go to the apply worker, in order with `Apply`;
//!   `SendSnapshotChunk` reads the chunk on a blocking thread, then sends it like `Send`.
//! - `ReadReady` / `RejectRead` answer a waiting read with its read index (the handle then waits
//!   for the state machine to apply it) or with `NotLeader`.

use std::sync::Arc;

use actix::{ActorFutureExt, AsyncContext, Context};
use tracing::{trace, warn};

use crate::driver::Effect;
use crate::error::{ClientReadError, ClientWriteError, ProposeError};
use crate::message::{InstallSnapshotRequest, Request, Response};
use crate::state_machine::StateMachine;
use crate::types::NodeId;

use super::node::{NodeActor, NodeEffect};
use super::snapshot_io::blocking;
use super::workers::{ApplyJob, ApplyWork};

impl<SM: StateMachine> NodeActor<SM> {
    /// Performs effects in order.
    pub(super) fn perform(
        &mut self,
        effects: Vec<NodeEffect<SM::Response>>,
        ctx: &mut Context<Self>,
    ) {
        for effect in effects {
            self.perform_one(effect, ctx);
        }
    }

    fn perform_one(&mut self, effect: NodeEffect<SM::Response>, ctx: &mut Context<Self>) {
        match effect {
            // The worker only stops after a storage failure, which stops this actor too.
            Effect::Storage(op) => drop(self.storage_tx.send(op)),
            Effect::Send { to, request } => self.send_rpc(to, request, ctx),
            Effect::Reply { reply, response } => drop(reply.send(response)),
            Effect::Apply { entries, clients } => {
                // The worker only stops after a fatal error, which stops this actor too.
                let job = ApplyJob { entries, clients };
                let _ = self.apply_tx.send(ApplyWork::Apply(job));
            }
            Effect::Reject { client, error } => client.answer(Err(client_error(error))),
            Effect::ReadReady { reader, read_index } => drop(reader.send(Ok(read_index))),
            Effect::BuildSnapshot {
                last_included,
                membership,
            } => {
                let build = ApplyWork::Build {
                    last_included,
                    membership,
                };
                let _ = self.apply_tx.send(build);
            }
            Effect::RestoreSnapshot { meta } => {
                let _ = self.apply_tx.send(ApplyWork::Restore(meta));
            }
            Effect::SendSnapshotChunk { to, request, len } => {
                self.send_snapshot_chunk(to, request, len, ctx);
            }
            Effect::ChangeDone { waiter, result } => drop(waiter.send(result)),
            Effect::RejectRead { reader, error } => {
                let leader = match error {
                    ProposeError::NotLeader { leader } | ProposeError::Dropped { leader } => leader,
                };
                drop(reader.send(Err(ClientReadError::NotLeader { leader })));
            }
        }
    }

    /// Reads a chunk of the snapshot on a blocking thread, then sends it; nothing is sent if the
    /// snapshot was replaced meanwhile (the core times the chunk out).
    fn send_snapshot_chunk(
        &mut self,
        to: NodeId,
        mut request: InstallSnapshotRequest,
        len: u64,
        ctx: &mut Context<Self>,
    ) {
        let (request_meta_id, offset) = (request.meta.last_included, request.offset);
        let sending = Arc::clone(&self.sending);
        let read = blocking(move || sending.read(to, &request_meta_id, offset, len));
        let request = async move {
            match read.await {
                Ok(Some(data)) => {
                    request.data = data;
                    Some(Request::InstallSnapshot(request))
                }
                Ok(None) => None,
                Err(error) => {
                    warn!(%to, %error, "reading a snapshot chunk failed; not sent");
                    None
                }
            }
        };
        self.spawn_rpc(to, request, ctx);
    }

    /// Sends one RPC; its response (if any arrives in time) goes to the executor.
    fn send_rpc(&mut self, to: NodeId, request: Request, ctx: &mut Context<Self>) {
        self.spawn_rpc(to, std::future::ready(Some(request)), ctx);
    }

    /// Sends the request `request` resolves to (if any) with a timeout; a response goes to the
    /// executor, a failure is a lost message.
    fn spawn_rpc(
        &mut self,
        to: NodeId,
        request: impl std::future::Future<Output = Option<Request>> + 'static,
        ctx: &mut Context<Self>,
    ) {
        let network = Arc::clone(&self.network);
        let timeout = self.config.rpc_timeout;
        let call = async move {
            let request = request.await?;
            let call = async {
                match request {
                    Request::AppendEntries(req) => network
                        .append_entries(to, req)
                        .await
                        .map(Response::AppendEntries),
                    Request::RequestVote(req) => network
                        .request_vote(to, req)
                        .await
                        .map(Response::RequestVote),
                    Request::InstallSnapshot(req) => network
                        .install_snapshot(to, req)
                        .await
                        .map(Response::InstallSnapshot),
                    Request::TimeoutNow(req) => {
                        network.timeout_now(to, req).await.map(Response::TimeoutNow)
                    }
                }
            };
            Some(tokio::time::timeout(timeout, call).await)
        };
        let on_response =
            actix::fut::wrap_future::<_, Self>(call).map(move |result, actor, ctx| match result {
                Some(Ok(Ok(response))) if !actor.stopping => {
                    let _guard = actor.span.clone().entered();
                    let effects = actor.executor.response(to, response);
                    actor.run(effects, ctx);
                }
                Some(Ok(Err(error))) => trace!(%to, %error, "RPC failed"),
                Some(Err(_)) => trace!(%to, "RPC timed out"),
                _ => {}
            });
        ctx.spawn(on_response);
    }
}

fn client_error(error: ProposeError) -> ClientWriteError {
    match error {
        ProposeError::NotLeader { leader } => ClientWriteError::NotLeader { leader },
        ProposeError::Dropped { leader } => ClientWriteError::Dropped { leader },
    }
}
