//! [`FaultyNetwork`]: a node's view of the [`Router`](raftor::Router) with the lab suite's timing
//! faults layered on top. The router decides reachability, loses requests and replies, and counts
//! RPCs; this layer adds the delays, in whole milliseconds as labrpc does:
//!
//! - `unreliable`: each request waits `rand(0..27)` ms before it is sent, which also reorders
//!   concurrent requests;
//! - `longReordering` (the lab's Figure8Unreliable): the peer handles the request at once, but 600
//!   of every 900 replies are held for `200 + rand(0..1 + rand(0..2000))` ms, i.e. 0.2-2.2 s,
//!   long after newer replies. The sender must recognise a stale answer by its term and log
//!   position, not by its arrival order.
//!
//! NB: whole milliseconds keep runs reproducible. With time paused, tokio rounds every timer up
//! to a millisecond tick measured from an origin whose sub-millisecond offset from the paused
//! clock differs from run to run; sub-millisecond delays (the router's own `Unreliable::delay`
//! draws microseconds) then land in different ticks in different runs and reorder events, so a
//! seed would not replay.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use raftor::message::{
    AppendEntriesRequest, AppendEntriesResponse, ForwardRequest, ForwardResponse,
    InstallSnapshotRequest, InstallSnapshotResponse, ReadIndexRequest, ReadIndexResponse,
    TimeoutNowRequest, TimeoutNowResponse, VoteRequest, VoteResponse,
};
use raftor::{InProcessNetwork, Network, NetworkError, NodeId};

use crate::rng::TestRng;

/// The timing faults shared by every node of a cluster.
#[derive(Clone)]
pub struct TimingFaults {
    unreliable: Arc<AtomicBool>,
    long_reordering: Arc<AtomicBool>,
    rng: Arc<Mutex<TestRng>>,
}

impl TimingFaults {
    /// No delays, with `seed` for the choices made once they are on.
    pub fn new(seed: u64) -> TimingFaults {
        TimingFaults {
            unreliable: Arc::new(AtomicBool::new(false)),
            long_reordering: Arc::new(AtomicBool::new(false)),
            rng: Arc::new(Mutex::new(TestRng::new(seed))),
        }
    }

    /// Delays each request by 0-26 ms, or stops doing so.
    pub fn set_unreliable(&self, enabled: bool) {
        self.unreliable.store(enabled, Ordering::SeqCst);
    }

    /// Holds 2 of 3 replies for 0.2-2.2 s, or stops doing so.
    pub fn set_long_reordering(&self, enabled: bool) {
        self.long_reordering.store(enabled, Ordering::SeqCst);
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, TestRng> {
        self.rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How long the next request waits before it is sent.
    fn request_delay(&self) -> Option<Duration> {
        if !self.unreliable.load(Ordering::SeqCst) {
            return None;
        }
        Some(Duration::from_millis(self.rng().below(27)))
    }

    /// How long the next reply is held.
    fn reply_hold(&self) -> Option<Duration> {
        if !self.long_reordering.load(Ordering::SeqCst) {
            return None;
        }
        let mut rng = self.rng();
        if rng.below(900) >= 600 {
            return None;
        }
        let spread = 1 + rng.below(2000);
        Some(Duration::from_millis(200 + rng.below(spread)))
    }

    /// Runs one Raft RPC through the delays.
    async fn call<T>(
        &self,
        rpc: impl std::future::Future<Output = Result<T, NetworkError>>,
    ) -> Result<T, NetworkError> {
        if let Some(delay) = self.request_delay() {
            tokio::time::sleep(delay).await;
        }
        let reply = rpc.await;
        if reply.is_ok() {
            if let Some(hold) = self.reply_hold() {
                tokio::time::sleep(hold).await;
            }
        }
        reply
    }
}

/// One node's network: the router's, with the cluster's timing faults.
#[derive(Clone)]
pub struct FaultyNetwork {
    /// The router's view for this node: reachability, losses and statistics.
    pub inner: InProcessNetwork,
    /// Shared with the cluster, which turns them on and off.
    pub faults: TimingFaults,
}

#[async_trait]
impl Network for FaultyNetwork {
    async fn append_entries(
        &self,
        target: NodeId,
        req: AppendEntriesRequest,
    ) -> Result<AppendEntriesResponse, NetworkError> {
        self.faults
            .call(self.inner.append_entries(target, req))
            .await
    }

    async fn request_vote(
        &self,
        target: NodeId,
        req: VoteRequest,
    ) -> Result<VoteResponse, NetworkError> {
        self.faults.call(self.inner.request_vote(target, req)).await
    }

    async fn forward_write(
        &self,
        target: NodeId,
        req: ForwardRequest,
    ) -> Result<ForwardResponse, NetworkError> {
        // Client traffic, not part of the protocol under test: no delays.
        self.inner.forward_write(target, req).await
    }

    async fn read_index(
        &self,
        target: NodeId,
        req: ReadIndexRequest,
    ) -> Result<ReadIndexResponse, NetworkError> {
        self.inner.read_index(target, req).await
    }

    async fn install_snapshot(
        &self,
        target: NodeId,
        req: InstallSnapshotRequest,
    ) -> Result<InstallSnapshotResponse, NetworkError> {
        self.faults
            .call(self.inner.install_snapshot(target, req))
            .await
    }

    async fn timeout_now(
        &self,
        target: NodeId,
        req: TimeoutNowRequest,
    ) -> Result<TimeoutNowResponse, NetworkError> {
        self.faults.call(self.inner.timeout_now(target, req)).await
    }
}
