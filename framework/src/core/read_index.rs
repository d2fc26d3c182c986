//! Reads without a log write (thesis §6.4): ReadIndex, and the leader lease built on the same
//! quorum rounds.
//!
//! A leader numbers its heartbeat broadcasts: each starts a new **round**, and every
//! AppendEntries it sends carries the latest round, which the follower echoes. When a quorum (the
//! leader included) has echoed round `r`, no other leader can have been elected before round `r`
//! began, so the leader's commit index of that moment still covers every write committed before
//! it: the round is **confirmed**.
//!
//! ```text
//!  Read ──► leader, own-term entry committed? ── no ──► wait for the first commit of the term
//!             │ yes
//!             ├─ Lease mode, lease holds ──────────────────────────► ReadReady(commit_index)
//!             └─ read_index = commit_index; needs round r = latest + 1
//!                  (begin it now unless a round is already in flight; many reads share it)
//!                  ... a quorum echoes a round >= r ──────────────────► ReadReady(read_index)
//!  stepping down ─────────────────────────────────────────────────────► RejectRead(NotLeader)
//! ```
//!
//! The driver serves a `ReadReady` read once the state machine has applied `read_index`.
//!
//! **Lease**: followers ignore vote requests for `election_timeout_min_ticks` after hearing from
//! their leader (CheckQuorum). So once a round that began at tick `t` is confirmed, no new leader
//! can exist before `t + election_timeout_min_ticks` by the followers' clocks; the leader serves
//! lease reads until `t + election_timeout_min_ticks - lease_drift_margin_ticks` by its own. That
//! is safe only while the nodes' tick rates differ by less than the margin, and while no voter
//! that acknowledged the round restarts within the lease (a restarted node has forgotten its
//! promise): assumptions about clocks and crashes, and the reason ReadIndex is the default.

use std::collections::{BTreeMap, VecDeque};

use crate::error::ProposeError;
use crate::types::{LogIndex, NodeId, RequestId};

use super::io::{Action, ReadMode};
use super::node::{Core, RoleState};

/// A read that has its read index and waits for a quorum round to confirm it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WaitingRead {
    request: RequestId,
    read_index: LogIndex,
    /// The round that must be confirmed: the first one begun after the read arrived.
    round: u64,
}

/// A leader's bookkeeping for reads and quorum rounds. Starts afresh with each term of office.
#[derive(Debug, Clone, Default)]
pub(super) struct ReadState {
    /// The latest round this leader began; every AppendEntries it sends carries it.
    pub round: u64,
    /// The tick each round after `confirmed` began at.
    started_at: BTreeMap<u64, u64>,
    /// The highest round a quorum has echoed. Invariant: `confirmed <= round`.
    confirmed: u64,
    /// The tick at which round `confirmed` began: the lease runs from here.
    confirmed_started_at: Option<u64>,
    /// The highest round each follower has echoed in this term.
    echoed: BTreeMap<NodeId, u64>,
    /// Reads that arrived before the leader committed an entry of its own term: its commit
    /// index could still lag what an earlier leader committed (§8).
    before_first_commit: Vec<(RequestId, ReadMode)>,
    /// Reads waiting for their round, in arrival order (so their rounds never decrease).
    waiting: VecDeque<WaitingRead>,
}

impl Core {
    /// A read at `mode` asks when the state machine may serve it.
    pub(super) fn handle_read(&mut self, request: RequestId, mode: ReadMode) {
        if !matches!(self.role, RoleState::Leader(_)) {
            let error = ProposeError::NotLeader {
                leader: self.leader,
            };
            self.push(Action::RejectRead { request, error });
            return;
        }
        if !self.has_committed_in_term() {
            if let Some(reads) = self.reads_mut() {
                reads.before_first_commit.push((request, mode));
            }
            return;
        }
        self.admit_read(request, mode);
    }

    /// Whether this leader's commit index covers an entry of its own term (its blank entry).
    fn has_committed_in_term(&self) -> bool {
        self.log.term_at(self.log.commit_index()) == Some(self.hard_state.term)
    }

    /// Serves a lease read at once, or queues the read for the next round.
    fn admit_read(&mut self, request: RequestId, mode: ReadMode) {
        let read_index = self.log.commit_index();
        if (mode == ReadMode::Lease && self.has_lease()) || self.serves_reads_unconfirmed() {
            self.push(Action::ReadReady {
                request,
                read_index,
            });
            return;
        }
        if let Some(reads) = self.reads_mut() {
            let round = reads.round + 1;
            reads.waiting.push_back(WaitingRead {
                request,
                read_index,
                round,
            });
        }
    }

