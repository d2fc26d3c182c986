//! Log compaction and InstallSnapshot (Raft §7, thesis chapter 5).
//!
//! ## Compaction
//! Every node compacts on its own. Once `snapshot_threshold_entries` entries, or entries holding
//! `snapshot_threshold_bytes` of payload, were handed to the state machine since its latest
//! snapshot (whichever comes first), the core emits [`Action::BuildSnapshot`] on the apply
//! stream, right behind the last `Apply`: the state machine's image there is exactly the state at
//! that entry, so the core tags it with that entry's id and the configuration in effect there.
//! Applying and replication go on while the driver encodes and stores it. When the driver reports
//! [`Input::SnapshotBuilt`] (durable), the core keeps the last `snapshot_keep_tail_entries`
//! entries before it, for followers slightly behind, and drops the rest: from memory at once,
//! from storage with [`Action::PurgeLog`]. The log then starts after a *base* id: the last purged
//! entry, whose term still answers the §5.3 consistency check for the entry after it.
//!
//! ```text
//!   snapshot (durable) covers 1 ..................... S
//!   log in memory and storage:        base+1 ... S ... last      (base = S - keep_tail)
//! ```
//!
//! ## InstallSnapshot: the core owns the protocol, the driver owns the bytes
//! A snapshot may be larger than memory, so its data never passes through the core; the core
//! decides every protocol step and the driver only moves byte ranges:
//!
//! ```text
//!  leader core                     leader driver          follower driver        follower core
//!  next_index <= base:
//!  progress -> Snapshot
//!  SendSnapshotChunk{offset,len} ─► read [offset, +len) ─► InstallSnapshot ──────► offset as
//!                                  of the snapshot store     request                expected?
//!                                                                                     │ yes
//!                                                          write to partial ◄── ReceiveSnapshotChunk
//!  offset = next_offset  ◄──────────────────────────────── Continue{next_offset} ◄──┤ not done
//!                                                          ... last chunk:          │ done
//!                                                          InstallSnapshot ◄────────┤ (log reset
//!                                                          RestoreSnapshot ◄────────┘  in memory)
//!                                                          SnapshotInstalled ─────► durable ack
//!  progress -> Replicate  ◄─────────────────────────────── Installed{match_index} ◄──┘
//!  from last_included + 1
//! ```
//!
//! - **Chunks** are `snapshot_chunk_bytes` long, one in flight per follower, each acknowledged
//!   with the offset the follower expects next. The follower is the authority on that offset:
//!   after a lost chunk, a dropped connection, a follower restart (its partial snapshot is
//!   volatile) or a new leader, the next answer says where to resume, and the leader continues
//!   there. A chunk unanswered for `snapshot_chunk_timeout_ticks` is sent again at the next
//!   heartbeat, of the same snapshot: the driver keeps a snapshot under transfer readable after
//!   a newer one replaced it, so a leader that compacts faster than a slow follower downloads
//!   cannot starve it (the simulator found this). Only after three unanswered chunks in a row
//!   does the transfer move to the latest snapshot (the driver may have lost the old one).
//! - A transfer is identified by (term, leader, last included id): a follower never mixes bytes
//!   of two snapshots, and starts over at offset 0 for a new one.
//! - **Stale or conflicting snapshots are refused safely.** A snapshot at or below the follower's
//!   commit index is answered `Stale` with the follower's committed durable index (which matches
//!   every leader's log), and nothing changes. A follower that already holds the last included
//!   entry keeps its log (§7, step 6) and acknowledges once that entry is durable.
//! - **Install.** Otherwise, on the last chunk the follower discards its whole log (§7, step 7:
//!   its entry at the last included index, if any, conflicts, so nothing after it can have
//!   committed), takes the snapshot's configuration, and asks the driver to make the snapshot
//!   durable and the stored log empty ([`Action::InstallSnapshot`], on the log's write stream)
//!   and to restore the state machine ([`Action::RestoreSnapshot`], on the apply stream, after
//!   the applies before it: a snapshot arriving while applying waits its turn). Its ack waits
//!   for [`Input::SnapshotInstalled`], like an AppendEntries ack waits for durability (contract
//!   2). The leader then replicates from `last_included + 1`.
//! - **Races.** A purge while a follower is being sent entries: entries already in flight are
//!   acknowledged as usual; whatever needs an entry now below the base (the next send, a
//!   heartbeat at `match_index`, a conflict backing up) switches that follower to a snapshot.
//!   A build that completes after a newer snapshot was installed is ignored. A membership change
//!   inside the snapshot's range travels in the snapshot's metadata.
//! - **Restart.** The driver restores the latest durable snapshot into the state machine, then
//!   starts the core with it in [`crate::core::Recovered`]; the log tail after it is applied
//!   again from the state machine's applied index, so every entry is applied exactly once.
//! - Clients waiting on entries a received snapshot covers are not answered by the core: their
//!   outcome is unknown here (the driver times them out).

