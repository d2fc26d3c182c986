//! Black-box fault tests of `raftor-kv` (see `raftor_tests::jepsen`): for each nemesis, a fresh
//! cluster of `raftor-kv serve` processes, concurrent clients, faults applied and healed on a
//! schedule, then linearizability per key, convergence, no lost acknowledged write and a bounded
//! recovery. Prints a summary table; fails naming every problem, with each run's seed.
//!
//! Needs root, iptables and the `raftor-kv` binary (built by `cargo test --workspace`); without
//! them the test fails saying what is missing, unless `RAFTOR_FAULTS_SKIP=1`. The nemeses run
//! one after another in this one test: they share the machine's firewall and loopback addresses.

use std::io::Write;

use raftor_tests::jepsen::{prereq, run, summary, RunConfig, SuiteConfig};

#[test]
fn the_kv_store_stays_linearizable_under_faults() {
    let exe = match prereq::check(5) {
        Ok(exe) => exe,
        Err(missing) if !prereq::must_run() => {
            eprintln!(
                "\n*** t95_faults NOT RUN: the black-box fault tests need:\n  - {}\n*** run as \
                 root (CI does), or set {}=1 to make this a failure\n",
                missing.join("\n  - "),
                prereq::REQUIRED_VAR
            );
            return;
        }
        Err(missing) => panic!(
            "the fault tests cannot run; missing:\n  - {}\n(set {}=1 to skip them)",
            missing.join("\n  - "),
            prereq::SKIP_VAR
        ),
    };
    let config = SuiteConfig::from_env().expect("RAFTOR_FAULTS_* settings");
    eprintln!(
        "fault suite: {} nemeses, {:?} of faults each, seed {} (replay with RAFTOR_FAULTS_SEED={})",
        config.nemeses.len(),
        config.fault_time,
        config.seed,
        config.seed
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut reports = Vec::new();
    let mut kept = Vec::new();
    for (i, nemesis) in config.nemeses.iter().copied().enumerate() {
        let dir = tempfile::Builder::new()
            .prefix(&format!("raftor-faults-{}-", nemesis.name()))
            .tempdir()
            .expect("a temporary directory");
        let run_config = RunConfig {
            nemesis,
            fault_time: config.fault_time,
            seed: config.seed + i as u64,
        };
        let report = runtime
            .block_on(run(run_config, &exe, dir.path()))
            .unwrap_or_else(|error| {
                panic!("{}: the run could not proceed: {error:#}", nemesis.name())
            });
        if !report.problems.is_empty() {
            kept.push(dir.keep());
        }
        eprintln!("{}", summary(std::slice::from_ref(&report)));
        reports.push(report);
    }
    // Written to stderr directly, not through the test harness's capture: CI shows it on success.
    let table = summary(&reports);
    let _ = std::io::stderr().write_all(format!("\n{table}").as_bytes());
    let problems: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.problems
                .iter()
                .map(move |p| format!("{} (seed {}): {p}", r.nemesis.name(), r.seed))
        })
        .collect();
    assert!(
        problems.is_empty(),
        "{} problem(s); node logs kept in {kept:?}:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
