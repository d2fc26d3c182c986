//! Criterion benches of the protocol core: the cost of taking client commands from proposal to
//! commit and apply on a 3-node in-memory cluster of cores (testkit network, no serialization).
//!
//! `cargo bench -p raftor-benches --bench core`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use raftor::core::testkit::Cluster;
use raftor::core::{Input, Proposal};
use raftor::{Config, NodeId, RequestId};

fn elected_cluster() -> (Cluster, NodeId) {
    let mut cluster = Cluster::new(3, Config::default(), 1);
    let leader = cluster.elect(1000).expect("a leader within 1000 ticks");
    (cluster, leader)
}

fn propose_to_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("propose_to_commit_3_nodes");
    for batch in [1u64, 64] {
        group.throughput(Throughput::Elements(batch));
        group.bench_function(format!("batch_{batch}"), |b| {
            b.iter_batched_ref(
                elected_cluster,
                |(cluster, leader)| {
                    let proposals = (0..batch)
                        .map(|i| Proposal {
                            request: RequestId(i),
                            command: Arc::from(&b"cmd"[..]),
                        })
                        .collect();
                    cluster.step(*leader, Input::Propose(proposals));
                    cluster.stabilize();
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, propose_to_commit);
criterion_main!(benches);
