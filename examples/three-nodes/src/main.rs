//! The main job: three raftor nodes in one process — real node actors with real timers, joined by
//! the in-process network — elect a leader, commit writes, lose the leader to a partition, elect
//! another, and bring the old one back up to date. Each node replicates a list of strings.
//!
//! Run it with `cargo run -p three-nodes`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use raftor::core::Role;
use raftor::{Config, LogIndex, MemStorage, NodeId, Raft, Router, StateMachine, StateMachineError};

/// Appends each command to a list shared with `main`, so it can show what every node applied.
struct Journal {
    lines: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl StateMachine for Journal {
    type Command = String;
    type Response = usize;

    async fn apply(
        &mut self,
        _index: LogIndex,
        command: String,
    ) -> Result<usize, StateMachineError> {
        let mut lines = self
            .lines
            .lock()
            .map_err(|_| StateMachineError::Io("poisoned".into()))?;
        lines.push(command);
        Ok(lines.len())
    }
}

struct Node {
    raft: Raft<Journal>,
    lines: Arc<Mutex<Vec<String>>>,
}

fn lines(node: &Node) -> Vec<String> {
    node.lines
        .lock()
        .map(|lines| lines.clone())
        .unwrap_or_default()
}

/// Waits until some node other than `not` leads, and returns it.
async fn leader(nodes: &[Node], not: Option<NodeId>, started: Instant) -> Result<NodeId> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for node in nodes {
            let metrics = node.raft.metrics();
            if metrics.role == Role::Leader && Some(metrics.id) != not {
                let ms = started.elapsed().as_millis();
                println!(
                    "[{ms:>5} ms] node {} leads term {}",
                    metrics.id, metrics.term
                );
                return Ok(metrics.id);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("no leader within 10 s")
}

async fn write(nodes: &[Node], via: NodeId, text: &str, started: Instant) -> Result<()> {
    let node = nodes
        .iter()
        .find(|n| n.raft.id() == via)
        .context("no such node")?;
    let position = node.raft.client_write(text.to_string()).await?;
    let ms = started.elapsed().as_millis();
    println!("[{ms:>5} ms] {text:?} written through node {via}: entry {position} of the journal");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let started = Instant::now();
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let router = Router::new(7);
    let mut nodes = Vec::new();
    for id in ids {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let journal = Journal {
            lines: Arc::clone(&lines),
        };
        let raft = Raft::bootstrap(
            id,
            ids,
            Config::default(),
            router.network(id),
            MemStorage::new(),
            journal,
        )
        .await?;
        router.register(id, Arc::new(raft.clone()));
        nodes.push(Node { raft, lines });
    }
    println!("raftor: three nodes in one process, election timeout 150-300 ms\n");

    let first = leader(&nodes, None, started).await?;
    let follower = ids
        .into_iter()
        .find(|id| *id != first)
        .context("a follower")?;
    write(&nodes, first, "set x = 1", started).await?;
    write(
        &nodes,
        follower,
        "set y = 2 (sent to a follower, forwarded)",
        started,
    )
    .await?;

    println!(
        "\n[{:>5} ms] node {first} is cut off from the others",
        started.elapsed().as_millis()
    );
    router.isolate(first);
    let second = leader(&nodes, Some(first), started).await?;
    write(&nodes, second, "set z = 3", started).await?;
    write(&nodes, second, "del y", started).await?;

    println!(
        "\n[{:>5} ms] the network heals; node {first} rejoins",
        started.elapsed().as_millis()
    );
    router.heal();
    let expected = lines(
        nodes
            .iter()
            .find(|n| n.raft.id() == second)
            .context("the new leader")?,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while nodes.iter().any(|node| lines(node) != expected) {
        if Instant::now() > deadline {
            bail!("the nodes did not converge within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    println!("\nWhat each node applied:");
    for node in &nodes {
        let metrics = node.raft.metrics();
        println!(
            "  node {} ({:?}, term {}): {:?}",
            metrics.id,
            metrics.role,
            metrics.term,
            lines(node)
        );
    }
    println!(
        "\nAll three nodes applied the same {} commands in the same order.",
        expected.len()
    );
    for node in &nodes {
        node.raft.shutdown().await;
    }
    Ok(())
}