use crate::message::{InstallSnapshotRequest, InstallSnapshotResponse, Response, SnapshotOutcome};
use crate::types::{Entry, EntryPayload, LogId, LogIndex, NodeId, RpcId, SnapshotMeta, Term};

use super::io::Action;
use super::node::{AckTo, Core, PendingAck, RoleState};
use super::progress::ProgressState;

/// Unanswered chunks in a row after which a transfer moves to the leader's latest snapshot.
pub(super) const SWITCH_AFTER_TIMEOUTS: u32 = 3;

/// A follower's record of the snapshot it is receiving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IncomingSnapshot {
    /// The sender's term and id, and the snapshot: what identifies the bytes.
    pub term: Term,
    pub leader: NodeId,
    pub last_included: LogId,
    /// Bytes received so far, from offset 0: the next chunk must start here.
    pub received: u64,
}

impl Core {
    /// Asks for a snapshot once enough entries, or enough payload bytes, were handed to the
    /// state machine since the last.
    pub(super) fn maybe_build_snapshot(&mut self) {
        // NB: never while a received snapshot is being installed: the driver may drop the
        // apply-stream work queued behind an install that a newer install supersedes.
        if self.building_snapshot || self.installing.is_some() || !self.snapshot_due() {
            return;
        }
        let applying = self.log.applying();
        let Some(last_included) = self.log.log_id_at(applying) else {
            return;
        };
        let membership = self.membership_at(applying);
        self.building_snapshot = true;
        self.applied_bytes_since_snapshot = 0;
        self.push(Action::BuildSnapshot {
            last_included,
            membership,
        });
    }

    /// Whether either threshold is reached (a threshold of 0 is off).
    fn snapshot_due(&self) -> bool {
        let (entries, bytes) = (
            self.config.snapshot_threshold_entries,
            self.config.snapshot_threshold_bytes,
        );
        let applied_entries = self
            .log
            .applying()
            .0
            .saturating_sub(self.snapshot_index().0);
        (entries > 0 && applied_entries >= entries)
            || (bytes > 0 && self.applied_bytes_since_snapshot >= bytes)
    }

    /// The last index the latest snapshot covers (0 without one).
    fn snapshot_index(&self) -> LogIndex {
        self.snapshot
            .as_ref()
            .map_or(LogIndex(0), |snapshot| snapshot.last_included.index)
    }

    /// Payload bytes of the entries handed to the state machine after the latest snapshot: the
    /// byte trigger's starting point on restart. Looks through the log in place, once.
    pub(super) fn applied_bytes_after_snapshot(&self) -> u64 {
        let from = self.snapshot_index().next();
        self.log
            .view(from, self.log.applying())
            .iter()
            .map(Entry::payload_bytes)
            .sum()
    }

