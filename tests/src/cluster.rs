//! [`TestCluster`]: N real nodes (actors) on an in-process [`Router`], each with an in-memory
//! store that survives its crashes, and the controls of the classic Raft lab suite
//! (`../shared/raft-scenarios.md`): `disconnect`/`connect`, `set_unreliable`,
//! `set_long_reordering`, `crash`/`start` (and the lab's `crash1`/`start1`). The checks and client
//! calls (`check_one_leader`, `one`, ...) live on [`ClusterView`], which the cluster derefs to.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raftor::{Config, MemStorage, NodeId, Raft, Router, Unreliable};

use crate::network::{FaultyNetwork, TimingFaults};
use crate::recorder::{Command, Ledger, Recorder};
use crate::view::{ClusterView, Nodes};

/// The lab suite's generous bound on an election.
pub const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// The election seed of node `id`'s `start`-th incarnation (from 1) in a cluster seeded with
/// `cluster_seed`: distinct per node and per incarnation, so a restarted node does not replay its
/// predecessor's timeouts.
pub fn node_seed(cluster_seed: u64, id: NodeId, start: u64) -> u64 {
    cluster_seed ^ (id.0 << 32) ^ start
}

/// An in-process cluster of real nodes whose commands are `C`s. See the module docs.
pub struct TestCluster<C: Command = u64> {
    view: ClusterView<C>,
    faults: TimingFaults,
    config: Config,
    seed: u64,
    /// How many times each node was started: part of its election seed, so an incarnation does
    /// not replay its predecessor's timeouts.
    starts: BTreeMap<NodeId, u64>,
}

impl TestCluster<u64> {
    /// `size` nodes bootstrapped as one cluster, all connected, on a reliable network.
    pub async fn new(size: u64) -> TestCluster {
        TestCluster::with_config(size, Config::default(), 1).await
    }

    /// As [`TestCluster::new`], with a config and a seed for every random choice.
    pub async fn with_config(size: u64, config: Config, seed: u64) -> TestCluster {
        TestCluster::launch(size, config, seed).await
    }
}

impl<C: Command> Deref for TestCluster<C> {
    type Target = ClusterView<C>;

    fn deref(&self) -> &ClusterView<C> {
        &self.view
    }
}

impl<C: Command> TestCluster<C> {
    /// `size` nodes whose commands are `C`s, bootstrapped as one cluster, all connected, on a
    /// reliable network; `seed` fixes every random choice of the network and the nodes.
    pub async fn launch(size: u64, config: Config, seed: u64) -> TestCluster<C> {
        let ids: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let mut storage = BTreeMap::new();
        for id in &ids {
            let mut store = MemStorage::new();
            raftor::LogStorage::append(&mut store, raftor::core::Core::bootstrap_log(ids.clone()))
                .await
                .expect("memory storage accepts the bootstrap entry");
            storage.insert(*id, store);
        }
        let nodes = Nodes {
            ids: ids.clone(),
            running: BTreeMap::new(),
            storage,
            connected: ids.iter().copied().collect::<BTreeSet<_>>(),
        };
        let mut cluster = TestCluster {
            view: ClusterView {
                router: Router::new(seed),
                ledger: Ledger::default(),
                nodes: Arc::new(Mutex::new(nodes)),
            },
            faults: TimingFaults::new(seed ^ 0x5EED),
            config,
            seed,
            starts: BTreeMap::new(),
        };
        for id in ids {
            cluster.start(id).await;
        }
        cluster
    }

    /// A view for clients running beside the test (see [`ClusterView`]).
    pub fn view(&self) -> ClusterView<C> {
        self.view.clone()
    }

    /// Cuts every link of node `id` (the lab suite's `disconnect`).
    pub fn disconnect(&mut self, id: NodeId) {
        self.nodes().connected.remove(&id);
        self.apply_links();
    }

    /// Restores node `id`'s links to every connected node (the lab suite's `connect`).
    pub fn connect(&mut self, id: NodeId) {
        self.nodes().connected.insert(id);
        self.apply_links();
    }

    fn apply_links(&self) {
        let connected = self.nodes().connected.clone();
        self.router.heal();
        for id in self.ids() {
            if !connected.contains(&id) {
                self.router.isolate(id);
            }
        }
    }

