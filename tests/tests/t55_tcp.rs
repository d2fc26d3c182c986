//! The TCP transport (`raftor::network::tcp`) on real loopback sockets: a three-node cluster
//! elects, commits, serves linearizable reads and takes back a killed-and-restarted node;
//! concurrent RPCs share one connection; connections come from the node's own IP; strangers are
//! refused at the handshake; bad bytes close only their connection; a silent peer costs one RPC
//! timeout; a 1 MiB InstallSnapshot chunk round-trips.
//!
//! Real time, not paused: sockets need it. Every wait is bounded, and generously, so that a
//! loaded machine slows the tests down rather than failing them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use raftor::message::{
    AppendEntriesRequest, AppendEntriesResponse, AppendOutcome, ForwardRequest, ForwardResponse,
    InstallSnapshotRequest, InstallSnapshotResponse, ReadIndexRequest, ReadIndexResponse,
    SnapshotOutcome, VoteRequest, VoteResponse,
};
use raftor::network::tcp::{ServerHandle, TcpConfig, TcpNetwork, TcpServer};
use raftor::types::SnapshotMeta;
use raftor::{
    ClientWriteError, Config, LogId, LogIndex, MemStorage, Membership, Network, NetworkError,
    NodeId, Raft, RaftRpc, ReadLevel, Term,
};
use raftor_tests::{Ledger, Recorder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Barrier;
use tokio::time::{sleep, Instant};

/// The bound on every wait.
const WAIT: Duration = Duration::from_secs(20);

/// Logs to the test's output, filtered by `RUST_LOG` (`RUST_LOG=raftor=debug` shows every
/// connection opened, refused and closed).
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn any_port(last: u8) -> SocketAddr {
    SocketAddr::new(ip(last), 0)
}

fn tcp_config(cluster_id: &str) -> TcpConfig {
    TcpConfig {
        cluster_id: cluster_id.into(),
        ..TcpConfig::default()
    }
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("finished in time")
}

/// Polls `probe` until it returns something, for at most [`WAIT`].
async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

// --- A cluster of real nodes over TCP ---------------------------------------------------------

struct Node {
    raft: Raft<Recorder>,
    server: ServerHandle,
}

struct Cluster {
    addrs: BTreeMap<NodeId, SocketAddr>,
    storage: BTreeMap<NodeId, MemStorage>,
    running: BTreeMap<NodeId, Node>,
    ledger: Ledger,
}

impl Cluster {
    /// Nodes 1..=3 on 127.0.0.1..=3, each on a free port.
    async fn start() -> Cluster {
        let mut servers = BTreeMap::new();
        for last in 1..=3u8 {
            let id = NodeId(u64::from(last));
            let server = TcpServer::bind(id, any_port(last), tcp_config("t55"))
                .await
                .expect("bind");
            servers.insert(id, server);
        }
        let mut cluster = Cluster {
            addrs: servers
                .iter()
                .map(|(id, s)| (*id, s.local_addr()))
                .collect(),
            storage: servers.keys().map(|id| (*id, MemStorage::new())).collect(),
            running: BTreeMap::new(),
            ledger: Ledger::default(),
        };
        for (id, server) in servers {
            cluster.launch(id, server).await;
        }
        cluster
    }

    /// Starts node `id` behind `server`: bind, then start the Raft with a `TcpNetwork`, then
    /// serve the Raft handle.
    async fn launch(&mut self, id: NodeId, server: TcpServer) {
        let network = TcpNetwork::new(id, self.addrs[&id], self.addrs.clone(), tcp_config("t55"))
            .expect("network");
        let config = Config {
            seed: Some(id.0),
            ..Config::default()
        };
        let raft = Raft::bootstrap(
            id,
            self.addrs.keys().copied(),
            config,
            network,
            self.storage[&id].clone(),
            Recorder::new(id, self.ledger.clone()),
        )
        .await
        .expect("start");
        let server = server.serve(Arc::new(raft.clone()));
        self.running.insert(id, Node { raft, server });
    }

    /// Stops node `id` as a crash: its server and its Raft stop; its storage survives.
    async fn kill(&mut self, id: NodeId) {
        let node = self.running.remove(&id).expect("running");
        node.server.shutdown().await;
        node.raft.shutdown().await;
    }

    /// Starts node `id` again from its storage, on its old address.
    async fn restart(&mut self, id: NodeId) {
        let server = TcpServer::bind(id, self.addrs[&id], tcp_config("t55"))
            .await
            .expect("rebind");
        self.launch(id, server).await;
    }

    fn raft(&self, id: NodeId) -> &Raft<Recorder> {
        &self.running[&id].raft
    }

    /// The leader every running node agrees on.
    async fn agreed_leader(&self) -> NodeId {
        eventually("an agreed leader", || {
            let views: Vec<Option<NodeId>> = self
                .running
                .values()
                .map(|node| node.raft.metrics().leader)
                .collect();
            let first = views.first().copied().flatten()?;
            let agreed = views.iter().all(|view| *view == Some(first));
            (agreed && self.running.contains_key(&first)).then_some(first)
        })
        .await
    }

    /// Writes `value` through node `via`, retrying while no leader is known; returns its index.
    async fn write(&self, via: NodeId, value: u64) -> LogIndex {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.raft(via).client_write(value).await {
                Ok(index) => return index,
                Err(error) if Instant::now() < deadline => {
                    retryable(&error);
                    sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("write of {value} via node {via} failed: {error}"),
            }
        }
    }

    async fn shutdown(mut self) {
        for id in self.running.keys().copied().collect::<Vec<_>>() {
            self.kill(id).await;
        }
        self.ledger.check();
    }
}

/// Panics unless `error` is one a client retries while a cluster elects a leader.
fn retryable(error: &ClientWriteError) {
    assert!(
        matches!(
            error,
            ClientWriteError::NotLeader { .. }
                | ClientWriteError::Dropped { .. }
                | ClientWriteError::Timeout
                | ClientWriteError::Forward(_)
        ),
        "unexpected write error: {error}"
    );
}

/// Three nodes on 127.0.0.1-3 elect a leader, commit writes (one forwarded by a follower over
/// TCP), serve a linearizable read on a follower (its read index comes from the leader over
/// TCP), and take back their leader after it is killed and restarted: the others reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t55_a_cluster_over_tcp_elects_commits_reads_and_survives_a_restart() {
    logs();
    let mut cluster = Cluster::start().await;
    let leader = cluster.agreed_leader().await;
    let follower = *cluster.addrs.keys().find(|id| **id != leader).expect("one");
    for value in 1..=3 {
        cluster.write(leader, value).await;
    }
    let forwarded = cluster.write(follower, 4).await;
    assert_eq!(cluster.ledger.applied_at(leader, forwarded), Some(4));

    let seen = within(cluster.raft(follower).read(ReadLevel::Linearizable, |sm| {
        sm.applied().values().copied().collect::<Vec<u64>>()
    }))
    .await
    .expect("linearizable read on a follower");
    assert!(
        (1..=4).all(|value| seen.contains(&value)),
        "the read missed an acknowledged write: {seen:?}"
    );

    cluster.kill(leader).await;
    let new_leader = cluster.agreed_leader().await;
    assert_ne!(new_leader, leader);
    cluster.write(new_leader, 5).await;
    cluster.restart(leader).await;
    let last = cluster.write(new_leader, 6).await;
    eventually("the restarted node to catch up", || {
        (cluster.ledger.applied_at(leader, last) == Some(6)).then_some(())
    })
    .await;
    cluster.shutdown().await;
}

