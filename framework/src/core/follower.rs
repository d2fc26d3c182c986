//! The follower's side of replication (§5.3): the consistency check, conflict truncation,
//! durable acknowledgements (contract 2), and applying committed entries (contract 6).

use crate::error::ProposeError;
use crate::message::{
    AppendEntriesRequest, AppendEntriesResponse, AppendOutcome, ConflictHint, Response,
    SnapshotOutcome,
};
use crate::types::{Entry, LogId, LogIndex, NodeId, RpcId, Term};

use super::io::Action;
use super::node::{AckTo, Core, PendingAck, RoleState};

impl Core {
    pub(super) fn handle_append_entries(
        &mut self,
        from: NodeId,
        rpc: RpcId,
        req: AppendEntriesRequest,
    ) {
        let reply_to = AckTo {
            to: from,
            rpc,
            round: req.round,
        };
        if !self.accept_leader(req.term, req.leader_id) {
            self.reply_append(reply_to, AppendOutcome::StaleTerm);
            return;
        }
        let req = self.skip_compacted(req);
        let prev = req.prev_log_id;
        match self.log.term_at(prev.index) {
            None => {
                let hint = ConflictHint {
                    conflict_term: None,
                    first_index: self.log.last_index().next(),
                };
                self.reply_conflict(reply_to, prev.index, hint);
            }
            Some(term) if term != prev.term => {
                let first_index = self.log.first_index_of_term_run(term, prev.index);
                let hint = ConflictHint {
                    conflict_term: Some(term),
                    first_index,
                };
                self.reply_conflict(reply_to, prev.index, hint);
            }
            Some(_) => self.accept_entries(reply_to, req),
        }
    }

    /// A request starting below the log's base is cut to start at the base: everything up to the
    /// base is committed, and committed entries are the same in every current leader's log, so
    /// the leader's entries there are ours (the follower side of a purge race).
    fn skip_compacted(&self, mut req: AppendEntriesRequest) -> AppendEntriesRequest {
        let base = self.log.base();
        if req.prev_log_id.index >= base.index {
            return req;
        }
        let skip = ((base.index.0 - req.prev_log_id.index.0) as usize).min(req.entries.len());
        req.entries.drain(..skip);
        req.prev_log_id = base;
        req
    }

    /// How every request from a leader starts: one from an older term is stale (returns false);
    /// otherwise this node follows `leader` in `term` and restarts its election timer.
    pub(super) fn accept_leader(&mut self, term: Term, leader: NodeId) -> bool {
        if term < self.hard_state.term {
            return false;
        }
        if term > self.hard_state.term
            || !matches!(self.role, RoleState::Follower)
            || self.leader != Some(leader)
        {
            self.become_follower(term, Some(leader));
        }
        self.election_elapsed = 0;
        true
    }

    /// `prev_log_id` matched: store what is new, advance commit, and acknowledge once durable.
    fn accept_entries(&mut self, reply_to: AckTo, req: AppendEntriesRequest) {
        let matched = req.prev_log_id.index.plus(req.entries.len() as u64);
        self.append_new_entries(req.entries);
        self.leader_match = self.leader_match.max(matched);
        // Only what is known to match the leader may be committed here (§5.3).
        self.log.commit_to(req.leader_commit.min(matched));
        self.pending_acks.push_back(PendingAck {
            reply_to,
            match_index: matched,
            snapshot: None,
        });
        self.send_durable_acks();
    }

    /// Skips entries already held, truncates at the first conflict (never a committed entry:
    /// contract 5), and appends the rest.
    fn append_new_entries(&mut self, entries: Vec<Entry>) {
        let first_new = entries
            .iter()
            .position(|entry| self.log.term_at(entry.log_id.index) != Some(entry.log_id.term));
        let Some(first_new) = first_new else { return };
        let new_entries = entries[first_new..].to_vec();
        let from = new_entries[0].log_id.index;
        if from <= self.log.last_index() {
            self.log.truncate_from(from);
            self.push(Action::TruncateLog { from });
            self.reload_membership();
        }
        self.log.append(&new_entries);
        self.note_appended_membership(&new_entries);
        self.push(Action::AppendLog {
            entries: new_entries,
        });
    }

    pub(super) fn handle_log_persisted(&mut self, up_to: LogId) {
        if !self.log.mark_persisted(up_to) {
            return;
        }
        self.send_durable_acks();
        self.maybe_commit();
    }

    /// Sends, in arrival order, every acknowledgement whose entries are now durable.
    pub(super) fn send_durable_acks(&mut self) {
        #[allow(unused_mut)]
        let mut durable = self.log.persisted();
        #[cfg(any(test, feature = "testing"))]
        if self.bugs.ack_before_persist {
            durable = self.log.last_index();
        }
        while let Some(ack) = self.pending_acks.front().copied() {
            if ack.match_index > durable {
                break;
            }
            self.pending_acks.pop_front();
            let match_index = self.leader_match.min(durable).max(ack.match_index);
            match ack.snapshot {
                None => self.reply_append(ack.reply_to, AppendOutcome::Success { match_index }),
                Some(last_included) => {
                    let outcome = SnapshotOutcome::Installed { match_index };
                    self.reply_snapshot(ack.reply_to, last_included, outcome);
                }
            }
        }
    }

    /// The term moved on: answer every held acknowledgement now, with the new term, so the old
    /// leader learns it is deposed and every request still gets exactly one reply.
    pub(super) fn flush_stale_acks(&mut self) {
        while let Some(ack) = self.pending_acks.pop_front() {
            match ack.snapshot {
                None => self.reply_append(ack.reply_to, AppendOutcome::StaleTerm),
                Some(last_included) => {
                    self.reply_snapshot(ack.reply_to, last_included, SnapshotOutcome::StaleTerm)
                }
            }
        }
    }

    fn reply_conflict(&mut self, reply_to: AckTo, rejected_index: LogIndex, hint: ConflictHint) {
        self.reply_append(
            reply_to,
            AppendOutcome::Conflict {
                rejected_index,
                hint,
            },
        );
    }

    fn reply_append(&mut self, reply_to: AckTo, outcome: AppendOutcome) {
        let response = AppendEntriesResponse {
            term: self.hard_state.term,
            outcome,
            round: reply_to.round,
        };
        self.push(Action::Reply {
            to: reply_to.to,
            rpc: reply_to.rpc,
            response: Response::AppendEntries(response),
        });
    }

    /// Hands committed, durable entries to the state machine, with the clients waiting on them.
    /// A client whose index now holds another term's entry is told `Dropped`: a different entry
    /// is committed there, so its own never can be.
    pub(super) fn maybe_apply(&mut self) {
        let entries = self.log.take_applicable();
        let Some(last) = entries.last().map(|entry| entry.log_id.index) else {
            return;
        };
        let bytes: u64 = entries.iter().map(Entry::payload_bytes).sum();
        self.applied_bytes_since_snapshot = self.applied_bytes_since_snapshot.saturating_add(bytes);
        let waiting: Vec<_> = self.clients.take_up_to(last).collect();
        let mut clients = Vec::with_capacity(waiting.len());
        for ((index, term), request) in waiting {
            if self.log.term_at(index) == Some(term) {
                clients.push((index, request));
            } else {
                let error = ProposeError::Dropped {
                    leader: self.leader,
                };
                self.push(Action::Reject { request, error });
            }
        }
        self.push(Action::Apply { entries, clients });
    }
}
