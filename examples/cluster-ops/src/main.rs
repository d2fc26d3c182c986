//! Cluster operations on a running cluster: grow it from three nodes to four (the new node
//! joins as a learner and is promoted once it caught up), hand leadership to another node,
//! remove a node, and shut the leader down gracefully. Run it with `cargo run -p cluster-ops`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use raftor::core::Role;
use raftor::{Config, LogIndex, MemStorage, NodeId, Raft, Router, StateMachine, StateMachineError};

/// Counts the commands it applies.
#[derive(Default)]
struct Counter {
    count: u64,
}

#[async_trait]
impl StateMachine for Counter {
    type Command = ();
    type Response = u64;

    async fn apply(&mut self, _index: LogIndex, _command: ()) -> Result<u64, StateMachineError> {
        self.count += 1;
        Ok(self.count)
    }
}

/// Starts node `id` and registers it on the router. The initial members bootstrap the
/// cluster; a node added later starts with empty storage and waits to be added.
async fn start(router: &Router, id: NodeId, members: &[NodeId]) -> anyhow::Result<Raft<Counter>> {
    let network = router.network(id);
    let raft = if members.contains(&id) {
        let members = members.iter().copied();
        Raft::bootstrap(
            id,
            members,
            Config::default(),
            network,
            MemStorage::new(),
            Counter::default(),
        )
        .await?
    } else {
        Raft::start(
            id,
            Config::default(),
            network,
            MemStorage::new(),
            Counter::default(),
        )
        .await?
    };
    router.register(id, Arc::new(raft.clone()));
    Ok(raft)
}

/// The handle of the node that leads now (waits up to 5 s for one).
async fn leader(nodes: &BTreeMap<NodeId, Raft<Counter>>) -> anyhow::Result<Raft<Counter>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        let leading = nodes
            .values()
            .find(|raft| raft.metrics().role == Role::Leader);
        if let Some(raft) = leading {
            return Ok(raft.clone());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("no leader within 5 s")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let router = Router::new(0);
    let members = [NodeId(1), NodeId(2), NodeId(3)];
    let mut nodes = BTreeMap::new();
    for id in members {
        nodes.insert(id, start(&router, id, &members).await?);
    }
    for _ in 0..100 {
        leader(&nodes).await?.client_write(()).await?;
    }

    // ANCHOR: add_voter
    // Node 4 starts empty, joins as a learner, and becomes a voter once its log is within 10
    // entries of the leader's.
    nodes.insert(NodeId(4), start(&router, NodeId(4), &members).await?);
    let membership = leader(&nodes).await?.add_voter(NodeId(4), 10).await?;
    println!("voters after adding node 4: {:?}", membership.voters());
    // ANCHOR_END: add_voter

    // ANCHOR: transfer
    // Hand leadership to node 4: the leader brings it up to date and tells it to campaign.
    let old = leader(&nodes).await?;
    old.transfer_leader(NodeId(4)).await?;
    println!(
        "leader: node {} (was node {})",
        leader(&nodes).await?.id(),
        old.id()
    );
    // ANCHOR_END: transfer

    // ANCHOR: remove
    // Remove node 1 (through joint consensus: old and new voters both agree), then stop it.
    let membership = leader(&nodes).await?.remove_node(NodeId(1)).await?;
    println!("voters after removing node 1: {:?}", membership.voters());
    if let Some(removed) = nodes.remove(&NodeId(1)) {
        removed.shutdown().await;
        router.unregister(NodeId(1));
    }
    // ANCHOR_END: remove

    let count = leader(&nodes).await?.client_write(()).await?;
    println!("writes applied: {count}");
    anyhow::ensure!(count == 101, "a write was lost");

    // ANCHOR: graceful
    // A leader that stops hands over first, so the others need not wait an election timeout.
    let last = leader(&nodes).await?;
    last.shutdown_gracefully().await;
    nodes.remove(&last.id());
    router.unregister(last.id());
    let next = leader(&nodes).await?;
    println!(
        "after a graceful shutdown of node {}, node {} leads",
        last.id(),
        next.id()
    );
    // ANCHOR_END: graceful

    for raft in nodes.into_values() {
        raft.shutdown().await;
    }
    Ok(())
}