// --- A scripted node behind a server ----------------------------------------------------------

/// A node that answers from a script: votes once `gate` lets it (when set), never answers a
/// forwarded `hang`, keeps the last InstallSnapshot chunk it received.
#[derive(Default)]
struct Scripted {
    gate: Option<Arc<Barrier>>,
    chunk: Mutex<Option<InstallSnapshotRequest>>,
}

#[async_trait]
impl RaftRpc for Scripted {
    async fn append_entries(
        &self,
        req: AppendEntriesRequest,
    ) -> Result<AppendEntriesResponse, NetworkError> {
        Ok(AppendEntriesResponse {
            term: req.term,
            outcome: AppendOutcome::Success {
                match_index: req.prev_log_id.index,
            },
            round: req.round,
        })
    }

    async fn request_vote(&self, req: VoteRequest) -> Result<VoteResponse, NetworkError> {
        if let Some(gate) = &self.gate {
            gate.wait().await;
        }
        Ok(VoteResponse {
            term: req.term,
            granted: true,
            pre_vote: req.pre_vote,
        })
    }

    async fn forward_write(&self, req: ForwardRequest) -> Result<ForwardResponse, NetworkError> {
        if req.command == b"hang" {
            std::future::pending::<()>().await;
        }
        Ok(ForwardResponse::Applied(req.command))
    }

