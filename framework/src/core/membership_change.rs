//! Membership changes (§6, thesis chapter 4) and leadership transfer (thesis §3.10), on the
//! leader.
//!
//! ## Changes: one at a time, through joint consensus
//! A configuration lives in the log and takes effect when appended (contract 7), on every node:
//!
//! ```text
//!  SetVoters(new) ──► append C(old,new) ──commit──► append C(new) ──commit──► ChangeDone(Ok)
//!                     (decisions need a majority          (the leader steps down here if it is
//!                      of old AND of new)                  not in C(new))
//!  AddLearner(id) ──► append C(voters, learners+id) ──commit──► ChangeDone(Ok)
//! ```
//!
//! - Only one change is in flight: a second is refused with `InProgress` while one runs, or a
//!   transfer does. A change asked of a leader whose configuration is not known committed yet
//!   (a new leader before its term's first commit, or one finishing an inherited joint change)
//!   is queued and starts once it is: a change always starts from a committed configuration.
//! - A leader that inherits a joint configuration finishes it: once `C(old,new)` is committed
//!   it appends `C(new)` (so an election in the middle of a change never strands it).
//! - A change to what is already in effect is answered `Ok` at once: asking again after a
//!   `NotLeader` (the change's outcome unknown) is safe.
//! - The leader replicates to every member of the configuration in effect, learners included
//!   (they never count toward a quorum or vote). A removed node no longer hears from the leader;
//!   it does not disrupt the cluster afterwards: once it knows `C(new)` committed it never
//!   campaigns; if it lacks `C(new)`, no up-to-date voter grants it a (pre-)vote; and if it
//!   holds `C(new)` uncommitted, it may campaign (it could be the only one holding the newest
//!   log: see `election.rs`), but PreVote and CheckQuorum keep it from unseating a live leader.
//!
//! ## Leadership transfer
//! `TransferLeader(to)`: the leader pauses new proposals, brings `to` up to date, then sends
//! it `TimeoutNow`; `to` campaigns at once (no PreVote), and voters grant it even though they
//! heard from the leader moments ago (the request says it is a transfer). The old leader steps
//! down when it sees the higher term and answers `Ok`; its paused proposals are refused with
//! `NotLeader` for the client to retry on the new leader. If the transfer does not complete
//! within `election_timeout_max_ticks`, the leader answers `Timeout` and proposes what it paused.

use crate::error::{ChangeError, ProposeError};
use crate::membership::{Membership, MembershipChange};
use crate::message::{Request, Response, TimeoutNowRequest, TimeoutNowResponse};
use crate::types::{EntryPayload, LogIndex, NodeId, RequestId, RpcId};

use super::io::{Action, Proposal};
use super::node::{Core, RoleState};
use super::progress::Progress;

/// A membership change the leader is carrying out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PendingChange {
    pub request: RequestId,
    /// The index of the last configuration appended for it.
    pub index: LogIndex,
}

/// Whether a leader can start a membership change.
enum Readiness {
    Ready,
    /// Once its own term's first entry (and any configuration before it) commits.
    NotYet,
    No(ChangeError),
}

/// A leadership transfer under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Transfer {
    pub to: NodeId,
    pub request: RequestId,
    /// The leader tick after which the transfer is abandoned.
    pub deadline_tick: u64,
    /// TimeoutNow went out.
    pub sent: bool,
    /// Proposals that arrived during the transfer, in order.
    pub paused: Vec<Proposal>,
}

impl Core {
    pub(super) fn handle_change_membership(
        &mut self,
        request: RequestId,
        change: MembershipChange,
    ) {
        match self.readiness() {
            Readiness::Ready => {}
            Readiness::NotYet => {
                // A new leader (or one finishing an inherited change): start it once ready.
                if let RoleState::Leader(leader) = &mut self.role {
                    leader.queued_change = Some(Box::new((request, change)));
                }
                return;
            }
            Readiness::No(error) => return self.change_done(request, Err(error)),
        }
        let current = self.membership.1.clone();
        let next = match next_membership(&current, change) {
            Ok(Some(next)) => next,
            Ok(None) => return self.change_done(request, Ok(current)),
            Err(error) => return self.change_done(request, Err(error)),
        };
        self.append_as_leader(vec![EntryPayload::Membership(Box::new(next))]);
        let index = self.log.last_index();
        if let RoleState::Leader(leader) = &mut self.role {
            leader.change = Some(PendingChange { request, index });
        }
        self.broadcast_append();
    }

