//! What `GET /metrics` reports, in Prometheus' text format: the node's [`RaftMetrics`] (role,
//! term, commit and applied index, log and snapshot positions), and the server's own counters:
//! HTTP requests by route and status with their latencies, and outgoing raft RPCs by kind with
//! their errors and latencies, counted by [`CountingNetwork`], a wrapper around the transport.
//!
//! ```text
//!  HTTP handler ──► Counters::observe_request(route, status, elapsed)
//!  core ──► CountingNetwork::append_entries ──► TcpNetwork ──► Counters::observe_rpc(kind, ok, elapsed)
//!  GET /metrics ──► render(&RaftMetrics, &Counters) ──► text
//! ```

use std::collections::BTreeMap;
use std::fmt::Write;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use raftor::core::Role;
use raftor::message::{
    AppendEntriesRequest, AppendEntriesResponse, ForwardRequest, ForwardResponse,
    InstallSnapshotRequest, InstallSnapshotResponse, ReadIndexRequest, ReadIndexResponse,
    TimeoutNowRequest, TimeoutNowResponse, VoteRequest, VoteResponse,
};
use raftor::{Network, NetworkError, NodeId, RaftMetrics};

/// Upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS_SECONDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A latency histogram with Prometheus' cumulative buckets.
#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Observations per bucket (not cumulative; the last slot counts those above every bound).
    buckets: [u64; BUCKETS_SECONDS.len() + 1],
    sum_seconds: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = BUCKETS_SECONDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS_SECONDS.len());
        self.buckets[slot] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, count) in BUCKETS_SECONDS.iter().zip(self.buckets) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_seconds);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// Requests or RPCs of one kind: by outcome, with their latencies.
#[derive(Debug, Clone, Default)]
struct Series {
    /// Count per outcome label (an HTTP status, or "ok"/"error").
    outcomes: BTreeMap<String, u64>,
    latency: Histogram,
}

/// The server's own counters, shared by every handler.
#[derive(Debug, Default)]
pub struct Counters {
    http: Mutex<BTreeMap<&'static str, Series>>,
    rpcs: Mutex<BTreeMap<&'static str, Series>>,
}

impl Counters {
    /// Counts one HTTP request to `route` answered with `status` after `elapsed`.
    pub fn observe_request(&self, route: &'static str, status: u16, elapsed: Duration) {
        observe(&self.http, route, status.to_string(), elapsed);
    }

    /// Counts one outgoing raft RPC of `kind`.
    pub fn observe_rpc(&self, kind: &'static str, ok: bool, elapsed: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        observe(&self.rpcs, kind, outcome.to_string(), elapsed);
    }
}

