//! Real nodes on the WAL: a failed fsync or a full disk stops the node with `Fatal` (and what
//! it had acknowledged survives), a three-node cluster restarted from its data directories keeps
//! every committed entry, and concurrent writes share fsyncs (group commit).
//!
//! These run in real time on a multi-threaded runtime: the WAL does real IO on its own thread,
//! and paused tokio time would race ahead of it (every wait on the disk looks idle to the clock).
//! Each node runs on its own actix thread, and `shutdown` returns once that thread, and with it
//! the store and its directory lock, is gone.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use raftor::core::Role;
use raftor::{
    ClientWriteError, Config, Fatal, FaultInjector, LogIndex, LogStorage, NodeId, Raft, Router,
    StorageError, WalOptions, WalStorage,
};
use raftor_tests::{Ledger, Recorder};

const WAIT: Duration = Duration::from_secs(10);

async fn open(dir: &Path, faults: FaultInjector) -> WalStorage {
    let options = WalOptions {
        segment_bytes: 4096,
        faults,
    };
    WalStorage::open(dir, options).await.expect("open WAL")
}

/// A one-node cluster (node 1) on the WAL in `dir`, once it leads.
async fn single_node(dir: &Path, faults: FaultInjector, ledger: &Ledger) -> Raft<Recorder> {
    let config = Config {
        seed: Some(1),
        ..Config::default()
    };
    single_node_with(dir, faults, ledger, config).await
}

/// As [`single_node`], with a config.
async fn single_node_with(
    dir: &Path,
    faults: FaultInjector,
    ledger: &Ledger,
    config: Config,
) -> Raft<Recorder> {
    let id = NodeId(1);
    let router = Router::new(1);
    let storage = open(dir, faults).await;
    let recorder = Recorder::new(id, ledger.clone());
    let raft = Raft::bootstrap(id, [id], config, router.network(id), storage, recorder)
        .await
        .expect("starts");
    raft.wait(WAIT).role(Role::Leader).await.expect("leads");
    raft
}

/// Fails the node's next disk operation of one kind, checks the write that hits it and every
/// later one get `Fatal`, then checks the acknowledged write survives a reopen.
async fn assert_disk_failure_is_fatal(fail: impl FnOnce(&FaultInjector), operation: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let faults = FaultInjector::default();
    let ledger = Ledger::default();
    let raft = single_node(dir.path(), faults.clone(), &ledger).await;
    let acknowledged = raft.client_write(1).await.expect("healthy write");
    fail(&faults);
    let result = raft.client_write(2).await;
    let Err(ClientWriteError::Fatal(Fatal::Storage(StorageError::Io { operation: op, .. }))) =
        &result
    else {
        panic!("expected a fatal {operation} error, got {result:?}");
    };
    assert_eq!(*op, operation);
    raft.wait(WAIT)
        .until("the node stopped", |metrics| !metrics.running)
        .await
        .expect("the node stops");
    assert!(matches!(
        raft.client_write(3).await,
        Err(ClientWriteError::Fatal(_))
    ));
    raft.shutdown().await;
    let mut wal = open(dir.path(), FaultInjector::default()).await;
    let entries = wal.load().await.expect("load").entries;
    assert!(
        entries.len() as u64 >= acknowledged.0,
        "acknowledged write at {acknowledged} lost: {} entries",
        entries.len()
    );
}

/// A failed fsync stops the node with `Fatal` (never retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t53_failed_fsync_stops_the_node() {
    assert_disk_failure_is_fatal(|faults| faults.fail_sync_after(0), "fsync").await;
}

/// A full disk stops the node with `Fatal`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t53_full_disk_stops_the_node() {
    assert_disk_failure_is_fatal(|faults| faults.fail_write_after(0), "write").await;
}

/// Starts (or restarts) node `id` of a cluster of `ids` on the WAL in `root/<id>`.
async fn start_node(
    root: &Path,
    id: NodeId,
    ids: &[NodeId],
    router: &Router,
    ledger: &Ledger,
) -> Raft<Recorder> {
    let storage = open(&root.join(id.to_string()), FaultInjector::default()).await;
    let config = Config {
        seed: Some(id.0 * 31),
        ..Config::default()
    };
    let recorder = Recorder::new(id, ledger.clone());
    let raft = Raft::bootstrap(
        id,
        ids.iter().copied(),
        config,
        router.network(id),
        storage,
        recorder,
    )
    .await
    .expect("node starts");
    router.register(id, Arc::new(raft.clone()));
    raft
}

