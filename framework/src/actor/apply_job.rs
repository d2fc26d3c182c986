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
//!
//! The batch races its clients' earliest deadline: a state machine still applying when it passes
//! has every client of the batch answered `Timeout` (the batch is still applied to its end). The
//! race costs no timer when the apply finishes at its first poll, as an in-memory one does.

use std::future::Future;

use tracing::warn;

use crate::error::{ClientWriteError, Fatal};
use crate::state_machine::{StateMachine, StateMachineError};
use crate::types::{EntryPayload, LogIndex};

use super::deadlines::WriteWaiter;
use super::workers::ApplyJob;

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
    let deadline = clients.iter().map(|(_, waiter)| waiter.deadline()).min();
    let apply = apply_commands(state_machine, commands);
    let outcome = within_deadline(apply, deadline, &mut clients).await;
    let mut clients = clients.into_iter().peekable();
    let mut unmatched = 0;
    let result = match outcome {
        Ok(answered) => {
            for (index, response) in answered {
                if let Some(waiter) = take_client(&mut clients, index, &mut unmatched) {
                    waiter.answer(Ok(response));
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

/// Runs `apply` to its end; if `deadline` passes first, answers every client `Timeout` at that
/// moment (leaving `clients` empty) and goes on.
async fn within_deadline<T, R>(
    apply: impl Future<Output = T>,
    deadline: Option<tokio::time::Instant>,
    clients: &mut Vec<(LogIndex, WriteWaiter<R>)>,
) -> T {
    let Some(deadline) = deadline else {
        return apply.await;
    };
    let mut apply = std::pin::pin!(apply);
    match tokio::time::timeout_at(deadline, apply.as_mut()).await {
        Ok(done) => done,
        Err(_) => {
            for (_, waiter) in clients.drain(..) {
                waiter.answer(Err(ClientWriteError::Timeout));
            }
            apply.await
        }
    }
}

/// Tells every remaining client the node failed.
fn fail_clients<R>(clients: impl Iterator<Item = (LogIndex, WriteWaiter<R>)>, fatal: &Fatal) {
    for (_, waiter) in clients {
        waiter.answer(Err(ClientWriteError::Fatal(fatal.clone())));
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
