//! One input, the exact actions: elections (§5.2), PreVote (thesis §9.6), CheckQuorum (§6.2),
//! the up-to-date check (§5.4.1).

use crate::config::Config;
use crate::core::{Action, Input, Role};
use crate::error::ProposeError;
use crate::types::{LogIndex, RequestId, Term};

use super::support::*;

#[test]
fn follower_timeout_starts_a_pre_vote_without_changing_term() {
    let mut core = core_with(1, 3, 0, &[], fixed_config());
    let actions = tick_until_action(&mut core);
    assert_eq!(
        actions,
        vec![
            vote_send(2, 1, 1, log_id(0, 1), true),
            vote_send(3, 1, 1, log_id(0, 1), true)
        ]
    );
    assert_eq!(core.role(), Role::PreCandidate);
    assert_eq!(core.term(), Term(0), "a pre-vote does not raise the term");
}

#[test]
fn pre_vote_quorum_starts_the_real_election_vote_saved_first() {
    let mut core = core_with(1, 3, 0, &[], fixed_config());
    tick_until_action(&mut core);
    let actions = core.step(vote_response(2, 1, true, true));
    assert_eq!(
        actions,
        vec![
            save(1, Some(1)),
            vote_send(2, 1, 1, log_id(0, 1), false),
            vote_send(3, 1, 1, log_id(0, 1), false),
        ]
    );
    assert_eq!(core.role(), Role::Candidate);
}

#[test]
fn without_pre_vote_timeout_raises_term_and_votes_for_itself() {
    let config = Config {
        pre_vote: false,
        ..fixed_config()
    };
    let mut core = core_with(1, 3, 4, &[], config);
    let actions = tick_until_action(&mut core);
    assert_eq!(
        actions,
        vec![
            save(5, Some(1)),
            vote_send(2, 5, 1, log_id(0, 1), false),
            vote_send(3, 5, 1, log_id(0, 1), false)
        ]
    );
}

#[test]
fn winning_the_vote_appends_a_blank_entry_and_probes_every_follower() {
    let config = Config {
        pre_vote: false,
        ..fixed_config()
    };
    let mut core = core_with(1, 3, 0, &[], config);
    tick_until_action(&mut core);
    let actions = core.step(vote_response(2, 1, true, false));
    let probe = |to| Action::Send {
        to: n(to),
        // The first message of a term of office carries its first quorum round.
        request: crate::message::Request::AppendEntries(crate::message::AppendEntriesRequest {
            round: 1,
            ..append_request(1, 1, log_id(0, 1), vec![blank(1, 2)], 1)
        }),
    };
    assert_eq!(
        actions,
        vec![
            Action::AppendLog {
                entries: vec![blank(1, 2)]
            },
            probe(2),
            probe(3)
        ]
    );
    assert_eq!(core.role(), Role::Leader);
    assert_eq!(core.leader(), Some(n(1)));
}

#[test]
fn a_quorum_of_rejections_ends_the_campaign() {
    let config = Config {
        pre_vote: false,
        ..fixed_config()
    };
    let mut core = core_with(1, 3, 0, &[], config);
    tick_until_action(&mut core);
    assert!(core.step(vote_response(2, 1, false, false)).is_empty());
    assert_eq!(core.role(), Role::Candidate);
    core.step(vote_response(3, 1, false, false));
    assert_eq!(core.role(), Role::Follower);
    assert_eq!(core.term(), Term(1));
}

#[test]
fn one_vote_per_term() {
    let mut core = core_with(1, 3, 0, &[], fixed_config());
    let actions = core.step(vote_request(1, 2, log_id(0, 1), false));
    assert_eq!(
        actions,
        vec![save(1, Some(2)), vote_reply(2, 1, true, false)]
    );
    let actions = core.step(vote_request(1, 3, log_id(0, 1), false));
    assert_eq!(
        actions,
        vec![vote_reply(3, 1, false, false)],
        "second candidate, same term"
    );
    let actions = core.step(vote_request(1, 2, log_id(0, 1), false));
    assert_eq!(
        actions,
        vec![vote_reply(2, 1, true, false)],
        "a retry from the same candidate"
    );
}

#[test]
fn vote_denied_to_a_candidate_with_a_stale_log() {
    // The voter holds 2@3; the candidate's last entry is 1@5: an older last term loses (§5.4.1).
    let mut core = core_with(1, 3, 2, &[1, 2], fixed_config());
    let actions = core.step(vote_request(3, 2, log_id(1, 5), false));
    assert_eq!(actions, vec![save(3, None), vote_reply(2, 3, false, false)]);
    // Same last term, shorter log: also denied.
    let actions = core.step(vote_request(3, 3, log_id(2, 2), false));
    assert_eq!(actions, vec![vote_reply(3, 3, false, false)]);
}

#[test]
fn vote_request_from_an_older_term_is_rejected_with_ours() {
    let mut core = core_with(1, 3, 5, &[], fixed_config());
    let actions = core.step(vote_request(4, 2, log_id(4, 9), false));
    assert_eq!(actions, vec![vote_reply(2, 5, false, false)]);
}

#[test]
fn pre_vote_is_granted_without_recording_a_vote_or_term() {
    let mut core = core_with(1, 3, 2, &[2], fixed_config());
    let actions = core.step(vote_request(3, 2, log_id(2, 2), true));
    assert_eq!(actions, vec![vote_reply(2, 3, true, true)]);
    assert_eq!(core.hard_state().term, Term(2));
    assert_eq!(core.hard_state().voted_for, None);
}

