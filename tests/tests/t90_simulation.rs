//! Deterministic simulation of whole clusters (`raftor_tests::sim`): many seeded runs with
//! crashes, power failures, partitions, message loss and duplication, slow disks and clients,
//! checking Raft's safety properties after every event (§5.2–§5.4, Figure 3), the clients'
//! history for linearizability, and recovery after healing.
//!
//! Replay a seed: `RAFTOR_SIM_SEED=1234 cargo test -p raftor-tests --test t90_simulation`;
//! add `RAFTOR_SIM_TRACE=1` (and `-- --nocapture`) for its trace. Long runs:
//! `RAFTOR_SIM_SEEDS=100000 cargo test -p raftor-tests --test t90_simulation seeds`.

use raftor::core::InjectedBugs;
use raftor_tests::sim::{self, Options, RunReport};

/// Seeds each of the two range tests runs in CI (one per core).
const SEEDS_PER_TEST: u64 = 3_000;

/// Runs seeds `first..first + count` (or what the environment asks for), failing on the first
/// broken property with the seed and the command that replays it.
fn run_range(first: u64, count: u64) {
    let options = Options::default();
    let seeds = sim::seeds(first, count);
    let mut totals = RunReport::default();
    for seed in &seeds {
        match sim::run(*seed, &options) {
            Ok(report) => {
                totals.events += report.events;
                totals.simulated_ms += report.simulated_ms;
                totals.ops_ok += report.ops_ok;
                totals.ops_failed += report.ops_failed;
                totals.ops_unknown += report.ops_unknown;
                totals.crashes += report.crashes;
                totals.committed += report.committed;
                totals.reads_served += report.reads_served;
                totals.snapshots_built += report.snapshots_built;
                totals.snapshots_installed += report.snapshots_installed;
            }
            Err(failure) => panic!("{failure}"),
        }
    }
    println!("{} seeds from {first}: {totals:?}", seeds.len());
}

/// With `RAFTOR_SIM_SEEDS=n`, the two halves run n seeds between them.
fn half(part: u64) -> (u64, u64) {
    let total = std::env::var(sim::SEEDS_VAR)
        .ok()
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or(2 * SEEDS_PER_TEST);
    let first_half = total / 2;
    if part == 0 {
        (0, first_half)
    } else {
        (first_half, total - first_half)
    }
}

#[test]
fn seeds_first_half() {
    let (first, count) = half(0);
    run_range(first, count);
}

#[test]
fn seeds_second_half() {
    let (first, count) = half(1);
    run_range(first, count);
}

/// Seeds that once failed, kept as regressions, each with what it found.
#[test]
fn regression_seeds() {
    // NB: each seed reproduced its failure when found; the fault mix has grown since (which
    // changes every run), so they now stand as ordinary seeds that once mattered.
    const REGRESSIONS: &[(u64, &str)] = &[
        // Simulator bug: the network duplicated client requests. raftor has no client sessions,
        // so a duplicated request is two commands; a compare-and-set applied twice answered
        // `false` for its own write. Client requests are no longer duplicated (transports don't).
        (2, "duplicated client request applied twice"),
        // Checker bug: a crash lost a term the core had adopted but not yet made durable, and the
        // checker called the restarted node's older term a regression. Across restarts, term and
        // vote are now held to what was durable (`InvariantChecker::check_core`).
        (281, "undurable term lost on crash"),
    ];
    let options = Options::default();
    for (seed, what) in REGRESSIONS {
        if let Err(failure) = sim::run(*seed, &options) {
            panic!("regression ({what}): {failure}");
        }
    }
}

/// The same seed replays the same run, event for event.
#[test]
fn a_seed_replays_bit_for_bit() {
    let options = Options::default();
    for seed in [3, 17] {
        let (first_result, first_trace) = sim::trace_of(seed, &options);
        let (second_result, second_trace) = sim::trace_of(seed, &options);
        assert!(
            first_trace.len() > 200,
            "seed {seed}: a trace of {} lines proves little",
            first_trace.len()
        );
        assert_eq!(first_result, second_result, "seed {seed}");
        assert!(
            first_trace == second_trace,
            "seed {seed}: the traces differ"
        );
    }
}

/// The checkers can fail: a follower that acknowledges entries before they are durable (the
/// `ack_before_persist` injected bug, contract 2) is caught on the very first seed by the
/// durability check (a committed entry on fewer than a quorum of disks after a crash): 997 of
/// seeds 0..1000 catch it.
#[test]
fn a_follower_acking_before_persisting_is_caught() {
    let options = Options {
        bugs: InjectedBugs {
            ack_before_persist: true,
            ..InjectedBugs::default()
        },
        ..Options::default()
    };
    let failure = (0..5)
        .find_map(|seed| sim::run(seed, &options).err())
        .expect("the durability bug must be caught within 5 seeds");
    assert!(failure.message.contains("durability"), "{failure}");
}

/// The same bug is caught by the protocol-level checks alone (invariants after every step,
/// linearizability), without the durability check: when it was written, first at seed 29, and
/// in 58 of seeds 0..1000 (a power failure or a crash right after an ack, while disks are slow,
/// then a leader elected without the lost entry). NB: the other injected bug,
/// `commit_previous_terms` (the paper's Figure 8), needs a longer chain of coincidences and was
/// caught in none of seeds 0..1000; the core's Figure 8 golden script covers it.
#[test]
fn a_follower_acking_before_persisting_breaks_raft_visibly() {
    let options = Options {
        bugs: InjectedBugs {
            ack_before_persist: true,
            ..InjectedBugs::default()
        },
        check_durability: false,
        ..Options::default()
    };
    let caught = (0..200)
        .find_map(|seed| sim::run(seed, &options).err())
        .expect("the protocol checks must catch the durability bug within 200 seeds");
    println!("caught: {caught}");
}

/// The checkers catch a leader that serves ReadIndex reads without confirming its leadership with
/// a quorum round (the `serve_reads_unconfirmed` injected bug, contract 8): a deposed leader that
/// has not heard of its successor answers a get with a value the successor already overwrote, and
/// the linearizability checker finds no order for that key's history. When this was written the
/// first seed to catch it was 845.
#[test]
fn a_leader_serving_reads_without_a_quorum_round_is_caught() {
    let options = Options {
        bugs: InjectedBugs {
            serve_reads_unconfirmed: true,
            ..InjectedBugs::default()
        },
        ..Options::default()
    };
    let caught = (0..1500)
        .find_map(|seed| sim::run(seed, &options).err())
        .expect("stale reads must be caught within 1500 seeds");
    assert!(caught.message.contains("linearizab"), "{caught}");
    println!("caught: {caught}");
}