    /// The configuration in effect at `index` (at or after the base): the latest in the log up to
    /// there, else the snapshot's. Looks through the log in place: a snapshot is due every
    /// `snapshot_threshold` entries, and copying them all to find one would cost a copy per entry.
    fn membership_at(&self, index: LogIndex) -> crate::membership::Membership {
        let in_log = self
            .log
            .view(self.log.base().index.next(), index)
            .iter()
            .rev()
            .find_map(|entry| match &entry.payload {
                EntryPayload::Membership(membership) => Some(membership.as_ref().clone()),
                _ => None,
            });
        in_log
            .or_else(|| self.snapshot.as_ref().map(|s| s.membership.clone()))
            .unwrap_or_default()
    }

    /// A snapshot is durable: it becomes the latest, and the log before its kept tail goes.
    pub(super) fn handle_snapshot_built(&mut self, meta: SnapshotMeta) {
        self.building_snapshot = false;
        let newer = self
            .snapshot
            .as_ref()
            .is_none_or(|latest| meta.last_included.index > latest.last_included.index);
        // NB: a snapshot installed from the leader meanwhile may have overtaken this one.
        let holds = self.log.log_id_at(meta.last_included.index) == Some(meta.last_included)
            && meta.last_included.index <= self.log.applying();
        if !newer || !holds {
            return;
        }
        let purge_index = LogIndex(
            meta.last_included
                .index
                .0
                .saturating_sub(self.config.snapshot_keep_tail_entries),
        );
        self.snapshot = Some(meta);
        if purge_index <= self.log.base().index {
            return;
        }
        let Some(up_to) = self.log.log_id_at(purge_index) else {
            return;
        };
        self.log.purge_to(up_to);
        self.push(Action::PurgeLog { up_to });
    }

    /// Storage finished installing a received snapshot: its acknowledgement may go.
    pub(super) fn handle_snapshot_installed(&mut self, last_included: LogId) {
        let moved = self.log.mark_installed(last_included);
        if self.installing == Some(last_included) {
            self.installing = None;
        }
        if moved {
            self.send_durable_acks();
            self.maybe_commit();
        }
    }

    // ---------------------------------------------------------------- leader side

    /// Sends `peer` the next chunk of a snapshot, starting a transfer of the latest snapshot if
    /// none is under way. Returns false: at most one chunk is in flight.
    pub(super) fn send_snapshot_chunk(&mut self, peer: NodeId) -> bool {
        let Some(latest) = self.sendable_snapshot() else {
            return false;
        };
        let (term, leader_id, now_tick) = (self.hard_state.term, self.id, self.now_tick);
        let chunk_bytes = self.config.snapshot_chunk_bytes;
        let round = match &self.role {
            RoleState::Leader(leader) => leader.reads.round,
            _ => 0,
        };
        let Some(progress) = self.progress_mut(peer) else {
            return false;
        };
        if progress.state != ProgressState::Snapshot {
            progress.become_snapshot(latest);
        }
        let Some(transfer) = progress.transfer.as_mut() else {
            return false;
        };
        if transfer.sent_at_tick.is_some() {
            return false;
        }
        transfer.sent_at_tick = Some(now_tick);
        let size = transfer.meta.size_bytes;
        let offset = transfer.offset.min(size);
        let len = chunk_bytes.min(size - offset);
        let request = InstallSnapshotRequest {
            term,
            leader_id,
            meta: transfer.meta.clone(),
            offset,
            data: Vec::new(),
            done: offset + len == size,
            round,
        };
        self.push(Action::SendSnapshotChunk {
            to: peer,
            request,
            len,
        });
        false
    }

    /// The snapshot a transfer may start from: the latest, once durable here.
    fn sendable_snapshot(&self) -> Option<SnapshotMeta> {
        let latest = self.snapshot.as_ref()?;
        if self.installing.is_some() || latest.last_included.index < self.log.base().index {
            return None;
        }
        Some(latest.clone())
    }

