//! [`LocalCluster`]: nodes of `raftor-kv serve` as child processes on this machine, for
//! `raftor-kv cluster`, `raftor-kv demo` and the multi-process tests.
//!
//! ```text
//!  LocalCluster::new(exe, specs) ─► start(id): exe serve --id .. --peers <everyone> --data-dir ..
//!                                 ─► kill(id): SIGKILL, as a crash (the data directory stays)
//!                                 ─► stop_all(): SIGTERM, wait, SIGKILL whoever lingers
//!  drop ─► SIGKILL every child still running (a panicking test leaves no process behind)
//! ```
//!
//! Each node gets a loopback address of its own (127.0.0.1, .2, .3 ...) where the system routes
//! them (Linux does), else 127.0.0.1 for all, with distinct ports either way.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use hyper::Method;
use raftor::NodeId;
use serde_json::Value;
use tokio::time::Instant;

use crate::client::{self, Reply};

/// How long one probe of a node's HTTP API may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// One node's addresses and directory.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The node.
    pub id: NodeId,
    /// Its raft address.
    pub raft: SocketAddr,
    /// Its HTTP address.
    pub http: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl NodeSpec {
    /// Its HTTP endpoint, `http://IP:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.http)
    }
}

/// Where the children's logs go.
#[derive(Debug, Clone)]
pub enum Logs {
    /// To this process's stderr.
    Inherit,
    /// To `node-N.log` files in this directory (appended to across restarts).
    Dir(PathBuf),
}

/// Child processes of `raftor-kv serve`.
pub struct LocalCluster {
    exe: PathBuf,
    specs: BTreeMap<NodeId, NodeSpec>,
    extra_args: Vec<String>,
    logs: Logs,
    children: BTreeMap<NodeId, Child>,
}

/// The loopback address for node number `n` (from 1): 127.0.0.n where it can be bound.
pub fn loopback_ip(n: u64) -> IpAddr {
    let own = u8::try_from(n)
        .ok()
        .filter(|n| *n >= 1)
        .map(|n| Ipv4Addr::new(127, 0, 0, n));
    match own {
        Some(ip) if TcpListener::bind((ip, 0)).is_ok() => IpAddr::V4(ip),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

/// `count` nodes' specs on free ports (each found by binding port 0; the listeners are closed
/// before returning, so another process could in principle take a port in between).
pub fn free_specs(count: u64, root: &Path) -> anyhow::Result<Vec<NodeSpec>> {
    let mut held = Vec::new();
    let mut specs = Vec::new();
    for n in 1..=count {
        let ip = loopback_ip(n);
        let raft = TcpListener::bind((ip, 0)).context("find a free port")?;
        let http = TcpListener::bind((ip, 0)).context("find a free port")?;
        specs.push(NodeSpec {
            id: NodeId(n),
            raft: raft.local_addr()?,
            http: http.local_addr()?,
            data_dir: root.join(format!("node-{n}")),
        });
        held.extend([raft, http]);
    }
    Ok(specs)
}

/// The `--peers` value naming every spec: `1=RAFT@HTTP,2=...`.
pub fn peers_flag<'a>(specs: impl IntoIterator<Item = &'a NodeSpec>) -> String {
    specs
        .into_iter()
        .map(|spec| format!("{}={}@{}", spec.id, spec.raft, spec.http))
        .collect::<Vec<_>>()
        .join(",")
}

impl LocalCluster {
    /// A cluster of `specs`, run from the binary `exe` with `extra_args` added to each `serve`.
    pub fn new(exe: PathBuf, specs: Vec<NodeSpec>, extra_args: Vec<String>, logs: Logs) -> Self {
        LocalCluster {
            exe,
            specs: specs.into_iter().map(|spec| (spec.id, spec)).collect(),
            extra_args,
            logs,
            children: BTreeMap::new(),
        }
    }

    /// Every node's spec.
    pub fn specs(&self) -> impl Iterator<Item = &NodeSpec> {
        self.specs.values()
    }

    /// Node `id`'s spec.
    pub fn spec(&self, id: NodeId) -> anyhow::Result<&NodeSpec> {
        self.specs.get(&id).with_context(|| format!("no node {id}"))
    }

    /// Every node's HTTP endpoint.
    pub fn endpoints(&self) -> Vec<String> {
        self.specs.values().map(NodeSpec::endpoint).collect()
    }

    /// Node `id`'s process id, while it runs.
    pub fn pid(&self, id: NodeId) -> Option<u32> {
        self.children.get(&id).map(Child::id)
    }

    /// Whether node `id` has a running child.
    pub fn is_running(&self, id: NodeId) -> bool {
        self.children.contains_key(&id)
    }

    /// Starts (or restarts) every node.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        let ids: Vec<NodeId> = self.specs.keys().copied().collect();
        ids.into_iter().try_for_each(|id| self.start(id))
    }

    /// Starts (or restarts) node `id` on its data directory.
    pub fn start(&mut self, id: NodeId) -> anyhow::Result<()> {
        if self.children.contains_key(&id) {
            bail!("node {id} is already running");
        }
        let spec = self.spec(id)?.clone();
        std::fs::create_dir_all(&spec.data_dir)
            .with_context(|| format!("create {}", spec.data_dir.display()))?;
        let mut command = Command::new(&self.exe);
        command
            .arg("serve")
            .args(["--id", &id.to_string()])
            .args(["--raft-addr", &spec.raft.to_string()])
            .args(["--http-addr", &spec.http.to_string()])
            .args(["--peers", &peers_flag(self.specs.values())])
            // The nodes share this machine: one thread each serves best (see `--threads`).
            .args(["--threads", "1"])
            .arg("--data-dir")
            .arg(&spec.data_dir)
            .args(&self.extra_args)
            .stdin(Stdio::null());
        if let Logs::Dir(dir) = &self.logs {
            let path = dir.join(format!("node-{id}.log"));
            let log = File::options().create(true).append(true).open(&path)?;
            command.stdout(log.try_clone()?).stderr(log);
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {}", self.exe.display()))?;
        self.children.insert(id, child);
        Ok(())
    }

    /// Kills node `id` with SIGKILL (a crash: nothing is flushed that was not already durable)
    /// and reaps it.
    pub fn kill(&mut self, id: NodeId) -> anyhow::Result<()> {
        let mut child = self
            .children
            .remove(&id)
            .with_context(|| format!("node {id} is not running"))?;
        child.kill().context("kill")?;
        child.wait().context("reap")?;
        Ok(())
    }

    /// Sends SIGTERM to every node and waits up to `grace` for each to exit; kills the ones
    /// still running then. Returns each node's exit status (`None`: it had to be killed).
    pub async fn stop_all(&mut self, grace: Duration) -> BTreeMap<NodeId, Option<ExitStatus>> {
        for child in self.children.values() {
            terminate(child);
        }
        let deadline = Instant::now() + grace;
        let mut statuses = BTreeMap::new();
        for (id, mut child) in std::mem::take(&mut self.children) {
            statuses.insert(id, wait_until(&mut child, deadline).await);
        }
        statuses
    }

    /// Checks that no child exited on its own; names the first that did.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for (id, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                bail!("node {id} exited unexpectedly ({status})");
            }
        }
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Asks `child` to stop (SIGTERM).
fn terminate(child: &Child) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a pid this process spawned and has not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    #[cfg(not(unix))]
    let _ = child;
}

