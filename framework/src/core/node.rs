//! [`Core`]: one node's protocol state, and `step()`, which dispatches each input to its handler.
//! The handlers live beside this file: `election.rs`, `replication.rs` (leader) and `follower.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::config::Config;
use crate::error::RecoveryError;
use crate::membership::Membership;
use crate::message::{Request, Response};
use crate::types::{
    Entry, EntryPayload, LogId, LogIndex, NodeId, RequestId, RpcId, SnapshotMeta, Term,
};

use super::clients::WaitingClients;
use super::io::{Action, HardState, Input, Recovered};
use super::log::RaftLog;
use super::membership_change::{PendingChange, Transfer};
use super::progress::Progress;
use super::read_index::ReadState;
use super::rng::SeededRng;
use super::snapshot::IncomingSnapshot;

/// The role a node plays, as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Follows a leader, or waits for one.
    Follower,
    /// Asking for pre-votes before starting an election (thesis §9.6).
    PreCandidate,
    /// Campaigning for votes in its own term (§5.2).
    Candidate,
    /// Leads its term.
    Leader,
}

/// Votes collected in a (pre-)election.
#[derive(Debug, Clone, Default)]
pub(super) struct Votes {
    pub granted: BTreeSet<NodeId>,
    pub rejected: BTreeSet<NodeId>,
}

/// A leader's volatile state (§5, Figure 2).
#[derive(Debug, Clone, Default)]
pub(super) struct LeaderState {
    /// Every other member's progress. BTreeMap: messages go out in node order (determinism).
    pub progress: BTreeMap<NodeId, Progress>,
    /// Ticks since the last heartbeat round.
    pub heartbeat_elapsed: u64,
    /// Quorum rounds and the reads waiting on them (ReadIndex, lease).
    pub reads: ReadState,
    /// The membership change under way, if any (one at a time).
    pub change: Option<PendingChange>,
    /// The leadership transfer under way, if any.
    pub transfer: Option<Box<Transfer>>,
    /// A change asked of this leader before it was ready (its term's first entry or an
    /// inherited configuration not yet committed): started once it is.
    pub queued_change: Option<Box<(RequestId, crate::membership::MembershipChange)>>,
}

/// Role-specific state.
#[derive(Debug, Clone)]
pub(super) enum RoleState {
    Follower,
    PreCandidate(Votes),
    Candidate(Votes),
    Leader(LeaderState),
}

/// Where a follower's answer to one AppendEntries goes.
#[derive(Debug, Clone, Copy)]
pub(super) struct AckTo {
    pub to: NodeId,
    pub rpc: RpcId,
    /// The request's quorum round, echoed back.
    pub round: u64,
}

/// A follower's acknowledgement waiting for its entries to become durable (contract 2).
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingAck {
    pub reply_to: AckTo,
    /// Sent once `persisted` reaches this index.
    pub match_index: LogIndex,
    /// `Some(last_included)`: the answer to an InstallSnapshot request for that snapshot, not to
    /// an AppendEntries.
    pub snapshot: Option<LogId>,
}

/// One node's Raft protocol state machine: deterministic and free of IO. Feed it [`Input`]s with
/// [`Core::step`], execute the [`Action`]s it returns.
#[derive(Debug, Clone)]
pub struct Core {
    pub(super) id: NodeId,
    pub(super) config: Config,
    /// Term and vote. Invariant: the term never decreases; one vote per term (§5.2).
    pub(super) hard_state: HardState,
    /// `hard_state` changed and has not been emitted as `SaveHardState` yet.
    pub(super) hard_state_dirty: bool,
    pub(super) log: RaftLog,
    /// The configuration in effect: the latest one in the log (contract 7), and its index.
    pub(super) membership: (LogIndex, Membership),
    /// Counts the changes of `membership` (through `set_membership`), so a watcher can tell it
    /// changed without comparing configurations.
    membership_version: u64,
    pub(super) role: RoleState,
    /// The leader of the current term, if known.
    pub(super) leader: Option<NodeId>,
    /// Ticks since this node last heard from a leader or granted a vote (followers and
    /// candidates), or since the last CheckQuorum round (leaders).
    pub(super) election_elapsed: u64,
    /// This round's randomized election timeout, in `[min, max)` ticks.
    pub(super) election_timeout: u64,
    /// Ticks since the node started: the leader's clock for spotting stalled messages.
    pub(super) now_tick: u64,
    pub(super) rng: SeededRng,
    /// Follower: the highest index known to match the current leader's log in this term.
    pub(super) leader_match: LogIndex,
    /// Follower: acknowledgements waiting for durability, in arrival order.
    pub(super) pending_acks: VecDeque<PendingAck>,
    /// Clients waiting for entries this node appended as leader, by the entry's (index, term).
    /// A client is answered when its index is applied: with the result if the entry there has its
    /// term, `Dropped` if another entry was committed there. NB: not on truncation — an entry
    /// removed here may still be on other nodes and commit.
    pub(super) clients: WaitingClients,
    /// Quorum rounds begun because reads were waiting (not counting heartbeats): with many
    /// concurrent readers, far fewer than reads.
    pub(super) read_rounds: u64,
    /// The latest snapshot this node holds durably or is installing (§7): built from its own
    /// state machine, received from a leader, or recovered. Invariant: covers `log.base()`.
    pub(super) snapshot: Option<SnapshotMeta>,
    /// A received snapshot handed to storage (`Action::InstallSnapshot`) and not yet reported
    /// installed: it is not sent on to other nodes before it is durable.
    pub(super) installing: Option<LogId>,
    /// A `BuildSnapshot` was issued and its `SnapshotBuilt` has not come back: one at a time.
    pub(super) building_snapshot: bool,
    /// Payload bytes handed to the state machine after the last entry of the latest snapshot
    /// (or of the one being built): what `snapshot_threshold_bytes` is compared with.
    pub(super) applied_bytes_since_snapshot: u64,
    /// Follower: the snapshot being received from the leader, chunk by chunk.
    pub(super) receiving: Option<IncomingSnapshot>,
    /// Actions produced by the current `step`.
    pub(super) actions: Vec<Action>,
    /// Deliberate bugs a test switched on (none by default).
    #[cfg(any(test, feature = "testing"))]
    pub(super) bugs: super::InjectedBugs,
}

