//! One run: a fresh cluster, clients, one nemesis on a schedule, then the checks.
//!
//! ```text
//!  start n nodes ─► leader ─► clients ─► { fault, hold 2-4 s, heal, recovery: time until a write
//!  through every node succeeds, calm (2-3 s in all) } until the fault time is up ─► final heal
//!  ─► clients run 1 s more, stop ─► every node applies the highest commit index
//!  ─► stale reads of every key on every node agree ─► linearizability of each key's history,
//!     ending with that converged value ─► Report
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::client::{self, cluster_view, Workload};
use super::firewall::Firewall;
use super::history::{self, render_key, Tally};
use super::nemesis::{find_leader, Nemesis};
use super::nodes::Nodes;
use crate::rng::TestRng;

/// How long the first leader may take, and how long nodes may take to converge.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The bound on recovery: after the final heal, every node serves a write within this.
pub const RECOVERY_BOUND: Duration = Duration::from_secs(20);

/// How many clients run at once.
const CLIENTS: u64 = 6;

/// A run's parameters.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    /// The fault.
    pub nemesis: Nemesis,
    /// How long faults are applied and healed in turn.
    pub fault_time: Duration,
    /// Seeds the schedule's choices, the clients' operations and the ports.
    pub seed: u64,
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The nemesis.
    pub nemesis: Nemesis,
    /// The run's seed.
    pub seed: u64,
    /// Operations by outcome.
    pub tally: Tally,
    /// Faults applied.
    pub faults: usize,
    /// Whether every key's history is linearizable.
    pub linearizable: bool,
    /// The longest time from a heal until every node served a write (`None`: not within
    /// [`RECOVERY_BOUND`] once).
    pub recovery: Option<Duration>,
    /// How far the highest term rose during the run (elections the faults caused).
    pub term_rise: u64,
    /// Everything that went wrong; empty for a passing run.
    pub problems: Vec<String>,
}

/// Runs `config` against `exe`, keeping node directories and logs under `root`.
pub async fn run(config: RunConfig, exe: &Path, root: &Path) -> anyhow::Result<Report> {
    let mut rng = TestRng::new(config.seed);
    let mut nodes = Nodes::new(exe, config.nemesis.node_count(), root, rng.next_u64())?;
    let firewall = Firewall::install(&nodes.raft_ports())?;
    for id in nodes.ids() {
        nodes.start(id, false)?;
    }
    wait_for_leader(&nodes).await?;

    let workload = Workload {
        endpoints: Arc::new(nodes.endpoints()),
        started: Instant::now(),
        records: Arc::new(Mutex::new(Vec::new())),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let workers: Vec<_> = (0..CLIENTS)
        .map(|client| tokio::spawn(client::worker(workload.clone(), client, rng.next_u64())))
        .collect();

    let mut report = Report {
        nemesis: config.nemesis,
        seed: config.seed,
        tally: Tally::default(),
        faults: 0,
        linearizable: false,
        recovery: Some(Duration::ZERO),
        term_rise: 0,
        problems: Vec::new(),
    };
    let first_term = highest_term(&nodes).await;
    let schedule = schedule(&config, &mut nodes, &firewall, &mut rng, &mut report).await;
    // Heal whatever the schedule left, even when it failed half-way.
    firewall.heal()?;
    nodes.revive_all()?;
    if let Err(error) = schedule {
        report.problems.push(format!("nemesis: {error:#}"));
    }
    note_recovery(&mut report.recovery, measure_recovery(&nodes).await);
    if report.recovery.is_none() {
        report.problems.push(format!(
            "the cluster did not serve writes through every node within {RECOVERY_BOUND:?} of healing"
        ));
    }
    report.term_rise = highest_term(&nodes).await.saturating_sub(first_term);
    tokio::time::sleep(Duration::from_secs(1)).await;
    workload.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.context("a client task panicked")?;
    }
    if let Err(error) = nodes.check_alive() {
        report.problems.push(format!("crash: {error:#}"));
    }
    check(&nodes, &workload, root, &mut report).await;
    if firewall.rule_count()? != 0 {
        report
            .problems
            .push("firewall rules left after healing".into());
    }
    Ok(report)
}

/// Applies and heals the nemesis until the fault time is up.
async fn schedule(
    config: &RunConfig,
    nodes: &mut Nodes,
    firewall: &Firewall,
    rng: &mut TestRng,
    report: &mut Report,
) -> anyhow::Result<()> {
    let end = Instant::now() + config.fault_time;
    let started = Instant::now();
    while Instant::now() < end {
        let what = config.nemesis.apply(nodes, firewall, rng).await?;
        report.faults += 1;
        eprintln!(
            "[{:>6.1}s] {}: {what}",
            started.elapsed().as_secs_f64(),
            config.nemesis.name()
        );
        tokio::time::sleep(Duration::from_millis(2_000 + rng.below(2_000))).await;
        config.nemesis.heal(nodes, firewall).await?;
        let healed = Instant::now();
        let recovery = measure_recovery(nodes).await;
        eprintln!(
            "[{:>6.1}s] {}: healed; every node served a write after {recovery:?}",
            started.elapsed().as_secs_f64(),
            config.nemesis.name()
        );
        note_recovery(&mut report.recovery, recovery);
        let calm = Duration::from_millis(2_000 + rng.below(1_000));
        tokio::time::sleep(calm.saturating_sub(healed.elapsed())).await;
    }
    Ok(())
}

