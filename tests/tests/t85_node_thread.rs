//! Nodes sharing one [`NodeThread`]: three nodes on one thread elect a leader, replicate and
//! apply every write (§5.2, §5.3); shutting one down leaves the others working on the same thread;
//! stopping the thread answers every handle at once (in-flight writes included), never with a
//! hang; and a stopped thread runs nothing more.
//!
//! These run in real time, on the test's own tokio runtime: the nodes run on the node thread's
//! runtime, whose clock paused tokio time on the test's side would not move, so a paused clock
//! here would fire the client timeouts while the nodes are busy. Every wait is bounded instead.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use raftor::{
    ClientReadError, ClientWriteError, Config, LogIndex, MemStorage, NodeId, NodeThread, Raft,
    ReadLevel, Router, StartError, StateMachine, StateMachineError,
};
use raftor_tests::{Ledger, Recorder};

/// The bound on an election, or on any wait that should end at once.
const WAIT: Duration = Duration::from_secs(10);

/// How long a handle of a stopped node may take to answer: "at once", with room for a busy
/// machine. The client timeout is far longer, so an answer by timeout fails the test.
const PROMPTLY: Duration = Duration::from_secs(2);

/// A [`Recorder`] that also notes the name of each thread it applied on.
struct Placed {
    recorder: Recorder,
    threads: Arc<Mutex<BTreeSet<String>>>,
}

#[async_trait]
impl StateMachine for Placed {
    type Command = u64;
    type Response = LogIndex;

    async fn apply(&mut self, index: LogIndex, value: u64) -> Result<LogIndex, StateMachineError> {
        let name = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        if let Ok(mut threads) = self.threads.lock() {
            threads.insert(name);
        }
        self.recorder.apply(index, value).await
    }
}

/// Three nodes on one thread, their router, and what they applied.
struct SharedCluster {
    thread: NodeThread,
    router: Router,
    nodes: Vec<Raft<Placed>>,
    ledger: Ledger,
    /// The names of the threads any node applied on.
    threads: Arc<Mutex<BTreeSet<String>>>,
}

impl SharedCluster {
    fn node(&self, id: NodeId) -> &Raft<Placed> {
        &self.nodes[usize::try_from(id.0 - 1).expect("small id")]
    }

    /// Waits for a leader that has committed an entry of its term (so it serves writes itself).
    async fn leader(&self) -> NodeId {
        let leader = self.nodes[0]
            .wait(WAIT)
            .leader_known()
            .await
            .expect("a leader");
        self.node(leader)
            .wait(WAIT)
            .role(raftor::core::Role::Leader)
            .await
            .expect("the leader leads");
        leader
    }

    fn threads(&self) -> BTreeSet<String> {
        self.threads.lock().expect("not poisoned").clone()
    }
}

async fn start_shared_cluster(thread_name: &str, config: Config) -> anyhow::Result<SharedCluster> {
    let ledger = Ledger::default();
    let threads = Arc::new(Mutex::new(BTreeSet::new()));
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let state_machine_of = |id| Placed {
        recorder: Recorder::new(id, ledger.clone()),
        threads: Arc::clone(&threads),
    };
    // ANCHOR: shared_thread
    let thread = NodeThread::start(thread_name)?;
    let router = Router::new(1);
    let mut nodes = Vec::new();
    for id in ids {
        let config = Config {
            seed: Some(id.0),
            ..config.clone()
        };
        // Started inside the thread's actix system, the node's actor runs there too.
        let start = Raft::bootstrap(
            id,
            ids,
            config,
            router.network(id),
            MemStorage::new(),
            state_machine_of(id),
        );
        let raft = thread.run(start).await??;
        router.register(id, Arc::new(raft.clone()));
        nodes.push(raft);
    }
    // ANCHOR_END: shared_thread
    Ok(SharedCluster {
        thread,
        router,
        nodes,
        ledger,
        threads,
    })
}

/// A config whose client timeout is far beyond [`PROMPTLY`].
fn config() -> Config {
    Config {
        client_timeout: Duration::from_secs(30),
        ..Config::default()
    }
}

