//! Seeded randomized schedules over the in-memory cluster: Raft's safety properties are checked
//! after every step, liveness and client answers at the end of every schedule.
//!
//! One `u64` seed fixes a whole schedule: the cluster size (3 or 5), a valid [`Config`] (PreVote
//! and CheckQuorum on or off, sometimes tiny per-message and in-flight limits so batching and
//! pipelining are exercised), a fault profile, the number of steps, and then each step's event.
//! The fault model:
//!
//! - Network: any in-flight message may be delivered next (reordering, unbounded delay), lost,
//!   or duplicated; links fail by majority/minority splits, isolation of one node, and one-way
//!   blocks, which accumulate until a heal.
//! - Disk: `auto_persist` is off, so every log write stays pending until a step completes it;
//!   a crash loses pending writes (term and vote are durable at once, contract 1). Some disks
//!   are slow, so writes stay pending across terms and complete after later truncations.
//! - Processes: any node may crash (losing its volatile state and its state machine) and restart
//!   from its disk, but never more than a minority is down at once, so progress stays possible.
//! - Time: ticks hit one node at a time, so clocks drift apart.
//! - Clients: single and batched proposals, mostly to the leader, each with a unique payload.
//!
//! After every step `InvariantChecker::check` must pass (election safety, log matching, leader
//! completeness, state machine safety, monotonicity), and whatever a node counts as durable
//! must be on its disk. At the end the schedule heals, restarts and persists everything, then
//! runs reliable rounds (`tick_all` + `stabilize`): a stable leader must emerge, a fresh
//! proposal must commit and be applied on every node, every node must have applied the same
//! committed log, every proposal answered `Ok(index)` must sit at `index` in it, no proposal
//! answered with an error may appear in it, and no command may appear twice.
//!
//! Replay one schedule, printing every event and executed action:
//!
//! ```text
//! RAFTOR_PROPERTY_SEED=<seed> RAFTOR_PROPERTY_TRACE=1 \
//!     cargo test -p raftor --features testing property -- --nocapture
//! ```
//!
//! Other knobs: `RAFTOR_PROPERTY_SCHEDULES=N` runs seeds `0..N` instead of the default 2,000;
//! `RAFTOR_PROPERTY_FIRST_SEED=S` shifts that range to `S..S+N`; `RAFTOR_PROPERTY_KEEP_GOING=1`
//! runs every seed and lists the failing ones; `RAFTOR_PROPERTY_STEPS=K` overrides the number
//! of random steps (the first `K` steps of a seed do not depend on it, so it shortens a failing
//! schedule while it still fails). Seeds that found bugs are replayed by the `regression_` tests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use crate::config::Config;
use crate::core::testkit::{
    format_request, format_response, Body, Cluster, Envelope, InvariantChecker,
};
use crate::core::{Core, HardState, Input, Proposal, ReadMode, Recovered, Role, SeededRng};
use crate::membership::MembershipChange;
use crate::message::{AppendEntriesRequest, Request};
use crate::types::{Entry, EntryPayload, LogId, LogIndex, NodeId, RequestId, RpcId, Term};

/// Schedules in a default run (CI runs at least this many).
const DEFAULT_SCHEDULES: u64 = 2_000;
/// Random steps per schedule, before the final phase: drawn from `[MIN_STEPS, MAX_STEPS)`.
const MIN_STEPS: u64 = 200;
const MAX_STEPS: u64 = 1_500;
/// The final phase's budget, in reliable rounds per maximum election timeout.
const LIVENESS_ROUNDS_PER_TIMEOUT: u64 = 40;