impl Core {
    /// The entries a brand-new cluster starts from: its first membership at `0@1`. Every initial
    /// member persists the same entry before its first `Core::new`, so it is committed everywhere
    /// from the start; nodes added later receive it by replication.
    pub fn bootstrap_log(voters: impl IntoIterator<Item = NodeId>) -> Vec<crate::types::Entry> {
        vec![crate::types::Entry {
            log_id: LogId::new(Term(0), LogIndex(1)),
            payload: EntryPayload::Membership(Box::new(Membership::new(voters))),
        }]
    }

    /// A node restarting from what its storage holds, with a seed for its election timeouts.
    /// Checks the recovered state, which comes from disk, instead of trusting it.
    pub fn new(
        id: NodeId,
        config: Config,
        recovered: Recovered,
        seed: u64,
    ) -> Result<Core, RecoveryError> {
        let config = config.validate()?;
        let (base, entries) = validate_recovered(&recovered)?;
        // Entries of term 0 are the bootstrap configuration, identical on every initial member.
        let bootstrap = entries
            .iter()
            .take_while(|e| e.log_id.term == Term(0))
            .count();
        let commit_index = recovered
            .last_applied
            .max(base.index.plus(bootstrap as u64));
        let log = RaftLog::restore(base, entries, commit_index, recovered.last_applied);
        let mut core = Core {
            id,
            config,
            hard_state: recovered.hard_state,
            hard_state_dirty: false,
            log,
            membership: (LogIndex(0), Membership::default()),
            membership_version: 0,
            role: RoleState::Follower,
            leader: None,
            election_elapsed: 0,
            election_timeout: 0,
            now_tick: 0,
            rng: SeededRng::for_node(seed, id.0),
            leader_match: LogIndex(0),
            pending_acks: VecDeque::new(),
            clients: WaitingClients::default(),
            read_rounds: 0,
            snapshot: recovered.snapshot,
            installing: None,
            building_snapshot: false,
            applied_bytes_since_snapshot: 0,
            receiving: None,
            actions: Vec::new(),
            #[cfg(any(test, feature = "testing"))]
            bugs: super::InjectedBugs::default(),
        };
        core.reload_membership();
        core.reset_election_timer();
        core.applied_bytes_since_snapshot = core.applied_bytes_after_snapshot();
        Ok(core)
    }

