use crate::config::Config;
use crate::core::testkit::{Cluster, InvariantChecker};
use crate::types::NodeId;

#[test]
fn three_nodes_elect_and_commit() {
    let mut cluster = Cluster::new(3, Config::default(), 1);
    let leader = cluster.elect(100).expect("a leader");
    let request = cluster.propose(leader, b"x");
    cluster.stabilize();
    for _ in 0..10 {
        cluster.tick_all();
        cluster.stabilize();
    }
    let mut checker = InvariantChecker::new();
    checker.check(&cluster).unwrap();
    assert!(cluster.node(leader).answers.get(&request).unwrap().is_ok());
    for id in cluster.ids() {
        assert_eq!(cluster.node(id).applied.len(), 3, "node {id}");
    }
    let _ = NodeId(1);
}
