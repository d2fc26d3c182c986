//! The nemeses: each breaks the cluster one way, then heals it, on the run's schedule.
//!
//! | nemesis | fault | heal |
//! |---|---|---|
//! | `kill` | SIGKILL a random node (often the leader) | restart it on its directory |
//! | `pause` | SIGSTOP the leader | SIGCONT |
//! | `partition` | cut the nodes into a random majority and minority | remove the rules |
//! | `isolate-leader` | cut the leader off from every other node | remove the rules |
//! | `one-way` | drop the leader's outgoing raft packets only (it still hears the others) | remove the rules |
//! | `bridge` | two halves that cannot talk, and one node that talks to both | remove the rules |
//! | `loss` | drop 30% of raft packets between every pair, at random | remove the rules |
//! | `wipe` | remove a node from the voters, SIGKILL it, wipe its directory, start it empty with `--join` | add it as a learner, wait for it to catch up, make it a voter again |
//!
//! Network faults cut raft traffic only (see `firewall.rs`); clients reach every node throughout.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::bail;
use serde_json::json;
use tokio::time::Instant;

use super::client::{cluster_view, post_json};
use super::firewall::Firewall;
use super::nodes::Nodes;
use crate::rng::TestRng;

/// How long a membership step of the `wipe` nemesis may take before the run fails.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(30);

/// A way to break the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nemesis {
    /// SIGKILL and restart.
    Kill,
    /// SIGSTOP / SIGCONT the leader.
    Pause,
    /// Majority / minority partition.
    Partition,
    /// The leader alone.
    IsolateLeader,
    /// The leader can hear but not speak.
    OneWay,
    /// Two halves joined by one node.
    Bridge,
    /// Random packet loss between every pair.
    Loss,
    /// Wipe a node's data and re-add it through membership changes.
    Wipe,
}

impl Nemesis {
    /// Every nemesis, in the order the suite runs them.
    pub const ALL: [Nemesis; 8] = [
        Nemesis::Kill,
        Nemesis::Pause,
        Nemesis::Partition,
        Nemesis::IsolateLeader,
        Nemesis::OneWay,
        Nemesis::Bridge,
        Nemesis::Loss,
        Nemesis::Wipe,
    ];

    /// Its name in the summary and in `RAFTOR_FAULTS_NEMESES`.
    pub fn name(self) -> &'static str {
        match self {
            Nemesis::Kill => "kill",
            Nemesis::Pause => "pause",
            Nemesis::Partition => "partition",
            Nemesis::IsolateLeader => "isolate-leader",
            Nemesis::OneWay => "one-way",
            Nemesis::Bridge => "bridge",
            Nemesis::Loss => "loss",
            Nemesis::Wipe => "wipe",
        }
    }

    /// The nemesis called `name`.
    pub fn parse(name: &str) -> Option<Nemesis> {
        Nemesis::ALL.into_iter().find(|n| n.name() == name.trim())
    }

    /// How many nodes its cluster has: five where the fault needs room (a bridge, a 3/2
    /// partition), else three.
    pub fn node_count(self) -> u64 {
        match self {
            Nemesis::Bridge | Nemesis::Partition => 5,
            _ => 3,
        }
    }

    /// Breaks the cluster; returns a description for the run's log.
    pub async fn apply(
        self,
        nodes: &mut Nodes,
        firewall: &Firewall,
        rng: &mut TestRng,
    ) -> anyhow::Result<String> {
        let ids = nodes.ids();
        let leader = find_leader(nodes).await;
        let target = leader
            .filter(|_| rng.below(2) == 0)
            .unwrap_or_else(|| ids[rng.below(ids.len() as u64) as usize]);
        let ip = |id: u64| nodes.spec(id).map(|spec| spec.ip);
        match self {
            Nemesis::Kill => {
                nodes.kill(target)?;
                Ok(format!("kill -9 node {target} (leader {leader:?})"))
            }
            Nemesis::Pause => {
                let id = leader.unwrap_or(target);
                nodes.pause(id)?;
                Ok(format!("SIGSTOP node {id} (leader {leader:?})"))
            }
            Nemesis::Partition => {
                let shuffled = shuffle(&ids, rng);
                let (minority, majority) = shuffled.split_at(ids.len() / 2);
                cut_groups(firewall, &ips(nodes, minority)?, &ips(nodes, majority)?)?;
                Ok(format!("partition {minority:?} | {majority:?}"))
            }
            Nemesis::IsolateLeader => {
                let id = leader.unwrap_or(target);
                let others: Vec<u64> = ids.iter().copied().filter(|o| *o != id).collect();
                cut_groups(firewall, &[ip(id)?], &ips(nodes, &others)?)?;
                Ok(format!("isolate node {id} (leader {leader:?})"))
            }
            Nemesis::OneWay => {
                let id = leader.unwrap_or(target);
                for other in ids.iter().filter(|o| **o != id) {
                    firewall.cut(ip(id)?, ip(*other)?, None)?;
                }
                Ok(format!("node {id} cannot send (leader {leader:?})"))
            }
            Nemesis::Bridge => {
                let shuffled = shuffle(&ids, rng);
                let half = ids.len() / 2;
                let (left, rest) = shuffled.split_at(half);
                let (bridge, right) = rest.split_at(rest.len() - half);
                cut_groups(firewall, &ips(nodes, left)?, &ips(nodes, right)?)?;
                Ok(format!("bridge {left:?} - {bridge:?} - {right:?}"))
            }
            Nemesis::Loss => {
                for a in &ids {
                    for b in ids.iter().filter(|b| *b != a) {
                        firewall.cut(ip(*a)?, ip(*b)?, Some(0.3))?;
                    }
                }
                Ok("30% packet loss between every pair".into())
            }
            Nemesis::Wipe => wipe(nodes, target, leader).await,
        }
    }

    /// Heals what `apply` broke (the final heal of a run also revives everyone).
    pub async fn heal(self, nodes: &mut Nodes, firewall: &Firewall) -> anyhow::Result<()> {
        firewall.heal()?;
        if self == Nemesis::Wipe {
            rejoin(nodes).await?;
        }
        nodes.revive_all()
    }
}

