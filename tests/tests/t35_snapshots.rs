//! Snapshots and log compaction (§7) on real nodes: the lab suite's 3D scenarios with their
//! parameters and pass criteria (`/work/shared/raft-scenarios.md`), and a snapshot a hundred
//! times larger than a chunk.
//!
//! Every node snapshots every 10 applied entries (the lab's `SnapShotInterval`) and keeps a tail
//! of 2 entries, so a follower that misses a round needs the leader's snapshot. The test state
//! machine's snapshot is its whole applied history (as the lab's), and the ledger checks each
//! restored snapshot against what was committed at every index it holds.

use raftor::{Config, LogIndex, NodeId};
use raftor_tests::rng::{self, TestRng};
use raftor_tests::TestCluster;

/// The lab's `SnapShotInterval`.
const SNAPSHOT_INTERVAL: u64 = 10;
/// The lab's `MAXLOGSIZE`: the persisted log and hard state stay below it.
const MAX_LOG_BYTES: usize = 2000;

fn snapshot_config() -> Config {
    Config {
        snapshot_threshold_entries: SNAPSHOT_INTERVAL,
        snapshot_keep_tail_entries: 2,
        snapshot_chunk_bytes: 64,
        ..Config::default()
    }
}

async fn cluster(seed: u64) -> TestCluster {
    TestCluster::with_config(3, snapshot_config(), seed).await
}

/// The persisted log and hard state of node `id`, in bytes.
fn persisted_bytes(cluster: &TestCluster, id: NodeId) -> usize {
    let storage = cluster.storage(id);
    let entries = raftor::codec::encode(&storage.entries()).expect("entries encode");
    let hard_state = raftor::codec::encode(&storage.hard_state()).expect("hard state encodes");
    entries.len() + hard_state.len()
}

/// How many received snapshots node `id` installed.
fn installs<C: raftor_tests::recorder::Command>(cluster: &TestCluster<C>, id: NodeId) -> u64 {
    cluster.storage(id).mem_snapshots().installed()
}

/// The lab's `snapcommon`: 30 rounds; each takes the node after the leader as the victim,
/// disconnects or crashes it, commits enough for a snapshot without it, checks the persisted
/// log stays small, then brings it back and commits with all three.
async fn snapcommon(test: u64, disconnect: bool, reliable: bool, crash: bool) -> TestCluster {
    let seed = rng::seed(test);
    let mut rng = TestRng::new(seed);
    let mut cluster = cluster(seed).await;
    cluster.set_unreliable(!reliable);
    cluster.one(rng.next_u64() % 10_000, 3, true).await;
    let mut leader = cluster.check_one_leader().await;
    let mut value = || 10_000 + rng.next_u64() % 1_000_000;
    for _ in 0..30 {
        let victim = cluster.after(leader, 1);
        let sender = if disconnect || crash { leader } else { victim };
        if disconnect {
            cluster.disconnect(victim);
            cluster.one(value(), 2, true).await;
        }
        if crash {
            cluster.crash1(victim).await;
            cluster.one(value(), 2, true).await;
        }
        // Enough entries for a snapshot: the victim falls behind the leader's purged log.
        for _ in 0..=SNAPSHOT_INTERVAL {
            cluster.submit(sender, value());
        }
        cluster.one(value(), 2, true).await;
        for id in cluster.ids() {
            let bytes = persisted_bytes(&cluster, id);
            assert!(
                reliable && bytes < MAX_LOG_BYTES || bytes < 2 * MAX_LOG_BYTES,
                "node {id}: persisted log and hard state of {bytes} bytes"
            );
        }
        if disconnect {
            // Reconnect: the victim needs InstallSnapshot (or the log it already has).
            cluster.connect(victim);
            cluster.one(value(), 3, true).await;
            leader = cluster.check_one_leader().await;
        }
        if crash {
            cluster.start1(victim).await;
            cluster.connect(victim);
            cluster.one(value(), 3, true).await;
            leader = cluster.check_one_leader().await;
        }
    }
    cluster
}

fn total_installs(cluster: &TestCluster) -> u64 {
    cluster
        .ids()
        .into_iter()
        .map(|id| installs(cluster, id))
        .sum()
}

/// TestSnapshotBasic3D: with no faults, every node compacts and the persisted log stays
/// below 2000 bytes through 30 rounds.
#[actix_rt::test]
async fn t35_snapshot_basic() {
    tokio::time::pause();
    let cluster = snapcommon(35, false, true, false).await;
    for id in cluster.ids() {
        let metrics = cluster.metrics(id).expect("running");
        assert!(metrics.snapshot.is_some(), "node {id} never snapshotted");
        assert!(
            metrics.log_base.index > LogIndex(0),
            "node {id} never purged"
        );
    }
    cluster.shutdown().await;
}

/// TestSnapshotInstall3D: a victim disconnected every round catches up through InstallSnapshot.
#[actix_rt::test]
async fn t36_snapshot_install() {
    tokio::time::pause();
    let cluster = snapcommon(36, true, true, false).await;
    assert!(total_installs(&cluster) > 0, "no snapshot was installed");
    cluster.shutdown().await;
}

