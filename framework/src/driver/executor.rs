//! [`Executor`]: owns a node's [`Core`] and the bookkeeping between it and the IO (see the module
//! docs); turns what happens to the node into core inputs and the core's actions into [`Effect`]s.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::core::{Action, Core, Input, Proposal, ReadMode, Role};
use crate::error::{ChangeError, ProposeError};
use crate::membership::{Membership, MembershipChange};
use crate::message::{InstallSnapshotRequest, Request, Response};
use crate::types::{Entry, LogId, LogIndex, NodeId, RequestId, RpcId, SnapshotMeta};

use super::slots::Slots;
use super::storage_op::StorageOp;

/// IO the embedding must perform for the node, in the order given.
#[derive(Debug)]
pub enum Effect<R, C, Q = C, W = C> {
    /// Hand this write to the node's storage worker, which performs writes in order and reports
    /// [`Executor::hard_state_saved`] and [`Executor::log_persisted`].
    Storage(StorageOp),
    /// Send a request to a peer; feed its response, if one arrives in time, to
    /// [`Executor::response`]. A lost request or response needs nothing: the core retries.
    Send {
        /// The destination.
        to: NodeId,
        /// The request.
        request: Request,
    },
    /// Answer an inbound RPC through the handle given with it to [`Executor::inbound`].
    Reply {
        /// The caller's reply handle.
        reply: R,
        /// The answer.
        response: Response,
    },
    /// Apply these committed entries in order, answer each client with the state machine's
    /// result for the entry at its index, then report [`Executor::applied`].
    Apply {
        /// Contiguous committed entries.
        entries: Vec<Entry>,
        /// The clients still waiting on some of these entries.
        clients: Vec<(LogIndex, C)>,
    },
    /// The client's write will not be applied: answer it with this error.
    Reject {
        /// The client's handle.
        client: C,
        /// Why.
        error: ProposeError,
    },
    /// The read may be served once the state machine has applied `read_index`.
    ReadReady {
        /// The reader's handle.
        reader: Q,
        /// Every write committed before the read arrived is at or below this index.
        read_index: LogIndex,
    },
    /// The read cannot be served here (`NotLeader`).
    RejectRead {
        /// The reader's handle.
        reader: Q,
        /// Why.
        error: ProposeError,
    },
    /// On the apply stream, after the `Apply`s before it: take the state machine's image (it
    /// holds exactly the entries up to `last_included`), store it durably as the latest snapshot
    /// beside applying (applying goes on meanwhile), then report [`Executor::snapshot_built`].
    BuildSnapshot {
        /// The last entry the image includes.
        last_included: LogId,
        /// The configuration in effect there.
        membership: Membership,
    },
    /// On the apply stream: replace the state machine's state with the latest snapshot's (it is
    /// durable: the executor held this back until then), then report [`Executor::applied`] up to
    /// `meta.last_included.index`.
    RestoreSnapshot {
        /// The snapshot to restore.
        meta: SnapshotMeta,
    },
    /// A membership change or leadership transfer is done, or refused: answer its caller.
    ChangeDone {
        /// The caller's handle.
        waiter: W,
        /// The membership in effect, or why not.
        result: Result<Membership, ChangeError>,
    },
    /// Read `len` bytes of the snapshot `request.meta.last_included` at `request.offset` into
    /// `request.data` and send the request to `to`, like [`Effect::Send`]. If that snapshot is
    /// no longer held, send nothing (the core times the chunk out and moves on).
    SendSnapshotChunk {
        /// The destination.
        to: NodeId,
        /// The request, complete but for its data.
        request: InstallSnapshotRequest,
        /// How many bytes to read.
        len: u64,
    },
}

