//! The leader's side of log replication (§5.3) and commitment (§5.4.2), plus CheckQuorum.
//!
//! ```text
//!  propose ──► append to own log ──► AppendLog (own write, in parallel) ──► LogPersisted
//!                 │                                                            │
//!                 └──► AppendEntries per follower (probe, then pipelined)      │
//!                           │                                                  ▼
//!                 response ─┴─► progress.match_index ──► quorum index ──► commit (own term only)
//! ```

use std::sync::Arc;

use crate::error::ProposeError;
use crate::message::Request;
use crate::message::{AppendEntriesRequest, AppendEntriesResponse, AppendOutcome, ConflictHint};
use crate::types::{Entry, EntryPayload, LogId, LogIndex, NodeId, Term};

use super::io::{Action, Proposal};
use super::node::{Core, LeaderState, RoleState};
use super::progress::{Progress, ProgressState};
use super::read_index::ReadState;

impl Core {
    /// Takes office: every follower starts in probe; a blank entry of the new term lets the
    /// leader commit what earlier terms left uncommitted (§5.4.2, §8).
    pub(super) fn become_leader(&mut self) {
        let next_index = self.log.last_index().next();
        let progress = self
            .membership
            .1
            .nodes()
            .into_iter()
            .filter(|id| *id != self.id)
            .map(|id| (id, Progress::new(next_index)))
            .collect();
        self.role = RoleState::Leader(LeaderState {
            progress,
            heartbeat_elapsed: 0,
            reads: ReadState::default(),
            change: None,
            transfer: None,
            queued_change: None,
        });
        self.leader = Some(self.id);
        self.election_elapsed = 0;
        self.begin_round();
        self.append_as_leader(vec![EntryPayload::Blank]);
        self.broadcast_append();
    }

    pub(super) fn handle_propose(&mut self, mut proposals: Vec<Proposal>) {
        if self.pause_proposals(&mut proposals) {
            return;
        }
        if !matches!(self.role, RoleState::Leader(_)) {
            let error = ProposeError::NotLeader {
                leader: self.leader,
            };
            for proposal in proposals {
                self.push(Action::Reject {
                    request: proposal.request,
                    error,
                });
            }
            return;
        }
        let first = self.log.last_index().next();
        let term = self.hard_state.term;
        for (offset, proposal) in proposals.iter().enumerate() {
            self.clients
                .insert(first.plus(offset as u64), term, proposal.request);
        }
        let payloads = proposals
            .into_iter()
            .map(|proposal| EntryPayload::Command(Arc::clone(&proposal.command)))
            .collect();
        self.append_as_leader(payloads);
        self.broadcast_append();
    }

    /// Appends payloads to the leader's own log in its term and asks storage to persist them.
    pub(super) fn append_as_leader(&mut self, payloads: Vec<EntryPayload>) {
        let term = self.hard_state.term;
        let first = self.log.last_index().next();
        let entries: Vec<Entry> = payloads
            .into_iter()
            .enumerate()
            .map(|(offset, payload)| Entry {
                log_id: LogId::new(term, first.plus(offset as u64)),
                payload,
            })
            .collect();
        self.log.append(&entries);
        self.note_appended_membership(&entries);
        self.push(Action::AppendLog { entries });
        // A single-voter cluster commits as soon as its own write is durable.
        self.maybe_commit();
    }

    /// Sends whatever each follower's window allows.
    pub(super) fn broadcast_append(&mut self) {
        for peer in self.peers() {
            self.send_appends(peer);
        }
    }

    fn peers(&self) -> Vec<NodeId> {
        match &self.role {
            RoleState::Leader(leader) => leader.progress.keys().copied().collect(),
            _ => Vec::new(),
        }
    }

    pub(super) fn progress_mut(&mut self, peer: NodeId) -> Option<&mut Progress> {
        match &mut self.role {
            RoleState::Leader(leader) => leader.progress.get_mut(&peer),
            _ => None,
        }
    }

    /// Sends AppendEntries to `peer` until its window is full or nothing is left to send.
    pub(super) fn send_appends(&mut self, peer: NodeId) {
        while self.send_one_append(peer) {}
    }

