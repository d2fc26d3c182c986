//! The custom transport's promises: frames round-trip and bad input is refused without a panic,
//! an unreachable peer is a `NetworkError`, and a three-node cluster replicates and fails over on
//! it. These run on real sockets and real time, with generous bounds.

use std::collections::BTreeMap;
use std::time::Duration;

use custom_transport::{
    read_frame, write_frame, Cluster, TcpNetwork, WireRequest, MAX_FRAME_BYTES,
};
use raftor::message::VoteRequest;
use raftor::{Config, LogId, Network, NetworkError, NodeId, Term};
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(10);

fn vote_request() -> VoteRequest {
    VoteRequest {
        term: Term(3),
        candidate_id: NodeId(2),
        last_log_id: LogId::default(),
        pre_vote: false,
        transfer: false,
    }
}

#[tokio::test]
async fn frames_round_trip() {
    let (mut a, mut b) = tokio::io::duplex(1024);
    let request = WireRequest::RequestVote(vote_request());
    let written = write_frame(&mut a, &request).await.expect("write");
    assert!(written > 4);
    let read: WireRequest = read_frame(&mut b).await.expect("read");
    match read {
        WireRequest::RequestVote(req) => assert_eq!(req, vote_request()),
        other => panic!("decoded {other:?}"),
    }
}

#[tokio::test]
async fn oversized_and_garbage_frames_are_errors() {
    let (mut a, mut b) = tokio::io::duplex(1024);
    a.write_all(&(MAX_FRAME_BYTES + 1).to_be_bytes())
        .await
        .expect("write");
    assert!(read_frame::<_, WireRequest>(&mut b).await.is_err());

    let (mut a, mut b) = tokio::io::duplex(1024);
    a.write_all(&3u32.to_be_bytes()).await.expect("write");
    a.write_all(&[0xff, 0xff, 0xff]).await.expect("write");
    assert!(read_frame::<_, WireRequest>(&mut b).await.is_err());
}

#[tokio::test]
async fn an_unreachable_peer_is_a_network_error() {
    // A port that was just free: nothing listens on it now.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let network = TcpNetwork::new(BTreeMap::from([(NodeId(2), addr)]));
    let result = network.request_vote(NodeId(2), vote_request()).await;
    assert_eq!(result, Err(NetworkError::Unreachable(NodeId(2))));
    // A peer with no address at all.
    let result = network.request_vote(NodeId(9), vote_request()).await;
    assert_eq!(result, Err(NetworkError::Unreachable(NodeId(9))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_and_fail_over_over_tcp() {
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let cluster = Cluster::start(&ids, Config::default())
        .await
        .expect("cluster starts");
    let leader = cluster
        .agreed_leader(&ids, None, WAIT)
        .await
        .expect("leader");
    let follower = ids.into_iter().find(|id| *id != leader).expect("follower");
    let position = cluster
        .node(follower)
        .expect("node")
        .raft
        .client_write("one".into())
        .await
        .expect("forwarded write applied");
    assert_eq!(position, 1);
    let lines = cluster.converged(&ids, WAIT).await.expect("converged");
    assert_eq!(lines, vec!["one".to_string()]);

    cluster.node(leader).expect("node").stop().await;
    let survivors: Vec<NodeId> = ids.into_iter().filter(|id| *id != leader).collect();
    let new_leader = cluster
        .agreed_leader(&survivors, Some(leader), WAIT)
        .await
        .expect("a new leader");
    let position = cluster
        .node(new_leader)
        .expect("node")
        .raft
        .client_write("two".into())
        .await
        .expect("write after failover");
    assert_eq!(position, 2);
    let lines = cluster
        .converged(&survivors, WAIT)
        .await
        .expect("converged");
    assert_eq!(lines, vec!["one".to_string(), "two".to_string()]);
    // Followers only answer; the leaders sent AppendEntries (and the candidates votes) over TCP.
    for id in [leader, new_leader] {
        let (rpcs, bytes) = cluster.node(id).expect("node").network.sent();
        assert!(rpcs > 0 && bytes > 4 * rpcs, "leader {id} sent nothing");
    }
    cluster.shutdown().await;
}
