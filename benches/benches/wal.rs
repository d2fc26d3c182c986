//! WAL throughput: appends per second with one fsync each (a single writer straight on the
//! store), and writes per second through a real single-node `Raft` on the WAL with 1 and 64
//! concurrent proposers, where group commit lets many entries share one fsync. For 16-byte and
//! 4 KiB entries; each figure is the median of 3 runs; entries per fsync come from `WalStats`.
//!
//! `cargo bench -p raftor-benches --bench wal` (set `WAL_BENCH_DIR` to measure another disk;
//! the default is the system temp dir).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use raftor::core::Role;
use raftor::{
    Config, Entry, EntryPayload, LogId, LogIndex, LogStorage, NodeId, Raft, Router, StateMachine,
    StateMachineError, Term, WalOptions, WalStorage,
};

/// How long each run measures.
const RUN: Duration = Duration::from_secs(3);
const RUNS: usize = 3;

/// A state machine that only counts: the bench measures the log, not the application.
struct Counter(u64);

#[async_trait]
impl StateMachine for Counter {
    type Command = Vec<u8>;
    type Response = u64;

    async fn apply(&mut self, _: LogIndex, _: Vec<u8>) -> Result<u64, StateMachineError> {
        self.0 += 1;
        Ok(self.0)
    }
}

/// One run's outcome.
struct Figure {
    per_second: f64,
    entries_per_sync: f64,
}

fn temp_dir() -> tempfile::TempDir {
    match std::env::var("WAL_BENCH_DIR") {
        Ok(dir) => tempfile::tempdir_in(dir).expect("temp dir in WAL_BENCH_DIR"),
        Err(_) => tempfile::tempdir().expect("temp dir"),
    }
}

/// Appends one entry per call (one fsync each) for `RUN`.
async fn single_writer(entry_bytes: usize) -> Figure {
    let dir = temp_dir();
    let mut wal = WalStorage::open(dir.path(), WalOptions::default())
        .await
        .expect("open");
    let stats = wal.stats();
    let payload: Arc<[u8]> = Arc::from(vec![7u8; entry_bytes]);
    let started = Instant::now();
    let mut index = 0;
    while started.elapsed() < RUN {
        index += 1;
        let entry = Entry {
            log_id: LogId::new(Term(1), LogIndex(index)),
            payload: EntryPayload::Command(Arc::clone(&payload)),
        };
        wal.append(vec![entry]).await.expect("append");
    }
    Figure {
        per_second: index as f64 / started.elapsed().as_secs_f64(),
        entries_per_sync: stats.entries_per_sync(),
    }
}

/// `proposers` clients write through a single-node `Raft` on the WAL for `RUN`.
async fn through_raft(proposers: usize, entry_bytes: usize) -> Figure {
    let dir = temp_dir();
    let wal = WalStorage::open(dir.path(), WalOptions::default())
        .await
        .expect("open");
    let stats = wal.stats();
    let id = NodeId(1);
    let router = Router::new(1);
    let config = Config {
        seed: Some(1),
        ..Config::default()
    };
    let raft = Raft::bootstrap(id, [id], config, router.network(id), wal, Counter(0))
        .await
        .expect("start");
    raft.wait(Duration::from_secs(10))
        .role(Role::Leader)
        .await
        .expect("leads");
    let (entries_before, syncs_before) = (stats.entries(), stats.append_syncs());
    let started = Instant::now();
    let clients: Vec<_> = (0..proposers)
        .map(|_| {
            let raft = raft.clone();
            tokio::spawn(async move {
                let mut writes = 0u64;
                while started.elapsed() < RUN {
                    raft.client_write(vec![7u8; entry_bytes])
                        .await
                        .expect("write");
                    writes += 1;
                }
                writes
            })
        })
        .collect();
    let mut writes = 0;
    for client in clients {
        writes += client.await.expect("client");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let entries = stats.entries() - entries_before;
    let syncs = stats.append_syncs() - syncs_before;
    raft.shutdown().await;
    Figure {
        per_second: writes as f64 / elapsed,
        entries_per_sync: entries as f64 / syncs.max(1) as f64,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn report(name: &str, figures: Vec<Figure>) {
    let per_second: Vec<f64> = figures.iter().map(|f| f.per_second).collect();
    let per_sync: Vec<f64> = figures.iter().map(|f| f.entries_per_sync).collect();
    let runs: Vec<String> = per_second.iter().map(|v| format!("{v:.0}")).collect();
    println!(
        "{name:<36} {:>9.0} /s   {:>6.1} entries/fsync   (runs: {})",
        median(per_second),
        median(per_sync),
        runs.join(", ")
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    for entry_bytes in [16usize, 4096] {
        let mut figures = Vec::new();
        for _ in 0..RUNS {
            figures.push(single_writer(entry_bytes).await);
        }
        report(&format!("wal_append/1_writer/{entry_bytes}B"), figures);
        for proposers in [1usize, 64] {
            let mut figures = Vec::new();
            for _ in 0..RUNS {
                figures.push(through_raft(proposers, entry_bytes).await);
            }
            report(
                &format!("raft_write/{proposers}_proposers/{entry_bytes}B"),
                figures,
            );
        }
    }
}