#[test]
fn random_schedules_keep_raft_safe_and_live() {
    if let Some(seed) = env_u64("RAFTOR_PROPERTY_SEED") {
        let mut progress = Progress {
            print_trace: env_flag("RAFTOR_PROPERTY_TRACE"),
            steps_override: env_u64("RAFTOR_PROPERTY_STEPS"),
            ..Default::default()
        };
        let stats = run_or_report(seed, &mut progress);
        println!("property: seed {seed}: {stats}");
        return;
    }
    let schedules = env_u64("RAFTOR_PROPERTY_SCHEDULES").unwrap_or(DEFAULT_SCHEDULES);
    let first_seed = env_u64("RAFTOR_PROPERTY_FIRST_SEED").unwrap_or(0);
    let keep_going = env_flag("RAFTOR_PROPERTY_KEEP_GOING");
    let mut total = Stats::default();
    let mut failed = Vec::new();
    for seed in first_seed..first_seed + schedules {
        let run = || {
            let mut progress = Progress {
                steps_override: env_u64("RAFTOR_PROPERTY_STEPS"),
                ..Default::default()
            };
            run_or_report(seed, &mut progress)
        };
        if !keep_going {
            total.add(&run());
        } else {
            match panic::catch_unwind(run) {
                Ok(stats) => total.add(&stats),
                Err(_) => failed.push(seed),
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {schedules} schedules failed, seeds {failed:?}",
        failed.len()
    );
    // No clock here: the core's tree stays free of wall time (cargo reports the duration).
    println!(
        "property: seeds {first_seed}..{}: {total}",
        first_seed + schedules
    );
}

/// The same seed replays bit for bit: every event, every executed action, and the final state
/// (or the failure, if the schedule fails).
#[test]
fn a_seed_replays_exactly() {
    let run = |seed: u64| {
        let mut progress = Progress {
            keep_trace: true,
            ..Default::default()
        };
        let result = panic::catch_unwind(AssertUnwindSafe(|| run_schedule(seed, &mut progress)));
        let failure = result.err().map(|cause| panic_message(&*cause));
        (progress, failure)
    };
    for seed in [3, 1_234_567] {
        let (first, first_failure) = run(seed);
        let (second, second_failure) = run(seed);
        assert!(first.trace.len() > 200, "seed {seed}: trace too short");
        assert!(
            first.trace == second.trace,
            "seed {seed}: traces differ from line {}",
            first
                .trace
                .iter()
                .zip(&second.trace)
                .position(|(a, b)| a != b)
                .unwrap_or(first.trace.len().min(second.trace.len()))
        );
        assert_eq!(
            first_failure, second_failure,
            "seed {seed}: failures differ"
        );
        assert_eq!(
            first.final_state, second.final_state,
            "seed {seed}: final states differ"
        );
    }
    assert_ne!(
        run(3).0.trace,
        run(4).0.trace,
        "different seeds, same schedule"
    );
}

/// Replays one checked-in seed, cut to `steps` random steps, as a regression test.
///
/// NB: a seed's schedule depends on the core's behaviour (its timers, what it sends), so a core
/// change can steer a seed away from the bug it once found. Each seed below fails with its bug
/// put back into the current core; to refresh one, put the bug back and rerun with
/// `RAFTOR_PROPERTY_KEEP_GOING=1`.
fn replay(seed: u64, steps: u64) {
    let mut progress = Progress {
        steps_override: Some(steps),
        without_reads: true,
        without_compaction: true,
        without_membership: true,
        ..Default::default()
    };
    run_or_report(seed, &mut progress);
}

/// Seed 211 with membership changes: a leader appended a configuration without itself, lost
/// leadership before it committed, and held the most up-to-date log. It did not campaign (not
/// a voter in its latest configuration), and no one else could win without its vote: no leader
/// ever again. A node whose latest configuration is not known committed now campaigns anyway.
#[test]
fn regression_a_node_removed_by_an_uncommitted_configuration_still_campaigns() {
    let mut progress = Progress::default();
    run_or_report(211, &mut progress);
}

/// A candidate of an old term may win on delayed votes after a later term's leader committed
/// entries it does not hold: Raft allows it (§5.4.3 covers only later terms). The testkit's
/// checker once reported it as a leader completeness violation.
/// Seen in the schedules about once in 3 * 10^5 seeds, so spelled out here: node 3 grants node 2
/// a vote in term 1 and the grant is delayed; node 3 then helps node 1 win term 2 and commit 2@2;
/// the term-1 grant arrives and node 2 leads term 1 without 2@2.
#[test]
fn regression_late_leader_of_an_older_term_is_legal() {
    let (n1, n2, n3) = (NodeId(1), NodeId(2), NodeId(3));
    let config = Config {
        pre_vote: false,
        ..Default::default()
    };
    let mut cluster = Cluster::new(3, config, 1);
    let mut checker = InvariantChecker::new();
    let role = |cluster: &Cluster, id| cluster.core(id).map(Core::role);
    let held = |envelope: &Envelope| envelope.from == n3 && envelope.to == n2;
    // Everything but node 3's answers to node 2 is delivered; nodes 1 and 2 cannot talk.
    let deliver_all_but_held = |cluster: &mut Cluster, checker: &mut InvariantChecker| {
        while let Some(position) = cluster.network.iter().position(|e| !held(e)) {
            cluster.deliver(position);
            checker.check(cluster).expect("safe so far");
        }
    };
    cluster.block(n1, n2);
    cluster.block(n2, n1);
    while role(&cluster, n2) != Some(Role::Candidate) {
        cluster.tick(n2);
    }
    deliver_all_but_held(&mut cluster, &mut checker);
    while role(&cluster, n1) != Some(Role::Leader) {
        cluster.tick(n1);
        deliver_all_but_held(&mut cluster, &mut checker);
    }
    assert_eq!(cluster.core(n1).map(Core::term), Some(Term(2)));
    while cluster.core(n1).map(Core::commit_index) < Some(LogIndex(2)) {
        cluster.tick(n1);
        deliver_all_but_held(&mut cluster, &mut checker);
    }
    checker
        .check(&cluster)
        .expect("node 1 leads term 2 with 2@2 committed");
    while let Some(position) = cluster.network.iter().position(held) {
        cluster.deliver(position);
    }
    assert_eq!(
        role(&cluster, n2),
        Some(Role::Leader),
        "node 2 wins term 1 late"
    );
    assert_eq!(cluster.core(n2).map(Core::term), Some(Term(1)));
    checker
        .check(&cluster)
        .expect("a late leader of an older term breaks nothing");
}

/// §5.2, contract 1. A follower holding acknowledgements (entries not yet durable) times out:
/// `update_term` flushed the held acks, whose `push` saved `term=2 vote=none` before
/// `become_candidate` set `voted_for`, so the self-vote was never saved. Step 47: node 5 asks for
/// votes in term 2 with `vote=none` on disk; it crashes (step 92) and restarts (step 94) free to
/// vote for another candidate in the term it campaigned in: two leaders if it had won.
#[test]
fn regression_candidate_persists_its_own_vote() {
    replay(2028, 100);
}

/// A deposed leader answered `Dropped` ("never applied") as soon as it truncated a client's
/// entry, but the entry can still commit. Step 219: node 3, once leader of term 4, truncates
/// from index 7 for term 5's `5@7` (and answered `Dropped` for r28..r34). The truncation is not
/// durable when it crashes (step 223); it restarts with r28 at index 7 on disk, wins term 6 in
/// the final phase and commits it. Another replica holding the entry can do the same. Only a
/// different entry committed at that index makes `Dropped` certain.
#[test]
fn regression_truncated_proposal_is_not_reported_dropped_if_it_may_commit() {
    replay(1272, 237);
}

/// Contract 2. A write's completion was trusted if the log held its last `LogId` *now*, but that
/// id may have been truncated and appended again (A-B-A) with the truncation still queued behind
/// the write. The follower counted `2@3` durable and acknowledged it, while its queued writes
/// would first replace it with `3@3`: a crash in between leaves `3@3` on disk, and the term-4
/// leader, which ignores conflicts at or below `match_index`, never repairs this follower in its
/// term. The schedules' per-step durability check catches this without the crash, but rarely,
/// so the scenario is spelled out here.
#[test]
fn regression_completion_of_an_overwritten_write_is_not_trusted() {
    let id = |term: u64, index: u64| LogId::new(Term(term), LogIndex(index));
    let blank = |term: u64, index: u64| Entry {
        log_id: id(term, index),
        payload: EntryPayload::Blank,
    };
    let append = |term: u64, leader: u64, prev: LogId, entries: Vec<Entry>| Input::Request {
        from: NodeId(leader),
        rpc: RpcId(term),
        request: Request::AppendEntries(AppendEntriesRequest {
            term: Term(term),
            leader_id: NodeId(leader),
            prev_log_id: prev,
            entries,
            leader_commit: LogIndex(1),
            round: 0,
        }),
    };
    let recovered = Recovered {
        hard_state: HardState::default(),
        log: Core::bootstrap_log((1..=5).map(NodeId)),
        last_applied: LogIndex(0),
        snapshot: None,
    };
    let mut core = Core::new(NodeId(5), Config::default(), recovered, 1).expect("valid");
    // Term 2's leader sends 2@2, 2@3 (write 1). Term 3's leader holds 2@2 and 3@3: truncate
    // from 3 and append 3@3 (writes 2, 3). Term 4's leader holds 2@3 again: writes 4, 5.
    core.step(append(2, 1, id(0, 1), vec![blank(2, 2), blank(2, 3)]));
    core.step(append(3, 2, id(2, 2), vec![blank(3, 3)]));
    core.step(append(4, 1, id(2, 2), vec![blank(2, 3)]));
    // Storage completes write 1 only; writes 2 and 3 will remove 2@3 from the disk.
    let actions = core.step(Input::LogPersisted { up_to: id(2, 3) });
    assert!(
        core.persisted_index() <= LogIndex(2),
        "2@3 counted durable ({}) with its truncation still queued; actions {actions:?}",
        core.persisted_index()
    );
}

/// The same A-B-A in a schedule, caught by the per-step durability check: node 5 (slow disk)
/// has `4@10` pending, truncates it for term 6's `6@10`, then takes `4@10` again from term 8's
/// leader. The first write's completion counted index 10 durable; at step 551 the queued
/// truncation runs and the disk holds 9 entries.
#[test]
fn regression_completion_of_an_overwritten_write_in_a_schedule() {
    replay(139339, 551);
}

/// Runs one schedule; if it fails in any way (a violated invariant or liveness check, or an
/// assert inside the core or the testkit), says which seed and step failed and how to replay
/// it, then fails the test.
fn run_or_report(seed: u64, progress: &mut Progress) -> Stats {
    match panic::catch_unwind(AssertUnwindSafe(|| run_schedule(seed, progress))) {
        Ok(stats) => stats,
        Err(cause) => panic!(
            "schedule failed: {}\n  seed {seed}, step {} ({})\n  replay: \
             RAFTOR_PROPERTY_SEED={seed} RAFTOR_PROPERTY_TRACE=1 cargo test -p raftor \
             --features testing property -- --nocapture",
            panic_message(&*cause),
            progress.step,
            progress.event
        ),
    }
}

fn panic_message(cause: &(dyn std::any::Any + Send)) -> String {
    cause
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| cause.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Where a schedule is, and what it recorded: kept outside the schedule so it survives a panic.
#[derive(Debug, Default)]
struct Progress {
    /// The current step (1-based; one past the last random step in the final phase).
    step: u64,
    /// The current event, described.
    event: String,
    /// Run this many random steps instead of the seed's own number.
    steps_override: Option<u64>,
    /// Keep every trace line in `trace`, and the final state in `final_state`.
    keep_trace: bool,
    /// Print every trace line as it happens.
    print_trace: bool,
    trace: Vec<String>,
    final_state: String,
    /// Issue no reads: the regression seeds were recorded before reads existed, and reads add
    /// messages that change every later choice.
    without_reads: bool,
    /// Never compact: the regression seeds were recorded before compaction existed, and its
    /// dice and messages would change every later choice.
    without_compaction: bool,
    /// Never change the membership (the same reason).
    without_membership: bool,
}

/// Counters summed over schedules, to show the schedules reach interesting states.
#[derive(Debug, Default, Clone)]
struct Stats {
    schedules: u64,
    steps: u64,
    /// Steps after which some node was leader.
    steps_with_leader: u64,
    /// Terms in which some node became leader.
    elections: u64,
    max_term: u64,
    committed_entries: u64,
    max_log: u64,
    proposals: u64,
    answered_ok: u64,
    answered_err: u64,
    /// Reads answered `ReadReady`, each checked against what was committed when it arrived.
    reads_ready: u64,
    crashes: u64,
    truncations: u64,
    /// Snapshots built (compaction), and received snapshots installed.
    snapshots_built: u64,
    snapshots_installed: u64,
    /// Membership changes asked for during the faults, and change requests in all.
    changes: u64,
    changes_done: u64,
    change_requests: u64,
    /// The most reliable rounds any final phase needed.
    max_liveness_rounds: u64,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.schedules += other.schedules;
        self.steps += other.steps;
        self.steps_with_leader += other.steps_with_leader;
        self.elections += other.elections;
        self.max_term = self.max_term.max(other.max_term);
        self.committed_entries += other.committed_entries;
        self.max_log = self.max_log.max(other.max_log);
        self.proposals += other.proposals;
        self.answered_ok += other.answered_ok;
        self.answered_err += other.answered_err;
        self.reads_ready += other.reads_ready;
        self.crashes += other.crashes;
        self.truncations += other.truncations;
        self.snapshots_built += other.snapshots_built;
        self.snapshots_installed += other.snapshots_installed;
        self.changes += other.changes;
        self.changes_done += other.changes_done;
        self.max_liveness_rounds = self.max_liveness_rounds.max(other.max_liveness_rounds);
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} schedules, {} steps ({}% with a leader), {} elections, max term {}, \
             {} committed entries (longest log {}), {} proposals ({} ok, {} err), {} reads served, \
             {} crashes, {} truncations, {} snapshots built, {} installed, {} membership changes \
             asked ({} carried out), final phase <= {} rounds",
            self.schedules,
            self.steps,
            self.steps_with_leader * 100 / self.steps.max(1),
            self.elections,
            self.max_term,
            self.committed_entries,
            self.max_log,
            self.proposals,
            self.answered_ok,
            self.answered_err,
            self.reads_ready,
            self.crashes,
            self.truncations,
            self.snapshots_built,
            self.snapshots_installed,
            self.changes,
            self.changes_done,
            self.max_liveness_rounds
        )
    }
}

