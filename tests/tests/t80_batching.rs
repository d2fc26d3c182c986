//! Batching (design.md, "Performance by design"): proposals that queue while the leader's
//! previous append is being written go out together — one append and one AppendEntries per
//! follower per batch, not one per write.

use raftor_tests::TestCluster;

#[actix_rt::test]
async fn t80_concurrent_writes_share_appends_and_messages() {
    tokio::time::pause();
    let cluster = TestCluster::new(3).await;
    let leader = cluster.check_one_leader().await;
    let raft = cluster.raft(leader).expect("leader running");
    cluster.router.reset_stats();
    const WRITES: u64 = 200;
    let writes: Vec<_> = (0..WRITES)
        .map(|value| {
            let raft = raft.clone();
            actix_rt::spawn(async move { raft.client_write(value).await })
        })
        .collect();
    for write in writes {
        write.await.expect("task").expect("write applied");
    }
    let sent = cluster.router.stats(leader);
    // Unbatched, every write would need its own AppendEntries to each of the 2 followers (400
    // messages). All 200 writes reach the mailbox before the first append completes, so they
    // travel in a couple of batches (4 messages measured).
    assert!(
        sent.rpcs <= 10,
        "{} RPCs from the leader for {WRITES} concurrent writes: proposals were not batched",
        sent.rpcs
    );
    for value in 0..WRITES {
        assert!(
            cluster.ledger.index_of(value).is_some(),
            "write {value} not applied"
        );
    }
    cluster.shutdown().await;
}
