//! The client writes' way into a node: a queue the actor drains, so that a burst of writes costs
//! the actor one message, one executor call and one batch of effects, not one of each per write.
//!
//! ```text
//!  Raft::client_write ─► WriteQueue::push ─► channel ──────────────┐
//!                           └─ first since the last drain? ─► DrainWrites ─► NodeActor
//!                                                                     └─ WriteInbox::drain ◄┘
//! ```
//!
//! `scheduled` says a `DrainWrites` is on its way. A writer pushes, then sets it; only the one
//! that found it clear sends the message. The actor clears it *before* draining, so a write pushed
//! after the drain began either is drained now or finds the flag clear and schedules another
//! drain: none is left waiting. Both sides swap the flag (acquire-release), so a writer that saw it
//! set has its push visible to the drain that cleared it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::messages::ClientWrite;

/// The handle's side: where client writes go.
pub(crate) struct WriteQueue<R> {
    tx: mpsc::UnboundedSender<ClientWrite<R>>,
    scheduled: Arc<AtomicBool>,
}

/// The actor's side: what it drains.
pub(crate) struct WriteInbox<R> {
    rx: mpsc::UnboundedReceiver<ClientWrite<R>>,
    scheduled: Arc<AtomicBool>,
}

/// A queue for client writes, and its inbox.
pub(crate) fn write_queue<R>() -> (WriteQueue<R>, WriteInbox<R>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let scheduled = Arc::new(AtomicBool::new(false));
    let queue = WriteQueue {
        tx,
        scheduled: Arc::clone(&scheduled),
    };
    (queue, WriteInbox { rx, scheduled })
}

/// What a push asks of the caller.
pub(crate) enum Pushed {
    /// Queued; a drain is already on its way.
    Queued,
    /// Queued; the caller must send the actor a `DrainWrites`.
    Schedule,
    /// The actor is gone: the write was dropped (its client sees its answer channel closed).
    Closed,
}

impl<R> WriteQueue<R> {
    /// Queues a write.
    pub fn push(&self, write: ClientWrite<R>) -> Pushed {
        if self.tx.send(write).is_err() {
            return Pushed::Closed;
        }
        if self.scheduled.swap(true, Ordering::AcqRel) {
            Pushed::Queued
        } else {
            Pushed::Schedule
        }
    }
}

impl<R> WriteInbox<R> {
    /// Every write queued so far, oldest first.
    pub fn drain(&mut self) -> Vec<ClientWrite<R>> {
        self.scheduled.swap(false, Ordering::AcqRel);
        let mut writes = Vec::with_capacity(self.rx.len());
        while let Ok(write) = self.rx.try_recv() {
            writes.push(write);
        }
        writes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::deadlines::WriteWaiter;
    use tokio::sync::oneshot;

    fn write(byte: u8) -> ClientWrite<()> {
        let (tx, _rx) = oneshot::channel();
        ClientWrite {
            command: Arc::from(vec![byte]),
            waiter: WriteWaiter::new(tx, tokio::time::Instant::now()),
        }
    }

    #[test]
    fn one_drain_is_scheduled_per_burst() {
        let (queue, mut inbox) = write_queue();
        assert!(matches!(queue.push(write(1)), Pushed::Schedule));
        assert!(matches!(queue.push(write(2)), Pushed::Queued));
        let drained: Vec<u8> = inbox.drain().iter().map(|w| w.command[0]).collect();
        assert_eq!(drained, vec![1, 2]);
        assert!(
            matches!(queue.push(write(3)), Pushed::Schedule),
            "after a drain the next write schedules again"
        );
        assert_eq!(inbox.drain().len(), 1);
        assert!(inbox.drain().is_empty(), "a spare drain finds nothing");
    }

    #[test]
    fn a_write_to_a_gone_actor_comes_back() {
        let (queue, inbox) = write_queue();
        drop(inbox);
        assert!(matches!(queue.push(write(7)), Pushed::Closed));
    }
}
