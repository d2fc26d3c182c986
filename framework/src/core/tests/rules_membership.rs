//! One input, the exact outcome: membership changes and leadership transfer
//! (`core/membership_change.rs`).

use std::collections::BTreeSet;

use crate::core::{Action, Core, Input, Role};
use crate::error::ChangeError;
use crate::membership::{Membership, MembershipChange};
use crate::message::{Request, TimeoutNowRequest};
use crate::types::{EntryPayload, LogIndex, NodeId, RequestId, RpcId, Term};

use super::support::*;

fn ids(list: &[u64]) -> BTreeSet<NodeId> {
    list.iter().copied().map(NodeId).collect()
}

fn change(request: u64, change: MembershipChange) -> Input {
    Input::ChangeMembership {
        request: RequestId(request),
        change,
    }
}

fn set_voters(request: u64, voters: &[u64]) -> Input {
    change(request, MembershipChange::SetVoters(ids(voters)))
}

/// The answers to changes among `actions`.
fn answers(actions: &[Action]) -> Vec<(RequestId, Result<BTreeSet<NodeId>, ChangeError>)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::ChangeDone { request, result } => Some((
                *request,
                result
                    .as_ref()
                    .map(Membership::voters)
                    .map_err(Clone::clone),
            )),
            _ => None,
        })
        .collect()
}

/// The configurations the leader appended among `actions`.
fn appended_configs(actions: &[Action]) -> Vec<Membership> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::AppendLog { entries } => Some(entries),
            _ => None,
        })
        .flatten()
        .filter_map(|entry| match &entry.payload {
            EntryPayload::Membership(membership) => Some(Membership::clone(membership)),
            _ => None,
        })
        .collect()
}

/// Persists the leader's log through `index` and acknowledges it from `peers`.
fn replicate(core: &mut Core, index: u64, peers: &[u64]) -> Vec<Action> {
    let mut actions = core.step(Input::LogPersisted {
        up_to: log_id(core.term().0, index),
    });
    for peer in peers {
        actions.extend(core.step(append_response(*peer, core.term().0, success(index))));
    }
    actions
}

#[test]
fn a_learner_is_added_replicated_to_and_never_counted() {
    let mut core = leader_of(3, fixed_config());
    let actions = core.step(change(7, MembershipChange::AddLearner(n(4))));
    let configs = appended_configs(&actions);
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0].learners(), &ids(&[4]));
    assert!(
        appends_sent(&actions).iter().any(|(to, _)| *to == n(4)),
        "the learner receives the log"
    );
    // The learner's acknowledgement alone commits nothing.
    let actions = replicate(&mut core, 3, &[4]);
    assert_eq!(core.commit_index(), LogIndex(2));
    assert!(answers(&actions).is_empty());
    let actions = replicate(&mut core, 3, &[2]);
    assert_eq!(core.commit_index(), LogIndex(3));
    assert_eq!(answers(&actions), vec![(RequestId(7), Ok(ids(&[1, 2, 3])))]);
}

#[test]
fn set_voters_goes_through_the_joint_configuration_then_the_new_one() {
    let mut core = leader_of(3, fixed_config());
    // Replace 2 and 3 by 4 and 5.
    let actions = core.step(set_voters(7, &[1, 4, 5]));
    let joint = &appended_configs(&actions)[0];
    assert!(joint.is_joint());
    assert!(
        appends_sent(&actions).iter().any(|(to, _)| *to == n(5)),
        "new voters receive the log"
    );
    // A majority of the old voters is not enough: the new ones must agree too.
    replicate(&mut core, 3, &[2, 3]);
    assert_eq!(core.commit_index(), LogIndex(2), "joint commit needs both");
    let actions = replicate(&mut core, 3, &[4]);
    assert_eq!(core.commit_index(), LogIndex(3));
    let configs = appended_configs(&actions);
    assert_eq!(configs.len(), 1, "the final configuration follows at once");
    assert!(!configs[0].is_joint());
    assert_eq!(configs[0].voters(), ids(&[1, 4, 5]));
    assert!(
        answers(&actions).is_empty(),
        "not done before the final commit"
    );
    // Old voters alone no longer commit anything.
    replicate(&mut core, 4, &[2, 3]);
    assert_eq!(core.commit_index(), LogIndex(3));
    let actions = replicate(&mut core, 4, &[5]);
    assert_eq!(core.commit_index(), LogIndex(4));
    assert_eq!(answers(&actions), vec![(RequestId(7), Ok(ids(&[1, 4, 5])))]);
}

