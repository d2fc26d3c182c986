//! One input, the exact actions: log replication (§5.3), commitment (§5.4.2) and the durability
//! contracts (design.md, 1-6).

use crate::config::Config;
use crate::core::{Action, Input, ProgressState, Role};
use crate::message::{AppendOutcome, ConflictHint, Request};
use crate::types::{LogIndex, RequestId, Term};

use super::support::*;

fn conflict(rejected: u64, term: Option<u64>, first: u64) -> AppendOutcome {
    let hint = ConflictHint {
        conflict_term: term.map(Term),
        first_index: LogIndex(first),
    };
    AppendOutcome::Conflict {
        rejected_index: LogIndex(rejected),
        hint,
    }
}

#[test]
fn follower_acknowledges_only_after_its_entries_are_durable() {
    let mut core = core_with(2, 3, 1, &[], fixed_config());
    let entries = vec![command_entry(1, 2, "a"), command_entry(1, 3, "b")];
    let actions = core.step(append_input(
        5,
        append_request(1, 1, log_id(0, 1), entries.clone(), 1),
    ));
    assert_eq!(
        actions,
        vec![Action::AppendLog { entries }],
        "no reply before the write is durable"
    );
    let actions = core.step(Input::LogPersisted {
        up_to: log_id(1, 3),
    });
    assert_eq!(actions, vec![append_reply(1, 5, 1, success(3))]);
}

#[test]
fn heartbeat_behind_a_pending_write_waits_its_turn() {
    let mut core = core_with(2, 3, 1, &[], fixed_config());
    core.step(append_input(
        5,
        append_request(1, 1, log_id(0, 1), vec![command_entry(1, 2, "a")], 1),
    ));
    let actions = core.step(append_input(
        6,
        append_request(1, 1, log_id(0, 1), vec![], 1),
    ));
    assert!(
        actions.is_empty(),
        "replies keep arrival order: {actions:?}"
    );
    let actions = core.step(Input::LogPersisted {
        up_to: log_id(1, 2),
    });
    assert_eq!(
        actions,
        vec![
            append_reply(1, 5, 1, success(2)),
            append_reply(1, 6, 1, success(2))
        ]
    );
}

#[test]
fn follower_with_a_shorter_log_says_where_it_ends() {
    let mut core = core_with(2, 3, 1, &[1], fixed_config());
    let actions = core.step(append_input(
        5,
        append_request(1, 1, log_id(1, 6), vec![], 1),
    ));
    assert_eq!(actions, vec![append_reply(1, 5, 1, conflict(6, None, 3))]);
}

#[test]
fn follower_with_a_conflicting_term_names_the_term_and_where_it_starts() {
    let mut core = core_with(2, 3, 3, &[1, 2, 2, 2], fixed_config());
    let actions = core.step(append_input(
        5,
        append_request(3, 1, log_id(3, 5), vec![], 1),
    ));
    assert_eq!(
        actions,
        vec![
            save(3, None),
            append_reply(1, 5, 3, conflict(5, Some(2), 3))
        ]
        .split_off(1)
    );
}

#[test]
fn conflicting_suffix_is_truncated_then_replaced() {
    let mut core = core_with(2, 3, 3, &[1, 2, 2], fixed_config());
    let entries = vec![command_entry(3, 3, "x"), command_entry(3, 4, "y")];
    let actions = core.step(append_input(
        5,
        append_request(3, 1, log_id(1, 2), entries.clone(), 2),
    ));
    assert_eq!(actions[0], Action::TruncateLog { from: LogIndex(3) });
    assert_eq!(actions[1], Action::AppendLog { entries });
    assert_eq!(core.last_log_id(), log_id(3, 4));
}

#[test]
fn entries_already_held_are_not_rewritten() {
    let mut core = core_with(2, 3, 1, &[1, 1], fixed_config());
    let entries = vec![command_entry(1, 2, "1@2"), command_entry(1, 3, "1@3")];
    let actions = core.step(append_input(
        5,
        append_request(1, 1, log_id(0, 1), entries, 1),
    ));
    assert_eq!(
        actions,
        vec![append_reply(1, 5, 1, success(3))],
        "durable already: reply at once"
    );
}

