//! The command line: subcommands and flags (clap), and the checks that turn `serve`'s flags into
//! [`ServeOptions`]. A flag that does not parse, or flags that do not fit together, end the
//! program with a message and exit code 2.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use raftor::network::tcp::TcpConfig;
use raftor::{Config, NodeId};

use crate::directory::Addrs;
use crate::node::ServeOptions;

/// The endpoints `raftor-kv cluster` serves, the client commands' default.
pub const DEFAULT_ENDPOINTS: &str =
    "http://127.0.0.1:8001,http://127.0.0.2:8002,http://127.0.0.3:8003";

/// A replicated key-value server on raftor, and its client.
#[derive(Debug, Parser)]
#[command(name = "raftor-kv", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run one node of a cluster (until SIGTERM or Ctrl-C).
    Serve(Box<ServeArgs>),
    /// Run a local 3-node cluster as child processes (until Ctrl-C).
    Cluster(ClusterArgs),
    /// A scripted tour: writes, kill -9 the leader, a new election, restart, catch-up; exits
    /// non-zero if an acknowledged write is lost.
    Demo(DemoArgs),
    /// Set KEY to VALUE.
    Put {
        #[command(flatten)]
        endpoints: EndpointArgs,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Print KEY's value.
    Get {
        #[command(flatten)]
        endpoints: EndpointArgs,
        /// The key.
        key: String,
        /// linearizable, lease or stale.
        #[arg(long, default_value = "linearizable")]
        consistency: String,
    },
    /// Delete KEY.
    Delete {
        #[command(flatten)]
        endpoints: EndpointArgs,
        /// The key.
        key: String,
    },
    /// Compare-and-set KEY: set it to --value (absent: delete) if it holds --expected (absent:
    /// if the key is absent).
    Cas {
        #[command(flatten)]
        endpoints: EndpointArgs,
        /// The key.
        key: String,
        /// The value KEY must hold; leave out to require that KEY is absent.
        #[arg(long)]
        expected: Option<String>,
        /// The new value; leave out to delete KEY.
        #[arg(long)]
        value: Option<String>,
    },
    /// Show every endpoint's view of the cluster.
    Status {
        #[command(flatten)]
        endpoints: EndpointArgs,
    },
    /// Show the voters and learners.
    Members {
        #[command(flatten)]
        endpoints: EndpointArgs,
    },
    /// Add node ID (started with `serve --join`) as a learner.
    AddLearner {
        #[command(flatten)]
        endpoints: EndpointArgs,
        /// The new node's id.
        id: u64,
        /// Its raft address.
        raft_addr: SocketAddr,
        /// Its HTTP address.
        http_addr: SocketAddr,
    },
    /// Make exactly these nodes the voters (comma-separated ids).
    SetVoters {
        #[command(flatten)]
        endpoints: EndpointArgs,
        /// The voters, e.g. 1,2,3,4.
        #[arg(value_delimiter = ',', required = true)]
        voters: Vec<u64>,
    },
    /// Measure writes/s and linearizable reads/s with latency percentiles, against any
    /// endpoints.
    Bench {
        #[command(flatten)]
        endpoints: EndpointArgs,
        /// Concurrent clients to try, each with one request in flight.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        clients: Vec<usize>,
        /// Value sizes to try, in bytes.
        #[arg(long, value_delimiter = ',', default_value = "0,256")]
        value_bytes: Vec<usize>,
        /// How long each phase (writes, then reads) runs: 10s, 500ms, 2m.
        #[arg(long, default_value = "5s", value_parser = crate::bench::parse_duration)]
        duration: Duration,
        /// The HTTP API the endpoints speak: raftor-kv's, or etcd v3's JSON gateway.
        #[arg(long, value_enum, default_value = "raftor")]
        api: crate::bench::Api,
        /// The phases to run for each combination, in order.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "writes,reads"
        )]
        phases: Vec<crate::bench::Phase>,
    },
    /// Hand leadership to node TO.
    TransferLeader {
        #[command(flatten)]
        endpoints: EndpointArgs,
        /// The new leader.
        to: u64,
    },
}