    /// Whether the leader may start a change now, soon (once its own term's entry and any
    /// inherited configuration commit), or not at all.
    fn readiness(&self) -> Readiness {
        let RoleState::Leader(leader) = &self.role else {
            return Readiness::No(ChangeError::NotLeader {
                leader: self.leader,
            });
        };
        if leader.change.is_some() || leader.transfer.is_some() || leader.queued_change.is_some() {
            return Readiness::No(ChangeError::InProgress);
        }
        let commit = self.log.commit_index();
        let settled = !self.membership.1.is_joint()
            && self.membership.0 <= commit
            && self.log.term_at(commit) == Some(self.hard_state.term);
        if settled {
            Readiness::Ready
        } else {
            Readiness::NotYet
        }
    }

    /// Whether the leader may start a leadership transfer now.
    fn may_transfer(&self) -> Result<(), ChangeError> {
        match self.readiness() {
            Readiness::Ready => Ok(()),
            Readiness::NotYet => Err(ChangeError::InProgress),
            Readiness::No(error) => Err(error),
        }
    }

    /// Starts a change that waited for the leader to be ready.
    fn start_queued_change(&mut self) {
        let queued = match &mut self.role {
            RoleState::Leader(leader) => leader.queued_change.take(),
            _ => None,
        };
        if let Some(queued) = queued {
            match self.readiness() {
                Readiness::NotYet => {
                    if let RoleState::Leader(leader) = &mut self.role {
                        leader.queued_change = Some(queued);
                    }
                }
                _ => {
                    let (request, change) = *queued;
                    self.handle_change_membership(request, change);
                }
            }
        }
    }

    fn change_done(&mut self, request: RequestId, result: Result<Membership, ChangeError>) {
        self.push(Action::ChangeDone { request, result });
    }

    /// After every step, on a leader: a committed joint configuration moves on to its final
    /// one; a committed final one answers the change, and a leader outside it steps down.
    pub(super) fn maybe_advance_membership(&mut self) {
        let RoleState::Leader(leader) = &self.role else {
            return;
        };
        // Every step of a leader comes here: return early, without cloning, when there is
        // nothing to do (the common case).
        let index = self.membership.0;
        let nothing_to_do = !self.membership.1.is_joint()
            && leader.change.is_none()
            && leader.queued_change.is_none()
            && self.membership.1.is_voter(self.id);
        if index > self.log.commit_index() || nothing_to_do {
            return;
        }
        self.start_queued_change();
        if self.membership.0 != index {
            return;
        }
        let membership = self.membership.1.clone();
        if membership.is_joint() {
            self.append_as_leader(vec![EntryPayload::Membership(Box::new(
                membership.final_config(),
            ))]);
            let index = self.log.last_index();
            if let RoleState::Leader(leader) = &mut self.role {
                if let Some(change) = leader.change.as_mut() {
                    change.index = index;
                }
            }
            self.broadcast_append();
            return;
        }
        let done = match &mut self.role {
            RoleState::Leader(leader) => leader.change.take_if(|change| change.index <= index),
            _ => None,
        };
        if let Some(change) = done {
            self.change_done(change.request, Ok(membership.clone()));
        }
        if !membership.is_voter(self.id) {
            // Removed: it led until its removal committed; now it leaves the cluster alone.
            self.become_follower(self.hard_state.term, None);
        }
    }

    /// On a leader whose configuration changed: progress for every member but itself.
    pub(super) fn sync_progress(&mut self) {
        let members = self.membership.1.nodes();
        let next_index = self.log.last_index().next();
        let id = self.id;
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        leader.progress.retain(|peer, _| members.contains(peer));
        for peer in members.into_iter().filter(|peer| *peer != id) {
            leader
                .progress
                .entry(peer)
                .or_insert_with(|| Progress::new(next_index));
        }
    }

    // ------------------------------------------------------------ leadership transfer

    pub(super) fn handle_transfer_leader(&mut self, request: RequestId, to: NodeId) {
        if to == self.id && matches!(self.role, RoleState::Leader(_)) {
            let membership = self.membership.1.clone();
            return self.change_done(request, Ok(membership));
        }
        if let Err(error) = self.may_transfer() {
            return self.change_done(request, Err(error));
        }
        if !self.membership.1.is_voter(to) {
            let error = ChangeError::Invalid(format!("node {to} is not a voter"));
            return self.change_done(request, Err(error));
        }
        let deadline_tick = self.now_tick + self.config.election_timeout_max_ticks;
        if let RoleState::Leader(leader) = &mut self.role {
            leader.transfer = Some(Box::new(Transfer {
                to,
                request,
                deadline_tick,
                sent: false,
                paused: Vec::new(),
            }));
        }
        self.send_appends(to);
        self.maybe_send_timeout_now();
    }

