//! A state machine that records what it applies, and a cluster-wide ledger that fails loudly
//! when two nodes apply different values at the same index or a node applies out of order.
//!
//! Commands are anything serializable that names itself with a number ([`Command::value`]): the
//! ledger records and compares that number. Plain `u64`s serve most tests; [`Padded`] adds bytes
//! for tests that count what crosses the network.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use std::io::Read;

use raftor::state_machine::SnapshotData;
use raftor::types::SnapshotMeta;
use raftor::{LogIndex, NodeId, StateMachine, StateMachineError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A command the [`Recorder`] can apply. Two commands with the same `value` count as the same
/// command; tests give every command a distinct value.
pub trait Command: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static {
    /// The number the ledger records for this command.
    fn value(&self) -> u64;
}

impl Command for u64 {
    fn value(&self) -> u64 {
        *self
    }
}

/// A command carrying `padding` besides its value, so that it weighs what a test wants on the
/// wire (the lab suite's `randstring(5000)` commands).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Padded {
    /// What the ledger records.
    pub value: u64,
    /// Filler bytes.
    pub padding: Vec<u8>,
}

impl Padded {
    /// A command of `value` with `bytes` filler bytes.
    pub fn new(value: u64, bytes: usize) -> Padded {
        let padding = (0..bytes).map(|i| (value as usize + i) as u8).collect();
        Padded { value, padding }
    }
}

impl Command for Padded {
    fn value(&self) -> u64 {
        self.value
    }
}

/// What every node applied, by index, across the whole test (all incarnations).
#[derive(Clone, Default)]
pub struct Ledger {
    inner: Arc<Mutex<LedgerState>>,
}

#[derive(Default)]
struct LedgerState {
    /// The value applied at each index, by whichever node applied it first.
    committed: BTreeMap<LogIndex, u64>,
    /// Per node: the values it applied in its current incarnation, by index.
    applied: BTreeMap<NodeId, BTreeMap<LogIndex, u64>>,
    /// First violation seen, reported by `check`.
    violation: Option<String>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, LedgerState> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Panics with the first safety violation seen, if any.
    pub fn check(&self) {
        if let Some(violation) = &self.lock().violation {
            panic!("{violation}");
        }
    }

    /// Forgets node `id`'s applied values (it restarts with an empty state machine).
    pub fn restart(&self, id: NodeId) {
        self.lock().applied.remove(&id);
    }

    /// The value node `id` applied at `index`.
    pub fn applied_at(&self, id: NodeId, index: LogIndex) -> Option<u64> {
        self.lock()
            .applied
            .get(&id)
            .and_then(|values| values.get(&index).copied())
    }

    /// How many nodes applied something at `index`, and the value (they agree, or `check` fails).
    pub fn n_committed(&self, index: LogIndex) -> (usize, Option<u64>) {
        let state = self.lock();
        let count = state
            .applied
            .values()
            .filter(|values| values.contains_key(&index))
            .count();
        (count, state.committed.get(&index).copied())
    }

    /// The index at which `value` was committed, if any.
    pub fn index_of(&self, value: u64) -> Option<LogIndex> {
        self.lock()
            .committed
            .iter()
            .find(|(_, v)| **v == value)
            .map(|(index, _)| *index)
    }

    /// Every committed value, by index.
    pub fn committed(&self) -> BTreeMap<LogIndex, u64> {
        self.lock().committed.clone()
    }

    /// Node `id` restored a snapshot holding these values: its applied state is theirs now, and
    /// they must match what was committed at each index (the lab's "snapshot index must match
    /// the snapshot content").
    fn restore(&self, id: NodeId, values: &BTreeMap<LogIndex, u64>) {
        let mut state = self.lock();
        for (index, value) in values {
            match state.committed.get(index) {
                Some(existing) if existing != value => {
                    let message = format!(
                        "snapshot restored on server {id} holds {value} at {index}, \
                         but {existing} was committed there"
                    );
                    state.violation.get_or_insert(message);
                }
                Some(_) => {}
                None => {
                    state.committed.insert(*index, *value);
                }
            }
        }
        state.applied.insert(id, values.clone());
    }

    fn record(&self, id: NodeId, index: LogIndex, value: u64) {
        let mut state = self.lock();
        let last = state
            .applied
            .get(&id)
            .and_then(|values| values.keys().next_back().copied());
        if last.is_some_and(|last| index <= last) {
            let message = format!("node {id} applied index {index} out of order (after {last:?})");
            state.violation.get_or_insert(message);
        }
        match state.committed.get(&index) {
            Some(existing) if *existing != value => {
                let message = format!(
                    "commit index={index} server={id} {value} != another server's {existing}"
                );
                state.violation.get_or_insert(message);
            }
            Some(_) => {}
            None => {
                state.committed.insert(index, value);
            }
        }
        state.applied.entry(id).or_default().insert(index, value);
    }
}

/// A state machine that records each applied command's value in the ledger and answers with the
/// index it was applied at. It also keeps what it applied, for reads (`Raft::read`).
pub struct Recorder<C = u64> {
    id: NodeId,
    ledger: Ledger,
    /// The values this incarnation applied, by index: the state a read sees.
    applied: BTreeMap<LogIndex, u64>,
    _command: PhantomData<fn() -> C>,
}

impl Recorder<u64> {
    /// A fresh (empty) state machine for node `id`, whose commands are numbers.
    pub fn new(id: NodeId, ledger: Ledger) -> Recorder<u64> {
        Recorder::of(id, ledger)
    }
}

impl<C: Command> Recorder<C> {
    /// A fresh (empty) state machine for node `id`, whose commands are `C`s.
    pub fn of(id: NodeId, ledger: Ledger) -> Recorder<C> {
        ledger.restart(id);
        Recorder {
            id,
            ledger,
            applied: BTreeMap::new(),
            _command: PhantomData,
        }
    }

    /// The values this state machine applied, by index.
    pub fn applied(&self) -> &BTreeMap<LogIndex, u64> {
        &self.applied
    }
}

#[async_trait]
impl<C: Command> StateMachine for Recorder<C> {
    type Command = C;
    type Response = LogIndex;

    async fn apply(&mut self, index: LogIndex, command: C) -> Result<LogIndex, StateMachineError> {
        self.ledger.record(self.id, index, command.value());
        self.applied.insert(index, command.value());
        Ok(index)
    }

    /// The image is every value applied so far, by index (like the lab's snapshots, which hold
    /// the whole applied log, so a restore can be checked against what was committed).
    async fn snapshot(&mut self) -> Result<SnapshotData, StateMachineError> {
        let bytes = raftor::codec::encode(&self.applied).map_err(StateMachineError::Io)?;
        Ok(Box::new(std::io::Cursor::new(bytes)))
    }

    async fn restore(
        &mut self,
        meta: &SnapshotMeta,
        mut data: SnapshotData,
    ) -> Result<(), StateMachineError> {
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes)
            .map_err(|e| StateMachineError::Io(e.to_string()))?;
        let applied: BTreeMap<LogIndex, u64> =
            raftor::codec::decode(&bytes).map_err(StateMachineError::Io)?;
        if applied.keys().next_back().copied() > Some(meta.last_included.index) {
            return Err(StateMachineError::Io(format!(
                "snapshot {} holds entries beyond it",
                meta.last_included
            )));
        }
        self.ledger.restore(self.id, &applied);
        self.applied = applied;
        Ok(())
    }
}
