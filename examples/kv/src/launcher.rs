//! `raftor-kv cluster`: three nodes as child processes on this machine, until Ctrl-C.
//!
//! Node N listens on 127.0.0.N (127.0.0.1 where the system routes no other loopback address),
//! raft port `--raft-base-port`+N and HTTP port `--http-base-port`+N, and keeps its data and log
//! under `--data-dir`/node-N. Stopping (Ctrl-C or SIGTERM) sends every node SIGTERM and waits
//! for them; starting again on the same directory recovers the cluster's data.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use raftor::NodeId;

use crate::cli::ClusterArgs;
use crate::local::{self, loopback_ip, LocalCluster, Logs, NodeSpec};
use crate::node::shutdown_signal;

/// Runs the cluster until Ctrl-C or SIGTERM.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("create {}", args.data_dir.display()))?;
    let specs: Vec<NodeSpec> = (1..=3u16)
        .map(|n| {
            let ip = loopback_ip(u64::from(n));
            NodeSpec {
                id: NodeId(u64::from(n)),
                raft: SocketAddr::new(ip, args.raft_base_port.saturating_add(n)),
                http: SocketAddr::new(ip, args.http_base_port.saturating_add(n)),
                data_dir: args.data_dir.join(format!("node-{n}")),
            }
        })
        .collect();
    let exe = std::env::current_exe().context("find this program")?;
    let logs = Logs::Dir(args.data_dir.clone());
    let mut cluster = LocalCluster::new(exe, specs, args.snapshot.to_flags(), logs);
    cluster.start_all()?;
    // A node that cannot bind its ports exits at once: say so before waiting for an election.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster
        .check_alive()
        .context("a node failed to start (its port taken?); see its log")?;
    let leader = local::wait_for_leader(&cluster.endpoints(), None, Duration::from_secs(20)).await;
    cluster
        .check_alive()
        .context("a node failed to start (its port taken?); see its log")?;
    print_banner(&cluster, &args, leader.ok());
    let signal = shutdown_signal().await;
    println!("\n{signal}: stopping every node...");
    for (id, status) in cluster.stop_all(Duration::from_secs(15)).await {
        match status {
            Some(status) => println!("node {id} exited ({status})"),
            None => println!("node {id} did not stop in time and was killed"),
        }
    }
    Ok(())
}

fn print_banner(cluster: &LocalCluster, args: &ClusterArgs, leader: Option<NodeId>) {
    let dir = args.data_dir.display();
    println!("raftor-kv: a 3-node cluster (data and logs under {dir})\n");
    for spec in cluster.specs() {
        let pid = cluster
            .pid(spec.id)
            .map_or_else(String::new, |pid| pid.to_string());
        println!(
            "  node {}  {}  raft {}  pid {pid}  log {dir}/node-{}.log",
            spec.id,
            spec.endpoint(),
            spec.raft,
            spec.id
        );
    }
    match leader {
        Some(leader) => println!("\nnode {leader} leads."),
        None => println!("\nno leader yet: see the logs."),
    }
    let endpoints = cluster.endpoints();
    let first = &endpoints[0];
    let second = endpoints.get(1).unwrap_or(first);
    let third = endpoints.get(2).unwrap_or(first);
    println!(
        "\nTry:\n  \
         curl -X PUT --data-binary 'hello' {first}/kv/greeting\n  \
         curl {second}/kv/greeting\n  \
         curl '{third}/kv/greeting?consistency=stale'\n  \
         curl -X POST -d '{{\"expected\": \"hello\", \"value\": \"bye\"}}' {first}/kv/greeting/cas\n  \
         curl -X DELETE {first}/kv/greeting\n  \
         curl {first}/cluster\n  \
         cargo run -q -p raftor-kv -- status --endpoints {}\n\n\
         Kill the leader (kill -9 PID) and watch `status`: a new leader within a second.\n\
         Ctrl-C stops every node.",
        endpoints.join(",")
    );
}
