//! Log compaction: three nodes keep their logs in write-ahead logs, snapshot their key-value
//! state every 500 entries and purge the log behind it. A node that was away while 3,000 writes
//! went by catches up with the leader's snapshot, streamed in chunks; then every node restarts
//! from its snapshot and log tail. Run it with `cargo run -p compaction`.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use raftor::state_machine::SnapshotData;
use raftor::types::SnapshotMeta;
use raftor::{
    codec, Config, LogIndex, NodeId, Raft, ReadLevel, Router, StateMachine, StateMachineError,
    WalOptions, WalStorage,
};
use serde::{Deserialize, Serialize};

/// Set a key.
#[derive(Serialize, Deserialize)]
struct Set {
    key: String,
    value: String,
}

// ANCHOR: state_machine
/// A replicated map. Its snapshot is the map, encoded; the applied index travels with it, so a
/// restart knows where the snapshot ends.
#[derive(Default)]
struct KvStore {
    map: BTreeMap<String, String>,
}

#[async_trait]
impl StateMachine for KvStore {
    type Command = Set;
    type Response = ();

    async fn apply(&mut self, _index: LogIndex, set: Set) -> Result<(), StateMachineError> {
        self.map.insert(set.key, set.value);
        Ok(())
    }

    /// Called between two applies: copy the state (a clone here; a persistent map or a storage
    /// engine checkpoint makes it cheap) and return a reader of its bytes. raftor reads it on a
    /// blocking thread and stores it while applying goes on.
    async fn snapshot(&mut self) -> Result<SnapshotData, StateMachineError> {
        let bytes = codec::encode(&self.map).map_err(StateMachineError::Io)?;
        Ok(Box::new(Cursor::new(bytes)))
    }

    /// Replaces the whole state with the snapshot's (runs on a blocking thread).
    async fn restore(
        &mut self,
        _meta: &SnapshotMeta,
        mut data: SnapshotData,
    ) -> Result<(), StateMachineError> {
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes)
            .map_err(|e| StateMachineError::Io(e.to_string()))?;
        self.map = codec::decode(&bytes).map_err(StateMachineError::Io)?;
        Ok(())
    }
}
// ANCHOR_END: state_machine

// ANCHOR: config
/// Snapshot every 500 applied entries (or sooner, once they hold 1 MiB of commands), keep 100
/// entries behind the snapshot for followers slightly behind, and send snapshots in 4 KiB chunks.
fn config() -> Config {
    Config {
        snapshot_threshold_entries: 500,
        snapshot_threshold_bytes: 1 << 20,
        snapshot_keep_tail_entries: 100,
        snapshot_chunk_bytes: 4 << 10,
        ..Config::default()
    }
}
// ANCHOR_END: config

const IDS: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];

/// Starts (or restarts) node `id` from its directory and registers it on the router.
async fn start(router: &Router, root: &Path, id: NodeId) -> anyhow::Result<Raft<KvStore>> {
    let options = WalOptions {
        segment_bytes: 64 << 10, // small segments, so purges free files early
        ..WalOptions::default()
    };
    let storage = WalStorage::open(node_dir(root, id), options).await?;
    let network = router.network(id);
    let raft = Raft::bootstrap(id, IDS, config(), network, storage, KvStore::default()).await?;
    router.register(id, Arc::new(raft.clone()));
    Ok(raft)
}

fn node_dir(root: &Path, id: NodeId) -> PathBuf {
    root.join(format!("node-{id}"))
}

fn describe(snapshot: Option<raftor::LogId>) -> String {
    snapshot.map_or_else(|| "none".to_string(), |id| id.to_string())
}

/// Bytes in the files under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    let Ok(items) = std::fs::read_dir(dir) else {
        return 0;
    };
    items
        .flatten()
        .map(|item| match item.metadata() {
            Ok(meta) if meta.is_dir() => disk_bytes(&item.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

// ANCHOR: main
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?; // use real paths in production
    let router = Router::new(0);
    let mut nodes = BTreeMap::new();
    for id in IDS {
        nodes.insert(id, start(&router, root.path(), id).await?);
    }
    let leader = nodes[&IDS[0]]
        .wait(Duration::from_secs(5))
        .leader_known()
        .await?;
    // Node 3 (or 2, if 3 leads) goes away while 3,000 writes go by.
    let away = if leader == IDS[2] { IDS[1] } else { IDS[2] };
    nodes.remove(&away).context("running")?.shutdown().await;
    router.unregister(away);
    let writer = nodes[&leader].clone();
    for i in 0..3_000 {
        let set = Set {
            key: format!("key-{}", i % 1_000),
            value: format!("value-{i}"),
        };
        writer.client_write(set).await?;
    }
    let metrics = writer.metrics();
    println!(
        "leader {leader}: last log {}, snapshot at {}, log purged through {}, {} KiB on disk",
        metrics.last_log_id,
        describe(metrics.snapshot),
        metrics.log_base,
        disk_bytes(&node_dir(root.path(), leader)) / 1024
    );

    // Back: its next entry was purged on the leader, so it gets the snapshot, then the tail.
    let returning = start(&router, root.path(), away).await?;
    let last = writer.metrics().last_log_id.index;
    returning
        .wait(Duration::from_secs(10))
        .applied(last)
        .await?;
    println!(
        "node {away} caught up: applied {}, snapshot at {}",
        returning.metrics().last_applied,
        describe(returning.metrics().snapshot)
    );
    nodes.insert(away, returning);

    // Every node restarts from its latest snapshot and log tail.
    for (id, raft) in std::mem::take(&mut nodes) {
        raft.shutdown().await;
        router.unregister(id);
    }
    for id in IDS {
        nodes.insert(id, start(&router, root.path(), id).await?);
    }
    for (id, raft) in &nodes {
        let value = raft
            .read(ReadLevel::Linearizable, |kv: &KvStore| {
                kv.map.get("key-999").cloned()
            })
            .await?;
        println!("after a restart, node {id} reads key-999 = {value:?}");
        anyhow::ensure!(
            value.as_deref() == Some("value-2999"),
            "node {id} lost a write"
        );
    }
    for raft in nodes.into_values() {
        raft.shutdown().await;
    }
    Ok(())
}
// ANCHOR_END: main
