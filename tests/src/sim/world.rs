//! [`World`]: the simulated cluster — nodes running the real core and executor, their disks, the
//! network, the clients — and the event loop that moves simulated time forward.

use std::collections::BTreeMap;
use std::sync::Arc;

use raftor::core::{Core, InjectedBugs, ReadMode, Recovered, Role};
use raftor::driver::{Effect, Executor};
use raftor::message::{AppendEntriesResponse, AppendOutcome, Request, Response};
use raftor::types::SnapshotMeta;
use raftor::{codec, Config, Entry, EntryPayload, LogIndex, NodeId};

use crate::rng::TestRng;

use super::client::Client;
use super::disk::{Disk, DiskDone};
use super::kv::{KvCommand, KvResponse, KvStore};
use super::network::{Message, Network};

/// How an inbound RPC's answer finds its way back: the requester, its incarnation, when it sent.
pub type ReplyTo = (NodeId, u64, u64);
/// How a client's answer finds its way back: the client and its attempt.
pub type ClientTo = (usize, u64);
/// The executor as the simulator embeds it.
pub type SimExecutor = Executor<ReplyTo, ClientTo>;
/// One of its effects.
pub type SimEffect = Effect<ReplyTo, ClientTo>;

/// Simulated microseconds per millisecond.
pub const MS: u64 = 1_000;

/// Something that happens at a moment of simulated time.
#[derive(Debug, Clone)]
pub enum Event {
    /// A node's tick timer fired (for the given incarnation).
    Tick(NodeId, u64),
    /// A message arrives.
    Deliver(Message),
    /// A node's disk finished its current write.
    DiskDone(NodeId, u64),
    /// A node's state machine finished applying up to the index.
    Applied(NodeId, u64, LogIndex),
    /// A node's snapshot build is durable (for the given incarnation).
    SnapshotSaved(NodeId, u64, SnapshotMeta, Vec<u8>),
    /// A crashed node starts again.
    Restart(NodeId),
    /// A client issues its next operation, or retries the current one.
    ClientWake(usize),
    /// A client's operation (by history index) has waited long enough.
    ClientTimeout(usize, usize),
    /// The fault injector acts.
    Fault,
    /// The fault phase ends: everything heals.
    EndChaos,
    /// The cluster must have recovered by now.
    Deadline,
}

/// One simulated node.
#[derive(Debug)]
pub struct Node {
    /// How many times it restarted.
    pub incarnation: u64,
    /// The running executor (and core), or `None` while crashed.
    pub executor: Option<SimExecutor>,
    /// Its disk, which survives crashes.
    pub disk: Disk,
    /// Its state machine (volatile: rebuilt from the log after a restart).
    pub kv: KvStore,
    /// Entries applied in this incarnation, from index 1.
    pub applied: Vec<Entry>,
    /// When the apply worker is free again (it applies jobs in order).
    pub apply_free_at: u64,
    /// The key each ReadIndex read in progress on this node reads.
    pub read_keys: BTreeMap<ClientTo, u8>,
    /// Reads confirmed by the core, waiting for the state machine to reach their read index.
    pub parked_reads: Vec<(ClientTo, LogIndex)>,
    /// The snapshot each follower is being sent, held for its transfer (volatile).
    pub sending: BTreeMap<NodeId, (SnapshotMeta, Arc<[u8]>)>,
}

impl Node {
    /// The running core, if the node is up.
    pub fn core(&self) -> Option<&Core> {
        self.executor.as_ref().map(SimExecutor::core)
    }
}

