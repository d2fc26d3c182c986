//! One input, the exact actions: log compaction and InstallSnapshot (§7; `core/snapshot.rs`).

use crate::config::Config;
use crate::core::{Action, Core, HardState, Input, ProgressState, Recovered};
use crate::error::RecoveryError;
use crate::membership::Membership;
use crate::message::{
    InstallSnapshotRequest, InstallSnapshotResponse, Request, Response, SnapshotOutcome,
};
use crate::types::{LogId, LogIndex, NodeId, RpcId, SnapshotMeta, Term};

use super::support::*;

fn compaction_config(threshold: u64, keep_tail: u64) -> Config {
    Config {
        snapshot_threshold_entries: threshold,
        snapshot_keep_tail_entries: keep_tail,
        snapshot_chunk_bytes: 10,
        snapshot_chunk_timeout_ticks: 4,
        ..fixed_config()
    }
}

fn meta(last_included: LogId, voters: u64, size: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_included,
        membership: Membership::new((1..=voters).map(NodeId)),
        size_bytes: size,
    }
}

/// A leader of 3 that committed and applied `a`, `b`, `c` at 3..=5 with node 2's help (node 3
/// has entries 3..=5 in flight), and whose state machine reported applying up to 5.
fn leader_with_applied_commands(config: Config) -> (Core, Vec<Action>) {
    let mut core = leader_of(3, config);
    core.step(propose(1, "a"));
    core.step(propose(2, "b"));
    core.step(propose(3, "c"));
    core.step(Input::LogPersisted {
        up_to: log_id(1, 5),
    });
    let actions = core.step(append_response(2, 1, success(5)));
    core.step(Input::Applied { up_to: LogIndex(5) });
    (core, actions)
}

/// The leader above, after its snapshot at 1@5 (25 bytes) was built and the log compacted.
fn compacted_leader(keep_tail: u64) -> Core {
    let (mut core, _) = leader_with_applied_commands(compaction_config(4, keep_tail));
    core.step(Input::SnapshotBuilt {
        meta: meta(log_id(1, 5), 3, 25),
    });
    core
}

fn chunk_request(
    term: u64,
    snapshot: &SnapshotMeta,
    offset: u64,
    data: &[u8],
    done: bool,
) -> InstallSnapshotRequest {
    InstallSnapshotRequest {
        term: Term(term),
        leader_id: n(1),
        meta: snapshot.clone(),
        offset,
        data: data.to_vec(),
        done,
        round: 0,
    }
}

fn chunk_input(rpc: u64, req: InstallSnapshotRequest) -> Input {
    Input::Request {
        from: req.leader_id,
        rpc: RpcId(rpc),
        request: Request::InstallSnapshot(req),
    }
}

fn snapshot_reply(rpc: u64, term: u64, last: LogId, outcome: SnapshotOutcome) -> Action {
    Action::Reply {
        to: n(1),
        rpc: RpcId(rpc),
        response: Response::InstallSnapshot(InstallSnapshotResponse {
            term: Term(term),
            last_included: last,
            outcome,
            round: 0,
        }),
    }
}

fn snapshot_response(from: u64, term: u64, last: LogId, outcome: SnapshotOutcome) -> Input {
    Input::Response {
        from: n(from),
        response: Response::InstallSnapshot(InstallSnapshotResponse {
            term: Term(term),
            last_included: last,
            outcome,
            round: 0,
        }),
    }
}

/// The chunks among `actions` (rounds are the read-index's business, not checked here).
fn chunks(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::SendSnapshotChunk { to, request, len } => {
                let mut request = request.clone();
                request.round = 0;
                Some(Action::SendSnapshotChunk {
                    to: *to,
                    request,
                    len: *len,
                })
            }
            _ => None,
        })
        .collect()
}

fn chunk_sent(to: u64, snapshot: &SnapshotMeta, offset: u64, len: u64, done: bool) -> Action {
    let request = chunk_request(1, snapshot, offset, &[], done);
    Action::SendSnapshotChunk {
        to: n(to),
        request,
        len,
    }
}

