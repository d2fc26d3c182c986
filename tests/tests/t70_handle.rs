//! The `Raft` handle's promises: writes on a follower are forwarded to the leader (or refused
//! with a leader hint when forwarding is off), no client call hangs past its timeout, shutdown
//! answers every in-flight request, and a storage failure stops the node with a fatal error.

use std::time::Duration;

use async_trait::async_trait;
use raftor::{
    ClientWriteError, Config, Fatal, LogIndex, MemStorage, NodeId, Raft, Router, StorageError,
};
use raftor_tests::{single_node_leader, AppendFault, FaultyStorage, Ledger, Recorder, TestCluster};

fn assert_handle_traits<T: Clone + Send + Sync + 'static>() {}

/// The default config with a seed.
fn seeded(seed: u64) -> Config {
    Config {
        seed: Some(seed),
        ..Config::default()
    }
}

#[test]
fn t70_handle_is_clone_send_sync() {
    assert_handle_traits::<Raft<Recorder>>();
}

/// A write on a follower is forwarded to the leader and answered with the leader's response.
#[actix_rt::test]
async fn t71_follower_forwards_writes_to_the_leader() {
    tokio::time::pause();
    let cluster = TestCluster::new(3).await;
    let leader = cluster.check_one_leader().await;
    let follower = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let raft = cluster.raft(follower).expect("follower running");
    let index = raft.client_write(7).await.expect("forwarded write applied");
    assert_eq!(cluster.ledger.applied_at(leader, index), Some(7));
    cluster.shutdown().await;
}

/// With forwarding off, a follower refuses and names the leader.
#[actix_rt::test]
async fn t72_without_forwarding_a_follower_names_the_leader() {
    tokio::time::pause();
    let config = Config {
        forward_writes: false,
        ..Config::default()
    };
    let cluster = TestCluster::with_config(3, config, 3).await;
    let leader = cluster.check_one_leader().await;
    let follower = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let result = cluster
        .raft(follower)
        .expect("running")
        .client_write(7)
        .await;
    assert_eq!(
        result,
        Err(ClientWriteError::NotLeader {
            leader: Some(leader)
        })
    );
    cluster.shutdown().await;
}

/// A leader cut off from its majority cannot commit: the write times out instead of hanging.
#[actix_rt::test]
async fn t73_write_without_a_majority_times_out() {
    tokio::time::pause();
    let config = Config {
        client_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    let mut cluster = TestCluster::with_config(3, config, 4).await;
    let leader = cluster.check_one_leader().await;
    for id in cluster.ids().into_iter().filter(|id| *id != leader) {
        cluster.disconnect(id);
    }
    let started = tokio::time::Instant::now();
    let result = cluster.raft(leader).expect("running").client_write(9).await;
    assert_eq!(result, Err(ClientWriteError::Timeout));
    assert!(started.elapsed() <= Duration::from_secs(2) + Duration::from_millis(50));
    assert_eq!(
        cluster.ledger.index_of(9),
        None,
        "nothing committed without a majority"
    );
    cluster.shutdown().await;
}

/// Shutdown answers every in-flight write with `ShuttingDown`, at once.
#[actix_rt::test]
async fn t74_shutdown_answers_in_flight_writes() {
    tokio::time::pause();
    let mut cluster = TestCluster::new(3).await;
    let leader = cluster.check_one_leader().await;
    for id in cluster.ids().into_iter().filter(|id| *id != leader) {
        cluster.disconnect(id);
    }
    let raft = cluster.raft(leader).expect("running");
    let writes: Vec<_> = (0..5u64)
        .map(|value| {
            let raft = raft.clone();
            actix_rt::spawn(async move { raft.client_write(100 + value).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = tokio::time::Instant::now();
    raft.shutdown().await;
    for write in writes {
        let result = write.await.expect("write task finished");
        assert_eq!(result, Err(ClientWriteError::ShuttingDown));
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "answered promptly"
    );
    assert_eq!(
        raft.client_write(1).await,
        Err(ClientWriteError::ShuttingDown)
    );
    assert!(!raft.metrics().running);
    cluster.shutdown().await;
}

/// A storage failure stops the node: waiting clients get `Fatal`, metrics say it stopped.
#[actix_rt::test]
async fn t75_storage_failure_is_fatal() {
    tokio::time::pause();
    // Bootstrap writes one entry, the blank entry of the first term is the second append.
    let storage = FaultyStorage::new(2, AppendFault::Fail);
    let raft = single_node_leader(
        seeded(5),
        storage,
        Recorder::new(NodeId(1), Ledger::default()),
    )
    .await;
    let result = raft.client_write(1).await;
    let expected = Fatal::Storage(StorageError::Io {
        operation: "append",
        message: "disk on fire".into(),
    });
    assert_eq!(result, Err(ClientWriteError::Fatal(expected.clone())));
    assert!(!raft.metrics().running);
    assert_eq!(
        raft.client_write(2).await,
        Err(ClientWriteError::Fatal(expected))
    );
    raft.shutdown().await;
}

/// The handle works from a plain multi-threaded tokio runtime (no actix anywhere in the caller):
/// each node then runs on its own actix thread, and shutdown stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t76_works_from_a_plain_tokio_runtime() {
    let router = Router::new(6);
    let ledger = Ledger::default();
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let mut nodes = Vec::new();
    for id in ids {
        let config = Config {
            seed: Some(id.0),
            ..Config::default()
        };
        let raft = Raft::bootstrap(
            id,
            ids,
            config,
            router.network(id),
            MemStorage::new(),
            Recorder::new(id, ledger.clone()),
        )
        .await
        .expect("starts");
        router.register(id, std::sync::Arc::new(raft.clone()));
        nodes.push(raft);
    }
    let leader = nodes[0]
        .wait(Duration::from_secs(10))
        .leader_known()
        .await
        .expect("a leader");
    let index = nodes[1].client_write(42).await.expect("write applied");
    assert_eq!(ledger.applied_at(leader, index), Some(42));
    for raft in &nodes {
        raft.shutdown().await;
    }
    ledger.check();
}

/// A state machine whose disk fails on command 13.
struct BrittleMachine;

#[async_trait]
impl raftor::StateMachine for BrittleMachine {
    type Command = u64;
    type Response = u64;

    async fn apply(
        &mut self,
        _index: LogIndex,
        command: u64,
    ) -> Result<u64, raftor::StateMachineError> {
        if command == 13 {
            return Err(raftor::StateMachineError::Io(
                "state file unwritable".into(),
            ));
        }
        Ok(command * 2)
    }
}

/// A state machine failure (not a property of the command) stops the node with `Fatal`, rather
/// than let it diverge from replicas that applied the command.
#[actix_rt::test]
async fn t77_state_machine_failure_is_fatal() {
    tokio::time::pause();
    let raft = single_node_leader(seeded(7), MemStorage::new(), BrittleMachine).await;
    assert_eq!(raft.client_write(21).await, Ok(42));
    let expected = Fatal::StateMachine(raftor::StateMachineError::Io(
        "state file unwritable".into(),
    ));
    assert_eq!(
        raft.client_write(13).await,
        Err(ClientWriteError::Fatal(expected.clone()))
    );
    assert!(!raft.metrics().running);
    assert_eq!(
        raft.client_write(1).await,
        Err(ClientWriteError::Fatal(expected))
    );
    raft.shutdown().await;
}
