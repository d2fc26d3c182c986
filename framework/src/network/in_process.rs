//! [`Router`]: an in-process network joining nodes in one process, with fault injection for
//! tests: isolate a node, partition into groups (also one-way), lose a fraction of requests and
//! of replies, delay each RPC within a range (which also reorders them), and count RPCs and bytes
//! per node (and, when asked, their encoded bytes).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::core::SeededRng;
use crate::message::{
    AppendEntriesRequest, AppendEntriesResponse, ForwardRequest, ForwardResponse,
    InstallSnapshotRequest, InstallSnapshotResponse, ReadIndexRequest, ReadIndexResponse,
    TimeoutNowRequest, TimeoutNowResponse, VoteRequest, VoteResponse,
};
use crate::types::NodeId;

use super::{Network, NetworkError, RaftRpc};

/// Unreliable-network settings. The default is a reliable, instant network.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Unreliable {
    /// Fraction of requests lost before reaching the peer.
    pub drop_requests: f64,
    /// Fraction of replies lost on the way back (the peer did handle the request).
    pub drop_replies: f64,
    /// Each RPC is delayed by a duration drawn from `[min, max]`.
    pub delay: (Duration, Duration),
    /// An RPC to an unreachable peer fails after a duration drawn from `[min, max]`.
    pub unreachable_delay: (Duration, Duration),
}

/// RPCs and bytes a node has sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RpcStats {
    /// Requests sent.
    pub rpcs: u64,
    /// Bincode-encoded bytes of the requests sent, counted only while
    /// [`Router::count_bytes`] is on (off by default: counting encodes every request, which
    /// the in-process network otherwise never does).
    pub bytes: u64,
}

struct State {
    nodes: BTreeMap<NodeId, Arc<dyn RaftRpc>>,
    /// Directed links `(from, to)` that lose everything.
    blocked: BTreeSet<(NodeId, NodeId)>,
    unreliable: Unreliable,
    stats: BTreeMap<NodeId, RpcStats>,
    rng: SeededRng,
}

impl Default for State {
    fn default() -> Self {
        State {
            nodes: BTreeMap::new(),
            blocked: BTreeSet::new(),
            unreliable: Unreliable::default(),
            stats: BTreeMap::new(),
            rng: SeededRng::new(0),
        }
    }
}

/// An in-process network of nodes. Clones share one network.
#[derive(Clone, Default)]
pub struct Router {
    state: Arc<Mutex<State>>,
    /// Whether `RpcStats::bytes` is counted.
    count_bytes: Arc<AtomicBool>,
}

/// One node's view of a [`Router`]: what it passes to `Raft::start` as its [`Network`].
#[derive(Clone)]
pub struct InProcessNetwork {
    router: Router,
    from: NodeId,
}

/// What the router decided for one RPC.
struct Plan {
    target: Option<Arc<dyn RaftRpc>>,
    delay: Duration,
    drop_reply: bool,
}

