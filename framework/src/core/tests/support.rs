//! Helpers for the rule tests: build a core in a known state and read its actions.

use std::sync::Arc;

use crate::config::Config;
use crate::core::{Action, Core, HardState, Input, Proposal, Recovered};
use crate::message::{
    AppendEntriesRequest, AppendEntriesResponse, AppendOutcome, Request, Response, VoteRequest,
    VoteResponse,
};
use crate::types::{Entry, EntryPayload, LogId, LogIndex, NodeId, RequestId, RpcId, Term};

pub fn n(id: u64) -> NodeId {
    NodeId(id)
}

pub fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(Term(term), LogIndex(index))
}

/// Entries from index 1 with these terms; index 1 is the bootstrap membership of 1..=voters.
pub fn log_with_terms(voters: u64, terms: &[u64]) -> Vec<Entry> {
    let mut log = Core::bootstrap_log((1..=voters).map(NodeId));
    for (offset, term) in terms.iter().enumerate() {
        let index = offset as u64 + 2;
        let payload = EntryPayload::Command(Arc::from(format!("{term}@{index}").as_bytes()));
        log.push(Entry {
            log_id: log_id(*term, index),
            payload,
        });
    }
    log
}

/// A config with a fixed election timeout (10 ticks), so tests know when a node campaigns.
pub fn fixed_config() -> Config {
    Config {
        election_timeout_min_ticks: 10,
        election_timeout_max_ticks: 11,
        heartbeat_interval_ticks: 3,
        ..Default::default()
    }
}

/// Node `id` of a cluster of `voters`, recovered with `terms` after the bootstrap entry.
pub fn core_with(id: u64, voters: u64, term: u64, terms: &[u64], config: Config) -> Core {
    let recovered = Recovered {
        hard_state: HardState {
            term: Term(term),
            voted_for: None,
        },
        log: log_with_terms(voters, terms),
        // The bootstrap entry is already applied, so tests see only the actions they cause.
        last_applied: LogIndex(1),
        snapshot: None,
    };
    Core::new(n(id), config, recovered, 7).expect("valid recovered state")
}

/// Ticks until the node acts on its own (election timeout or heartbeat) and returns that.
pub fn tick_until_action(core: &mut Core) -> Vec<Action> {
    for _ in 0..1000 {
        let actions = core.step(Input::Tick);
        if !actions.is_empty() {
            return actions;
        }
    }
    panic!("node {} never acted", core.id())
}

pub fn vote_request(term: u64, candidate: u64, last: LogId, pre_vote: bool) -> Input {
    let request = VoteRequest {
        term: Term(term),
        candidate_id: n(candidate),
        last_log_id: last,
        pre_vote,
        transfer: false,
    };
    Input::Request {
        from: n(candidate),
        rpc: RpcId(candidate),
        request: Request::RequestVote(request),
    }
}

pub fn vote_response(from: u64, term: u64, granted: bool, pre_vote: bool) -> Input {
    let response = VoteResponse {
        term: Term(term),
        granted,
        pre_vote,
    };
    Input::Response {
        from: n(from),
        response: Response::RequestVote(response),
    }
}

pub fn vote_reply(to: u64, term: u64, granted: bool, pre_vote: bool) -> Action {
    let response = Response::RequestVote(VoteResponse {
        term: Term(term),
        granted,
        pre_vote,
    });
    Action::Reply {
        to: n(to),
        rpc: RpcId(to),
        response,
    }
}

pub fn vote_send(to: u64, term: u64, candidate: u64, last: LogId, pre_vote: bool) -> Action {
    let request = VoteRequest {
        term: Term(term),
        candidate_id: n(candidate),
        last_log_id: last,
        pre_vote,
        transfer: false,
    };
    Action::Send {
        to: n(to),
        request: Request::RequestVote(request),
    }
}

pub fn save(term: u64, vote: Option<u64>) -> Action {
    Action::SaveHardState(HardState {
        term: Term(term),
        voted_for: vote.map(NodeId),
    })
}

pub fn append_request(
    term: u64,
    leader: u64,
    prev: LogId,
    entries: Vec<Entry>,
    commit: u64,
) -> AppendEntriesRequest {
    AppendEntriesRequest {
        term: Term(term),
        leader_id: n(leader),
        prev_log_id: prev,
        entries,
        leader_commit: LogIndex(commit),
        round: 0,
    }
}

pub fn append_input(rpc: u64, req: AppendEntriesRequest) -> Input {
    Input::Request {
        from: req.leader_id,
        rpc: RpcId(rpc),
        request: Request::AppendEntries(req),
    }
}

pub fn append_reply(to: u64, rpc: u64, term: u64, outcome: AppendOutcome) -> Action {
    let response = Response::AppendEntries(AppendEntriesResponse {
        term: Term(term),
        outcome,
        round: 0,
    });
    Action::Reply {
        to: n(to),
        rpc: RpcId(rpc),
        response,
    }
}

pub fn append_response(from: u64, term: u64, outcome: AppendOutcome) -> Input {
    let response = Response::AppendEntries(AppendEntriesResponse {
        term: Term(term),
        outcome,
        round: 0,
    });
    Input::Response {
        from: n(from),
        response,
    }
}

pub fn success(match_index: u64) -> AppendOutcome {
    AppendOutcome::Success {
        match_index: LogIndex(match_index),
    }
}

pub fn propose(request: u64, command: &str) -> Input {
    Input::Propose(vec![Proposal {
        request: RequestId(request),
        command: Arc::from(command.as_bytes()),
    }])
}

pub fn command_entry(term: u64, index: u64, command: &str) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Command(Arc::from(command.as_bytes())),
    }
}

pub fn blank(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Blank,
    }
}

/// The `AppendEntries` requests among `actions`, by destination.
pub fn appends_sent(actions: &[Action]) -> Vec<(NodeId, AppendEntriesRequest)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Send {
                to,
                request: Request::AppendEntries(req),
            } => Some((*to, req.clone())),
            _ => None,
        })
        .collect()
}

/// Makes node 1 of a cluster of `voters` the leader of term 1 (no PreVote), with every follower
/// having acknowledged its blank entry, and its own log persisted. Returns the core.
pub fn leader_of(voters: u64, config: Config) -> Core {
    let config = Config {
        pre_vote: false,
        ..config
    };
    let mut core = core_with(1, voters, 0, &[], config);
    tick_until_action(&mut core);
    for peer in 2..=voters {
        core.step(vote_response(peer, 1, true, false));
    }
    assert_eq!(core.role(), crate::core::Role::Leader);
    core.step(Input::LogPersisted {
        up_to: log_id(1, 2),
    });
    for peer in 2..=voters {
        core.step(append_response(peer, 1, success(2)));
    }
    assert_eq!(core.commit_index(), LogIndex(2));
    core
}