/// The schedule's random source: every choice comes from the one seed.
struct Dice(SeededRng);

impl Dice {
    /// A value in `[low, high)`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        self.0.in_range(low, high)
    }

    fn below(&mut self, count: usize) -> usize {
        self.0.in_range(0, count as u64) as usize
    }

    fn percent(&mut self, chance: u64) -> bool {
        self.0.in_range(0, 100) < chance
    }

    fn pick(&mut self, items: &[NodeId]) -> NodeId {
        items[self.below(items.len())]
    }
}

/// A valid configuration with short timeouts (so a schedule sees many elections) and, often,
/// small limits that force batching, pipelining and flow control.
fn random_config(dice: &mut Dice) -> Config {
    let election_min = dice.range(3, 11);
    let mut config = Config {
        election_timeout_min_ticks: election_min,
        // A range of at least 3 ticks: randomized timeouts must be able to break split votes.
        election_timeout_max_ticks: election_min + dice.range(3, election_min + 4),
        heartbeat_interval_ticks: dice.range(1, (election_min / 2).max(2)),
        pre_vote: dice.percent(50),
        check_quorum: dice.percent(50),
        // Not drawn from the dice, so recorded seeds keep their schedules.
        lease_drift_margin_ticks: election_min / 3,
        ..Default::default()
    };
    if dice.percent(40) {
        config.max_entries_per_message = dice.range(1, 4);
    }
    if dice.percent(25) {
        config.max_payload_bytes_per_message = dice.range(8, 40);
    }
    if dice.percent(40) {
        config.max_inflight_messages = dice.range(1, 4);
    }
    if dice.percent(20) {
        config.max_inflight_bytes = dice.range(16, 64);
    }
    config.validate().expect("generated config is valid")
}