#[test]
fn stale_leader_is_told_the_newer_term() {
    let mut core = core_with(2, 3, 4, &[], fixed_config());
    let actions = core.step(append_input(
        5,
        append_request(3, 1, log_id(0, 1), vec![], 1),
    ));
    assert_eq!(
        actions,
        vec![append_reply(1, 5, 4, AppendOutcome::StaleTerm)]
    );
}

#[test]
fn follower_commits_only_what_it_knows_matches_the_leader() {
    let mut core = core_with(2, 3, 2, &[1, 1, 1], fixed_config());
    // Leader commit 4, but this message only proves a match up to 2.
    core.step(append_input(
        5,
        append_request(2, 1, log_id(1, 2), vec![], 4),
    ));
    assert_eq!(core.commit_index(), LogIndex(2));
}

#[test]
fn leader_counts_its_own_log_only_once_durable() {
    let mut core = leader_of(3, fixed_config());
    core.step(propose(1, "a"));
    let actions = core.step(append_response(2, 1, success(3)));
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Apply { .. })),
        "{actions:?}"
    );
    assert_eq!(
        core.commit_index(),
        LogIndex(2),
        "own write not durable: no quorum for 3"
    );
    let actions = core.step(Input::LogPersisted {
        up_to: log_id(1, 3),
    });
    assert_eq!(
        actions,
        vec![Action::Apply {
            entries: vec![command_entry(1, 3, "a")],
            clients: vec![(LogIndex(3), RequestId(1))]
        }]
    );
}

#[test]
fn leader_never_commits_an_older_term_entry_by_counting() {
    // Node 1 leads term 3 with an uncommitted 2@3 inherited from term 2 (Figure 8).
    let config = Config {
        pre_vote: false,
        ..fixed_config()
    };
    let mut core = core_with(1, 3, 2, &[1, 2], config);
    tick_until_action(&mut core);
    core.step(vote_response(2, 3, true, false));
    assert_eq!(core.role(), Role::Leader);
    // A follower acknowledges 2@3 but not yet the blank 3@4.
    core.step(Input::LogPersisted {
        up_to: log_id(3, 4),
    });
    core.step(append_response(2, 3, success(3)));
    assert_eq!(
        core.commit_index(),
        LogIndex(1),
        "2@3 is on a majority but from an older term"
    );
    core.step(append_response(2, 3, success(4)));
    assert_eq!(
        core.commit_index(),
        LogIndex(4),
        "the term-3 entry commits, and 2@3 with it"
    );
}

#[test]
fn rejection_at_or_below_match_is_stale_and_ignored() {
    let mut core = leader_of(3, fixed_config());
    for i in 0..5 {
        core.step(propose(i, "c"));
    }
    // Follower 2 is known to match up to 2; a rejection of prev index 2 is an old message.
    let actions = core.step(append_response(2, 1, conflict(2, None, 2)));
    assert!(appends_sent(&actions).is_empty(), "{actions:?}");
}

#[test]
fn rejection_moves_the_probe_to_the_hinted_index() {
    let config = Config {
        pre_vote: false,
        ..fixed_config()
    };
    // Leader log: bootstrap, 1@2, 1@3, 2@4, 2@5, then its own blank 3@6.
    let mut core = core_with(1, 3, 2, &[1, 1, 2, 2], config);
    tick_until_action(&mut core);
    core.step(vote_response(2, 3, true, false));
    // Follower 3 has a run of term 1... then a term it does not share: it holds term 1 at 5
    // (rejected_index 5, the probe's prev), first index of that run 2.
    let actions = core.step(append_response(3, 3, conflict(5, Some(1), 2)));
    let sent = appends_sent(&actions);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].1.prev_log_id,
        log_id(1, 3),
        "retry right after our last term-1 entry"
    );
    // The follower's log ends before 2: retry from 2.
    let actions = core.step(append_response(3, 3, conflict(3, None, 2)));
    assert_eq!(appends_sent(&actions)[0].1.prev_log_id, log_id(0, 1));
}

