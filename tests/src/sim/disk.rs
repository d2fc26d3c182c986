//! A simulated disk: what a node's storage worker does, with writes that become durable only when
//! their (simulated) fsync completes. A crash loses the writes still in flight — except that a
//! random prefix of them may have reached the platter anyway, as on a real disk.

use std::collections::VecDeque;

use raftor::core::HardState;
use raftor::driver::{merge_appends, StorageOp};
use raftor::{Entry, LogId};

use crate::rng::TestRng;

/// A durable write completed; what the storage worker reports to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskDone {
    /// Term and vote are durable.
    HardStateSaved,
    /// `appends` appends are durable, the last ending at `up_to`.
    LogPersisted {
        /// The last durable entry.
        up_to: LogId,
        /// How many appends the write stood for.
        appends: u64,
    },
}

/// One node's disk. The durable part survives crashes.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    /// Durable term and vote.
    pub hard_state: HardState,
    /// Durable log, from index 1.
    pub log: Vec<Entry>,
    /// Writes handed to the storage worker and not started yet.
    queue: VecDeque<StorageOp>,
    /// The batch being written: merged ops, the front one completing next.
    batch: VecDeque<(StorageOp, u64)>,
    /// A completion event is scheduled.
    pub busy: bool,
    /// Writes take a slow disk's time (a fault).
    pub slow: bool,
}

impl Disk {
    /// A disk holding `log` (the bootstrap entry).
    pub fn with_log(log: Vec<Entry>) -> Disk {
        Disk {
            log,
            ..Disk::default()
        }
    }

    /// Hands a write to the storage worker.
    pub fn submit(&mut self, op: StorageOp) {
        self.queue.push_back(op);
    }

    /// Whether writes are waiting or in progress.
    pub fn has_work(&self) -> bool {
        !self.queue.is_empty() || !self.batch.is_empty()
    }

    /// How long the next write takes, in microseconds.
    pub fn latency(&self, rng: &mut TestRng) -> u64 {
        if self.slow {
            20_000 + rng.below(80_000)
        } else {
            100 + rng.below(1_900)
        }
    }

    /// Completes the next write: it is durable now. Like the real storage worker, appends that
    /// queued up while the previous write ran are merged into one write (group commit).
    pub fn complete_next(&mut self) -> Option<DiskDone> {
        if self.batch.is_empty() {
            let queued: Vec<StorageOp> = self.queue.drain(..).collect();
            self.batch = merge_appends(queued).into();
        }
        let (op, appends) = self.batch.pop_front()?;
        let done = match &op {
            StorageOp::SaveHardState(_) => Some(DiskDone::HardStateSaved),
            StorageOp::Truncate(_) => None,
            StorageOp::Append(entries) => entries.last().map(|entry| DiskDone::LogPersisted {
                up_to: entry.log_id,
                appends,
            }),
        };
        self.make_durable(op);
        done
    }

    /// The node crashed: writes in flight are lost, except a random prefix of them (possibly a
    /// torn prefix of an append) that the disk had already written.
    pub fn crash(&mut self, rng: &mut TestRng) {
        let mut pending: Vec<StorageOp> = self.batch.drain(..).map(|(op, _)| op).collect();
        pending.extend(self.queue.drain(..));
        self.busy = false;
        if pending.is_empty() || rng.per_mille(500) {
            return;
        }
        let survivors = rng.below(pending.len() as u64 + 1) as usize;
        for (position, op) in pending.into_iter().take(survivors).enumerate() {
            let op = match op {
                StorageOp::Append(mut entries) if position + 1 == survivors => {
                    let kept = 1 + rng.below(entries.len() as u64) as usize;
                    entries.truncate(kept);
                    StorageOp::Append(entries)
                }
                other => other,
            };
            self.make_durable(op);
        }
    }

    fn make_durable(&mut self, op: StorageOp) {
        match op {
            StorageOp::SaveHardState(hard_state) => self.hard_state = hard_state,
            StorageOp::Truncate(from) => self.log.truncate(from.0.saturating_sub(1) as usize),
            StorageOp::Append(entries) => {
                if let Some(first) = entries.first() {
                    assert_eq!(
                        first.log_id.index.0,
                        self.log.len() as u64 + 1,
                        "storage ops out of order: append at {} onto a log of {}",
                        first.log_id,
                        self.log.len()
                    );
                }
                self.log.extend(entries);
            }
        }
    }
}
