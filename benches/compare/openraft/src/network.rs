//! [`Router`]: the in-process network, the counterpart of raftor's `Router`. A request is handed
//! to the target node's `Raft` handle as a value (a direct method call, no serialization, no
//! copy), and its answer comes back the same way.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, RwLock};

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{Raft, RaftNetwork, RaftNetworkFactory};

use crate::{NodeId, Types};

/// The nodes of the cluster by id. Every node's network factory is a clone of the one router.
#[derive(Clone, Default)]
pub struct Router {
    nodes: Arc<RwLock<HashMap<NodeId, Raft<Types>>>>,
}

impl Router {
    /// Makes `raft` reachable as `id`.
    pub fn register(&self, id: NodeId, raft: Raft<Types>) {
        self.nodes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id, raft);
    }

    /// Forgets every node (their handles refer back to this router).
    pub fn clear(&self) {
        self.nodes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    fn get(&self, id: NodeId) -> Option<Raft<Types>> {
        self.nodes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&id)
            .cloned()
    }
}

impl RaftNetworkFactory<Types> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &()) -> Connection {
        Connection {
            router: self.clone(),
            target,
            raft: None,
        }
    }
}

/// One node's link to `target`: it looks the target up in the router on first use and keeps the
/// handle.
pub struct Connection {
    router: Router,
    target: NodeId,
    raft: Option<Raft<Types>>,
}

impl Connection {
    fn raft(&mut self) -> Result<&Raft<Types>, Unreachable> {
        if self.raft.is_none() {
            self.raft = self.router.get(self.target);
        }
        self.raft.as_ref().ok_or_else(|| {
            let why = format!("node {} is not registered", self.target);
            Unreachable::new(&io::Error::new(io::ErrorKind::NotFound, why))
        })
    }
}

impl RaftNetwork<Types> for Connection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<Types>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, (), RaftError<NodeId>>> {
        let target = self.target;
        let raft = self.raft()?;
        raft.append_entries(request)
            .await
            .map_err(|error| RemoteError::new(target, error).into())
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<Types>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, (), RaftError<NodeId, InstallSnapshotError>>,
    > {
        let target = self.target;
        let raft = self.raft()?;
        raft.install_snapshot(request)
            .await
            .map_err(|error| RemoteError::new(target, error).into())
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, (), RaftError<NodeId>>> {
        let target = self.target;
        let raft = self.raft()?;
        raft.vote(request)
            .await
            .map_err(|error| RemoteError::new(target, error).into())
    }
}
