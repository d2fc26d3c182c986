//! What a leader knows about one follower's log, and how it paces replication to it.
//!
//! A follower starts in `Probe`: the leader sends one message at a time (and at most one per
//! heartbeat interval) until it finds where the logs agree. Then it switches to `Replicate` and
//! pipelines: several messages in flight, bounded by a message count and a byte budget.

use std::collections::VecDeque;

use crate::config::Config;
use crate::types::{LogIndex, SnapshotMeta};

/// How the leader currently paces messages to a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    /// Searching for the point where the logs agree; one message at a time.
    Probe {
        /// A probe is in flight and unanswered; nothing more is sent until a response or the
        /// next heartbeat.
        paused: bool,
    },
    /// Logs agree up to `match_index`; messages are pipelined within the in-flight window.
    Replicate,
    /// The entries the follower needs next were compacted: it is sent a snapshot, one chunk at
    /// a time (`Progress::transfer`), then replication resumes after it (§7).
    Snapshot,
}

/// A snapshot being sent to one follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotTransfer {
    /// The snapshot being sent.
    pub meta: SnapshotMeta,
    /// The offset of the next chunk: everything before it was acknowledged.
    pub offset: u64,
    /// The leader tick at which the unanswered chunk at `offset` was sent, if one is in flight.
    pub sent_at_tick: Option<u64>,
    /// Chunks in a row that went unanswered: after a few, the transfer moves to the latest
    /// snapshot (the driver may no longer hold this one).
    pub timeouts: u32,
}

/// One AppendEntries message sent and not yet acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Inflight {
    /// The last index the message carried.
    last_index: LogIndex,
    /// Its payload bytes.
    bytes: u64,
    /// The leader tick at which it was sent, to spot a message lost in the network.
    sent_at_tick: u64,
}

/// The leader's record of one follower (§5.3, Figure 2 "volatile state on leaders").
#[derive(Debug, Clone)]
pub struct Progress {
    /// Highest index known to be replicated and durable on the follower.
    /// Invariant: `match_index < next_index`, never decreases within a term.
    pub match_index: LogIndex,
    /// The next index to send.
    pub next_index: LogIndex,
    /// Probe or replicate.
    pub state: ProgressState,
    /// The follower answered since the last CheckQuorum round.
    pub recent_active: bool,
    /// Unacknowledged messages, oldest first (only in `Replicate`).
    inflight: VecDeque<Inflight>,
    /// The probe in flight (only in `Probe`): kept so that switching to `Replicate` counts it as
    /// in flight instead of sending its entries again.
    probe: Option<Inflight>,
    /// Sum of `inflight` bytes.
    inflight_bytes: u64,
    /// The snapshot being sent. Invariant: `Some` exactly in `Snapshot`.
    pub transfer: Option<SnapshotTransfer>,
}

impl Progress {
    /// A follower whose log is unknown: probe from `next_index`.
    pub fn new(next_index: LogIndex) -> Progress {
        Progress {
            match_index: LogIndex(0),
            next_index,
            state: ProgressState::Probe { paused: false },
            recent_active: false,
            inflight: VecDeque::new(),
            probe: None,
            inflight_bytes: 0,
            transfer: None,
        }
    }

    /// Start sending `meta` from its first byte, forgetting any entries in flight.
    pub fn become_snapshot(&mut self, meta: SnapshotMeta) {
        self.state = ProgressState::Snapshot;
        self.clear_inflight();
        self.transfer = Some(SnapshotTransfer {
            meta,
            offset: 0,
            sent_at_tick: None,
            timeouts: 0,
        });
    }

    /// Go back to probing from `next_index`, forgetting what is in flight.
    pub fn become_probe(&mut self, next_index: LogIndex) {
        self.next_index = next_index.max(self.match_index.next());
        self.state = ProgressState::Probe { paused: false };
        self.clear_inflight();
        self.transfer = None;
    }

    /// Start pipelining right after `match_index`. A probe still in flight beyond it becomes the
    /// first in-flight message, so its entries are not sent twice.
    pub fn become_replicate(&mut self) {
        let probe = self.probe.take();
        self.next_index = self.match_index.next();
        self.state = ProgressState::Replicate;
        self.clear_inflight();
        self.transfer = None;
        if let Some(probe) = probe.filter(|probe| probe.last_index > self.match_index) {
            self.inflight.push_back(probe);
            self.inflight_bytes = probe.bytes;
            self.next_index = probe.last_index.next();
        }
    }