/// A node's core and the bookkeeping that executes its actions. `R` is how an inbound RPC is
/// answered (a channel, an address), `C` how a client write is, `Q` how a read is, `W` how a
/// membership change or leadership transfer is.
#[derive(Debug)]
pub struct Executor<R, C, Q = C, W = C> {
    core: Core,
    /// Most client writes buffered into one batch.
    max_batch: u64,
    /// Inbound RPCs waiting for the core's one reply.
    pending_rpcs: BTreeMap<RpcId, R>,
    /// Client writes waiting for their entry to be applied or refused.
    pending_clients: Slots<C>,
    /// Reads waiting for the core to confirm or refuse them.
    pending_reads: Slots<Q>,
    /// Membership changes and leadership transfers waiting for their outcome.
    pending_changes: BTreeMap<RequestId, W>,
    /// Proposals held while the leader's previous append is being written: they go out as one
    /// batch when it completes (one append, one message per follower).
    proposal_buffer: Vec<Proposal>,
    /// Appends handed to storage and not yet reported durable.
    appends_in_flight: u64,
    /// Actions held back until a `SaveHardState` before them is durable (contract 1).
    deferred: VecDeque<Action>,
    /// A `SaveHardState` was handed to storage and is not yet durable.
    hard_state_in_flight: bool,
    /// Snapshot installs handed to storage and not yet durable.
    installs_in_flight: u64,
    /// Apply-stream actions (the `RestoreSnapshot` after an install, and whatever follows it)
    /// held until every install before them is durable: a state machine never holds a snapshot
    /// that a crash could take back.
    held_apply: VecDeque<Action>,
    next_rpc: u64,
    next_request: u64,
    /// Effects produced by the current call.
    effects: Vec<Effect<R, C, Q, W>>,
}

impl<R, C, Q, W> Executor<R, C, Q, W> {
    /// An executor for `core` that batches at most `max_batch` client writes into one append
    /// (the config's `max_entries_per_message`).
    pub fn new(core: Core, max_batch: u64) -> Executor<R, C, Q, W> {
        Executor {
            core,
            max_batch: max_batch.max(1),
            pending_rpcs: BTreeMap::new(),
            pending_clients: Slots::default(),
            pending_reads: Slots::default(),
            pending_changes: BTreeMap::new(),
            proposal_buffer: Vec::new(),
            appends_in_flight: 0,
            deferred: VecDeque::new(),
            hard_state_in_flight: false,
            installs_in_flight: 0,
            held_apply: VecDeque::new(),
            next_rpc: 1,
            next_request: 1,
            effects: Vec::new(),
        }
    }

    /// The core, to read its state.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Appends handed to storage and not yet durable.
    pub fn appends_in_flight(&self) -> u64 {
        self.appends_in_flight
    }

    /// One tick of logical time: buffered client writes go out first.
    pub fn tick(&mut self) -> Vec<Effect<R, C, Q, W>> {
        self.flush_proposals();
        self.step(Input::Tick);
        self.take_effects()
    }

    /// A client write. On a leader whose previous append is still being written it waits in the
    /// buffer (up to a full batch), to go out with the others when that append completes.
    pub fn client_write(&mut self, command: Arc<[u8]>, client: C) -> Vec<Effect<R, C, Q, W>> {
        self.client_writes([(command, client)])
    }

    /// Client writes that arrived together, in order: as `client_write` for each, with one
    /// batch of effects for all.
    pub fn client_writes(
        &mut self,
        writes: impl IntoIterator<Item = (Arc<[u8]>, C)>,
    ) -> Vec<Effect<R, C, Q, W>> {
        let writes = writes.into_iter();
        self.proposal_buffer.reserve(writes.size_hint().0);
        for (command, client) in writes {
            self.buffer_write(command, client);
        }
        let must_wait = self.core.role() == Role::Leader && self.appends_in_flight > 0;
        if !must_wait || self.proposal_buffer.len() as u64 >= self.max_batch {
            self.flush_proposals();
        }
        self.take_effects()
    }

    fn buffer_write(&mut self, command: Arc<[u8]>, client: C) {
        let request = self.next_request_id();
        if let Err(client) = self.pending_clients.insert(request, client) {
            let error = self.unfiled();
            self.effects.push(Effect::Reject { client, error });
            return;
        }
        self.proposal_buffer.push(Proposal { request, command });
    }

    /// The answer for a handle its slots refused. Unreachable (request ids only grow), but a
    /// handle is refused rather than lost, should it happen.
    fn unfiled(&self) -> ProposeError {
        ProposeError::Dropped {
            leader: self.core.leader(),
        }
    }

    /// A read at `mode`; `reader` is how its answer (a read index, or a refusal) gets back.
    pub fn read(&mut self, mode: ReadMode, reader: Q) -> Vec<Effect<R, C, Q, W>> {
        let request = self.next_request_id();
        if let Err(reader) = self.pending_reads.insert(request, reader) {
            let error = self.unfiled();
            self.effects.push(Effect::RejectRead { reader, error });
            return self.take_effects();
        }
        self.step(Input::Read { request, mode });
        self.take_effects()
    }

    /// A membership change; `waiter` is how its outcome gets back.
    pub fn change_membership(
        &mut self,
        change: MembershipChange,
        waiter: W,
    ) -> Vec<Effect<R, C, Q, W>> {
        let request = self.next_request_id();
        self.pending_changes.insert(request, waiter);
        self.step(Input::ChangeMembership { request, change });
        self.take_effects()
    }