/// TestSnapshotInstallUnreliable3D: the same on an unreliable network (chunks are lost and
/// resent from the acknowledged offset).
#[actix_rt::test]
async fn t37_snapshot_install_unreliable() {
    tokio::time::pause();
    let cluster = snapcommon(37, true, false, false).await;
    assert!(total_installs(&cluster) > 0, "no snapshot was installed");
    cluster.shutdown().await;
}

/// TestSnapshotInstallCrash3D: a victim crashed every round restarts from its snapshot and log
/// tail, and catches up (through InstallSnapshot when it fell behind the leader's log).
#[actix_rt::test]
async fn t38_snapshot_install_crash() {
    tokio::time::pause();
    let cluster = snapcommon(38, false, true, true).await;
    assert!(total_installs(&cluster) > 0, "no snapshot was installed");
    cluster.shutdown().await;
}

/// TestSnapshotInstallUnCrash3D: crashes on an unreliable network.
#[actix_rt::test]
async fn t39_snapshot_install_uncrash() {
    tokio::time::pause();
    let cluster = snapcommon(39, false, false, true).await;
    cluster.shutdown().await;
}

/// TestSnapshotAllCrash3D: five rounds of committing 5-14 entries, then crashing and restarting
/// every node: the index a new command lands at never goes back (nothing is lost to compaction).
#[actix_rt::test]
async fn t40_snapshot_all_crash() {
    tokio::time::pause();
    let seed = rng::seed(40);
    let mut rng = TestRng::new(seed);
    let mut cluster = cluster(seed).await;
    cluster.one(rng.next_u64() % 10_000, 3, true).await;
    let mut value = 10_000;
    for _ in 0..5 {
        let count = 5 + rng.below(10);
        for _ in 0..count {
            value += 1;
            cluster.one(value, 3, true).await;
        }
        value += 1;
        let before = cluster.one(value, 3, true).await;
        for id in cluster.ids() {
            cluster.crash1(id).await;
        }
        for id in cluster.ids() {
            cluster.start1(id).await;
            cluster.connect(id);
        }
        value += 1;
        let after = cluster.one(value, 3, true).await;
        assert!(after > before, "index went back from {before} to {after}");
    }
    cluster.shutdown().await;
}

/// TestSnapshotInit3D: a snapshot restored on restart is persisted again correctly: crash and
/// restart everyone twice, with a commit in between, and nothing is lost.
#[actix_rt::test]
async fn t41_snapshot_init() {
    tokio::time::pause();
    let seed = rng::seed(41);
    let mut cluster = cluster(seed).await;
    for value in 1..=SNAPSHOT_INTERVAL + 1 {
        cluster.one(value, 3, true).await;
    }
    for round in 0..2 {
        for id in cluster.ids() {
            cluster.crash1(id).await;
        }
        for id in cluster.ids() {
            cluster.start1(id).await;
            cluster.connect(id);
        }
        cluster.one(100 + round, 3, true).await;
    }
    let committed = cluster.ledger.committed();
    for value in 1..=SNAPSHOT_INTERVAL + 1 {
        assert!(
            committed.values().any(|v| *v == value),
            "committed value {value} was lost"
        );
    }
    cluster.shutdown().await;
}

/// A snapshot more than 100 times larger than a chunk is streamed to a follower that was away,
/// chunk by chunk with a per-chunk ack, and installed once; replication resumes after it.
#[actix_rt::test]
async fn t42_snapshot_hundred_chunks() {
    tokio::time::pause();
    let seed = rng::seed(42);
    const CHUNK: u64 = 8;
    let config = Config {
        snapshot_threshold_entries: 50,
        snapshot_keep_tail_entries: 0,
        snapshot_chunk_bytes: CHUNK,
        ..Config::default()
    };
    let mut cluster = TestCluster::with_config(3, config, seed).await;
    cluster.one(1, 3, true).await;
    let leader = cluster.check_one_leader().await;
    let victim = cluster.after(leader, 1);
    cluster.disconnect(victim);
    for value in 2..=400 {
        cluster.one(value, 2, true).await;
    }
    let size = cluster
        .storage(leader)
        .mem_snapshots()
        .latest_data()
        .map_or(0, |data| data.len() as u64);
    assert!(
        size > 100 * CHUNK,
        "the snapshot is only {size} bytes, {} chunks",
        size / CHUNK
    );
    let before = cluster.router.stats(leader).rpcs;
    cluster.connect(victim);
    let index = cluster.one(401, 3, true).await;
    let sent = cluster.router.stats(leader).rpcs - before;
    assert_eq!(
        installs(&cluster, victim),
        1,
        "the victim installs the snapshot once"
    );
    assert!(
        sent > size / CHUNK,
        "{sent} RPCs cannot carry {} chunks",
        size / CHUNK
    );
    cluster.wait(index, 3, None).await;
    // Replication resumed after the snapshot: the victim applies what follows it.
    cluster.one(402, 3, true).await;
    cluster.shutdown().await;
}