fn observe(
    series: &Mutex<BTreeMap<&'static str, Series>>,
    name: &'static str,
    outcome: String,
    elapsed: Duration,
) {
    let mut series = lock(series);
    let entry = series.entry(name).or_default();
    *entry.outcomes.entry(outcome).or_default() += 1;
    entry.latency.observe(elapsed);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The Prometheus text for `metrics` and `counters`.
pub fn render(metrics: &RaftMetrics, counters: &Counters) -> String {
    let mut out = String::new();
    render_raft(&mut out, metrics);
    render_series(
        &mut out,
        &lock(&counters.http),
        ("raftor_kv_http_requests_total", "route", "status"),
        "raftor_kv_http_request_duration_seconds",
    );
    render_series(
        &mut out,
        &lock(&counters.rpcs),
        ("raftor_kv_raft_rpcs_total", "rpc", "outcome"),
        "raftor_kv_raft_rpc_duration_seconds",
    );
    out
}

fn render_raft(out: &mut String, metrics: &RaftMetrics) {
    let gauges = [
        ("raftor_term", "The node's current term.", metrics.term.0),
        (
            "raftor_commit_index",
            "The node's commit index.",
            metrics.commit_index.0,
        ),
        (
            "raftor_applied_index",
            "The last index the state machine applied.",
            metrics.last_applied.0,
        ),
        (
            "raftor_last_log_index",
            "The last index in the node's log.",
            metrics.last_log_id.index.0,
        ),
        (
            "raftor_snapshot_index",
            "The last index covered by the node's latest snapshot.",
            metrics.snapshot.map_or(0, |id| id.index.0),
        ),
        (
            "raftor_leader",
            "The leader this node knows of (0: none).",
            metrics.leader.map_or(0, |id| id.0),
        ),
        (
            "raftor_running",
            "1 while the node runs.",
            u64::from(metrics.running),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP raftor_role 1 for the role the node plays.\n# TYPE raftor_role gauge"
    );
    for role in [
        Role::Follower,
        Role::PreCandidate,
        Role::Candidate,
        Role::Leader,
    ] {
        let on = u8::from(metrics.role == role);
        let _ = writeln!(out, "raftor_role{{role=\"{}\"}} {on}", role_name(role));
    }
}

fn render_series(
    out: &mut String,
    series: &BTreeMap<&'static str, Series>,
    (total, key, outcome_key): (&str, &str, &str),
    duration: &str,
) {
    let _ = writeln!(out, "# TYPE {total} counter");
    for (name, entry) in series {
        for (outcome, count) in &entry.outcomes {
            let _ = writeln!(
                out,
                "{total}{{{key}=\"{name}\",{outcome_key}=\"{outcome}\"}} {count}"
            );
        }
    }
    let _ = writeln!(out, "# TYPE {duration} histogram");
    for (name, entry) in series {
        entry
            .latency
            .render(out, duration, &format!("{key}=\"{name}\""));
    }
}

/// The role's name in the API (`"leader"`, `"follower"`, ...).
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// A [`Network`] that counts every RPC it passes to the one it wraps.
pub struct CountingNetwork<N> {
    inner: N,
    counters: Arc<Counters>,
}

impl<N: Network> CountingNetwork<N> {
    /// Counts `inner`'s RPCs into `counters`.
    pub fn new(inner: N, counters: Arc<Counters>) -> Self {
        CountingNetwork { inner, counters }
    }

    async fn count<T>(
        &self,
        kind: &'static str,
        call: impl Future<Output = Result<T, NetworkError>>,
    ) -> Result<T, NetworkError> {
        let started = Instant::now();
        let result = call.await;
        self.counters
            .observe_rpc(kind, result.is_ok(), started.elapsed());
        result
    }
}

#[async_trait]
impl<N: Network> Network for CountingNetwork<N> {
    async fn append_entries(
        &self,
        target: NodeId,
        req: AppendEntriesRequest,
    ) -> Result<AppendEntriesResponse, NetworkError> {
        let call = self.inner.append_entries(target, req);
        self.count("append_entries", call).await
    }

    async fn request_vote(
        &self,
        target: NodeId,
        req: VoteRequest,
    ) -> Result<VoteResponse, NetworkError> {
        let call = self.inner.request_vote(target, req);
        self.count("request_vote", call).await
    }

    async fn forward_write(
        &self,
        target: NodeId,
        req: ForwardRequest,
    ) -> Result<ForwardResponse, NetworkError> {
        let call = self.inner.forward_write(target, req);
        self.count("forward_write", call).await
    }

    async fn read_index(
        &self,
        target: NodeId,
        req: ReadIndexRequest,
    ) -> Result<ReadIndexResponse, NetworkError> {
        let call = self.inner.read_index(target, req);
        self.count("read_index", call).await
    }

    async fn install_snapshot(
        &self,
        target: NodeId,
        req: InstallSnapshotRequest,
    ) -> Result<InstallSnapshotResponse, NetworkError> {
        let call = self.inner.install_snapshot(target, req);
        self.count("install_snapshot", call).await
    }

    async fn timeout_now(
        &self,
        target: NodeId,
        req: TimeoutNowRequest,
    ) -> Result<TimeoutNowResponse, NetworkError> {
        let call = self.inner.timeout_now(target, req);
        self.count("timeout_now", call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut histogram = Histogram::default();
        histogram.observe(Duration::from_micros(100));
        histogram.observe(Duration::from_millis(30));
        histogram.observe(Duration::from_secs(60));
        let mut out = String::new();
        histogram.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.0005\"} 1"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.05\"} 2"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"5\"} 2"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3"), "{out}");
    }
}
