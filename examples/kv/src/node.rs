//! `raftor-kv serve`: one node, from its flags to a clean exit.
//!
//! ```text
//!  bind raft listener ─► TcpNetwork (peers' raft addresses) ─► WalStorage::open(DIR/wal)
//!    ─► Raft::bootstrap (or Raft::start with --join) ─► TcpServer::serve(raft)
//!    ─► bind HTTP listener ─► http::serve ─► register own addresses (background)
//!  SIGTERM / Ctrl-C ─► stop accepting HTTP, finish in-flight requests ─► hand leadership over
//!    and stop the raft node ─► stop the raft listener ─► exit 0
//! ```
//!
//! The node keeps its log, term, vote and snapshots in the write-ahead log under the data
//! directory; restarted on the same directory it recovers all of it (the map itself is rebuilt
//! from the latest snapshot and the log after it). Bootstrapping is idempotent: a node whose
//! directory already holds a log restarts from it, whatever `--peers` says.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use raftor::network::tcp::{TcpConfig, TcpNetwork, TcpServer};
use raftor::{Config, NodeId, Raft, ReadLevel, WalOptions, WalStorage};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::directory::{Addrs, Directory};
use crate::http::{self, App, Limits};
use crate::metrics::{Counters, CountingNetwork};
use crate::store::{Command, KvStore, NodeAddrs};

/// How often a node retries registering its own addresses while no leader takes the write.
const REGISTER_RETRY: Duration = Duration::from_millis(500);

/// Everything `serve` needs, checked.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// This node.
    pub id: NodeId,
    /// Where this node's raft transport listens.
    pub raft_addr: SocketAddr,
    /// Where this node's HTTP API listens.
    pub http_addr: SocketAddr,
    /// The other nodes (and possibly this one) with their addresses.
    pub peers: BTreeMap<NodeId, Addrs>,
    /// Where the write-ahead log and snapshots live.
    pub data_dir: PathBuf,
    /// Start without bootstrapping: wait to be added to an existing cluster.
    pub join: bool,
    /// The raft node's configuration.
    pub config: Config,
    /// The transport's configuration.
    pub tcp: TcpConfig,
    /// The largest value accepted, in bytes.
    pub max_value_bytes: usize,
}

/// Runs the node until SIGTERM or Ctrl-C, then shuts it down cleanly.
pub async fn serve(options: ServeOptions) -> anyhow::Result<()> {
    let id = options.id;
    let raft_server = TcpServer::bind(id, options.raft_addr, options.tcp.clone())
        .await
        .with_context(|| format!("bind the raft address {}", options.raft_addr))?;
    let raft_addr = raft_server.local_addr();
    let http_listener = TcpListener::bind(options.http_addr)
        .await
        .with_context(|| format!("bind the HTTP address {}", options.http_addr))?;
    let http_addr = http_listener.local_addr()?;

    let mut known = options.peers.clone();
    known.insert(
        id,
        Addrs {
            raft: raft_addr,
            http: Some(http_addr),
        },
    );
    let directory = Directory::new(known);
    let raft_peers = options
        .peers
        .iter()
        .map(|(peer, addrs)| (*peer, addrs.raft));
    let network = TcpNetwork::new(id, raft_addr, raft_peers, options.tcp.clone())?;
    let counters = Arc::new(Counters::default());
    let store = KvStore::new(directory.peer_hook(network.clone()));
    let network = CountingNetwork::new(network, Arc::clone(&counters));
    let wal_dir = options.data_dir.join("wal");
    let storage = WalStorage::open(&wal_dir, WalOptions::default())
        .await
        .with_context(|| format!("open the write-ahead log in {}", wal_dir.display()))?;
    let raft = if options.join {
        Raft::start(id, options.config.clone(), network, storage, store).await?
    } else {
        let members = options.peers.keys().copied();
        Raft::bootstrap(id, members, options.config.clone(), network, storage, store).await?
    };
    let raft_handle = raft_server.serve(Arc::new(raft.clone()));
    info!(node = %id, raft = %raft_addr, http = %http_addr, data = %options.data_dir.display(), "serving");

    let app = Arc::new(App {
        raft: raft.clone(),
        directory,
        counters,
        limits: Limits {
            max_value_bytes: options.max_value_bytes,
            request_timeout: options.config.client_timeout,
        },
    });
    let own = NodeAddrs {
        raft: raft_addr,
        http: http_addr,
    };
    let register = tokio::spawn(register_self(raft.clone(), own));
    let (stop, stopped) = watch::channel(false);
    let http_task = tokio::spawn(http::serve(http_listener, app, stopped));

    let signal = shutdown_signal().await;
    info!(node = %id, %signal, "shutting down: no new requests; finishing those in flight");
    let _ = stop.send(true);
    if let Err(error) = http_task.await {
        warn!(%error, "the HTTP server task failed");
    }
    register.abort();
    // Hand leadership over if this node leads, but never wait long: with the other voters down
    // too (a whole cluster stopping) no one can take it.
    let config = &options.config;
    let ticks = u32::try_from(2 * config.election_timeout_max_ticks).unwrap_or(u32::MAX);
    let handover = config.tick_interval.saturating_mul(ticks);
    if tokio::time::timeout(handover, raft.shutdown_gracefully())
        .await
        .is_err()
    {
        raft.shutdown().await;
    }
    raft_handle.shutdown().await;
    info!(node = %id, "stopped");
    Ok(())
}

/// Writes this node's addresses to the replicated address book unless it already holds them,
/// so every node (and every node added later) can reach this one and proxy to it. Retries until
/// it succeeds; a node not yet in a cluster succeeds once it is added.
async fn register_self(raft: Raft<KvStore>, own: NodeAddrs) {
    let id = raft.id();
    loop {
        let recorded = raft
            .read(ReadLevel::Linearizable, move |store: &KvStore| {
                store.nodes().get(&id).cloned()
            })
            .await;
        match recorded {
            Ok(Some(addrs)) if addrs == own => return,
            Ok(_) => {
                let command = Command::SetNode {
                    id,
                    addrs: own.clone(),
                };
                match raft.client_write(command).await {
                    Ok(_) => {
                        info!(node = %id, "registered this node's addresses");
                        return;
                    }
                    Err(error) => tracing::debug!(%error, "registering addresses failed"),
                }
            }
            Err(error) => tracing::debug!(%error, "reading the address book failed"),
        }
        if !raft.metrics().running {
            return;
        }
        tokio::time::sleep(REGISTER_RETRY).await;
    }
}

/// Waits for SIGTERM or Ctrl-C (SIGINT) and names the one that came.
pub async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => "SIGINT",
        _ = terminate => "SIGTERM",
    }
}
