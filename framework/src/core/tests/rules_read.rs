//! One input, the exact read answers: ReadIndex and the leader lease (thesis §6.4, design.md
//! contract 8).

use crate::config::Config;
use crate::core::{Action, Core, Input, ReadMode};
use crate::error::ProposeError;
use crate::message::{AppendEntriesResponse, AppendOutcome, Request, Response};
use crate::types::{LogIndex, RequestId, Term};

use super::support::*;

fn config() -> Config {
    Config {
        pre_vote: false,
        ..fixed_config()
    }
}

/// Node 1's answer from `from`, echoing quorum round `round`.
fn echo(from: u64, term: u64, outcome: AppendOutcome, round: u64) -> Input {
    Input::Response {
        from: n(from),
        response: Response::AppendEntries(AppendEntriesResponse {
            term: Term(term),
            outcome,
            round,
        }),
    }
}

fn read(request: u64, mode: ReadMode) -> Input {
    Input::Read {
        request: RequestId(request),
        mode,
    }
}

fn ready(request: u64, read_index: u64) -> Action {
    Action::ReadReady {
        request: RequestId(request),
        read_index: LogIndex(read_index),
    }
}

fn reads_answered(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter(|a| matches!(a, Action::ReadReady { .. } | Action::RejectRead { .. }))
        .cloned()
        .collect()
}

/// The rounds of the AppendEntries messages among `actions`.
fn rounds_sent(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Send {
                request: Request::AppendEntries(req),
                ..
            } => Some(req.round),
            _ => None,
        })
        .collect()
}

/// Node 1 of 3, just elected in term 1: its blank entry `1@2` is durable, nothing committed in
/// its term yet; round 1 went out with the blank entry.
fn fresh_leader(config: Config) -> Core {
    let mut core = core_with(1, 3, 0, &[], config);
    tick_until_action(&mut core);
    core.step(vote_response(2, 1, true, false));
    core.step(Input::LogPersisted {
        up_to: log_id(1, 2),
    });
    core
}

/// A leader that has committed its blank entry `1@2` (node 2 echoed round 1).
fn leader() -> Core {
    let mut core = fresh_leader(config());
    core.step(echo(2, 1, success(2), 1));
    assert_eq!(core.commit_index(), LogIndex(2));
    core
}

#[test]
fn a_follower_refuses_reads_and_names_the_leader() {
    let mut core = core_with(2, 3, 1, &[], config());
    core.step(append_input(
        5,
        append_request(1, 1, log_id(0, 1), vec![], 1),
    ));
    let actions = core.step(read(9, ReadMode::ReadIndex));
    assert_eq!(
        actions,
        vec![Action::RejectRead {
            request: RequestId(9),
            error: ProposeError::NotLeader { leader: Some(n(1)) },
        }]
    );
}

#[test]
fn a_read_waits_for_a_quorum_to_echo_a_round_begun_after_it() {
    let mut core = leader();
    let actions = core.step(read(9, ReadMode::ReadIndex));
    assert!(reads_answered(&actions).is_empty(), "{actions:?}");
    assert_eq!(
        rounds_sent(&actions),
        vec![2, 2],
        "round 2 goes to both followers"
    );
    let actions = core.step(echo(3, 1, success(2), 1));
    assert!(
        reads_answered(&actions).is_empty(),
        "an echo of round 1 predates the read: {actions:?}"
    );
    let actions = core.step(echo(3, 1, success(2), 2));
    assert_eq!(reads_answered(&actions), vec![ready(9, 2)]);
}

#[test]
fn a_new_leader_serves_no_read_before_its_first_commit() {
    let mut core = fresh_leader(config());
    let actions = core.step(read(9, ReadMode::ReadIndex));
    assert!(actions.is_empty(), "{actions:?}");
    // The blank entry commits (node 2 echoes round 1): the read gets index 2 and a new round.
    let actions = core.step(echo(2, 1, success(2), 1));
    assert!(reads_answered(&actions).is_empty(), "{actions:?}");
    assert_eq!(rounds_sent(&actions), vec![2, 2]);
    let actions = core.step(echo(2, 1, success(2), 2));
    assert_eq!(reads_answered(&actions), vec![ready(9, 2)]);
}