#[test]
fn pipeline_is_bounded_by_message_count() {
    let config = Config {
        max_inflight_messages: 2,
        max_entries_per_message: 1,
        ..fixed_config()
    };
    let mut core = leader_of(2, config);
    let mut sent = 0;
    for i in 0..5 {
        sent += appends_sent(&core.step(propose(i, "p"))).len();
    }
    assert_eq!(sent, 2, "two messages in flight at most");
    let actions = core.step(append_response(2, 1, success(3)));
    assert_eq!(
        appends_sent(&actions).len(),
        1,
        "one acknowledged, one more may go"
    );
}

#[test]
fn pipeline_is_bounded_by_bytes() {
    let config = Config {
        max_inflight_bytes: 10,
        max_entries_per_message: 1,
        ..fixed_config()
    };
    let mut core = leader_of(2, config);
    let mut sent = 0;
    for i in 0..5 {
        sent += appends_sent(&core.step(propose(i, "0123456789"))).len();
    }
    assert_eq!(sent, 1, "the first 10-byte message fills the byte budget");
}

#[test]
fn message_size_is_bounded_by_count_and_bytes() {
    let config = Config {
        max_entries_per_message: 3,
        max_payload_bytes_per_message: 100,
        ..fixed_config()
    };
    let mut core = leader_of(2, config);
    // Queue 10 entries while follower 2 is probing again (a rejection).
    let mut proposals = Vec::new();
    for i in 0..10 {
        proposals.push(crate::core::Proposal {
            request: RequestId(i),
            command: std::sync::Arc::from(
                &b"12345678901234567890123456789012345678901234567890"[..],
            ),
        });
    }
    core.step(Input::Propose(proposals));
    let actions = core.step(append_response(2, 1, success(2)));
    for (_, req) in appends_sent(&actions) {
        assert!(
            req.entries.len() <= 2,
            "50-byte entries, 100-byte budget: {}",
            req.entries.len()
        );
    }
}

#[test]
fn heartbeat_commit_is_capped_at_the_followers_match() {
    let mut core = leader_of(3, fixed_config());
    core.step(propose(1, "a"));
    core.step(Input::LogPersisted {
        up_to: log_id(1, 3),
    });
    core.step(append_response(2, 1, success(3)));
    assert_eq!(core.commit_index(), LogIndex(3));
    let mut heartbeats = Vec::new();
    for _ in 0..3 {
        heartbeats.extend(appends_sent(&core.step(Input::Tick)));
    }
    let to_3 = heartbeats
        .iter()
        .find(|(to, _)| *to == n(3))
        .expect("heartbeat to 3");
    assert!(to_3.1.entries.is_empty());
    assert_eq!(
        to_3.1.leader_commit,
        LogIndex(2),
        "node 3 is only known to match up to 2"
    );
    let to_2 = heartbeats
        .iter()
        .find(|(to, _)| *to == n(2))
        .expect("heartbeat to 2");
    assert_eq!(to_2.1.leader_commit, LogIndex(3));
}

#[test]
fn stalled_pipeline_falls_back_to_probing() {
    let mut core = leader_of(2, fixed_config());
    core.step(propose(1, "lost"));
    // The message and its answer are lost; after a minimum election timeout the leader probes.
    let mut resent = Vec::new();
    for _ in 0..12 {
        core.step(append_response(2, 1, success(2)));
        resent.extend(appends_sent(&core.step(Input::Tick)));
    }
    assert!(
        resent
            .iter()
            .any(|(_, req)| req.entries.iter().any(|e| e.log_id == log_id(1, 3))),
        "entry 3 is sent again: {resent:?}"
    );
}

#[test]
fn follower_progress_switches_to_replicate_after_a_successful_probe() {
    let mut core = leader_of(2, fixed_config());
    let actions = core.step(propose(1, "a"));
    let sent = appends_sent(&actions);
    assert_eq!(sent.len(), 1, "replicating: the new entry goes at once");
    assert_eq!(sent[0].1.prev_log_id, log_id(1, 2));
    let _ = ProgressState::Replicate;
    let _ = Request::AppendEntries;
}