    /// Feeds one input to the node and returns the actions to execute, in order.
    pub fn step(&mut self, input: Input) -> Vec<Action> {
        match input {
            Input::Tick => self.handle_tick(),
            Input::Request { from, rpc, request } => match request {
                Request::AppendEntries(req) => self.handle_append_entries(from, rpc, req),
                Request::RequestVote(req) => self.handle_vote_request(from, rpc, req),
                Request::InstallSnapshot(req) => self.handle_install_snapshot(from, rpc, req),
                Request::TimeoutNow(req) => self.handle_timeout_now(from, rpc, req),
            },
            Input::Response { from, response } => match response {
                Response::AppendEntries(resp) => self.handle_append_entries_response(from, resp),
                Response::RequestVote(resp) => self.handle_vote_response(from, resp),
                Response::InstallSnapshot(resp) => {
                    self.handle_install_snapshot_response(from, resp)
                }
                Response::TimeoutNow(resp) => {
                    if resp.term > self.hard_state.term {
                        self.become_follower(resp.term, None);
                    }
                }
            },
            Input::Propose(proposals) => self.handle_propose(proposals),
            Input::LogPersisted { up_to } => self.handle_log_persisted(up_to),
            Input::Applied { up_to } => self.log.mark_applied(up_to),
            Input::Read { request, mode } => self.handle_read(request, mode),
            Input::SnapshotBuilt { meta } => self.handle_snapshot_built(meta),
            Input::SnapshotInstalled { last_included } => {
                self.handle_snapshot_installed(last_included)
            }
            Input::ChangeMembership { request, change } => {
                self.handle_change_membership(request, change)
            }
            Input::TransferLeader { request, to } => self.handle_transfer_leader(request, to),
        }
        self.maybe_advance_membership();
        self.maybe_send_timeout_now();
        // Whatever became committed and durable during this step goes to the state machine.
        self.maybe_apply();
        self.maybe_build_snapshot();
        self.maybe_serve_reads();
        self.flush_hard_state();
        std::mem::take(&mut self.actions)
    }

    /// Switches deliberate bugs on, for a test proving the checkers catch them.
    #[cfg(any(test, feature = "testing"))]
    pub fn inject_bugs(&mut self, bugs: super::InjectedBugs) {
        self.bugs = bugs;
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The role this node plays now.
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Follower => Role::Follower,
            RoleState::PreCandidate(_) => Role::PreCandidate,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.hard_state.term
    }

    /// Term and vote, as they will be (or have been) persisted.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The id of the last log entry.
    pub fn last_log_id(&self) -> LogId {
        self.log.last_log_id()
    }

    /// The highest committed index.
    pub fn commit_index(&self) -> LogIndex {
        self.log.commit_index()
    }

    /// The highest index the state machine reported applied.
    pub fn last_applied(&self) -> LogIndex {
        self.log.last_applied()
    }

    /// The highest index known durable.
    pub fn persisted_index(&self) -> LogIndex {
        self.log.persisted()
    }

    /// The configuration in effect.
    pub fn membership(&self) -> &Membership {
        &self.membership.1
    }

    /// A number that changes whenever the configuration in effect may have: equal versions mean
    /// the same configuration.
    pub fn membership_version(&self) -> u64 {
        self.membership_version
    }

    /// Puts a configuration (and its index) in effect.
    pub(super) fn set_membership(&mut self, membership: (LogIndex, Membership)) {
        self.membership = membership;
        self.membership_version += 1;
    }

    /// Quorum rounds begun for waiting reads since the node started (heartbeats not counted).
    pub fn read_rounds(&self) -> u64 {
        self.read_rounds
    }

    /// Whether this node is leader and its lease holds (lease reads are served at once).
    pub fn has_leader_lease(&self) -> bool {
        self.has_lease()
    }

    /// The in-memory log: the entries after [`Core::log_base`].
    pub fn entries(&self) -> &[crate::types::Entry] {
        self.log.entries()
    }

    /// The last entry compacted out of the log (`0@0` if none): `entries()` start after it.
    pub fn log_base(&self) -> LogId {
        self.log.base()
    }