/// Where the client commands send their requests.
#[derive(Debug, Clone, Args)]
pub struct EndpointArgs {
    /// Nodes' HTTP endpoints, comma-separated; tried in order until one answers.
    #[arg(long, env = "RAFTOR_KV_ENDPOINTS", default_value = DEFAULT_ENDPOINTS)]
    pub endpoints: String,
    /// How long to wait for an answer, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
}

/// `raftor-kv serve`.
#[derive(Debug, Args)]
#[command(after_help = "\
PEERS: comma-separated ID=RAFT_ADDR@HTTP_ADDR, e.g.
  --peers 1=127.0.0.1:7001@127.0.0.1:8001,2=127.0.0.2:7002@127.0.0.2:8002,3=127.0.0.3:7003@127.0.0.3:8003
Every node of a cluster gets the same --peers; the first start bootstraps the cluster of those
nodes, a restart recovers from --data-dir. The HTTP part (@HTTP_ADDR) may be left out: nodes also
publish their own addresses through the log once a leader is elected. A node to be added later
starts with --join and --peers naming the existing nodes, then `raftor-kv add-learner`.")]
pub struct ServeArgs {
    /// This node's id (1 or more).
    #[arg(long)]
    pub id: u64,
    /// Where the raft transport listens (default: this node's entry in --peers).
    #[arg(long)]
    pub raft_addr: Option<SocketAddr>,
    /// Where the HTTP API listens (default: this node's entry in --peers).
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// The cluster's nodes: ID=RAFT_ADDR@HTTP_ADDR,... (see below).
    #[arg(long, value_parser = parse_peers)]
    pub peers: Peers,
    /// Where the write-ahead log and snapshots live.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Do not bootstrap: wait to be added to a running cluster (`add-learner`).
    #[arg(long)]
    pub join: bool,
    /// Names the cluster in the transport's handshake; nodes of other clusters are refused.
    #[arg(long, default_value = "raftor-kv")]
    pub cluster_id: String,
    /// Length of one protocol tick, in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub tick_ms: u64,
    /// Election timeout: randomized between this and twice this, in milliseconds.
    #[arg(long, default_value_t = 150)]
    pub election_timeout_ms: u64,
    /// How often the leader sends heartbeats, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub heartbeat_ms: u64,
    /// How long a request may wait for a leader, a commit or a read, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub request_timeout_ms: u64,
    /// When to snapshot.
    #[command(flatten)]
    pub snapshot: SnapshotArgs,
    /// The largest value accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_value_bytes: usize,
    /// Threads serving HTTP, the raft transport and the node: 1 runs them all on one thread
    /// (the node's actor included; the log's IO keeps its own); 0 is one per core, with the
    /// node on a thread of its own. `raftor-kv cluster` starts its nodes with 1, as they share
    /// one machine.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// When a node snapshots and compacts its log: `serve` takes these, and `cluster` hands them to
/// its nodes.
///
/// The entry count is etcd's default `--snapshot-count`; the byte count bounds the log a node
/// holds (in memory and on disk) between two snapshots when values are large: 100,000 writes of
/// 4 KiB would be 400 MB.
#[derive(Debug, Clone, Args)]
pub struct SnapshotArgs {
    /// Snapshot (and compact the log) every this many applied entries; 0: no entry trigger.
    #[arg(long, default_value_t = 100_000)]
    pub snapshot_threshold: u64,
    /// Also snapshot once the entries applied since the last snapshot hold this many bytes of
    /// commands; 0: no byte trigger (both 0 turns compaction off).
    #[arg(long, default_value_t = 128 << 20)]
    pub snapshot_threshold_bytes: u64,
    /// Entries kept in the log behind a snapshot, for followers slightly behind.
    #[arg(long, default_value_t = 1_000)]
    pub snapshot_keep_tail: u64,
}

impl SnapshotArgs {
    /// The same settings as `serve` flags.
    pub fn to_flags(&self) -> Vec<String> {
        vec![
            format!("--snapshot-threshold={}", self.snapshot_threshold),
            format!(
                "--snapshot-threshold-bytes={}",
                self.snapshot_threshold_bytes
            ),
            format!("--snapshot-keep-tail={}", self.snapshot_keep_tail),
        ]
    }
}

/// `raftor-kv cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Where the nodes keep their data (one directory per node).
    #[arg(long, default_value = "./raftor-data")]
    pub data_dir: PathBuf,
    /// Node N's raft transport listens on port BASE+N.
    #[arg(long, default_value_t = 7000)]
    pub raft_base_port: u16,
    /// Node N's HTTP API listens on port BASE+N.
    #[arg(long, default_value_t = 8000)]
    pub http_base_port: u16,
    /// When the nodes snapshot.
    #[command(flatten)]
    pub snapshot: SnapshotArgs,
}