/// Waits for `child` to exit until `deadline`, then kills it. `None` if it had to be killed.
async fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// `GET /cluster` on one endpoint, if it answers.
pub async fn cluster_view(endpoint: &str) -> Option<Value> {
    let authority = client::authority(endpoint).ok()?;
    let reply = client::request(
        authority,
        Method::GET,
        "/cluster",
        Default::default(),
        PROBE_TIMEOUT,
    )
    .await
    .ok()?;
    reply.json()
}

/// Waits until one node reports leading and a majority of `endpoints` agree on it, other than
/// `not`. Returns the leader's id.
pub async fn wait_for_leader(
    endpoints: &[String],
    not: Option<NodeId>,
    timeout: Duration,
) -> anyhow::Result<NodeId> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
        let mut leading = Vec::new();
        for endpoint in endpoints {
            let Some(view) = cluster_view(endpoint).await else {
                continue;
            };
            if let Some(leader) = view["leader"].as_u64() {
                *votes.entry(leader).or_default() += 1;
            }
            if view["role"] == "leader" {
                leading.extend(view["id"].as_u64());
            }
        }
        let majority = endpoints.len() / 2 + 1;
        let agreed = leading
            .into_iter()
            .find(|id| votes.get(id).copied().unwrap_or(0) >= majority && Some(NodeId(*id)) != not);
        if let Some(id) = agreed {
            return Ok(NodeId(id));
        }
        if Instant::now() >= deadline {
            bail!("no leader agreed on by a majority within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the node at `endpoint` has applied at least `index`.
pub async fn wait_applied(endpoint: &str, index: u64, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let applied = cluster_view(endpoint)
            .await
            .and_then(|view| view["applied_index"].as_u64());
        if applied.is_some_and(|applied| applied >= index) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{endpoint} did not apply index {index} within {timeout:?} (at {applied:?})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request to `endpoint` with a one-off connection.
pub async fn call(
    endpoint: &str,
    method: Method,
    path: &str,
    body: impl Into<hyper::body::Bytes>,
    timeout: Duration,
) -> anyhow::Result<Reply> {
    let authority = client::authority(endpoint)?;
    Ok(client::request(authority, method, path, body.into(), timeout).await?)
}
