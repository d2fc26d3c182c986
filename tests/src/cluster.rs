//! [`TestCluster`]: N real nodes (actors) on an in-process [`Router`], each with an in-memory
//! store that survives its crashes, and the checks of the classic Raft lab suite
//! (`../shared/raft-scenarios.md`): `check_one_leader`, `check_terms`, `check_no_leader`, `one`,
//! `n_committed`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use raftor::core::Role;
use raftor::{Config, LogIndex, MemStorage, NodeId, Raft, RaftMetrics, Router, Term, Unreliable};
use tokio::time::{sleep, Instant};

use crate::recorder::{Ledger, Recorder};

/// The lab suite's generous bound on an election.
pub const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);

struct Slot {
    raft: Option<Raft<Recorder>>,
    storage: MemStorage,
    restarts: u64,
}

/// An in-process cluster of real nodes. See the module docs.
pub struct TestCluster {
    /// The network joining the nodes; fault injection lives here.
    pub router: Router,
    /// What every node applied; checks state machine safety as entries are applied.
    pub ledger: Ledger,
    config: Config,
    seed: u64,
    slots: BTreeMap<NodeId, Slot>,
    connected: BTreeSet<NodeId>,
}

impl TestCluster {
    /// `size` nodes bootstrapped as one cluster, all connected, on a reliable network.
    pub async fn new(size: u64) -> TestCluster {
        TestCluster::with_config(size, Config::default(), 1).await
    }

    /// As [`TestCluster::new`], with a config and a seed for every random choice.
    pub async fn with_config(size: u64, config: Config, seed: u64) -> TestCluster {
        let ids: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let mut cluster = TestCluster {
            router: Router::new(seed),
            ledger: Ledger::default(),
            config,
            seed,
            slots: BTreeMap::new(),
            connected: ids.iter().copied().collect(),
        };
        for id in &ids {
            let mut storage = MemStorage::new();
            raftor::LogStorage::append(
                &mut storage,
                raftor::core::Core::bootstrap_log(ids.clone()),
            )
            .await
            .expect("memory storage accepts the bootstrap entry");
            cluster.slots.insert(
                *id,
                Slot {
                    raft: None,
                    storage,
                    restarts: 0,
                },
            );
            cluster.start(*id).await;
        }
        cluster
    }

    /// Every node id.
    pub fn ids(&self) -> Vec<NodeId> {
        self.slots.keys().copied().collect()
    }

    /// The handle of node `id`, if it is running.
    pub fn raft(&self, id: NodeId) -> Option<Raft<Recorder>> {
        self.slots.get(&id).and_then(|slot| slot.raft.clone())
    }

    /// The storage of node `id` (survives crashes).
    pub fn storage(&self, id: NodeId) -> MemStorage {
        self.slots[&id].storage.clone()
    }

    /// Node `id`'s latest metrics, if it is running.
    pub fn metrics(&self, id: NodeId) -> Option<RaftMetrics> {
        self.raft(id).map(|raft| raft.metrics())
    }

    /// Whether node `id` is connected to the others.
    pub fn is_connected(&self, id: NodeId) -> bool {
        self.connected.contains(&id)
    }

    /// Cuts every link of node `id` (the lab suite's `disconnect`).
    pub fn disconnect(&mut self, id: NodeId) {
        self.connected.remove(&id);
        self.apply_links();
    }

    /// Restores node `id`'s links to every connected node (the lab suite's `connect`).
    pub fn connect(&mut self, id: NodeId) {
        self.connected.insert(id);
        self.apply_links();
    }

    fn apply_links(&self) {
        self.router.heal();
        for id in self.ids() {
            if !self.connected.contains(&id) {
                self.router.isolate(id);
            }
        }
    }

    /// Loses ~10 % of requests and of replies and delays each RPC by 0-26 ms (the lab suite's
    /// `unreliable`), or makes the network reliable again.
    pub fn set_unreliable(&self, unreliable: bool) {
        let settings = if unreliable {
            Unreliable {
                drop_requests: 0.1,
                drop_replies: 0.1,
                delay: (Duration::ZERO, Duration::from_millis(26)),
                unreachable_delay: (Duration::ZERO, Duration::from_millis(100)),
            }
        } else {
            Unreliable::default()
        };
        self.router.set_unreliable(settings);
    }

