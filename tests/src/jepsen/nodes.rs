//! The cluster under test: `raftor-kv serve` child processes, node N on 127.0.0.N, each with its
//! own data directory and log file, and the process-level faults (SIGKILL, SIGSTOP/SIGCONT, a
//! wiped directory).
//!
//! ```text
//!  Nodes::new(exe, n, root) ─► ports picked on 127.0.0.1..n (outside the ephemeral range)
//!  start(id, join) ─► exe serve --id N --raft-addr .. --http-addr .. --peers <all> --data-dir ..
//!  kill(id) ─► SIGKILL + reap        pause(id) / resume(id) ─► SIGSTOP / SIGCONT
//!  wipe(id) ─► rm -r its data dir    drop ─► SIGCONT + SIGKILL every child, even on a panic
//! ```
//!
//! NB: a node that restarts on a wiped directory must start with `--join`, or it would bootstrap
//! a cluster of its own from `--peers`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};

/// The flags every node gets besides its addresses: a short request timeout so that clients
/// learn an outcome quickly, and frequent snapshots so that catch-ups go through them.
const SERVE_FLAGS: [&str; 10] = [
    "--election-timeout-ms",
    "250",
    "--heartbeat-ms",
    "50",
    "--request-timeout-ms",
    "2000",
    "--snapshot-threshold",
    "300",
    "--snapshot-keep-tail",
    "50",
];

/// One node's fixed identity.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Its id, 1..=n.
    pub id: u64,
    /// 127.0.0.id.
    pub ip: Ipv4Addr,
    /// Where its raft transport listens.
    pub raft: SocketAddr,
    /// Where its HTTP API listens.
    pub http: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl NodeSpec {
    /// `http://IP:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.http)
    }
}

/// The child processes.
pub struct Nodes {
    exe: PathBuf,
    root: PathBuf,
    specs: BTreeMap<u64, NodeSpec>,
    children: BTreeMap<u64, Child>,
    /// Invariant: every paused node has a running child.
    paused: BTreeSet<u64>,
}

impl Nodes {
    /// `count` nodes of `exe` with directories and logs under `root`; `seed` picks the ports.
    pub fn new(exe: &Path, count: u64, root: &Path, seed: u64) -> anyhow::Result<Nodes> {
        let mut specs = BTreeMap::new();
        let mut held = Vec::new();
        for id in 1..=count {
            let ip = Ipv4Addr::new(127, 0, 0, u8::try_from(id).context("at most 254 nodes")?);
            let raft = free_port(ip, seed.wrapping_add(id * 7919), &mut held)?;
            let http = free_port(ip, seed.wrapping_add(id * 104_729), &mut held)?;
            let data_dir = root.join(format!("node-{id}"));
            specs.insert(
                id,
                NodeSpec {
                    id,
                    ip,
                    raft,
                    http,
                    data_dir,
                },
            );
        }
        Ok(Nodes {
            exe: exe.to_path_buf(),
            root: root.to_path_buf(),
            specs,
            children: BTreeMap::new(),
            paused: BTreeSet::new(),
        })
    }

    /// Every node's spec, by id.
    pub fn specs(&self) -> impl Iterator<Item = &NodeSpec> {
        self.specs.values()
    }

    /// Node `id`'s spec.
    pub fn spec(&self, id: u64) -> anyhow::Result<&NodeSpec> {
        self.specs.get(&id).with_context(|| format!("no node {id}"))
    }

    /// Every node's id.
    pub fn ids(&self) -> Vec<u64> {
        self.specs.keys().copied().collect()
    }

    /// Every node's raft port (what the firewall's rules match).
    pub fn raft_ports(&self) -> Vec<u16> {
        self.specs.values().map(|spec| spec.raft.port()).collect()
    }

    /// Every node's HTTP endpoint.
    pub fn endpoints(&self) -> Vec<String> {
        self.specs.values().map(NodeSpec::endpoint).collect()
    }

    /// Whether node `id` runs (paused or not).
    pub fn is_running(&self, id: u64) -> bool {
        self.children.contains_key(&id)
    }

    /// Whether node `id` is paused.
    pub fn is_paused(&self, id: u64) -> bool {
        self.paused.contains(&id)
    }

