//! Persistence (§5, Figure 2 "persistent state"; design.md contracts 1, 2 and 6) on real nodes:
//! the lab suite's 3C crash/restart scenarios and its two Figure 8 tests (§5.4.2), with its
//! parameters and pass criteria (`/work/shared/raft-scenarios.md`).
//!
//! A crash keeps exactly what the node's storage holds; the restarted node's state machine
//! starts empty and re-applies the committed log (the ledger checks it applies the same values
//! at the same indices as before). As in the lab, `crash1` also disconnects a node and `start1`
//! brings it back disconnected, until `connect`.
//!
//! Indices: none of these tests checks a literal index (the lab's `wait(4, ...)` in Persist1
//! waits on the index `one(14)` returned), so the +2 offset of our logs (bootstrap entry and the
//! first leader's blank entry) needs no adaptation here.

use std::time::Duration;

use raftor::{Config, NodeId};
use raftor_tests::cluster::ELECTION_TIMEOUT;
use raftor_tests::rng::{self, TestRng};
use raftor_tests::TestCluster;
use tokio::time::sleep;

/// A cluster of `size` nodes with the default config and a seed.
async fn cluster(size: u64, seed: u64) -> TestCluster {
    TestCluster::with_config(size, Config::default(), seed).await
}

/// TestPersist13C: term, vote and log survive crashes: of every node at once, of the leader
/// (which must then catch up), of a leader that missed a commit, and of a follower that did.
#[actix_rt::test]
async fn t30_persist1() {
    tokio::time::pause();
    let seed = rng::seed(30);
    let mut cluster = cluster(3, seed).await;
    cluster.one(11, 3, true).await;
    // Crash and restart all.
    for id in cluster.ids() {
        cluster.start1(id).await;
    }
    for id in cluster.ids() {
        cluster.disconnect(id);
        cluster.connect(id);
    }
    cluster.one(12, 3, true).await;

    let leader1 = cluster.check_one_leader().await;
    cluster.disconnect(leader1);
    cluster.start1(leader1).await;
    cluster.connect(leader1);
    cluster.one(13, 3, true).await;

    let leader2 = cluster.check_one_leader().await;
    cluster.disconnect(leader2);
    let index14 = cluster.one(14, 2, true).await;
    cluster.start1(leader2).await;
    cluster.connect(leader2);
    // Wait for leader2 to join before crashing the next one.
    cluster.wait(index14, 3, None).await;

    let leader3 = cluster.check_one_leader().await;
    let follower = cluster.after(leader3, 1);
    cluster.disconnect(follower);
    cluster.one(15, 2, true).await;
    cluster.start1(follower).await;
    cluster.connect(follower);
    cluster.one(16, 3, true).await;
    cluster.shutdown().await;
}

/// TestPersist23C: five rounds on five nodes: commit with all, with three, then crash two of
/// the three and restart the two left out, so that a majority lives only on disk (§5.4: a
/// committed entry is on a majority, and every future leader has it).
#[actix_rt::test]
async fn t31_persist2() {
    tokio::time::pause();
    let seed = rng::seed(31);
    let mut cluster = cluster(5, seed).await;
    let mut value = 11;
    for _ in 0..5 {
        cluster.one(value, 5, true).await;
        value += 1;
        let leader1 = cluster.check_one_leader().await;
        let peer = |k| cluster.after(leader1, k);
        let [p0, p1, p2, p3, p4] = [peer(0), peer(1), peer(2), peer(3), peer(4)];
        cluster.disconnect(p1);
        cluster.disconnect(p2);
        cluster.one(value, 3, true).await;
        value += 1;

        cluster.disconnect(p0);
        cluster.disconnect(p3);
        cluster.disconnect(p4);
        cluster.start1(p1).await;
        cluster.start1(p2).await;
        cluster.connect(p1);
        cluster.connect(p2);
        sleep(ELECTION_TIMEOUT).await;
        cluster.start1(p3).await;
        cluster.connect(p3);
        cluster.one(value, 3, true).await;
        value += 1;
        cluster.connect(p4);
        cluster.connect(p0);
    }
    cluster.one(1000, 5, true).await;
    cluster.shutdown().await;
}

/// TestPersist33C: a follower partitioned away; the leader and the other follower commit, then
/// both crash; the leader restarts next to the formerly partitioned follower and the two commit
/// (the leader's log, restored from disk, is the up-to-date one, §5.4.1).
#[actix_rt::test]
async fn t32_persist3() {
    tokio::time::pause();
    let seed = rng::seed(32);
    let mut cluster = cluster(3, seed).await;
    cluster.one(101, 3, true).await;
    let leader = cluster.check_one_leader().await;
    let [p0, p1, p2] = [leader, cluster.after(leader, 1), cluster.after(leader, 2)];
    cluster.disconnect(p2);
    cluster.one(102, 2, true).await;
    cluster.crash1(p0).await;
    cluster.crash1(p1).await;
    cluster.connect(p2);
    cluster.start1(p0).await;
    cluster.connect(p0);
    cluster.one(103, 2, true).await;
    cluster.start1(p1).await;
    cluster.connect(p1);
    cluster.one(104, 3, true).await;
    cluster.shutdown().await;
}

