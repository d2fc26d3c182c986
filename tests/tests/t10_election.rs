//! Elections (§5.2) on real nodes: the lab suite's 3A scenarios.

use std::time::Duration;

use raftor_tests::cluster::ELECTION_TIMEOUT;
use raftor_tests::TestCluster;
use tokio::time::sleep;

/// TestInitialElection3A: a leader is elected, terms agree, and with no failure nothing changes.
#[actix_rt::test]
async fn t10_initial_election() {
    tokio::time::pause();
    let cluster = TestCluster::new(3).await;
    cluster.check_one_leader().await;
    sleep(Duration::from_millis(50)).await;
    let term = cluster.check_terms();
    assert!(term.0 >= 1, "term is {term}, but should be at least 1");
    sleep(2 * ELECTION_TIMEOUT).await;
    assert_eq!(
        cluster.check_terms(),
        term,
        "term changed even though there were no failures"
    );
    cluster.check_one_leader().await;
    cluster.shutdown().await;
}

/// TestReElection3A: a new leader after the old one is disconnected; the old one rejoining does
/// not disturb it; no leader without a quorum; a leader again when the quorum returns.
#[actix_rt::test]
async fn t11_re_election() {
    tokio::time::pause();
    let mut cluster = TestCluster::new(3).await;
    let leader1 = cluster.check_one_leader().await;
    cluster.disconnect(leader1);
    cluster.check_one_leader().await;
    cluster.connect(leader1);
    let leader2 = cluster.check_one_leader().await;
    let other = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader2)
        .expect("another node");
    cluster.disconnect(leader2);
    cluster.disconnect(other);
    sleep(2 * ELECTION_TIMEOUT).await;
    cluster.check_no_leader();
    cluster.connect(other);
    cluster.check_one_leader().await;
    cluster.connect(leader2);
    cluster.check_one_leader().await;
    cluster.shutdown().await;
}