/// The mechanics of the simulated world: time, events, nodes, network, clients.
pub struct World {
    /// The run's seed.
    pub seed: u64,
    /// The node's config.
    pub config: Config,
    /// Bugs switched on in every core.
    pub bugs: InjectedBugs,
    /// Every random choice of the run.
    pub rng: TestRng,
    /// Simulated time, microseconds.
    pub now: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Event>,
    /// The nodes, by id.
    pub nodes: BTreeMap<NodeId, Node>,
    /// Links and weather.
    pub network: Network,
    /// The clients.
    pub clients: Vec<Client>,
    /// Trace lines, when tracing.
    pub trace: Option<Vec<String>>,
    /// Events processed.
    pub event_count: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Gets answered through ReadIndex.
    pub reads_served: u64,
    /// Snapshots built (durable).
    pub snapshots_built: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Crash the leader right after it sends its next AppendEntries carrying entries.
    pub crash_leader_on_append: bool,
    /// Crash the next node that grants a (real) vote, right after the grant leaves.
    pub crash_after_vote: bool,
    /// Crash the next follower that acknowledges entries, right after the acknowledgement leaves.
    pub crash_after_ack: bool,
    /// Partition the cluster at random the moment the next candidate asks for (real) votes.
    pub partition_on_election: bool,
    /// Restart crashed nodes at once (the healing phase).
    pub restart_at_once: bool,
}

impl World {
    /// `size` nodes bootstrapped as one cluster, `clients` clients, nothing scheduled yet.
    pub fn new(seed: u64, size: u64, clients: usize, config: Config, bugs: InjectedBugs) -> World {
        let ids: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let mut world = World {
            seed,
            config,
            bugs,
            rng: TestRng::new(seed),
            now: 0,
            seq: 0,
            events: BTreeMap::new(),
            nodes: BTreeMap::new(),
            network: Network::new(),
            clients: (0..clients).map(|_| Client::new()).collect(),
            trace: None,
            event_count: 0,
            crashes: 0,
            reads_served: 0,
            snapshots_built: 0,
            snapshots_installed: 0,
            crash_leader_on_append: false,
            crash_after_vote: false,
            crash_after_ack: false,
            partition_on_election: false,
            restart_at_once: false,
        };
        for id in &ids {
            let node = Node {
                incarnation: 0,
                executor: None,
                disk: Disk::with_log(Core::bootstrap_log(ids.iter().copied())),
                kv: KvStore::default(),
                applied: Vec::new(),
                apply_free_at: 0,
                read_keys: BTreeMap::new(),
                parked_reads: Vec::new(),
                sending: BTreeMap::new(),
            };
            world.nodes.insert(*id, node);
            world.start_node(*id);
        }
        world
    }

