//! [`ClusterView`]: what a test sees of a [`TestCluster`](crate::TestCluster) and what its
//! clients do — the lab suite's checks (`checkOneLeader`, `checkTerms`, `checkNoLeader`,
//! `nCommitted`, `wait`) and client calls (`Start`, `one`). Cheap to clone, so concurrent
//! clients can run beside the test while it crashes, restarts and partitions nodes; every clone
//! sees the same, current nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use raftor::core::Role;
use raftor::{
    EntryPayload, LogId, LogIndex, LogStorage, MemStorage, NodeId, Raft, RaftMetrics, Router, Term,
};
use tokio::time::{sleep, Instant};

use crate::recorder::{Command, Ledger, Recorder};

/// The nodes as they are now: shared by the cluster (which changes them) and every view.
pub(crate) struct Nodes<C: Command> {
    /// Every node id, sorted.
    pub ids: Vec<NodeId>,
    /// The running incarnation of each node that is up.
    pub running: BTreeMap<NodeId, Raft<Recorder<C>>>,
    /// Each node's storage; it outlives crashes.
    pub storage: BTreeMap<NodeId, MemStorage>,
    /// Nodes whose links are up (the lab suite's `connected`).
    pub connected: BTreeSet<NodeId>,
}

/// A view of the cluster's nodes, checks and clients. See the module docs.
pub struct ClusterView<C: Command = u64> {
    /// The network joining the nodes; fault injection and RPC statistics live here.
    pub router: Router,
    /// What every node applied; checks state machine safety as entries are applied.
    pub ledger: Ledger,
    pub(crate) nodes: Arc<Mutex<Nodes<C>>>,
}

impl<C: Command> Clone for ClusterView<C> {
    fn clone(&self) -> Self {
        ClusterView {
            router: self.router.clone(),
            ledger: self.ledger.clone(),
            nodes: Arc::clone(&self.nodes),
        }
    }
}