impl Router {
    /// An empty, reliable network. `seed` fixes the random choices (drops and delays).
    pub fn new(seed: u64) -> Router {
        let router = Router::default();
        router.lock().rng = SeededRng::new(seed);
        router
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts the encoded bytes of every request from now on (`on`), or stops counting them.
    pub fn count_bytes(&self, on: bool) {
        self.count_bytes.store(on, Ordering::Relaxed);
    }

    /// The network handle for node `id`.
    pub fn network(&self, id: NodeId) -> InProcessNetwork {
        InProcessNetwork {
            router: self.clone(),
            from: id,
        }
    }

    /// Makes node `id` reachable at `target` (replacing a previous registration, e.g. after a
    /// restart).
    pub fn register(&self, id: NodeId, target: Arc<dyn RaftRpc>) {
        self.lock().nodes.insert(id, target);
    }

    /// Makes node `id` unreachable, as if its process were gone.
    pub fn unregister(&self, id: NodeId) {
        self.lock().nodes.remove(&id);
    }

    /// Cuts `id` off from every other registered node, both ways.
    pub fn isolate(&self, id: NodeId) {
        let mut state = self.lock();
        let others: Vec<NodeId> = state
            .nodes
            .keys()
            .copied()
            .filter(|other| *other != id)
            .collect();
        for other in others {
            state.blocked.insert((id, other));
            state.blocked.insert((other, id));
        }
    }

    /// Reconnects `id` with every node (other partitions stay).
    pub fn reconnect(&self, id: NodeId) {
        self.lock()
            .blocked
            .retain(|(from, to)| *from != id && *to != id);
    }

    /// Splits the network into groups: nodes in different groups cannot talk. Nodes not named
    /// form one more group.
    pub fn partition(&self, groups: &[&[NodeId]]) {
        let mut state = self.lock();
        let group_of = |id: &NodeId| groups.iter().position(|group| group.contains(id));
        let ids: Vec<NodeId> = state.nodes.keys().copied().collect();
        for a in &ids {
            for b in &ids {
                if group_of(a) != group_of(b) {
                    state.blocked.insert((*a, *b));
                }
            }
        }
    }

    /// Blocks messages from `from` to `to` only.
    pub fn block(&self, from: NodeId, to: NodeId) {
        self.lock().blocked.insert((from, to));
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.lock().blocked.clear();
    }

    /// Sets loss and delay (see [`Unreliable`]).
    pub fn set_unreliable(&self, unreliable: Unreliable) {
        self.lock().unreliable = unreliable;
    }

    /// RPCs and bytes sent by `id` since the last reset.
    pub fn stats(&self, id: NodeId) -> RpcStats {
        self.lock().stats.get(&id).copied().unwrap_or_default()
    }

    /// RPCs and bytes sent by all nodes since the last reset.
    pub fn total_stats(&self) -> RpcStats {
        self.lock()
            .stats
            .values()
            .fold(RpcStats::default(), |sum, s| RpcStats {
                rpcs: sum.rpcs + s.rpcs,
                bytes: sum.bytes + s.bytes,
            })
    }

    /// Zeroes every counter.
    pub fn reset_stats(&self) {
        self.lock().stats.clear();
    }

    /// Decides the fate of one RPC from `from` to `to` carrying `bytes`.
    fn plan(&self, from: NodeId, to: NodeId, bytes: u64) -> Plan {
        let mut state = self.lock();
        let stats = state.stats.entry(from).or_default();
        stats.rpcs += 1;
        stats.bytes += bytes;
        let unreliable = state.unreliable;
        // A blocked forward link loses the request; a blocked return link loses only the reply.
        let reachable = !state.blocked.contains(&(from, to));
        let reply_blocked = state.blocked.contains(&(to, from));
        let target = state.nodes.get(&to).cloned().filter(|_| reachable);
        let dropped = target.is_some() && state.rng.chance(unreliable.drop_requests);
        if target.is_none() || dropped {
            let delay = between(&mut state.rng, unreliable.unreachable_delay);
            return Plan {
                target: None,
                delay,
                drop_reply: false,
            };
        }
        let delay = between(&mut state.rng, unreliable.delay);
        let drop_reply = reply_blocked || state.rng.chance(unreliable.drop_replies);
        Plan {
            target,
            delay,
            drop_reply,
        }
    }
}

/// A duration drawn from `[min, max]`, in whole milliseconds: under paused tokio time timers fire
/// on millisecond ticks, and sub-millisecond draws would make event order depend on the clock's
/// offset within a tick instead of on the seed.
fn between(rng: &mut SeededRng, (min, max): (Duration, Duration)) -> Duration {
    let (low, high) = (min.as_millis() as u64, max.as_millis() as u64);
    Duration::from_millis(rng.in_range(low, high.max(low) + 1))
}

/// The bincode-encoded size of `value`, for the byte counters. Counted by a writer that keeps no
/// bytes: the in-process network carries values, and should not pay for a buffer per RPC.
fn encoded_len<T: Serialize>(value: &T) -> u64 {
    let mut size = bincode::enc::write::SizeWriter::default();
    match bincode::serde::encode_into_writer(value, &mut size, bincode::config::standard()) {
        Ok(()) => size.bytes_written as u64,
        Err(_) => 0,
    }
}

impl InProcessNetwork {
    /// Runs one RPC through the router's faults.
    async fn call<Req, Resp, F, Fut>(
        &self,
        to: NodeId,
        req: Req,
        deliver: F,
    ) -> Result<Resp, NetworkError>
    where
        Req: Serialize,
        F: FnOnce(Arc<dyn RaftRpc>, Req) -> Fut,
        Fut: std::future::Future<Output = Result<Resp, NetworkError>>,
    {
        let bytes = if self.router.count_bytes.load(Ordering::Relaxed) {
            encoded_len(&req)
        } else {
            0
        };
        let plan = self.router.plan(self.from, to, bytes);
        if !plan.delay.is_zero() {
            tokio::time::sleep(plan.delay).await;
        }
        let Some(target) = plan.target else {
            return Err(NetworkError::Unreachable(to));
        };
        let response = deliver(target, req).await?;
        if plan.drop_reply {
            return Err(NetworkError::Unreachable(to));
        }
        Ok(response)
    }
}

#[async_trait]
impl Network for InProcessNetwork {
    async fn append_entries(
        &self,
        target: NodeId,
        req: AppendEntriesRequest,
    ) -> Result<AppendEntriesResponse, NetworkError> {
        self.call(target, req, |node, req| async move {
            node.append_entries(req).await
        })
        .await
    }

    async fn request_vote(
        &self,
        target: NodeId,
        req: VoteRequest,
    ) -> Result<VoteResponse, NetworkError> {
        self.call(target, req, |node, req| async move {
            node.request_vote(req).await
        })
        .await
    }

    async fn forward_write(
        &self,
        target: NodeId,
        req: ForwardRequest,
    ) -> Result<ForwardResponse, NetworkError> {
        self.call(target, req, |node, req| async move {
            node.forward_write(req).await
        })
        .await
    }

    async fn read_index(
        &self,
        target: NodeId,
        req: ReadIndexRequest,
    ) -> Result<ReadIndexResponse, NetworkError> {
        self.call(target, req, |node, req| async move {
            node.read_index(req).await
        })
        .await
    }

    async fn install_snapshot(
        &self,
        target: NodeId,
        req: InstallSnapshotRequest,
    ) -> Result<InstallSnapshotResponse, NetworkError> {
        self.call(target, req, |node, req| async move {
            node.install_snapshot(req).await
        })
        .await
    }

    async fn timeout_now(
        &self,
        target: NodeId,
        req: TimeoutNowRequest,
    ) -> Result<TimeoutNowResponse, NetworkError> {
        self.call(target, req, |node, req| async move {
            node.timeout_now(req).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Entry, EntryPayload, LogId, LogIndex, Term};

    #[test]
    fn encoded_len_is_the_length_of_the_encoding() {
        let req = AppendEntriesRequest {
            term: Term(3),
            leader_id: NodeId(1),
            prev_log_id: LogId::new(Term(3), LogIndex(16)),
            entries: vec![Entry {
                log_id: LogId::new(Term(3), LogIndex(17)),
                payload: EntryPayload::Command(Arc::from(vec![7u8; 300])),
            }],
            leader_commit: LogIndex(16),
            round: 9,
        };
        let encoded = crate::codec::encode(&req).expect("encodes");
        assert_eq!(encoded_len(&req), encoded.len() as u64);
    }
}
