//! A deterministic in-memory cluster of [`Core`]s, for tests, examples and teaching.
//!
//! It plays the driver's part for every node with no real IO: a network that is a list of
//! envelopes the caller delivers, drops or reorders; a disk per node whose appends stay pending
//! (and are lost on a crash) until the caller persists them, unless `auto_persist` is on; and a
//! state machine that records applied entries. Crash and restart rebuild a node's core from what
//! its disk holds, exactly as a real node restarts from storage.
//!
//! Every executed action can be recorded as a line of text in [`Cluster::trace`]: the golden
//! scripts print it.

mod format;
mod invariants;
mod node;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::Config;
use crate::core::{Action, Core, Input, Proposal, Role};
use crate::message::{Request, Response};
use crate::types::{LogIndex, NodeId, RequestId, RpcId};

pub use format::{format_action, format_request, format_response};
pub use invariants::{InvariantChecker, Violation};
pub use node::{PendingWrite, SimNode};

/// A message on the simulated network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The sender.
    pub from: NodeId,
    /// The recipient.
    pub to: NodeId,
    /// A request or a response.
    pub body: Body,
}

/// The payload of an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// An RPC request, with the id its reply will carry.
    Request {
        /// The RPC id.
        rpc: RpcId,
        /// The request.
        request: Request,
    },
    /// An RPC response.
    Response(Response),
}

/// A cluster of cores joined by a simulated network. See the module docs.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The nodes, by id.
    pub nodes: BTreeMap<NodeId, SimNode>,
    /// Messages in flight, oldest first.
    pub network: Vec<Envelope>,
    /// Directed links `(from, to)` that lose every message delivered over them.
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Persist every write as soon as it is issued (no pending disk IO).
    pub auto_persist: bool,
    /// Record executed actions as text lines.
    pub tracing: bool,
    /// The recorded lines, when `tracing` is on.
    pub trace: Vec<String>,
    config: Config,
    seed: u64,
    next_rpc: u64,
    next_request: u64,
}