fn ticks(core: &mut Core, count: u64) -> Vec<Action> {
    let mut actions = Vec::new();
    for _ in 0..count {
        actions.extend(core.step(Input::Tick));
    }
    actions
}

fn progress_state(core: &Core, peer: u64) -> ProgressState {
    match &core.role {
        super::super::node::RoleState::Leader(leader) => leader.progress[&n(peer)].state,
        _ => panic!("not a leader"),
    }
}

#[test]
fn compaction_is_off_by_default() {
    let (_, actions) = leader_with_applied_commands(fixed_config());
    assert!(
        !actions
            .iter()
            .any(|action| matches!(action, Action::BuildSnapshot { .. })),
        "{actions:?}"
    );
}

#[test]
fn the_snapshot_is_asked_for_right_behind_the_apply_that_reaches_the_threshold() {
    let (mut core, actions) = leader_with_applied_commands(compaction_config(4, 0));
    let tail: Vec<&Action> = actions.iter().rev().take(2).collect();
    assert!(
        matches!(tail[1], Action::Apply { entries, .. } if entries.last().map(|e| e.log_id) == Some(log_id(1, 5))),
        "{actions:?}"
    );
    assert_eq!(
        tail[0],
        &Action::BuildSnapshot {
            last_included: log_id(1, 5),
            membership: Membership::new((1..=3).map(NodeId)),
        }
    );
    core.step(propose(4, "d"));
    core.step(Input::LogPersisted {
        up_to: log_id(1, 6),
    });
    let actions = core.step(append_response(2, 1, success(6)));
    assert!(
        !actions
            .iter()
            .any(|action| matches!(action, Action::BuildSnapshot { .. })),
        "one build at a time: {actions:?}"
    );
}

fn byte_config(threshold_bytes: u64) -> Config {
    Config {
        snapshot_threshold_bytes: threshold_bytes,
        ..compaction_config(0, 0)
    }
}

fn builds(actions: &[Action]) -> Vec<LogId> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::BuildSnapshot { last_included, .. } => Some(*last_included),
            _ => None,
        })
        .collect()
}

/// Proposes `command` at `index` on the leader of `leader_with_applied_commands` and commits
/// and applies it; returns the actions of the commit.
fn commit_next(core: &mut Core, index: u64, command: &str) -> Vec<Action> {
    core.step(propose(index, command));
    core.step(Input::LogPersisted {
        up_to: log_id(1, index),
    });
    let actions = core.step(append_response(2, 1, success(index)));
    core.step(Input::Applied {
        up_to: LogIndex(index),
    });
    actions
}

#[test]
fn a_snapshot_is_asked_for_once_the_applied_payload_reaches_the_byte_threshold() {
    // Applied through 5: the bootstrap configuration (3 voters, 48 bytes), a blank, `a` `b` `c`.
    let (_, actions) = leader_with_applied_commands(byte_config(51));
    assert_eq!(builds(&actions), vec![log_id(1, 5)], "{actions:?}");
    let (mut core, actions) = leader_with_applied_commands(byte_config(53));
    assert_eq!(builds(&actions), vec![], "51 bytes are below 53");
    assert_eq!(builds(&commit_next(&mut core, 6, "d")), vec![], "52 < 53");
    assert_eq!(builds(&commit_next(&mut core, 7, "e")), vec![log_id(1, 7)]);
}

#[test]
fn the_byte_count_starts_again_after_each_snapshot() {
    let (mut core, actions) = leader_with_applied_commands(byte_config(51));
    assert_eq!(builds(&actions), vec![log_id(1, 5)]);
    // Applied while the build is under way: counts toward the next snapshot.
    assert_eq!(builds(&commit_next(&mut core, 6, &"x".repeat(40))), vec![]);
    core.step(Input::SnapshotBuilt {
        meta: meta(log_id(1, 5), 3, 25),
    });
    assert_eq!(builds(&commit_next(&mut core, 7, &"y".repeat(10))), vec![]);
    assert_eq!(builds(&commit_next(&mut core, 8, "z")), vec![log_id(1, 8)]);
}

