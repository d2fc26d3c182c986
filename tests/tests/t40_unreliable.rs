//! Agreement on an unreliable network and under churn: the lab suite's 3C scenarios
//! UnreliableAgree, ReliableChurn and UnreliableChurn, with its parameters and pass criteria
//! (`/work/shared/raft-scenarios.md`). Clients run as concurrent tasks beside the test, on a
//! [`ClusterView`](raftor_tests::ClusterView), while the test partitions, crashes and restarts
//! nodes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use raftor::{Config, LogIndex, NodeId};
use raftor_tests::cluster::ELECTION_TIMEOUT;
use raftor_tests::rng::{self, TestRng};
use raftor_tests::{ClusterView, TestCluster};
use tokio::task::JoinHandle;
use tokio::time::sleep;

/// Awaits a client task, re-raising its panic (with its message) if it failed.
async fn join<T>(handle: JoinHandle<T>) -> T {
    match handle.await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// TestUnreliableAgree3C: on a network that loses 10 % of requests and of replies and delays
/// each RPC by up to 26 ms, 49 rounds of four concurrent `one(x, 1, retry)` clients plus one
/// more all commit (§5.3: AppendEntries are retried until they get through). Then, reliable
/// again, `one(100)` commits on all five. Values identify entries, so no index adaptation.
#[actix_rt::test]
async fn t40_unreliable_agree() {
    tokio::time::pause();
    let seed = rng::seed(40);
    let cluster = TestCluster::with_config(5, Config::default(), seed).await;
    cluster.set_unreliable(true);
    let mut clients = Vec::new();
    for iteration in 1..50u64 {
        for j in 0..4 {
            let view = cluster.view();
            clients.push(actix_rt::spawn(async move {
                view.one(100 * iteration + j, 1, true).await
            }));
        }
        cluster.one(iteration, 1, true).await;
    }
    cluster.set_unreliable(false);
    for client in clients {
        join(client).await;
    }
    cluster.one(100, 5, true).await;
    cluster.shutdown().await;
}

/// One churn client (the lab's `cfn`): until told to stop, starts a random value on every running
/// node, and if one accepted it, watches the index it landed at for a while; returns the values
/// it saw committed where they were started.
async fn churn_client(view: ClusterView, me: u64, seed: u64, stop: Arc<AtomicBool>) -> Vec<u64> {
    let mut rng = TestRng::new(seed);
    let mut values = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let value = rng.next_u64();
        let mut index = None;
        // Try them all: maybe one of them is a leader.
        for id in view.ids() {
            if let Some(log_id) = view.propose(id, value).await {
                index = Some(log_id.index);
            }
        }
        let Some(index) = index else {
            sleep(Duration::from_millis(79 + me * 17)).await;
            continue;
        };
        // Maybe the leader will commit our value, maybe not; don't wait forever.
        for pause in [10, 20, 50, 100, 200] {
            let (count, committed) = view.n_committed(index);
            if count > 0 {
                if committed == Some(value) {
                    values.push(value);
                }
                break;
            }
            sleep(Duration::from_millis(pause)).await;
        }
    }
    values
}

/// The lab's `internalChurn`: three clients write in a loop while, 20 times, 0.7 s apart, a
/// random node is disconnected (20 %), a random node restarted if down and connected (50 %), and
/// a random node crashed (20 %). At the end every node is up, connected and reliable, a final
/// write commits on all five, and every value a client saw committed at its index is in the
/// final log: committed entries survive any sequence of crashes and partitions (§5.4, Leader
/// Completeness).
///
/// Adaptation: the lab waits for every index up to the final one to be applied on all five
/// (`wait(index, servers, -1)`). Our blank and membership entries never reach the state machine,
/// so we wait until every node's `last_applied` reaches the final index, then read the committed
/// values from the ledger (which has checked that all nodes agree on each).
async fn churn(unreliable: bool, seed: u64) {
    tokio::time::pause();
    let mut rng = TestRng::new(seed);
    let mut cluster = TestCluster::with_config(5, Config::default(), seed).await;
    cluster.set_unreliable(unreliable);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3u64)
        .map(|me| {
            let client = churn_client(cluster.view(), me, rng.next_u64(), Arc::clone(&stop));
            actix_rt::spawn(client)
        })
        .collect();

    for _ in 0..20 {
        if rng.per_mille(200) {
            let id = NodeId(1 + rng.below(5));
            cluster.disconnect(id);
        }
        if rng.per_mille(500) {
            let id = NodeId(1 + rng.below(5));
            if !cluster.is_running(id) {
                cluster.start1(id).await;
            }
            cluster.connect(id);
        }
        if rng.per_mille(200) {
            let id = NodeId(1 + rng.below(5));
            if cluster.is_running(id) {
                cluster.crash1(id).await;
            }
        }
        // Often enough that the peers cannot always settle between changes, rarely enough that
        // they often keep up: a bit below the election timeout.
        sleep(ELECTION_TIMEOUT * 7 / 10).await;
    }
    sleep(ELECTION_TIMEOUT).await;
    cluster.set_unreliable(false);
    for id in cluster.ids() {
        if !cluster.is_running(id) {
            cluster.start1(id).await;
        }
        cluster.connect(id);
    }
    stop.store(true, Ordering::SeqCst);
    let mut values = Vec::new();
    for client in clients {
        values.extend(join(client).await);
    }

    sleep(ELECTION_TIMEOUT).await;
    let last = cluster.one(rng.next_u64(), 5, true).await;
    cluster.wait_applied(last).await;
    let really: Vec<u64> = cluster
        .ledger
        .committed()
        .range(..=last)
        .map(|(_, value)| *value)
        .collect();
    for value in &values {
        assert!(
            really.contains(value),
            "didn't find value {value}, seen committed by a client, in the final log"
        );
    }
    println!(
        "{} values seen committed by clients; final index {last}",
        values.len()
    );
    assert!(last > LogIndex(3), "nothing happened");
    cluster.shutdown().await;
}

/// TestReliableChurn3C: see [`churn`].
#[actix_rt::test]
async fn t41_reliable_churn() {
    churn(false, rng::seed(41)).await;
}

/// TestUnreliableChurn3C: see [`churn`], on the unreliable network until the end.
#[actix_rt::test]
async fn t42_unreliable_churn() {
    churn(true, rng::seed(42)).await;
}
