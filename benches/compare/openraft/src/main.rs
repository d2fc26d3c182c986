//! raftor's cluster benchmark, rebuilt over openraft's public API: writes per second and client
//! latency of a whole openraft cluster in one process, shaped exactly like raftor's
//! `benches/src/bin/cluster.rs` (same flags, same figures, same `RESULT` line), so the two run
//! side by side on one machine.
//!
//! `cargo run --release -- -m 3 -c 256 -n 200000 [-b 1]` (in `benches/compare/openraft/`)
//!
//! This is our harness, written against openraft's documented API; it is not openraft's own
//! benchmark code. What it runs:
//!
//! - `-m` members in this process, each an openraft `Raft` task on the tokio runtime, with
//!   [`LogStore`] (an in-memory log) and [`Counter`] (a state machine that only counts), joined by
//!   the in-process [`Router`] (no serialization: a request is handed to the target's `Raft`
//!   handle as a value). Node 1 initializes the cluster with all members.
//! - `-c` clients run as tasks on the same multi-threaded tokio runtime, built as raftor's
//!   benchmark builds its own (the default worker count, one per core; `TOKIO_WORKER_THREADS`
//!   changes it for both); each calls `client_write` on the leader back to back, measuring each
//!   call's latency.
//! - `-n` writes in total, split evenly over the clients.
//! - `-b` writes per call: a command is a `u32` count of empty requests, applied together (the
//!   state machine adds it), as in raftor's benchmark. Writes/s counts requests; latencies are
//!   per call.
//! - `-t` (raftor's node placement, `shared` or `per-node`) is accepted and ignored: openraft's
//!   nodes are always tasks on the client runtime, which the `RESULT` line says as
//!   `placement=tokio`.
//!
//! # openraft's Config
//!
//! openraft 0.9.25, with the settings of openraft's own published cluster benchmark
//! (`cluster_benchmark` in its repository), the rest at openraft's defaults:
//!
//! - `election_timeout_min: 200`, `election_timeout_max: 2000` (ms): as openraft's benchmark (our
//!   reading of why: wide enough that a busy leader is not deposed in the middle of a run).
//! - `purge_batch_size: 1024`: as openraft's benchmark, which purges applied logs in batches of
//!   1024 instead of one by one (default 1).
//! - `max_payload_entries: 1024`: as openraft's current benchmark (an earlier version of it left
//!   the default, 300): up to 1024 entries per AppendEntries.
//! - `heartbeat_interval: 50` (ms), `replication_lag_threshold: 5000`,
//!   `max_in_snapshot_log_to_keep: 1000`: openraft's defaults, which its benchmark keeps.
//! - `snapshot_policy: LogsSinceLast(5000)`: openraft's default, which its benchmark keeps, so a
//!   snapshot (here 8 bytes: the count) is built every 5000 entries, and the log purged up to
//!   1000 entries behind it.
//!   raftor's benchmark never compacts; `OPENRAFT_BENCH_SNAPSHOTS=never` switches this harness to
//!   `SnapshotPolicy::Never` to match that instead (the log then grows for the whole run, which
//!   shows in peak memory).
//!
//! openraft's benchmark also runs 32 tokio workers and builds with `lto = "thin"` and
//! `codegen-units = 1`; this harness keeps raftor's runtime and cargo's default release profile
//! instead, so that both binaries are built and scheduled alike.
//!
//! It prints the config, writes/s, p50 / p99 / p99.9 call latency, CPU cores used (process CPU
//! time over wall time, from `getrusage`, during the writes), peak memory (VmHWM) and a final
//! `RESULT` line of `key=value` pairs with the same keys as raftor's. Bad flags exit with code 2.

mod log_store;
mod network;
mod state_machine;

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use openraft::{Config, Raft, ServerState, SnapshotPolicy};
use raftor_benches::args::{Args, ArgsError, USAGE};

use raftor_benches::clients;

use crate::log_store::LogStore;
use crate::network::Router;
use crate::state_machine::Counter;

/// The openraft release this harness is pinned to (`=0.9.25` in Cargo.toml).
const OPENRAFT_VERSION: &str = "0.9.25";

/// Node ids, as in raftor's benchmark: 1 to M.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The benchmark's types: a command is the number of empty requests it carries (the batch
    /// size), its answer is nothing, and a node needs no address in process.
    pub Types:
        D = u32,
        R = (),
        NodeId = NodeId,
        Node = (),
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// A member of the running cluster.
struct Member {
    id: NodeId,
    raft: Raft<Types>,
    counter: Counter,
}

/// A running cluster.
struct Cluster {
    router: Router,
    members: Vec<Member>,
    /// Position of the leader in `members`.
    leader: usize,
}

/// The config every node runs with: see the crate's documentation for each value's source.
fn bench_config(snapshots: SnapshotPolicy) -> anyhow::Result<Config> {
    let config = Config {
        cluster_name: "openraft-cluster-bench".into(),
        election_timeout_min: 200,
        election_timeout_max: 2000,
        purge_batch_size: 1024,
        max_payload_entries: 1024,
        snapshot_policy: snapshots,
        ..Config::default()
    };
    config.validate().context("openraft refused the config")
}

