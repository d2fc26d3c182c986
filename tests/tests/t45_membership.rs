//! Membership changes and leadership transfer on real nodes (`raft/membership.rs`): growing
//! and shrinking under continuous writes, replacing every member, removing the leader, a change
//! with a member partitioned away, a learner far behind catching up by snapshot, and leadership
//! transfer under writes. Throughout, the ledger checks that no two nodes apply different
//! commands at an index (state machine safety), `check_one_leader` that no term has two leaders,
//! and every acknowledged write is checked to be applied by every final member.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use raftor::core::Role;
use raftor::{Config, NodeId, Raft};
use raftor_tests::recorder::Recorder;
use raftor_tests::rng;
use raftor_tests::view::ClusterView;
use raftor_tests::TestCluster;
use tokio::task::JoinHandle;

/// A writer beside the test: writes increasing values through any node until stopped, and
/// remembers which were acknowledged.
struct Writer {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Vec<u64>>,
}

impl Writer {
    fn start(view: ClusterView, first: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let next = AtomicU64::new(first);
        let task = tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let value = next.fetch_add(1, Ordering::Relaxed);
                let ids = view.ids();
                let Some(raft) = ids.iter().find_map(|id| view.raft(*id)) else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                if raft.client_write(value).await.is_ok() {
                    acknowledged.push(value);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acknowledged
        });
        Writer { stop, task }
    }

    async fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("writer")
    }
}

fn ids(list: &[u64]) -> BTreeSet<NodeId> {
    list.iter().copied().map(NodeId).collect()
}

async fn leader(cluster: &TestCluster) -> Raft<Recorder> {
    let id = cluster.check_one_leader().await;
    cluster.raft(id).expect("the leader runs")
}

/// Every acknowledged value, and a final one, are applied by every node in `members`.
async fn check_all_applied(cluster: &TestCluster, members: &BTreeSet<NodeId>, acked: &[u64]) {
    let index = cluster.one(1_000_000, members.len(), true).await;
    cluster.wait_applied(index).await;
    for value in acked {
        let at = cluster
            .ledger
            .index_of(*value)
            .unwrap_or_else(|| panic!("acknowledged write {value} was lost"));
        for id in members {
            assert_eq!(
                cluster.ledger.applied_at(*id, at),
                Some(*value),
                "node {id} lacks acknowledged write {value} at {at}"
            );
        }
    }
    cluster.ledger.check();
}

