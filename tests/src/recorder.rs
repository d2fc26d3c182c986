//! A state machine that records what it applies, and a cluster-wide ledger that fails loudly
//! when two nodes apply different values at the same index or a node applies out of order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use raftor::{LogIndex, NodeId, StateMachine, StateMachineError};

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

/// A state machine whose commands are numbers: it records each applied one in the ledger and
/// answers with the index it was applied at.
pub struct Recorder {
    id: NodeId,
    ledger: Ledger,
}

impl Recorder {
    /// A fresh (empty) state machine for node `id`.
    pub fn new(id: NodeId, ledger: Ledger) -> Recorder {
        ledger.restart(id);
        Recorder { id, ledger }
    }
}

#[async_trait]
impl StateMachine for Recorder {
    type Command = u64;
    type Response = LogIndex;

    async fn apply(
        &mut self,
        index: LogIndex,
        command: u64,
    ) -> Result<LogIndex, StateMachineError> {
        self.ledger.record(self.id, index, command);
        Ok(index)
    }
}
