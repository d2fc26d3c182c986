//! The client writes' way into a node: a queue the actor drains, so that a burst of writes costs
//! the actor one message, one executor call and one batch of effects, not one of each per write.
//!
//! ```text
//!  Raft::client_write ─► WriteQueue::push ─► channel ──────────────┐
//!                           └─ first since the last drain? ─► DrainWrites ─► NodeActor
//!                                                                     └─ WriteInbox::drain ◄┘
//! ```
//!
//! `scheduled` says a `DrainWrites` is on its way. A writer pushes and sets it under the queue's
//! lock; only the one that found it clear sends the message. The actor clears it under the same
//! lock as it takes the queued writes, so a write pushed after that either finds the flag clear
//! and schedules another drain or was taken: none is left waiting.
//!
//! The queue is a `Vec` behind a `Mutex`, not a channel: a push is one uncontended lock and a
//! `Vec::push`, and a drain swaps the whole `Vec` for the inbox's empty spare, so the two buffers
//! take turns and a steady stream of writes allocates nothing. (tokio's unbounded channel, used
//! before, cost a slot write, two atomic counters and a wake-up attempt per write, about 5% of a
//! write's instructions; the lock is held for a push or a swap, never across anything else.)

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::messages::ClientWrite;

/// What the handles and the actor share.
struct Queue<R> {
    writes: Vec<ClientWrite<R>>,
    /// A `DrainWrites` is on its way.
    scheduled: bool,
    /// The actor is gone: writes are refused.
    closed: bool,
}

type Shared<R> = Arc<Mutex<Queue<R>>>;

/// Locks the queue. Nothing panics while holding the lock (a push, a swap), so a poisoned lock
/// still guards a consistent queue.
fn lock<R>(shared: &Shared<R>) -> MutexGuard<'_, Queue<R>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The handle's side: where client writes go.
pub(crate) struct WriteQueue<R> {
    shared: Shared<R>,
}

/// The actor's side: what it drains.
pub(crate) struct WriteInbox<R> {
    shared: Shared<R>,
    /// The buffer the next drain swaps in: empty, with the capacity of an earlier burst.
    spare: Vec<ClientWrite<R>>,
}

/// A queue for client writes, and its inbox.
pub(crate) fn write_queue<R>() -> (WriteQueue<R>, WriteInbox<R>) {
    let shared = Arc::new(Mutex::new(Queue {
        writes: Vec::new(),
        scheduled: false,
        closed: false,
    }));
    let queue = WriteQueue {
        shared: Arc::clone(&shared),
    };
    let inbox = WriteInbox {
        shared,
        spare: Vec::new(),
    };
    (queue, inbox)
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
        let mut queue = lock(&self.shared);
        if queue.closed {
            return Pushed::Closed;
        }
        queue.writes.push(write);
        if std::mem::replace(&mut queue.scheduled, true) {
            Pushed::Queued
        } else {
            Pushed::Schedule
        }
    }
}

impl<R> WriteInbox<R> {
    /// Every write queued so far, oldest first.
    pub fn drain(&mut self) -> std::vec::Drain<'_, ClientWrite<R>> {
        {
            let mut queue = lock(&self.shared);
            queue.scheduled = false;
            std::mem::swap(&mut queue.writes, &mut self.spare);
        }
        self.spare.drain(..)
    }
}

/// The actor is gone: later pushes are refused, and the writes still queued are dropped (their
/// clients see their answer channels close).
impl<R> Drop for WriteInbox<R> {
    fn drop(&mut self) {
        let queued = {
            let mut queue = lock(&self.shared);
            queue.closed = true;
            std::mem::take(&mut queue.writes)
        };
        drop(queued);
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
        let drained: Vec<u8> = inbox.drain().map(|w| w.command[0]).collect();
        assert_eq!(drained, vec![1, 2]);
        assert!(
            matches!(queue.push(write(3)), Pushed::Schedule),
            "after a drain the next write schedules again"
        );
        assert_eq!(inbox.drain().len(), 1);
        assert_eq!(inbox.drain().len(), 0, "a spare drain finds nothing");
    }

    #[test]
    fn a_write_to_a_gone_actor_comes_back() {
        let (queue, inbox) = write_queue();
        drop(inbox);
        assert!(matches!(queue.push(write(7)), Pushed::Closed));
    }

    #[test]
    fn writes_queued_when_the_actor_goes_are_dropped() {
        let (queue, inbox) = write_queue::<()>();
        let (tx, mut rx) = oneshot::channel();
        let queued = ClientWrite {
            command: Arc::from(vec![1]),
            waiter: WriteWaiter::new(tx, tokio::time::Instant::now()),
        };
        assert!(matches!(queue.push(queued), Pushed::Schedule));
        drop(inbox);
        assert!(rx.try_recv().is_err(), "its client sees the channel closed");
    }

    #[test]
    fn drains_take_turns_with_two_buffers() {
        let (queue, mut inbox) = write_queue();
        for byte in 0..3 {
            let _ = queue.push(write(byte));
        }
        assert_eq!(inbox.drain().len(), 3);
        let _ = queue.push(write(3));
        let drained: Vec<u8> = inbox.drain().map(|w| w.command[0]).collect();
        assert_eq!(drained, vec![3], "each write is drained once, in order");
    }
}