#[test]
fn pre_vote_for_a_stale_log_is_refused() {
    let mut core = core_with(1, 3, 2, &[2, 2], fixed_config());
    let actions = core.step(vote_request(3, 2, log_id(2, 2), true));
    assert_eq!(actions, vec![vote_reply(2, 2, false, true)]);
}

#[test]
fn follower_in_leader_lease_ignores_higher_term_votes() {
    let mut core = core_with(2, 3, 1, &[], fixed_config());
    core.step(append_input(
        1,
        append_request(1, 1, log_id(0, 1), vec![], 1),
    ));
    let actions = core.step(vote_request(2, 3, log_id(0, 1), false));
    assert_eq!(
        actions,
        vec![vote_reply(3, 1, false, false)],
        "no term change, no vote"
    );
    assert_eq!(core.term(), Term(1));
    assert_eq!(core.leader(), Some(n(1)));
}

#[test]
fn lease_ends_when_the_leader_falls_silent() {
    let mut core = core_with(2, 3, 1, &[], fixed_config());
    core.step(append_input(
        1,
        append_request(1, 1, log_id(0, 1), vec![], 1),
    ));
    for _ in 0..9 {
        assert!(core.step(Input::Tick).is_empty());
    }
    let actions = core.step(vote_request(2, 3, log_id(0, 1), false));
    assert_eq!(
        actions,
        vec![vote_reply(3, 1, false, false)],
        "tick 9: still in the lease"
    );
    let actions = core.step(Input::Tick);
    assert_eq!(
        actions.len(),
        2,
        "tick 10: the timeout fires and pre-votes go out: {actions:?}"
    );
    let actions = core.step(vote_request(2, 3, log_id(0, 1), false));
    assert_eq!(
        actions,
        vec![save(2, Some(3)), vote_reply(3, 2, true, false)]
    );
}

#[test]
fn rejected_pre_vote_from_a_later_term_makes_the_node_follow_it() {
    let mut core = core_with(1, 3, 1, &[], fixed_config());
    tick_until_action(&mut core);
    let actions = core.step(vote_response(2, 5, false, true));
    assert_eq!(actions, vec![save(5, None)]);
    assert_eq!(core.role(), Role::Follower);
}

#[test]
fn higher_term_in_a_response_deposes_the_leader() {
    let mut core = leader_of(3, fixed_config());
    let actions = core.step(append_response(
        2,
        7,
        crate::message::AppendOutcome::StaleTerm,
    ));
    assert_eq!(actions, vec![save(7, None)]);
    assert_eq!(core.role(), Role::Follower);
    assert_eq!(core.leader(), None);
}

#[test]
fn check_quorum_deposes_a_leader_that_hears_from_no_one() {
    let mut core = leader_of(3, fixed_config());
    // The acknowledgements in leader_of count for the first round; the second round sees none.
    for _ in 0..20 {
        core.step(Input::Tick);
    }
    assert_eq!(core.role(), Role::Follower);
    assert_eq!(
        core.term(),
        Term(1),
        "stepping down does not change the term"
    );
}

#[test]
fn check_quorum_keeps_a_leader_that_hears_from_a_majority() {
    let mut core = leader_of(3, fixed_config());
    for _ in 0..50 {
        core.step(Input::Tick);
        core.step(append_response(2, 1, success(2)));
    }
    assert_eq!(core.role(), Role::Leader);
}

#[test]
fn proposal_on_a_follower_names_the_leader() {
    let mut core = core_with(2, 3, 1, &[], fixed_config());
    core.step(append_input(
        1,
        append_request(1, 1, log_id(0, 1), vec![], 1),
    ));
    let actions = core.step(propose(9, "x"));
    let error = ProposeError::NotLeader { leader: Some(n(1)) };
    assert_eq!(
        actions,
        vec![Action::Reject {
            request: RequestId(9),
            error
        }]
    );
}

#[test]
fn learners_and_strangers_never_campaign() {
    let mut core = core_with(4, 3, 0, &[], fixed_config());
    for _ in 0..100 {
        assert!(core.step(Input::Tick).is_empty());
    }
    assert_eq!(core.commit_index(), LogIndex(1));
}

#[test]
fn single_voter_elects_itself_and_commits_on_its_own_write() {
    let mut core = core_with(1, 1, 0, &[], fixed_config());
    let actions = tick_until_action(&mut core);
    assert_eq!(
        actions,
        vec![
            save(1, Some(1)),
            Action::AppendLog {
                entries: vec![blank(1, 2)]
            }
        ]
    );
    let actions = core.step(Input::LogPersisted {
        up_to: log_id(1, 2),
    });
    assert_eq!(
        actions,
        vec![Action::Apply {
            entries: vec![blank(1, 2)],
            clients: vec![]
        }]
    );
}

#[test]
fn a_quorum_of_same_term_pre_vote_refusals_ends_the_pre_vote() {
    // Regression: refusals carry the voter's own term (ours), not the campaign term; they must
    // still count, or the node lingers as a pre-candidate with no leader.
    let mut core = core_with(1, 3, 1, &[], fixed_config());
    tick_until_action(&mut core);
    assert_eq!(core.role(), Role::PreCandidate);
    assert!(core.step(vote_response(2, 1, false, true)).is_empty());
    assert!(core.step(vote_response(3, 1, false, true)).is_empty());
    assert_eq!(core.role(), Role::Follower);
    assert_eq!(core.term(), Term(1));
}
