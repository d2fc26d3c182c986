//! The cluster benchmark: writes per second and client latency of a whole raftor cluster in one
//! process, shaped like the framework benchmarks other Rust Raft libraries publish so the figures
//! compare on one machine.
//!
//! `cargo run --release -p raftor-benches --bin cluster -- -m 3 -c 256 -n 200000 [-b 1] [-t shared]`
//!
//! - `-m` members run in this process, with `MemStorage` for the log and a state machine that
//!   only counts, joined by the in-process `Router` (no serialization on the way: requests are
//!   handed over as values).
//! - `-t` where they run: `shared` (the default) starts every member on one `NodeThread`, so
//!   messages between them stay on one event loop; `per-node` starts each from the client
//!   runtime, outside actix, so each gets a private node thread (raftor's behaviour for a
//!   `Raft` started from `#[tokio::main]`); `local` runs the members *and the clients* on one
//!   `NodeThread`, so no write crosses a thread (an application whose handlers share the nodes'
//!   actix thread, as `raftor-kv serve --threads 1` does); `split` runs the clients and the
//!   first member, made leader, on one `NodeThread` and the followers on another.
//! - `-c` clients run as tasks on a multi-threaded tokio runtime (or on the node thread, with
//!   `local` and `split`); each calls `client_write` on the leader back to back, measuring each
//!   call's latency.
//! - `-n` writes in total, split evenly over the clients.
//! - `-b` writes per call. `client_write` takes one command, so a batch is one command carrying
//!   B empty requests, applied together (the state machine counts B): one log entry, one
//!   response. Writes/s counts requests (`-n`); the latencies are per call.
//!
//! It prints the config, writes/s, p50 / p99 / p99.9 call latency, CPU cores used (process CPU
//! time over wall time, from `getrusage`, during the writes), peak memory (VmHWM) and a final
//! `RESULT` line of `key=value` pairs for scripts (the placement last). Bad flags exit with
//! code 2.

use std::io::Read;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use async_trait::async_trait;
use raftor::{
    Config, LogIndex, MemStorage, NodeId, NodeThread, Raft, Router, SnapshotData, SnapshotMeta,
    StateMachine, StateMachineError,
};
use raftor_benches::args::{Args, ArgsError, Placement, USAGE};
use raftor_benches::clients;

/// A state machine that only counts the requests it applied: the benchmark measures the
/// framework, not an application.
struct Counter {
    /// Requests applied by this node, shared with the benchmark for a final check.
    applied: Arc<AtomicU64>,
}

#[async_trait]
impl StateMachine for Counter {
    /// How many empty requests this command carries (the batch size).
    type Command = u32;
    /// Nothing: an empty request has an empty answer.
    type Response = ();

    async fn apply(&mut self, _: LogIndex, requests: u32) -> Result<(), StateMachineError> {
        self.applied
            .fetch_add(u64::from(requests), Ordering::Relaxed);
        Ok(())
    }

    // ANCHOR: apply_batch
    /// A batch at once, as openraft's state machine API takes them: one call, one count.
    async fn apply_batch(
        &mut self,
        commands: Vec<(LogIndex, u32)>,
    ) -> Result<Vec<()>, StateMachineError> {
        let requests: u64 = commands.iter().map(|(_, n)| u64::from(*n)).sum();
        self.applied.fetch_add(requests, Ordering::Relaxed);
        Ok(vec![(); commands.len()])
    }
    // ANCHOR_END: apply_batch

    /// The count, as 8 bytes: compaction keeps the logs short, as in openraft's benchmark.
    async fn snapshot(&mut self) -> Result<SnapshotData, StateMachineError> {
        let count = self.applied.load(Ordering::Relaxed);
        Ok(Box::new(std::io::Cursor::new(count.to_le_bytes())))
    }

    async fn restore(
        &mut self,
        _: &SnapshotMeta,
        mut data: SnapshotData,
    ) -> Result<(), StateMachineError> {
        let mut count = [0u8; 8];
        data.read_exact(&mut count)
            .map_err(|error| StateMachineError::Io(error.to_string()))?;
        self.applied
            .store(u64::from_le_bytes(count), Ordering::Relaxed);
        Ok(())
    }
}

/// A running cluster.
struct Cluster {
    /// The node threads of the placement (none for `per-node`: each member has its own).
    threads: Vec<NodeThread>,
    /// Where the clients run, if on a node thread (`local`, `split`); else on the tokio runtime.
    client_thread: Option<NodeThread>,
    nodes: Vec<Raft<Counter>>,
    /// Requests applied, per node, in `nodes` order.
    applied: Vec<Arc<AtomicU64>>,
    leader: usize,
}

