//! The commands of the golden-script language (documented in `golden.rs`): each drives the
//! [`Cluster`] and returns the lines it prints.

use std::sync::Arc;

use crate::config::Config;
use crate::core::node::RoleState;
use crate::core::testkit::{format_request, format_response, Body, Cluster, Envelope};
use crate::core::testkit::{InvariantChecker, PendingWrite};
use crate::core::{Core, Input, ProgressState, Proposal, Role};
use crate::types::{Entry, LogId, NodeId, RequestId};

use super::{parse_node, Args};

/// `stabilize` gives up after this many rounds of delivery: the cluster is not settling.
const MAX_STABILIZE_ROUNDS: usize = 10_000;

type CommandResult = Result<Vec<String>, String>;

/// Runs golden-script commands against one cluster at a time, checking Raft's safety invariants
/// after every step.
pub(super) struct Interpreter {
    cluster: Option<Cluster>,
    checker: InvariantChecker,
    next_request: u64,
}

impl Interpreter {
    pub(super) fn new() -> Interpreter {
        Interpreter {
            cluster: None,
            checker: InvariantChecker::new(),
            next_request: 1,
        }
    }

    /// Runs one command line and returns its output, `ok` if it printed nothing.
    pub(super) fn run(&mut self, line: &str) -> Result<String, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((name, rest)) = words.split_first() else {
            return Err("empty command".to_string());
        };
        let mut args = Args::parse(rest);
        let lines = match *name {
            "cluster" => self.new_cluster(&mut args),
            "tick" => self.tick(&mut args),
            "campaign" => self.campaign(&args),
            "deliver" => self.transfer(&mut args, true),
            "drop" => self.transfer(&mut args, false),
            "stabilize" => self.stabilize(),
            "partition" | "isolate" | "block" | "heal" => self.links(name, &args),
            "propose" => self.propose(&mut args),
            "crash" | "restart" => self.crash_or_restart(name, &args),
            "persist" => self.persist_command(&mut args),
            "status" | "log" => self.describe_nodes(name, &args),
            "network" => self.network(),
            "progress" => self.progress(&args),
            "expect" => self.expect(&mut args),
            _ => Err(format!("unknown command `{name}`")),
        }?;
        if let Some(key) = args.named.keys().next() {
            return Err(format!("unknown argument `{key}=` for `{name}`"));
        }
        Ok(if lines.is_empty() {
            "ok".to_string()
        } else {
            lines.join("\n")
        })
    }

    fn cluster(&mut self) -> Result<&mut Cluster, String> {
        self.cluster
            .as_mut()
            .ok_or_else(|| "no cluster yet: start with `cluster n=N`".to_string())
    }

    /// The node ids named in `args`, or every node if none is.
    fn nodes(&mut self, args: &Args) -> Result<Vec<NodeId>, String> {
        let cluster = self.cluster()?;
        let ids: Vec<NodeId> = if args.positional.is_empty() {
            cluster.ids()
        } else {
            let ids: Result<Vec<NodeId>, String> =
                args.positional.iter().map(|w| parse_node(w)).collect();
            ids?
        };
        match ids.iter().find(|id| !cluster.nodes.contains_key(id)) {
            Some(id) => Err(format!("no node {id}")),
            None => Ok(ids),
        }
    }

    /// Exactly one node id among the positional arguments.
    fn one_node(&mut self, args: &Args) -> Result<NodeId, String> {
        match self.nodes(args)?.as_slice() {
            [id] if args.positional.len() == 1 => Ok(*id),
            _ => Err("expected one node id".to_string()),
        }
    }

    fn running_core(&mut self, id: NodeId) -> Result<&Core, String> {
        let cluster = self.cluster()?;
        cluster.core(id).ok_or(format!("node {id} is down"))
    }

    /// Takes the actions recorded since the last call.
    fn take_trace(&mut self) -> Vec<String> {
        self.cluster
            .as_mut()
            .map(|cluster| std::mem::take(&mut cluster.trace))
            .unwrap_or_default()
    }

    /// Checks Raft's safety properties on the cluster as it is now.
    fn check(&mut self) -> Result<(), String> {
        let Some(cluster) = self.cluster.as_ref() else {
            return Ok(());
        };
        self.checker
            .check(cluster)
            .map_err(|violation| format!("safety invariant broken: {violation}"))
    }

    fn new_cluster(&mut self, args: &mut Args) -> CommandResult {
        let size: u64 = args.take("n")?.ok_or("`cluster` needs n=")?;
        let seed = args.take("seed")?.unwrap_or(1);
        let defaults = Config::default();
        let config = Config {
            pre_vote: args.take("pre_vote")?.unwrap_or(defaults.pre_vote),
            check_quorum: args.take("check_quorum")?.unwrap_or(defaults.check_quorum),
            max_entries_per_message: args
                .take("max_entries")?
                .unwrap_or(defaults.max_entries_per_message),
            ..defaults
        };
        let config = config.validate().map_err(|e| e.to_string())?;
        let mut cluster = Cluster::new(size, config, seed);
        cluster.auto_persist = args.take("auto_persist")?.unwrap_or(true);
        cluster.tracing = true;
        self.cluster = Some(cluster);
        self.checker = InvariantChecker::new();
        self.next_request = 1;
        self.check()?;
        Ok(Vec::new())
    }

    fn tick(&mut self, args: &mut Args) -> CommandResult {
        let times: u64 = args.take("n")?.unwrap_or(1);
        let ids = self.nodes(args)?;
        for _ in 0..times {
            for id in &ids {
                self.cluster()?.tick(*id);
                self.check()?;
            }
        }
        Ok(self.take_trace())
    }

    /// Ticks one node, alone, exactly until its election timeout fires.
    fn campaign(&mut self, args: &Args) -> CommandResult {
        let id = self.one_node(args)?;
        let core = self.running_core(id)?;
        if core.role() == Role::Leader {
            return Err(format!("node {id} leads: it has no election timeout"));
        }
        let ticks = core
            .election_timeout
            .saturating_sub(core.election_elapsed)
            .max(1);
        for _ in 0..ticks {
            self.cluster()?.tick(id);
            self.check()?;
        }
        Ok(self.take_trace())
    }

    /// Delivers (or drops) the messages in flight now that match `from=`/`to=`, at most `n=`.
    fn transfer(&mut self, args: &mut Args, deliver: bool) -> CommandResult {
        let from = args.take_node("from")?;
        let to = args.take_node("to")?;
        let limit: usize = args.take("n")?.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        // Delivery appends new messages after the ones in flight now: those stay in front.
        let mut remaining = self.cluster()?.network.len();
        let (mut position, mut handled) = (0, 0);
        while remaining > 0 {
            remaining -= 1;
            let envelope = &self.cluster()?.network[position];
            let wanted =
                from.is_none_or(|id| id == envelope.from) && to.is_none_or(|id| id == envelope.to);
            if !wanted || handled == limit {
                position += 1;
                continue;
            }
            handled += 1;
            if deliver {
                out.extend(self.deliver_at(position)?);
            } else if let Some(envelope) = self.cluster()?.drop_message(position) {
                out.push(format!("dropped {}", describe(&envelope)));
            }
        }
        Ok(out)
    }

    /// Delivers the message at `position`: its line, then the actions it caused, indented.
    fn deliver_at(&mut self, position: usize) -> CommandResult {
        let cluster = self.cluster()?;
        let envelope = cluster.network[position].clone();
        let header = describe(&envelope);
        let lost = if cluster.is_blocked(envelope.from, envelope.to) {
            Some("link blocked".to_string())
        } else if !cluster.node(envelope.to).is_up() {
            Some(format!("node {} is down", envelope.to))
        } else {
            None
        };
        if let Some(reason) = lost {
            cluster.drop_message(position);
            return Ok(vec![format!("{header} (lost: {reason})")]);
        }
        cluster.deliver(position);
        self.check()?;
        let mut out = vec![header];
        out.extend(indent(self.take_trace()));
        Ok(out)
    }

    fn stabilize(&mut self) -> CommandResult {
        let mut out = Vec::new();
        for _ in 0..MAX_STABILIZE_ROUNDS {
            for id in self.cluster()?.ids() {
                out.extend(self.persist(id, usize::MAX)?);
            }
            let in_flight = self.cluster()?.network.len();
            if in_flight == 0 {
                return Ok(out);
            }
            for _ in 0..in_flight {
                out.extend(self.deliver_at(0)?);
            }
        }
        Err(format!(
            "not stable after {MAX_STABILIZE_ROUNDS} rounds of delivery"
        ))
    }

    fn links(&mut self, name: &str, args: &Args) -> CommandResult {
        match name {
            "partition" => {
                let mut groups = vec![Vec::new()];
                for word in &args.positional {
                    match word.as_str() {
                        "|" => groups.push(Vec::new()),
                        word => groups.last_mut().expect("a group").push(parse_node(word)?),
                    }
                }
                self.cluster()?.partition(&groups);
            }
            "isolate" => {
                let id = self.one_node(args)?;
                self.cluster()?.isolate(id);
            }
            "block" => match self.nodes(args)?.as_slice() {
                [from, to] => self.cluster()?.block(*from, *to),
                _ => return Err("`block` needs two node ids: FROM TO".to_string()),
            },
            _ => self.cluster()?.heal(),
        }
        Ok(Vec::new())
    }

    /// `propose N TEXT [count=K]`: K commands in one batch, as a driver drains its mailbox.
    fn propose(&mut self, args: &mut Args) -> CommandResult {
        let count: u64 = args.take("count")?.unwrap_or(1);
        let (Some(id), Some(text), 2) = (
            args.positional.first(),
            args.positional.get(1),
            args.positional.len(),
        ) else {
            return Err("`propose` needs a node id and one word of text".to_string());
        };
        let id = parse_node(id)?;
        let command: Arc<[u8]> = Arc::from(text.as_bytes());
        let proposals = (0..count)
            .map(|offset| Proposal {
                request: RequestId(self.next_request + offset),
                command: Arc::clone(&command),
            })
            .collect();
        self.next_request += count;
        if !self.cluster()?.node(id).is_up() {
            return Ok(vec![format!("node {id} is down: proposal lost")]);
        }
        self.cluster()?.step(id, Input::Propose(proposals));
        self.check()?;
        Ok(self.take_trace())
    }

    fn crash_or_restart(&mut self, name: &str, args: &Args) -> CommandResult {
        let id = self.one_node(args)?;
        let cluster = self.cluster()?;
        if name == "crash" {
            cluster.crash(id);
        } else {
            cluster.restart(id);
        }
        self.check()?;
        Ok(self.take_trace())
    }

    fn persist_command(&mut self, args: &mut Args) -> CommandResult {
        let count: usize = args.take("n")?.unwrap_or(usize::MAX);
        let id = self.one_node(args)?;
        self.persist(id, count)
    }

    /// Makes up to `count` of node `id`'s pending writes durable, one at a time, printing each
    /// and the actions its completion caused.
    fn persist(&mut self, id: NodeId, count: usize) -> CommandResult {
        let mut out = Vec::new();
        for _ in 0..count {
            let Some(write) = self.cluster()?.node(id).pending_writes.front().cloned() else {
                break;
            };
            let write = match write {
                PendingWrite::Truncate(from) => format!("truncate from={from}"),
                PendingWrite::Append(entries) => format!("append {}", entry_runs(&entries)),
                PendingWrite::Purge(up_to) => format!("purge up_to={up_to}"),
                PendingWrite::Install(meta, _) => {
                    format!("install-snapshot {}", meta.last_included)
                }
            };
            out.push(format!("{id}: persisted {write}"));
            self.cluster()?.persist_one(id);
            self.check()?;
            out.extend(indent(self.take_trace()));
        }
        Ok(out)
    }

    fn describe_nodes(&mut self, name: &str, args: &Args) -> CommandResult {
        let ids = self.nodes(args)?;
        let cluster = self.cluster()?;
        let describe = if name == "status" { status } else { log };
        Ok(ids.iter().map(|id| describe(cluster, *id)).collect())
    }

    fn network(&mut self) -> CommandResult {
        let network = &self.cluster()?.network;
        if network.is_empty() {
            return Ok(vec!["no messages in flight".to_string()]);
        }
        Ok(network.iter().map(describe).collect())
    }

    /// The leader's record of each follower (§5.3): `match`, `next`, and how it paces them.
    fn progress(&mut self, args: &Args) -> CommandResult {
        let id = self.one_node(args)?;
        let core = self.running_core(id)?;
        let RoleState::Leader(leader) = &core.role else {
            return Err(format!("node {id} is not a leader"));
        };
        let lines = leader.progress.iter().map(|(peer, progress)| {
            let state = match (progress.state, &progress.transfer) {
                (ProgressState::Probe { paused: false }, _) => "probe".to_string(),
                (ProgressState::Probe { paused: true }, _) => "probe (paused)".to_string(),
                (ProgressState::Replicate, _) => "replicate".to_string(),
                (ProgressState::Snapshot, Some(transfer)) => format!(
                    "snapshot {} offset={}",
                    transfer.meta.last_included, transfer.offset
                ),
                (ProgressState::Snapshot, None) => "snapshot".to_string(),
            };
            let (matched, next) = (progress.match_index, progress.next_index);
            format!("{peer}: match={matched} next={next} {state}")
        });
        Ok(lines.collect())
    }

    /// `expect NODES key=value...`: fails the script unless every node shows every value.
    fn expect(&mut self, args: &mut Args) -> CommandResult {
        if args.positional.is_empty() || args.named.is_empty() {
            return Err("`expect` needs node ids and key=value pairs".to_string());
        }
        let ids = self.nodes(args)?;
        let wanted = std::mem::take(&mut args.named);
        let cluster = self.cluster()?;
        for id in ids {
            let node = cluster.node(id);
            for (key, value) in &wanted {
                let actual = match (&node.core, key.as_str()) {
                    (_, "up") => node.is_up().to_string(),
                    (None, _) => return Err(format!("node {id} is down: cannot check {key}")),
                    (Some(core), key) => observe(core, key)?,
                };
                if actual != *value {
                    return Err(format!(
                        "expected node {id} {key}={value}, found {key}={actual}\n    {}",
                        status(cluster, id)
                    ));
                }
            }
        }
        Ok(Vec::new())
    }
}

