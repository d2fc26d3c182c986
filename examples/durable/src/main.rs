//! Durable storage: a single node keeps its log in a [`WalStorage`] data directory. Stop it,
//! start it again from the directory, and the state machine is rebuilt from the log.
//! Run it with `cargo run -p durable`.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use raftor::{
    Config, LogIndex, NodeId, Raft, Router, StateMachine, StateMachineError, WalOptions, WalStorage,
};

/// Adds up the numbers it is sent. It lives in memory: after a restart raftor re-applies the
/// log to it.
#[derive(Default)]
struct Sum {
    total: u64,
}

#[async_trait]
impl StateMachine for Sum {
    type Command = u64;
    /// The total after this command.
    type Response = u64;

    async fn apply(&mut self, _index: LogIndex, add: u64) -> Result<u64, StateMachineError> {
        self.total += add;
        Ok(self.total)
    }
}

// ANCHOR: start
/// Starts node 1 of a one-node cluster on the write-ahead log in `dir`: a new cluster if the
/// directory is empty, a restart if it holds a log.
async fn start(dir: &Path) -> anyhow::Result<Raft<Sum>> {
    let options = WalOptions {
        segment_bytes: 1 << 20, // start a new segment file every MiB
        ..WalOptions::default()
    };
    // Locks the directory, then replays and verifies every record in it.
    let storage = WalStorage::open(dir, options).await?;
    let id = NodeId(1);
    let router = Router::new(0);
    let raft = Raft::bootstrap(
        id,
        [id],
        Config::default(),
        router.network(id),
        storage,
        Sum::default(),
    )
    .await?;
    raft.wait(Duration::from_secs(5)).leader_known().await?;
    Ok(raft)
}
// ANCHOR_END: start

// ANCHOR: main
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?; // use a real path in production
    let raft = start(dir.path()).await?;
    for add in 1..=5 {
        println!("add {add}: total {}", raft.client_write(add).await?);
    }
    // Shutdown stops the node and closes the store, which releases the directory.
    raft.shutdown().await;

    let raft = start(dir.path()).await?;
    let last = raft.metrics().last_log_id.index;
    raft.wait(Duration::from_secs(5)).applied(last).await?;
    println!("after a restart: total {}", raft.client_write(0).await?);
    raft.shutdown().await;
    Ok(())
}
// ANCHOR_END: main