/// Log compaction, in half the schedules: snapshots every few entries, a short kept tail, and
/// chunks small enough that a snapshot takes many of them. In half of those, a byte threshold
/// too, low enough to fire before the entry count does (alone, with the count off, in a third).
fn with_random_compaction(dice: &mut Dice, config: Config) -> Config {
    if !dice.percent(50) {
        return config;
    }
    let config = Config {
        snapshot_threshold_entries: dice.range(2, 12),
        snapshot_keep_tail_entries: dice.range(0, 5),
        snapshot_chunk_bytes: dice.range(16, 400),
        snapshot_chunk_timeout_ticks: dice.range(1, config.election_timeout_min_ticks + 1),
        ..config
    };
    if !dice.percent(50) {
        return config;
    }
    let entries = if dice.percent(33) {
        0
    } else {
        config.snapshot_threshold_entries
    };
    Config {
        snapshot_threshold_entries: entries,
        snapshot_threshold_bytes: dice.range(8, 120),
        ..config
    }
    .validate()
    .expect("generated config is valid")
}

/// How often each kind of event happens in one schedule (relative weights, in tenths).
#[derive(Debug, Clone, Copy)]
struct Weights {
    tick: u64,
    tick_all: u64,
    deliver: u64,
    drop: u64,
    duplicate: u64,
    persist: u64,
    propose: u64,
    partition: u64,
    heal: u64,
    crash: u64,
    restart: u64,
    /// Membership changes (0 in half the schedules, and in regression replays).
    change: u64,
}

/// A fault profile (calm, lossy or chaotic) plus random speeds for clocks, network, disks and
/// clients, so some schedules make steady progress, others spend their time in failures, and
/// some keep disk writes pending across several terms.
fn random_weights(dice: &mut Dice) -> Weights {
    let fault = dice.below(3);
    Weights {
        tick: dice.range(100, 300),
        tick_all: dice.range(0, 40),
        deliver: dice.range(200, 400),
        drop: [10, 50, 40][fault],
        duplicate: [10, 30, 30][fault],
        persist: dice.range(40, 300),
        propose: dice.range(40, 160),
        partition: [0, 20, 40][fault],
        heal: 20,
        crash: [0, dice.range(3, 15), dice.range(8, 25)][fault],
        restart: dice.range(10, 40),
        change: 0,
    }
}

/// One step of a schedule.
#[derive(Debug, Clone)]
enum Event {
    Tick(NodeId),
    TickAll,
    Deliver(usize),
    Drop(usize),
    Duplicate(usize),
    Persist(NodeId),
    /// Propose this many commands, as one batch.
    Propose(NodeId, usize),
    /// Cut this minority off from the rest.
    Split(Vec<NodeId>),
    Isolate(NodeId),
    Block(NodeId, NodeId),
    Heal,
    Crash(NodeId),
    Restart(NodeId),
    /// Ask this node to change the membership.
    Change(NodeId, MembershipChange),
}

/// A client proposal and what is needed to judge its answer.
#[derive(Debug)]
struct ProposalRecord {
    node: NodeId,
    request: RequestId,
    payload: Arc<[u8]>,
    /// The node's restart count when it was proposed: if unchanged at the end and the command
    /// committed, the node applied it and must have answered.
    restarts: u64,
    /// The node's count of installed snapshots when it was proposed: a snapshot covering the
    /// entry leaves its outcome unknown to the node (`core/snapshot.rs`).
    installs: u64,
}

/// A ReadIndex read and the committed log's length when it arrived: every entry committed
/// before it must be at or below the index it is served at (linearizability).
#[derive(Debug)]
struct ReadRecord {
    node: NodeId,
    request: RequestId,
    committed_before: u64,
    checked: bool,
}