    /// On a leader, each other member's match index (what it is known to hold); `None` on other
    /// roles.
    pub fn replication(&self) -> Option<BTreeMap<NodeId, LogIndex>> {
        match &self.role {
            RoleState::Leader(leader) => Some(
                leader
                    .progress
                    .iter()
                    .map(|(id, progress)| (*id, progress.match_index))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The latest snapshot this node holds (or is installing), if any.
    pub fn snapshot(&self) -> Option<&SnapshotMeta> {
        self.snapshot.as_ref()
    }

    /// Queues an action, making sure a changed term or vote is saved before it (contract 1).
    pub(super) fn push(&mut self, action: Action) {
        self.flush_hard_state();
        self.actions.push(action);
    }

    fn flush_hard_state(&mut self) {
        if self.hard_state_dirty {
            self.hard_state_dirty = false;
            self.actions.push(Action::SaveHardState(self.hard_state));
        }
    }

    /// Moves to `term` (which must not be older), forgetting the vote if the term is new.
    pub(super) fn update_term(&mut self, term: Term) {
        assert!(
            term >= self.hard_state.term,
            "term {term} older than {}",
            self.hard_state.term
        );
        if term > self.hard_state.term {
            self.hard_state = HardState {
                term,
                voted_for: None,
            };
            self.hard_state_dirty = true;
            self.leader = None;
            self.leader_match = LogIndex(0);
            self.flush_stale_acks();
        }
    }

    /// Becomes a follower in `term` (no older than the current one) under `leader`, if known.
    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        self.update_term(term);
        if self.leader != leader {
            self.leader_match = LogIndex(0);
        }
        let previous = std::mem::replace(&mut self.role, RoleState::Follower);
        self.leader = leader;
        self.reset_election_timer();
        if let RoleState::Leader(state) = previous {
            self.reject_reads(state.reads);
            if let Some(transfer) = state.transfer {
                self.end_transfer_on_step_down(*transfer);
            }
            let error = crate::error::ChangeError::NotLeader { leader };
            let waiting = state.change.map(|change| change.request);
            let queued = state.queued_change.map(|queued| queued.0);
            for request in waiting.into_iter().chain(queued) {
                self.push(Action::ChangeDone {
                    request,
                    result: Err(error.clone()),
                });
            }
        }
    }

    /// Restarts the election timer with a fresh randomized timeout (§5.2).
    pub(super) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let (min, max) = (
            self.config.election_timeout_min_ticks,
            self.config.election_timeout_max_ticks,
        );
        self.election_timeout = self.rng.in_range(min, max);
    }

    /// Recomputes the configuration in effect from the log (after a restart or truncation): the
    /// latest in the log, else the snapshot's.
    pub(super) fn reload_membership(&mut self) {
        let latest = self
            .log
            .entries()
            .iter()
            .rev()
            .find_map(|entry| match &entry.payload {
                EntryPayload::Membership(membership) => {
                    Some((entry.log_id.index, Membership::clone(membership)))
                }
                _ => None,
            });
        let from_snapshot = || {
            self.snapshot
                .as_ref()
                .map(|snapshot| (snapshot.last_included.index, snapshot.membership.clone()))
        };
        self.set_membership(latest.or_else(from_snapshot).unwrap_or_default());
    }

    /// Adopts any configuration among freshly appended entries (contract 7).
    pub(super) fn note_appended_membership(&mut self, entries: &[crate::types::Entry]) {
        for entry in entries {
            if let EntryPayload::Membership(membership) = &entry.payload {
                self.set_membership((entry.log_id.index, Membership::clone(membership)));
                self.sync_progress();
            }
        }
    }

    fn handle_tick(&mut self) {
        self.now_tick += 1;
        if matches!(self.role, RoleState::Leader(_)) {
            self.tick_leader();
        } else {
            self.tick_election();
        }
    }
}

/// Checks a recovered log is contiguous with terms that never decrease and never exceed the
/// recovered term, that it starts at 1 (or, after compaction, no later than right after the
/// snapshot), and that the applied index lies between the snapshot and the log's end. Returns the
/// log's base and the entries after it: entries the snapshot covers are dropped, and so is the
/// whole log if it disagrees with the snapshot at its last included index (an install whose log
/// reset did not reach the disk: those entries were never committed).
fn validate_recovered(recovered: &Recovered) -> Result<(LogId, Vec<Entry>), RecoveryError> {
    let base = recovered
        .snapshot
        .as_ref()
        .map(|snapshot| snapshot.last_included)
        .unwrap_or_default();
    let mut previous = LogId::default();
    let first = recovered
        .log
        .first()
        .map_or(LogIndex(1), |entry| entry.log_id.index);
    if first.0 == 0 || first > base.index.next() {
        let at = recovered.log.first().map(|e| e.log_id).unwrap_or_default();
        return Err(RecoveryError::BrokenLog { at, previous: base });
    }
    for (position, entry) in recovered.log.iter().enumerate() {
        let expected = first.plus(position as u64);
        if entry.log_id.index != expected || entry.log_id.term < previous.term {
            return Err(RecoveryError::BrokenLog {
                at: entry.log_id,
                previous,
            });
        }
        if entry.log_id.term > recovered.hard_state.term {
            return Err(RecoveryError::TermBehindLog {
                term: recovered.hard_state.term,
                entry: entry.log_id,
            });
        }
        previous = entry.log_id;
    }
    let agrees_at_base = base.index.0 == 0
        || first == base.index.next()
        || recovered.log.iter().any(|entry| entry.log_id == base);
    let entries: Vec<Entry> = if agrees_at_base {
        recovered
            .log
            .iter()
            .filter(|entry| entry.log_id.index > base.index)
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    if let Some(broken) = entries
        .first()
        .filter(|entry| entry.log_id.term < base.term)
    {
        return Err(RecoveryError::BrokenLog {
            at: broken.log_id,
            previous: base,
        });
    }
    let last = base.index.plus(entries.len() as u64);
    if recovered.last_applied < base.index {
        return Err(RecoveryError::AppliedBelowSnapshot {
            applied: recovered.last_applied,
            snapshot: base,
        });
    }
    if recovered.last_applied > last {
        return Err(RecoveryError::AppliedBeyondLog {
            applied: recovered.last_applied,
            last,
        });
    }
    Ok((base, entries))
}