    /// Node ids, in order.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// The running leader of the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter_map(|node| node.core())
            .filter(|core| core.role() == Role::Leader)
            .max_by_key(|core| core.term())
            .map(Core::id)
    }

    /// Schedules `event` `delay` microseconds from now.
    pub fn schedule(&mut self, delay: u64, event: Event) {
        self.seq += 1;
        self.events.insert((self.now + delay, self.seq), event);
    }

    /// Takes the next event and moves time to it.
    pub fn next_event(&mut self) -> Option<Event> {
        let ((time, _), event) = self.events.pop_first()?;
        self.now = time;
        self.event_count += 1;
        Some(event)
    }

    /// Records a trace line, with the state of `node` if given.
    pub fn note(&mut self, node: Option<NodeId>, what: impl FnOnce() -> String) {
        if self.trace.is_none() {
            return;
        }
        let state = node.map(|id| self.describe_node(id)).unwrap_or_default();
        let line = format!("{:>10.3}ms {:<44} {state}", self.now as f64 / 1e3, what());
        if let Some(trace) = self.trace.as_mut() {
            trace.push(line);
        }
    }

    /// A node's term, role, log and commit positions, for the trace.
    pub fn describe_node(&self, id: NodeId) -> String {
        let node = &self.nodes[&id];
        let durable = node.disk.last_log_id();
        match node.core() {
            Some(core) => format!(
                "| n{id} T{} {:?} last={} commit={} applied={} durable={} vote={:?}",
                core.term(),
                core.role(),
                core.last_log_id(),
                core.commit_index(),
                core.last_applied(),
                durable,
                core.hard_state().voted_for.map(|v| v.0),
            ),
            None => format!("| n{id} down durable={durable}"),
        }
    }

    /// Builds the node's core from its disk and starts its timer, as the actor does on start.
    fn start_node(&mut self, id: NodeId) {
        let config = self.config.clone();
        let bugs = self.bugs;
        let seed = self.seed;
        let (applied, kv) = self.recovered_state_machine(id);
        let node = self.nodes.get_mut(&id).expect("known node");
        let snapshot = node.disk.snapshot.as_ref().map(|(meta, _)| meta.clone());
        let recovered = Recovered {
            hard_state: node.disk.hard_state,
            log: node.disk.log.clone(),
            last_applied: LogIndex(applied.len() as u64),
            snapshot,
        };
        let node_seed = seed ^ (node.incarnation << 40) ^ 0x5151_0000;
        let max_batch = config.max_entries_per_message;
        let mut core = Core::new(id, config, recovered, node_seed)
            .unwrap_or_else(|error| panic!("node {id} cannot recover from its disk: {error}"));
        core.inject_bugs(bugs);
        node.executor = Some(Executor::new(core, max_batch));
        node.kv = kv;
        node.applied = applied;
        let incarnation = node.incarnation;
        // Nodes' tick timers run out of phase with each other.
        let phase = self.rng.below(self.tick_us());
        self.schedule(phase, Event::Tick(id, incarnation));
    }

    fn tick_us(&self) -> u64 {
        self.config.tick_interval.as_micros() as u64
    }

    /// Stops a node: its executor and state machine are gone, unsynced writes (mostly) lost.
    pub fn crash(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.executor.is_none() {
            return;
        }
        node.executor = None;
        node.disk.crash(&mut self.rng);
        node.kv = KvStore::default();
        node.applied.clear();
        node.read_keys.clear();
        node.parked_reads.clear();
        node.sending.clear();
        self.crashes += 1;
        self.note(Some(id), || format!("CRASH n{id}"));
        let delay = if self.restart_at_once {
            0
        } else {
            20 * MS + self.rng.below(2_000 * MS)
        };
        self.schedule(delay, Event::Restart(id));
    }

    /// Splits the nodes into two random groups (one may be empty: no cut).
    pub fn random_partition(&mut self) {
        let mut groups = (Vec::new(), Vec::new());
        for id in self.ids() {
            if self.rng.per_mille(500) {
                groups.0.push(id);
            } else {
                groups.1.push(id);
            }
        }
        self.network.partition(&[groups.0, groups.1]);
    }

    /// Starts a crashed node from its disk.
    pub fn restart(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("known node");
        if node.executor.is_some() {
            return;
        }
        node.incarnation += 1;
        self.start_node(id);
        self.note(Some(id), || format!("RESTART n{id}"));
        // Like the actor's `started`: apply what the log already holds committed.
        self.with_executor(id, SimExecutor::tick);
    }

    /// Calls the node's executor (if the node is up) and performs the effects it returns.
    pub fn with_executor(
        &mut self,
        id: NodeId,
        call: impl FnOnce(&mut SimExecutor) -> Vec<SimEffect>,
    ) {
        let Some(executor) = self.nodes.get_mut(&id).and_then(|n| n.executor.as_mut()) else {
            return;
        };
        let effects = call(executor);
        self.perform(id, effects);
    }

    /// Performs effects in order; a crash during them (a fault hook) drops the rest.
    fn perform(&mut self, id: NodeId, effects: Vec<SimEffect>) {
        for effect in effects {
            if self.nodes[&id].executor.is_none() {
                return;
            }
            self.perform_one(id, effect);
        }
    }

    fn perform_one(&mut self, id: NodeId, effect: SimEffect) {
        match effect {
            Effect::Storage(op) => {
                let latency = self.nodes[&id].disk.latency(&mut self.rng);
                let node = self.nodes.get_mut(&id).expect("known node");
                node.disk.submit(op);
                if !node.disk.busy {
                    node.disk.busy = true;
                    let incarnation = node.incarnation;
                    self.schedule(latency, Event::DiskDone(id, incarnation));
                }
            }
            Effect::Send { to, request } => {
                let carries_entries =
                    matches!(&request, Request::AppendEntries(req) if !req.entries.is_empty());
                let asks_vote = matches!(&request, Request::RequestVote(req) if !req.pre_vote);
                if asks_vote && self.partition_on_election {
                    self.partition_on_election = false;
                    self.random_partition();
                    let cuts = self.network.describe_cuts();
                    self.note(Some(id), || format!("hook: election partition [{cuts}]"));
                }
                let message = Message::Request {
                    from: id,
                    from_incarnation: self.nodes[&id].incarnation,
                    to,
                    sent_at: self.now,
                    request,
                };
                self.send(message);
                if carries_entries && self.crash_leader_on_append {
                    self.crash_leader_on_append = false;
                    self.note(Some(id), || format!("hook: n{id} crashes mid-replication"));
                    self.crash(id);
                }
            }
            Effect::Reply { reply, response } => {
                let (to, to_incarnation, sent_at) = reply;
                let granted_vote = matches!(
                    response,
                    Response::RequestVote(vote) if vote.granted && !vote.pre_vote
                );
                let acked = matches!(
                    response,
                    Response::AppendEntries(AppendEntriesResponse {
                        outcome: AppendOutcome::Success { .. },
                        ..
                    })
                );
                self.send(Message::Response {
                    from: id,
                    to,
                    to_incarnation,
                    sent_at,
                    response,
                });
                if granted_vote && self.crash_after_vote {
                    self.crash_after_vote = false;
                    self.note(Some(id), || {
                        format!("hook: n{id} crashes right after its vote")
                    });
                    self.crash(id);
                } else if acked && self.crash_after_ack {
                    self.crash_after_ack = false;
                    self.note(Some(id), || {
                        format!("hook: n{id} crashes right after its ack")
                    });
                    self.crash(id);
                }
            }
            Effect::Apply { entries, clients } => self.apply(id, entries, clients),
            Effect::Reject { client, error }
            | Effect::RejectRead {
                reader: client,
                error,
            } => {
                let (client, attempt) = client;
                self.send(Message::ClientReply {
                    client,
                    attempt,
                    result: Err(error),
                });
            }
            Effect::BuildSnapshot {
                last_included,
                membership,
            } => self.build_snapshot(id, last_included, membership),
            // The simulated clients change no memberships (yet).
            Effect::ChangeDone { .. } => {}
            Effect::RestoreSnapshot { meta } => self.restore_snapshot(id, &meta),
            Effect::SendSnapshotChunk { to, request, len } => {
                self.send_snapshot_chunk(id, to, request, len)
            }
            Effect::ReadReady { reader, read_index } => {
                self.note(Some(id), || format!("n{id} read ready at {read_index}"));
                let node = self.nodes.get_mut(&id).expect("known node");
                node.parked_reads.push((reader, read_index));
                self.serve_parked_reads(id);
            }
        }
    }

    /// The state machine applies the entries at once; the node hears of it after the apply
    /// worker's latency, in order.
    fn apply(&mut self, id: NodeId, entries: Vec<Entry>, clients: Vec<(LogIndex, ClientTo)>) {
        let Some(last) = entries.last().map(|entry| entry.log_id.index) else {
            return;
        };
        let latency = 50 + self.rng.below(500);
        let node = self.nodes.get_mut(&id).expect("known node");
        let mut responses: BTreeMap<LogIndex, KvResponse> = BTreeMap::new();
        for entry in entries {
            assert_eq!(
                entry.log_id.index.0,
                node.applied.len() as u64 + 1,
                "node {id}: apply out of order"
            );
            if let EntryPayload::Command(bytes) = &entry.payload {
                let (_, command): super::client::Tagged =
                    codec::decode(bytes).expect("the simulator's own commands decode");
                responses.insert(entry.log_id.index, node.kv.apply(&command));
            }
            node.applied.push(entry);
        }
        let done_at = node.apply_free_at.max(self.now) + latency;
        node.apply_free_at = done_at;
        let incarnation = node.incarnation;
        self.schedule(done_at - self.now, Event::Applied(id, incarnation, last));
        self.serve_parked_reads(id);
        for (index, (client, attempt)) in clients {
            let response = *responses
                .get(&index)
                .unwrap_or_else(|| panic!("node {id}: a client waits on {index}, not a command"));
            self.send(Message::ClientReply {
                client,
                attempt,
                result: Ok(response),
            });
        }
    }

    /// Answers every confirmed read whose read index the node's state machine has reached, from
    /// that state machine (what `Raft::read` does on the apply worker).
    pub(super) fn serve_parked_reads(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("known node");
        let applied = LogIndex(node.applied.len() as u64);
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut node.parked_reads)
            .into_iter()
            .partition(|(_, read_index)| *read_index <= applied);
        node.parked_reads = waiting;
        let mut replies = Vec::new();
        for (reader, _) in ready {
            if let Some(key) = node.read_keys.remove(&reader) {
                replies.push((reader, node.kv.apply(&KvCommand::Get { key })));
            }
        }
        self.reads_served += replies.len() as u64;
        for ((client, attempt), response) in replies {
            self.send(Message::ClientReply {
                client,
                attempt,
                result: Ok(response),
            });
        }
    }

    /// Whether `command` is a get that client `client` reads with ReadIndex instead of through
    /// the log (the odd-numbered clients do), and its key.
    fn read_index_key(client: usize, command: &[u8]) -> Option<u8> {
        if client & 1 == 0 {
            return None;
        }
        match codec::decode::<super::client::Tagged>(command) {
            Ok((_, KvCommand::Get { key })) => Some(key),
            _ => None,
        }
    }

    /// Puts a message on the network: lost, delayed, or duplicated as the weather says.
    pub fn send(&mut self, message: Message) {
        let may_duplicate = !matches!(message, Message::ClientRequest { .. });
        for delay in self.network.delays(&mut self.rng, may_duplicate) {
            self.schedule(delay, Event::Deliver(message.clone()));
        }
    }

    /// The disk finished its current write: report it, start the next.
    pub fn disk_done(&mut self, id: NodeId, incarnation: u64) {
        let node = self.nodes.get_mut(&id).expect("known node");
        if node.incarnation != incarnation || node.executor.is_none() {
            return;
        }
        let done = node.disk.complete_next();
        if node.disk.has_work() {
            let latency = node.disk.latency(&mut self.rng);
            self.schedule(latency, Event::DiskDone(id, incarnation));
        } else {
            self.nodes.get_mut(&id).expect("known node").disk.busy = false;
        }
        match done {
            Some(DiskDone::HardStateSaved) => {
                self.note(Some(id), || format!("n{id} hard state durable"));
                self.with_executor(id, SimExecutor::hard_state_saved);
            }
            Some(DiskDone::LogPersisted { up_to, appends }) => {
                self.note(Some(id), || format!("n{id} log durable to {up_to}"));
                self.with_executor(id, |e| e.log_persisted(up_to, appends));
            }
            Some(DiskDone::SnapshotInstalled(last_included)) => {
                self.snapshots_installed += 1;
                self.note(Some(id), || {
                    format!("n{id} snapshot {last_included} installed")
                });
                self.with_executor(id, |e| e.snapshot_installed(last_included));
            }
            None => {}
        }
    }

    /// A node's tick timer fired.
    pub fn tick(&mut self, id: NodeId, incarnation: u64) {
        let node = &self.nodes[&id];
        if node.incarnation != incarnation || node.executor.is_none() {
            return;
        }
        self.with_executor(id, SimExecutor::tick);
        if let Some(node) = self.nodes.get_mut(&id) {
            if node.core().is_some_and(|core| core.role() != Role::Leader) {
                node.sending.clear();
            }
        }
        // A little jitter: real timers drift.
        let tick = self.tick_us();
        let next = tick - tick / 20 + self.rng.below(tick / 10 + 1);
        self.schedule(next, Event::Tick(id, incarnation));
    }

    /// Delivers a node-to-node message, unless its link is cut or its recipient cannot take it.
    pub fn deliver_rpc(&mut self, message: Message) {
        let rpc_timeout = self.config.rpc_timeout.as_micros() as u64;
        match message {
            Message::Request {
                from,
                from_incarnation,
                to,
                sent_at,
                request,
            } => {
                if self.network.is_blocked(from, to) {
                    return;
                }
                self.note(Some(to), || {
                    format!("n{to} <- n{from} {}", describe_request(&request))
                });
                let reply = (from, from_incarnation, sent_at);
                self.with_executor(to, |e| e.inbound(from, request, reply));
            }
            Message::Response {
                from,
                to,
                to_incarnation,
                sent_at,
                response,
            } => {
                let node = &self.nodes[&to];
                let late = self.now.saturating_sub(sent_at) > rpc_timeout;
                if self.network.is_blocked(from, to) || node.incarnation != to_incarnation || late {
                    return;
                }
                self.note(Some(to), || {
                    format!("n{to} <- n{from} {}", describe_response(&response))
                });
                self.with_executor(to, |e| e.response(from, response));
            }
            Message::ClientRequest {
                client,
                attempt,
                to,
                command,
            } => {
                if let Some(key) = Self::read_index_key(client, &command) {
                    self.note(Some(to), || format!("n{to} <- c{client} read"));
                    if let Some(node) = self.nodes.get_mut(&to).filter(|n| n.executor.is_some()) {
                        node.read_keys.insert((client, attempt), key);
                    }
                    self.with_executor(to, |e| e.read(ReadMode::ReadIndex, (client, attempt)));
                    return;
                }
                self.note(Some(to), || format!("n{to} <- c{client} write"));
                self.with_executor(to, |e| e.client_write(command, (client, attempt)));
            }
            Message::ClientReply { .. } => unreachable!("client replies go to clients"),
        }
    }

    /// Sends a client's command to a node.
    pub fn send_client_request(
        &mut self,
        client: usize,
        attempt: u64,
        to: NodeId,
        command: Arc<[u8]>,
    ) {
        self.send(Message::ClientRequest {
            client,
            attempt,
            to,
            command,
        });
    }
}