impl Cluster {
    /// `size` nodes with ids 1..=size, bootstrapped as one cluster of voters, each core seeded
    /// from `seed`.
    pub fn new(size: u64, config: Config, seed: u64) -> Cluster {
        let ids: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            network: Vec::new(),
            blocked: BTreeSet::new(),
            auto_persist: true,
            tracing: false,
            trace: Vec::new(),
            config,
            seed,
            next_rpc: 1,
            next_request: 1,
        };
        for id in &ids {
            let node = SimNode::bootstrap(*id, &ids, &cluster.config, cluster.node_seed(*id));
            cluster.nodes.insert(*id, node);
        }
        cluster
    }

    fn node_seed(&self, id: NodeId) -> u64 {
        let restarts = self.nodes.get(&id).map_or(0, |node| node.restarts);
        self.seed
            .wrapping_add(id.0.wrapping_mul(1_000_003))
            .wrapping_add(restarts)
    }

    /// The node with this id. Panics on an unknown id (a test bug).
    pub fn node(&self, id: NodeId) -> &SimNode {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// The running core of node `id`, if it is up.
    pub fn core(&self, id: NodeId) -> Option<&Core> {
        self.node(id).core.as_ref()
    }

    /// Ids of all nodes.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Running nodes that believe they lead, with their terms.
    pub fn leaders(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, node)| {
                node.core
                    .as_ref()
                    .is_some_and(|core| core.role() == Role::Leader)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// The leader with the highest term among running nodes, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .max_by_key(|id| self.core(*id).map(Core::term))
    }

    /// Feeds one input to node `id` and executes the resulting actions (and the inputs they feed
    /// back). A crashed node ignores inputs.
    pub fn step(&mut self, id: NodeId, input: Input) {
        let mut queue = vec![input];
        while let Some(input) = queue.pop() {
            let Some(core) = self.nodes.get_mut(&id).and_then(|node| node.core.as_mut()) else {
                return;
            };
            let actions = core.step(input);
            let mut follow_ups = Vec::new();
            for action in actions {
                follow_ups.extend(self.execute(id, action));
            }
            // Feed back in the order produced.
            follow_ups.reverse();
            queue.extend(follow_ups);
        }
    }

    /// Executes one action for node `id`; returns inputs it feeds back at once.
    fn execute(&mut self, id: NodeId, action: Action) -> Vec<Input> {
        if self.tracing {
            let line = format!("{id}: {}", format_action(&action));
            self.trace.push(line);
        }
        match action {
            Action::Send { to, request } => {
                let rpc = RpcId(self.next_rpc);
                self.next_rpc += 1;
                self.network.push(Envelope {
                    from: id,
                    to,
                    body: Body::Request { rpc, request },
                });
                Vec::new()
            }
            Action::SendSnapshotChunk {
                to,
                mut request,
                len,
            } => {
                let chunk =
                    self.node(id)
                        .snapshot_chunk(request.meta.last_included, request.offset, len);
                let Some(data) = chunk else {
                    if self.tracing {
                        self.trace.push(format!(
                            "{id}: snapshot {} gone",
                            request.meta.last_included
                        ));
                    }
                    return Vec::new();
                };
                request.data = data;
                let rpc = RpcId(self.next_rpc);
                self.next_rpc += 1;
                self.network.push(Envelope {
                    from: id,
                    to,
                    body: Body::Request {
                        rpc,
                        request: Request::InstallSnapshot(request),
                    },
                });
                Vec::new()
            }
            Action::Reply { to, response, .. } => {
                self.network.push(Envelope {
                    from: id,
                    to,
                    body: Body::Response(response),
                });
                Vec::new()
            }
            other => {
                let auto_persist = self.auto_persist;
                let node = self
                    .nodes
                    .get_mut(&id)
                    .unwrap_or_else(|| panic!("no node {id}"));
                let mut inputs = node.execute_local(other);
                if auto_persist {
                    inputs.extend(node.persist_all());
                }
                inputs
            }
        }
    }

    /// One tick of logical time on node `id`.
    pub fn tick(&mut self, id: NodeId) {
        self.step(id, Input::Tick);
    }

    /// One tick on every node, in id order.
    pub fn tick_all(&mut self) {
        for id in self.ids() {
            self.tick(id);
        }
    }

    /// Proposes `command` on node `id`; returns the request id its answer will carry.
    pub fn propose(&mut self, id: NodeId, command: &[u8]) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        let proposal = Proposal {
            request,
            command: Arc::from(command),
        };
        self.step(id, Input::Propose(vec![proposal]));
        request
    }

    /// Asks node `id` for a read at `mode`; returns the request id its answer will carry (see
    /// [`SimNode::reads`]).
    pub fn read(&mut self, id: NodeId, mode: crate::core::ReadMode) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.step(id, Input::Read { request, mode });
        request
    }

    /// Delivers the in-flight message at `position` (0 is the oldest), unless its link is
    /// blocked or its recipient is down, in which case it is lost.
    pub fn deliver(&mut self, position: usize) {
        if position >= self.network.len() {
            return;
        }
        let envelope = self.network.remove(position);
        if self.blocked.contains(&(envelope.from, envelope.to)) {
            if self.tracing {
                self.trace.push(format!(
                    "{}->{}: lost to partition",
                    envelope.from, envelope.to
                ));
            }
            return;
        }
        let input = match envelope.body {
            Body::Request { rpc, request } => Input::Request {
                from: envelope.from,
                rpc,
                request,
            },
            Body::Response(response) => Input::Response {
                from: envelope.from,
                response,
            },
        };
        self.step(envelope.to, input);
    }

    /// Loses the in-flight message at `position`.
    pub fn drop_message(&mut self, position: usize) -> Option<Envelope> {
        (position < self.network.len()).then(|| self.network.remove(position))
    }

    /// Completes node `id`'s oldest pending disk write and reports it durable.
    pub fn persist_one(&mut self, id: NodeId) {
        let inputs = self
            .nodes
            .get_mut(&id)
            .map(SimNode::persist_one)
            .unwrap_or_default();
        for input in inputs {
            self.step(id, input);
        }
    }

    /// Completes all of node `id`'s pending disk writes.
    pub fn persist_all(&mut self, id: NodeId) {
        let inputs = self
            .nodes
            .get_mut(&id)
            .map(SimNode::persist_all)
            .unwrap_or_default();
        for input in inputs {
            self.step(id, input);
        }
    }

    /// Delivers every message and completes every write, until nothing is left to do. Messages
    /// over blocked links are lost. Returns how many messages were delivered or lost.
    pub fn stabilize(&mut self) -> usize {
        let mut handled = 0;
        loop {
            for id in self.ids() {
                self.persist_all(id);
            }
            if self.network.is_empty() {
                return handled;
            }
            while !self.network.is_empty() {
                self.deliver(0);
                handled += 1;
            }
        }
    }

    /// Blocks both directions between every pair of nodes in different groups. Nodes not named
    /// form one more group.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        let mut group_of: BTreeMap<NodeId, usize> = BTreeMap::new();
        for (number, group) in groups.iter().enumerate() {
            for id in group {
                group_of.insert(*id, number);
            }
        }
        let ids = self.ids();
        for a in &ids {
            for b in &ids {
                let group_a = group_of.get(a).copied().unwrap_or(usize::MAX);
                let group_b = group_of.get(b).copied().unwrap_or(usize::MAX);
                if group_a != group_b {
                    self.blocked.insert((*a, *b));
                }
            }
        }
    }

    /// Cuts node `id` off from every other node, both ways.
    pub fn isolate(&mut self, id: NodeId) {
        self.partition(&[vec![id]]);
    }

    /// Blocks messages from `from` to `to` only (a one-way partition).
    pub fn block(&mut self, from: NodeId, to: NodeId) {
        self.blocked.insert((from, to));
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Whether messages from `from` to `to` are lost.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// Stops node `id`: its volatile state and pending (unsynced) writes are lost; its disk stays.
    pub fn crash(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.crash();
        }
    }

    /// Starts node `id` again from its disk. Panics if the disk does not recover (a bug).
    pub fn restart(&mut self, id: NodeId) {
        let seed = self.node_seed(id);
        let config = self.config.clone();
        if let Some(node) = self.nodes.get_mut(&id) {
            node.restart(&config, seed);
        }
    }

    /// The commit index of every running node.
    pub fn commit_indexes(&self) -> BTreeMap<NodeId, LogIndex> {
        self.nodes
            .iter()
            .filter_map(|(id, node)| node.core.as_ref().map(|core| (*id, core.commit_index())))
            .collect()
    }

    /// Ticks every node and stabilizes until some node leads, for at most `max_ticks` rounds.
    /// Returns the leader, if one emerged.
    pub fn elect(&mut self, max_ticks: u64) -> Option<NodeId> {
        for _ in 0..max_ticks {
            self.tick_all();
            self.stabilize();
            if let Some(leader) = self.leader() {
                return Some(leader);
            }
        }
        None
    }
}
