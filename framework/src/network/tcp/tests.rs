//! Unit tests of the TCP transport: frames, the handshake's rules, and a client and server on
//! real loopback sockets with a scripted node behind the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::{FrameError, Refusal};
use super::frame::{encode_frame, read_frame, Frame, RemoteError, RpcRequest, RpcResponse};
use super::handshake;
use super::{ServerHandle, TcpConfig, TcpNetwork, TcpServer};
use crate::message::*;
use crate::network::{Network, NetworkError, RaftRpc};
use crate::types::{LogId, LogIndex, NodeId, Term};

/// Bounds every wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// A scripted node: votes after `term` milliseconds, echoes forwarded commands, never answers
/// the command `hang`, and fails read-index requests as shutting down.
struct Scripted;

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
        tokio::time::sleep(Duration::from_millis(req.term.0)).await;
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
        Err(NetworkError::ShuttingDown(NodeId(2)))
    }

    async fn install_snapshot(
        &self,
        req: InstallSnapshotRequest,
    ) -> Result<InstallSnapshotResponse, NetworkError> {
        Ok(InstallSnapshotResponse {
            term: req.term,
            last_included: req.meta.last_included,
            outcome: crate::message::SnapshotOutcome::Continue {
                next_offset: req.offset + req.data.len() as u64,
            },
            round: req.round,
        })
    }

    async fn timeout_now(
        &self,
        req: crate::message::TimeoutNowRequest,
    ) -> Result<crate::message::TimeoutNowResponse, NetworkError> {
        Ok(crate::message::TimeoutNowResponse {
            term: req.term,
            accepted: false,
        })
    }
}

fn config() -> TcpConfig {
    TcpConfig {
        cluster_id: "unit".into(),
        rpc_timeout: Duration::from_secs(5),
        forward_timeout: Duration::from_millis(300),
        ..TcpConfig::default()
    }
}

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Node 2's server on a free port, answering with [`Scripted`].
async fn serve(config: TcpConfig) -> ServerHandle {
    let server = TcpServer::bind(NodeId(2), localhost(), config)
        .await
        .expect("bind");
    server.serve(Arc::new(Scripted))
}

/// Node 1's network, reaching node 2 at `addr`.
fn network(addr: SocketAddr, config: TcpConfig) -> TcpNetwork {
    TcpNetwork::new(NodeId(1), localhost(), [(NodeId(2), addr)], config).expect("network")
}

fn vote(delay_ms: u64) -> VoteRequest {
    VoteRequest {
        term: Term(delay_ms),
        candidate_id: NodeId(1),
        last_log_id: LogId::new(Term(1), LogIndex(1)),
        pre_vote: false,
        transfer: false,
    }
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future).await.expect("in time")
}

#[tokio::test]
async fn frames_round_trip() {
    let frame = Frame::Request {
        id: 42,
        rpc: RpcRequest::RequestVote(vote(3)),
    };
    let bytes = encode_frame(&frame, 1 << 20).expect("encodes");
    assert_eq!(
        u32::from_be_bytes(bytes[..4].try_into().expect("prefix")) as usize,
        bytes.len() - 4
    );
    let decoded = read_frame(&mut &bytes[..], 1 << 20).await.expect("decodes");
    let Frame::Request { id, rpc } = decoded else {
        panic!("not a request: {decoded:?}");
    };
    assert_eq!(id, 42);
    assert!(matches!(rpc, RpcRequest::RequestVote(v) if v == vote(3)));
}

#[tokio::test]
async fn a_length_over_the_limit_is_refused_before_reading_the_frame() {
    let bytes = [0x00, 0x10, 0x00, 0x01];
    let result = read_frame(&mut &bytes[..], 1 << 20).await;
    assert!(matches!(result, Err(FrameError::TooLarge { len, .. }) if len == (1 << 20) + 1));
}

#[tokio::test]
async fn a_small_frame_claiming_a_huge_string_is_refused_not_allocated() {
    // Frame::Hello, magic, version 1, then a cluster id claiming 2^40 bytes (varint tag 253: a
    // u64 follows).
    let mut payload = vec![0, b'R', b'F', b'T', b'R', 1, 253];
    payload.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&payload);
    let result = read_frame(&mut &bytes[..], 1 << 20).await;
    assert!(
        matches!(&result, Err(FrameError::Decode(m)) if m.contains("Limit")),
        "{result:?}"
    );
}

#[tokio::test]
async fn undecodable_and_truncated_frames_are_errors() {
    let garbage = [0, 0, 0, 3, 0xFF, 0xFF, 0xFF];
    assert!(matches!(
        read_frame(&mut &garbage[..], 1024).await,
        Err(FrameError::Decode(_))
    ));
    let truncated = [0, 0, 0, 9, 1, 2];
    assert!(matches!(
        read_frame(&mut &truncated[..], 1024).await,
        Err(FrameError::Io(_))
    ));
    assert!(matches!(
        read_frame(&mut &[][..], 1024).await,
        Err(FrameError::Closed)
    ));
}

