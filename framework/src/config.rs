//! Tuning knobs, with defaults that suit a LAN cluster. The protocol core counts time in ticks;
//! the node actor turns ticks into wall-clock time with `tick_interval`.

use std::time::Duration;

use thiserror::Error;

/// Configuration of one node. Build with `Config { ..Default::default() }` and call
/// [`Config::validate`] before use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Wall-clock length of one tick (used by the actor, not the core).
    pub tick_interval: Duration,
    /// Lower bound (inclusive) of the randomized election timeout, in ticks (§5.2).
    pub election_timeout_min_ticks: u64,
    /// Upper bound (exclusive) of the randomized election timeout, in ticks.
    pub election_timeout_max_ticks: u64,
    /// How often a leader sends heartbeats, in ticks. Must be well below the election timeout.
    pub heartbeat_interval_ticks: u64,
    /// Run a pre-vote round before a real election, so a node that rejoins after a partition does
    /// not raise the cluster's term and depose a healthy leader (thesis §9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout steps down, and a
    /// follower that heard from a live leader within the minimum election timeout ignores
    /// (pre-)vote requests (thesis §6.2, §9.6).
    pub check_quorum: bool,
    /// Most entries carried by one AppendEntries message.
    pub max_entries_per_message: u64,
    /// Most payload bytes in one AppendEntries message (a single larger entry still goes alone).
    pub max_payload_bytes_per_message: u64,
    /// Most unacknowledged AppendEntries messages in flight to one follower.
    pub max_inflight_messages: u64,
    /// Most unacknowledged payload bytes in flight to one follower.
    pub max_inflight_bytes: u64,
    /// Whether a message that is not full may go to a follower while another is in flight to it.
    /// Off (the default), writes that arrive while a message is in flight wait for its answer
    /// and then go together: fewer, larger messages, which is where throughput comes from
    /// (Nagle's rule). Full messages (`max_entries_per_message` entries or
    /// `max_payload_bytes_per_message` bytes) pipeline up to `max_inflight_messages` either way.
    /// On, every batch goes at once: up to one round trip less latency under moderate load on a
    /// slow link (a WAN), for many more messages.
    pub pipeline_partial_messages: bool,
    /// Lease reads end this many ticks before the lease's theoretical end
    /// (`election_timeout_min_ticks` after a confirmed round began): the allowance for clocks
    /// ticking at different rates. Must be below `election_timeout_min_ticks`.
    pub lease_drift_margin_ticks: u64,
    /// How long an outgoing RPC may take before it counts as lost (node actor only).
    pub rpc_timeout: Duration,
    /// How long `client_write` waits for an answer before it returns `Timeout` (the node keeps
    /// the deadline of every write waiting on it, with one timer for all).
    pub client_timeout: Duration,
    /// A write on a follower is forwarded to the leader (on by default); off, the caller gets
    /// `NotLeader { leader }` and retries there itself.
    pub forward_writes: bool,
    /// Take a snapshot once this many entries were applied since the latest one (log compaction,
    /// §7). 0, the default, never compacts: the log then grows with every write. The state
    /// machine must implement `snapshot` and `restore`.
    pub snapshot_threshold_entries: u64,
    /// Also take a snapshot once the entries applied since the latest one hold this many payload
    /// bytes. 0, the default, has no byte trigger. Set both and the first reached wins: the entry
    /// count paces snapshots, the bytes bound the memory and disk the log holds between two when
    /// entries are large (the core keeps the log since the latest snapshot in memory).
    pub snapshot_threshold_bytes: u64,
    /// After a snapshot, keep this many entries before its last included one in the log, so a
    /// follower slightly behind still gets entries instead of the whole snapshot.
    pub snapshot_keep_tail_entries: u64,
    /// Most snapshot bytes carried by one InstallSnapshot message.
    pub snapshot_chunk_bytes: u64,
    /// A snapshot chunk unanswered for this many ticks is sent again (from the last offset the
    /// follower acknowledged). Checked at heartbeats.
    pub snapshot_chunk_timeout_ticks: u64,
    /// Seed for the election timer's randomness; `None` picks one per start. Set it for
    /// reproducible tests.
    pub seed: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tick_interval: Duration::from_millis(10),
            election_timeout_min_ticks: 15,
            election_timeout_max_ticks: 30,
            heartbeat_interval_ticks: 5,
            pre_vote: true,
            check_quorum: true,
            max_entries_per_message: 1024,
            max_payload_bytes_per_message: 1 << 20,
            max_inflight_messages: 64,
            max_inflight_bytes: 16 << 20,
            pipeline_partial_messages: false,
            lease_drift_margin_ticks: 3,
            rpc_timeout: Duration::from_millis(500),
            client_timeout: Duration::from_secs(5),
            forward_writes: true,
            snapshot_threshold_entries: 0,
            snapshot_threshold_bytes: 0,
            snapshot_keep_tail_entries: 1024,
            snapshot_chunk_bytes: 1 << 20,
            snapshot_chunk_timeout_ticks: 10,
            seed: None,
        }
    }
}