    /// Sends one AppendEntries to `peer` if its pacing allows. Returns whether a message went
    /// and another might follow (probing sends one; replication continues while entries remain).
    fn send_one_append(&mut self, peer: NodeId) -> bool {
        let config = self.config.clone();
        let last_index = self.log.last_index();
        let base_index = self.log.base().index;
        let now_tick = self.now_tick;
        let Some(progress) = self.progress_mut(peer) else {
            return false;
        };
        let snapshotting = progress.state == ProgressState::Snapshot;
        if !snapshotting && !progress.can_send(&config) {
            return false;
        }
        // The entry before `next_index` was compacted: only a snapshot can catch this one up.
        if snapshotting || progress.next_index <= base_index {
            return self.send_snapshot_chunk(peer);
        }
        let replicating = progress.state == ProgressState::Replicate;
        if replicating && progress.next_index > last_index {
            return false;
        }
        let next_index = progress.next_index;
        // Nagle's rule: while a message is in flight, a partial one waits for its answer, and the
        // writes arriving meanwhile go together (see `Config::pipeline_partial_messages`).
        let wait_to_batch = replicating
            && progress.has_inflight()
            && !config.pipeline_partial_messages
            && !self.log.fills_message(
                next_index,
                config.max_entries_per_message,
                config.max_payload_bytes_per_message,
            );
        if wait_to_batch {
            return false;
        }
        let entries = self.log.entries_from(
            next_index,
            config.max_entries_per_message,
            config.max_payload_bytes_per_message,
        );
        let bytes = entries.iter().map(Entry::payload_bytes).sum();
        let sent_up_to = next_index.prev().plus(entries.len() as u64);
        if let Some(progress) = self.progress_mut(peer) {
            progress.record_sent(sent_up_to, bytes, now_tick);
        }
        self.send_append_entries(peer, next_index.prev(), entries);
        replicating
    }

    /// Sends the leader's log after `prev_index`. The commit index goes along, capped at what the
    /// follower will match once it accepts this message.
    fn send_append_entries(&mut self, to: NodeId, prev_index: LogIndex, entries: Vec<Entry>) {
        let Some(prev_log_id) = self.log.log_id_at(prev_index) else {
            panic!(
                "leader {} has no entry at {prev_index} to send from",
                self.id
            );
        };
        let matched = prev_index.plus(entries.len() as u64);
        let round = match &self.role {
            RoleState::Leader(leader) => leader.reads.round,
            _ => 0,
        };
        let request = AppendEntriesRequest {
            term: self.hard_state.term,
            leader_id: self.id,
            prev_log_id,
            entries,
            leader_commit: self.log.commit_index().min(matched),
            round,
        };
        self.push(Action::Send {
            to,
            request: Request::AppendEntries(request),
        });
    }

    /// A leader's tick: heartbeats every `heartbeat_interval_ticks`, CheckQuorum every minimum
    /// election timeout.
    pub(super) fn tick_leader(&mut self) {
        self.expire_transfer();
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_timeout_min_ticks {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.maybe_keep_leadership() {
                return;
            }
        }
        let due = match &mut self.role {
            RoleState::Leader(leader) => {
                leader.heartbeat_elapsed += 1;
                leader.heartbeat_elapsed >= self.config.heartbeat_interval_ticks
            }
            _ => false,
        };
        if due {
            self.send_heartbeats();
        }
    }

    /// CheckQuorum: stays leader only if a quorum was heard from since the last round. Returns
    /// whether the node is still leader.
    fn maybe_keep_leadership(&mut self) -> bool {
        let RoleState::Leader(leader) = &mut self.role else {
            return false;
        };
        let mut active = std::collections::BTreeSet::from([self.id]);
        for (id, progress) in leader.progress.iter_mut() {
            if std::mem::take(&mut progress.recent_active) {
                active.insert(*id);
            }
        }
        if self.membership.1.is_quorum(&active) {
            return true;
        }
        self.become_follower(self.hard_state.term, None);
        false
    }

    /// A heartbeat round: each probing follower gets its probe again; each replicating follower
    /// gets an empty AppendEntries at its match index, or a fresh probe if its pipeline stalled.
    /// Each round is numbered for ReadIndex and the lease (`read_index.rs`).
    pub(super) fn send_heartbeats(&mut self) {
        if let RoleState::Leader(leader) = &mut self.role {
            leader.heartbeat_elapsed = 0;
        }
        self.begin_round();
        let stall_ticks = self.config.election_timeout_min_ticks;
        let now_tick = self.now_tick;
        let base_index = self.log.base().index;
        for peer in self.peers() {
            let Some(progress) = self.progress_mut(peer) else {
                continue;
            };
            match progress.state {
                ProgressState::Probe { .. } => {
                    progress.state = ProgressState::Probe { paused: false };
                    self.send_one_append(peer);
                }
                ProgressState::Replicate if progress.is_stalled(now_tick, stall_ticks) => {
                    let next_index = progress.match_index.next();
                    progress.become_probe(next_index);
                    self.send_one_append(peer);
                }
                // Compacted past what this follower is known to hold (a purge while replicating).
                ProgressState::Replicate if progress.match_index < base_index => {
                    let next_index = progress.match_index.next();
                    progress.become_probe(next_index);
                    self.send_one_append(peer);
                }
                ProgressState::Replicate => {
                    let match_index = progress.match_index;
                    self.send_append_entries(peer, match_index, Vec::new());
                }
                ProgressState::Snapshot => self.retry_snapshot_chunk(peer),
            }
        }
    }