/// Reads use request ids from here on, apart from proposals.
const FIRST_READ_REQUEST: u64 = 1 << 40;

/// One schedule in progress.
struct Schedule<'a> {
    seed: u64,
    dice: Dice,
    cluster: Cluster,
    checker: InvariantChecker,
    weights: Weights,
    /// Bounds the final phase.
    election_timeout_max_ticks: u64,
    ids: Vec<NodeId>,
    /// Most nodes that may be down at once: a minority.
    max_down: usize,
    /// Each node's disk speed (relative odds of completing its next write): a slow disk keeps
    /// writes pending across several terms, so completions arrive after truncations.
    disk_speed: BTreeMap<NodeId, u64>,
    proposals: Vec<ProposalRecord>,
    reads: Vec<ReadRecord>,
    /// Terms in which a leader was seen.
    leader_terms: BTreeSet<Term>,
    progress: &'a mut Progress,
    stats: Stats,
}

fn run_schedule(seed: u64, progress: &mut Progress) -> Stats {
    let mut schedule = Schedule::new(seed, progress);
    let steps = schedule.dice.range(MIN_STEPS, MAX_STEPS);
    let steps = schedule.progress.steps_override.unwrap_or(steps);
    for step in 1..=steps {
        let event = schedule.next_event();
        schedule.begin(step, schedule.describe(&event));
        schedule.apply(event);
        schedule.check();
    }
    schedule.stats.steps = steps;
    schedule.begin(
        steps + 1,
        "final phase: heal, restart, persist, reliable rounds".to_string(),
    );
    schedule.finish();
    if schedule.progress.keep_trace {
        schedule.progress.final_state = format!("{:?}", schedule.cluster);
    }
    schedule.stats
}