/// Why a [`Config`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// `tick_interval` is zero.
    #[error("tick_interval must be greater than zero")]
    ZeroTick,
    /// `rpc_timeout` or `client_timeout` is zero.
    #[error("rpc_timeout and client_timeout must be greater than zero")]
    ZeroTimeout,
    /// The election timeout range is empty or starts at zero.
    #[error("election timeout range [{min}, {max}) ticks is empty or starts at zero")]
    ElectionTimeoutRange {
        /// The configured lower bound.
        min: u64,
        /// The configured upper bound.
        max: u64,
    },
    /// Heartbeats are not frequent enough to keep followers from timing out.
    #[error("heartbeat_interval_ticks {heartbeat} must be at least 1 and below election_timeout_min_ticks {min}")]
    HeartbeatInterval {
        /// The configured heartbeat interval.
        heartbeat: u64,
        /// The configured minimum election timeout.
        min: u64,
    },
    /// The lease drift margin leaves no lease.
    #[error("lease_drift_margin_ticks {margin} must be below election_timeout_min_ticks {min}")]
    LeaseMargin {
        /// The configured margin.
        margin: u64,
        /// The configured minimum election timeout.
        min: u64,
    },
    /// A per-message or in-flight limit is zero, which would stop replication.
    #[error("{name} must be greater than zero")]
    ZeroLimit {
        /// The offending field.
        name: &'static str,
    },
}

impl Config {
    /// Checks the values fit together and returns the config unchanged if they do.
    pub fn validate(self) -> Result<Config, ConfigError> {
        if self.tick_interval.is_zero() {
            return Err(ConfigError::ZeroTick);
        }
        if self.rpc_timeout.is_zero() || self.client_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        let (min, max) = (
            self.election_timeout_min_ticks,
            self.election_timeout_max_ticks,
        );
        if min == 0 || max <= min {
            return Err(ConfigError::ElectionTimeoutRange { min, max });
        }
        let heartbeat = self.heartbeat_interval_ticks;
        if heartbeat == 0 || heartbeat >= min {
            return Err(ConfigError::HeartbeatInterval { heartbeat, min });
        }
        if self.lease_drift_margin_ticks >= min {
            return Err(ConfigError::LeaseMargin {
                margin: self.lease_drift_margin_ticks,
                min,
            });
        }
        for (name, value) in [
            ("max_entries_per_message", self.max_entries_per_message),
            (
                "max_payload_bytes_per_message",
                self.max_payload_bytes_per_message,
            ),
            ("max_inflight_messages", self.max_inflight_messages),
            ("max_inflight_bytes", self.max_inflight_bytes),
            ("snapshot_chunk_bytes", self.snapshot_chunk_bytes),
            (
                "snapshot_chunk_timeout_ticks",
                self.snapshot_chunk_timeout_ticks,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroLimit { name });
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn empty_election_range_is_refused() {
        let config = Config {
            election_timeout_max_ticks: 15,
            ..Default::default()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::ElectionTimeoutRange { min: 15, max: 15 })
        );
    }

    #[test]
    fn heartbeat_must_be_below_election_timeout() {
        let config = Config {
            heartbeat_interval_ticks: 15,
            ..Default::default()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::HeartbeatInterval {
                heartbeat: 15,
                min: 15
            })
        );
    }

    #[test]
    fn zero_limits_are_refused() {
        let config = Config {
            max_inflight_bytes: 0,
            ..Default::default()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::ZeroLimit {
                name: "max_inflight_bytes"
            })
        );
    }
}
