//! [`Simulation`]: one seeded run — the world, the fault injector, the clients, and the checks
//! after every event and at the end.

use std::collections::BTreeSet;
use std::sync::Arc;

use raftor::core::testkit::InvariantChecker;
use raftor::{codec, EntryPayload};

use crate::linearizability::{self, Verdict};

use super::client::{HistoryOp, InFlight, Outcome, Tagged, KEYS};
use super::kv::KeyModel;
use super::network::{Message, Weather};
use super::world::{Event, World, MS};
use super::{Options, RunReport};

/// The phase of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Faults are injected.
    Chaos,
    /// Everything healed at `since`; the cluster must elect a leader and commit.
    Heal { since: u64 },
    /// Recovered: the run is over.
    Done,
}

/// One seeded run.
pub struct Simulation {
    world: World,
    options: Options,
    checker: InvariantChecker,
    history: Vec<HistoryOp>,
    phase: Phase,
    next_value: u64,
}

impl Simulation {
    /// Sets up the run of `seed`: cluster size, config and weather are drawn from the seed.
    pub fn new(seed: u64, options: &Options) -> Simulation {
        let mut rng = crate::rng::TestRng::new(seed ^ 0xC0FF_EE00);
        let size = if rng.per_mille(600) { 3 } else { 5 };
        let mut config = raftor::Config {
            pre_vote: rng.per_mille(800),
            check_quorum: rng.per_mille(800),
            max_entries_per_message: [1, 4, 64][rng.below(3) as usize],
            max_inflight_messages: [1, 4, 64][rng.below(3) as usize],
            client_timeout: std::time::Duration::from_secs(1),
            ..raftor::Config::default()
        };
        if options.compaction && rng.per_mille(500) {
            // Snapshot often, keep a short tail, and send in small chunks: followers that fall
            // behind catch up through InstallSnapshot, in several chunks.
            config.snapshot_threshold_entries = [5, 20, 60][rng.below(3) as usize];
            config.snapshot_keep_tail_entries = [0, 3, 30][rng.below(3) as usize];
            config.snapshot_chunk_bytes = [64, 512, 1 << 20][rng.below(3) as usize];
            // In a third of those, a byte threshold too, mostly reached before the entry count
            // (a command here encodes in 4-10 bytes: every 6-15 commands).
            config.snapshot_threshold_bytes = [0, 0, 60][rng.below(3) as usize];
        }
        let mut world = World::new(seed, size, options.clients, config, options.bugs);
        if options.trace {
            world.trace = Some(Vec::new());
        }
        for client in 0..options.clients {
            let start = world.rng.below(300 * MS);
            world.schedule(start, Event::ClientWake(client));
        }
        let first_fault = 100 * MS + world.rng.below(500 * MS);
        world.schedule(first_fault, Event::Fault);
        world.schedule(options.chaos_ms * MS, Event::EndChaos);
        Simulation {
            world,
            options: options.clone(),
            checker: InvariantChecker::new(),
            history: Vec::new(),
            phase: Phase::Chaos,
            next_value: 1,
        }
    }

    /// Runs to the end; an error describes the first broken property.
    pub fn run(&mut self) -> Result<RunReport, String> {
        while self.phase != Phase::Done {
            let Some(event) = self.world.next_event() else {
                return Err("the event queue ran dry".to_string());
            };
            self.handle(event)?;
            self.check_step()?;
            if let Phase::Heal { since } = self.phase {
                if self.has_recovered(since) {
                    self.world.note(None, || "RECOVERED".to_string());
                    self.phase = Phase::Done;
                }
            }
        }
        self.check_history()?;
        Ok(self.report())
    }

    /// The trace so far, if tracing.
    pub fn trace(&self) -> Option<&[String]> {
        self.world.trace.as_deref()
    }

