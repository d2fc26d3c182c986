//! Black-box fault tests of the key-value server, in the manner of Jepsen: real `raftor-kv serve`
//! processes on 127.0.0.1..n, real sockets and fsyncs, and faults from outside — SIGKILL,
//! SIGSTOP, iptables partitions and packet loss, a wiped data directory — while concurrent
//! clients record what they asked and what they were told.
//!
//! ```text
//!   clients (6 tasks) ── HTTP ──► node 1 (127.0.0.1) ◄─ raft/TCP ─► node 2 (127.0.0.2) ◄─► node 3 ...
//!      │ record: invoke, ok / fail / unknown             ▲ SIGKILL, SIGSTOP      ▲ iptables DROP
//!      ▼                                                 └──── nemesis (schedule: fault, heal) ┘
//!   history ─► per-key WGL check (unknown writes may or may not apply) + converged final value
//! ```
//!
//! Files: `nodes.rs` (the processes), `firewall.rs` (the iptables chain), `nemesis.rs` (the
//! faults), `client.rs` (the workload and HTTP calls), `history.rs` (records, the per-key model
//! and check), `run.rs` (one run and its checks), `prereq.rs` (root, iptables, the binary).
//!
//! A run passes when every key's history is linearizable (with each key's converged value read
//! last, so a lost acknowledged write fails it), all nodes hold the same value for every key once
//! they applied the same commit index, every node serves a write within [`RECOVERY_BOUND`] of
//! the final heal, and no node exited on its own.
//!
//! Knobs (environment): `RAFTOR_FAULTS_SOAK_SECS` (fault time per nemesis; default 15),
//! `RAFTOR_FAULTS_NEMESES` (comma-separated names; default all), `RAFTOR_FAULTS_SEED`,
//! `RAFTOR_FAULTS_SKIP=1` (skip where the prerequisites are missing instead of failing),
//! `RAFTOR_KV_BIN` (the binary to test).

pub mod client;
pub mod firewall;
pub mod history;
pub mod nemesis;
pub mod nodes;
pub mod prereq;
pub mod run;

use std::time::Duration;

pub use nemesis::Nemesis;
pub use run::{run, Report, RunConfig, RECOVERY_BOUND};

/// The default fault time per nemesis (CI).
pub const DEFAULT_FAULT_SECS: u64 = 15;

/// The suite's settings, from the environment.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// The nemeses to run, in order.
    pub nemeses: Vec<Nemesis>,
    /// Fault time per nemesis.
    pub fault_time: Duration,
    /// The first run's seed; run i uses seed + i.
    pub seed: u64,
}

impl SuiteConfig {
    /// Reads `RAFTOR_FAULTS_*`; an unknown nemesis name is an error.
    pub fn from_env() -> anyhow::Result<SuiteConfig> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let nemeses = match var("RAFTOR_FAULTS_NEMESES") {
            None => Nemesis::ALL.to_vec(),
            Some(list) => list
                .split(',')
                .map(|name| {
                    Nemesis::parse(name).ok_or_else(|| {
                        let known: Vec<_> = Nemesis::ALL.iter().map(|n| n.name()).collect();
                        anyhow::anyhow!("unknown nemesis {name:?}; known: {}", known.join(", "))
                    })
                })
                .collect::<anyhow::Result<_>>()?,
        };
        let secs = match var("RAFTOR_FAULTS_SOAK_SECS") {
            None => DEFAULT_FAULT_SECS,
            Some(secs) => secs
                .parse()
                .map_err(|_| anyhow::anyhow!("RAFTOR_FAULTS_SOAK_SECS={secs:?} is not a number"))?,
        };
        let seed = match var("RAFTOR_FAULTS_SEED") {
            Some(seed) => seed
                .parse()
                .map_err(|_| anyhow::anyhow!("RAFTOR_FAULTS_SEED={seed:?} is not a number"))?,
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(1),
        };
        Ok(SuiteConfig {
            nemeses,
            fault_time: Duration::from_secs(secs),
            seed,
        })
    }
}

/// The summary table: one row per run.
pub fn summary(reports: &[Report]) -> String {
    let mut out = format!(
        "{:<15} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>12} {:>7}  {}\n",
        "nemesis",
        "faults",
        "terms",
        "ok",
        "failed",
        "unknown",
        "linear",
        "max recovery",
        "result",
        "seed"
    );
    for report in reports {
        let recovery = report.recovery.map_or_else(
            || "none".to_string(),
            |d| format!("{:.2}s", d.as_secs_f64()),
        );
        out.push_str(&format!(
            "{:<15} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>12} {:>7}  {}\n",
            report.nemesis.name(),
            report.faults,
            format!("+{}", report.term_rise),
            report.tally.ok,
            report.tally.failed,
            report.tally.unknown,
            if report.linearizable { "yes" } else { "NO" },
            recovery,
            if report.problems.is_empty() {
                "pass"
            } else {
                "FAIL"
            },
            report.seed,
        ));
    }
    out
}
