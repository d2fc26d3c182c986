//! A simulated disk: what a node's storage worker does, with writes that become durable only when
//! their (simulated) fsync completes. A crash loses the writes still in flight — except that a
//! random prefix of them may have reached the platter anyway, as on a real disk — and the
//! partial snapshot being received (it is volatile until installed).
//!
//! The log starts after `base` (a purge or a received snapshot moved it); the latest durable
//! snapshot sits beside it.

use std::collections::VecDeque;

use raftor::core::HardState;
use raftor::driver::{merge_appends, StorageOp};
use raftor::types::SnapshotMeta;
use raftor::{Entry, LogId, LogIndex};

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
    /// A received snapshot is durable and the log reset to end at it.
    SnapshotInstalled(LogId),
}

/// One node's disk. The durable part survives crashes.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    /// Durable term and vote.
    pub hard_state: HardState,
    /// Durable log, from `base + 1`.
    pub log: Vec<Entry>,
    /// The entry before the log's first: purged, or the last one a received snapshot covers.
    pub base: LogId,
    /// The latest durable snapshot: its metadata and data.
    pub snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    /// The snapshot being received (volatile).
    pub partial: Option<(SnapshotMeta, Vec<u8>)>,
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

    /// The last durable entry's id (the base if the log is empty).
    pub fn last_log_id(&self) -> LogId {
        self.log.last().map_or(self.base, |entry| entry.log_id)
    }

    /// Whether `entry` is durable here: in the log, or covered by the durable snapshot (which
    /// only ever covers committed entries, and `entry` is one).
    pub fn holds(&self, entry: &Entry) -> bool {
        let index = entry.log_id.index;
        if index <= self.base.index {
            return self
                .snapshot
                .as_ref()
                .is_some_and(|(meta, _)| meta.last_included.index >= index);
        }
        self.log.get(self.position(index)) == Some(entry)
    }

    /// Stores a snapshot this node built, unless a newer one is already there.
    pub fn save_snapshot(&mut self, meta: SnapshotMeta, data: Vec<u8>) {
        let newer_held = self
            .snapshot
            .as_ref()
            .is_some_and(|(held, _)| held.last_included.index > meta.last_included.index);
        if !newer_held {
            self.snapshot = Some((meta, data));
        }
    }

    /// Where `index` sits in `log`.
    fn position(&self, index: LogIndex) -> usize {
        index.0.saturating_sub(self.base.index.0 + 1) as usize
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
            StorageOp::Truncate(_) | StorageOp::Purge(_) | StorageOp::SnapshotChunk { .. } => None,
            StorageOp::InstallSnapshot(meta) => {
                Some(DiskDone::SnapshotInstalled(meta.last_included))
            }
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
            self.partial = None;
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
        // A partial snapshot is volatile: only an install that reached the disk keeps it.
        self.partial = None;
    }

    fn make_durable(&mut self, op: StorageOp) {
        match op {
            StorageOp::SaveHardState(hard_state) => self.hard_state = hard_state,
            StorageOp::Truncate(from) => {
                assert!(
                    from > self.base.index,
                    "truncate from {from} at or below the base"
                );
                let keep = self.position(from);
                self.log.truncate(keep);
            }
            StorageOp::Append(entries) => {
                if let Some(first) = entries.first() {
                    assert_eq!(
                        first.log_id.index,
                        self.last_log_id().index.next(),
                        "storage ops out of order: append at {} onto a log ending at {}",
                        first.log_id,
                        self.last_log_id()
                    );
                }
                self.log.extend(entries);
            }
            StorageOp::Purge(up_to) => self.purge(up_to),
            StorageOp::SnapshotChunk { meta, offset, data } => {
                self.write_partial(meta, offset, data)
            }
            StorageOp::InstallSnapshot(meta) => self.install(meta),
        }
    }

    fn purge(&mut self, up_to: LogIndex) {
        let up_to = up_to.min(self.last_log_id().index);
        if up_to <= self.base.index {
            return;
        }
        let drop = self.position(up_to) + 1;
        self.base = self.log[drop - 1].log_id;
        self.log.drain(..drop);
    }

    fn write_partial(&mut self, meta: SnapshotMeta, offset: u64, data: Vec<u8>) {
        if offset == 0 {
            self.partial = Some((meta.clone(), Vec::new()));
        }
        let Some((partial, bytes)) = self.partial.as_mut() else {
            panic!("snapshot chunk at {offset} with no partial snapshot");
        };
        assert!(
            *partial == meta && bytes.len() as u64 == offset,
            "snapshot chunk at {offset} does not continue the partial snapshot"
        );
        bytes.extend(data);
    }

    fn install(&mut self, meta: SnapshotMeta) {
        let Some((partial, bytes)) = self.partial.take() else {
            panic!("installing {} with no partial snapshot", meta.last_included);
        };
        assert!(
            partial == meta && bytes.len() as u64 == meta.size_bytes,
            "installing {} from an incomplete partial snapshot",
            meta.last_included
        );
        self.base = meta.last_included;
        self.log.clear();
        self.snapshot = Some((meta, bytes));
    }
}
