//! The simulated network: what is in flight between nodes (and between clients and nodes), and
//! the weather it travels through — delay, loss, duplication, reordering (by unequal delays), and
//! links cut both ways or one way.

use std::collections::BTreeSet;
use std::sync::Arc;

use raftor::message::{Request, Response};
use raftor::{NodeId, ProposeError};

use crate::rng::TestRng;

use super::kv::KvResponse;

/// A message on the simulated network.
#[derive(Debug, Clone)]
pub enum Message {
    /// An RPC request from a node to a peer.
    Request {
        /// The sender.
        from: NodeId,
        /// The sender's incarnation: a response to an earlier one is not delivered.
        from_incarnation: u64,
        /// The recipient.
        to: NodeId,
        /// When it was sent: a response later than the RPC timeout is not delivered.
        sent_at: u64,
        /// The request.
        request: Request,
    },
    /// The answer to a [`Message::Request`].
    Response {
        /// The responder.
        from: NodeId,
        /// The requester.
        to: NodeId,
        /// The requester's incarnation when it sent the request.
        to_incarnation: u64,
        /// When the request was sent.
        sent_at: u64,
        /// The response.
        response: Response,
    },
    /// A client's command to a node.
    ClientRequest {
        /// The client.
        client: usize,
        /// The client's attempt it belongs to.
        attempt: u64,
        /// The node.
        to: NodeId,
        /// The encoded command.
        command: Arc<[u8]>,
    },
    /// A node's answer to a client.
    ClientReply {
        /// The client.
        client: usize,
        /// The client's attempt it answers.
        attempt: u64,
        /// The answer.
        result: Result<KvResponse, ProposeError>,
    },
}

/// How the network behaves at the moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weather {
    /// Messages lost, per mille.
    pub loss_per_mille: u64,
    /// Messages delivered twice, per mille.
    pub duplicate_per_mille: u64,
    /// Shortest one-way delay, microseconds.
    pub delay_min_us: u64,
    /// Longest ordinary one-way delay, microseconds.
    pub delay_max_us: u64,
    /// Messages held back much longer (reordered behind later ones), per mille.
    pub long_delay_per_mille: u64,
    /// Longest such delay, microseconds.
    pub long_delay_max_us: u64,
}

impl Weather {
    /// A healthy LAN: no loss, sub-millisecond to a few milliseconds of delay.
    pub fn calm() -> Weather {
        Weather {
            loss_per_mille: 0,
            duplicate_per_mille: 0,
            delay_min_us: 100,
            delay_max_us: 3_000,
            long_delay_per_mille: 0,
            long_delay_max_us: 0,
        }
    }

    /// Random bad weather.
    pub fn random(rng: &mut TestRng) -> Weather {
        Weather {
            loss_per_mille: [0, 10, 50, 150, 300][rng.below(5) as usize],
            duplicate_per_mille: [0, 10, 50][rng.below(3) as usize],
            delay_min_us: 50 + rng.below(500),
            delay_max_us: 1_000 + rng.below(20_000),
            long_delay_per_mille: [0, 20, 100][rng.below(3) as usize],
            long_delay_max_us: 50_000 + rng.below(400_000),
        }
    }
}

/// The links and the weather.
#[derive(Debug, Clone)]
pub struct Network {
    /// The weather now.
    pub weather: Weather,
    /// Directed links `(from, to)` that lose every message (checked on delivery).
    blocked: BTreeSet<(NodeId, NodeId)>,
}

impl Network {
    /// A calm network with every link up.
    pub fn new() -> Network {
        Network {
            weather: Weather::calm(),
            blocked: BTreeSet::new(),
        }
    }

    /// The delivery delays of one message sent now: none if it is lost, two if duplicated.
    /// NB: client requests are never duplicated: raftor has no client sessions to deduplicate
    /// them (a duplicated request is two commands), and its transports do not duplicate.
    pub fn delays(&self, rng: &mut TestRng, may_duplicate: bool) -> Vec<u64> {
        let weather = self.weather;
        if rng.per_mille(weather.loss_per_mille) {
            return Vec::new();
        }
        let copies = if may_duplicate && rng.per_mille(weather.duplicate_per_mille) {
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| {
                if rng.per_mille(weather.long_delay_per_mille) {
                    weather.delay_max_us + rng.below(weather.long_delay_max_us.max(1))
                } else {
                    weather.delay_min_us
                        + rng.below(weather.delay_max_us.saturating_sub(weather.delay_min_us) + 1)
                }
            })
            .collect()
    }

    /// Whether messages from `from` to `to` are lost.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// Cuts every link between nodes of different groups, both ways.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        for (a_group, a) in groups.iter().enumerate() {
            for (b_group, b) in groups.iter().enumerate() {
                if a_group != b_group {
                    for from in a {
                        for to in b {
                            self.blocked.insert((*from, *to));
                        }
                    }
                }
            }
        }
    }

    /// Cuts the link from `from` to `to` only.
    pub fn block(&mut self, from: NodeId, to: NodeId) {
        self.blocked.insert((from, to));
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// A short description of the cut links, for the trace.
    pub fn describe_cuts(&self) -> String {
        self.blocked
            .iter()
            .map(|(from, to)| format!("{from}->{to}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Default for Network {
    fn default() -> Self {
        Network::new()
    }
}