/// A random sleep as the Figure 8 tests take between iterations: 10 % of the time up to half the
/// lab's election timeout (0-499 ms), otherwise 0-12 ms.
async fn figure8_pause(rng: &mut TestRng) {
    let ms = if rng.per_mille(100) {
        rng.below(ELECTION_TIMEOUT.as_millis() as u64 / 2)
    } else {
        rng.below(13)
    };
    sleep(Duration::from_millis(ms)).await;
}

/// TestFigure83C: 1000 times, start a write on every live node, pause a little, and crash the
/// leader; restart a random node whenever fewer than three are up. Leaders come and go before
/// their entries reach a majority, building the logs of the paper's Figure 8: an entry from an
/// older term that sits on a majority must not be committed by counting replicas (§5.4.2), or a
/// later leader overwrites a committed entry and the ledger sees two values at one index. All
/// five must agree at the end.
#[actix_rt::test]
async fn t33_figure8() {
    tokio::time::pause();
    let seed = rng::seed(33);
    let mut rng = TestRng::new(seed);
    let mut cluster = cluster(5, seed).await;
    cluster.one(rng.next_u64(), 1, true).await;
    let mut up = 5;
    let mut crashes = 0;
    for _ in 0..1000 {
        let mut leader = None;
        for id in cluster.ids() {
            if cluster.submit(id, rng.next_u64()) {
                leader = Some(id);
            }
        }
        figure8_pause(&mut rng).await;
        if let Some(leader) = leader {
            cluster.crash1(leader).await;
            up -= 1;
            crashes += 1;
        }
        if up < 3 {
            let id = NodeId(1 + rng.below(5));
            if !cluster.is_running(id) {
                cluster.start1(id).await;
                cluster.connect(id);
                up += 1;
            }
        }
    }
    for id in cluster.ids() {
        if !cluster.is_running(id) {
            cluster.start1(id).await;
            cluster.connect(id);
        }
    }
    let last = cluster.one(rng.next_u64(), 5, true).await;
    println!(
        "{crashes} leaders lost; final write at {last}, term {}",
        cluster.max_term()
    );
    cluster.shutdown().await;
}

/// TestFigure8Unreliable3C: Figure 8 on an unreliable network (10 % of requests and of replies
/// lost, 0-26 ms delays), and from iteration 200 on with long reordering: 2 of 3 replies held
/// 0.2-2.2 s, so a leader sees answers to requests from long ago, from earlier terms and older
/// log positions, and must judge them by term and index, not by arrival (§5.3, §5.4.2). Leaders
/// are disconnected (with probability 1/2), not crashed. The final write must commit on all five
/// within 10 s, still on the unreliable network.
///
/// NB: the lab's RPCs have no timeout; ours give up after `rpc_timeout` (500 ms by default),
/// which would silently turn most held replies into lost ones. This test raises it to 3 s so
/// that every held reply is delivered, late, as in the lab. Long reordering is a fixture-level
/// layer over the router (`raftor_tests::network`), with labrpc's numbers.
///
/// NB: liveness margin. With 2 of 3 replies held ≥ 200 ms, a candidate with our default
/// 150-300 ms election timeout often times out before its votes arrive (the paper's
/// broadcastTime ≪ electionTimeout no longer holds; the lab's handout expects timeouts above
/// the paper's range). About 4 seeds in 1000 (e.g. `RAFTOR_SEED=38`, 356, 504, 714) go the whole
/// 10 s of the final `one()` without a leader that lasts long enough to commit; with 300-600 ms
/// timeouts, 0 in 1000. Safety is never at stake: the ledger checks every applied entry.
#[actix_rt::test]
async fn t34_figure8_unreliable() {
    tokio::time::pause();
    let seed = rng::seed(34);
    let mut rng = TestRng::new(seed);
    let config = Config {
        rpc_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let mut cluster = TestCluster::with_config(5, config, seed).await;
    cluster.set_unreliable(true);
    cluster.one(rng.next_u64(), 1, true).await;
    let mut up = 5;
    let mut crashes = 0;
    for iteration in 0..1000 {
        if iteration == 200 {
            cluster.set_long_reordering(true);
        }
        let mut leader = None;
        for id in cluster.ids() {
            if cluster.submit(id, rng.next_u64()) && cluster.is_connected(id) {
                leader = Some(id);
            }
        }
        figure8_pause(&mut rng).await;
        if let Some(leader) = leader {
            if rng.per_mille(ELECTION_TIMEOUT.as_millis() as u64 / 2) {
                cluster.disconnect(leader);
                up -= 1;
                crashes += 1;
            }
        }
        if up < 3 {
            let id = NodeId(1 + rng.below(5));
            if !cluster.is_connected(id) {
                cluster.connect(id);
                up += 1;
            }
        }
    }
    for id in cluster.ids() {
        if !cluster.is_connected(id) {
            cluster.connect(id);
        }
    }
    let last = cluster.one(rng.next_u64(), 5, true).await;
    println!(
        "{crashes} leaders lost; final write at {last}, term {}",
        cluster.max_term()
    );
    cluster.shutdown().await;
}
