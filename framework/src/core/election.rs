//! Elections (§5.2): the election timer, PreVote (thesis §9.6), RequestVote and its answers.
//!
//! ```text
//!  Follower --timeout--> PreCandidate --pre-vote quorum--> Candidate --vote quorum--> Leader
//!     ^                      |  (term unchanged)              | (term + 1, votes for itself)
//!     +---- higher term, a leader's AppendEntries, or a quorum of rejections ----+
//! ```

use crate::message::{Request, Response, VoteRequest, VoteResponse};
use crate::types::{NodeId, RpcId, Term};

use super::io::Action;
use super::node::{Core, RoleState, Votes};

impl Core {
    /// A non-leader's tick: campaign when the election timeout runs out.
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            self.campaign();
        }
    }

    /// Starts a pre-vote round, or an election when PreVote is off. Learners and nodes outside
    /// the configuration never campaign — unless that configuration is not known committed: a
    /// leader that appended a configuration without itself and lost leadership before it
    /// committed may hold the most up-to-date log, and no one else could win without its vote
    /// (found by the property test: without this, such a cluster never elects a leader again).
    /// Winning needs a quorum of that configuration either way, so this is safe.
    pub(super) fn campaign(&mut self) {
        let removed = !self.membership.1.is_voter(self.id);
        if removed && self.membership.0 <= self.log.commit_index() {
            self.reset_election_timer();
            return;
        }
        if self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate();
        }
    }

    fn become_pre_candidate(&mut self) {
        self.role = RoleState::PreCandidate(Votes::default());
        self.leader = None;
        self.reset_election_timer();
        self.request_votes(self.hard_state.term.next(), true, false);
    }

    fn become_candidate(&mut self) {
        self.campaign_in_next_term(false);
    }

    /// TimeoutNow from the leader: campaign at once, skipping PreVote, as a transfer.
    pub(super) fn become_candidate_for_transfer(&mut self) {
        self.campaign_in_next_term(true);
    }

    fn campaign_in_next_term(&mut self, transfer: bool) {
        let term = self.hard_state.term.next();
        self.update_term(term);
        // NB: update_term may already have emitted `SaveHardState` (flushing held acks), so the
        // vote must mark the hard state dirty again (contract 1).
        self.hard_state.voted_for = Some(self.id);
        self.hard_state_dirty = true;
        self.role = RoleState::Candidate(Votes::default());
        self.reset_election_timer();
        self.request_votes(term, false, transfer);
    }

    /// Votes for itself, then asks every other voter.
    fn request_votes(&mut self, term: Term, pre_vote: bool, transfer: bool) {
        let request = VoteRequest {
            term,
            candidate_id: self.id,
            last_log_id: self.log.last_log_id(),
            pre_vote,
            transfer,
        };
        let peers: Vec<NodeId> = self
            .membership
            .1
            .voters()
            .into_iter()
            .filter(|id| *id != self.id)
            .collect();
        for to in peers {
            self.push(Action::Send {
                to,
                request: Request::RequestVote(request.clone()),
            });
        }
        self.record_vote(self.id, true);
    }

    /// Whether this node heard from a live leader recently enough to refuse disrupting it. The
    /// leader lease (`read_index.rs`) relies on this promise. NB: a node that restarts forgets it.
    fn is_in_leader_lease(&self) -> bool {
        self.config.check_quorum
            && self.leader.is_some()
            && self.election_elapsed < self.config.election_timeout_min_ticks
    }

    pub(super) fn handle_vote_request(&mut self, from: NodeId, rpc: RpcId, req: VoteRequest) {
        let term = self.hard_state.term;
        // NB: a transfer's candidate was sent by the leader itself: the lease does not protect
        // that leader from it.
        let granted = if req.term > term && self.is_in_leader_lease() && !req.transfer {
            false
        } else if req.pre_vote {
            req.term > term && self.log.is_up_to_date(req.last_log_id)
        } else if req.term < term {
            false
        } else {
            if req.term > term {
                self.become_follower(req.term, None);
            }
            self.maybe_grant_vote(req.candidate_id, req.last_log_id)
        };
        // A granted pre-vote answers in the requested term, so the candidate can count it.
        let term = if req.pre_vote && granted {
            req.term
        } else {
            self.hard_state.term
        };
        let response = VoteResponse {
            term,
            granted,
            pre_vote: req.pre_vote,
        };
        self.push(Action::Reply {
            to: from,
            rpc,
            response: Response::RequestVote(response),
        });
    }

    /// One vote per term (§5.2), only for an up-to-date log (§5.4.1, contract 4).
    fn maybe_grant_vote(&mut self, candidate: NodeId, last_log_id: crate::types::LogId) -> bool {
        let voted_for = self.hard_state.voted_for;
        let can_vote =
            voted_for == Some(candidate) || (voted_for.is_none() && self.leader.is_none());
        if !can_vote || !self.log.is_up_to_date(last_log_id) {
            return false;
        }
        if voted_for.is_none() {
            self.hard_state.voted_for = Some(candidate);
            self.hard_state_dirty = true;
        }
        self.election_elapsed = 0;
        true
    }

    pub(super) fn handle_vote_response(&mut self, from: NodeId, resp: VoteResponse) {
        let term = self.hard_state.term;
        let campaign_term = if resp.pre_vote { term.next() } else { term };
        if resp.term > campaign_term || (resp.term > term && !resp.granted) {
            // Someone is ahead of us: whatever we were doing is moot (etcd does the same for a
            // rejected pre-vote from a later term).
            self.become_follower(resp.term, None);
            return;
        }
        let counts = match self.role {
            RoleState::PreCandidate(_) => resp.pre_vote,
            RoleState::Candidate(_) => !resp.pre_vote,
            _ => false,
        };
        // A granted pre-vote answers in the campaign term; a refusal answers in the voter's own
        // term, which is usually ours: count both, so a quorum of refusals ends the pre-vote.
        let in_campaign = resp.term == campaign_term || (!resp.granted && resp.term == term);
        if counts && in_campaign {
            self.record_vote(from, resp.granted);
        }
    }

    /// Counts a vote; wins or gives up when a quorum has decided.
    fn record_vote(&mut self, from: NodeId, granted: bool) {
        let votes = match &mut self.role {
            RoleState::PreCandidate(votes) | RoleState::Candidate(votes) => votes,
            _ => return,
        };
        if granted {
            votes.granted.insert(from);
        } else {
            votes.rejected.insert(from);
        }
        let won = self.membership.1.is_quorum(&votes.granted);
        let lost = self.membership.1.is_quorum(&votes.rejected);
        match (&self.role, won, lost) {
            (RoleState::PreCandidate(_), true, _) => self.become_candidate(),
            (RoleState::Candidate(_), true, _) => self.become_leader(),
            (_, false, true) => self.become_follower(self.hard_state.term, None),
            _ => {}
        }
    }
}