    fn handle(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Tick(id, incarnation) => self.world.tick(id, incarnation),
            Event::Deliver(Message::ClientReply {
                client,
                attempt,
                result,
            }) => self.client_reply(client, attempt, result),
            Event::Deliver(message) => self.world.deliver_rpc(message),
            Event::DiskDone(id, incarnation) => self.world.disk_done(id, incarnation),
            Event::Applied(id, incarnation, up_to) => {
                if self.world.nodes[&id].incarnation == incarnation {
                    self.world.with_executor(id, |e| e.applied(up_to));
                }
            }
            Event::SnapshotSaved(id, incarnation, meta, data) => {
                self.world.snapshot_saved(id, incarnation, meta, data)
            }
            Event::Restart(id) => self.world.restart(id),
            Event::ClientWake(client) => self.client_wake(client),
            Event::ClientTimeout(client, op) => self.client_timeout(client, op),
            Event::Fault => {
                if self.phase == Phase::Chaos {
                    self.inject_fault();
                    let next = 20 * MS + self.world.rng.below(500 * MS);
                    self.world.schedule(next, Event::Fault);
                }
            }
            Event::EndChaos => self.heal(),
            Event::Deadline => {
                if self.phase != Phase::Done {
                    return Err(format!(
                        "liveness: no leader committed an entry of its term and served a client \
                         within {} ms of healing",
                        self.options.heal_ms
                    ));
                }
            }
        }
        Ok(())
    }

    /// Safety, after every event: the core invariants on every running node, and every committed
    /// entry durable on a quorum of disks.
    fn check_step(&mut self) -> Result<(), String> {
        for node in self.world.nodes.values() {
            if let Some(core) = node.core() {
                self.checker
                    .check_core(core, node.incarnation, &node.applied, node.disk.hard_state)
                    .map_err(|violation| violation.0)?;
            }
        }
        let committed = self.checker.committed();
        let Some(last) = committed.last().filter(|_| self.options.check_durability) else {
            return Ok(());
        };
        let holders = self
            .world
            .nodes
            .values()
            .filter(|node| node.disk.holds(last))
            .count();
        let size = self.world.nodes.len();
        if holders * 2 <= size {
            return Err(format!(
                "durability: committed entry {} is on only {holders} of {size} disks",
                last.log_id
            ));
        }
        Ok(())
    }

    /// Recovered: a leader has committed an entry of its own term, and a client operation
    /// invoked after healing succeeded.
    fn has_recovered(&self, since: u64) -> bool {
        let Some(leader) = self.world.leader() else {
            return false;
        };
        let core = self.world.nodes[&leader].core().expect("a leader is up");
        let position = core
            .commit_index()
            .0
            .saturating_sub(core.log_base().index.0 + 1);
        let committed_own_term = core
            .entries()
            .get(position as usize)
            .is_some_and(|entry| entry.log_id.term == core.term());
        let served = self
            .history
            .iter()
            .any(|op| op.call >= since && matches!(op.outcome, Outcome::Ok(_)));
        committed_own_term && served
    }

    /// Per run: each key's history is linearizable. Operations of unknown outcome whose command
    /// is in no committed entry never took effect in this (finite) run, and are left out.
    fn check_history(&mut self) -> Result<(), String> {
        let committed_ids: BTreeSet<u64> = self
            .checker
            .committed()
            .iter()
            .filter_map(|entry| match &entry.payload {
                EntryPayload::Command(bytes) => {
                    codec::decode::<Tagged>(bytes).ok().map(|(id, _)| id)
                }
                _ => None,
            })
            .collect();
        for op in &mut self.history {
            if op.outcome == Outcome::Pending {
                op.outcome = Outcome::Unknown;
            }
            if op.outcome == Outcome::Unknown && !committed_ids.contains(&op.id) {
                op.outcome = Outcome::Failed;
            }
        }
        for key in 0..KEYS {
            let operations: Vec<_> = self
                .history
                .iter()
                .filter(|op| op.command.key() == key)
                .filter_map(HistoryOp::to_operation)
                .collect();
            match linearizability::check(&KeyModel, &operations, self.options.search_budget) {
                Verdict::Linearizable => {}
                Verdict::NotLinearizable => {
                    return Err(format!(
                        "linearizability: the history of key {key} ({} operations) has no \
                         linearization:\n{}",
                        operations.len(),
                        self.describe_history(key)
                    ))
                }
                Verdict::Inconclusive => {
                    return Err(format!(
                        "linearizability: the search on key {key} ({} operations) gave up after \
                         {} steps",
                        operations.len(),
                        self.options.search_budget
                    ))
                }
            }
        }
        Ok(())
    }

    fn describe_history(&self, key: u8) -> String {
        self.history
            .iter()
            .filter(|op| op.command.key() == key && op.outcome != Outcome::Failed)
            .map(|op| {
                format!(
                    "  c{} #{} [{:.3}ms, {}] {:?} -> {:?}",
                    op.client,
                    op.id,
                    op.call as f64 / 1e3,
                    op.ret
                        .map_or("?".to_string(), |ret| format!("{:.3}ms", ret as f64 / 1e3)),
                    op.command,
                    op.outcome
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn report(&self) -> RunReport {
        let count = |wanted: fn(&Outcome) -> bool| {
            self.history.iter().filter(|op| wanted(&op.outcome)).count() as u64
        };
        RunReport {
            nodes: self.world.nodes.len() as u64,
            events: self.world.event_count,
            simulated_ms: self.world.now / MS,
            ops_ok: count(|o| matches!(o, Outcome::Ok(_))),
            ops_failed: count(|o| *o == Outcome::Failed),
            ops_unknown: count(|o| *o == Outcome::Unknown),
            crashes: self.world.crashes,
            committed: self.checker.committed().len() as u64,
            reads_served: self.world.reads_served,
            snapshots_built: self.world.snapshots_built,
            snapshots_installed: self.world.snapshots_installed,
        }
    }

    // ---- faults ----

    fn inject_fault(&mut self) {
        let world = &mut self.world;
        let ids = world.ids();
        let leader = world.leader();
        let random_node = |world: &mut World| ids[world.rng.below(ids.len() as u64) as usize];
        let pick = world.rng.below(110);
        match pick {
            0..=6 => {
                let id = random_node(world);
                world.crash(id);
            }
            7..=15 => {
                if let Some(leader) = leader {
                    world.crash(leader);
                }
            }
            16..=24 => world.crash_leader_on_append = true,
            25..=30 => world.crash_after_vote = true,
            31..=36 => world.crash_after_ack = true,
            37..=40 => world.random_partition(),
            41..=44 => world.partition_on_election = true,
            45..=53 => {
                if let Some(leader) = leader {
                    let others = ids.iter().copied().filter(|id| *id != leader).collect();
                    world.network.partition(&[vec![leader], others]);
                }
            }
            54..=60 => {
                let from = random_node(world);
                let to = random_node(world);
                if from != to {
                    world.network.block(from, to);
                }
            }
            61..=75 => world.network.heal(),
            76..=81 => {
                if let Some(leader) = leader {
                    world.nodes.get_mut(&leader).expect("leader").disk.slow = true;
                }
            }
            82..=86 => {
                // Slow disks on a random set of nodes (a busy shared storage array).
                for node in world.nodes.values_mut() {
                    node.disk.slow = world.rng.per_mille(600);
                }
            }
            87..=91 => {
                for node in world.nodes.values_mut() {
                    node.disk.slow = false;
                }
            }
            92..=95 => {
                // A power failure: every node at once (unsynced writes everywhere are lost).
                for id in &ids {
                    world.crash(*id);
                }
            }
            _ => {
                world.network.weather = if world.rng.per_mille(500) {
                    Weather::random(&mut world.rng)
                } else {
                    Weather::calm()
                };
            }
        }
        let cuts = world.network.describe_cuts();
        let hooks = (
            world.crash_leader_on_append,
            world.crash_after_vote,
            world.crash_after_ack,
            world.partition_on_election,
        );
        world.note(None, || {
            format!("FAULT {pick}: cuts [{cuts}] hooks {hooks:?}")
        });
    }

    /// The fault phase is over: links, weather and disks heal, crashed nodes restart.
    fn heal(&mut self) {
        let world = &mut self.world;
        world.network.heal();
        world.network.weather = Weather::calm();
        world.crash_leader_on_append = false;
        world.crash_after_vote = false;
        world.crash_after_ack = false;
        world.partition_on_election = false;
        world.restart_at_once = true;
        for id in world.ids() {
            world.nodes.get_mut(&id).expect("known").disk.slow = false;
            world.restart(id);
        }
        world.note(None, || "HEAL".to_string());
        self.phase = Phase::Heal {
            since: self.world.now,
        };
        self.world
            .schedule(self.options.heal_ms * MS, Event::Deadline);
    }

    // ---- clients ----

    fn client_wake(&mut self, client: usize) {
        if self.phase == Phase::Done {
            return;
        }
        let world = &mut self.world;
        if world.clients[client]
            .current
            .as_ref()
            .is_some_and(|c| c.awaiting)
        {
            // Never two attempts that may both apply.
            return;
        }
        if world.clients[client].current.is_none() {
            let value = self.next_value;
            self.next_value += 1;
            let command = world.clients[client].choose_command(&mut world.rng, value);
            let op = self.history.len();
            let id = op as u64;
            self.history.push(HistoryOp {
                client,
                id,
                command,
                call: world.now,
                ret: None,
                outcome: Outcome::Pending,
            });
            let bytes: Arc<[u8]> =
                Arc::from(codec::encode(&(id, command)).expect("commands encode"));
            world.clients[client].current = Some(InFlight {
                op,
                bytes,
                attempt: 0,
                awaiting: false,
            });
            let timeout = world.config.client_timeout.as_micros() as u64;
            world.schedule(timeout, Event::ClientTimeout(client, op));
        }
        self.send_attempt(client);
    }

    fn send_attempt(&mut self, client: usize) {
        let world = &mut self.world;
        let ids = world.ids();
        let target = match world.clients[client].leader_guess {
            Some(leader) => leader,
            None => ids[world.rng.below(ids.len() as u64) as usize],
        };
        let attempt = world.clients[client].new_attempt();
        let Some(current) = world.clients[client].current.as_mut() else {
            return;
        };
        current.attempt = attempt;
        current.awaiting = true;
        let bytes = Arc::clone(&current.bytes);
        let op = current.op;
        world.note(None, || {
            format!("c{client} #{op} attempt {attempt} -> n{target}")
        });
        world.send_client_request(client, attempt, target, bytes);
    }

    fn client_reply(
        &mut self,
        client: usize,
        attempt: u64,
        result: Result<super::kv::KvResponse, raftor::ProposeError>,
    ) {
        let world = &mut self.world;
        let Some(current) = world.clients[client].current.as_ref() else {
            return;
        };
        if current.attempt != attempt || !current.awaiting {
            return;
        }
        let op = current.op;
        match result {
            Ok(response) => {
                let entry = &mut self.history[op];
                entry.ret = Some(world.now);
                entry.outcome = Outcome::Ok(response);
                let command = entry.command;
                world.clients[client].learn(&command, &response);
                world.clients[client].current = None;
                world.note(None, || format!("c{client} #{op} ok {response:?}"));
                let think = world.rng.below(20 * MS);
                world.schedule(think, Event::ClientWake(client));
            }
            Err(error) => {
                world.clients[client].redirect(&error);
                if let Some(current) = world.clients[client].current.as_mut() {
                    current.awaiting = false;
                }
                world.note(None, || format!("c{client} #{op} refused: {error}"));
                let backoff = if world.clients[client].leader_guess.is_some() {
                    MS + world.rng.below(10 * MS)
                } else {
                    20 * MS + world.rng.below(50 * MS)
                };
                world.schedule(backoff, Event::ClientWake(client));
            }
        }
    }

    fn client_timeout(&mut self, client: usize, op: usize) {
        let world = &mut self.world;
        let Some(current) = world.clients[client].current.as_ref() else {
            return;
        };
        if current.op != op {
            return;
        }
        // Silence after the last attempt: it may still be applied. Refusals only: it never will.
        let outcome = if current.awaiting {
            Outcome::Unknown
        } else {
            Outcome::Failed
        };
        self.history[op].outcome = outcome;
        world.clients[client].current = None;
        world.clients[client].leader_guess = None;
        world.note(None, || format!("c{client} #{op} timed out: {outcome:?}"));
        let think = world.rng.below(20 * MS);
        world.schedule(think, Event::ClientWake(client));
    }
}