#[test]
fn one_change_at_a_time() {
    let mut core = leader_of(3, fixed_config());
    core.step(set_voters(7, &[1, 2, 3, 4]));
    let actions = core.step(change(8, MembershipChange::AddLearner(n(5))));
    assert_eq!(
        answers(&actions),
        vec![(RequestId(8), Err(ChangeError::InProgress))]
    );
    assert!(appended_configs(&actions).is_empty());
}

#[test]
fn a_change_to_what_is_in_effect_is_done_at_once_and_followers_refuse() {
    let mut core = leader_of(3, fixed_config());
    let actions = core.step(set_voters(7, &[3, 2, 1]));
    assert_eq!(answers(&actions), vec![(RequestId(7), Ok(ids(&[1, 2, 3])))]);
    assert!(appended_configs(&actions).is_empty());
    let mut follower = core_with(2, 3, 1, &[], fixed_config());
    let actions = follower.step(set_voters(8, &[1, 2]));
    assert_eq!(
        answers(&actions),
        vec![(RequestId(8), Err(ChangeError::NotLeader { leader: None }))]
    );
    let actions = core.step(set_voters(9, &[]));
    assert!(matches!(
        answers(&actions)[..],
        [(RequestId(9), Err(ChangeError::Invalid(_)))]
    ));
}

#[test]
fn a_removed_leader_leads_until_the_change_commits_then_steps_down_for_good() {
    let mut core = leader_of(3, fixed_config());
    core.step(set_voters(7, &[2, 3]));
    // Joint: old {1,2,3} and new {2,3}; the leader still counts in the old configuration.
    replicate(&mut core, 3, &[2, 3]);
    assert_eq!(
        core.role(),
        Role::Leader,
        "leads while the change is in flight"
    );
    let actions = replicate(&mut core, 4, &[2, 3]);
    assert_eq!(core.commit_index(), LogIndex(4));
    assert_eq!(answers(&actions), vec![(RequestId(7), Ok(ids(&[2, 3])))]);
    assert_eq!(core.role(), Role::Follower, "steps down once removed");
    // It never campaigns afterwards: it is not a voter.
    for _ in 0..100 {
        let actions = core.step(Input::Tick);
        assert!(
            !actions.iter().any(|a| matches!(
                a,
                Action::Send {
                    request: Request::RequestVote(_),
                    ..
                }
            )),
            "a removed node must not campaign"
        );
    }
}

#[test]
fn a_new_leader_finishes_a_joint_change_it_inherits() {
    let mut core = leader_of(3, fixed_config());
    core.step(set_voters(7, &[1, 2, 3, 4]));
    replicate(&mut core, 3, &[2, 3, 4]);
    // Suppose the leader lost leadership before appending the final configuration, and this
    // node is elected again in term 2 with the joint configuration committed in its log.
    let log = core.entries().to_vec();
    let mut next = Core::new(
        n(1),
        fixed_config(),
        crate::core::Recovered {
            hard_state: crate::core::HardState {
                term: Term(1),
                voted_for: Some(n(1)),
            },
            log: log[..3].to_vec(),
            last_applied: LogIndex(0),
            snapshot: None,
        },
        7,
    )
    .expect("recovers");
    while next.role() == Role::Follower {
        next.step(Input::Tick);
    }
    for pre_vote in [true, false] {
        for peer in 2..=4 {
            next.step(vote_response(peer, 2, true, pre_vote));
        }
    }
    assert_eq!(next.role(), Role::Leader);
    let actions = replicate(&mut next, 4, &[2, 3, 4]);
    let configs = appended_configs(&actions);
    assert_eq!(configs.len(), 1, "the final configuration is appended");
    assert_eq!(configs[0].voters(), ids(&[1, 2, 3, 4]));
    assert!(!configs[0].is_joint());
}