#[test]
fn overwritten_proposal_is_answered_dropped_only_once_another_entry_commits() {
    let mut core = leader_of(3, fixed_config());
    core.step(propose(42, "doomed"));
    // A new leader of term 2 overwrites index 3 here. The entry may survive on another node and
    // still commit, so the client is not answered yet.
    let actions = core.step(append_input(
        9,
        append_request(2, 2, log_id(1, 2), vec![blank(2, 3)], 2),
    ));
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Reject { .. })),
        "{actions:?}"
    );
    core.step(Input::LogPersisted {
        up_to: log_id(2, 3),
    });
    // Once 2@3 is committed, 1@3 never can be: now the client hears `Dropped`.
    let actions = core.step(append_input(
        10,
        append_request(2, 2, log_id(2, 3), vec![], 3),
    ));
    let dropped = Action::Reject {
        request: RequestId(42),
        error: crate::error::ProposeError::Dropped { leader: Some(n(2)) },
    };
    assert!(actions.contains(&dropped), "{actions:?}");
}

#[test]
fn a_probe_in_flight_is_not_sent_again_when_replication_starts() {
    // Node 2 acknowledged the blank entry; a new leader term probes it with entry 3 in flight.
    let config = Config {
        pre_vote: false,
        ..fixed_config()
    };
    let mut core = core_with(1, 2, 1, &[1], config);
    tick_until_action(&mut core);
    let actions = core.step(vote_response(2, 2, true, false));
    let probe = appends_sent(&actions);
    assert_eq!(probe.len(), 1);
    assert_eq!(probe[0].1.prev_log_id, log_id(1, 2));
    // A heartbeat-style acknowledgement at the probe's prev index arrives first: the follower
    // matches up to 2, so replication starts; entry 2@3 is already on its way.
    let actions = core.step(append_response(2, 2, success(2)));
    assert!(
        appends_sent(&actions).is_empty(),
        "2@3 sent twice: {actions:?}"
    );
    // A partial message waits while 2@3 is in flight (Nagle's rule), then follows it.
    let actions = core.step(propose(1, "next"));
    assert!(appends_sent(&actions).is_empty(), "{actions:?}");
    let actions = core.step(append_response(2, 2, success(3)));
    let sent = appends_sent(&actions);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].1.prev_log_id,
        log_id(2, 3),
        "replication continues after the probe"
    );
}

/// A leader with node 2 replicating and one message to it in flight, under `config`.
fn leader_with_message_in_flight(config: Config) -> crate::core::Core {
    let mut core = core_with(
        1,
        2,
        1,
        &[1],
        Config {
            pre_vote: false,
            ..config
        },
    );
    tick_until_action(&mut core);
    core.step(vote_response(2, 2, true, false));
    core.step(append_response(2, 2, success(2)));
    core
}

#[test]
fn partial_messages_wait_for_the_one_in_flight_and_then_go_together() {
    let mut core = leader_with_message_in_flight(fixed_config());
    for request in 1..=3 {
        let actions = core.step(propose(request, "w"));
        assert!(appends_sent(&actions).is_empty(), "{actions:?}");
    }
    let actions = core.step(append_response(2, 2, success(3)));
    let sent = appends_sent(&actions);
    assert_eq!(sent.len(), 1, "{actions:?}");
    assert_eq!(sent[0].1.prev_log_id, log_id(2, 3));
    assert_eq!(
        sent[0].1.entries.len(),
        3,
        "the three writes share one message"
    );
}

#[test]
fn full_messages_pipeline_and_partial_ones_may_when_configured() {
    let full = Config {
        max_entries_per_message: 2,
        ..fixed_config()
    };
    let mut core = leader_with_message_in_flight(full);
    core.step(propose(1, "a"));
    let actions = core.step(propose(2, "b"));
    let sent = appends_sent(&actions);
    assert_eq!(
        sent.len(),
        1,
        "a full message goes beside the one in flight"
    );
    assert_eq!(sent[0].1.entries.len(), 2);

    let eager = Config {
        pipeline_partial_messages: true,
        ..fixed_config()
    };
    let mut core = leader_with_message_in_flight(eager);
    let actions = core.step(propose(1, "a"));
    assert_eq!(appends_sent(&actions).len(), 1, "{actions:?}");
}