    /// A heartbeat for a follower being sent a snapshot: the chunk in flight is sent again if
    /// unanswered for `snapshot_chunk_timeout_ticks`. The transfer keeps its snapshot (the
    /// driver holds a snapshot under transfer readable even once a newer one replaced it, so a
    /// leader compacting faster than a slow follower downloads cannot starve it); only after
    /// [`SWITCH_AFTER_TIMEOUTS`] unanswered chunks in a row does it move to the latest snapshot.
    pub(super) fn retry_snapshot_chunk(&mut self, peer: NodeId) {
        let timeout = self.config.snapshot_chunk_timeout_ticks;
        let now_tick = self.now_tick;
        let latest = self.sendable_snapshot();
        let Some(progress) = self.progress_mut(peer) else {
            return;
        };
        let Some(transfer) = progress.transfer.as_mut() else {
            return;
        };
        let timed_out = transfer
            .sent_at_tick
            .is_some_and(|sent| now_tick.saturating_sub(sent) >= timeout);
        if !timed_out {
            return;
        }
        transfer.sent_at_tick = None;
        transfer.timeouts += 1;
        if let Some(latest) = latest.filter(|latest| {
            latest.last_included != transfer.meta.last_included
                && transfer.timeouts >= SWITCH_AFTER_TIMEOUTS
        }) {
            progress.become_snapshot(latest);
        }
        self.send_snapshot_chunk(peer);
    }

    pub(super) fn handle_install_snapshot_response(
        &mut self,
        from: NodeId,
        resp: InstallSnapshotResponse,
    ) {
        if !self.accept_response_term(from, resp.term, resp.round) {
            return;
        }
        let last_index = self.log.last_index();
        let base_index = self.log.base().index;
        let Some(progress) = self.progress_mut(from) else {
            return;
        };
        progress.recent_active = true;
        match resp.outcome {
            SnapshotOutcome::Installed { match_index } | SnapshotOutcome::Stale { match_index }
                if match_index <= last_index =>
            {
                let advanced = progress.acknowledge(match_index);
                if progress.state == ProgressState::Snapshot && match_index < base_index {
                    // Committed there but not yet durable (or compacted past meanwhile): offer
                    // again at the next heartbeat, not in a tight loop.
                    progress.become_probe(match_index.next());
                    progress.state = ProgressState::Probe { paused: true };
                } else if progress.state == ProgressState::Snapshot {
                    progress.become_replicate();
                }
                if advanced {
                    self.maybe_commit();
                }
                self.send_appends(from);
            }
            SnapshotOutcome::Continue { next_offset } => {
                let Some(transfer) = progress.transfer.as_mut() else {
                    return;
                };
                let answers_chunk = transfer.meta.last_included == resp.last_included
                    && transfer.sent_at_tick.is_some()
                    && next_offset <= transfer.meta.size_bytes;
                if answers_chunk {
                    transfer.offset = next_offset;
                    transfer.sent_at_tick = None;
                    transfer.timeouts = 0;
                    self.send_snapshot_chunk(from);
                }
            }
            // A match beyond our log, or StaleTerm in our own term, cannot come from a correct
            // follower: ignore it rather than trust it.
            SnapshotOutcome::Installed { .. }
            | SnapshotOutcome::Stale { .. }
            | SnapshotOutcome::StaleTerm => {}
        }
    }

    // -------------------------------------------------------------- follower side

    pub(super) fn handle_install_snapshot(
        &mut self,
        from: NodeId,
        rpc: RpcId,
        req: InstallSnapshotRequest,
    ) {
        let reply_to = AckTo {
            to: from,
            rpc,
            round: req.round,
        };
        let last_included = req.meta.last_included;
        if !self.accept_leader(req.term, req.leader_id) {
            self.reply_snapshot(reply_to, last_included, SnapshotOutcome::StaleTerm);
            return;
        }
        if last_included.index <= self.log.commit_index() {
            self.receiving = None;
            let match_index = self.log.commit_index().min(self.log.persisted());
            self.reply_snapshot(
                reply_to,
                last_included,
                SnapshotOutcome::Stale { match_index },
            );
            return;
        }
        if self.log.term_at(last_included.index) == Some(last_included.term) {
            self.keep_log_through_snapshot(reply_to, last_included);
            return;
        }
        self.receive_chunk(reply_to, req);
    }

