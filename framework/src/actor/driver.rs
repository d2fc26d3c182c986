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
//! - `ReadReady` / `RejectRead` answer a waiting read with its read index (the handle then waits
//!   for the state machine to apply it) or with `NotLeader`.

use std::sync::Arc;

use actix::{ActorFutureExt, AsyncContext, Context};
use tracing::trace;

use crate::driver::Effect;
use crate::error::{ClientReadError, ClientWriteError, ProposeError};
use crate::message::{Request, Response};
use crate::state_machine::StateMachine;
use crate::types::NodeId;

use super::node::{NodeActor, NodeEffect};
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
            Effect::Reject { client, error } => drop(client.send(Err(client_error(error)))),
            Effect::ReadReady { reader, read_index } => drop(reader.send(Ok(read_index))),
            Effect::RejectRead { reader, error } => {
                let leader = match error {
                    ProposeError::NotLeader { leader } | ProposeError::Dropped { leader } => leader,
                };
                drop(reader.send(Err(ClientReadError::NotLeader { leader })));
            }
        }
    }

    /// Sends one RPC; its response (if any arrives in time) goes to the executor.
    fn send_rpc(&mut self, to: NodeId, request: Request, ctx: &mut Context<Self>) {
        let network = Arc::clone(&self.network);
        let timeout = self.config.rpc_timeout;
        let call = async move {
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
                }
            };
            tokio::time::timeout(timeout, call).await
        };
        let on_response =
            actix::fut::wrap_future::<_, Self>(call).map(move |result, actor, ctx| match result {
                Ok(Ok(response)) if !actor.stopping => {
                    let _guard = actor.span.clone().entered();
                    let effects = actor.executor.response(to, response);
                    actor.run(effects, ctx);
                }
                Ok(Err(error)) => trace!(%to, %error, "RPC failed"),
                Err(_) => trace!(%to, "RPC timed out"),
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