#[test]
fn whichever_threshold_is_reached_first_asks_for_the_snapshot() {
    let config = Config {
        snapshot_threshold_entries: 6,
        ..byte_config(1_000)
    };
    let (mut core, actions) = leader_with_applied_commands(config);
    assert_eq!(builds(&actions), vec![], "5 entries, 51 bytes");
    assert_eq!(builds(&commit_next(&mut core, 6, "d")), vec![log_id(1, 6)]);
    let config = Config {
        snapshot_threshold_entries: 100,
        ..byte_config(60)
    };
    let (mut core, _) = leader_with_applied_commands(config);
    assert_eq!(
        builds(&commit_next(&mut core, 6, "0123456789")),
        vec![log_id(1, 6)]
    );
}

#[test]
fn a_built_snapshot_purges_the_log_but_its_tail() {
    let (mut core, _) = leader_with_applied_commands(compaction_config(4, 2));
    let actions = core.step(Input::SnapshotBuilt {
        meta: meta(log_id(1, 5), 3, 25),
    });
    assert_eq!(
        actions,
        vec![Action::PurgeLog {
            up_to: log_id(1, 3)
        }]
    );
    assert_eq!(core.log_base(), log_id(1, 3));
    assert_eq!(core.entries().len(), 2, "4 and 5 kept for followers behind");
    assert_eq!(core.snapshot().map(|s| s.last_included), Some(log_id(1, 5)));
}

#[test]
fn a_follower_needing_a_purged_entry_gets_the_snapshot_chunk_by_chunk() {
    let mut core = compacted_leader(0);
    let snapshot = meta(log_id(1, 5), 3, 25);
    // Node 3 never acknowledged 3..=5, which were purged: its heartbeat becomes a snapshot.
    let actions = ticks(&mut core, 3);
    assert_eq!(appends_sent(&actions).len(), 1, "node 2 gets a heartbeat");
    assert_eq!(
        chunks(&actions),
        vec![chunk_sent(3, &snapshot, 0, 10, false)],
        "node 3 needs entry 3"
    );
    assert_eq!(progress_state(&core, 3), ProgressState::Snapshot);
    let continue_at = |offset| SnapshotOutcome::Continue {
        next_offset: offset,
    };
    let actions = core.step(snapshot_response(3, 1, log_id(1, 5), continue_at(10)));
    assert_eq!(actions.len(), 1, "only the next chunk: {actions:?}");
    assert_eq!(
        chunks(&actions),
        vec![chunk_sent(3, &snapshot, 10, 10, false)]
    );
    let actions = core.step(snapshot_response(3, 1, log_id(1, 5), continue_at(20)));
    assert_eq!(
        chunks(&actions),
        vec![chunk_sent(3, &snapshot, 20, 5, true)]
    );
    let installed = SnapshotOutcome::Installed {
        match_index: LogIndex(5),
    };
    let actions = core.step(snapshot_response(3, 1, log_id(1, 5), installed));
    assert_eq!(actions, Vec::new(), "nothing after 5 to send yet");
    assert_eq!(progress_state(&core, 3), ProgressState::Replicate);
    let actions = core.step(propose(5, "e"));
    let sent = appends_sent(&actions);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].0, n(3));
    assert_eq!(
        sent[1].1.prev_log_id,
        log_id(1, 5),
        "replication resumes after the snapshot"
    );
}