    async fn read_index(&self, _: ReadIndexRequest) -> Result<ReadIndexResponse, NetworkError> {
        Ok(ReadIndexResponse::Ready {
            read_index: LogIndex(7),
        })
    }

    async fn install_snapshot(
        &self,
        req: InstallSnapshotRequest,
    ) -> Result<InstallSnapshotResponse, NetworkError> {
        let resp = InstallSnapshotResponse {
            term: req.term,
            last_included: req.meta.last_included,
            outcome: SnapshotOutcome::Continue {
                next_offset: req.offset + req.data.len() as u64,
            },
            round: req.round,
        };
        *self.chunk.lock().expect("lock") = Some(req);
        Ok(resp)
    }

    async fn timeout_now(
        &self,
        req: raftor::message::TimeoutNowRequest,
    ) -> Result<raftor::message::TimeoutNowResponse, NetworkError> {
        Ok(raftor::message::TimeoutNowResponse {
            term: req.term,
            accepted: false,
        })
    }
}

/// Node 2 of cluster `t55`, serving `node` on 127.0.0.1.
async fn serve(node: Arc<Scripted>, config: TcpConfig) -> ServerHandle {
    let server = TcpServer::bind(NodeId(2), any_port(1), config)
        .await
        .expect("bind");
    server.serve(node)
}

/// Node `from`'s network on 127.0.0.1, reaching node `to` at `addr`.
fn network(from: u64, to: u64, addr: SocketAddr, config: TcpConfig) -> TcpNetwork {
    TcpNetwork::new(NodeId(from), any_port(1), [(NodeId(to), addr)], config).expect("network")
}

fn vote() -> VoteRequest {
    VoteRequest {
        term: Term(3),
        candidate_id: NodeId(1),
        last_log_id: LogId::new(Term(2), LogIndex(9)),
        pre_vote: false,
        transfer: false,
    }
}

/// A TCP proxy to `target` that counts the connections it accepts.
async fn counting_proxy(target: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(any_port(1)).await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, accepted)
}

/// 200 RPCs in flight at once to one peer travel over one connection, and the receiver
/// handles them concurrently: each vote is held until all 200 have arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t55_concurrent_rpcs_are_multiplexed_over_one_connection() {
    logs();
    const CALLS: usize = 200;
    let node = Arc::new(Scripted {
        gate: Some(Arc::new(Barrier::new(CALLS))),
        ..Scripted::default()
    });
    let server = serve(node, tcp_config("t55")).await;
    let (proxy, connections) = counting_proxy(server.local_addr()).await;
    let network = network(1, 2, proxy, tcp_config("t55"));
    let calls = (0..CALLS).map(|_| network.request_vote(NodeId(2), vote()));
    let results = within(join_all(calls)).await;
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|v| v.granted)));
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    server.shutdown().await;
}

/// A node on 127.0.0.2 connects to its peer on 127.0.0.3 from 127.0.0.2, so firewall rules on
/// addresses can partition nodes pairwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t55_outgoing_connections_come_from_the_nodes_own_ip() {
    logs();
    let listener = TcpListener::bind(any_port(3)).await.expect("bind");
    let peer = listener.local_addr().expect("address");
    let own = SocketAddr::new(ip(2), 4242);
    let network =
        TcpNetwork::new(NodeId(2), own, [(NodeId(3), peer)], tcp_config("t55")).expect("network");
    let call = tokio::spawn(async move { network.request_vote(NodeId(3), vote()).await });
    let (_stream, from) = within(listener.accept()).await.expect("accept");
    assert_eq!(from.ip(), ip(2));
    call.abort();
}

