//! Embedding raftor: a replicated key-value map on three nodes in one process.
//! Run it with `cargo run -p embed`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use raftor::{
    Config, LogIndex, MemStorage, NodeId, Raft, ReadLevel, Router, StateMachine, StateMachineError,
};
use serde::{Deserialize, Serialize};

// ANCHOR: state_machine
/// The commands clients send; they are replicated through the log.
#[derive(Serialize, Deserialize)]
enum Command {
    Set { key: String, value: String },
    Delete { key: String },
}

/// The replicated state: every node applies the same commands in the same order.
#[derive(Default)]
struct KvStore {
    map: BTreeMap<String, String>,
}

#[async_trait]
impl StateMachine for KvStore {
    type Command = Command;
    /// The previous value of the key.
    type Response = Option<String>;

    async fn apply(
        &mut self,
        _index: LogIndex,
        command: Command,
    ) -> Result<Option<String>, StateMachineError> {
        Ok(match command {
            Command::Set { key, value } => self.map.insert(key, value),
            Command::Delete { key } => self.map.remove(&key),
        })
    }
}
// ANCHOR_END: state_machine

// ANCHOR: main
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let router = Router::new(0); // an in-process network; use a real transport across machines
    let mut nodes = Vec::new();
    for id in ids {
        let network = router.network(id);
        let raft = Raft::bootstrap(
            id,
            ids,
            Config::default(),
            network,
            MemStorage::new(),
            KvStore::default(),
        )
        .await?;
        router.register(id, Arc::new(raft.clone()));
        nodes.push(raft);
    }
    // ANCHOR: wait_for_leader
    let leader = nodes[0].wait(Duration::from_secs(5)).leader_known().await?;
    println!("node {leader} leads");
    // ANCHOR_END: wait_for_leader

    // Any node takes writes: followers forward them to the leader.
    let set = Command::Set {
        key: "greeting".into(),
        value: "hello".into(),
    };
    println!(
        "set greeting: previous {:?}",
        nodes[2].client_write(set).await?
    );
    let set = Command::Set {
        key: "greeting".into(),
        value: "bonjour".into(),
    };
    println!(
        "set greeting: previous {:?}",
        nodes[1].client_write(set).await?
    );
    // ANCHOR: read
    // A linearizable read on any node (a follower asks the leader for its read index): it sees
    // every write acknowledged before it started. The closure runs against this node's own state
    // machine once it has applied that far.
    let greeting = nodes[2]
        .read(ReadLevel::Linearizable, |kv: &KvStore| {
            kv.map.get("greeting").cloned()
        })
        .await?;
    println!("read greeting: {greeting:?}");
    // ANCHOR_END: read

    let delete = Command::Delete {
        key: "greeting".into(),
    };
    println!(
        "delete greeting: previous {:?}",
        nodes[0].client_write(delete).await?
    );

    for raft in &nodes {
        raft.shutdown().await;
    }
    Ok(())
}
// ANCHOR_END: main