/// The config every node runs with: the defaults, but a client timeout long enough that a queue
/// of thousands of clients is measured, not cut short, and compaction as openraft's benchmark
/// runs it (a snapshot every 5,000 entries, 1,000 kept behind it), so the logs stay short.
/// `RAFTOR_BENCH_SNAPSHOTS=never` turns compaction off: the logs then grow for the whole run.
fn bench_config() -> Config {
    let compaction = std::env::var("RAFTOR_BENCH_SNAPSHOTS").map_or(true, |v| v != "never");
    Config {
        client_timeout: Duration::from_secs(60),
        snapshot_threshold_entries: if compaction { 5_000 } else { 0 },
        snapshot_keep_tail_entries: 1_000,
        ..Config::default()
    }
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(ArgsError::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("cluster: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    clients::block_on("cluster", run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = bench_config();
    println!(
        "raftor cluster bench: {} members, {} clients, {} writes, batch {} ({} calls), placement {}",
        args.members,
        args.clients,
        args.writes,
        args.batch,
        args.calls(),
        args.placement
    );
    println!("config: {config:?}");
    let cluster = start_cluster(args.members, config, args.placement).await?;
    let leader = &cluster.nodes[cluster.leader];
    let term_before = leader.metrics().term;
    let batch = u32::try_from(args.batch).unwrap_or(u32::MAX); // checked by `Args::parse`
    let raft = leader.clone();
    let write = move || {
        let raft = raft.clone();
        async move { raft.client_write(batch).await }
    };
    let outcome = match &cluster.client_thread {
        Some(thread) => {
            thread
                .run(async move { clients::drive(&args, write).await })
                .await?
        }
        None => clients::drive(&args, write).await,
    };
    let term_after = leader.metrics().term;
    let applied = cluster.applied[cluster.leader].load(Ordering::Relaxed);
    for node in &cluster.nodes {
        node.shutdown().await;
    }
    for thread in cluster.threads {
        thread.stop().await;
    }
    clients::report(&args, &outcome, args.placement);
    if term_after != term_before {
        println!("WARNING: the term moved from {term_before} to {term_after} during the run");
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
    Ok(())
}

/// Starts `members` nodes on one in-process network, placed as asked, and waits for a leader.
async fn start_cluster(
    members: u64,
    config: Config,
    placement: Placement,
) -> anyhow::Result<Cluster> {
    let ids: Vec<NodeId> = (1..=members).map(NodeId).collect();
    let router = Router::new(1);
    let threads = match placement {
        Placement::Shared | Placement::Local => vec![NodeThread::start("raftor-nodes")?],
        Placement::Split => vec![
            NodeThread::start("raftor-leader")?,
            NodeThread::start("raftor-followers")?,
        ],
        Placement::PerNode => Vec::new(),
    };
    let client_thread = match placement {
        Placement::Local | Placement::Split => threads.first().cloned(),
        Placement::Shared | Placement::PerNode => None,
    };
    let mut cluster = Cluster {
        threads: threads.clone(),
        client_thread,
        nodes: Vec::new(),
        applied: Vec::new(),
        leader: 0,
    };
    for &id in &ids {
        let applied = Arc::new(AtomicU64::new(0));
        let counter = Counter {
            applied: Arc::clone(&applied),
        };
        let start = Raft::bootstrap(
            id,
            ids.clone(),
            config.clone(),
            router.network(id),
            MemStorage::new(),
            counter,
        );
        // On a node thread's actix system the node joins it (with `split`, the first member on
        // the first thread, the others on the second); outside actix (per-node) it starts a
        // thread of its own.
        let thread = threads.get(usize::from(id != ids[0])).or(threads.first());
        let started = match thread {
            Some(thread) => thread.run(start).await?,
            None => start.await,
        };
        let raft = started.with_context(|| format!("starting node {id:?}"))?;
        router.register(id, Arc::new(raft.clone()));
        cluster.nodes.push(raft);
        cluster.applied.push(applied);
    }
    let leader = cluster.nodes[0]
        .wait(Duration::from_secs(10))
        .leader_known()
        .await
        .context("no leader elected within 10 s")?;
    cluster.leader = ids
        .iter()
        .position(|&id| id == leader)
        .context("the leader is not a member")?;
    // `split` puts the clients beside the first member: it must lead.
    if placement == Placement::Split && cluster.leader != 0 {
        cluster.nodes[cluster.leader]
            .transfer_leader(ids[0])
            .await
            .context("moving the leadership to the first member")?;
        cluster.leader = 0;
    }
    // The leader counts as leading once it has said so itself (it has committed its blank entry).
    cluster.nodes[cluster.leader]
        .wait(Duration::from_secs(10))
        .role(raftor::core::Role::Leader)
        .await
        .context("the elected leader never reported leading")?;
    Ok(cluster)
}