#[test]
fn an_unanswered_chunk_is_sent_again_after_the_timeout_from_the_acknowledged_offset() {
    let mut core = compacted_leader(0);
    let snapshot = meta(log_id(1, 5), 3, 25);
    ticks(&mut core, 3);
    core.step(snapshot_response(
        3,
        1,
        log_id(1, 5),
        SnapshotOutcome::Continue { next_offset: 10 },
    ));
    // The chunk at 10 is lost. Heartbeats come every 3 ticks; the timeout is 4.
    let actions = ticks(&mut core, 3);
    assert_eq!(chunks(&actions), Vec::new(), "not yet timed out");
    let actions = ticks(&mut core, 3);
    assert_eq!(
        chunks(&actions),
        vec![chunk_sent(3, &snapshot, 10, 10, false)],
        "resent from the last acknowledged offset"
    );
}

#[test]
fn a_leader_resumes_where_the_follower_says_it_stands() {
    let mut core = compacted_leader(0);
    let snapshot = meta(log_id(1, 5), 3, 25);
    ticks(&mut core, 3);
    // The follower restarted and lost its partial snapshot: it wants offset 0 again.
    let actions = core.step(snapshot_response(
        3,
        1,
        log_id(1, 5),
        SnapshotOutcome::Continue { next_offset: 0 },
    ));
    assert_eq!(
        chunks(&actions),
        vec![chunk_sent(3, &snapshot, 0, 10, false)]
    );
}

#[test]
fn follower_stores_chunks_installs_on_the_last_and_acknowledges_once_durable() {
    let mut core = core_with(3, 3, 1, &[], fixed_config());
    let snapshot = meta(log_id(1, 5), 3, 15);
    let actions = core.step(chunk_input(
        7,
        chunk_request(1, &snapshot, 0, &[1; 10], false),
    ));
    assert_eq!(
        actions,
        vec![
            Action::ReceiveSnapshotChunk {
                meta: snapshot.clone(),
                offset: 0,
                data: vec![1; 10],
            },
            snapshot_reply(
                7,
                1,
                log_id(1, 5),
                SnapshotOutcome::Continue { next_offset: 10 }
            ),
        ]
    );
    let actions = core.step(chunk_input(
        8,
        chunk_request(1, &snapshot, 10, &[2; 5], true),
    ));
    assert_eq!(
        actions,
        vec![
            Action::ReceiveSnapshotChunk {
                meta: snapshot.clone(),
                offset: 10,
                data: vec![2; 5],
            },
            Action::InstallSnapshot {
                meta: snapshot.clone()
            },
            Action::RestoreSnapshot {
                meta: snapshot.clone()
            },
        ],
        "no acknowledgement before the install is durable (contract 2)"
    );
    assert_eq!(core.log_base(), log_id(1, 5));
    assert_eq!(core.commit_index(), LogIndex(5));
    let actions = core.step(Input::SnapshotInstalled {
        last_included: log_id(1, 5),
    });
    let installed = SnapshotOutcome::Installed {
        match_index: LogIndex(5),
    };
    assert_eq!(actions, vec![snapshot_reply(8, 1, log_id(1, 5), installed)]);
    let actions = core.step(Input::Applied { up_to: LogIndex(5) });
    assert_eq!(
        actions,
        Vec::new(),
        "the snapshot is restored, never applied entry by entry"
    );
    assert_eq!(core.last_applied(), LogIndex(5));
}

#[test]
fn a_chunk_out_of_place_is_answered_with_the_offset_the_follower_expects() {
    let mut core = core_with(3, 3, 1, &[], fixed_config());
    let snapshot = meta(log_id(1, 5), 3, 30);
    core.step(chunk_input(
        7,
        chunk_request(1, &snapshot, 0, &[1; 10], false),
    ));
    let actions = core.step(chunk_input(
        8,
        chunk_request(1, &snapshot, 20, &[1; 10], true),
    ));
    assert_eq!(
        actions,
        vec![snapshot_reply(
            8,
            1,
            log_id(1, 5),
            SnapshotOutcome::Continue { next_offset: 10 }
        )]
    );
    // A chunk of another snapshot does not continue this one.
    let other = meta(log_id(1, 6), 3, 30);
    let actions = core.step(chunk_input(
        9,
        chunk_request(1, &other, 10, &[1; 10], false),
    ));
    assert_eq!(
        actions,
        vec![snapshot_reply(
            9,
            1,
            log_id(1, 6),
            SnapshotOutcome::Continue { next_offset: 0 }
        )]
    );
}