impl<C: Command> ClusterView<C> {
    pub(crate) fn nodes(&self) -> MutexGuard<'_, Nodes<C>> {
        self.nodes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every node id.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes().ids.clone()
    }

    /// The node `k` places after `id` in id order, wrapping around: the lab suite's
    /// `(i + k) % servers`.
    pub fn after(&self, id: NodeId, k: u64) -> NodeId {
        let ids = self.ids();
        let position = ids.iter().position(|i| *i == id).expect("a member") as u64;
        ids[((position + k) % ids.len() as u64) as usize]
    }

    /// The handle of node `id`, if it is running.
    pub fn raft(&self, id: NodeId) -> Option<Raft<Recorder<C>>> {
        self.nodes().running.get(&id).cloned()
    }

    /// Whether node `id` is running (not crashed).
    pub fn is_running(&self, id: NodeId) -> bool {
        self.nodes().running.contains_key(&id)
    }

    /// The storage of node `id` (survives crashes).
    pub fn storage(&self, id: NodeId) -> MemStorage {
        self.nodes().storage[&id].clone()
    }

    /// Node `id`'s latest metrics, if it is running.
    pub fn metrics(&self, id: NodeId) -> Option<RaftMetrics> {
        self.raft(id).map(|raft| raft.metrics())
    }

    /// The commands in node `id`'s stored log: (index, value), in log order.
    pub fn log_commands(&self, id: NodeId) -> Vec<(LogIndex, u64)> {
        self.storage(id)
            .entries()
            .into_iter()
            .filter_map(|entry| match entry.payload {
                EntryPayload::Command(bytes) => raftor::codec::decode::<C>(&bytes)
                    .ok()
                    .map(|command| (entry.log_id.index, command.value())),
                _ => None,
            })
            .collect()
    }

    /// Whether node `id` is connected to the others.
    pub fn is_connected(&self, id: NodeId) -> bool {
        self.nodes().connected.contains(&id)
    }

    /// Connected, running nodes.
    fn live(&self) -> Vec<(NodeId, RaftMetrics)> {
        self.ids()
            .into_iter()
            .filter(|id| self.is_connected(*id))
            .filter_map(|id| self.metrics(id).map(|metrics| (id, metrics)))
            .collect()
    }

    /// The highest term any running node is in.
    pub fn max_term(&self) -> Term {
        let ids = self.ids();
        ids.into_iter()
            .filter_map(|id| self.metrics(id))
            .map(|metrics| metrics.term)
            .max()
            .unwrap_or_default()
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

    /// Starts a write of `command` on node `id` if it believes it leads; returns whether it did.
    /// It does not wait for the outcome.
    pub fn submit(&self, id: NodeId, command: C) -> bool {
        let Some(raft) = self.raft(id) else {
            return false;
        };
        if raft.metrics().role != Role::Leader {
            return false;
        }
        actix_rt::spawn(async move {
            let _ = raft.client_write(command).await;
        });
        true
    }

    /// The lab suite's `Start`: if node `id` leads, appends `command` to its log and returns
    /// where it landed (term and index), without waiting for it to commit. `None` if the node
    /// does not lead (or stopped leading before it took the command).
    ///
    /// NB: the handle answers only once the entry is applied, so the position is read back from
    /// the leader's storage, polled every virtual millisecond (usually found at the first poll).
    /// The cluster keeps running meanwhile, as it would while a lab client's `Start` returns.
    pub async fn propose(&self, id: NodeId, command: C) -> Option<LogId> {
        let metrics = self.metrics(id)?;
        if metrics.role != Role::Leader {
            return None;
        }
        let after = metrics.last_log_id.index;
        let value = command.value();
        if !self.submit(id, command) {
            return None;
        }
        let mut storage = self.storage(id);
        for _ in 0..10 {
            sleep(Duration::from_millis(1)).await;
            let entries = storage
                .read(after.next(), LogIndex(u64::MAX / 2))
                .await
                .expect("memory storage reads");
            let found = entries.iter().rev().find(|entry| {
                entry.log_id.term == metrics.term
                    && matches!(&entry.payload, EntryPayload::Command(bytes)
                        if raftor::codec::decode::<C>(bytes).is_ok_and(|c| c.value() == value))
            });
            if let Some(entry) = found {
                return Some(entry.log_id);
            }
            if !self.is_running(id) {
                return None;
            }
        }
        None
    }

    /// The lab suite's `one`: submits `command` to a connected node that accepts it, and waits
    /// up to 2 s until at least `expected` nodes applied it at the index it landed at; with
    /// `retry`, tries again for up to 10 s in all.
    pub async fn one(&self, command: C, expected: usize, retry: bool) -> LogIndex {
        let deadline = Instant::now() + Duration::from_secs(10);
        let ids = self.ids();
        let mut starts = 0;
        while Instant::now() < deadline {
            let mut proposed = None;
            for _ in 0..ids.len() {
                starts = (starts + 1) % ids.len();
                let id = ids[starts];
                if !self.is_connected(id) {
                    continue;
                }
                if let Some(log_id) = self.propose(id, command.clone()).await {
                    proposed = Some(log_id.index);
                    break;
                }
            }
            let Some(index) = proposed else {
                sleep(Duration::from_millis(50)).await;
                continue;
            };
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until {
                let (count, value) = self.n_committed(index);
                if count > 0 && count >= expected && value == Some(command.value()) {
                    return index;
                }
                sleep(Duration::from_millis(20)).await;
            }
            assert!(retry, "one({command:?}) failed to reach agreement");
        }
        panic!("one({command:?}) failed to reach agreement in 10 s");
    }

    /// The lab suite's `wait`: waits (backing off from 10 ms to 1 s, 30 times) until `n` nodes
    /// applied `index`, and returns the value there. `None` if a node moved past `start_term`
    /// meanwhile: the entry may never commit then.
    pub async fn wait(&self, index: LogIndex, n: usize, start_term: Option<Term>) -> Option<u64> {
        let mut pause = Duration::from_millis(10);
        for _ in 0..30 {
            if self.n_committed(index).0 >= n {
                break;
            }
            sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
            if start_term.is_some_and(|term| self.max_term() > term) {
                return None;
            }
        }
        let (count, value) = self.n_committed(index);
        assert!(
            count >= n,
            "only {count} decided for index {index}; wanted {n}"
        );
        value
    }

    /// Waits up to 10 s until every running node applied everything up to `index` (commands or
    /// not: blank and membership entries never reach the ledger, so `wait` cannot see them).
    pub async fn wait_applied(&self, index: LogIndex) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let behind: Vec<(NodeId, LogIndex)> = self
                .ids()
                .into_iter()
                .filter_map(|id| self.metrics(id).map(|m| (id, m.last_applied)))
                .filter(|(_, applied)| *applied < index)
                .collect();
            if behind.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nodes still behind index {index} after 10 s (node, last applied): {behind:?}"
            );
            sleep(Duration::from_millis(20)).await;
        }
    }
}
