//! Reads without a log write on real nodes (thesis §6.4, `core/read_index.rs`, `raft/read.rs`):
//! a linearizable read sees every write acknowledged before it, on any node; a leader cut off
//! from its majority never serves one; lease reads cost no messages while the lease holds and
//! stop when it lapses; concurrent reads share quorum rounds; `Stale` never waits.
//!
//! Not observable here: a freshly elected leader waits for its first commit before it serves a
//! read (§8). On an in-process network the new leader's blank entry commits in the same round
//! trip that confirms the read's round, so an integration test cannot tell the rule from its
//! absence without forging messages; the rule test
//! `rules_read::a_new_leader_serves_no_read_before_its_first_commit` covers it.

use std::time::Duration;

use futures::future::join_all;
use raftor::core::Role;
use raftor::{ClientReadError, Config, LogIndex, NodeId, Raft, ReadLevel};
use raftor_tests::cluster::ELECTION_TIMEOUT;
use raftor_tests::rng;
use raftor_tests::{Recorder, TestCluster};
use tokio::time::{sleep, Instant};

/// A cluster of `size` nodes with the default config, reads time out after 2 s.
async fn cluster(size: u64, seed: u64) -> TestCluster {
    let config = Config {
        client_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    TestCluster::with_config(size, config, seed).await
}

fn running(cluster: &TestCluster, id: NodeId) -> Raft<Recorder> {
    cluster.raft(id).expect("node running")
}

/// Whether a read refused to serve in one of the ways an isolated or deposed leader may.
fn is_refusal(result: &Result<LogIndex, ClientReadError>) -> bool {
    matches!(
        result,
        Err(ClientReadError::Timeout) | Err(ClientReadError::NotLeader { .. })
    )
}

/// After a write is acknowledged (on the leader or through a follower), a `Linearizable` or
/// `Lease` read on any node sees it: `ensure_readable` returns an applied index at or past the
/// write, and `read` runs against a state machine that holds it (§6.4).
#[actix_rt::test]
async fn t60_reads_after_writes_see_them_on_every_node() {
    tokio::time::pause();
    let seed = rng::seed(60);
    let cluster = cluster(3, seed).await;
    let leader = cluster.check_one_leader().await;
    for (i, value) in [601u64, 602, 603, 604, 605, 606].into_iter().enumerate() {
        // Alternate between writing on the leader and through a follower.
        let writer = cluster.after(leader, i as u64 % 3);
        let index = running(&cluster, writer)
            .client_write(value)
            .await
            .expect("write applied");
        for id in cluster.ids() {
            let raft = running(&cluster, id);
            for level in [ReadLevel::Linearizable, ReadLevel::Lease] {
                let applied = raft.ensure_readable(level).await.expect("readable");
                assert!(
                    applied >= index,
                    "node {id} {level:?}: applied {applied} misses write at {index}"
                );
                let seen = raft
                    .read(level, move |sm| sm.applied().get(&index).copied())
                    .await
                    .expect("read served");
                assert_eq!(seen, Some(value), "node {id} {level:?} read misses {value}");
            }
        }
    }
    cluster.shutdown().await;
}

/// A leader cut off from its majority can never serve a linearizable read: the read times out
/// or is refused with `NotLeader`, before and after the majority elected a new leader and
/// committed a write the old one never saw (§6.4: the quorum round cannot complete). The
/// majority meanwhile serves reads that see that write.
#[actix_rt::test]
async fn t61_an_isolated_leader_never_serves_a_linearizable_read() {
    tokio::time::pause();
    let seed = rng::seed(61);
    let mut cluster = cluster(3, seed).await;
    let old = cluster.check_one_leader().await;
    let before = running(&cluster, old)
        .client_write(611)
        .await
        .expect("write applied");
    cluster.disconnect(old);
    let old_raft = running(&cluster, old);

    // A read on the old leader, in flight while the majority moves on.
    let in_flight = {
        let raft = old_raft.clone();
        actix_rt::spawn(async move { raft.ensure_readable(ReadLevel::Linearizable).await })
    };
    let index = cluster.one(612, 2, true).await;
    assert!(index > before);
    let new = cluster.check_one_leader().await;
    assert_ne!(new, old, "the majority elected a new leader");

    let result = in_flight.await.expect("read task finished");
    println!("read in flight on the isolated old leader: {result:?}");
    assert!(is_refusal(&result), "isolated old leader served {result:?}");
    let started = Instant::now();
    let result = old_raft.ensure_readable(ReadLevel::Linearizable).await;
    println!("read on the deposed, isolated old leader: {result:?}");
    assert!(is_refusal(&result), "isolated old leader served {result:?}");
    assert!(started.elapsed() <= Duration::from_secs(2) + Duration::from_millis(50));
    assert!(
        old_raft.metrics().last_applied < index,
        "the old leader never saw the new write"
    );

    let seen = running(&cluster, new)
        .read(ReadLevel::Linearizable, move |sm| {
            sm.applied().get(&index).copied()
        })
        .await
        .expect("majority serves reads");
    assert_eq!(seen, Some(612));
    cluster.shutdown().await;
}

/// With forwarding off a follower refuses `Linearizable` and `Lease` reads and names the leader
/// (the caller retries there); `Stale` is still served locally.
#[actix_rt::test]
async fn t62_without_forwarding_a_follower_refuses_reads() {
    tokio::time::pause();
    let config = Config {
        forward_writes: false,
        ..Config::default()
    };
    let cluster = TestCluster::with_config(3, config, rng::seed(62)).await;
    let leader = cluster.check_one_leader().await;
    let follower = running(&cluster, cluster.after(leader, 1));
    for level in [ReadLevel::Linearizable, ReadLevel::Lease] {
        assert_eq!(
            follower.ensure_readable(level).await,
            Err(ClientReadError::NotLeader {
                leader: Some(leader)
            }),
            "{level:?}"
        );
    }
    assert!(follower.ensure_readable(ReadLevel::Stale).await.is_ok());
    cluster.shutdown().await;
}

/// While its lease holds the leader serves `Lease` reads with no message at all: many reads,
/// zero AppendEntries, no time passing. The same number of `Linearizable` reads one after the
/// other each costs a quorum round.
#[actix_rt::test]
async fn t63_lease_reads_cost_no_messages() {
    tokio::time::pause();
    const READS: u64 = 200;
    let seed = rng::seed(63);
    let cluster = cluster(3, seed).await;
    let leader = cluster.check_one_leader().await;
    let raft = running(&cluster, leader);
    let index = raft.client_write(631).await.expect("write applied");

    let rpcs_before = cluster.router.stats(leader).rpcs;
    let started = Instant::now();
    for _ in 0..READS {
        let applied = raft
            .ensure_readable(ReadLevel::Lease)
            .await
            .expect("lease read");
        assert!(applied >= index);
    }
    let lease_rpcs = cluster.router.stats(leader).rpcs - rpcs_before;
    let lease_elapsed = started.elapsed();

    let rpcs_before = cluster.router.stats(leader).rpcs;
    for _ in 0..READS {
        raft.ensure_readable(ReadLevel::Linearizable)
            .await
            .expect("linearizable read");
    }
    let linearizable_rpcs = cluster.router.stats(leader).rpcs - rpcs_before;
    println!(
        "{READS} sequential reads on the leader of 3: lease {lease_rpcs} RPCs \
         ({lease_elapsed:?}), linearizable {linearizable_rpcs} RPCs"
    );
    assert_eq!(lease_rpcs, 0, "lease reads sent messages");
    assert_eq!(lease_elapsed, Duration::ZERO, "lease reads waited");
    assert!(
        linearizable_rpcs >= 2 * READS,
        "each sequential linearizable read needs its own round to both followers"
    );
    cluster.shutdown().await;
}

/// An isolated leader's lease runs out: a `Lease` read is served at once just after the
/// partition (the lease still holds, and no other leader can be elected before it ends), but
/// once the lease has lapsed the read falls back to a round that cannot complete, and it times
/// out or is refused while the majority elects a new leader and commits.
#[actix_rt::test]
async fn t64_lease_reads_stop_when_the_lease_lapses() {
    tokio::time::pause();
    let seed = rng::seed(64);
    let mut cluster = cluster(3, seed).await;
    let old = cluster.check_one_leader().await;
    let raft = running(&cluster, old);
    raft.client_write(641).await.expect("write applied");
    cluster.disconnect(old);

    let started = Instant::now();
    raft.ensure_readable(ReadLevel::Lease)
        .await
        .expect("lease still holds just after the partition");
    assert_eq!(started.elapsed(), Duration::ZERO);

    // election_timeout_min_ticks (15) - lease_drift_margin_ticks (3) = 12 ticks of 10 ms at
    // most since the last confirmed round.
    sleep(Duration::from_millis(130)).await;
    let lapsed = {
        let raft = raft.clone();
        actix_rt::spawn(async move { raft.ensure_readable(ReadLevel::Lease).await })
    };
    let index = cluster.one(642, 2, true).await;
    let result = lapsed.await.expect("read task finished");
    println!("lease read after the lease lapsed: {result:?}");
    assert!(is_refusal(&result), "lapsed lease served {result:?}");
    assert!(raft.metrics().last_applied < index);
    let result = raft.ensure_readable(ReadLevel::Lease).await;
    assert!(is_refusal(&result), "lapsed lease served {result:?}");
    cluster.shutdown().await;
}

/// Many concurrent linearizable reads on the leader share quorum rounds: a round begun while
/// reads wait confirms all of them, so AppendEntries sent during the burst are a small fraction
/// of the reads.
#[actix_rt::test]
async fn t65_concurrent_reads_share_quorum_rounds() {
    tokio::time::pause();
    const READS: u64 = 1000;
    let seed = rng::seed(65);
    let cluster = cluster(3, seed).await;
    let leader = cluster.check_one_leader().await;
    let raft = running(&cluster, leader);
    let index = raft.client_write(651).await.expect("write applied");

    // ANCHOR: burst
    let rpcs_before = cluster.router.stats(leader).rpcs;
    let started = Instant::now();
    let reads = (0..READS).map(|_| raft.ensure_readable(ReadLevel::Linearizable));
    let results = join_all(reads).await;
    let rpcs = cluster.router.stats(leader).rpcs - rpcs_before;
    // ANCHOR_END: burst
    let elapsed = started.elapsed();
    for result in results {
        assert!(result.expect("read served") >= index);
    }
    println!(
        "{READS} concurrent linearizable reads on the leader of 3: {rpcs} AppendEntries \
         sent, {elapsed:?} of virtual time"
    );
    assert!(
        rpcs < READS / 10,
        "{rpcs} AppendEntries for {READS} reads: rounds are not shared"
    );
    cluster.shutdown().await;
}

/// `Stale` returns this node's applied index at once, without asking anyone, even on a node cut
/// off from the rest; `read` then sees that state.
#[actix_rt::test]
async fn t66_stale_reads_return_at_once_even_when_isolated() {
    tokio::time::pause();
    let seed = rng::seed(66);
    let mut cluster = cluster(3, seed).await;
    let leader = cluster.check_one_leader().await;
    let index = running(&cluster, leader)
        .client_write(661)
        .await
        .expect("write applied");
    cluster.wait_applied(index).await;
    for id in cluster.ids() {
        cluster.disconnect(id);
        // Long enough for every node to notice: the leader steps down, followers lose it.
        sleep(ELECTION_TIMEOUT).await;
        let raft = running(&cluster, id);
        let rpcs_before = cluster.router.stats(id).rpcs;
        let started = Instant::now();
        let applied = raft
            .ensure_readable(ReadLevel::Stale)
            .await
            .expect("stale read");
        assert_eq!(applied, raft.metrics().last_applied);
        assert!(applied >= index);
        let seen = raft
            .read(ReadLevel::Stale, move |sm| {
                sm.applied().get(&index).copied()
            })
            .await
            .expect("stale read");
        assert_eq!(seen, Some(661));
        assert_eq!(started.elapsed(), Duration::ZERO, "node {id} waited");
        assert_eq!(cluster.router.stats(id).rpcs, rpcs_before);
        assert_ne!(raft.metrics().role, Role::Leader);
        cluster.connect(id);
    }
    cluster.shutdown().await;
}