    /// §7, step 6: the log already holds the snapshot's last included entry, which is committed:
    /// keep the log, commit through it, and acknowledge once it is durable.
    fn keep_log_through_snapshot(&mut self, reply_to: AckTo, last_included: LogId) {
        self.receiving = None;
        self.leader_match = self.leader_match.max(last_included.index);
        self.log.commit_to(last_included.index);
        self.pending_acks.push_back(PendingAck {
            reply_to,
            match_index: last_included.index,
            snapshot: Some(last_included),
        });
        self.send_durable_acks();
    }

    /// Stores a chunk that continues the snapshot being received (or starts one at offset 0);
    /// installs the snapshot after its last chunk.
    fn receive_chunk(&mut self, reply_to: AckTo, req: InstallSnapshotRequest) {
        let last_included = req.meta.last_included;
        let same_transfer = |incoming: &IncomingSnapshot| {
            incoming.term == req.term
                && incoming.leader == req.leader_id
                && incoming.last_included == last_included
        };
        let expected = match &self.receiving {
            Some(incoming) if same_transfer(incoming) => incoming.received,
            _ => 0,
        };
        let end = req.offset.saturating_add(req.data.len() as u64);
        let well_formed = end <= req.meta.size_bytes && req.done == (end == req.meta.size_bytes);
        if req.offset != expected || !well_formed {
            let next_offset = expected;
            self.reply_snapshot(
                reply_to,
                last_included,
                SnapshotOutcome::Continue { next_offset },
            );
            return;
        }
        self.receiving = Some(IncomingSnapshot {
            term: req.term,
            leader: req.leader_id,
            last_included,
            received: end,
        });
        let done = req.done;
        self.push(Action::ReceiveSnapshotChunk {
            meta: req.meta.clone(),
            offset: req.offset,
            data: req.data,
        });
        if done {
            self.receiving = None;
            self.install_snapshot(reply_to, req.meta);
        } else {
            let outcome = SnapshotOutcome::Continue { next_offset: end };
            self.reply_snapshot(reply_to, last_included, outcome);
        }
    }

    /// §7, steps 7 and 8: discard the whole log, take the snapshot's state and configuration.
    fn install_snapshot(&mut self, reply_to: AckTo, meta: SnapshotMeta) {
        let last_included = meta.last_included;
        self.log.install(last_included);
        self.installing = Some(last_included);
        self.applied_bytes_since_snapshot = 0;
        self.set_membership((last_included.index, meta.membership.clone()));
        self.leader_match = self.leader_match.max(last_included.index);
        // Clients of entries the snapshot covers: their outcome is unknown here (module docs).
        self.clients.take_up_to(last_included.index).for_each(drop);
        self.snapshot = Some(meta.clone());
        self.push(Action::InstallSnapshot { meta: meta.clone() });
        self.push(Action::RestoreSnapshot { meta });
        self.pending_acks.push_back(PendingAck {
            reply_to,
            match_index: last_included.index,
            snapshot: Some(last_included),
        });
        self.send_durable_acks();
    }

    pub(super) fn reply_snapshot(
        &mut self,
        reply_to: AckTo,
        last_included: LogId,
        outcome: SnapshotOutcome,
    ) {
        let response = InstallSnapshotResponse {
            term: self.hard_state.term,
            last_included,
            outcome,
            round: reply_to.round,
        };
        self.push(Action::Reply {
            to: reply_to.to,
            rpc: reply_to.rpc,
            response: Response::InstallSnapshot(response),
        });
    }
}
