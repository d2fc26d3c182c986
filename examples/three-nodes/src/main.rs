//! Three raftor cores in one process: they elect a leader, commit commands, lose the leader,
//! elect another, and bring the old one back up to date. Messages travel through an in-memory
//! network and time passes in ticks (10 ms each with the default config), so every run prints
//! the same story.
//!
//! Run it with `cargo run -p three-nodes`.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use raftor::core::testkit::Cluster;
use raftor::core::Role;
use raftor::{Config, EntryPayload, NodeId};

/// Watches the cluster and prints role changes as they happen.
struct Narrator {
    tick: u64,
    roles: BTreeMap<NodeId, (Role, u64)>,
}

impl Narrator {
    fn observe(&mut self, cluster: &Cluster) {
        for id in cluster.ids() {
            let Some(core) = cluster.core(id) else {
                continue;
            };
            let now = (core.role(), core.term().0);
            let before = self.roles.insert(id, now);
            if before == Some(now) {
                continue;
            }
            if now.0 != Role::Follower {
                println!(
                    "[tick {:>3}] node {id} is {:?} in term {}",
                    self.tick, now.0, now.1
                );
            } else if before.is_some_and(|(role, _)| role == Role::Leader) {
                println!(
                    "[tick {:>3}] node {id} steps down (term {})",
                    self.tick, now.1
                );
            }
        }
    }

    /// Ticks every node once, delivers all messages, and reports.
    fn round(&mut self, cluster: &mut Cluster) {
        self.tick += 1;
        cluster.tick_all();
        cluster.stabilize();
        self.observe(cluster);
    }

    fn until_leader(&mut self, cluster: &mut Cluster, excluding: Option<NodeId>) -> Result<NodeId> {
        for _ in 0..500 {
            self.round(cluster);
            if let Some(leader) = cluster.leader().filter(|id| Some(*id) != excluding) {
                return Ok(leader);
            }
        }
        bail!("no leader elected within 500 ticks")
    }
}

fn commands(cluster: &Cluster, id: NodeId) -> Vec<String> {
    cluster
        .node(id)
        .applied
        .iter()
        .filter_map(|entry| match &entry.payload {
            EntryPayload::Command(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .collect()
}

fn write(
    narrator: &mut Narrator,
    cluster: &mut Cluster,
    leader: NodeId,
    command: &str,
) -> Result<()> {
    let request = cluster.propose(leader, command.as_bytes());
    for _ in 0..50 {
        if let Some(answer) = cluster.node(leader).answers.get(&request) {
            let index = answer.map_err(|e| anyhow::anyhow!("{command:?} refused: {e}"))?;
            let tick = narrator.tick;
            println!(
                "[tick {tick:>3}] {command:?} committed at index {index} and applied on the leader"
            );
            return Ok(());
        }
        narrator.round(cluster);
    }
    bail!("{command:?} was not committed within 50 ticks")
}

fn main() -> Result<()> {
    let config = Config::default().validate().context("default config")?;
    println!(
        "raftor: three protocol cores, an in-memory network, 1 tick = {:?}\n",
        config.tick_interval
    );
    let mut cluster = Cluster::new(3, config, 2026);
    let mut narrator = Narrator {
        tick: 0,
        roles: BTreeMap::new(),
    };

    let leader = narrator.until_leader(&mut cluster, None)?;
    println!(
        "[tick {:>3}] leader elected: node {leader}\n",
        narrator.tick
    );
    for command in ["set x = 1", "set y = 2", "incr x"] {
        write(&mut narrator, &mut cluster, leader, command)?;
    }

    println!(
        "\n[tick {:>3}] node {leader} is cut off from the others",
        narrator.tick
    );
    cluster.isolate(leader);
    let new_leader = narrator.until_leader(&mut cluster, Some(leader))?;
    println!(
        "[tick {:>3}] the majority elected node {new_leader}\n",
        narrator.tick
    );
    for command in ["set z = 3", "del y"] {
        write(&mut narrator, &mut cluster, new_leader, command)?;
    }

    println!(
        "\n[tick {:>3}] the network heals; node {leader} rejoins",
        narrator.tick
    );
    cluster.heal();
    for _ in 0..40 {
        narrator.round(&mut cluster);
    }

    println!("\nWhat each node's state machine applied:");
    let expected = commands(&cluster, new_leader);
    for id in cluster.ids() {
        let applied = commands(&cluster, id);
        let core = cluster.core(id).context("node is up")?;
        println!(
            "  node {id} ({:?}, term {}): {applied:?}",
            core.role(),
            core.term()
        );
        if applied != expected {
            bail!("node {id} diverged: {applied:?} != {expected:?}");
        }
    }
    println!(
        "\nAll three nodes applied the same {} commands in the same order.",
        expected.len()
    );
    Ok(())
}