    /// Records an acknowledgement up to `match_index`. Returns whether it moved forward.
    pub fn acknowledge(&mut self, match_index: LogIndex) -> bool {
        if match_index <= self.match_index {
            return false;
        }
        self.match_index = match_index;
        self.next_index = self.next_index.max(match_index.next());
        while let Some(oldest) = self.inflight.front() {
            if oldest.last_index > match_index {
                break;
            }
            self.inflight_bytes -= oldest.bytes;
            self.inflight.pop_front();
        }
        true
    }

    /// Whether another message may be sent now.
    pub fn can_send(&self, config: &Config) -> bool {
        match self.state {
            ProgressState::Probe { paused } => !paused,
            ProgressState::Replicate => {
                (self.inflight.len() as u64) < config.max_inflight_messages
                    && self.inflight_bytes < config.max_inflight_bytes
            }
            ProgressState::Snapshot => self
                .transfer
                .as_ref()
                .is_some_and(|transfer| transfer.sent_at_tick.is_none()),
        }
    }

    /// Whether a message is in flight and unanswered (in `Replicate`).
    pub fn has_inflight(&self) -> bool {
        !self.inflight.is_empty()
    }

    /// Records a message carrying entries up to `last_index`.
    pub fn record_sent(&mut self, last_index: LogIndex, bytes: u64, now_tick: u64) {
        match self.state {
            ProgressState::Probe { .. } => {
                self.state = ProgressState::Probe { paused: true };
                self.probe = Some(Inflight {
                    last_index,
                    bytes,
                    sent_at_tick: now_tick,
                });
            }
            ProgressState::Replicate => {
                self.inflight.push_back(Inflight {
                    last_index,
                    bytes,
                    sent_at_tick: now_tick,
                });
                self.inflight_bytes += bytes;
                self.next_index = last_index.next();
            }
            ProgressState::Snapshot => {}
        }
    }

    /// Whether the oldest unacknowledged message has waited `timeout_ticks` or more: it or its
    /// answer was probably lost, and the leader should probe again.
    pub fn is_stalled(&self, now_tick: u64, timeout_ticks: u64) -> bool {
        self.inflight
            .front()
            .is_some_and(|oldest| now_tick.saturating_sub(oldest.sent_at_tick) >= timeout_ticks)
    }

    fn clear_inflight(&mut self) {
        self.inflight.clear();
        self.inflight_bytes = 0;
        self.probe = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_bounded_by_count_and_bytes() {
        let config = Config {
            max_inflight_messages: 2,
            max_inflight_bytes: 100,
            ..Default::default()
        };
        let mut progress = Progress::new(LogIndex(1));
        progress.become_replicate();
        progress.record_sent(LogIndex(1), 10, 0);
        assert!(progress.can_send(&config));
        progress.record_sent(LogIndex(2), 10, 0);
        assert!(
            !progress.can_send(&config),
            "two messages fill the count window"
        );
        progress.acknowledge(LogIndex(2));
        progress.record_sent(LogIndex(3), 100, 0);
        assert!(
            !progress.can_send(&config),
            "100 bytes fill the byte window"
        );
    }

    #[test]
    fn probe_sends_one_message_until_answered() {
        let config = Config::default();
        let mut progress = Progress::new(LogIndex(5));
        progress.record_sent(LogIndex(5), 0, 0);
        assert!(!progress.can_send(&config));
        assert_eq!(
            progress.next_index,
            LogIndex(5),
            "probing does not advance next_index"
        );
    }

    #[test]
    fn acknowledgement_frees_the_window_and_never_goes_back() {
        let mut progress = Progress::new(LogIndex(1));
        progress.become_replicate();
        progress.record_sent(LogIndex(3), 30, 0);
        assert!(progress.acknowledge(LogIndex(3)));
        assert!(!progress.acknowledge(LogIndex(2)));
        assert_eq!(progress.match_index, LogIndex(3));
        assert!(!progress.is_stalled(100, 10));
    }
}