    /// Whether a transfer pauses proposals now; if so, `proposals` wait for its outcome.
    pub(super) fn pause_proposals(&mut self, proposals: &mut Vec<Proposal>) -> bool {
        match &mut self.role {
            RoleState::Leader(leader) => match leader.transfer.as_mut() {
                Some(transfer) => {
                    transfer.paused.append(proposals);
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// Once the target holds the leader's whole log, tells it to campaign.
    pub(super) fn maybe_send_timeout_now(&mut self) {
        let last_index = self.log.last_index();
        let term = self.hard_state.term;
        let leader_id = self.id;
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        let Some(transfer) = leader.transfer.as_mut() else {
            return;
        };
        let caught_up = leader
            .progress
            .get(&transfer.to)
            .is_some_and(|progress| progress.match_index >= last_index);
        if transfer.sent || !caught_up {
            return;
        }
        transfer.sent = true;
        let to = transfer.to;
        self.push(Action::Send {
            to,
            request: Request::TimeoutNow(TimeoutNowRequest { term, leader_id }),
        });
    }

    /// On a leader's tick: a transfer past its deadline is abandoned, paused proposals go out.
    pub(super) fn expire_transfer(&mut self) {
        let now_tick = self.now_tick;
        let expired = match &mut self.role {
            RoleState::Leader(leader) => leader
                .transfer
                .take_if(|transfer| now_tick >= transfer.deadline_tick),
            _ => None,
        };
        if let Some(transfer) = expired.map(|transfer| *transfer) {
            self.change_done(transfer.request, Err(ChangeError::Timeout));
            if !transfer.paused.is_empty() {
                self.handle_propose(transfer.paused);
            }
        }
    }

    /// The leader is stepping down with this transfer under way: leadership left it, as asked
    /// (the new leader is whoever won); paused proposals are refused for clients to retry.
    pub(super) fn end_transfer_on_step_down(&mut self, transfer: Transfer) {
        let membership = self.membership.1.clone();
        self.change_done(transfer.request, Ok(membership));
        let error = ProposeError::NotLeader { leader: None };
        for proposal in transfer.paused {
            self.push(Action::Reject {
                request: proposal.request,
                error,
            });
        }
    }

    /// TimeoutNow from the current leader: campaign at once, as a transfer.
    pub(super) fn handle_timeout_now(&mut self, from: NodeId, rpc: RpcId, req: TimeoutNowRequest) {
        let term = self.hard_state.term;
        let accepted = req.term == term
            && self.leader == Some(req.leader_id)
            && from == req.leader_id
            && self.membership.1.is_voter(self.id)
            && !matches!(self.role, RoleState::Leader(_));
        self.push(Action::Reply {
            to: from,
            rpc,
            response: Response::TimeoutNow(TimeoutNowResponse { term, accepted }),
        });
        if accepted {
            self.become_candidate_for_transfer();
        }
    }
}

/// The configuration `change` leads to from `current`: `None` if it is already in effect.
fn next_membership(
    current: &Membership,
    change: MembershipChange,
) -> Result<Option<Membership>, ChangeError> {
    let voters = current.voters();
    let target = match change {
        MembershipChange::AddLearner(id) if current.nodes().contains(&id) => return Ok(None),
        MembershipChange::AddLearner(id) => {
            let mut learners = current.learners().clone();
            learners.insert(id);
            return Ok(Some(current.clone().with_learners(learners)));
        }
        MembershipChange::Remove(id) if current.learners().contains(&id) => {
            return Ok(Some(current.without_learner(id)));
        }
        MembershipChange::Remove(id) if !voters.contains(&id) => return Ok(None),
        MembershipChange::Remove(id) => voters.iter().copied().filter(|v| *v != id).collect(),
        MembershipChange::SetVoters(target) => target,
    };
    if target.is_empty() {
        return Err(ChangeError::Invalid(
            "a cluster needs at least one voter".into(),
        ));
    }
    if target == voters {
        return Ok(None);
    }
    Ok(Some(current.joint_to(target)))
}
