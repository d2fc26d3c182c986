//! `raftor-kv demo`: a scripted tour of a real three-process cluster, checking as it goes.
//!
//! ```text
//!  start 3 × `raftor-kv serve` (temp dir, free ports) ─► wait for a leader
//!  write N keys through a follower (it forwards to the leader) ─► kill -9 the leader
//!  write N more through the survivors, during and after the election ─► a new leader
//!  restart the killed node on its directory ─► it catches up (a snapshot, then the log tail)
//!  read every acknowledged key on every node ─► SIGTERM all ─► exit 0, or 1 if anything is lost
//! ```
//!
//! Snapshots are taken every 100 entries here (the server's default is 10,000), so the
//! restarted node, having missed a few hundred writes, is brought up to date with a snapshot.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use hyper::body::Bytes;
use hyper::Method;
use raftor::NodeId;
use tokio::time::Instant;

use crate::cli::DemoArgs;
use crate::client::{self, HttpConnection};
use crate::local::{self, free_specs, LocalCluster, Logs};

/// How long the demo waits for an election or a catch-up before declaring failure.
const WAIT: Duration = Duration::from_secs(20);

/// Concurrent writers.
const WRITERS: u64 = 8;

/// Attempts per write before it counts as failed.
const ATTEMPTS: usize = 3;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(6);

/// Runs the tour; an error (or a lost write) makes the process exit non-zero.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let root = tempfile::Builder::new()
        .prefix("raftor-kv-demo-")
        .tempdir()?;
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs)?;
    let specs = free_specs(3, root.path())?;
    let extra = ["--snapshot-threshold", "100", "--snapshot-keep-tail", "20"];
    let exe = std::env::current_exe().context("find this program")?;
    let mut cluster = LocalCluster::new(
        exe,
        specs,
        extra.iter().map(|s| s.to_string()).collect(),
        Logs::Dir(logs.clone()),
    );
    let result = tour(&mut cluster, args.writes).await;
    let stopped = cluster.stop_all(Duration::from_secs(10)).await;
    let clean = stopped
        .values()
        .all(|status| status.is_some_and(|s| s.success()));
    println!(
        "\nstopped every node with SIGTERM: {}",
        if clean {
            "each exited 0"
        } else {
            "NOT every node exited cleanly"
        }
    );
    if args.keep || result.is_err() {
        let kept = root.keep();
        println!("data and node logs kept in {}", kept.display());
    }
    result?;
    if !clean {
        bail!("a node did not shut down cleanly: {stopped:?}");
    }
    println!("demo passed");
    Ok(())
}

async fn tour(cluster: &mut LocalCluster, writes: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let at = move || format!("[{:>6} ms]", started.elapsed().as_millis());
    cluster.start_all()?;
    for spec in cluster.specs() {
        println!(
            "{} node {} started: http://{} (raft {})",
            at(),
            spec.id,
            spec.http,
            spec.raft
        );
    }
    let all = cluster.endpoints();
    let leader = local::wait_for_leader(&all, None, WAIT).await?;
    println!("{} node {leader} was elected leader", at());

    let follower = other_than(cluster, &[leader])?;
    let through = vec![cluster.spec(follower)?.endpoint()];
    let mut acked = write_keys(&through, 0..writes).await;
    println!(
        "{} wrote {writes} keys through node {follower}, a follower that forwards to the leader: {} acknowledged",
        at(),
        acked.len()
    );

    cluster.kill(leader)?;
    println!("{} killed the leader, node {leader}, with kill -9", at());
    let survivors: Vec<String> = cluster
        .specs()
        .filter(|spec| spec.id != leader)
        .map(|spec| spec.endpoint())
        .collect();
    let killed = Instant::now();
    let election = tokio::spawn({
        let survivors = survivors.clone();
        async move {
            let leader = local::wait_for_leader(&survivors, Some(leader), WAIT).await?;
            anyhow::Ok((leader, killed.elapsed()))
        }
    });
    let more = write_keys(&survivors, writes..2 * writes).await;
    let (new_leader, took) = election.await.context("election watcher")??;
    println!(
        "{} node {new_leader} won the election {} ms after the kill; {} of {writes} writes sent \
         through the survivors meanwhile acknowledged",
        at(),
        took.as_millis(),
        more.len()
    );
    acked.extend(more);

    cluster.start(leader)?;
    println!("{} restarted node {leader} on its data directory", at());
    let leader_endpoint = cluster.spec(new_leader)?.endpoint();
    let commit = local::cluster_view(&leader_endpoint)
        .await
        .and_then(|view| view["commit_index"].as_u64())
        .context("ask the new leader for its commit index")?;
    let returning = cluster.spec(leader)?.endpoint();
    local::wait_applied(&returning, commit, WAIT).await?;
    let view = local::cluster_view(&returning).await.unwrap_or_default();
    println!(
        "{} node {leader} caught up to index {commit} (role {}, its snapshot at {})",
        at(),
        view["role"].as_str().unwrap_or("unknown"),
        view["snapshot_index"]
    );

    for endpoint in &all {
        local::wait_applied(endpoint, commit, WAIT).await?;
    }
    verify(cluster, &acked).await?;
    println!(
        "{} every one of the {} acknowledged writes reads back on every node",
        at(),
        acked.len()
    );
    cluster.check_alive()
}