#[actix_rt::test]
async fn t45_grow_three_to_five_and_shrink_back_under_writes() {
    tokio::time::pause();
    let mut cluster = TestCluster::with_config(3, Config::default(), rng::seed(45)).await;
    cluster.one(1, 3, true).await;
    let writer = Writer::start(cluster.view(), 100);
    for id in [4, 5] {
        cluster.add_node(NodeId(id)).await;
        let membership = leader(&cluster)
            .await
            .add_voter(NodeId(id), 10)
            .await
            .expect("add voter");
        assert!(membership.voters().contains(&NodeId(id)));
    }
    assert_eq!(
        leader(&cluster).await.metrics().membership.voters(),
        ids(&[1, 2, 3, 4, 5])
    );
    let membership = leader(&cluster)
        .await
        .change_membership(ids(&[1, 2, 3]))
        .await
        .expect("shrink");
    assert_eq!(membership.voters(), ids(&[1, 2, 3]));
    let acked = writer.finish().await;
    assert!(acked.len() > 10, "writes went on: {}", acked.len());
    for id in [4, 5] {
        cluster.retire_node(NodeId(id)).await;
    }
    check_all_applied(&cluster, &ids(&[1, 2, 3]), &acked).await;
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn t46_replace_every_member_one_by_one() {
    tokio::time::pause();
    let mut cluster = TestCluster::with_config(3, Config::default(), rng::seed(46)).await;
    cluster.one(1, 3, true).await;
    let writer = Writer::start(cluster.view(), 100);
    for (old, new) in [(1, 4), (2, 5), (3, 6)] {
        cluster.add_node(NodeId(new)).await;
        leader(&cluster)
            .await
            .add_voter(NodeId(new), 10)
            .await
            .expect("add");
        // The leader may be the one leaving: it leads until the change commits.
        leader(&cluster)
            .await
            .remove_node(NodeId(old))
            .await
            .expect("remove");
        cluster.retire_node(NodeId(old)).await;
    }
    let acked = writer.finish().await;
    let leader = leader(&cluster).await;
    assert_eq!(leader.metrics().membership.voters(), ids(&[4, 5, 6]));
    check_all_applied(&cluster, &ids(&[4, 5, 6]), &acked).await;
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn t47_a_removed_leader_steps_down_and_never_disrupts() {
    tokio::time::pause();
    let mut cluster = TestCluster::with_config(3, Config::default(), rng::seed(47)).await;
    cluster.one(1, 3, true).await;
    let old = cluster.check_one_leader().await;
    let rest: BTreeSet<NodeId> = cluster.ids().into_iter().filter(|id| *id != old).collect();
    let membership = cluster
        .raft(old)
        .expect("runs")
        .change_membership(rest.clone())
        .await
        .expect("remove the leader");
    assert_eq!(membership.voters(), rest);
    let removed = cluster.raft(old).expect("still runs");
    removed
        .wait(Duration::from_secs(2))
        .role(Role::Follower)
        .await
        .expect("steps down");
    // The rest elect a leader and go on; the removed node, still running and connected, never
    // campaigns, so the term stays put.
    let new = leader(&cluster).await;
    assert!(rest.contains(&new.id()));
    let term = new.metrics().term;
    for value in 2..12 {
        new.client_write(value).await.expect("write");
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        new.metrics().term,
        term,
        "the removed node disrupted the cluster"
    );
    assert_ne!(removed.metrics().role, Role::Leader);
    assert_ne!(removed.metrics().role, Role::Candidate);
    cluster.retire_node(old).await;
    check_all_applied(&cluster, &rest, &(2..12).collect::<Vec<_>>()).await;
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn t48_a_change_completes_with_a_member_partitioned_away() {
    tokio::time::pause();
    let mut cluster = TestCluster::with_config(3, Config::default(), rng::seed(48)).await;
    cluster.one(1, 3, true).await;
    let leader_id = cluster.check_one_leader().await;
    let away = cluster.after(leader_id, 1);
    cluster.disconnect(away);
    cluster.add_node(NodeId(4)).await;
    let leader = cluster.raft(leader_id).expect("runs");
    let membership = leader
        .add_voter(NodeId(4), 10)
        .await
        .expect("add with one away");
    assert_eq!(membership.voters(), ids(&[1, 2, 3, 4]));
    cluster.one(2, 3, true).await;
    // Back: it learns the new configuration and catches up.
    cluster.connect(away);
    check_all_applied(&cluster, &ids(&[1, 2, 3, 4]), &[1, 2]).await;
    let at_away = cluster.metrics(away).expect("runs").membership.voters();
    assert_eq!(at_away, ids(&[1, 2, 3, 4]));
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn t49_a_learner_far_behind_catches_up_by_snapshot_and_never_votes() {
    tokio::time::pause();
    let config = Config {
        snapshot_threshold_entries: 20,
        snapshot_keep_tail_entries: 5,
        snapshot_chunk_bytes: 64,
        ..Config::default()
    };
    let mut cluster = TestCluster::with_config(3, config, rng::seed(49)).await;
    for value in 1..=100 {
        cluster.one(value, 3, true).await;
    }
    cluster.add_node(NodeId(4)).await;
    let membership = leader(&cluster)
        .await
        .add_learner(NodeId(4))
        .await
        .expect("add learner");
    assert_eq!(membership.learners(), &ids(&[4]));
    let index = cluster.one(101, 4, true).await;
    cluster.wait_applied(index).await;
    assert_eq!(
        cluster.storage(NodeId(4)).mem_snapshots().installed(),
        1,
        "the learner got the leader's snapshot"
    );
    assert_eq!(
        cluster.metrics(NodeId(4)).expect("runs").role,
        Role::Follower
    );
    // With two voters down, the learner cannot help form a quorum.
    let leader_id = cluster.check_one_leader().await;
    let others: Vec<NodeId> = [1, 2, 3]
        .map(NodeId)
        .into_iter()
        .filter(|id| *id != leader_id)
        .collect();
    cluster.disconnect(others[0]);
    cluster.disconnect(others[1]);
    let raft = cluster.raft(leader_id).expect("runs");
    assert!(
        raft.client_write(102).await.is_err(),
        "a learner must not count toward a quorum"
    );
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn t50_leadership_transfer_under_writes() {
    tokio::time::pause();
    let cluster = TestCluster::with_config(3, Config::default(), rng::seed(50)).await;
    cluster.one(1, 3, true).await;
    let writer = Writer::start(cluster.view(), 100);
    for _ in 0..3 {
        let old = cluster.check_one_leader().await;
        let to = cluster.after(old, 1);
        let raft = cluster.raft(old).expect("runs");
        let started = tokio::time::Instant::now();
        raft.transfer_leader(to).await.expect("transfer");
        let new = cluster.check_one_leader().await;
        assert_eq!(new, to, "leadership went to the target");
        assert!(
            started.elapsed() < Duration::from_secs(1) + Duration::from_millis(600),
            "the transfer took {:?}",
            started.elapsed()
        );
    }
    let acked = writer.finish().await;
    check_all_applied(&cluster, &ids(&[1, 2, 3]), &acked).await;
    cluster.shutdown().await;
}

#[actix_rt::test]
async fn t51_a_leader_shutting_down_gracefully_hands_over_first() {
    tokio::time::pause();
    let mut cluster = TestCluster::with_config(3, Config::default(), rng::seed(51)).await;
    cluster.one(1, 3, true).await;
    let old = cluster.check_one_leader().await;
    let raft = cluster.raft(old).expect("runs");
    raft.shutdown_gracefully().await;
    // A new leader is known at once, without waiting an election timeout.
    let survivor = cluster.after(old, 1);
    let metrics = cluster.metrics(survivor).expect("runs");
    assert!(
        metrics.leader.is_some() && metrics.leader != Some(old),
        "no new leader right after the graceful shutdown: {metrics:?}"
    );
    cluster.crash(old).await;
    cluster.one(2, 2, true).await;
    cluster.shutdown().await;
}