/// Removes `target` from the voters, kills it, wipes its directory and starts it empty.
async fn wipe(nodes: &mut Nodes, target: u64, leader: Option<u64>) -> anyhow::Result<String> {
    let voters: Vec<u64> = nodes.ids().into_iter().filter(|id| *id != target).collect();
    let via = nodes.spec(voters[0])?.endpoint();
    change(&via, "/cluster/voters", &json!({ "voters": voters })).await?;
    nodes.kill(target)?;
    nodes.wipe(target)?;
    nodes.start(target, true)?;
    Ok(format!(
        "remove node {target} (leader {leader:?}), wipe it, start it empty"
    ))
}

/// Adds every node not a voter back: as a learner, then (once it caught up) as a voter.
async fn rejoin(nodes: &mut Nodes) -> anyhow::Result<()> {
    let all = nodes.ids();
    let deadline = Instant::now() + MEMBERSHIP_TIMEOUT;
    let (leader, view) = loop {
        if let Some(leader) = find_leader(nodes).await {
            if let Some(view) = cluster_view(&nodes.spec(leader)?.endpoint()).await {
                break (leader, view);
            }
        }
        if Instant::now() >= deadline {
            bail!("no leader to re-add the wiped node through");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let via = nodes.spec(leader)?.endpoint();
    let missing = all
        .iter()
        .filter(|id| view["voters"].get(id.to_string()).is_none());
    for id in missing {
        let spec = nodes.spec(*id)?;
        let body = json!({ "id": id, "raft_addr": spec.raft, "http_addr": spec.http });
        change(&via, "/cluster/learners", &body).await?;
        wait_caught_up(&spec.endpoint(), &via).await?;
        change(&via, "/cluster/voters", &json!({ "voters": all })).await?;
    }
    Ok(())
}

/// A membership request, retried (a change in progress, no leader yet, a timeout) until it is
/// answered `200` or `MEMBERSHIP_TIMEOUT` passes.
async fn change(endpoint: &str, path: &str, body: &serde_json::Value) -> anyhow::Result<()> {
    let deadline = Instant::now() + MEMBERSHIP_TIMEOUT;
    loop {
        let answer = post_json(endpoint, path, body).await;
        let last = match answer {
            Ok(reply) if reply.is_success() => return Ok(()),
            Ok(reply) => format!("{} {}", reply.status, reply.text()),
            Err(error) => error.to_string(),
        };
        if Instant::now() >= deadline {
            bail!("POST {path} {body} on {endpoint}: no success in {MEMBERSHIP_TIMEOUT:?}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the node at `endpoint` applied what `reference` had committed when asked.
async fn wait_caught_up(endpoint: &str, reference: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + MEMBERSHIP_TIMEOUT;
    let target = loop {
        let commit = cluster_view(reference)
            .await
            .and_then(|v| v["commit_index"].as_u64());
        match commit {
            Some(commit) => break commit,
            None if Instant::now() >= deadline => bail!("{reference} gives no commit index"),
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    loop {
        let applied = cluster_view(endpoint)
            .await
            .and_then(|v| v["applied_index"].as_u64());
        if applied.is_some_and(|applied| applied >= target) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{endpoint} did not catch up to {target} (at {applied:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The leader with the highest term among the running, unpaused nodes that claim to lead.
pub async fn find_leader(nodes: &Nodes) -> Option<u64> {
    let mut best: Option<(u64, u64)> = None;
    for spec in nodes.specs() {
        if !nodes.is_running(spec.id) || nodes.is_paused(spec.id) {
            continue;
        }
        let Some(view) = cluster_view(&spec.endpoint()).await else {
            continue;
        };
        let term = view["term"].as_u64().unwrap_or(0);
        if view["role"] == "leader" && best.is_none_or(|(t, _)| term > t) {
            best = Some((term, spec.id));
        }
    }
    best.map(|(_, id)| id)
}

/// Cuts every pair between `left` and `right`, both ways.
fn cut_groups(firewall: &Firewall, left: &[Ipv4Addr], right: &[Ipv4Addr]) -> anyhow::Result<()> {
    for a in left {
        for b in right {
            firewall.cut_both(*a, *b)?;
        }
    }
    Ok(())
}

fn ips(nodes: &Nodes, ids: &[u64]) -> anyhow::Result<Vec<Ipv4Addr>> {
    ids.iter().map(|id| nodes.spec(*id).map(|s| s.ip)).collect()
}

/// `ids` in a random order (Fisher–Yates).
fn shuffle(ids: &[u64], rng: &mut TestRng) -> Vec<u64> {
    let mut ids = ids.to_vec();
    for i in (1..ids.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        ids.swap(i, j);
    }
    ids
}