/// `raftor-kv demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Writes before and after the leader is killed (each).
    #[arg(long, default_value_t = 200)]
    pub writes: u64,
    /// Keep the nodes' data and logs (in a temporary directory) after the demo.
    #[arg(long)]
    pub keep: bool,
}

/// The parsed `--peers` flag.
pub type Peers = BTreeMap<NodeId, Addrs>;

/// Parses `ID=RAFT_ADDR[@HTTP_ADDR],...`.
pub fn parse_peers(value: &str) -> Result<Peers, String> {
    let mut peers = Peers::new();
    for item in value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (id, addrs) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not ID=RAFT_ADDR@HTTP_ADDR"))?;
        let id: u64 = id
            .parse()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| format!("{id:?} is not a node id (1 or more)"))?;
        let (raft, http) = match addrs.split_once('@') {
            Some((raft, http)) => (raft, Some(http)),
            None => (addrs, None),
        };
        let addr = |text: &str| -> Result<SocketAddr, String> {
            text.parse()
                .map_err(|_| format!("{text:?} is not an IP:PORT address"))
        };
        let addrs = Addrs {
            raft: addr(raft)?,
            http: http.map(addr).transpose()?,
        };
        if peers.insert(NodeId(id), addrs).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    if peers.is_empty() {
        return Err("no peers given".into());
    }
    Ok(peers)
}

impl ServeArgs {
    /// Checks the flags together and builds the node's options.
    pub fn into_options(self) -> Result<ServeOptions, String> {
        let id = NodeId(self.id);
        if self.id == 0 {
            return Err("--id must be 1 or more".into());
        }
        let own = self.peers.get(&id).copied();
        if own.is_none() && !self.join {
            return Err(format!(
                "node {id} is not in --peers; list it there, or pass --join to join a running cluster"
            ));
        }
        let raft_addr = self
            .raft_addr
            .or(own.map(|addrs| addrs.raft))
            .ok_or("--raft-addr is needed when --peers does not list this node")?;
        let http_addr = self
            .http_addr
            .or(own.and_then(|addrs| addrs.http))
            .ok_or("--http-addr is needed when --peers does not give this node's HTTP address")?;
        if own.is_some_and(|addrs| addrs.raft != raft_addr) {
            return Err(format!(
                "--raft-addr {raft_addr} differs from node {id}'s address in --peers"
            ));
        }
        let config = self.config()?;
        let tcp = TcpConfig {
            cluster_id: self.cluster_id.clone(),
            ..TcpConfig::default()
        }
        .validate()
        .map_err(|error| error.to_string())?;
        if self.max_value_bytes == 0 || self.max_value_bytes > 8 << 20 {
            return Err("--max-value-bytes must be between 1 and 8 MiB".into());
        }
        Ok(ServeOptions {
            id,
            raft_addr,
            http_addr,
            peers: self.peers,
            data_dir: self.data_dir,
            join: self.join,
            config,
            tcp,
            max_value_bytes: self.max_value_bytes,
        })
    }