impl<'a> Schedule<'a> {
    fn new(seed: u64, progress: &'a mut Progress) -> Schedule<'a> {
        let mut dice = Dice(SeededRng::new(seed));
        let size = if dice.percent(50) { 3 } else { 5 };
        let config = random_config(&mut dice);
        let weights = random_weights(&mut dice);
        let config = if progress.without_compaction {
            config
        } else {
            with_random_compaction(&mut dice, config)
        };
        let mut weights = weights;
        if !progress.without_membership && dice.percent(50) {
            weights.change = dice.range(2, 12);
        }
        let mut cluster = Cluster::new(size, config.clone(), seed);
        cluster.auto_persist = false;
        // Always on: truncations are counted from it. Lines are kept only when asked.
        cluster.tracing = true;
        let disk_speed = cluster
            .ids()
            .into_iter()
            .map(|id| (id, if dice.percent(25) { 1 } else { 8 }))
            .collect();
        let mut schedule = Schedule {
            seed,
            dice,
            ids: cluster.ids(),
            cluster,
            checker: InvariantChecker::new(),
            weights,
            election_timeout_max_ticks: config.election_timeout_max_ticks,
            max_down: (size as usize - 1) / 2,
            disk_speed,
            proposals: Vec::new(),
            reads: Vec::new(),
            leader_terms: BTreeSet::new(),
            progress,
            stats: Stats {
                schedules: 1,
                ..Default::default()
            },
        };
        let disks = format!("{:?}", schedule.disk_speed);
        schedule.note(format!(
            "== seed {seed}: {size} nodes, {config:?}, {weights:?}, disk speeds {disks}"
        ));
        schedule
    }

    /// Records the step about to run, for the trace and for a failure report.
    fn begin(&mut self, step: u64, event: String) {
        self.progress.step = step;
        self.note(format!("== step {step}: {event}"));
        self.progress.event = event;
    }

    /// Adds a line to the trace.
    fn note(&mut self, line: String) {
        self.cluster.trace.push(line);
        self.drain_trace();
    }

    /// Moves the cluster's new trace lines out: printed or kept if asked, counted anyway.
    fn drain_trace(&mut self) {
        for line in self.cluster.trace.drain(..) {
            if line.contains(": truncate ") {
                self.stats.truncations += 1;
            }
            if line.contains(": build-snapshot ") {
                self.stats.snapshots_built += 1;
            }
            if line.contains(": install-snapshot ") {
                self.stats.snapshots_installed += 1;
            }
            if line.contains(": change-done ") && line.contains(" voters=") {
                self.stats.changes_done += 1;
            }
            if self.progress.print_trace {
                println!("{line}");
            }
            if self.progress.keep_trace {
                self.progress.trace.push(line);
            }
        }
    }

    fn up(&self) -> Vec<NodeId> {
        self.ids
            .iter()
            .copied()
            .filter(|id| self.cluster.node(*id).is_up())
            .collect()
    }

    fn down(&self) -> Vec<NodeId> {
        self.ids
            .iter()
            .copied()
            .filter(|id| !self.cluster.node(*id).is_up())
            .collect()
    }

    fn any_blocked(&self) -> bool {
        self.ids.iter().any(|a| {
            self.ids
                .iter()
                .any(|b| a != b && self.cluster.is_blocked(*a, *b))
        })
    }

    /// Picks the next event among those possible now, by weight.
    fn next_event(&mut self) -> Event {
        let w = self.weights;
        let in_flight = self.cluster.network.len();
        let has_messages = u64::from(in_flight > 0);
        let up = self.up();
        let down = self.down();
        let pending: Vec<NodeId> = up
            .iter()
            .copied()
            .filter(|id| !self.cluster.node(*id).pending_writes.is_empty())
            .collect();
        // Deliveries speed up as the network fills, so it does not grow without bound.
        let deliver = has_messages * (w.deliver + 30 * in_flight as u64);
        let choices = [
            w.tick,
            w.tick_all,
            deliver,
            has_messages * w.drop,
            has_messages * w.duplicate,
            u64::from(!pending.is_empty()) * w.persist,
            w.propose,
            w.partition,
            u64::from(self.any_blocked()) * w.heal,
            u64::from(down.len() < self.max_down) * w.crash,
            u64::from(!down.is_empty()) * w.restart,
            w.change,
        ];
        let mut roll = self.dice.range(0, choices.iter().sum());
        let mut kind = 0;
        while roll >= choices[kind] {
            roll -= choices[kind];
            kind += 1;
        }
        match kind {
            0 => Event::Tick(self.dice.pick(&up)),
            1 => Event::TickAll,
            2 => Event::Deliver(self.dice.below(in_flight)),
            3 => Event::Drop(self.dice.below(in_flight)),
            4 => Event::Duplicate(self.dice.below(in_flight)),
            5 => Event::Persist(self.pick_disk(&pending)),
            6 => {
                let node = self.proposer(&up);
                let batch = if self.dice.percent(20) {
                    2 + self.dice.below(3)
                } else {
                    1
                };
                Event::Propose(node, batch)
            }
            7 => self.random_partition(),
            8 => Event::Heal,
            9 => match self.cluster.leader() {
                // Leaders crash more than their share: that is where recovery gets interesting.
                Some(leader) if self.dice.percent(40) => Event::Crash(leader),
                _ => Event::Crash(self.dice.pick(&up)),
            },
            10 => Event::Restart(self.dice.pick(&down)),
            _ => self.random_change(&up),
        }
    }

    /// A membership change, usually asked of a leader: new voters (any non-empty subset of
    /// the nodes), a learner, or a removal.
    fn random_change(&mut self, up: &[NodeId]) -> Event {
        let node = match self.cluster.leader() {
            Some(leader) if self.dice.percent(80) => leader,
            _ => self.dice.pick(up),
        };
        let ids = self.ids.clone();
        let change = match self.dice.below(4) {
            0 => MembershipChange::AddLearner(self.dice.pick(&ids)),
            1 => MembershipChange::Remove(self.dice.pick(&ids)),
            _ => {
                let mut voters: BTreeSet<NodeId> = ids
                    .iter()
                    .copied()
                    .filter(|_| self.dice.percent(60))
                    .collect();
                if voters.is_empty() {
                    voters.insert(self.dice.pick(&ids));
                }
                MembershipChange::SetVoters(voters)
            }
        };
        Event::Change(node, change)
    }

    /// A node with pending writes, by disk speed.
    fn pick_disk(&mut self, pending: &[NodeId]) -> NodeId {
        let speeds: Vec<u64> = pending.iter().map(|id| self.disk_speed[id]).collect();
        let mut roll = self.dice.range(0, speeds.iter().sum());
        for (id, speed) in pending.iter().zip(speeds) {
            if roll < speed {
                return *id;
            }
            roll -= speed;
        }
        unreachable!("roll below the total speed")
    }

    /// Usually a node that believes it leads (clients find it; a deposed leader that has not
    /// noticed yet takes writes that will be overwritten), sometimes any running node.
    fn proposer(&mut self, up: &[NodeId]) -> NodeId {
        let leaders = self.cluster.leaders();
        if !leaders.is_empty() && self.dice.percent(80) {
            self.dice.pick(&leaders)
        } else {
            self.dice.pick(up)
        }
    }

    fn random_partition(&mut self) -> Event {
        let ids = self.ids.clone();
        match self.dice.below(3) {
            0 => {
                let minority_size = 1 + self.dice.below((ids.len() - 1) / 2);
                let mut rest = ids;
                let mut minority = Vec::new();
                for _ in 0..minority_size {
                    minority.push(rest.remove(self.dice.below(rest.len())));
                }
                minority.sort();
                Event::Split(minority)
            }
            // Cutting off the leader is what makes deposed leaders and overwritten entries.
            1 => match self.cluster.leader() {
                Some(leader) if self.dice.percent(50) => Event::Isolate(leader),
                _ => Event::Isolate(self.dice.pick(&ids)),
            },
            _ => {
                let from = self.dice.pick(&ids);
                let others: Vec<NodeId> = ids.into_iter().filter(|id| *id != from).collect();
                Event::Block(from, self.dice.pick(&others))
            }
        }
    }

    fn describe(&self, event: &Event) -> String {
        let envelope = |position: usize| {
            let envelope = &self.cluster.network[position];
            let body = match &envelope.body {
                Body::Request { request, .. } => format_request(request),
                Body::Response(response) => format_response(response),
            };
            format!("#{position} {}->{} {body}", envelope.from, envelope.to)
        };
        match event {
            Event::Tick(id) => format!("tick {id}"),
            Event::TickAll => "tick all".to_string(),
            Event::Deliver(position) => format!("deliver {}", envelope(*position)),
            Event::Drop(position) => format!("drop {}", envelope(*position)),
            Event::Duplicate(position) => format!("duplicate {}", envelope(*position)),
            Event::Persist(id) => format!("persist one write on {id}"),
            Event::Propose(id, count) => {
                let first = self.proposals.len() + 1;
                let last = first + count - 1;
                format!("propose r{first}..r{last} on {id}")
            }
            Event::Split(minority) => format!("split off {minority:?}"),
            Event::Isolate(id) => format!("isolate {id}"),
            Event::Block(from, to) => format!("block {from}->{to}"),
            Event::Heal => "heal".to_string(),
            Event::Crash(id) => format!("crash {id}"),
            Event::Restart(id) => format!("restart {id}"),
            Event::Change(id, change) => format!("change {change:?} on {id}"),
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Tick(id) => self.cluster.tick(id),
            Event::TickAll => self.cluster.tick_all(),
            Event::Deliver(position) => self.cluster.deliver(position),
            Event::Drop(position) => {
                self.cluster.drop_message(position);
            }
            Event::Duplicate(position) => {
                let copy = self.cluster.network[position].clone();
                self.cluster.network.push(copy);
            }
            Event::Persist(id) => self.cluster.persist_one(id),
            Event::Propose(id, count) => self.propose(id, count),
            Event::Split(minority) => self.cluster.partition(&[minority]),
            Event::Isolate(id) => self.cluster.isolate(id),
            Event::Block(from, to) => self.cluster.block(from, to),
            Event::Heal => self.cluster.heal(),
            Event::Crash(id) => {
                self.stats.crashes += 1;
                self.cluster.crash(id);
            }
            Event::Restart(id) => self.cluster.restart(id),
            Event::Change(id, change) => {
                self.stats.changes += 1;
                let request = self.next_change_request();
                self.cluster
                    .step(id, Input::ChangeMembership { request, change });
            }
        }
        self.drain_trace();
    }

    /// Proposes `count` commands as one batch on node `id`, each with a payload no other
    /// proposal carries. Request ids are the schedule's own (`r1`, `r2`, ...), unique per run.
    fn propose(&mut self, id: NodeId, count: usize) {
        let restarts = self.cluster.node(id).restarts;
        let installs = self.cluster.node(id).snapshots_installed;
        let mut batch = Vec::new();
        for _ in 0..count {
            let number = self.proposals.len() + 1;
            let record = ProposalRecord {
                node: id,
                request: RequestId(number as u64),
                payload: Arc::from(format!("s{}/r{number}", self.seed).into_bytes()),
                restarts,
                installs,
            };
            batch.push(Proposal {
                request: record.request,
                command: Arc::clone(&record.payload),
            });
            self.proposals.push(record);
        }
        self.cluster.step(id, Input::Propose(batch));
        if !self.progress.without_reads {
            self.read(id);
        }
    }

    /// A ReadIndex read on `id` beside each proposal (no dice: the schedule stays the same).
    /// Lease reads are not checked here: nodes tick independently, so clocks drift without bound.
    fn read(&mut self, id: NodeId) {
        let request = RequestId(FIRST_READ_REQUEST + self.reads.len() as u64);
        self.reads.push(ReadRecord {
            node: id,
            request,
            committed_before: self.checker.committed().len() as u64,
            checked: false,
        });
        self.cluster.step(
            id,
            Input::Read {
                request,
                mode: ReadMode::ReadIndex,
            },
        );
    }

    /// Every read served so far covers what was committed before it arrived.
    fn check_reads(&mut self) {
        for read in self.reads.iter_mut().filter(|read| !read.checked) {
            let Some(answer) = self.cluster.node(read.node).reads.get(&read.request) else {
                continue;
            };
            read.checked = true;
            if let Ok(read_index) = answer {
                assert!(
                    read_index.0 >= read.committed_before,
                    "read {} on {} served at index {read_index}, but {} entries were committed \
                     before it arrived",
                    read.request,
                    read.node,
                    read.committed_before
                );
                self.stats.reads_ready += 1;
            }
        }
    }

    /// The invariants, after every step.
    fn check(&mut self) {
        if let Err(violation) = self.checker.check(&self.cluster) {
            panic!("invariant violated: {violation}");
        }
        self.check_durability();
        self.check_reads();
        let mut leader_seen = false;
        for node in self.cluster.nodes.values() {
            let Some(core) = &node.core else { continue };
            self.stats.max_term = self.stats.max_term.max(core.term().0);
            self.stats.max_log = self.stats.max_log.max(core.last_log_id().index.0);
            if core.role() == Role::Leader {
                leader_seen = true;
                self.leader_terms.insert(core.term());
            }
        }
        self.stats.steps_with_leader += u64::from(leader_seen);
    }

    /// Contract 2 from the disk's side: every entry a core counts as durable (for its own commit,
    /// or in an acknowledgement) is on its node's disk, as the core holds it.
    fn check_durability(&self) {
        for (id, node) in &self.cluster.nodes {
            let Some(core) = &node.core else { continue };
            let persisted = core.persisted_index().0 as usize;
            let (base, disk_base) = (
                core.log_base().index.0 as usize,
                node.disk_log_base.index.0 as usize,
            );
            // Entries from the core's base on (the disk purges later, or installs a snapshot).
            let durable = persisted <= base
                || (disk_base <= base
                    && persisted - disk_base <= node.disk_log.len()
                    && core.entries()[..persisted - base]
                        == node.disk_log[base - disk_base..persisted - disk_base]);
            assert!(
                durable,
                "durability: node {id} counts its log durable up to {persisted} but its disk \
                 holds {} entries (last {}) and its log ends at {}",
                node.disk_log.len(),
                node.disk_log
                    .last()
                    .map(|entry| entry.log_id)
                    .unwrap_or_default(),
                core.last_log_id()
            );
        }
    }

    /// Heals everything, then demands progress and checks every client answer.
    fn finish(&mut self) {
        self.cluster.heal();
        for id in self.ids.clone() {
            self.cluster.restart(id);
            self.cluster.persist_all(id);
        }
        self.drain_trace();
        self.check();
        let budget = LIVENESS_ROUNDS_PER_TIMEOUT * self.election_timeout_max_ticks;
        if self.weights.change > 0 {
            self.restore_full_membership(budget);
        }
        // A follower whose timer nearly ran out during the faults may still start an election
        // in the first healed rounds: wait until one leader has been stable for a whole
        // election timeout, so every follower has heard from it since.
        let mut rounds = 0;
        let mut stable_rounds = 0;
        let mut previous = None;
        let leader = loop {
            let leader = self.stable_leader();
            stable_rounds = if leader.is_some() && leader == previous {
                stable_rounds + 1
            } else {
                0
            };
            previous = leader;
            if let Some(leader) =
                leader.filter(|_| stable_rounds >= self.election_timeout_max_ticks)
            {
                break leader;
            }
            assert!(
                rounds < budget,
                "liveness: no leader stable for {} rounds after {budget} reliable rounds ({})",
                self.election_timeout_max_ticks,
                self.summary()
            );
            self.reliable_round();
            rounds += 1;
        };
        self.propose(leader, 1);
        let last = self.proposals.last().expect("just proposed");
        let (request, payload) = (
            last.request,
            EntryPayload::Command(Arc::clone(&last.payload)),
        );
        loop {
            self.reliable_round();
            rounds += 1;
            if self.applied_everywhere(&payload) {
                break;
            }
            assert!(
                rounds < 2 * budget,
                "liveness: {request} on leader {leader} not applied on every node after \
                 {rounds} reliable rounds (answer {:?}; {})",
                self.cluster.node(leader).answers.get(&request),
                self.summary()
            );
        }
        self.stats.max_liveness_rounds = rounds;
        self.stats.elections = self.leader_terms.len() as u64;
        self.check_applied_agree();
        self.check_answers();
    }

    /// After random membership changes: makes every node a voter again (a leader must be
    /// elected among the voters in effect and carry the change through), so the liveness check
    /// can demand that every node follows one leader.
    fn restore_full_membership(&mut self, budget: u64) {
        let all: BTreeSet<NodeId> = self.ids.iter().copied().collect();
        for _ in 0..4 * budget {
            self.reliable_round();
            let Some(leader) = self.cluster.leader() else {
                continue;
            };
            let request = self.next_change_request();
            let change = MembershipChange::SetVoters(all.clone());
            self.cluster
                .step(leader, Input::ChangeMembership { request, change });
            self.drain_trace();
            let done = self.cluster.node(leader).changes.get(&request);
            if let Some(Ok(membership)) = done {
                if membership.voters() == all && membership.learners().is_empty() {
                    return;
                }
            }
        }
        panic!(
            "liveness: the membership could not be restored to every node ({})",
            self.summary()
        );
    }

    /// Request ids for membership changes, apart from the proposals' (`r1`, `r2`, ...).
    fn next_change_request(&mut self) -> RequestId {
        self.stats.change_requests += 1;
        RequestId(1 << 40 | self.stats.change_requests)
    }

    /// One round of reliable operation: a tick everywhere, then every message and write.
    fn reliable_round(&mut self) {
        self.cluster.tick_all();
        self.cluster.stabilize();
        self.drain_trace();
        self.check();
    }

    /// A leader every node follows in its term, with its whole log committed and applied
    /// everywhere.
    fn stable_leader(&self) -> Option<NodeId> {
        let leader = self.cluster.leader()?;
        let leader_core = self.cluster.core(leader)?;
        let last = leader_core.last_log_id().index;
        let settled = self.ids.iter().all(|id| {
            self.cluster.core(*id).is_some_and(|core| {
                core.term() == leader_core.term()
                    && core.leader() == Some(leader)
                    && core.commit_index() == last
                    && core.last_applied() == last
            })
        });
        settled.then_some(leader)
    }

    /// Every node applied `payload` and everything it knows committed.
    fn applied_everywhere(&self, payload: &EntryPayload) -> bool {
        self.ids.iter().all(|id| {
            let node = self.cluster.node(*id);
            node.applied.iter().any(|entry| entry.payload == *payload)
                && node.core.as_ref().is_some_and(|core| {
                    core.last_applied() == LogIndex(node.applied.len() as u64)
                        && core.commit_index() == core.last_applied()
                })
        })
    }

    /// Every node applied the same sequence, and it is the committed log.
    fn check_applied_agree(&mut self) {
        let committed = self.checker.committed();
        let first = &self.cluster.node(self.ids[0]).applied;
        for id in &self.ids {
            let applied = &self.cluster.node(*id).applied;
            assert!(
                applied == first,
                "node {id} applied {} entries and node {} applied {}, or they differ",
                applied.len(),
                self.ids[0],
                first.len()
            );
        }
        assert!(
            first.len() <= committed.len() && first[..] == committed[..first.len()],
            "applied log ({} entries) is not a prefix of the committed log ({} entries)",
            first.len(),
            committed.len()
        );
        self.stats.committed_entries = committed.len() as u64;
    }

    /// No acknowledged write lost, no refused write applied, every command at most once, and
    /// every committed command answered if its node stayed up.
    fn check_answers(&mut self) {
        let committed = self.checker.committed();
        let mut index_of: BTreeMap<&[u8], LogIndex> = BTreeMap::new();
        for entry in committed {
            if let EntryPayload::Command(command) = &entry.payload {
                let earlier = index_of.insert(command, entry.log_id.index);
                assert!(
                    earlier.is_none(),
                    "command {:?} committed twice: at {} and {}",
                    String::from_utf8_lossy(command),
                    earlier.unwrap_or_default(),
                    entry.log_id
                );
            }
        }
        for proposal in &self.proposals {
            let node = self.cluster.node(proposal.node);
            let found = index_of.get(&*proposal.payload).copied();
            let (request, on) = (proposal.request, proposal.node);
            match node.answers.get(&request) {
                Some(Ok(index)) => {
                    self.stats.answered_ok += 1;
                    assert_eq!(
                        found,
                        Some(*index),
                        "acknowledged write lost: {request} on node {on} was answered \
                         Ok({index}) but the committed log has it at {found:?}"
                    );
                }
                Some(Err(error)) => {
                    self.stats.answered_err += 1;
                    assert_eq!(
                        found, None,
                        "refused write applied: {request} on node {on} was answered \
                         Err({error}) but the committed log has it at {found:?}"
                    );
                }
                // Unanswered: the client does not know the outcome (a driver would time it
                // out). Fine, unless the command committed on a node that stayed up: that node
                // applied it and owed its client an answer.
                None => assert!(
                    found.is_none()
                        || node.restarts != proposal.restarts
                        || node.snapshots_installed != proposal.installs,
                    "unanswered: {request} on node {on}, which stayed up, is committed at \
                     {found:?} but its client got no answer"
                ),
            }
        }
        self.stats.proposals = self.proposals.len() as u64;
    }

    /// The state of every node in one line, for liveness failures.
    fn summary(&self) -> String {
        self.ids
            .iter()
            .map(|id| match self.cluster.core(*id) {
                Some(core) => format!(
                    "{id}: {:?} term {} leader {:?} last {} commit {} applied {}",
                    core.role(),
                    core.term(),
                    core.leader(),
                    core.last_log_id(),
                    core.commit_index(),
                    core.last_applied()
                ),
                None => format!("{id}: down"),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| value == "1")
}