#[test]
fn a_transfer_pauses_proposals_and_sends_timeout_now_once_the_target_caught_up() {
    let mut core = leader_of(3, fixed_config());
    core.step(propose(1, "a"));
    let actions = core.step(Input::TransferLeader {
        request: RequestId(7),
        to: n(2),
    });
    assert!(!actions.iter().any(|a| matches!(
        a,
        Action::Send {
            request: Request::TimeoutNow(_),
            ..
        }
    )));
    // A proposal during the transfer waits.
    let actions = core.step(propose(2, "b"));
    assert!(actions.is_empty(), "paused: {actions:?}");
    let actions = replicate(&mut core, 3, &[2]);
    let timeout_now: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                to,
                request: Request::TimeoutNow(req),
            } => Some((*to, *req)),
            _ => None,
        })
        .collect();
    assert_eq!(
        timeout_now,
        vec![(
            n(2),
            TimeoutNowRequest {
                term: Term(1),
                leader_id: n(1)
            }
        )]
    );
    // The target wins (a higher term reaches the old leader): done, paused proposals refused.
    let actions = core.step(append_response(
        2,
        2,
        crate::message::AppendOutcome::StaleTerm,
    ));
    assert_eq!(core.role(), Role::Follower);
    assert_eq!(answers(&actions), vec![(RequestId(7), Ok(ids(&[1, 2, 3])))]);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Reject { request, .. } if *request == RequestId(2))));
}

#[test]
fn a_transfer_that_does_not_complete_times_out_and_proposals_resume() {
    let mut core = leader_of(3, fixed_config());
    core.step(Input::TransferLeader {
        request: RequestId(7),
        to: n(3),
    });
    core.step(propose(2, "b"));
    let mut actions = Vec::new();
    for _ in 0..11 {
        actions.extend(core.step(Input::Tick));
        core.step(append_response(2, 1, success(2)));
    }
    assert_eq!(
        answers(&actions),
        vec![(RequestId(7), Err(ChangeError::Timeout))]
    );
    assert_eq!(core.role(), Role::Leader);
    assert_eq!(
        core.last_log_id(),
        log_id(1, 3),
        "the paused proposal is appended"
    );
}

#[test]
fn timeout_now_makes_a_follower_campaign_at_once_and_voters_grant_despite_the_lease() {
    let config = crate::config::Config {
        check_quorum: true,
        ..fixed_config()
    };
    let mut follower = core_with(2, 3, 1, &[], config.clone());
    // It follows leader 1 in term 1.
    follower.step(append_input(
        1,
        append_request(1, 1, log_id(0, 1), vec![], 1),
    ));
    let actions = follower.step(Input::Request {
        from: n(1),
        rpc: RpcId(2),
        request: Request::TimeoutNow(TimeoutNowRequest {
            term: Term(1),
            leader_id: n(1),
        }),
    });
    assert_eq!(follower.role(), Role::Candidate, "no pre-vote, no waiting");
    let vote = actions
        .iter()
        .find_map(|a| match a {
            Action::Send {
                request: Request::RequestVote(req),
                ..
            } => Some(req.clone()),
            _ => None,
        })
        .expect("asks for votes");
    assert!(vote.transfer && !vote.pre_vote);
    // A voter that just heard from leader 1 grants it anyway.
    let mut voter = core_with(3, 3, 1, &[], config);
    voter.step(append_input(
        1,
        append_request(1, 1, log_id(0, 1), vec![], 1),
    ));
    let actions = voter.step(Input::Request {
        from: n(2),
        rpc: RpcId(2),
        request: Request::RequestVote(vote),
    });
    assert!(actions.contains(&vote_reply(2, 2, true, false)));
}

#[test]
fn a_change_asked_of_a_new_leader_starts_once_its_term_has_a_commit() {
    let config = crate::config::Config {
        pre_vote: false,
        ..fixed_config()
    };
    let mut core = core_with(1, 3, 0, &[], config);
    tick_until_action(&mut core);
    for peer in [2, 3] {
        core.step(vote_response(peer, 1, true, false));
    }
    assert_eq!(core.role(), Role::Leader);
    // Its blank entry (2) is not committed yet: the change waits, unanswered.
    let actions = core.step(change(7, MembershipChange::AddLearner(n(4))));
    assert!(answers(&actions).is_empty() && appended_configs(&actions).is_empty());
    // A second change meanwhile is refused.
    let actions = core.step(change(8, MembershipChange::AddLearner(n(5))));
    assert_eq!(
        answers(&actions),
        vec![(RequestId(8), Err(ChangeError::InProgress))]
    );
    // The blank commits: the change starts in the same step.
    let actions = replicate(&mut core, 2, &[2]);
    assert_eq!(appended_configs(&actions).len(), 1);
    let actions = replicate(&mut core, 3, &[2]);
    assert_eq!(answers(&actions), vec![(RequestId(7), Ok(ids(&[1, 2, 3])))]);
}
