//! A deterministic simulator of whole raftor clusters: one thread, one seed, simulated time.
//!
//! Each simulated node runs the real protocol core *and the real action driver* — the same
//! [`raftor::driver::Executor`] the actix `NodeActor` embeds, which holds actions back until the
//! hard state is durable, orders storage writes, batches client writes while the leader's append
//! is in flight, and routes replies to RPC callers and clients. Only what the actor does with
//! actix and tokio is replaced: the simulator performs the executor's effects on a simulated
//! world.
//!
//! ```text
//!                 ┌──────────── World (one thread, BTreeMap event queue keyed by time) ───────────┐
//!   seed ─► rng ─►│ ticks ─┐                                   ┌─► Disk (fsync latency, crash loses │
//!                 │ msgs ──┼─► Executor ─► Core ─► Effects ────┤   unsynced writes, slow disk)      │
//!                 │ disk ──┤   (shared with the actor)         ├─► Network (delay, loss, dups,      │
//!                 │ apply ─┘                                   │   reordering, partitions)          │
//!                 │ clients ─► history                         └─► KV state machine ─► clients    │
//!                 │ faults: crash/restart any node, partitions, hooks (crash mid-replication,     │
//!                 │         crash right after a vote), slow disk on the leader, weather           │
//!                 └────────────────────────────────────────────────────────────────────────────────┘
//!        after every event: InvariantChecker on every core + committed entries durable on a quorum
//!        at the end: the clients' history is linearizable, and the healed cluster recovered
//! ```
//!
//! A run has two phases. During the *chaos* phase a fault injector acts every few hundred
//! simulated milliseconds: it crashes a random node or the leader (crashed nodes restart after a
//! random delay, from their disks), arms hooks that crash the leader right after it sends entries
//! or a voter right after it grants its vote, partitions the cluster (symmetrically, one way, or
//! the leader alone), slows the leader's disk, and changes the network's weather. Then everything
//! heals, and the cluster must elect a leader that commits an entry of its term and serves a
//! client within a bounded simulated time (liveness).
//!
//! Clients issue puts, gets (through the log) and compare-and-sets on a few keys, retrying only
//! after a definite refusal; an operation that times out is recorded with an unknown outcome.
//!
//! Everything random comes from the seed; the event queue is a `BTreeMap` keyed by (time,
//! sequence number); no wall clock, no threads, no hash-ordered iteration: a seed replays bit for
//! bit. `RAFTOR_SIM_SEED=<seed>` replays one seed; `RAFTOR_SIM_TRACE=1` prints the run's trace (one
//! line per event, with the node's term, role, last log id, commit, applied and durable
//! positions), `RAFTOR_SIM_TRACE=<file>` writes it there.
//!
//! Reads: the even-numbered clients read through the log, the odd-numbered ones with ReadIndex
//! (the core confirms the read, the node answers from its state machine once it has applied the
//! read index, as `Raft::read` does); both kinds go into the one history the checker judges.
//!
//! Log compaction: in half the seeds (unless `Options::compaction` is off) nodes snapshot every
//! few entries, keep a short tail, and send snapshots in small chunks, so followers that fall
//! behind (crashed, partitioned) catch up through InstallSnapshot; the disk keeps the latest
//! snapshot across crashes and loses a partial one (`snapshots.rs`).
//!
//! Not simulated yet (hooks to add when the features land): membership changes, lease reads.
//!
//! Files: `world.rs` (nodes, event loop, effects), `runner.rs` (a run: faults, clients, checks),
//! `disk.rs`, `network.rs`, `client.rs`, `kv.rs`, `snapshots.rs`.

mod client;
mod disk;
mod kv;
mod network;
mod runner;
mod snapshots;
mod world;

use std::panic::{catch_unwind, AssertUnwindSafe};

use raftor::core::InjectedBugs;

pub use kv::{KvCommand, KvResponse};
pub use runner::Simulation;

/// The environment variable that replays one seed.
pub const SEED_VAR: &str = "RAFTOR_SIM_SEED";
/// The environment variable that sets how many seeds a range test runs.
pub const SEEDS_VAR: &str = "RAFTOR_SIM_SEEDS";
/// The environment variable that dumps the trace (`1`: to stderr; anything else: a file path).
pub const TRACE_VAR: &str = "RAFTOR_SIM_TRACE";

