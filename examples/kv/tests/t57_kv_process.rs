//! The key-value server as separate processes: three `raftor-kv serve` nodes on their own
//! write-ahead logs, talking TCP. Writes through one node read back through each; the leader
//! is killed with SIGKILL while writes go on; it restarts on its directory and catches up (with
//! a snapshot: compaction runs every 30 entries here); every acknowledged write is then on every
//! node, and SIGTERM stops each node with exit code 0.

mod common;

use common::{get, put, Fixture, WAIT};
use raftor_kv::demo::write_keys;
use raftor_kv::local;

const FLAGS: [&str; 4] = ["--snapshot-threshold", "30", "--snapshot-keep-tail", "5"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_of_the_leader() -> anyhow::Result<()> {
    let (mut fixture, leader) = Fixture::start(&FLAGS).await?;
    let through = fixture.endpoint(fixture.others(leader)[0]);
    for i in 0..20 {
        let reply = put(&through, &format!("k{i}"), &format!("v{i}")).await;
        assert_eq!(reply.status, 200, "put k{i}: {}", reply.text());
        assert!(reply
            .json()
            .is_some_and(|json| json["index"].as_u64().is_some()));
    }
    for endpoint in fixture.endpoints() {
        for i in 0..20 {
            let reply = get(&endpoint, &format!("k{i}"), "linearizable").await;
            assert_eq!(
                (reply.status, reply.text()),
                (200, format!("v{i}")),
                "{endpoint}"
            );
        }
    }

    fixture.cluster.kill(leader)?;
    let survivors: Vec<String> = fixture
        .others(leader)
        .into_iter()
        .map(|id| fixture.endpoint(id))
        .collect();
    let mut acked = write_keys(&survivors, 0..100).await;
    let new_leader = local::wait_for_leader(&survivors, Some(leader), WAIT).await?;
    acked.extend(write_keys(&survivors, 100..150).await);
    assert!(
        acked.len() >= 140,
        "only {} of 150 writes acknowledged",
        acked.len()
    );

    fixture.cluster.start(leader)?;
    let view = local::cluster_view(&fixture.endpoint(new_leader)).await;
    let commit = view
        .and_then(|view| view["commit_index"].as_u64())
        .unwrap_or(u64::MAX);
    for endpoint in fixture.endpoints() {
        local::wait_applied(&endpoint, commit, WAIT).await?;
    }
    for endpoint in fixture.endpoints() {
        for (key, value) in &acked {
            let reply = get(&endpoint, key, "stale").await;
            assert_eq!(
                (reply.status, reply.text()),
                (200, value.clone()),
                "{endpoint} {key}"
            );
        }
        let reply = get(&endpoint, "k7", "linearizable").await;
        assert_eq!(reply.text(), "v7", "{endpoint}");
    }
    let restarted = local::cluster_view(&fixture.endpoint(leader)).await;
    let snapshot = restarted
        .as_ref()
        .and_then(|view| view["snapshot_index"].as_u64());
    assert!(
        snapshot.is_some(),
        "the restarted node holds no snapshot: {restarted:?}"
    );

    fixture.cluster.check_alive()?;
    let stopped = fixture.cluster.stop_all(WAIT).await;
    for (id, status) in stopped {
        assert!(
            status.is_some_and(|s| s.success()),
            "node {id} exited with {status:?}"
        );
    }
    Ok(())
}
