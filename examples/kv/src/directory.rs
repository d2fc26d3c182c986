//! [`Directory`]: where each node can be reached, as this node knows it. It starts from the
//! `--peers` flag and learns from the replicated address book (`SetNode` entries and snapshots):
//!
//! ```text
//!  --peers 1=RAFT@HTTP,..  ──► Directory ◄── KvStore applies SetNode { id, addrs } (PeerHook)
//!                                 │                         └──► TcpNetwork::set_peer(id, raft)
//!                                 └──► the leader's HTTP address (proxying membership changes),
//!                                      the addresses `GET /cluster` shows
//! ```
//!
//! A node that joins later is added through `POST /cluster/learners` with both of its
//! addresses: the leader writes them to the log before adding the node, so every node, present
//! or future, learns them by applying that entry.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use raftor::network::tcp::TcpNetwork;
use raftor::NodeId;

use crate::store::{NodeAddrs, PeerHook};

/// A node's addresses as far as they are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addrs {
    /// Its raft (TCP transport) address.
    pub raft: SocketAddr,
    /// Its HTTP address, if known.
    pub http: Option<SocketAddr>,
}

/// Every known node's addresses. Cheap to clone; clones share the map.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    nodes: Arc<Mutex<BTreeMap<NodeId, Addrs>>>,
}

impl Directory {
    /// A directory holding `nodes`.
    pub fn new(nodes: BTreeMap<NodeId, Addrs>) -> Directory {
        Directory {
            nodes: Arc::new(Mutex::new(nodes)),
        }
    }

    /// Node `id`'s addresses.
    pub fn get(&self, id: NodeId) -> Option<Addrs> {
        self.lock().get(&id).copied()
    }

    /// Records `id`'s addresses.
    pub fn insert(&self, id: NodeId, addrs: Addrs) {
        self.lock().insert(id, addrs);
    }

    /// The hook the state machine calls with every address it learns: it records the addresses
    /// here and points `network` at the raft address.
    pub fn peer_hook(&self, network: TcpNetwork) -> PeerHook {
        let directory = self.clone();
        std::sync::Arc::new(move |id: NodeId, addrs: &NodeAddrs| {
            network.set_peer(id, addrs.raft);
            let addrs = Addrs {
                raft: addrs.raft,
                http: Some(addrs.http),
            };
            directory.insert(id, addrs);
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<NodeId, Addrs>> {
        self.nodes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
