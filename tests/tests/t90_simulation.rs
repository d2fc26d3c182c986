//! Deterministic simulation of whole clusters (`raftor_tests::sim`): many seeded runs with
//! crashes, partitions, message loss, slow disks and clients, checking Raft's safety properties
//! after every event (§5.2–§5.4, Figure 3), the clients' history for linearizability, and
//! recovery after healing.
//!
//! Replay a seed: `RAFTOR_SIM_SEED=1234 cargo test -p raftor-tests --test t90_simulation`;
//! add `RAFTOR_SIM_TRACE=1` (and `-- --nocapture`) for its trace. Long runs:
//! `RAFTOR_SIM_SEEDS=100000 cargo test --release -p raftor-tests --test t90_simulation`.

use raftor_tests::sim::{self, Options};

fn run_range(first: u64, count: u64) {
    let options = Options::default();
    let seeds = sim::seeds(first, count);
    let mut totals = sim::RunReport::default();
    for seed in &seeds {
        match sim::run(*seed, &options) {
            Ok(report) => {
                totals.events += report.events;
                totals.ops_ok += report.ops_ok;
                totals.ops_unknown += report.ops_unknown;
                totals.crashes += report.crashes;
                totals.committed += report.committed;
            }
            Err(failure) => panic!("{failure}"),
        }
    }
    println!("{} seeds from {first}: {totals:?}", seeds.len());
}

#[test]
fn smoke() {
    run_range(0, 20);
}