#[test]
fn a_snapshot_at_or_below_the_commit_index_is_refused() {
    // Node 2 committed 1@3.
    let mut core = core_with(2, 3, 1, &[1, 1], fixed_config());
    core.step(append_input(
        5,
        append_request(1, 1, log_id(1, 3), vec![], 3),
    ));
    assert_eq!(core.commit_index(), LogIndex(3));
    let snapshot = meta(log_id(1, 3), 3, 10);
    let actions = core.step(chunk_input(
        6,
        chunk_request(1, &snapshot, 0, &[0; 10], true),
    ));
    assert_eq!(
        actions,
        vec![snapshot_reply(
            6,
            1,
            log_id(1, 3),
            SnapshotOutcome::Stale {
                match_index: LogIndex(3)
            }
        )]
    );
    assert_eq!(core.log_base(), LogId::default(), "nothing changed");
}

#[test]
fn a_snapshot_from_an_older_term_is_refused() {
    let mut core = core_with(2, 3, 2, &[], fixed_config());
    let snapshot = meta(log_id(1, 5), 3, 10);
    let actions = core.step(chunk_input(
        6,
        chunk_request(1, &snapshot, 0, &[0; 10], true),
    ));
    assert_eq!(
        actions,
        vec![snapshot_reply(
            6,
            2,
            log_id(1, 5),
            SnapshotOutcome::StaleTerm
        )]
    );
}

#[test]
fn a_follower_holding_the_last_included_entry_keeps_its_log() {
    // §7 step 6. Node 2 holds 1@2..1@4 durably, commit 1.
    let mut core = core_with(2, 3, 1, &[1, 1, 1], fixed_config());
    let snapshot = meta(log_id(1, 3), 3, 10);
    let actions = core.step(chunk_input(
        6,
        chunk_request(1, &snapshot, 0, &[0; 10], true),
    ));
    assert_eq!(
        actions,
        vec![
            snapshot_reply(
                6,
                1,
                log_id(1, 3),
                SnapshotOutcome::Installed {
                    match_index: LogIndex(3)
                }
            ),
            Action::Apply {
                entries: vec![command_entry(1, 2, "1@2"), command_entry(1, 3, "1@3")],
                clients: vec![],
            },
        ]
    );
    assert_eq!(
        core.last_log_id(),
        log_id(1, 4),
        "the entry after it is kept"
    );
}

#[test]
fn a_conflicting_log_is_discarded_and_the_snapshot_configuration_taken() {
    // Node 3 of {1,2,3} holds 1@2, 1@3 from a deposed leader; the snapshot at 2@4 was taken
    // after a membership change to {1,2,3,4} inside its range.
    let mut core = core_with(3, 3, 2, &[1, 1], fixed_config());
    let snapshot = meta(log_id(2, 4), 4, 5);
    let mut request = chunk_request(2, &snapshot, 0, &[0; 5], true);
    request.leader_id = n(4);
    let actions = core.step(chunk_input(6, request));
    assert!(
        actions.contains(&Action::InstallSnapshot {
            meta: snapshot.clone()
        }),
        "{actions:?}"
    );
    assert!(core.entries().is_empty());
    assert_eq!(core.last_log_id(), log_id(2, 4));
    assert_eq!(core.membership(), &Membership::new((1..=4).map(NodeId)));
    assert_eq!(core.leader(), Some(n(4)));
}