/// A node other than those in `not`.
fn other_than(cluster: &LocalCluster, not: &[NodeId]) -> anyhow::Result<NodeId> {
    cluster
        .specs()
        .map(|spec| spec.id)
        .find(|id| !not.contains(id))
        .context("no other node")
}

fn key(i: u64) -> String {
    format!("demo-{i:05}")
}

fn value(i: u64) -> String {
    format!("value-{i}")
}

/// Writes keys `range` through `endpoints` with concurrent writers; returns the acknowledged
/// ones (key → value). A failed write is retried (a put of the same value is idempotent).
pub async fn write_keys(
    endpoints: &[String],
    range: std::ops::Range<u64>,
) -> BTreeMap<String, String> {
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let endpoints = endpoints.to_vec();
        let keys: Vec<u64> = range.clone().filter(|i| i % WRITERS == writer).collect();
        writers.spawn(async move {
            let mut session = Session::new(endpoints, writer as usize);
            let mut acked = Vec::new();
            for i in keys {
                if session.put(&key(i), &value(i)).await {
                    acked.push((key(i), value(i)));
                }
            }
            acked
        });
    }
    let mut acked = BTreeMap::new();
    while let Some(done) = writers.join_next().await {
        acked.extend(done.unwrap_or_default());
    }
    acked
}

/// Reads every acknowledged key on every node (stale reads: each node answers from its own
/// state, which has applied everything committed).
async fn verify(cluster: &LocalCluster, acked: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let mut lost = Vec::new();
    for spec in cluster.specs() {
        let mut connection =
            HttpConnection::connect(&spec.http.to_string(), REQUEST_TIMEOUT).await?;
        for (key, value) in acked {
            let path = format!("/kv/{}?consistency=stale", client::encode_key(key));
            let reply = connection
                .send(Method::GET, &path, Bytes::new(), &[], REQUEST_TIMEOUT)
                .await?;
            if reply.status != 200 || reply.body != value.as_bytes() {
                lost.push(format!(
                    "node {}: {key} -> {} {}",
                    spec.id,
                    reply.status,
                    reply.text()
                ));
            }
        }
    }
    if !lost.is_empty() {
        bail!(
            "{} acknowledged writes missing: {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        );
    }
    Ok(())
}

/// A writer's connection to one of the endpoints, moving to the next when it breaks.
struct Session {
    endpoints: Vec<String>,
    next: usize,
    connection: Option<HttpConnection>,
}

impl Session {
    fn new(endpoints: Vec<String>, first: usize) -> Session {
        Session {
            endpoints,
            next: first,
            connection: None,
        }
    }

    /// Puts `key`; true once a `200` came back.
    async fn put(&mut self, key: &str, value: &str) -> bool {
        let path = format!("/kv/{}", client::encode_key(key));
        for _ in 0..ATTEMPTS {
            let Some(connection) = self.connection().await else {
                continue;
            };
            let body = Bytes::from(value.to_string());
            match connection
                .send(Method::PUT, &path, body, &[], REQUEST_TIMEOUT)
                .await
            {
                Ok(reply) if reply.status == 200 => return true,
                Ok(_) => {}
                Err(_) => self.connection = None,
            }
        }
        false
    }

    async fn connection(&mut self) -> Option<&mut HttpConnection> {
        if self.connection.is_none() {
            let endpoint = &self.endpoints[self.next % self.endpoints.len()];
            self.next += 1;
            let authority = client::authority(endpoint).ok()?;
            self.connection = HttpConnection::connect(authority, REQUEST_TIMEOUT)
                .await
                .ok();
        }
        self.connection.as_mut()
    }
}