    /// Stops node `id` at once, as a crash: what its storage holds survives, nothing else.
    pub async fn crash(&mut self, id: NodeId) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        if let Some(raft) = slot.raft.take() {
            self.router.unregister(id);
            raft.shutdown().await;
        }
    }

    /// Starts node `id` from its storage with an empty state machine (no-op if running).
    pub async fn start(&mut self, id: NodeId) {
        let seed = self.seed;
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        if slot.raft.is_some() {
            return;
        }
        slot.restarts += 1;
        let config = Config {
            seed: Some(seed ^ (id.0 << 32) ^ slot.restarts),
            ..self.config.clone()
        };
        let network = self.router.network(id);
        let state_machine = Recorder::new(id, self.ledger.clone());
        let raft = Raft::start(id, config, network, slot.storage.clone(), state_machine)
            .await
            .unwrap_or_else(|e| panic!("node {id} failed to start: {e}"));
        self.router.register(id, Arc::new(raft.clone()));
        slot.raft = Some(raft);
        self.apply_links();
    }

    /// Connected, running nodes.
    fn live(&self) -> Vec<(NodeId, RaftMetrics)> {
        self.ids()
            .into_iter()
            .filter(|id| self.is_connected(*id))
            .filter_map(|id| self.metrics(id).map(|metrics| (id, metrics)))
            .collect()
    }

    /// Polls until exactly one connected node leads the latest term; fails on two leaders in a
    /// term (election safety) or no leader after 10 polls.
    pub async fn check_one_leader(&self) -> NodeId {
        for attempt in 0..10u64 {
            sleep(Duration::from_millis(450 + (attempt * 37) % 100)).await;
            self.ledger.check();
            let mut leaders: BTreeMap<Term, Vec<NodeId>> = BTreeMap::new();
            for (id, metrics) in self.live() {
                if metrics.role == Role::Leader {
                    leaders.entry(metrics.term).or_default().push(id);
                }
            }
            for (term, ids) in &leaders {
                assert!(
                    ids.len() <= 1,
                    "term {term} has {} leaders: {ids:?}",
                    ids.len()
                );
            }
            if let Some((_, ids)) = leaders.iter().next_back() {
                return ids[0];
            }
        }
        panic!("expected one leader, got none");
    }

    /// Connected nodes agree on the term; returns it.
    pub fn check_terms(&self) -> Term {
        let terms: BTreeSet<Term> = self.live().into_iter().map(|(_, m)| m.term).collect();
        assert!(terms.len() <= 1, "servers disagree on term: {terms:?}");
        terms.into_iter().next().unwrap_or_default()
    }

    /// No connected node claims to lead.
    pub fn check_no_leader(&self) {
        for (id, metrics) in self.live() {
            assert!(
                metrics.role != Role::Leader,
                "node {id} is leader, but there should be none"
            );
        }
    }

    /// How many nodes applied something at `index`, and what (they always agree).
    pub fn n_committed(&self, index: LogIndex) -> (usize, Option<u64>) {
        self.ledger.check();
        self.ledger.n_committed(index)
    }

    /// Starts a write of `value` on node `id` if it believes it leads; returns whether it did.
    /// Like the lab suite's `Start`, it does not wait for the outcome.
    pub fn submit(&self, id: NodeId, value: u64) -> bool {
        let Some(raft) = self.raft(id) else {
            return false;
        };
        if raft.metrics().role != Role::Leader {
            return false;
        }
        actix_rt::spawn(async move {
            let _ = raft.client_write(value).await;
        });
        true
    }

    /// The lab suite's `one`: submits `value` to a leader and waits until at least `expected`
    /// nodes applied it at the same index; with `retry`, resubmits for up to 10 s.
    pub async fn one(&self, value: u64, expected: usize, retry: bool) -> LogIndex {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut start = 0;
        while Instant::now() < deadline {
            let ids = self.ids();
            let submitted = (0..ids.len())
                .map(|offset| ids[(start + offset) % ids.len()])
                .find(|id| self.is_connected(*id) && self.submit(*id, value));
            start += 1;
            if submitted.is_some() {
                let until = Instant::now() + Duration::from_secs(2);
                while Instant::now() < until {
                    if let Some(index) = self.ledger.index_of(value) {
                        let (count, applied) = self.n_committed(index);
                        if count >= expected && applied == Some(value) {
                            return index;
                        }
                    }
                    sleep(Duration::from_millis(20)).await;
                }
                assert!(retry, "one({value}) failed to reach agreement");
            } else {
                sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("one({value}) failed to reach agreement in 10 s");
    }

    /// Shuts every node down and checks the ledger one last time.
    pub async fn shutdown(mut self) {
        for id in self.ids() {
            self.crash(id).await;
        }
        self.ledger.check();
    }
}