#[test]
fn a_snapshot_arriving_while_applying_is_restored_after_the_applies_in_flight() {
    // Node 2 committed 2..=3 and handed them to Apply; the state machine has not finished.
    let mut core = core_with(2, 3, 1, &[1, 1], fixed_config());
    let actions = core.step(append_input(
        5,
        append_request(1, 1, log_id(1, 3), vec![], 3),
    ));
    assert!(
        matches!(actions.last(), Some(Action::Apply { .. })),
        "{actions:?}"
    );
    let snapshot = meta(log_id(1, 8), 3, 5);
    let actions = core.step(chunk_input(
        6,
        chunk_request(1, &snapshot, 0, &[0; 5], true),
    ));
    assert_eq!(
        &actions[1..],
        &[
            Action::InstallSnapshot {
                meta: snapshot.clone()
            },
            Action::RestoreSnapshot {
                meta: snapshot.clone()
            },
        ]
    );
    // The earlier apply completes first (the apply stream is ordered), then the restore.
    assert_eq!(core.step(Input::Applied { up_to: LogIndex(3) }), Vec::new());
    assert_eq!(core.last_applied(), LogIndex(3));
    assert_eq!(core.step(Input::Applied { up_to: LogIndex(8) }), Vec::new());
    assert_eq!(core.last_applied(), LogIndex(8));
}

#[test]
fn a_purge_while_a_follower_is_replicating_switches_it_to_the_snapshot() {
    let mut core = compacted_leader(0);
    assert_eq!(progress_state(&core, 3), ProgressState::Replicate);
    // Node 3's acknowledgement of 3..=5, in flight before the purge, still counts.
    let actions = core.step(append_response(3, 1, success(5)));
    assert_eq!(actions, Vec::new());
    assert_eq!(progress_state(&core, 3), ProgressState::Replicate);
    let actions = ticks(&mut core, 3);
    let heartbeats = appends_sent(&actions);
    assert_eq!(heartbeats.len(), 2);
    assert_eq!(heartbeats[1].1.prev_log_id, log_id(1, 5), "from the base");
}

#[test]
fn a_follower_catching_up_by_entries_in_flight_drops_the_snapshot() {
    let mut core = compacted_leader(0);
    ticks(&mut core, 3);
    assert_eq!(progress_state(&core, 3), ProgressState::Snapshot);
    core.step(append_response(3, 1, success(5)));
    assert_eq!(progress_state(&core, 3), ProgressState::Replicate);
}

#[test]
fn append_entries_reaching_below_the_base_is_cut_at_the_base() {
    let mut core = core_with(3, 3, 1, &[], fixed_config());
    let snapshot = meta(log_id(1, 5), 3, 5);
    core.step(chunk_input(
        6,
        chunk_request(1, &snapshot, 0, &[0; 5], true),
    ));
    core.step(Input::SnapshotInstalled {
        last_included: log_id(1, 5),
    });
    let entries = vec![
        command_entry(1, 4, "x"),
        command_entry(1, 5, "y"),
        command_entry(1, 6, "z"),
    ];
    let actions = core.step(append_input(
        7,
        append_request(1, 1, log_id(1, 3), entries, 5),
    ));
    assert_eq!(
        actions,
        vec![Action::AppendLog {
            entries: vec![command_entry(1, 6, "z")]
        }]
    );
}

fn recovered(log_terms: &[u64], snapshot: Option<SnapshotMeta>, applied: u64) -> Recovered {
    Recovered {
        hard_state: HardState {
            term: Term(3),
            voted_for: None,
        },
        log: log_with_terms(3, log_terms),
        last_applied: LogIndex(applied),
        snapshot,
    }
}

#[test]
fn a_node_restarts_from_its_snapshot_and_the_log_tail() {
    // Log 1..=6 (terms 0,1,1,2,2,3) kept whole, snapshot at 2@5.
    let state = recovered(&[1, 1, 2, 2, 3], Some(meta(log_id(2, 5), 3, 9)), 5);
    let core = Core::new(n(1), fixed_config(), state, 1).expect("valid");
    assert_eq!(core.log_base(), log_id(2, 5));
    assert_eq!(core.last_log_id(), log_id(3, 6));
    assert_eq!(core.commit_index(), LogIndex(5));
    assert_eq!(core.last_applied(), LogIndex(5));
    assert_eq!(core.membership(), &Membership::new((1..=3).map(NodeId)));
    // A log that does not reach the snapshot, or disagrees with it, is dropped whole.
    let state = recovered(&[1, 1], Some(meta(log_id(2, 5), 3, 9)), 5);
    let core = Core::new(n(1), fixed_config(), state, 1).expect("valid");
    assert_eq!(core.last_log_id(), log_id(2, 5));
    let state = recovered(&[1, 1, 1, 1, 1], Some(meta(log_id(2, 5), 3, 9)), 5);
    let core = Core::new(n(1), fixed_config(), state, 1).expect("valid");
    assert_eq!(core.last_log_id(), log_id(2, 5));
}