/// A node of another cluster is refused at the handshake, and so is a connection meant for
/// another node (a wrong address map); the caller's error says why, and the node keeps
/// serving its own cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t55_the_handshake_refuses_another_cluster_and_an_unexpected_node() {
    logs();
    let server = serve(Arc::default(), tcp_config("t55")).await;
    let addr = server.local_addr();

    let stranger = network(1, 2, addr, tcp_config("another"));
    let result = within(stranger.request_vote(NodeId(2), vote())).await;
    assert!(
        matches!(&result, Err(NetworkError::Transport(m)) if m.contains("cluster id \"another\"")),
        "{result:?}"
    );

    // Node 1 believes node 3 listens where node 2 does.
    let confused = network(1, 3, addr, tcp_config("t55"));
    let result = within(confused.request_vote(NodeId(3), vote())).await;
    assert!(
        matches!(&result, Err(NetworkError::Transport(m)) if m.contains("meant for node 3")),
        "{result:?}"
    );

    let member = network(1, 2, addr, tcp_config("t55"));
    assert!(within(member.request_vote(NodeId(2), vote())).await.is_ok());
    server.shutdown().await;
}

/// Reads until the peer closes the connection (bounded by [`WAIT`]).
async fn closed_by_peer(mut stream: TcpStream) {
    let mut buf = [0u8; 256];
    loop {
        match within(stream.read(&mut buf)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Bytes that are not the protocol, and a length prefix over the limit, close their own
/// connection; the node's established connections and new ones keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t55_garbage_and_oversized_frames_close_only_their_connection() {
    logs();
    let server = serve(Arc::default(), tcp_config("t55")).await;
    let addr = server.local_addr();
    let member = network(1, 2, addr, tcp_config("t55"));
    assert!(within(member.request_vote(NodeId(2), vote())).await.is_ok());

    let bad_inputs: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: raftor\r\n\r\n",
        &[0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3],
        &[0, 0, 0, 6, 0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0xFA],
    ];
    for bytes in bad_inputs {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(bytes).await.expect("write");
        closed_by_peer(stream).await;
    }

    assert!(within(member.request_vote(NodeId(2), vote())).await.is_ok());
    let newcomer = network(3, 2, addr, tcp_config("t55"));
    assert!(within(newcomer.request_vote(NodeId(2), vote()))
        .await
        .is_ok());
    server.shutdown().await;
}

/// An RPC the peer never answers fails with `Timeout` after its deadline, and so does one to a
/// peer that accepts connections but never completes the handshake; neither hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t55_an_rpc_the_peer_never_answers_times_out() {
    logs();
    let config = TcpConfig {
        forward_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        ..tcp_config("t55")
    };
    let server = serve(Arc::default(), config.clone()).await;
    let network = network(1, 2, server.local_addr(), config.clone());
    let started = Instant::now();
    let hang = ForwardRequest {
        command: b"hang".to_vec(),
    };
    let result = within(network.forward_write(NodeId(2), hang)).await;
    assert_eq!(result, Err(NetworkError::Timeout(NodeId(2))));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // The connection carries on.
    assert!(within(network.request_vote(NodeId(2), vote()))
        .await
        .is_ok());
    server.shutdown().await;

    let silent = TcpListener::bind(any_port(1)).await.expect("bind");
    let network = self::network(1, 2, silent.local_addr().expect("address"), config);
    let started = Instant::now();
    let result = within(network.request_vote(NodeId(2), vote())).await;
    assert_eq!(result, Err(NetworkError::Unreachable(NodeId(2))));
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// An InstallSnapshot chunk of 1 MiB (`Config::snapshot_chunk_bytes`) crosses intact, and the
/// follower's answer comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t55_a_one_mebibyte_install_snapshot_chunk_round_trips() {
    logs();
    let node = Arc::new(Scripted::default());
    let server = serve(Arc::clone(&node), tcp_config("t55")).await;
    let network = network(1, 2, server.local_addr(), tcp_config("t55"));
    let chunk_bytes = Config::default().snapshot_chunk_bytes;
    let req = InstallSnapshotRequest {
        term: Term(4),
        leader_id: NodeId(1),
        meta: SnapshotMeta {
            last_included: LogId::new(Term(3), LogIndex(5000)),
            membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
            size_bytes: 3 * chunk_bytes,
        },
        offset: chunk_bytes,
        data: (0..chunk_bytes).map(|i| (i * 31 % 251) as u8).collect(),
        done: false,
        round: 17,
    };
    let resp = within(network.install_snapshot(NodeId(2), req.clone()))
        .await
        .expect("answered");
    assert_eq!(
        resp.outcome,
        SnapshotOutcome::Continue {
            next_offset: 2 * chunk_bytes
        }
    );
    assert_eq!(resp.round, 17);
    assert_eq!(node.chunk.lock().expect("lock").as_ref(), Some(&req));
    server.shutdown().await;
}
