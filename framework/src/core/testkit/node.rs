//! One simulated node: a core (or none while crashed), its disk, and its state machine.
//!
//! The state machine is the list of applied entries, from index 1; its snapshot is that list,
//! encoded, so a restored snapshot can be checked entry by entry (like the classic lab's tester).

use std::collections::{BTreeMap, VecDeque};

use crate::config::Config;
use crate::core::{Action, Core, HardState, Input, Recovered};
use crate::error::ProposeError;
use crate::membership::Membership;
use crate::types::{Entry, LogId, LogIndex, NodeId, RequestId, SnapshotMeta};

/// A disk write issued by the core and not yet durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingWrite {
    /// Remove entries from this index on.
    Truncate(LogIndex),
    /// Append these entries.
    Append(Vec<Entry>),
    /// Remove entries up to and including this one (compaction).
    Purge(LogId),
    /// Make this received snapshot (metadata, data) durable and empty the log after it.
    Install(SnapshotMeta, Vec<u8>),
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
    /// Durable log: the entries after `disk_log_base`.
    pub disk_log: Vec<Entry>,
    /// The last entry purged from the durable log (`0@0` if none).
    pub disk_log_base: LogId,
    /// The durable snapshot, if any: its metadata and data (the applied entries it covers).
    pub disk_snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    /// The snapshot being received: its metadata and the bytes so far (volatile).
    pub receiving: Option<(SnapshotMeta, Vec<u8>)>,
    /// Snapshots received from a leader and restored, in every incarnation.
    pub snapshots_installed: u64,
    /// Writes issued but not yet durable, oldest first. Lost on a crash.
    pub pending_writes: VecDeque<PendingWrite>,
    /// The state machine: every entry applied in this incarnation, in order (volatile).
    pub applied: Vec<Entry>,
    /// How each client request was answered: the index it was applied at, or why not.
    pub answers: BTreeMap<RequestId, Result<LogIndex, ProposeError>>,
    /// How each membership change was answered.
    pub changes:
        BTreeMap<RequestId, Result<crate::membership::Membership, crate::error::ChangeError>>,
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
            disk_log_base: LogId::default(),
            disk_snapshot: None,
            receiving: None,
            snapshots_installed: 0,
            pending_writes: VecDeque::new(),
            applied: Vec::new(),
            answers: BTreeMap::new(),
            changes: BTreeMap::new(),
            reads: BTreeMap::new(),
            restarts: 0,
        };
        node.start(config, seed);
        node
    }

    fn start(&mut self, config: &Config, seed: u64) {
        // The driver's part of a restart: restore the durable snapshot, then start the core.
        self.applied = match &self.disk_snapshot {
            Some((_, data)) => decode_snapshot(self.id, data),
            None => Vec::new(),
        };
        let recovered = Recovered {
            hard_state: self.disk_hard_state,
            log: self.disk_log.clone(),
            last_applied: LogIndex(self.applied.len() as u64),
            snapshot: self.disk_snapshot.as_ref().map(|(meta, _)| meta.clone()),
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
        self.receiving = None;
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
            Action::BuildSnapshot {
                last_included,
                membership,
            } => return self.build_snapshot(last_included, membership),
            Action::PurgeLog { up_to } => self.pending_writes.push_back(PendingWrite::Purge(up_to)),
            Action::ReceiveSnapshotChunk { meta, offset, data } => {
                self.receive_chunk(meta, offset, data)
            }
            Action::InstallSnapshot { meta } => {
                let data = match &self.receiving {
                    Some((receiving, data)) if *receiving == meta => data.clone(),
                    _ => panic!(
                        "node {}: installing {} not received",
                        self.id, meta.last_included
                    ),
                };
                self.pending_writes
                    .push_back(PendingWrite::Install(meta, data));
            }
            Action::RestoreSnapshot { meta } => return self.restore(meta),
            Action::ChangeDone { request, result } => {
                self.changes.insert(request, result);
            }
            Action::Send { .. } | Action::Reply { .. } | Action::SendSnapshotChunk { .. } => {
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

    /// Snapshots the state machine (everything applied so far, which is exactly up to
    /// `last_included`: the testkit applies at once) and stores it durably, at once.
    fn build_snapshot(&mut self, last_included: LogId, membership: Membership) -> Vec<Input> {
        let count = last_included.index.0 as usize;
        assert!(
            count == self.applied.len()
                && self.applied.last().map(|e| e.log_id) == Some(last_included),
            "node {}: snapshot at {last_included}, but the state machine applied {} entries",
            self.id,
            self.applied.len()
        );
        let data = crate::codec::encode(&self.applied).expect("entries encode");
        let meta = SnapshotMeta {
            last_included,
            membership,
            size_bytes: data.len() as u64,
        };
        let newer = self
            .disk_snapshot
            .as_ref()
            .is_none_or(|(latest, _)| latest.last_included.index < last_included.index);
        if newer {
            self.disk_snapshot = Some((meta.clone(), data));
        }
        vec![Input::SnapshotBuilt { meta }]
    }

    fn receive_chunk(&mut self, meta: SnapshotMeta, offset: u64, data: Vec<u8>) {
        if offset == 0 {
            self.receiving = Some((meta.clone(), Vec::new()));
        }
        match &mut self.receiving {
            Some((receiving, bytes)) if *receiving == meta && bytes.len() as u64 == offset => {
                bytes.extend_from_slice(&data)
            }
            _ => panic!(
                "node {}: chunk of {} at offset {offset} does not continue the partial snapshot",
                self.id, meta.last_included
            ),
        }
    }

    fn restore(&mut self, meta: SnapshotMeta) -> Vec<Input> {
        let data = match self.receiving.take() {
            Some((receiving, data)) if receiving == meta => data,
            _ => panic!(
                "node {}: restoring {} not received",
                self.id, meta.last_included
            ),
        };
        self.applied = decode_snapshot(self.id, &data);
        assert_eq!(
            self.applied.last().map(|e| e.log_id),
            Some(meta.last_included),
            "node {}: snapshot content does not end at its last included entry",
            self.id
        );
        self.snapshots_installed += 1;
        vec![Input::Applied {
            up_to: meta.last_included.index,
        }]
    }

    /// The bytes `[offset, offset + len)` of the durable snapshot ending at `last_included`, if it
    /// is still the node's snapshot.
    pub fn snapshot_chunk(&self, last_included: LogId, offset: u64, len: u64) -> Option<Vec<u8>> {
        let (meta, data) = self.disk_snapshot.as_ref()?;
        if meta.last_included != last_included {
            return None;
        }
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        data.get(start..end).map(<[u8]>::to_vec)
    }

    /// The durable log as (base, entries after it).
    fn disk_position(&self, index: LogIndex) -> usize {
        index.0.saturating_sub(self.disk_log_base.index.0) as usize
    }

    /// Makes the oldest pending write durable; returns the completion to report.
    pub fn persist_one(&mut self) -> Vec<Input> {
        match self.pending_writes.pop_front() {
            Some(PendingWrite::Truncate(from)) => {
                let keep = self.disk_position(from.prev());
                self.disk_log.truncate(keep);
                Vec::new()
            }
            Some(PendingWrite::Purge(up_to)) => {
                if up_to.index > self.disk_log_base.index {
                    let drop = self.disk_position(up_to.index).min(self.disk_log.len());
                    self.disk_log.drain(..drop);
                    self.disk_log_base = up_to;
                }
                Vec::new()
            }
            Some(PendingWrite::Install(meta, data)) => {
                let last_included = meta.last_included;
                self.disk_log.clear();
                self.disk_log_base = last_included;
                self.disk_snapshot = Some((meta, data));
                vec![Input::SnapshotInstalled { last_included }]
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

fn decode_snapshot(id: NodeId, data: &[u8]) -> Vec<Entry> {
    crate::codec::decode(data)
        .unwrap_or_else(|error| panic!("node {id}: undecodable snapshot: {error}"))
}
