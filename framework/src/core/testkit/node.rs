//! One simulated node: a core (or none while crashed), its disk, and its state machine.

use std::collections::{BTreeMap, VecDeque};

use crate::config::Config;
use crate::core::{Action, Core, HardState, Input, Recovered};
use crate::error::ProposeError;
use crate::types::{Entry, LogIndex, NodeId, RequestId};

/// A disk write issued by the core and not yet durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingWrite {
    /// Remove entries from this index on.
    Truncate(LogIndex),
    /// Append these entries.
    Append(Vec<Entry>),
}

/// A simulated node. Its disk survives crashes; pending writes and the state machine do not.
#[derive(Debug, Clone)]
pub struct SimNode {
    /// The node's id.
    pub id: NodeId,
    /// The running core, or `None` while crashed.
    pub core: Option<Core>,
    /// Durable term and vote.
    pub disk_hard_state: HardState,
    /// Durable log, from index 1.
    pub disk_log: Vec<Entry>,
    /// Writes issued but not yet durable, oldest first. Lost on a crash.
    pub pending_writes: VecDeque<PendingWrite>,
    /// The state machine: every entry applied in this incarnation, in order (volatile).
    pub applied: Vec<Entry>,
    /// How each client request was answered: the index it was applied at, or why not.
    pub answers: BTreeMap<RequestId, Result<LogIndex, ProposeError>>,
    /// How each read was answered: the read index it may be served at, or why not.
    pub reads: BTreeMap<RequestId, Result<LogIndex, ProposeError>>,
    /// How many times the node restarted.
    pub restarts: u64,
}

impl SimNode {
    /// A fresh member of a new cluster of `voters`, with the bootstrap entry on its disk.
    pub fn bootstrap(id: NodeId, voters: &[NodeId], config: &Config, seed: u64) -> SimNode {
        let mut node = SimNode {
            id,
            core: None,
            disk_hard_state: HardState::default(),
            disk_log: Core::bootstrap_log(voters.iter().copied()),
            pending_writes: VecDeque::new(),
            applied: Vec::new(),
            answers: BTreeMap::new(),
            reads: BTreeMap::new(),
            restarts: 0,
        };
        node.start(config, seed);
        node
    }

    fn start(&mut self, config: &Config, seed: u64) {
        let recovered = Recovered {
            hard_state: self.disk_hard_state,
            log: self.disk_log.clone(),
            last_applied: LogIndex(0),
        };
        match Core::new(self.id, config.clone(), recovered, seed) {
            Ok(core) => self.core = Some(core),
            Err(error) => panic!("node {} cannot recover from its disk: {error}", self.id),
        }
    }

    /// Loses everything volatile: the core, unsynced writes, the state machine.
    pub fn crash(&mut self) {
        self.core = None;
        self.pending_writes.clear();
        self.applied.clear();
    }

    /// Starts from the disk (a no-op if running).
    pub fn restart(&mut self, config: &Config, seed: u64) {
        if self.core.is_none() {
            self.restarts += 1;
            self.start(config, seed);
        }
    }

    /// Whether the node is running.
    pub fn is_up(&self) -> bool {
        self.core.is_some()
    }

    /// Executes an action that stays on this node (not `Send`/`Reply`). Returns the inputs that
    /// complete at once.
    pub fn execute_local(&mut self, action: Action) -> Vec<Input> {
        match action {
            Action::SaveHardState(hard_state) => self.disk_hard_state = hard_state,
            Action::TruncateLog { from } => {
                self.pending_writes.push_back(PendingWrite::Truncate(from))
            }
            Action::AppendLog { entries } => {
                self.pending_writes.push_back(PendingWrite::Append(entries))
            }
            Action::Apply { entries, clients } => return self.apply(entries, clients),
            Action::Reject { request, error } => {
                self.answers.insert(request, Err(error));
            }
            Action::ReadReady {
                request,
                read_index,
            } => {
                self.reads.insert(request, Ok(read_index));
            }
            Action::RejectRead { request, error } => {
                self.reads.insert(request, Err(error));
            }
            Action::Send { .. } | Action::Reply { .. } => {
                panic!("network actions are executed by the cluster, not the node")
            }
        }
        Vec::new()
    }

    fn apply(&mut self, entries: Vec<Entry>, clients: Vec<(LogIndex, RequestId)>) -> Vec<Input> {
        let Some(last) = entries.last().map(|entry| entry.log_id.index) else {
            return Vec::new();
        };
        let expected = LogIndex(self.applied.len() as u64 + 1);
        assert_eq!(
            entries[0].log_id.index, expected,
            "node {}: apply out of order",
            self.id
        );
        self.applied.extend(entries);
        for (index, request) in clients {
            self.answers.insert(request, Ok(index));
        }
        vec![Input::Applied { up_to: last }]
    }

    /// Makes the oldest pending write durable; returns the completion to report.
    pub fn persist_one(&mut self) -> Vec<Input> {
        match self.pending_writes.pop_front() {
            Some(PendingWrite::Truncate(from)) => {
                self.disk_log.truncate((from.0.max(1) - 1) as usize);
                Vec::new()
            }
            Some(PendingWrite::Append(entries)) => {
                let up_to = entries.last().map(|entry| entry.log_id);
                self.disk_log.extend(entries);
                up_to
                    .map(|up_to| vec![Input::LogPersisted { up_to }])
                    .unwrap_or_default()
            }
            None => Vec::new(),
        }
    }

    /// Makes every pending write durable; returns the completions to report, in order.
    pub fn persist_all(&mut self) -> Vec<Input> {
        let mut inputs = Vec::new();
        while !self.pending_writes.is_empty() {
            inputs.extend(self.persist_one());
        }
        inputs
    }
}