#[test]
fn concurrent_reads_share_quorum_rounds() {
    let mut core = leader();
    let first = core.step(read(1, ReadMode::ReadIndex));
    assert_eq!(rounds_sent(&first), vec![2, 2]);
    for request in 2..=100 {
        let actions = core.step(read(request, ReadMode::ReadIndex));
        assert!(actions.is_empty(), "a round is in flight: {actions:?}");
    }
    // Round 2 confirms read 1 only; the other 99 arrived after it began and share round 3.
    let actions = core.step(echo(2, 1, success(2), 2));
    assert_eq!(reads_answered(&actions), vec![ready(1, 2)]);
    assert_eq!(rounds_sent(&actions), vec![3, 3]);
    let actions = core.step(echo(3, 1, success(2), 3));
    let answered = reads_answered(&actions);
    assert_eq!(answered.len(), 99);
    assert_eq!(answered[0], ready(2, 2));
    assert_eq!(core.read_rounds(), 2, "100 reads, 2 rounds");
}

#[test]
fn a_deposed_leader_refuses_its_waiting_reads() {
    let mut core = leader();
    core.step(read(9, ReadMode::ReadIndex));
    let actions = core.step(echo(2, 2, AppendOutcome::StaleTerm, 2));
    assert_eq!(
        reads_answered(&actions),
        vec![Action::RejectRead {
            request: RequestId(9),
            error: ProposeError::NotLeader { leader: None },
        }]
    );
}

#[test]
fn an_isolated_leader_never_serves_a_read() {
    let mut core = leader();
    core.step(read(9, ReadMode::ReadIndex));
    let mut answered = Vec::new();
    for _ in 0..100 {
        answered.extend(reads_answered(&core.step(Input::Tick)));
    }
    assert_eq!(
        answered,
        vec![Action::RejectRead {
            request: RequestId(9),
            error: ProposeError::NotLeader { leader: None },
        }],
        "CheckQuorum deposes it; the read is refused, never served"
    );
}

#[test]
fn lease_reads_are_served_at_once_only_while_the_lease_holds() {
    let mut core = leader();
    // Round 1 began at the election tick and is confirmed: the lease runs from there.
    let actions = core.step(read(1, ReadMode::Lease));
    assert_eq!(reads_answered(&actions), vec![ready(1, 2)]);
    assert!(core.has_leader_lease());
    // No echo arrives any more: 10 - 3 ticks after round 1 began, the lease is over.
    for _ in 0..7 {
        core.step(Input::Tick);
    }
    assert!(!core.has_leader_lease());
    let actions = core.step(read(2, ReadMode::Lease));
    assert!(
        reads_answered(&actions).is_empty(),
        "without a lease a read needs a round: {actions:?}"
    );
}

#[test]
fn lease_reads_need_check_quorum() {
    let config = Config {
        check_quorum: false,
        ..config()
    };
    let mut core = fresh_leader(config);
    core.step(echo(2, 1, success(2), 1));
    assert!(!core.has_leader_lease());
    let actions = core.step(read(1, ReadMode::Lease));
    assert!(reads_answered(&actions).is_empty(), "{actions:?}");
}

#[test]
fn a_single_voter_serves_reads_at_once() {
    let mut core = core_with(1, 1, 0, &[], config());
    tick_until_action(&mut core);
    core.step(Input::LogPersisted {
        up_to: log_id(1, 2),
    });
    assert_eq!(core.commit_index(), LogIndex(2));
    let actions = core.step(read(1, ReadMode::ReadIndex));
    assert_eq!(reads_answered(&actions), vec![ready(1, 2)]);
}