/// The snapshot policy `OPENRAFT_BENCH_SNAPSHOTS` asks for: unset or `default`, openraft's
/// default (as openraft's benchmark); `never`, none (as raftor's benchmark).
fn snapshot_policy() -> Result<SnapshotPolicy, String> {
    match std::env::var("OPENRAFT_BENCH_SNAPSHOTS").as_deref() {
        Err(_) | Ok("") | Ok("default") => Ok(Config::default().snapshot_policy),
        Ok("never") => Ok(SnapshotPolicy::Never),
        Ok(other) => Err(format!(
            "OPENRAFT_BENCH_SNAPSHOTS is `default` or `never`, not {other:?}"
        )),
    }
}

fn main() -> ExitCode {
    let usage = USAGE.replacen("usage: cluster", "usage: openraft-cluster", 1);
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(ArgsError::Help) => {
            println!("{usage}\nenvironment: OPENRAFT_BENCH_SNAPSHOTS=default|never");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("openraft-cluster: {error}\n{usage}");
            return ExitCode::from(2);
        }
    };
    let snapshots = match snapshot_policy() {
        Ok(policy) => policy,
        Err(error) => {
            eprintln!("openraft-cluster: {error}");
            return ExitCode::from(2);
        }
    };
    clients::block_on("openraft-cluster", run(args, snapshots))
}

async fn run(args: Args, snapshots: SnapshotPolicy) -> anyhow::Result<()> {
    let config = Arc::new(bench_config(snapshots)?);
    println!(
        "openraft {OPENRAFT_VERSION} cluster bench: {} members, {} clients, {} writes, batch {} ({} calls), \
         placement tokio (-t is ignored)",
        args.members,
        args.clients,
        args.writes,
        args.batch,
        args.calls()
    );
    println!("config: {config:?}");
    let cluster = start_cluster(args.members, config).await?;
    let leader = &cluster.members[cluster.leader];
    let term_before = leader.raft.metrics().borrow().current_term;
    let batch = u32::try_from(args.batch).unwrap_or(u32::MAX); // checked by `Args::parse`
    let raft = leader.raft.clone();
    let outcome = clients::drive(&args, move || {
        let raft = raft.clone();
        async move { raft.client_write(batch).await }
    })
    .await;
    let metrics = leader.raft.metrics().borrow().clone();
    let applied = leader.counter.requests();
    let snapshots_built = leader.counter.snapshots_built();
    let mut shutdown_errors = Vec::new();
    for member in &cluster.members {
        if let Err(error) = member.raft.shutdown().await {
            shutdown_errors.push(format!("node {}: {error}", member.id));
        }
    }
    cluster.router.clear();
    println!(
        "leader log: last index {:?}, last snapshot at {:?}, purged up to {:?}, {} snapshots built",
        metrics.last_log_index,
        metrics.snapshot.map(|log_id| log_id.index),
        metrics.purged.map(|log_id| log_id.index),
        snapshots_built
    );
    // openraft's nodes are always tasks on the client runtime, whatever `-t` says.
    clients::report(&args, &outcome, "tokio");
    if metrics.current_term != term_before {
        println!(
            "WARNING: the term moved from {term_before} to {} during the run",
            metrics.current_term
        );
    }
    if let Some(error) = &outcome.first_error {
        bail!("{} calls failed; the first: {error}", outcome.errors);
    }
    if applied < args.writes {
        bail!(
            "the leader applied {applied} requests, fewer than {}",
            args.writes
        );
    }
    if !shutdown_errors.is_empty() {
        bail!("shutting down: {}", shutdown_errors.join("; "));
    }
    Ok(())
}

/// Starts `members` nodes on one in-process network, initializes the cluster from node 1 and
/// waits for a leader that has applied its own first entries.
async fn start_cluster(members: u64, config: Arc<Config>) -> anyhow::Result<Cluster> {
    let wait = Some(Duration::from_secs(10));
    let ids: BTreeSet<NodeId> = (1..=members).collect();
    let router = Router::default();
    let mut cluster = Cluster {
        router: router.clone(),
        members: Vec::new(),
        leader: 0,
    };
    for &id in &ids {
        let counter = Counter::default();
        let raft = Raft::new(
            id,
            Arc::clone(&config),
            router.clone(),
            LogStore::default(),
            counter.clone(),
        )
        .await
        .with_context(|| format!("starting node {id}"))?;
        router.register(id, raft.clone());
        cluster.members.push(Member { id, raft, counter });
    }
    let first = &cluster.members[0].raft;
    first
        .initialize(ids.clone())
        .await
        .context("initializing the cluster on node 1")?;
    let metrics = first
        .wait(wait)
        .metrics(|m| m.current_leader.is_some(), "a leader is known")
        .await
        .context("no leader elected within 10 s")?;
    let leader = metrics.current_leader.context("no leader known")?;
    cluster.leader = cluster
        .members
        .iter()
        .position(|member| member.id == leader)
        .context("the leader is not a member")?;
    // The leader counts as leading once it has applied every entry in its log (the membership
    // and its own blank entry), as raftor's benchmark waits for its leader's blank entry.
    cluster.members[cluster.leader]
        .raft
        .wait(wait)
        .metrics(
            |m| {
                m.state == ServerState::Leader
                    && m.last_log_index.is_some()
                    && m.last_applied.map(|log_id| log_id.index) == m.last_log_index
            },
            "the leader applied its log",
        )
        .await
        .context("the elected leader never applied its own entries")?;
    Ok(cluster)
}
