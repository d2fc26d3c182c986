//! One batch of committed entries through the state machine, and the answers to the clients
//! waiting on them.
//!
//! ```text
//!  entries ─► decode the commands (blank and membership entries have no effect) ─► apply_batch
//!                 └─ undecodable at i: the commands before i are applied, then the node stops
//!  responses, in order ─► paired with the clients by index ─► each client answered
//! ```
//!
//! One `apply_batch` call per job, not one `apply` per entry: a state machine that overrides it
//! pays one call (and one boxed future) per batch.

use tokio::sync::oneshot;
use tracing::warn;

use crate::error::{ClientWriteError, Fatal};
use crate::state_machine::{StateMachine, StateMachineError};
use crate::types::{EntryPayload, LogIndex};

use super::workers::ApplyJob;

type ClientTx<R> = oneshot::Sender<Result<R, ClientWriteError>>;

/// Applies `job`, answers its clients, and returns the last index applied (`None` for an empty
/// job). On an error every client of the job not yet answered gets it too.
pub(super) async fn apply_job<SM: StateMachine>(
    state_machine: &mut SM,
    job: ApplyJob<SM::Response>,
) -> Result<Option<LogIndex>, Fatal> {
    let last = job.entries.last().map(|entry| entry.log_id.index);
    let mut commands = Vec::with_capacity(job.entries.len());
    let mut undecodable = None;
    for entry in job.entries {
        let index = entry.log_id.index;
        let EntryPayload::Command(bytes) = entry.payload else {
            continue;
        };
        match crate::codec::decode::<SM::Command>(&bytes) {
            Ok(command) => commands.push((index, command)),
            Err(message) => {
                undecodable = Some(Fatal::Undecodable { index, message });
                break;
            }
        }
    }
    // The core hands the clients out in log order; sorting an already sorted Vec is one pass,
    // and lets the walk below pair clients with entries without building a map.
    let mut clients = job.clients;
    clients.sort_unstable_by_key(|(index, _)| *index);
    let mut clients = clients.into_iter().peekable();
    let mut unmatched = 0;
    let outcome = apply_commands(state_machine, commands).await;
    let result = match outcome {
        Ok(answered) => {
            for (index, response) in answered {
                if let Some(tx) = take_client(&mut clients, index, &mut unmatched) {
                    // The client may have given up (timeout): nothing to do then.
                    let _ = tx.send(Ok(response));
                }
            }
            undecodable.map_or(Ok(last), Err)
        }
        Err(fatal) => Err(fatal),
    };
    match &result {
        Ok(_) => {
            let unmatched = unmatched + clients.count();
            if unmatched > 0 {
                warn!(
                    count = unmatched,
                    "clients waiting on entries that were not in the batch"
                );
            }
        }
        Err(fatal) => fail_clients(clients, fatal),
    }
    result
}

/// Runs the commands through `apply_batch`, checking it answered each.
async fn apply_commands<SM: StateMachine>(
    state_machine: &mut SM,
    commands: Vec<(LogIndex, SM::Command)>,
) -> Result<Vec<(LogIndex, SM::Response)>, Fatal> {
    if commands.is_empty() {
        return Ok(Vec::new());
    }
    let indexes: Vec<LogIndex> = commands.iter().map(|(index, _)| *index).collect();
    let responses = state_machine.apply_batch(commands).await?;
    if responses.len() != indexes.len() {
        let message = format!(
            "apply_batch answered {} of {} commands",
            responses.len(),
            indexes.len()
        );
        return Err(Fatal::StateMachine(StateMachineError::Io(message)));
    }
    Ok(indexes.into_iter().zip(responses).collect())
}

/// Tells every remaining client the node failed.
fn fail_clients<R>(clients: impl Iterator<Item = (LogIndex, ClientTx<R>)>, fatal: &Fatal) {
    for (_, tx) in clients {
        let _ = tx.send(Err(ClientWriteError::Fatal(fatal.clone())));
    }
}

/// The client waiting on the entry at `index`, if any, from clients sorted by index; clients
/// below `index` (waiting on entries not in the batch) are skipped and counted in `unmatched`.
fn take_client<T>(
    clients: &mut std::iter::Peekable<impl Iterator<Item = (LogIndex, T)>>,
    index: LogIndex,
    unmatched: &mut usize,
) -> Option<T> {
    while clients.next_if(|(at, _)| *at < index).is_some() {
        *unmatched += 1;
    }
    clients.next_if(|(at, _)| *at == index).map(|(_, tx)| tx)
}