    /// Loses 10 % of requests and 10 % of replies (in the router) and delays each request by
    /// 0-26 ms (see [`crate::network`]): the lab suite's `unreliable`. Or makes the network
    /// reliable again.
    ///
    /// NB: an RPC to an unreachable peer fails at once, where labrpc's `longDelays` takes up to
    /// 7 s. That catches implementations that send RPCs synchronously; ours are spawned futures
    /// and a failure is only a lost message to the core, so when it is reported does not matter.
    pub fn set_unreliable(&self, unreliable: bool) {
        let settings = if unreliable {
            Unreliable {
                drop_requests: 0.1,
                drop_replies: 0.1,
                ..Unreliable::default()
            }
        } else {
            Unreliable::default()
        };
        self.router.set_unreliable(settings);
        self.faults.set_unreliable(unreliable);
    }

    /// Holds 2 of every 3 replies to Raft RPCs for 0.2-2.2 s (the lab suite's `longReordering`,
    /// see [`crate::network`]), or stops doing so.
    pub fn set_long_reordering(&self, enabled: bool) {
        self.faults.set_long_reordering(enabled);
    }

    /// Stops node `id` at once, as a crash: what its storage holds survives, nothing else. Its
    /// links stay as they were.
    pub async fn crash(&mut self, id: NodeId) {
        let raft = self.nodes().running.remove(&id);
        if let Some(raft) = raft {
            self.router.unregister(id);
            raft.shutdown().await;
            // A snapshot being received is volatile.
            self.storage(id).mem_snapshots().crash();
        }
    }

    /// Starts node `id` from its storage with an empty state machine (no-op if running).
    pub async fn start(&mut self, id: NodeId) {
        if self.is_running(id) {
            return;
        }
        let starts = self.starts.entry(id).or_default();
        *starts += 1;
        let config = Config {
            seed: Some(node_seed(self.seed, id, *starts)),
            ..self.config.clone()
        };
        let network = FaultyNetwork {
            inner: self.router.network(id),
            faults: self.faults.clone(),
        };
        let state_machine = Recorder::<C>::of(id, self.ledger.clone());
        let raft = Raft::start(id, config, network, self.storage(id), state_machine)
            .await
            .unwrap_or_else(|e| panic!("node {id} failed to start: {e}"));
        self.router.register(id, Arc::new(raft.clone()));
        self.nodes().running.insert(id, raft);
        self.apply_links();
    }

    /// Adds node `id` with empty storage and starts it, connected: it waits, receiving nothing,
    /// until a membership change adds it (as a learner or a voter).
    pub async fn add_node(&mut self, id: NodeId) {
        {
            let mut nodes = self.nodes();
            if nodes.ids.contains(&id) {
                return;
            }
            nodes.ids.push(id);
            nodes.ids.sort();
            nodes.storage.insert(id, MemStorage::new());
            nodes.connected.insert(id);
        }
        self.start(id).await;
    }

    /// Stops node `id` for good and forgets it (once a membership change removed it); its
    /// ledger record stays, so what it applied still counts in the checks.
    pub async fn retire_node(&mut self, id: NodeId) {
        self.crash(id).await;
        let mut nodes = self.nodes();
        nodes.ids.retain(|known| *known != id);
        nodes.connected.remove(&id);
    }

    /// The lab suite's `crash1`: disconnects node `id`, then crashes it.
    pub async fn crash1(&mut self, id: NodeId) {
        self.disconnect(id);
        self.crash(id).await;
    }

    /// The lab suite's `start1`: crashes node `id` if it runs (`crash1`) and starts it again
    /// from its storage. It stays disconnected until `connect(id)`.
    pub async fn start1(&mut self, id: NodeId) {
        self.crash1(id).await;
        self.start(id).await;
    }

    /// Shuts every node down and checks the ledger one last time.
    pub async fn shutdown(mut self) {
        for id in self.ids() {
            self.crash(id).await;
        }
        self.ledger.check();
    }
}

/// A one-node cluster (node 1, on its own router seeded from `config.seed`) with `storage` and
/// `state_machine`, once it leads.
pub async fn single_node_leader<S, SM>(config: Config, storage: S, state_machine: SM) -> Raft<SM>
where
    S: raftor::LogStorage,
    SM: raftor::StateMachine,
{
    let router = Router::new(config.seed.unwrap_or(1));
    let id = NodeId(1);
    let raft = Raft::bootstrap(id, [id], config, router.network(id), storage, state_machine)
        .await
        .expect("starts");
    raft.wait(Duration::from_secs(5))
        .role(raftor::core::Role::Leader)
        .await
        .expect("single node leads");
    raft
}