/// Awaits `future`, failing the test if it takes longer than [`PROMPTLY`].
async fn promptly<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(PROMPTLY, future)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {PROMPTLY:?}"))
}

/// Three nodes on one thread elect a leader (§5.2), replicate writes made on every node, and each
/// applies all of them in the same order (§5.3), on that thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t85_three_nodes_on_one_thread_replicate_and_apply() -> anyhow::Result<()> {
    let cluster = start_shared_cluster("raftor-t85", config()).await?;
    cluster.leader().await;
    let mut last = LogIndex(0);
    for value in 1..=30u64 {
        let node = &cluster.nodes[usize::try_from(value % 3)?];
        last = last.max(node.client_write(value).await?);
    }
    for node in &cluster.nodes {
        node.wait(WAIT).applied(last).await?;
    }
    for value in 1..=30u64 {
        let index = cluster.ledger.index_of(value).expect("committed");
        assert_eq!(cluster.ledger.n_committed(index), (3, Some(value)));
    }
    cluster.ledger.check();
    assert_eq!(cluster.threads(), BTreeSet::from(["raftor-t85".to_owned()]));
    for node in &cluster.nodes {
        node.shutdown().await;
    }
    cluster.thread.stop().await;
    Ok(())
}

/// Shutting the leader down stops that node alone: the other two, on the same thread, elect a
/// new leader (§5.2) and go on committing, and the thread still runs other work. A node shut
/// down answers `ShuttingDown`, follower or leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t86_shutting_one_node_down_leaves_the_others_working() -> anyhow::Result<()> {
    let cluster = start_shared_cluster("raftor-t86", config()).await?;
    let old_leader = cluster.leader().await;
    cluster.node(old_leader).client_write(1).await?;
    cluster.node(old_leader).shutdown().await;
    let stopped = cluster.node(old_leader);
    assert!(!stopped.metrics().running);
    assert_eq!(
        promptly("a write on the stopped node", stopped.client_write(2)).await,
        Err(ClientWriteError::ShuttingDown)
    );

    let survivors: Vec<&Raft<Placed>> = cluster
        .nodes
        .iter()
        .filter(|node| node.id() != old_leader)
        .collect();
    let new_leader = survivors[0]
        .wait(WAIT)
        .until("a new leader", |m| {
            m.leader.is_some() && m.leader != Some(old_leader)
        })
        .await?
        .leader
        .expect("a leader");
    let mut last = LogIndex(0);
    for value in 10..20u64 {
        for node in &survivors {
            last = last.max(node.client_write(value * 10 + node.id().0).await?);
        }
    }
    for node in &survivors {
        node.wait(WAIT).applied(last).await?;
        assert!(node.metrics().running);
    }
    assert_ne!(new_leader, old_leader);
    cluster.ledger.check();
    let name = cluster
        .thread
        .run(async { std::thread::current().name().map(String::from) })
        .await?;
    assert_eq!(name.as_deref(), Some("raftor-t86"));
    // A follower that was shut down refuses writes itself rather than forward them to the leader
    // it last knew.
    let follower = survivors
        .iter()
        .find(|node| node.id() != new_leader)
        .expect("a follower");
    follower.shutdown().await;
    assert_eq!(
        promptly("a write on a stopped follower", follower.client_write(3)).await,
        Err(ClientWriteError::ShuttingDown)
    );
    for node in &survivors {
        node.shutdown().await;
    }
    cluster.thread.stop().await;
    Ok(())
}