#[test]
fn a_restarted_node_counts_the_applied_bytes_after_its_snapshot() {
    // Snapshot at 2@5; the state machine already holds 6 (`3@6`, 3 bytes).
    let restart = |threshold_bytes| {
        let state = recovered(&[1, 1, 2, 2, 3], Some(meta(log_id(2, 5), 3, 9)), 6);
        let mut core = Core::new(n(1), byte_config(threshold_bytes), state, 1).expect("valid");
        core.step(Input::Tick)
    };
    assert_eq!(builds(&restart(3)), vec![log_id(3, 6)]);
    assert_eq!(builds(&restart(4)), vec![]);
}

#[test]
fn recovery_refuses_a_state_machine_behind_its_snapshot_or_a_gap_after_it() {
    let state = recovered(&[1, 1, 2, 2], Some(meta(log_id(2, 5), 3, 9)), 1);
    assert!(matches!(
        Core::new(n(1), fixed_config(), state, 1),
        Err(RecoveryError::AppliedBelowSnapshot { .. })
    ));
    let mut state = recovered(&[1, 1, 2, 2, 3, 3], Some(meta(log_id(1, 3), 3, 9)), 3);
    state.log.drain(..4);
    assert_eq!(
        state.log[0].log_id,
        log_id(2, 5),
        "starts two after the snapshot"
    );
    assert!(matches!(
        Core::new(n(1), fixed_config(), state, 1),
        Err(RecoveryError::BrokenLog { .. })
    ));
}

#[test]
fn a_newer_snapshot_does_not_restart_a_transfer_until_three_chunks_go_unanswered() {
    let mut core = compacted_leader(0);
    let first = meta(log_id(1, 5), 3, 25);
    ticks(&mut core, 3);
    core.step(snapshot_response(
        3,
        1,
        log_id(1, 5),
        SnapshotOutcome::Continue { next_offset: 10 },
    ));
    // Meanwhile the leader commits four more entries and compacts again, at 1@9.
    for (request, command) in [(4, "d"), (5, "e"), (6, "f"), (7, "g")] {
        core.step(propose(request, command));
    }
    core.step(Input::LogPersisted {
        up_to: log_id(1, 9),
    });
    core.step(append_response(2, 1, success(9)));
    core.step(Input::Applied { up_to: LogIndex(9) });
    let newer = meta(log_id(1, 9), 3, 40);
    core.step(Input::SnapshotBuilt {
        meta: newer.clone(),
    });
    // The chunk at 10 of the first snapshot is lost, twice: it is sent again, of the same
    // snapshot (the driver holds it open for the transfer), from the acknowledged offset.
    // (Node 2 answers every heartbeat, so CheckQuorum keeps the leader leading.)
    for _ in 0..2 {
        let actions = ticks(&mut core, 6);
        core.step(append_response(2, 1, success(9)));
        assert_eq!(
            chunks(&actions),
            vec![chunk_sent(3, &first, 10, 10, false)],
            "the transfer keeps its snapshot"
        );
    }
    // A third unanswered chunk: the driver may have lost it; the latest one goes from 0.
    let actions = ticks(&mut core, 12);
    assert_eq!(
        chunks(&actions)[..1],
        [chunk_sent(3, &newer, 0, 10, false)],
        "after three timeouts the transfer moves to the latest snapshot"
    );
}