    /// How every response from a follower starts: a newer term deposes this node, an older one is
    /// stale, the current one echoes a quorum round. Returns whether to handle the rest of it.
    pub(super) fn accept_response_term(&mut self, from: NodeId, term: Term, round: u64) -> bool {
        if term > self.hard_state.term {
            self.become_follower(term, None);
            return false;
        }
        if term < self.hard_state.term {
            return false;
        }
        self.note_round_echo(from, round);
        true
    }

    pub(super) fn handle_append_entries_response(
        &mut self,
        from: NodeId,
        resp: AppendEntriesResponse,
    ) {
        if !self.accept_response_term(from, resp.term, resp.round) {
            return;
        }
        let last_index = self.log.last_index();
        let Some(progress) = self.progress_mut(from) else {
            return;
        };
        progress.recent_active = true;
        match resp.outcome {
            AppendOutcome::Success { match_index } if match_index <= last_index => {
                self.handle_append_success(from, match_index)
            }
            AppendOutcome::Conflict {
                rejected_index,
                hint,
            } => self.handle_append_conflict(from, rejected_index, hint),
            // A match beyond our log, or StaleTerm in our own term, cannot come from a correct
            // follower: ignore it rather than trust it.
            AppendOutcome::Success { .. } | AppendOutcome::StaleTerm => {}
        }
    }

    fn handle_append_success(&mut self, from: NodeId, match_index: LogIndex) {
        let Some(progress) = self.progress_mut(from) else {
            return;
        };
        let advanced = progress.acknowledge(match_index);
        let caught_up = progress
            .transfer
            .as_ref()
            .is_some_and(|transfer| match_index >= transfer.meta.last_included.index);
        if caught_up {
            // Entries in flight before the transfer began got there: the snapshot is not needed.
            progress.become_replicate();
        }
        if let ProgressState::Probe { .. } = progress.state {
            if match_index.next() >= progress.next_index {
                progress.become_replicate();
            } else {
                progress.state = ProgressState::Probe { paused: false };
            }
        }
        if advanced {
            self.maybe_commit();
        }
        self.send_appends(from);
    }

    /// The follower lacks `rejected_index`: back up using its hint, one term per round trip.
    fn handle_append_conflict(
        &mut self,
        from: NodeId,
        rejected_index: LogIndex,
        hint: ConflictHint,
    ) {
        let retry_from = match hint.conflict_term {
            Some(term) => self.retry_index_for_term(term, hint.first_index),
            None => hint.first_index,
        };
        let Some(progress) = self.progress_mut(from) else {
            return;
        };
        let stale = match progress.state {
            ProgressState::Probe { .. } => rejected_index != progress.next_index.prev(),
            ProgressState::Replicate => rejected_index >= progress.next_index,
            // Answers entries sent before the transfer began: the snapshot decides now.
            ProgressState::Snapshot => true,
        };
        if stale || rejected_index <= progress.match_index {
            return;
        }
        progress.become_probe(retry_from.min(rejected_index));
        self.send_appends(from);
    }

    /// Where to retry after a follower reported `term` at the conflict: right after our own last
    /// entry of that term if we have one, else at the first index the follower holds for it.
    fn retry_index_for_term(&self, term: Term, follower_first_index: LogIndex) -> LogIndex {
        match self.log.last_index_of_term(term) {
            Some(last) => last.next(),
            None => follower_first_index,
        }
    }

    /// Commits the highest index a quorum has persisted, if it is from this term (§5.4.2,
    /// contract 3). The leader counts its own log only as far as it is durable (contract 2).
    pub(super) fn maybe_commit(&mut self) {
        let RoleState::Leader(leader) = &self.role else {
            return;
        };
        let persisted = self.log.persisted();
        let quorum_index = self.membership.1.quorum_index(|id| {
            if id == self.id {
                persisted
            } else {
                leader
                    .progress
                    .get(&id)
                    .map(|p| p.match_index)
                    .unwrap_or_default()
            }
        });
        #[allow(unused_mut)]
        let mut committable = self.log.term_at(quorum_index) == Some(self.hard_state.term);
        #[cfg(any(test, feature = "testing"))]
        if self.bugs.commit_previous_terms {
            committable = true;
        }
        if committable {
            self.log.commit_to(quorum_index);
        }
    }
}
