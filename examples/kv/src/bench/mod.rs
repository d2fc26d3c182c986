//! `raftor-kv bench`: a closed-loop load generator against any set of HTTP endpoints.
//!
//! ```text
//!  for clients in --clients, for value size in --value-bytes:
//!      writes: each client, its own connection (to endpoint i mod n): PUT, wait, PUT ... for --duration
//!      reads:  the same, GET ?consistency=linearizable of the keys just written
//!  ─► one line per phase: operations/s, latency p50 / p99 / p99.9, errors
//! ```
//!
//! Each client has one request in flight at a time, so throughput grows with clients until the
//! leader (every write, and every linearizable read's confirmation, goes through it) saturates.
//!
//! `--api` picks the request shapes, so the same load can be pointed at another system:
//! `raftor` (this server's `PUT /kv/{key}` and `GET /kv/{key}?consistency=linearizable`) or
//! `etcd` (etcd v3's JSON gateway: `POST /v3/kv/put` and `POST /v3/kv/range`, whose reads are
//! linearizable by default). Everything else — connections, clients, keys, timing — is the same.
//!
//! The clients speak HTTP through [`wire`], the tool's own minimal HTTP/1.1 client: the tool
//! shares the machine with the servers it measures, so it should take as little CPU as it can.

pub mod wire;

use std::time::Duration;

use hyper::body::Bytes;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{self, Endpoints};

use wire::WireConnection;

/// Keys per client: writes cycle through them, reads read them.
const KEYS_PER_CLIENT: u64 = 100;

/// How long one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Which HTTP API the endpoints speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Api {
    /// raftor-kv's own API.
    Raftor,
    /// etcd v3's gRPC-JSON gateway (etcd 3.4 and later).
    Etcd,
}

impl Api {
    /// The request that writes `value` under `key`, or reads `key` linearizably.
    fn request(self, write: bool, key: &str, value: &Bytes) -> (&'static str, String, Bytes) {
        match (self, write) {
            (Api::Raftor, true) => (
                "PUT",
                format!("/kv/{}", client::encode_key(key)),
                value.clone(),
            ),
            (Api::Raftor, false) => (
                "GET",
                format!("/kv/{}?consistency=linearizable", client::encode_key(key)),
                Bytes::new(),
            ),
            (Api::Etcd, true) => (
                "POST",
                "/v3/kv/put".to_string(),
                Bytes::from(format!(
                    r#"{{"key":"{}","value":"{}"}}"#,
                    base64(key.as_bytes()),
                    base64(value)
                )),
            ),
            (Api::Etcd, false) => (
                "POST",
                "/v3/kv/range".to_string(),
                Bytes::from(format!(r#"{{"key":"{}"}}"#, base64(key.as_bytes()))),
            ),
        }
    }
}

/// Standard base64 with padding, as etcd's gateway expects for `bytes` fields.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(group >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One phase of a combination: every client writing, or every client reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// Writes of the value size, to keys the clients cycle through.
    Writes,
    /// Linearizable reads of those keys.
    Reads,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    /// The nodes to drive.
    pub endpoints: Endpoints,
    /// The API they speak.
    pub api: Api,
    /// Which phases to run: writes, reads, or both (writes first).
    pub phases: Vec<Phase>,
    /// Client counts to try.
    pub clients: Vec<usize>,
    /// Value sizes to try, in bytes.
    pub value_bytes: Vec<usize>,
    /// How long each phase runs.
    pub duration: Duration,
}

/// What one client saw in one phase.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
}

/// Runs every combination and prints a line per phase.
pub async fn run(plan: BenchPlan) -> anyhow::Result<()> {
    println!(
        "{:<6} {:>7} {:>7} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "op", "clients", "value_B", "ops/s", "p50_ms", "p99_ms", "p99.9_ms", "errors"
    );
    for &clients in &plan.clients {
        for &value_bytes in &plan.value_bytes {
            for write in plan.phases.iter().map(|&phase| phase == Phase::Writes) {
                let tally = phase(&plan, clients, value_bytes, write).await?;
                report(write, clients, value_bytes, plan.duration, tally);
            }
        }
    }
    Ok(())
}

async fn phase(
    plan: &BenchPlan,
    clients: usize,
    value_bytes: usize,
    write: bool,
) -> anyhow::Result<Tally> {
    let deadline = Instant::now() + plan.duration;
    let value = Bytes::from(vec![b'x'; value_bytes]);
    let authorities = plan.endpoints.authorities();
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let authority = authorities[client % authorities.len()].clone();
        let connection = WireConnection::connect(&authority, REQUEST_TIMEOUT)
            .await
            .map_err(|error| anyhow::anyhow!("cannot connect to {authority}: {error}"))?;
        let value = value.clone();
        tasks.spawn(drive(connection, plan.api, client, write, value, deadline));
    }
    let mut total = Tally::default();
    while let Some(done) = tasks.join_next().await {
        let tally = done?;
        total.latencies.extend(tally.latencies);
        total.errors += tally.errors;
    }
    Ok(total)
}

/// One client's closed loop until `deadline`.
async fn drive(
    mut connection: WireConnection,
    api: Api,
    client: usize,
    write: bool,
    value: Bytes,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut sequence = 0u64;
    while Instant::now() < deadline {
        let key = format!("bench-{client}-{}", sequence % KEYS_PER_CLIENT);
        sequence += 1;
        let (method, path, body) = api.request(write, &key, &value);
        let started = Instant::now();
        let sent = connection.send(method, &path, &body, REQUEST_TIMEOUT).await;
        match sent {
            // A read of a key this client never wrote (the write phase was short) is a 404.
            Ok(status) if (200..300).contains(&status) || (!write && status == 404) => {
                tally.latencies.push(started.elapsed());
            }
            Ok(_) => tally.errors += 1,
            Err(_) => {
                tally.errors += 1;
                break; // the connection is gone; this client stops
            }
        }
    }
    tally
}

fn report(write: bool, clients: usize, value_bytes: usize, duration: Duration, mut tally: Tally) {
    tally.latencies.sort_unstable();
    let count = tally.latencies.len();
    let rate = count as f64 / duration.as_secs_f64();
    let percentile = |p: f64| -> f64 {
        if count == 0 {
            return f64::NAN;
        }
        let rank = ((p * count as f64).ceil() as usize).clamp(1, count) - 1;
        tally.latencies[rank].as_secs_f64() * 1e3
    };
    println!(
        "{:<6} {clients:>7} {value_bytes:>7} {rate:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}",
        if write { "write" } else { "read" },
        percentile(0.50),
        percentile(0.99),
        percentile(0.999),
        tally.errors
    );
}

/// Parses `10s`, `500ms`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a duration such as 10s, 500ms or 2m");
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |at| text.split_at(at));
    let number: u64 = number.parse().map_err(|_| bad())?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" | "" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        _ => return Err(bad()),
    };
    if duration.is_zero() {
        return Err(bad());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn etcd_requests_are_gateway_json() {
        let (method, path, body) = Api::Etcd.request(true, "k", &Bytes::from_static(b"v"));
        assert_eq!((method, path.as_str()), ("POST", "/v3/kv/put"));
        assert_eq!(&body[..], br#"{"key":"aw==","value":"dg=="}"#);
        let (method, path, body) = Api::Etcd.request(false, "k", &Bytes::new());
        assert_eq!((method, path.as_str()), ("POST", "/v3/kv/range"));
        assert_eq!(&body[..], br#"{"key":"aw=="}"#);
    }
}
