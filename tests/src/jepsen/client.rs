//! The clients: tasks that each issue one operation at a time (get, put, delete, cas) to a random
//! node over HTTP, on a small window of keys, and record each operation in the shared history.
//!
//! ```text
//!  worker i ─► pick node, key (window moves every KEY_PERIOD), op ─► HTTP ─► classify ─► Record
//! ```
//!
//! The key window moves on so that no key's history grows past what the checker searches
//! quickly: operations of unknown outcome stay open forever and multiply the orders to try.
//! Every value written is unique (`c<client>-<seq>`), so a read names the write it saw.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::Method;
use raftor_kv::client::{self, encode_key, ClientError, Reply};
use serde_json::{json, Value};

use super::history::{KvOp, KvOut, Outcome, Record};
use crate::rng::TestRng;

/// How long a client waits for an answer: longer than the servers' request timeout (2 s), so a
/// server's own verdict (`503`, `504`) normally arrives first.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(4);

/// How many keys are in use at a time.
const KEYS_AT_ONCE: u64 = 3;

/// How long a window of keys is used before the next.
const KEY_PERIOD: Duration = Duration::from_secs(2);

/// How long a client pauses after an operation that failed or timed out.
const FAILURE_PAUSE: Duration = Duration::from_millis(50);

/// What the workers share.
#[derive(Clone)]
pub struct Workload {
    /// Every node's HTTP endpoint.
    pub endpoints: Arc<Vec<String>>,
    /// When the run started: times in records are microseconds since then.
    pub started: Instant,
    /// The history.
    pub records: Arc<Mutex<Vec<Record>>>,
    /// Set to stop the workers after their current operation.
    pub stop: Arc<AtomicBool>,
}

impl Workload {
    /// Microseconds since the run started.
    pub fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Every key any worker may have used so far.
    pub fn keys_so_far(&self) -> Vec<String> {
        let windows = self.started.elapsed().as_millis() / KEY_PERIOD.as_millis() + 1;
        let last = u64::try_from(windows).unwrap_or(u64::MAX) * KEYS_AT_ONCE;
        (0..last).map(key_name).collect()
    }

