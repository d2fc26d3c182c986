//! Three raftor nodes talking over raftor's own TCP transport (`raftor::network::tcp`), each on a
//! loopback address of its own: 127.0.0.1, 127.0.0.2 and 127.0.0.3. They elect a leader, commit
//! writes (one forwarded by a follower over TCP) and serve a linearizable read on a follower,
//! then shut down.
//!
//! Run it with `cargo run -p tcp-cluster`. Linux routes all of 127.0.0.0/8 to loopback; where
//! only 127.0.0.1 is configured (macOS), every node falls back to 127.0.0.1.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use raftor::network::tcp::{ServerHandle, TcpConfig, TcpNetwork, TcpServer};
use raftor::{
    Config, LogIndex, MemStorage, NodeId, Raft, ReadLevel, StateMachine, StateMachineError,
};

const WAIT: Duration = Duration::from_secs(10);

/// The replicated state: a running total. A command adds to it; the response is the new total.
#[derive(Default)]
struct Total {
    sum: u64,
}

#[async_trait]
impl StateMachine for Total {
    type Command = u64;
    type Response = u64;

    async fn apply(&mut self, _index: LogIndex, amount: u64) -> Result<u64, StateMachineError> {
        self.sum += amount;
        Ok(self.sum)
    }
}

// ANCHOR: config
/// Every node of a cluster uses the same transport settings; the cluster id keeps nodes of
/// another cluster (a test cluster pointed at production by mistake, say) out.
fn tcp_config() -> TcpConfig {
    TcpConfig {
        cluster_id: "tcp-cluster-example".into(),
        ..TcpConfig::default()
    }
}
// ANCHOR_END: config

// ANCHOR: bind
/// Binds each node's listener first: with port 0 the addresses are known only once bound, and
/// every node needs every address before it starts.
async fn bind_all(ids: &[NodeId]) -> Result<BTreeMap<NodeId, TcpServer>> {
    let mut servers = BTreeMap::new();
    for id in ids {
        let ip = Ipv4Addr::new(127, 0, 0, u8::try_from(id.0)?);
        let server = match TcpServer::bind(*id, SocketAddr::from((ip, 0)), tcp_config()).await {
            Ok(server) => server,
            // Not every system routes 127.0.0.2 and up to loopback.
            Err(_) => TcpServer::bind(*id, SocketAddr::from(([127, 0, 0, 1], 0)), tcp_config())
                .await
                .context("bind a listener on 127.0.0.1")?,
        };
        servers.insert(*id, server);
    }
    Ok(servers)
}
// ANCHOR_END: bind

// ANCHOR: start_node
/// Starts node `id`: its network knows every peer's address, its `Raft` starts with that
/// network, and only then does its server start answering peers, with the `Raft` handle.
async fn start_node(
    id: NodeId,
    server: TcpServer,
    addrs: &BTreeMap<NodeId, SocketAddr>,
) -> Result<(Raft<Total>, ServerHandle)> {
    let network = TcpNetwork::new(id, server.local_addr(), addrs.clone(), tcp_config())?;
    let raft = Raft::bootstrap(
        id,
        addrs.keys().copied(),
        Config::default(),
        network,
        MemStorage::new(),
        Total::default(),
    )
    .await?;
    let server = server.serve(Arc::new(raft.clone()));
    Ok((raft, server))
}
// ANCHOR_END: start_node

#[tokio::main]
async fn main() -> Result<()> {
    let started = Instant::now();
    let at = || started.elapsed().as_millis();
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let servers = bind_all(&ids).await?;
    let addrs: BTreeMap<NodeId, SocketAddr> = servers
        .iter()
        .map(|(id, server)| (*id, server.local_addr()))
        .collect();
    let mut nodes = BTreeMap::new();
    for (id, server) in servers {
        println!("node {id} listens on {}", addrs[&id]);
        nodes.insert(id, start_node(id, server, &addrs).await?);
    }

    let leader = nodes[&ids[0]].0.wait(WAIT).leader_known().await?;
    println!("[{:>5} ms] node {leader} leads", at());
    let followers: Vec<NodeId> = ids.into_iter().filter(|id| *id != leader).collect();
    let total = nodes[&leader].0.client_write(40).await?;
    println!("[{:>5} ms] node {leader} adds 40: total {total}", at());
    let total = nodes[&followers[0]].0.client_write(2).await?;
    println!(
        "[{:>5} ms] node {} adds 2, forwarded to the leader over TCP: total {total}",
        at(),
        followers[0]
    );
    let read = nodes[&followers[1]]
        .0
        .read(ReadLevel::Linearizable, |total: &Total| total.sum)
        .await?;
    println!(
        "[{:>5} ms] node {} reads the total, linearizably: {read}",
        at(),
        followers[1]
    );
    anyhow::ensure!(read == 42, "the read missed a write: {read}");

    for (id, (raft, server)) in nodes {
        server.shutdown().await;
        raft.shutdown().await;
        println!("[{:>5} ms] node {id} stopped", at());
    }
    Ok(())
}
