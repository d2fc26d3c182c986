//! Log agreement (§5.3) on real nodes: the lab suite's 3B scenarios.

use raftor::LogIndex;
use raftor_tests::TestCluster;

/// TestBasicAgree3B: nothing committed before a write; each write lands at the next index on
/// every node. (Index 1 is the cluster's bootstrap configuration and index 2 the first leader's
/// blank entry, so the first command lands at index 3.)
#[actix_rt::test]
async fn t20_basic_agreement() {
    tokio::time::pause();
    let cluster = TestCluster::new(3).await;
    cluster.check_one_leader().await;
    for (i, value) in [100u64, 200, 300].into_iter().enumerate() {
        let expected = LogIndex(3 + i as u64);
        assert_eq!(
            cluster.n_committed(expected).0,
            0,
            "committed before the write"
        );
        let index = cluster.one(value, 3, false).await;
        assert_eq!(index, expected);
    }
    cluster.shutdown().await;
}
