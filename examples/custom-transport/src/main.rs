//! Three raftor nodes talking over a custom transport: TCP on loopback, every RPC serialized with
//! raftor's codec. They elect a leader, commit writes (one forwarded from a follower over the
//! wire), lose the leader, elect another and keep going.
//!
//! Run it with `cargo run -p custom-transport`.

use std::time::{Duration, Instant};

use anyhow::Context;
use custom_transport::Cluster;
use raftor::{Config, NodeId};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let at = || started.elapsed().as_millis();
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let cluster = Cluster::start(&ids, Config::default()).await?;
    println!("three nodes, each listening on its own loopback port");

    let leader = cluster.agreed_leader(&ids, None, WAIT).await?;
    println!("[{:>5} ms] node {leader} leads", at());
    let follower = ids
        .into_iter()
        .find(|id| *id != leader)
        .context("a follower")?;
    let position = cluster
        .node(follower)?
        .raft
        .client_write("written through a follower, forwarded over TCP".into())
        .await?;
    println!(
        "[{:>5} ms] written through node {follower}: line {position}",
        at()
    );
    let position = cluster
        .node(leader)?
        .raft
        .client_write("written through the leader".into())
        .await?;
    println!(
        "[{:>5} ms] written through node {leader}: line {position}",
        at()
    );

    cluster.node(leader)?.stop().await;
    println!("[{:>5} ms] node {leader} stops: its port closes", at());
    let survivors: Vec<NodeId> = ids.into_iter().filter(|id| *id != leader).collect();
    let new_leader = cluster
        .agreed_leader(&survivors, Some(leader), WAIT)
        .await?;
    println!("[{:>5} ms] node {new_leader} leads", at());
    let other = survivors
        .iter()
        .copied()
        .find(|id| *id != new_leader)
        .context("a follower")?;
    let position = cluster
        .node(other)?
        .raft
        .client_write("written after the failover".into())
        .await?;
    println!(
        "[{:>5} ms] written through node {other}: line {position}",
        at()
    );

    let lines = cluster.converged(&survivors, WAIT).await?;
    println!(
        "\nnodes {} and {} applied the same {} lines:",
        survivors[0],
        survivors[1],
        lines.len()
    );
    for line in &lines {
        println!("  {line}");
    }
    println!("\nsent over TCP:");
    for node in &cluster.nodes {
        let (rpcs, bytes) = node.network.sent();
        println!("  node {}: {rpcs} RPCs, {bytes} bytes", node.raft.id());
    }
    cluster.shutdown().await;
    Ok(())
}