/// Three nodes on the WAL take writes; all three stop and restart from their directories; every
/// committed write is applied again at the same index on every node, and the cluster takes more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t53_cluster_restarts_from_its_data_directories() {
    let root = tempfile::tempdir().expect("temp dir");
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let ledger = Ledger::default();
    let router = Router::new(53);
    let mut nodes = Vec::new();
    for id in ids {
        nodes.push(start_node(root.path(), id, &ids, &router, &ledger).await);
    }
    let mut written = Vec::new();
    for value in 1..=20u64 {
        let index = nodes[value as usize % 3]
            .client_write(value)
            .await
            .expect("write");
        written.push((index, value));
    }
    for raft in nodes.drain(..) {
        router.unregister(raft.id());
        raft.shutdown().await;
    }
    for id in ids {
        nodes.push(start_node(root.path(), id, &ids, &router, &ledger).await);
    }
    let (last, _) = *written.last().expect("writes");
    for raft in &nodes {
        raft.wait(WAIT)
            .applied(last)
            .await
            .expect("re-applies the log");
        for (index, value) in &written {
            assert_eq!(
                ledger.applied_at(raft.id(), *index),
                Some(*value),
                "node {} at {index} after the restart",
                raft.id()
            );
        }
    }
    let index = nodes[0]
        .client_write(21)
        .await
        .expect("write after restart");
    assert!(index > last);
    for raft in &nodes {
        raft.shutdown().await;
    }
    ledger.check();
}

/// 64 clients writing at once share fsyncs: appends that queue while one is being written go
/// out together in the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t53_concurrent_writes_share_fsyncs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = Ledger::default();
    let options = WalOptions::default();
    let storage = WalStorage::open(dir.path(), options).await.expect("open");
    let stats = storage.stats();
    let id = NodeId(1);
    let router = Router::new(2);
    let config = Config {
        seed: Some(2),
        ..Config::default()
    };
    let recorder = Recorder::new(id, ledger.clone());
    let raft = Raft::bootstrap(id, [id], config, router.network(id), storage, recorder)
        .await
        .expect("starts");
    raft.wait(WAIT).role(Role::Leader).await.expect("leads");
    let (entries_before, syncs_before) = (stats.entries(), stats.append_syncs());
    const CLIENTS: u64 = 64;
    const WRITES_EACH: u64 = 8;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let raft = raft.clone();
            tokio::spawn(async move {
                for n in 0..WRITES_EACH {
                    raft.client_write(client * 1000 + n).await.expect("write");
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("client task");
    }
    let entries = stats.entries() - entries_before;
    let syncs = stats.append_syncs() - syncs_before;
    println!("{entries} entries in {syncs} fsyncs");
    // The first leader's blank entry may land in the measured window too.
    assert!(
        entries >= CLIENTS * WRITES_EACH,
        "{entries} entries written"
    );
    assert!(
        syncs * 4 <= entries,
        "{entries} entries took {syncs} fsyncs: appends were not grouped"
    );
    assert!(raft.metrics().last_applied >= LogIndex(CLIENTS * WRITES_EACH));
    raft.shutdown().await;
}

/// Log compaction on the WAL: under continuous writes the stored log stays bounded (snapshots
/// every 50 entries, whole segments purged behind them), and a restart restores the latest
/// snapshot and applies the tail after it: every write is there, each applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t53_compaction_bounds_the_stored_log_and_restarts_from_the_snapshot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = Ledger::default();
    let config = Config {
        seed: Some(1),
        snapshot_threshold_entries: 50,
        snapshot_keep_tail_entries: 10,
        ..Config::default()
    };
    let raft = single_node_with(
        dir.path(),
        FaultInjector::default(),
        &ledger,
        config.clone(),
    )
    .await;
    for batch in 0..20u64 {
        let writes = (0..100).map(|i| {
            let raft = raft.clone();
            async move { raft.client_write(batch * 100 + i + 1).await }
        });
        for result in futures::future::join_all(writes).await {
            result.expect("write");
        }
    }
    // Real time: a snapshot is built beside the writes, so the log may run ahead of it for a
    // moment under load. The bound holds once the last build is in.
    let caught_up = raft
        .wait(WAIT)
        .until("compaction caught up with the writes", |m| {
            m.snapshot.is_some() && m.last_log_id.index.0 - m.log_base.index.0 <= 50 + 10 + 100
        })
        .await;
    assert!(
        caught_up.is_ok(),
        "compaction never caught up: {:?}",
        raft.metrics()
    );
    raft.shutdown().await;

    let mut storage = open(dir.path(), FaultInjector::default()).await;
    let stored = storage.load().await.expect("load");
    // At most 50 entries since the snapshot, a batch in flight and the tail of 10 — twice, as
    // the purge behind the last snapshot may not have reached the disk before the shutdown.
    assert!(
        stored.entries.len() <= 2 * (50 + 10 + 100),
        "{} entries stored after 2000 writes",
        stored.entries.len()
    );
    drop(storage);

    let raft = single_node_with(dir.path(), FaultInjector::default(), &ledger, config).await;
    let last = raft.metrics().last_log_id.index;
    raft.wait(WAIT)
        .applied(last)
        .await
        .expect("applies the tail");
    assert_eq!(ledger.committed().len(), 2000, "every write survives");
    ledger.check();
    raft.shutdown().await;
}