    /// A copy of the history.
    pub fn history(&self) -> Vec<Record> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

fn key_name(n: u64) -> String {
    format!("k{n}")
}

/// One worker: operations until `stop`.
pub async fn worker(workload: Workload, client: u64, seed: u64) {
    let mut rng = TestRng::new(seed);
    let mut seen: HashMap<String, Option<String>> = HashMap::new();
    let mut seq = 0u64;
    while !workload.stop.load(Ordering::Relaxed) {
        let window = workload.started.elapsed().as_millis() / KEY_PERIOD.as_millis();
        let first = u64::try_from(window).unwrap_or(0) * KEYS_AT_ONCE;
        let key = key_name(first + rng.below(KEYS_AT_ONCE));
        seq += 1;
        let op = pick_op(&mut rng, seen.get(&key).cloned().flatten(), client, seq);
        let endpoint = &workload.endpoints[rng.below(workload.endpoints.len() as u64) as usize];
        let call = workload.now();
        let outcome = perform(endpoint, &key, &op).await;
        let ret = workload.now();
        remember(&mut seen, &key, &op, &outcome);
        let failed = !matches!(outcome, Outcome::Ok(_));
        let record = Record {
            client,
            key,
            op,
            call,
            ret,
            outcome,
        };
        if let Ok(mut records) = workload.records.lock() {
            records.push(record);
        }
        if failed {
            // Do not spin on a dead node: a refused connection fails in microseconds.
            tokio::time::sleep(FAILURE_PAUSE).await;
        }
    }
}

/// Gets 40%, puts 25%, CAS 25%, deletes 10%. A CAS expects the last value this client saw, or
/// (half as often) absence; one in ten deletes.
fn pick_op(rng: &mut TestRng, last_seen: Option<String>, client: u64, seq: u64) -> KvOp {
    let value = format!("c{client}-{seq}");
    match rng.below(100) {
        0..40 => KvOp::Get,
        40..65 => KvOp::Put(value),
        65..90 => KvOp::Cas {
            expected: if rng.below(3) == 0 { None } else { last_seen },
            value: if rng.below(10) == 0 {
                None
            } else {
                Some(value)
            },
        },
        _ => KvOp::Delete,
    }
}

/// Tracks the last value this client saw per key (what its next CAS expects).
fn remember(seen: &mut HashMap<String, Option<String>>, key: &str, op: &KvOp, outcome: &Outcome) {
    let value = match (op, outcome) {
        (_, Outcome::Ok(KvOut::Value(value) | KvOut::Mismatch(value))) => value.clone(),
        (KvOp::Put(value), Outcome::Ok(_)) => Some(value.clone()),
        (KvOp::Cas { value, .. }, Outcome::Ok(KvOut::Swapped)) => value.clone(),
        (KvOp::Delete, Outcome::Ok(_)) => None,
        _ => return,
    };
    seen.insert(key.to_string(), value);
}

/// Sends `op` on `key` to `endpoint` and classifies the answer.
pub async fn perform(endpoint: &str, key: &str, op: &KvOp) -> Outcome {
    let path = format!("/kv/{}", encode_key(key));
    let (method, path, body) = match op {
        KvOp::Get => (Method::GET, path, Bytes::new()),
        KvOp::Put(value) => (Method::PUT, path, Bytes::from(value.clone())),
        KvOp::Delete => (Method::DELETE, path, Bytes::new()),
        KvOp::Cas { expected, value } => {
            let body = json!({ "expected": expected, "value": value }).to_string();
            (Method::POST, format!("{path}/cas"), Bytes::from(body))
        }
    };
    match send(endpoint, method, &path, body).await {
        Ok(reply) => classify(op, &reply),
        // Refused before anything was sent: surely no effect.
        Err(ClientError::Connect { .. }) => Outcome::Fail,
        Err(_) => Outcome::Unknown,
    }
}

/// One request on a fresh connection.
pub async fn send(
    endpoint: &str,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<Reply, ClientError> {
    let authority = client::authority(endpoint)?;
    client::request(authority, method, path, body, CLIENT_TIMEOUT).await
}

/// What an HTTP answer means for `op` (see the server's `http/reply.rs` for the statuses).
fn classify(op: &KvOp, reply: &Reply) -> Outcome {
    let json = reply.json().unwrap_or(Value::Null);
    let error = json["error"].as_str().unwrap_or("");
    match (op, reply.status) {
        (KvOp::Get, 200) => Outcome::Ok(KvOut::Value(Some(reply.text()))),
        (KvOp::Get, 404) if error == "not found" => Outcome::Ok(KvOut::Value(None)),
        (KvOp::Put(_), 200) => Outcome::Ok(KvOut::Done),
        (KvOp::Delete, 200) => Outcome::Ok(KvOut::Deleted(json["existed"] == true)),
        (KvOp::Cas { .. }, 200) => Outcome::Ok(KvOut::Swapped),
        (KvOp::Cas { .. }, 409) if error == "cas mismatch" => {
            let current = json["current"].as_str().map(str::to_string);
            Outcome::Ok(KvOut::Mismatch(current))
        }
        // A node shutting down may have started the write; every other 503 is "nothing done".
        (_, 503) if error != "shutting down" => Outcome::Fail,
        _ => Outcome::Unknown,
    }
}

/// Whether a write of `key` through `endpoint` succeeds now (the recovery probe).
pub async fn probe_write(endpoint: &str, key: &str) -> bool {
    let op = KvOp::Put(format!("probe-{}", std::process::id()));
    matches!(perform(endpoint, key, &op).await, Outcome::Ok(_))
}

/// `consistency=stale` read of `key` on one node: `Some(value)` if it answered.
pub async fn stale_read(endpoint: &str, key: &str) -> Option<Option<String>> {
    let path = format!("/kv/{}?consistency=stale", encode_key(key));
    let reply = send(endpoint, Method::GET, &path, Bytes::new())
        .await
        .ok()?;
    match reply.status {
        200 => Some(Some(reply.text())),
        404 => Some(None),
        _ => None,
    }
}

/// `GET /cluster` on one node, if it answers.
pub async fn cluster_view(endpoint: &str) -> Option<Value> {
    let authority = client::authority(endpoint).ok()?;
    let timeout = Duration::from_millis(500);
    let reply = client::request(authority, Method::GET, "/cluster", Bytes::new(), timeout).await;
    reply.ok()?.json()
}

/// `POST` a JSON body to a cluster route on one node; the answer's status and body.
pub async fn post_json(endpoint: &str, path: &str, body: &Value) -> Result<Reply, ClientError> {
    send(endpoint, Method::POST, path, Bytes::from(body.to_string())).await
}