/// Stopping the thread stops every node on it without their `shutdown`: writes in flight on a
/// leader cut off from its majority are answered `ShuttingDown` at once, and every handle then
/// answers writes and reads with `ShuttingDown`, reports `running: false`, and shuts down at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t87_stopping_the_thread_answers_every_handle_promptly() -> anyhow::Result<()> {
    let cluster = start_shared_cluster("raftor-t87", config()).await?;
    let leader = cluster.leader().await;
    cluster.node(leader).client_write(1).await?;
    cluster.router.isolate(leader);
    let in_flight: Vec<_> = (0..5u64)
        .map(|value| {
            let raft = cluster.node(leader).clone();
            tokio::spawn(async move { raft.client_write(100 + value).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;

    promptly("stopping the thread", cluster.thread.clone().stop()).await;
    for write in in_flight {
        let result = promptly("an in-flight write", write).await?;
        assert_eq!(result, Err(ClientWriteError::ShuttingDown));
    }
    cluster.router.reconnect(leader);
    for node in &cluster.nodes {
        assert!(!node.metrics().running, "node {} still running", node.id());
        assert_eq!(
            promptly("a write", node.client_write(7)).await,
            Err(ClientWriteError::ShuttingDown)
        );
        let read = node.read(ReadLevel::Linearizable, |_| ());
        assert_eq!(
            promptly("a read", read).await,
            Err(ClientReadError::ShuttingDown)
        );
        promptly("a shutdown", node.shutdown()).await;
    }
    cluster.ledger.check();
    Ok(())
}

/// A thread that stopped runs nothing: `run` fails on every clone, whether the thread was
/// stopped or its last other clone dropped. A panic in a future is the caller's, and the thread
/// survives it.
#[tokio::test]
async fn t88_a_stopped_thread_runs_nothing() {
    let thread = NodeThread::start("raftor-t88").expect("starts");
    assert_eq!(thread.name(), "raftor-t88");
    assert_eq!(thread.run(async { 6 * 7 }).await, Ok(42));

    let panicked = std::panic::AssertUnwindSafe(thread.run(async { panic!("boom") }))
        .catch_unwind()
        .await;
    assert!(panicked.is_err(), "the panic reaches the caller");
    assert_eq!(thread.run(async { 1 }).await, Ok(1), "the thread survives");

    let clone = thread.clone();
    promptly("stopping the thread", thread.stop()).await;
    let after = promptly("run after stop", clone.run(async { 1 })).await;
    assert_eq!(after, Err(StartError::ThreadStopped("raftor-t88".into())));
}

/// Dropping the last clone stops the thread: off any runtime it is joined before `drop` returns
/// (so what ran on it has been dropped); on a runtime it exits a moment later.
#[test]
fn t89_dropping_the_last_clone_stops_the_thread() {
    for on_runtime in [false, true] {
        let thread = NodeThread::start("raftor-t89").expect("starts");
        let (dropped_tx, dropped_rx) = std::sync::mpsc::channel::<()>();
        // A task that runs until its thread stops, and says so when dropped.
        let parked = thread.run(async move {
            actix_rt::spawn(async move {
                let _on_drop = dropped_tx;
                std::future::pending::<()>().await;
            });
        });
        futures::executor::block_on(parked).expect("runs");
        let clone = thread.clone();
        drop(thread);
        assert_eq!(
            dropped_rx.try_recv(),
            Err(std::sync::mpsc::TryRecvError::Empty),
            "a clone keeps the thread running"
        );
        if on_runtime {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            runtime.block_on(async move { drop(clone) });
            assert_eq!(
                dropped_rx.recv_timeout(PROMPTLY),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected),
                "stopped soon after"
            );
        } else {
            drop(clone);
            assert_eq!(
                dropped_rx.try_recv(),
                Err(std::sync::mpsc::TryRecvError::Disconnected),
                "stopped and joined before drop returned"
            );
        }
    }
}

/// A node started outside actix runs on a private thread that its handles hold: dropping the
/// last handle stops that thread, and the node with it, which its metrics then say.
#[tokio::test]
async fn t89_dropping_a_nodes_last_handle_stops_its_private_thread() -> anyhow::Result<()> {
    let id = NodeId(1);
    let router = Router::new(1);
    let recorder = Recorder::new(id, Ledger::default());
    let network = router.network(id);
    let raft = Raft::bootstrap(id, [id], config(), network, MemStorage::new(), recorder).await?;
    raft.wait(WAIT).role(raftor::core::Role::Leader).await?;
    let mut metrics = raft.metrics_watch();
    drop(raft);
    let stopped = promptly("the node stopping", metrics.wait_for(|m| !m.running)).await;
    assert!(matches!(stopped, Ok(m) if !m.running));
    Ok(())
}