    /// A leadership transfer to `to`; `waiter` is how its outcome gets back.
    pub fn transfer_leader(&mut self, to: NodeId, waiter: W) -> Vec<Effect<R, C, Q, W>> {
        let request = self.next_request_id();
        self.pending_changes.insert(request, waiter);
        self.step(Input::TransferLeader { request, to });
        self.take_effects()
    }

    /// Returns every waiting membership change or transfer for the embedding to answer.
    pub fn abandon_changes(&mut self) -> Vec<W> {
        std::mem::take(&mut self.pending_changes)
            .into_values()
            .collect()
    }

    fn next_request_id(&mut self) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        request
    }

    /// An RPC request from a peer; `reply` is how its one answer gets back.
    pub fn inbound(&mut self, from: NodeId, request: Request, reply: R) -> Vec<Effect<R, C, Q, W>> {
        let rpc = RpcId(self.next_rpc);
        self.next_rpc += 1;
        self.pending_rpcs.insert(rpc, reply);
        self.step(Input::Request { from, rpc, request });
        self.take_effects()
    }

    /// The response to a request sent with [`Effect::Send`].
    pub fn response(&mut self, from: NodeId, response: Response) -> Vec<Effect<R, C, Q, W>> {
        self.step(Input::Response { from, response });
        self.take_effects()
    }

    /// The last `SaveHardState` handed to storage is durable: run what waited for it (until the
    /// next `SaveHardState`).
    pub fn hard_state_saved(&mut self) -> Vec<Effect<R, C, Q, W>> {
        self.hard_state_in_flight = false;
        let deferred: Vec<Action> = std::mem::take(&mut self.deferred).into();
        self.execute(deferred);
        self.take_effects()
    }

    /// `appends` appends handed to storage are durable, the last ending at `up_to`. Buffered
    /// client writes go out as one batch.
    pub fn log_persisted(&mut self, up_to: LogId, appends: u64) -> Vec<Effect<R, C, Q, W>> {
        self.appends_in_flight = self.appends_in_flight.saturating_sub(appends);
        self.step(Input::LogPersisted { up_to });
        self.flush_proposals();
        self.take_effects()
    }

    /// The state machine applied everything up to `up_to`.
    pub fn applied(&mut self, up_to: LogIndex) -> Vec<Effect<R, C, Q, W>> {
        self.step(Input::Applied { up_to });
        self.take_effects()
    }

    /// The snapshot asked for with [`Effect::BuildSnapshot`] is durable.
    pub fn snapshot_built(&mut self, meta: SnapshotMeta) -> Vec<Effect<R, C, Q, W>> {
        self.step(Input::SnapshotBuilt { meta });
        self.take_effects()
    }

    /// Storage completed a [`StorageOp::InstallSnapshot`]: the snapshot is durable and the log
    /// reset. The restore held behind it goes to the apply stream.
    pub fn snapshot_installed(&mut self, last_included: LogId) -> Vec<Effect<R, C, Q, W>> {
        self.installs_in_flight = self.installs_in_flight.saturating_sub(1);
        if self.installs_in_flight == 0 {
            let mut held = std::mem::take(&mut self.held_apply);
            // Two installs completed back to back: only the latest snapshot is still held by
            // storage, and restoring it supersedes everything queued before it (the core builds
            // no snapshot while installing, so only restores and applies are dropped).
            let last_restore = held
                .iter()
                .rposition(|action| matches!(action, Action::RestoreSnapshot { .. }));
            if let Some(last_restore) = last_restore {
                held.drain(..last_restore);
            }
            for action in held {
                self.execute_one(action);
            }
        }
        self.step(Input::SnapshotInstalled { last_included });
        self.take_effects()
    }

    /// The node stops: forgets waiting RPCs and buffered writes, and returns every waiting
    /// client for the embedding to answer.
    pub fn shut_down(&mut self) -> Vec<C> {
        self.pending_rpcs.clear();
        self.proposal_buffer.clear();
        self.deferred.clear();
        self.held_apply.clear();
        self.pending_clients.take_all()
    }

    /// Returns every waiting read for the embedding to answer (the node stops).
    pub fn abandon_reads(&mut self) -> Vec<Q> {
        self.pending_reads.take_all()
    }

    /// Keeps only the waiting reads `keep` accepts (to forget readers that gave up).
    pub fn retain_reads(&mut self, mut keep: impl FnMut(&Q) -> bool) {
        self.pending_reads.retain(|reader| keep(reader));
    }

    /// Keeps only the waiting clients `keep` accepts (to forget clients that gave up).
    pub fn retain_clients(&mut self, mut keep: impl FnMut(&C) -> bool) {
        self.pending_clients.retain(|client| keep(client));
    }

    /// Takes the waiting clients `take` accepts, oldest first, for the embedding to answer (a
    /// client whose deadline passed). An entry already proposed for one may still commit.
    pub fn take_clients(&mut self, take: impl FnMut(&C) -> bool) -> Vec<C> {
        self.pending_clients.take_where(take)
    }

    /// The clients waiting on their writes, oldest first.
    pub fn waiting_clients(&self) -> impl Iterator<Item = &C> {
        self.pending_clients.iter()
    }

    fn flush_proposals(&mut self) {
        if !self.proposal_buffer.is_empty() {
            let batch = std::mem::take(&mut self.proposal_buffer);
            self.step(Input::Propose(batch));
        }
    }

    fn step(&mut self, input: Input) {
        let actions = self.core.step(input);
        self.execute(actions);
    }

    fn take_effects(&mut self) -> Vec<Effect<R, C, Q, W>> {
        std::mem::take(&mut self.effects)
    }

    /// Executes actions in order, holding back everything after an unsaved hard state.
    fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            if self.hard_state_in_flight {
                self.deferred.push_back(action);
                continue;
            }
            self.execute_one(action);
        }
    }

    fn execute_one(&mut self, action: Action) {
        let apply_stream = matches!(
            action,
            Action::Apply { .. } | Action::BuildSnapshot { .. } | Action::RestoreSnapshot { .. }
        );
        if apply_stream && self.installs_in_flight > 0 {
            self.held_apply.push_back(action);
            return;
        }
        match action {
            Action::SaveHardState(hard_state) => {
                self.hard_state_in_flight = true;
                self.effects
                    .push(Effect::Storage(StorageOp::SaveHardState(hard_state)));
            }
            Action::TruncateLog { from } => self
                .effects
                .push(Effect::Storage(StorageOp::Truncate(from))),
            Action::AppendLog { entries } => {
                self.appends_in_flight += 1;
                self.effects
                    .push(Effect::Storage(StorageOp::Append(entries)));
            }
            Action::Send { to, request } => self.effects.push(Effect::Send { to, request }),
            Action::Reply { rpc, response, .. } => {
                if let Some(reply) = self.pending_rpcs.remove(&rpc) {
                    self.effects.push(Effect::Reply { reply, response });
                }
            }
            Action::Apply { entries, clients } => {
                let clients = clients
                    .into_iter()
                    .filter_map(|(index, request)| {
                        Some((index, self.pending_clients.remove(request)?))
                    })
                    .collect();
                self.effects.push(Effect::Apply { entries, clients });
            }
            Action::Reject { request, error } => {
                if let Some(client) = self.pending_clients.remove(request) {
                    self.effects.push(Effect::Reject { client, error });
                }
            }
            Action::ReadReady {
                request,
                read_index,
            } => {
                if let Some(reader) = self.pending_reads.remove(request) {
                    self.effects.push(Effect::ReadReady { reader, read_index });
                }
            }
            Action::RejectRead { request, error } => {
                if let Some(reader) = self.pending_reads.remove(request) {
                    self.effects.push(Effect::RejectRead { reader, error });
                }
            }
            Action::ChangeDone { request, result } => {
                if let Some(waiter) = self.pending_changes.remove(&request) {
                    self.effects.push(Effect::ChangeDone { waiter, result });
                }
            }
            Action::BuildSnapshot {
                last_included,
                membership,
            } => self.effects.push(Effect::BuildSnapshot {
                last_included,
                membership,
            }),
            Action::RestoreSnapshot { meta } => self.effects.push(Effect::RestoreSnapshot { meta }),
            Action::PurgeLog { up_to } => self
                .effects
                .push(Effect::Storage(StorageOp::Purge(up_to.index))),
            Action::SendSnapshotChunk { to, request, len } => {
                self.effects
                    .push(Effect::SendSnapshotChunk { to, request, len });
            }
            Action::ReceiveSnapshotChunk { meta, offset, data } => {
                self.effects.push(Effect::Storage(StorageOp::SnapshotChunk {
                    meta,
                    offset,
                    data,
                }))
            }
            Action::InstallSnapshot { meta } => {
                self.installs_in_flight += 1;
                self.effects
                    .push(Effect::Storage(StorageOp::InstallSnapshot(meta)));
            }
        }
    }
}