    /// The raft configuration the timing and snapshot flags describe.
    fn config(&self) -> Result<Config, String> {
        if self.tick_ms == 0 {
            return Err("--tick-ms must be 1 or more".into());
        }
        let election_ticks = self.election_timeout_ms / self.tick_ms;
        let heartbeat_ticks = (self.heartbeat_ms / self.tick_ms).max(1);
        let config = Config {
            tick_interval: Duration::from_millis(self.tick_ms),
            election_timeout_min_ticks: election_ticks,
            election_timeout_max_ticks: election_ticks * 2,
            heartbeat_interval_ticks: heartbeat_ticks,
            lease_drift_margin_ticks: Config::default()
                .lease_drift_margin_ticks
                .min(election_ticks.saturating_sub(1)),
            client_timeout: Duration::from_millis(self.request_timeout_ms),
            snapshot_threshold_entries: self.snapshot.snapshot_threshold,
            snapshot_threshold_bytes: self.snapshot.snapshot_threshold_bytes,
            snapshot_keep_tail_entries: self.snapshot.snapshot_keep_tail,
            ..Config::default()
        };
        config
            .validate()
            .map_err(|error| format!("timing flags: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_with_and_without_http() {
        let peers =
            parse_peers("1=127.0.0.1:7001@127.0.0.1:8001, 2=127.0.0.2:7002").expect("valid peers");
        assert_eq!(peers.len(), 2);
        assert_eq!(
            peers[&NodeId(1)].http,
            Some("127.0.0.1:8001".parse().expect("addr"))
        );
        assert_eq!(peers[&NodeId(2)].http, None);
    }

    #[test]
    fn bad_peers_are_refused() {
        for bad in [
            "",
            "1",
            "0=127.0.0.1:1",
            "x=127.0.0.1:1",
            "1=localhost",
            "1=127.0.0.1:1@nope",
            "1=127.0.0.1:1,1=127.0.0.1:2",
        ] {
            assert!(parse_peers(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn serve_flags_are_checked_together() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["raftor-kv", "serve", "--data-dir", "/tmp/x"];
            argv.extend_from_slice(args);
            match Cli::try_parse_from(argv).map(|cli| cli.command) {
                Ok(Cmd::Serve(args)) => args.into_options(),
                Ok(_) => Err("not serve".into()),
                Err(error) => Err(error.to_string()),
            }
        };
        let peers = "1=127.0.0.1:7001@127.0.0.1:8001,2=127.0.0.1:7002@127.0.0.1:8002";
        assert!(parse(&["--id", "1", "--peers", peers]).is_ok());
        assert!(parse(&["--id", "3", "--peers", peers]).is_err());
        assert!(parse(&["--id", "1", "--peers", peers, "--election-timeout-ms", "10"]).is_err());
        assert!(parse(&["--id", "1", "--peers", peers, "--raft-addr", "127.0.0.1:1"]).is_err());
        let join = [
            "--id",
            "3",
            "--join",
            "--peers",
            peers,
            "--raft-addr",
            "127.0.0.1:7003",
            "--http-addr",
            "127.0.0.1:8003",
        ];
        assert!(parse(&join).is_ok());
    }

    #[test]
    fn cluster_hands_its_snapshot_flags_to_every_node() {
        let argv = [
            "raftor-kv",
            "cluster",
            "--snapshot-threshold",
            "7",
            "--snapshot-threshold-bytes=0",
        ];
        let Ok(Cmd::Cluster(cluster)) = Cli::try_parse_from(argv).map(|cli| cli.command) else {
            panic!("cluster flags refused");
        };
        let peers = "1=127.0.0.1:7001@127.0.0.1:8001".to_string();
        let mut serve = vec!["raftor-kv", "serve", "--data-dir", "/tmp/x", "--id", "1"];
        serve.extend(["--peers", &peers]);
        let flags = cluster.snapshot.to_flags();
        serve.extend(flags.iter().map(String::as_str));
        let Ok(Cmd::Serve(serve)) = Cli::try_parse_from(serve).map(|cli| cli.command) else {
            panic!("serve refused the cluster's flags: {flags:?}");
        };
        let config = serve.into_options().expect("valid").config;
        assert_eq!(config.snapshot_threshold_entries, 7);
        assert_eq!(config.snapshot_threshold_bytes, 0);
        assert_eq!(config.snapshot_keep_tail_entries, 1_000, "the default");
    }
}