/// Keeps the longest recovery; one that never came (`None`) sticks.
fn note_recovery(longest: &mut Option<Duration>, recovery: Option<Duration>) {
    *longest = match (*longest, recovery) {
        (Some(longest), Some(recovery)) => Some(longest.max(recovery)),
        _ => None,
    };
}

/// The highest term any node reports.
async fn highest_term(nodes: &Nodes) -> u64 {
    let mut highest = 0;
    for endpoint in nodes.endpoints() {
        let view = cluster_view(&endpoint).await.unwrap_or_default();
        highest = highest.max(view["term"].as_u64().unwrap_or(0));
    }
    highest
}

/// Waits for a node to claim leadership.
async fn wait_for_leader(nodes: &Nodes) -> anyhow::Result<u64> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        if let Some(leader) = find_leader(nodes).await {
            return Ok(leader);
        }
        if Instant::now() >= deadline {
            bail!("no leader within {SETTLE_TIMEOUT:?} of starting the cluster");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The time until a write through each node succeeded, if within [`RECOVERY_BOUND`].
async fn measure_recovery(nodes: &Nodes) -> Option<Duration> {
    let healed = Instant::now();
    for endpoint in nodes.endpoints() {
        while !client::probe_write(&endpoint, "recovery-probe").await {
            if healed.elapsed() > RECOVERY_BOUND {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Some(healed.elapsed())
}

/// Convergence, agreement and linearizability; fills in the report.
async fn check(nodes: &Nodes, workload: &Workload, root: &Path, report: &mut Report) {
    let records = workload.history();
    report.tally = history::tally(&records);
    if let Err(error) = wait_converged(nodes).await {
        report.problems.push(format!("convergence: {error:#}"));
        return;
    }
    let finals = match agreed_values(nodes, &workload.keys_so_far()).await {
        Ok(finals) => finals,
        Err(error) => {
            report.problems.push(format!("divergence: {error:#}"));
            return;
        }
    };
    let bad = history::check_per_key(&records, &finals, workload.now());
    report.linearizable = bad.is_empty();
    for (key, verdict) in bad {
        let path = root.join(format!("history-{key}.txt"));
        let final_value = finals.get(&key).cloned().flatten();
        let text = format!(
            "key {key}, final value {final_value:?}\ncall µs, return µs, client, op -> outcome\n{}\n",
            render_key(&records, &key)
        );
        let written = std::fs::write(&path, text).map_or_else(
            |error| format!("(could not write {}: {error})", path.display()),
            |()| format!("history in {}", path.display()),
        );
        report
            .problems
            .push(format!("key {key}: {verdict:?}; {written}"));
    }
}

/// Waits until every node applied the highest commit index any node reports.
async fn wait_converged(nodes: &Nodes) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut target = 0;
    for endpoint in nodes.endpoints() {
        let view = cluster_view(&endpoint).await.unwrap_or_default();
        target = target.max(view["commit_index"].as_u64().unwrap_or(0));
    }
    for endpoint in nodes.endpoints() {
        loop {
            let view = cluster_view(&endpoint).await.unwrap_or_default();
            let applied = view["applied_index"].as_u64();
            if applied.is_some_and(|applied| applied >= target) {
                break;
            }
            if Instant::now() >= deadline {
                bail!("{endpoint} did not apply index {target} (at {applied:?})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Every key's value, read stale on every node; fails naming a key on which nodes differ.
async fn agreed_values(
    nodes: &Nodes,
    keys: &[String],
) -> anyhow::Result<BTreeMap<String, Option<String>>> {
    let mut finals = BTreeMap::new();
    for key in keys {
        let mut seen: BTreeMap<Option<String>, Vec<u64>> = BTreeMap::new();
        for spec in nodes.specs() {
            let value = client::stale_read(&spec.endpoint(), key)
                .await
                .with_context(|| {
                    format!("node {} did not answer a stale read of {key}", spec.id)
                })?;
            seen.entry(value).or_default().push(spec.id);
        }
        if seen.len() > 1 {
            bail!("nodes disagree on {key}: {seen:?}");
        }
        finals.extend(seen.into_keys().next().map(|value| (key.clone(), value)));
    }
    Ok(finals)
}