/// One observable property of a running node, as `expect` compares it.
fn observe(core: &Core, key: &str) -> Result<String, String> {
    Ok(match key {
        "role" => role_name(core.role()).to_string(),
        "term" => core.term().to_string(),
        "vote" => optional(core.hard_state().voted_for),
        "leader" => optional(core.leader()),
        "commit" => core.commit_index().to_string(),
        "applied" => core.last_applied().to_string(),
        "last" => core.last_log_id().to_string(),
        "persisted" => core.persisted_index().to_string(),
        _ => return Err(format!("`expect` cannot check `{key}`")),
    })
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

fn optional(id: Option<NodeId>) -> String {
    id.map_or_else(|| "none".to_string(), |id| id.to_string())
}

/// Lines caused by a delivery or a write, set under the line that announced it.
fn indent(lines: Vec<String>) -> impl Iterator<Item = String> {
    lines.into_iter().map(|line| format!("  {line}"))
}

/// `1->2 AppendEntries term=1 ...`
fn describe(envelope: &Envelope) -> String {
    let body = match &envelope.body {
        Body::Request { request, .. } => format_request(request),
        Body::Response(response) => format_response(response),
    };
    format!("{}->{} {body}", envelope.from, envelope.to)
}

/// One line about node `id`: what its core holds if it runs, what its disk holds if it is down.
fn status(cluster: &Cluster, id: NodeId) -> String {
    let node = cluster.node(id);
    let Some(core) = &node.core else {
        let hard_state = node.disk_hard_state;
        let last = node.disk_log.last().map(|e| e.log_id).unwrap_or_default();
        return format!(
            "{id}: down term={} vote={} last={last} (on disk)",
            hard_state.term,
            optional(hard_state.voted_for)
        );
    };
    let mut line = format!(
        "{id}: {} term={} vote={} leader={} last={} commit={} applied={}",
        role_name(core.role()),
        core.term(),
        optional(core.hard_state().voted_for),
        optional(core.leader()),
        core.last_log_id(),
        core.commit_index(),
        core.last_applied()
    );
    if core.persisted_index() < core.last_log_id().index {
        line.push_str(&format!(" persisted={}", core.persisted_index()));
    }
    line
}

/// `1: 0@1 1@2..1@51 2@52`: node `id`'s log (its disk's while it is down).
fn log(cluster: &Cluster, id: NodeId) -> String {
    let node = cluster.node(id);
    match &node.core {
        Some(core) => format!("{id}: {}", entry_runs(core.entries())),
        None => format!("{id}: {} (down, on disk)", entry_runs(&node.disk_log)),
    }
}

/// Log ids, each run of one term shortened to `first..last`.
fn entry_runs(entries: &[Entry]) -> String {
    let mut runs: Vec<(LogId, LogId)> = Vec::new();
    for entry in entries {
        match runs.last_mut() {
            Some((_, last)) if last.term == entry.log_id.term => *last = entry.log_id,
            _ => runs.push((entry.log_id, entry.log_id)),
        }
    }
    if runs.is_empty() {
        return "(empty)".to_string();
    }
    let runs: Vec<String> = runs
        .into_iter()
        .map(|(first, last)| match first == last {
            true => first.to_string(),
            false => format!("{first}..{last}"),
        })
        .collect();
    runs.join(" ")
}
