//! Simulated clients and the history they record.
//!
//! A client runs one operation at a time. It sends the command to the node it believes leads (or
//! any node), follows `NotLeader` hints and retries after `Dropped` — both say the command was not
//! and will not be applied, so a retry cannot apply it twice. It never retries after silence: an
//! attempt that got no answer may still be applied, so when the operation's timeout fires it is
//! recorded with an unknown outcome and the client moves on.

use std::sync::Arc;

use raftor::{NodeId, ProposeError};

use crate::linearizability::Operation;
use crate::rng::TestRng;

use super::kv::{KvCommand, KvResponse};

/// What a command carries on the wire: a unique id (to find it in the log) and the command.
pub type Tagged = (u64, KvCommand);

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not yet.
    Pending,
    /// Applied, with this answer.
    Ok(KvResponse),
    /// Definitely not applied.
    Failed,
    /// No answer in time: applied or not.
    Unknown,
}

/// One operation of the history.
#[derive(Debug, Clone)]
pub struct HistoryOp {
    /// The client that issued it.
    pub client: usize,
    /// Its unique id, carried in the command.
    pub id: u64,
    /// What it asked.
    pub command: KvCommand,
    /// When it was invoked (simulated microseconds).
    pub call: u64,
    /// When it ended, if it did.
    pub ret: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
}

impl HistoryOp {
    /// The operation as the linearizability checker sees it, or `None` if it definitely failed
    /// or is left out.
    pub fn to_operation(&self) -> Option<Operation<KvCommand, KvResponse>> {
        let (ret, output) = match self.outcome {
            Outcome::Ok(response) => (self.ret, Some(response)),
            Outcome::Unknown | Outcome::Pending => (None, None),
            Outcome::Failed => return None,
        };
        Some(Operation {
            client: self.client as u64,
            call: self.call,
            ret,
            input: self.command,
            output,
        })
    }
}

/// A client's operation in progress.
#[derive(Debug, Clone)]
pub struct InFlight {
    /// Index of the operation in the history.
    pub op: usize,
    /// The encoded command.
    pub bytes: Arc<[u8]>,
    /// The current attempt's number (unique across the client's life).
    pub attempt: u64,
    /// The current attempt has been sent and not answered.
    pub awaiting: bool,
}

/// One simulated client.
#[derive(Debug, Clone)]
pub struct Client {
    /// The operation in progress.
    pub current: Option<InFlight>,
    /// Where it will send next.
    pub leader_guess: Option<NodeId>,
    /// The last value this client saw under each key (for compare-and-set).
    pub seen: [Option<u64>; KEYS as usize],
    next_attempt: u64,
}

/// How many keys the clients use: few, so that operations collide.
pub const KEYS: u8 = 3;

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    /// A client that has done nothing yet.
    pub fn new() -> Client {
        Client {
            current: None,
            leader_guess: None,
            seen: [None; KEYS as usize],
            next_attempt: 1,
        }
    }

    /// A fresh attempt number.
    pub fn new_attempt(&mut self) -> u64 {
        let attempt = self.next_attempt;
        self.next_attempt += 1;
        attempt
    }

    /// Picks the next command; `value` is a value never written before.
    pub fn choose_command(&self, rng: &mut TestRng, value: u64) -> KvCommand {
        let key = rng.below(KEYS as u64) as u8;
        match rng.below(100) {
            0..=44 => KvCommand::Put { key, value },
            45..=79 => KvCommand::Get { key },
            _ => KvCommand::Cas {
                key,
                expected: self.seen[key as usize],
                new: value,
            },
        }
    }

    /// Remembers what an answered command says about its key.
    pub fn learn(&mut self, command: &KvCommand, response: &KvResponse) {
        let slot = &mut self.seen[command.key() as usize];
        match (command, response) {
            (KvCommand::Put { value, .. }, _) => *slot = Some(*value),
            (_, KvResponse::Value(value)) => *slot = *value,
            (KvCommand::Cas { new, .. }, KvResponse::Swapped(true)) => *slot = Some(*new),
            _ => {}
        }
    }

    /// Where a refused attempt should go next.
    pub fn redirect(&mut self, error: &ProposeError) {
        self.leader_guess = match error {
            ProposeError::NotLeader { leader } | ProposeError::Dropped { leader } => *leader,
        };
    }
}