    #[cfg(any(test, feature = "testing"))]
    fn serves_reads_unconfirmed(&self) -> bool {
        self.bugs.serve_reads_unconfirmed
    }

    #[cfg(not(any(test, feature = "testing")))]
    fn serves_reads_unconfirmed(&self) -> bool {
        false
    }

    /// Whether the leader lease holds now (see the module docs).
    pub(super) fn has_lease(&self) -> bool {
        let RoleState::Leader(leader) = &self.role else {
            return false;
        };
        let Some(started) = leader.reads.confirmed_started_at else {
            return false;
        };
        let length = self
            .config
            .election_timeout_min_ticks
            .saturating_sub(self.config.lease_drift_margin_ticks);
        self.config.check_quorum && self.now_tick < started + length
    }

    fn reads_mut(&mut self) -> Option<&mut ReadState> {
        match &mut self.role {
            RoleState::Leader(leader) => Some(&mut leader.reads),
            _ => None,
        }
    }

    /// Begins a quorum round: called for every heartbeat broadcast, which carries it.
    pub(super) fn begin_round(&mut self) {
        let now_tick = self.now_tick;
        if let Some(reads) = self.reads_mut() {
            reads.round += 1;
            let round = reads.round;
            reads.started_at.insert(round, now_tick);
        }
        // A single voter confirms its own round.
        self.update_confirmed_round();
    }

    /// A follower echoed `round` in a response of this term.
    pub(super) fn note_round_echo(&mut self, from: NodeId, round: u64) {
        let Some(reads) = self.reads_mut() else {
            return;
        };
        let echoed = reads.echoed.entry(from).or_default();
        if round <= *echoed || round > reads.round {
            return;
        }
        *echoed = round;
        self.update_confirmed_round();
    }

    /// Recomputes the highest round a quorum has echoed.
    fn update_confirmed_round(&mut self) {
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        let reads = &mut leader.reads;
        let quorum = self.membership.1.quorum_index(|id| {
            if id == self.id {
                LogIndex(reads.round)
            } else {
                LogIndex(reads.echoed.get(&id).copied().unwrap_or_default())
            }
        });
        if quorum.0 <= reads.confirmed {
            return;
        }
        reads.confirmed = quorum.0;
        reads.confirmed_started_at = reads.started_at.get(&quorum.0).copied();
        let still_open = reads.started_at.split_off(&(quorum.0 + 1));
        reads.started_at = still_open;
    }

    /// Answers every read whose round is confirmed, moves reads on once the term's first entry
    /// commits, and begins a round for waiting reads when none is in flight. Runs after every
    /// step.
    pub(super) fn maybe_serve_reads(&mut self) {
        if !matches!(self.role, RoleState::Leader(_)) {
            return;
        }
        if self.has_committed_in_term() {
            let early = self
                .reads_mut()
                .map(|reads| std::mem::take(&mut reads.before_first_commit))
                .unwrap_or_default();
            for (request, mode) in early {
                self.admit_read(request, mode);
            }
        }
        let needs_round = self.reads_mut().is_some_and(|reads| {
            reads.round == reads.confirmed && reads.waiting.iter().any(|r| r.round > reads.round)
        });
        if needs_round {
            self.read_rounds += 1;
            self.send_heartbeats();
        }
        self.release_confirmed_reads();
    }

    fn release_confirmed_reads(&mut self) {
        let mut ready = Vec::new();
        if let Some(reads) = self.reads_mut() {
            while let Some(read) = reads.waiting.front().copied() {
                if read.round > reads.confirmed {
                    break;
                }
                reads.waiting.pop_front();
                ready.push(read);
            }
        }
        for read in ready {
            self.push(Action::ReadReady {
                request: read.request,
                read_index: read.read_index,
            });
        }
    }

    /// Stepping down: no waiting read can be confirmed by this node any more.
    pub(super) fn reject_reads(&mut self, reads: ReadState) {
        let error = ProposeError::NotLeader {
            leader: self.leader,
        };
        let requests = reads
            .before_first_commit
            .into_iter()
            .map(|(request, _)| request)
            .chain(reads.waiting.into_iter().map(|read| read.request));
        for request in requests {
            self.push(Action::RejectRead { request, error });
        }
    }
}