#[test]
fn encoding_refuses_a_frame_over_the_limit() {
    let frame = Frame::Response {
        id: 1,
        result: Ok(RpcResponse::ForwardWrite(ForwardResponse::Applied(vec![
            0;
            2000
        ]))),
    };
    assert!(matches!(
        encode_frame(&frame, 1024),
        Err(FrameError::TooLarge { max: 1024, .. })
    ));
}

#[test]
fn config_validation_and_backoff() {
    assert!(TcpConfig::default().validate().is_ok());
    let too_small = TcpConfig {
        max_frame_bytes: 1024,
        ..TcpConfig::default()
    };
    assert!(too_small.validate().is_err());
    let long_id = TcpConfig {
        cluster_id: "x".repeat(300),
        ..TcpConfig::default()
    };
    assert!(long_id.validate().is_err());
    let config = TcpConfig::default();
    let backoffs: Vec<u128> = (1..=7).map(|n| config.backoff(n).as_millis()).collect();
    assert_eq!(backoffs, [20, 40, 80, 160, 320, 500, 500]);
    assert_eq!(config.backoff(u32::MAX), config.reconnect_backoff_max);
}

#[tokio::test]
async fn every_rpc_round_trips_and_remote_errors_come_back_as_network_errors() {
    let server = serve(config()).await;
    let network = network(server.local_addr(), config());
    let target = NodeId(2);
    let resp = within(network.request_vote(target, vote(0))).await;
    assert_eq!(resp.map(|r| r.granted), Ok(true));
    let req = AppendEntriesRequest {
        term: Term(2),
        leader_id: NodeId(1),
        prev_log_id: LogId::new(Term(1), LogIndex(7)),
        entries: Vec::new(),
        leader_commit: LogIndex(7),
        round: 5,
    };
    let resp = within(network.append_entries(target, req))
        .await
        .expect("answer");
    assert_eq!(resp.round, 5);
    let req = ForwardRequest {
        command: b"x".to_vec(),
    };
    let resp = within(network.forward_write(target, req)).await;
    assert_eq!(resp, Ok(ForwardResponse::Applied(b"x".to_vec())));
    let resp = within(network.read_index(target, ReadIndexRequest { lease: false })).await;
    assert_eq!(resp, Err(NetworkError::ShuttingDown(NodeId(2))));
    assert_eq!(
        within(network.request_vote(NodeId(9), vote(0))).await,
        Err(NetworkError::Unreachable(NodeId(9)))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_slow_request_does_not_hold_up_a_fast_one_on_the_same_connection() {
    let server = serve(config()).await;
    let network = network(server.local_addr(), config());
    let slow = network.request_vote(NodeId(2), vote(2_000));
    let fast = async {
        // Let the slow request go first.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = tokio::time::Instant::now();
        within(network.request_vote(NodeId(2), vote(0)))
            .await
            .expect("fast answer");
        started.elapsed()
    };
    let (slow, fast) = tokio::join!(slow, fast);
    assert!(slow.is_ok());
    assert!(fast < Duration::from_secs(1), "fast request took {fast:?}");
    assert_eq!(network.connections_opened(NodeId(2)), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_timed_out_call_leaves_the_pending_map_and_a_busy_connection_stays() {
    let server = serve(config()).await;
    let network = network(server.local_addr(), config());
    let hang = ForwardRequest {
        command: b"hang".to_vec(),
    };
    let hung = network.forward_write(NodeId(2), hang);
    let busy = async {
        // Other calls are answered on the connection while the hung one waits.
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(network.request_vote(NodeId(2), vote(0)).await.is_ok());
        }
    };
    let (result, ()) = within(async { tokio::join!(hung, busy) }).await;
    assert_eq!(result, Err(NetworkError::Timeout(NodeId(2))));
    assert_eq!(network.pending_calls(NodeId(2)), 0);
    assert!(within(network.request_vote(NodeId(2), vote(0)))
        .await
        .is_ok());
    assert_eq!(network.connections_opened(NodeId(2)), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_silent_through_a_timeout_is_replaced() {
    let server = serve(config()).await;
    let network = network(server.local_addr(), config());
    assert!(within(network.request_vote(NodeId(2), vote(0)))
        .await
        .is_ok());
    let hang = ForwardRequest {
        command: b"hang".to_vec(),
    };
    let result = within(network.forward_write(NodeId(2), hang)).await;
    assert_eq!(result, Err(NetworkError::Timeout(NodeId(2))));
    assert_eq!(network.pending_calls(NodeId(2)), 0);
    assert!(within(network.request_vote(NodeId(2), vote(0)))
        .await
        .is_ok());
    assert_eq!(network.connections_opened(NodeId(2)), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn a_request_over_the_frame_limit_fails_alone() {
    let config = TcpConfig {
        max_frame_bytes: 64 << 10,
        ..config()
    };
    let server = serve(config.clone()).await;
    let network = network(server.local_addr(), config);
    let big = ForwardRequest {
        command: vec![7; 100 << 10],
    };
    let result = within(network.forward_write(NodeId(2), big)).await;
    assert!(
        matches!(&result, Err(NetworkError::Transport(m)) if m.contains("exceeds")),
        "{result:?}"
    );
    assert!(within(network.request_vote(NodeId(2), vote(0)))
        .await
        .is_ok());
    server.shutdown().await;
}

/// A raw connection that completed the handshake as node 1.
async fn handshaken(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let hello = super::connection::hello("unit", NodeId(1), NodeId(2));
    within(handshake::offer(&mut stream, hello))
        .await
        .expect("welcomed");
    stream
}

/// Reads until the peer closes; fails the test if it does not in time.
async fn expect_closed(mut stream: TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match within(stream.read(&mut buf)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn bad_frames_after_the_handshake_close_only_their_connection() {
    let server = serve(config()).await;
    let addr = server.local_addr();
    let network = network(addr, config());
    assert!(within(network.request_vote(NodeId(2), vote(0)))
        .await
        .is_ok());

    let mut oversized = handshaken(addr).await;
    oversized
        .write_all(&u32::MAX.to_be_bytes())
        .await
        .expect("write");
    expect_closed(oversized).await;
    let mut garbage = handshaken(addr).await;
    garbage
        .write_all(&[0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF])
        .await
        .expect("write");
    expect_closed(garbage).await;
    let mut response = handshaken(addr).await;
    let frame = Frame::Response {
        id: 0,
        result: Err(RemoteError::Timeout(NodeId(1))),
    };
    let bytes = encode_frame(&frame, 1024).expect("encodes");
    response.write_all(&bytes).await.expect("write");
    expect_closed(response).await;

    // The node's established connection carried on.
    assert!(within(network.request_vote(NodeId(2), vote(0)))
        .await
        .is_ok());
    assert_eq!(network.connections_opened(NodeId(2)), 1);
    server.shutdown().await;
}

#[test]
fn the_handshake_refuses_strangers() {
    let check = |hello: &super::frame::Hello| handshake::check(hello, NodeId(2), "unit");
    let hello = super::connection::hello("unit", NodeId(1), NodeId(2));
    assert_eq!(check(&hello), Ok(()));
    let other_cluster = super::connection::hello("other", NodeId(1), NodeId(2));
    assert!(matches!(
        check(&other_cluster),
        Err(Refusal::ClusterMismatch { .. })
    ));
    let other_node = super::connection::hello("unit", NodeId(1), NodeId(3));
    assert_eq!(
        check(&other_node),
        Err(Refusal::WrongNode {
            expected: NodeId(3),
            actual: NodeId(2)
        })
    );
    let itself = super::connection::hello("unit", NodeId(2), NodeId(2));
    assert_eq!(check(&itself), Err(Refusal::OwnId(NodeId(2))));
    let future = super::frame::Hello {
        version: 99,
        ..hello
    };
    assert!(matches!(
        check(&future),
        Err(Refusal::Version { got: 99, .. })
    ));
}

#[tokio::test]
async fn a_lost_peer_is_retried_after_a_backoff_and_reconnected() {
    let config = TcpConfig {
        reconnect_backoff_min: Duration::from_millis(200),
        reconnect_backoff_max: Duration::from_millis(200),
        ..config()
    };
    let server = TcpServer::bind(NodeId(2), localhost(), config.clone())
        .await
        .expect("bind");
    let addr = server.local_addr();
    let network = network(addr, config.clone());
    let handle = server.serve(Arc::new(Scripted));
    assert!(within(network.request_vote(NodeId(2), vote(0)))
        .await
        .is_ok());

    handle.shutdown().await;
    // The connection closed with the server; the next call tries once and fails...
    let result = within(network.request_vote(NodeId(2), vote(0))).await;
    assert!(result.is_err(), "{result:?}");
    // ...and the one after it fails at once, backing off.
    let result = within(network.request_vote(NodeId(2), vote(0))).await;
    assert_eq!(result, Err(NetworkError::Unreachable(NodeId(2))));

    let server = TcpServer::bind(NodeId(2), addr, config)
        .await
        .expect("rebind");
    let handle = server.serve(Arc::new(Scripted));
    let reconnected = async {
        loop {
            if network.request_vote(NodeId(2), vote(0)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    within(reconnected).await;
    handle.shutdown().await;
}

#[tokio::test]
async fn a_moved_peer_is_reached_at_its_new_address() {
    let first = serve(config()).await;
    let second = serve(config()).await;
    let network = network(first.local_addr(), config());
    assert!(within(network.request_vote(NodeId(2), vote(0)))
        .await
        .is_ok());
    first.shutdown().await;
    network.set_peer(NodeId(2), second.local_addr());
    assert!(within(network.request_vote(NodeId(2), vote(0)))
        .await
        .is_ok());
    assert_eq!(
        network.peer_addrs().get(&NodeId(2)),
        Some(&second.local_addr())
    );
    network.remove_peer(NodeId(2));
    assert_eq!(
        within(network.request_vote(NodeId(2), vote(0))).await,
        Err(NetworkError::Unreachable(NodeId(2)))
    );
    second.shutdown().await;
}
