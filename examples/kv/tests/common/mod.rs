//! A three-process cluster of the built `raftor-kv` binary for the tests: free ports, a temporary
//! directory (kept, and its path printed, when the test fails), and every child killed when the
//! fixture drops, even on a panic.

#![allow(dead_code)] // each test file uses a different part

use std::time::Duration;

use hyper::body::Bytes;
use hyper::Method;
use raftor::NodeId;
use raftor_kv::client::{encode_key, Reply};
use raftor_kv::local::{self, free_specs, LocalCluster, Logs};
use tempfile::TempDir;

/// How long a test waits for an election or a catch-up.
pub const WAIT: Duration = Duration::from_secs(20);

/// How long one request may take.
pub const REQUEST: Duration = Duration::from_secs(10);

/// Three `raftor-kv serve` processes.
pub struct Fixture {
    pub cluster: LocalCluster,
    dir: Option<TempDir>,
}

impl Fixture {
    /// Starts three nodes with `extra` flags and waits for a leader.
    pub async fn start(extra: &[&str]) -> anyhow::Result<(Fixture, NodeId)> {
        let dir = tempfile::Builder::new()
            .prefix("raftor-kv-test-")
            .tempdir()?;
        let specs = free_specs(3, dir.path())?;
        let exe = env!("CARGO_BIN_EXE_raftor-kv").into();
        let extra = extra.iter().map(|s| s.to_string()).collect();
        let logs = Logs::Dir(dir.path().to_path_buf());
        let mut cluster = LocalCluster::new(exe, specs, extra, logs);
        cluster.start_all()?;
        let fixture = Fixture {
            cluster,
            dir: Some(dir),
        };
        let leader = local::wait_for_leader(&fixture.endpoints(), None, WAIT).await?;
        Ok((fixture, leader))
    }

    /// Every node's endpoint.
    pub fn endpoints(&self) -> Vec<String> {
        self.cluster.endpoints()
    }

    /// Node `id`'s endpoint.
    pub fn endpoint(&self, id: NodeId) -> String {
        self.cluster
            .spec(id)
            .map(|spec| spec.endpoint())
            .unwrap_or_default()
    }

    /// The ids of the nodes other than `id`.
    pub fn others(&self, id: NodeId) -> Vec<NodeId> {
        self.cluster
            .specs()
            .map(|spec| spec.id)
            .filter(|other| *other != id)
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                eprintln!("node data and logs kept in {}", dir.keep().display());
            }
        }
    }
}

/// One request.
pub async fn call(endpoint: &str, method: Method, path: &str, body: impl Into<Bytes>) -> Reply {
    local::call(endpoint, method, path, body, REQUEST)
        .await
        .unwrap_or_else(|error| panic!("{endpoint}{path}: {error}"))
}

/// `PUT /kv/{key}`.
pub async fn put(endpoint: &str, key: &str, value: &str) -> Reply {
    let path = format!("/kv/{}", encode_key(key));
    call(endpoint, Method::PUT, &path, value.to_string()).await
}

/// `GET /kv/{key}?consistency=...`.
pub async fn get(endpoint: &str, key: &str, consistency: &str) -> Reply {
    let path = format!("/kv/{}?consistency={consistency}", encode_key(key));
    call(endpoint, Method::GET, &path, Bytes::new()).await
}
