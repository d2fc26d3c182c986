//! The simulated clients' key-value store: its commands, the state machine the nodes run, and
//! the sequential model the linearizability checker holds the clients' history against.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::linearizability::Model;

/// A client command. Reads go through the log too (until ReadIndex lands), which makes them
/// linearizable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvCommand {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: u8,
        /// The value; the simulator never writes one value twice.
        value: u64,
    },
    /// Read `key`.
    Get {
        /// The key.
        key: u8,
    },
    /// Set `key` to `new` if it holds `expected`.
    Cas {
        /// The key.
        key: u8,
        /// The value it must hold (`None`: never written).
        expected: Option<u64>,
        /// The value it gets.
        new: u64,
    },
}

/// The state machine's answer to a [`KvCommand`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResponse {
    /// A put was applied.
    Done,
    /// What a get read.
    Value(Option<u64>),
    /// Whether a compare-and-set swapped.
    Swapped(bool),
}

impl KvCommand {
    /// The key the command touches.
    pub fn key(&self) -> u8 {
        match self {
            KvCommand::Put { key, .. } | KvCommand::Get { key } | KvCommand::Cas { key, .. } => {
                *key
            }
        }
    }

    /// Applies the command to one key's value; returns the new value and the answer.
    pub fn apply(&self, current: Option<u64>) -> (Option<u64>, KvResponse) {
        match *self {
            KvCommand::Put { value, .. } => (Some(value), KvResponse::Done),
            KvCommand::Get { .. } => (current, KvResponse::Value(current)),
            KvCommand::Cas { expected, new, .. } if expected == current => {
                (Some(new), KvResponse::Swapped(true))
            }
            KvCommand::Cas { .. } => (current, KvResponse::Swapped(false)),
        }
    }
}

/// A node's state machine: volatile, rebuilt from the log after a restart.
#[derive(Debug, Clone, Default)]
pub struct KvStore {
    values: BTreeMap<u8, u64>,
}

impl KvStore {
    /// A store holding these values (restored from a snapshot).
    pub fn from_values(values: BTreeMap<u8, u64>) -> KvStore {
        KvStore { values }
    }

    /// Its values (for a snapshot).
    pub fn values(&self) -> &BTreeMap<u8, u64> {
        &self.values
    }

    /// Applies one command.
    pub fn apply(&mut self, command: &KvCommand) -> KvResponse {
        let key = command.key();
        let (next, response) = command.apply(self.values.get(&key).copied());
        match next {
            Some(value) => self.values.insert(key, value),
            None => self.values.remove(&key),
        };
        response
    }
}

/// One key of the store, as a sequential object for the linearizability checker.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyModel;

impl Model for KeyModel {
    type State = Option<u64>;
    type Input = KvCommand;
    type Output = KvResponse;

    fn init(&self) -> Option<u64> {
        None
    }

    fn step(
        &self,
        state: &Option<u64>,
        input: &KvCommand,
        output: Option<&KvResponse>,
    ) -> Option<Option<u64>> {
        let (next, answer) = input.apply(*state);
        match output {
            Some(output) if *output != answer => None,
            _ => Some(next),
        }
    }
}