    /// Starts node `id` (`join`: wait to be added instead of bootstrapping).
    pub fn start(&mut self, id: u64, join: bool) -> anyhow::Result<()> {
        if self.is_running(id) {
            bail!("node {id} already runs");
        }
        let spec = self.spec(id)?.clone();
        std::fs::create_dir_all(&spec.data_dir)?;
        let log_path = self.root.join(format!("node-{id}.log"));
        let log = File::options().create(true).append(true).open(&log_path)?;
        let mut command = Command::new(&self.exe);
        command
            .arg("serve")
            .args(["--id", &id.to_string()])
            .args(["--raft-addr", &spec.raft.to_string()])
            .args(["--http-addr", &spec.http.to_string()])
            .args(["--peers", &self.peers_flag()])
            .arg("--data-dir")
            .arg(&spec.data_dir)
            .args(SERVE_FLAGS)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if join {
            command.arg("--join");
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {}", self.exe.display()))?;
        self.children.insert(id, child);
        Ok(())
    }

    /// Kills node `id` with SIGKILL (paused or not) and reaps it.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let mut child = self
            .children
            .remove(&id)
            .with_context(|| format!("node {id} is not running"))?;
        self.paused.remove(&id);
        child.kill().context("SIGKILL")?;
        child.wait().context("reap")?;
        Ok(())
    }

    /// Freezes node `id` with SIGSTOP.
    pub fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, libc::SIGSTOP)?;
        self.paused.insert(id);
        Ok(())
    }

    /// Thaws node `id` with SIGCONT.
    pub fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, libc::SIGCONT)?;
        self.paused.remove(&id);
        Ok(())
    }

    /// Deletes node `id`'s data directory (the node must not run).
    pub fn wipe(&mut self, id: u64) -> anyhow::Result<()> {
        if self.is_running(id) {
            bail!("node {id} runs: kill it before wiping its directory");
        }
        let dir = &self.spec(id)?.data_dir;
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("wipe {}", dir.display()))?;
        }
        Ok(())
    }

    /// Resumes every paused node and starts every stopped one (on its directory).
    pub fn revive_all(&mut self) -> anyhow::Result<()> {
        for id in self.paused.clone() {
            self.resume(id)?;
        }
        for id in self.ids() {
            if !self.is_running(id) {
                self.start(id, false)?;
            }
        }
        Ok(())
    }

    /// Fails naming every node that exited without being killed by the harness.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        let mut dead = Vec::new();
        for (id, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                dead.push(format!("node {id} exited on its own ({status})"));
            }
        }
        if !dead.is_empty() {
            bail!("{}", dead.join("; "));
        }
        Ok(())
    }

    fn signal(&self, id: u64, signal: libc::c_int) -> anyhow::Result<()> {
        let child = self
            .children
            .get(&id)
            .with_context(|| format!("node {id} is not running"))?;
        let pid = libc::pid_t::try_from(child.id())?;
        // SAFETY: kill(2) on a child this process spawned and has not reaped.
        if unsafe { libc::kill(pid, signal) } != 0 {
            bail!(
                "signal {signal} to node {id}: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    fn peers_flag(&self) -> String {
        self.specs
            .values()
            .map(|spec| format!("{}={}@{}", spec.id, spec.raft, spec.http))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for (id, child) in &mut self.children {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                if self.paused.contains(id) {
                    // SAFETY: kill(2) on an unreaped child of this process.
                    unsafe { libc::kill(pid, libc::SIGCONT) };
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port on `ip` in 20000..30000 (below Linux's ephemeral range, so an outgoing connection
/// cannot hold it when a node restarts) that binds now; the listener is kept in `held` until all
/// ports are picked so no two nodes get the same one.
fn free_port(ip: Ipv4Addr, seed: u64, held: &mut Vec<TcpListener>) -> anyhow::Result<SocketAddr> {
    let mut candidate = seed;
    for _ in 0..200 {
        candidate = candidate
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let port = 20_000 + u16::try_from((candidate >> 33) % 10_000)?;
        if let Ok(listener) = TcpListener::bind((ip, port)) {
            let addr = listener.local_addr()?;
            held.push(listener);
            return Ok(addr);
        }
    }
    bail!("no free port on {ip} in 20000..30000")
}
