//! Client write deadlines, kept by the node instead of by a timer per write.
//!
//! ```text
//!  Raft::client_write ─► deadline = now + client_timeout ─► WriteWaiter (answer channel + deadline)
//!  NodeActor: drained writes ─► one timer, at the earliest deadline of the writes waiting
//!             timer fires ─► writes past their deadline answered `Timeout` ─► re-armed at the next
//!  committed ─► the waiter goes with its entry to the apply worker, which races each batch
//!               against its earliest deadline (apply_job.rs)
//! ```
//!
//! A timer per write (`tokio::time::timeout` around the wait) cost about 13% of the instructions
//! of a write: the timer wheel is entered when the wait begins and again when it ends. The node's
//! single timer is armed at the oldest waiting write's deadline; under load that write is answered
//! long before the timer fires, and the timer then moves to the oldest write still waiting, so it
//! fires about once per `client_timeout`. A write is answered by its deadline either way: the
//! timer fires at the earliest deadline, not after it. The one exception is a batch queued behind
//! an apply that does not return: the worker applies one batch at a time, so it waits its turn.

use actix::{AsyncContext, Context, SpawnHandle};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::ClientWriteError;
use crate::state_machine::StateMachine;

use super::node::NodeActor;

/// A client waiting on its write: where its answer goes, and when it must have one.
pub(crate) struct WriteWaiter<R> {
    tx: oneshot::Sender<Result<R, ClientWriteError>>,
    deadline: Instant,
}

impl<R> WriteWaiter<R> {
    pub fn new(tx: oneshot::Sender<Result<R, ClientWriteError>>, deadline: Instant) -> Self {
        WriteWaiter { tx, deadline }
    }

    /// Answers the client; one that gave up meanwhile is not told.
    pub fn answer(self, result: Result<R, ClientWriteError>) {
        let _ = self.tx.send(result);
    }

    /// When the client must be answered, `Timeout` if nothing else.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The client gave up (its future was dropped).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The node's one write timer: when it fires, and how to cancel it.
pub(super) struct WriteTimer {
    at: Instant,
    handle: SpawnHandle,
}

impl<SM: StateMachine> NodeActor<SM> {
    /// Makes sure the write timer fires by `deadline`, the deadline of a write now waiting.
    pub(super) fn watch_deadline(&mut self, deadline: Instant, ctx: &mut Context<Self>) {
        if let Some(timer) = &self.write_timer {
            if timer.at <= deadline {
                return;
            }
            ctx.cancel_future(timer.handle);
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(wait, |actor, ctx| actor.expire_writes(ctx));
        self.write_timer = Some(WriteTimer {
            at: deadline,
            handle,
        });
    }

    /// The write timer fired: answers the writes past their deadline with `Timeout`, and arms the
    /// timer for the earliest deadline still waiting.
    fn expire_writes(&mut self, ctx: &mut Context<Self>) {
        self.write_timer = None;
        let now = Instant::now();
        for waiter in self.executor.take_clients(|waiter| waiter.deadline <= now) {
            waiter.answer(Err(ClientWriteError::Timeout));
        }
        let next = self.executor.waiting_clients().map(|w| w.deadline).min();
        if let Some(next) = next {
            self.watch_deadline(next, ctx);
        }
    }
}