fn describe_request(request: &Request) -> String {
    match request {
        Request::AppendEntries(req) => format!(
            "append T{} prev={} n={} commit={}",
            req.term,
            req.prev_log_id,
            req.entries.len(),
            req.leader_commit
        ),
        Request::RequestVote(req) => format!(
            "{} T{} last={}",
            if req.pre_vote { "prevote" } else { "vote" },
            req.term,
            req.last_log_id
        ),
        Request::InstallSnapshot(req) => format!(
            "snapshot T{} last={} offset={} n={}{}",
            req.term,
            req.meta.last_included,
            req.offset,
            req.data.len(),
            if req.done { " done" } else { "" }
        ),
        Request::TimeoutNow(req) => format!("timeout-now T{}", req.term),
    }
}

fn describe_response(response: &Response) -> String {
    match response {
        Response::AppendEntries(resp) => format!("append-resp T{} {:?}", resp.term, resp.outcome),
        Response::RequestVote(resp) => format!(
            "{}-resp T{} granted={}",
            if resp.pre_vote { "prevote" } else { "vote" },
            resp.term,
            resp.granted
        ),
        Response::InstallSnapshot(resp) => format!(
            "snapshot-resp T{} last={} {:?}",
            resp.term, resp.last_included, resp.outcome
        ),
        Response::TimeoutNow(resp) => format!("timeout-now-resp T{} {}", resp.term, resp.accepted),
    }
}