/// What a run simulates.
#[derive(Debug, Clone)]
pub struct Options {
    /// Deliberate bugs switched on in every core (tests of the checkers only).
    pub bugs: InjectedBugs,
    /// Record a trace.
    pub trace: bool,
    /// Simulated milliseconds of faults.
    pub chaos_ms: u64,
    /// Simulated milliseconds the healed cluster has to recover (the liveness bound).
    pub heal_ms: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// Steps the linearizability search may take per key.
    pub search_budget: u64,
    /// Check after every event that committed entries are durable on a quorum of disks. Off, only
    /// the protocol-level checks (invariants, linearizability) remain: the broken-variant test
    /// turns it off to show those catch a durability bug too.
    pub check_durability: bool,
    /// Let half the seeds compact their logs and send snapshots (drawn from the seed). Off, no
    /// seed does: regression seeds replay the runs they were found in.
    pub compaction: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bugs: InjectedBugs::default(),
            trace: std::env::var(TRACE_VAR).is_ok(),
            chaos_ms: 6_000,
            heal_ms: 5_000,
            clients: 3,
            search_budget: 5_000_000,
            check_durability: true,
            compaction: true,
        }
    }
}

/// What a passing run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Cluster size.
    pub nodes: u64,
    /// Events processed.
    pub events: u64,
    /// Simulated time.
    pub simulated_ms: u64,
    /// Client operations that succeeded.
    pub ops_ok: u64,
    /// Client operations definitely not applied.
    pub ops_failed: u64,
    /// Client operations of unknown outcome (committed, unanswered).
    pub ops_unknown: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Length of the committed log.
    pub committed: u64,
    /// Gets answered through ReadIndex (not through the log).
    pub reads_served: u64,
    /// Snapshots built (durable) by any node.
    pub snapshots_built: u64,
    /// Snapshots received from a leader and installed.
    pub snapshots_installed: u64,
}

/// A failed run: its seed, what broke, and how to replay it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// What broke (a violated property, or a panic's message).
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "simulation seed {} failed: {}\nreplay: {SEED_VAR}={} cargo test -p raftor-tests \
             --test t90_simulation\ntrace:  {TRACE_VAR}=1 {SEED_VAR}={} cargo test -p \
             raftor-tests --test t90_simulation -- --nocapture",
            self.seed, self.message, self.seed, self.seed
        )
    }
}

/// Runs one seed. A panic inside (a protocol assertion) is a failure too. The trace, if
/// `options.trace`, is dumped as [`TRACE_VAR`] says when the run fails or replays [`SEED_VAR`].
pub fn run(seed: u64, options: &Options) -> Result<RunReport, Failure> {
    let mut trace = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut simulation = Simulation::new(seed, options);
        let result = simulation.run();
        trace = simulation.trace().map(<[String]>::to_vec);
        result
    }));
    // The trace of a failed run, or of the one seed being replayed (not of every seed of a range).
    let failed = !matches!(result, Ok(Ok(_)));
    if let Some(trace) = trace.filter(|_| failed || std::env::var(SEED_VAR).is_ok()) {
        dump_trace(seed, &trace);
    }
    match result {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(message)) => Err(Failure { seed, message }),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            Err(Failure {
                seed,
                message: format!("panicked: {message}"),
            })
        }
    }
}

/// The trace of one seed, for the determinism test.
pub fn trace_of(seed: u64, options: &Options) -> (Result<RunReport, String>, Vec<String>) {
    let options = Options {
        trace: true,
        ..options.clone()
    };
    let mut simulation = Simulation::new(seed, &options);
    let result = simulation.run();
    (result, simulation.trace().unwrap_or_default().to_vec())
}

fn dump_trace(seed: u64, trace: &[String]) {
    match std::env::var(TRACE_VAR).as_deref() {
        Ok("1") | Err(_) => {
            eprintln!("---- trace of seed {seed} ({} lines) ----", trace.len());
            for line in trace {
                eprintln!("{line}");
            }
        }
        Ok(path) => {
            let text = trace.join("\n");
            if let Err(error) = std::fs::write(path, text) {
                eprintln!("cannot write the trace to {path}: {error}");
            } else {
                eprintln!("trace of seed {seed} written to {path}");
            }
        }
    }
}

/// The seeds a range test runs: `RAFTOR_SIM_SEED` alone if set, else `first..first + count`.
pub fn seeds(first: u64, count: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var(SEED_VAR)
        .ok()
        .and_then(|value| value.parse().ok())
    {
        return vec![seed];
    }
    (first..first + count).collect()
}
