//! The action driver: carries out what the core asked for, in order.
//!
//! - `SaveHardState` goes to the storage worker, and every later action waits until it is
//!   durable (contract 1): they sit in `deferred` until `StorageDone::HardStateSaved`.
//! - `TruncateLog` / `AppendLog` go to the storage worker, which keeps their order; the core
//!   learns of durability through `Input::LogPersisted`. Nothing waits on them here: the leader
//!   replicates while its own write is in flight (contract 2).
//! - `Send` spawns the RPC on the actor's context with a timeout; a response becomes
//!   `Input::Response`, a failure is a lost message (the core retries).
//! - `Reply` answers the waiting inbound RPC.
//! - `Apply` hands the entries, and the waiting clients' channels, to the apply worker.
//! - `Reject` answers a client with an error.
//! - `ReadReady` / `RejectRead` answer a waiting read with its read index (the handle then waits
//!   for the state machine to apply it) or with `NotLeader`.

use std::sync::Arc;

use actix::{ActorFutureExt, AsyncContext, Context};
use tracing::trace;

use crate::core::{Action, Input};
use crate::error::{ClientReadError, ClientWriteError, ProposeError};
use crate::message::{Request, Response};
use crate::state_machine::StateMachine;
use crate::types::NodeId;

use super::node::NodeActor;
use super::workers::{ApplyJob, ApplyWork, StorageOp};

impl<SM: StateMachine> NodeActor<SM> {
    /// Executes actions in order, holding back everything after an unsaved hard state.
    pub(super) fn execute(&mut self, actions: Vec<Action>, ctx: &mut Context<Self>) {
        for action in actions {
            if self.awaiting_hard_state {
                self.deferred.push_back(action);
                continue;
            }
            self.execute_one(action, ctx);
        }
    }

    /// The hard state is durable: run what waited for it (until the next `SaveHardState`).
    pub(super) fn resume_deferred(&mut self, ctx: &mut Context<Self>) {
        self.awaiting_hard_state = false;
        let deferred: Vec<Action> = std::mem::take(&mut self.deferred).into();
        self.execute(deferred, ctx);
        self.publish_metrics();
    }

    fn execute_one(&mut self, action: Action, ctx: &mut Context<Self>) {
        match action {
            Action::SaveHardState(hard_state) => {
                self.awaiting_hard_state = true;
                self.send_to_storage(StorageOp::SaveHardState(hard_state));
            }
            Action::TruncateLog { from } => self.send_to_storage(StorageOp::Truncate(from)),
            Action::AppendLog { entries } => {
                self.appends_in_flight += 1;
                self.send_to_storage(StorageOp::Append(entries));
            }
            Action::Send { to, request } => self.send_rpc(to, request, ctx),
            Action::Reply { rpc, response, .. } => {
                if let Some(tx) = self.pending_rpcs.remove(&rpc) {
                    let _ = tx.send(response);
                }
            }
            Action::Apply { entries, clients } => {
                let clients = clients
                    .into_iter()
                    .filter_map(|(index, request)| {
                        Some((index, self.pending_clients.remove(&request)?))
                    })
                    .collect();
                // The worker only stops after a fatal error, which stops this actor too.
                let _ = self
                    .apply_tx
                    .send(ApplyWork::Apply(ApplyJob { entries, clients }));
            }
            Action::Reject { request, error } => {
                if let Some(tx) = self.pending_clients.remove(&request) {
                    let _ = tx.send(Err(client_error(error)));
                }
            }
            Action::ReadReady {
                request,
                read_index,
            } => {
                if let Some(tx) = self.pending_reads.remove(&request) {
                    let _ = tx.send(Ok(read_index));
                }
            }
            Action::RejectRead { request, error } => {
                if let Some(tx) = self.pending_reads.remove(&request) {
                    let leader = match error {
                        ProposeError::NotLeader { leader } | ProposeError::Dropped { leader } => {
                            leader
                        }
                    };
                    let _ = tx.send(Err(ClientReadError::NotLeader { leader }));
                }
            }
        }
    }

    fn send_to_storage(&mut self, op: StorageOp) {
        // The worker only stops after a storage failure, which stops this actor too.
        let _ = self.storage_tx.send(op);
    }

    /// Sends one RPC; its response (if any arrives in time) is stepped into the core.
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
                }
            };
            tokio::time::timeout(timeout, call).await
        };
        let on_response =
            actix::fut::wrap_future::<_, Self>(call).map(move |result, actor, ctx| match result {
                Ok(Ok(response)) if !actor.stopping => {
                    let _guard = actor.span.clone().entered();
                    actor.step(Input::Response { from: to, response }, ctx);
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
