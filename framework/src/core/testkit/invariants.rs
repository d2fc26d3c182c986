//! Raft's safety properties (§5.2, §5.3, §5.4, Figure 3), checked against a [`Cluster`] after
//! every step of a test. Each check is incremental so a randomized run can afford it every step.
//!
//! - Election safety: at most one leader per term.
//! - Log matching: an entry is identified by its index and term. Checked inductively: every
//!   `(index, term)` ever seen on any node maps to one payload and one predecessor term.
//! - Leader completeness (§5.4.3): an entry committed in term T is in the log of every leader
//!   of a term after T. The checker does not see in which term an entry was committed, only
//!   the term of the first node it saw committing (or applying) it — an upper bound — so it
//!   checks the leaders of terms beyond that. (A leader of an older term can still win on
//!   delayed votes after a later term committed entries it lacks: that is legal.)
//! - State machine safety: every node's committed prefix and applied sequence agree with one
//!   global committed log, which never changes.
//! - Monotonicity: a node's term never decreases, its vote never changes within a term (both
//!   durable, so across restarts too), its commit index never decreases while it runs.

use std::collections::BTreeMap;
use std::fmt;

use crate::core::{Core, HardState, Role};
use crate::types::{Entry, EntryPayload, LogId, LogIndex, NodeId, Term};

use super::Cluster;

/// A broken safety property, described with the values involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the checker remembers about one node.
#[derive(Debug, Clone, Default)]
struct NodeMemory {
    term: Term,
    vote: Option<NodeId>,
    restarts: u64,
    commit: LogIndex,
    /// The last entry of the log prefix already checked for log matching.
    matched_last: LogId,
    /// Applied entries already checked.
    applied_checked: usize,
    /// The durable term and vote last seen, when the driver reports them (see `check_core`).
    durable: HardState,
}

/// Remembers what the cluster has shown so far and checks each new state against it.
#[derive(Debug, Clone, Default)]
pub struct InvariantChecker {
    /// The leader seen for each term.
    leaders: BTreeMap<Term, NodeId>,
    /// Every entry seen on any node: `(index, term)` -> (payload, term of the entry before it).
    entries: BTreeMap<LogId, (EntryPayload, Term)>,
    /// The committed log, from index 1, as agreed by every node that committed or applied it.
    committed: Vec<Entry>,
    /// For each committed entry, the term of the node that first showed it committed: the
    /// entry was committed in that term or earlier.
    committed_seen_in: Vec<Term>,
    nodes: BTreeMap<NodeId, NodeMemory>,
}

impl InvariantChecker {
    /// A checker that has seen nothing yet.
    pub fn new() -> InvariantChecker {
        InvariantChecker::default()
    }

    /// The committed log agreed so far.
    pub fn committed(&self) -> &[Entry] {
        &self.committed
    }

    /// Checks every running node of `cluster`.
    pub fn check(&mut self, cluster: &Cluster) -> Result<(), Violation> {
        for (id, node) in &cluster.nodes {
            let mut memory = self.nodes.remove(id).unwrap_or_default();
            let result = match &node.core {
                Some(core) => self.check_node(core, node.restarts, &node.applied, &mut memory),
                None => Ok(()),
            };
            self.nodes.insert(*id, memory);
            result?;
        }
        Ok(())
    }

    /// Checks one running node of a cluster driven by something other than [`Cluster`] (the
    /// simulator): its core, how many times it restarted, the entries its state machine applied
    /// in this incarnation (from index 1), and the term and vote its disk holds. NB: where saving
    /// the hard state takes time, a crash may lose a term or vote the core had adopted but not
    /// yet made durable (nothing depending on it left the node: contract 1), so across restarts
    /// term and vote are held to what was durable; the durable pair itself never goes back.
    pub fn check_core(
        &mut self,
        core: &Core,
        restarts: u64,
        applied: &[Entry],
        durable: HardState,
    ) -> Result<(), Violation> {
        let id = core.id();
        let mut memory = self.nodes.remove(&id).unwrap_or_default();
        let previous = memory.durable;
        let result = if durable.term < previous.term
            || (durable.term == previous.term
                && previous.voted_for.is_some()
                && durable.voted_for != previous.voted_for)
        {
            violation(format!(
                "node {id}: durable term and vote went back from {previous:?} to {durable:?}"
            ))
        } else {
            memory.durable = durable;
            if memory.restarts != restarts {
                memory.term = durable.term;
                memory.vote = durable.voted_for;
            }
            self.check_node(core, restarts, applied, &mut memory)
        };
        self.nodes.insert(id, memory);
        result
    }

    fn check_node(
        &mut self,
        core: &Core,
        restarts: u64,
        applied: &[Entry],
        memory: &mut NodeMemory,
    ) -> Result<(), Violation> {
        let id = core.id();
        if memory.restarts != restarts {
            // A new incarnation: volatile state starts over; durable state must not have moved back.
            *memory = NodeMemory {
                term: memory.term,
                vote: memory.vote,
                restarts,
                durable: memory.durable,
                ..Default::default()
            };
        }
        self.check_hard_state(core, memory)?;
        if core.commit_index() < memory.commit {
            return violation(format!(
                "node {id}: commit went back from {} to {}",
                memory.commit,
                core.commit_index()
            ));
        }
        memory.commit = core.commit_index();
        self.check_log_matching(core, memory)?;
        self.check_committed(core)?;
        self.check_leader(core)?;
        self.check_applied(core, applied, memory)
    }

    fn check_hard_state(&self, core: &Core, memory: &mut NodeMemory) -> Result<(), Violation> {
        let id = core.id();
        let hard_state = core.hard_state();
        if hard_state.term < memory.term {
            return violation(format!(
                "node {id}: term went back from {} to {}",
                memory.term, hard_state.term
            ));
        }
        if hard_state.term == memory.term
            && memory.vote.is_some()
            && hard_state.voted_for != memory.vote
        {
            return violation(format!(
                "node {id}: vote in term {} changed from {:?} to {:?}",
                hard_state.term, memory.vote, hard_state.voted_for
            ));
        }
        memory.term = hard_state.term;
        memory.vote = hard_state.voted_for;
        Ok(())
    }

    /// Log matching, inductively: each `(index, term)` has one payload and one predecessor term.
    /// A compacted log is checked from its base, whose id must be the committed entry there.
    fn check_log_matching(
        &mut self,
        core: &Core,
        memory: &mut NodeMemory,
    ) -> Result<(), Violation> {
        let base = core.log_base();
        let log = core.entries();
        let committed_base = base.index.0 as usize;
        if committed_base > 0 && committed_base <= self.committed.len() {
            let committed = self.committed[committed_base - 1].log_id;
            if committed != base {
                return violation(format!(
                    "state machine safety: node {} compacted up to {base}, but {committed} is \
                     committed there",
                    core.id()
                ));
            }
        }
        let matched = memory.matched_last;
        let unchanged_prefix = matched.index > base.index
            && entry_at(core, matched.index).map(|entry| entry.log_id) == Some(matched);
        let start = if unchanged_prefix {
            (matched.index.0 - base.index.0) as usize
        } else {
            0
        };
        for position in start..log.len() {
            let entry = &log[position];
            let prev_term = if position == 0 {
                base.term
            } else {
                log[position - 1].log_id.term
            };
            match self.entries.get(&entry.log_id) {
                Some((payload, seen_prev))
                    if *payload != entry.payload || *seen_prev != prev_term =>
                {
                    return violation(format!(
                        "log matching: node {} holds {} with a different payload or predecessor \
                         term ({prev_term}, seen {seen_prev}) than another node",
                        core.id(),
                        entry.log_id
                    ));
                }
                Some(_) => {}
                None => {
                    self.entries
                        .insert(entry.log_id, (entry.payload.clone(), prev_term));
                }
            }
        }
        memory.matched_last = core.last_log_id();
        Ok(())
    }

    /// The node's committed prefix agrees with (and may extend) the global committed log.
    fn check_committed(&mut self, core: &Core) -> Result<(), Violation> {
        let commit = core.commit_index().0 as usize;
        let base = core.log_base().index.0 as usize;
        let last = core.last_log_id().index.0 as usize;
        if commit > last {
            return violation(format!(
                "node {}: commit {commit} beyond its log ({last})",
                core.id()
            ));
        }
        let known = self.committed.len().min(commit);
        // Only the boundary entry needs comparing: log matching covers the prefix before it.
        if known > base {
            let held = &core.entries()[known - base - 1];
            if *held != self.committed[known - 1] {
                return violation(format!(
                    "state machine safety: node {} committed {} at index {known}, others {}",
                    core.id(),
                    held.log_id,
                    self.committed[known - 1].log_id
                ));
            }
        }
        // Entries this node compacted cannot extend the committed log; its applied ones will.
        if commit > self.committed.len() && self.committed.len() >= base {
            let new = commit - self.committed.len();
            let from = self.committed.len() - base;
            self.committed
                .extend_from_slice(&core.entries()[from..commit - base]);
            self.committed_seen_in
                .extend(std::iter::repeat_n(core.term(), new));
        }
        Ok(())
    }

    /// At most one leader per term; a new leader holds every entry committed in earlier terms.
    fn check_leader(&mut self, core: &Core) -> Result<(), Violation> {
        if core.role() != Role::Leader {
            return Ok(());
        }
        let (id, term) = (core.id(), core.term());
        match self.leaders.get(&term) {
            Some(leader) if *leader != id => violation(format!(
                "election safety: nodes {leader} and {id} both lead term {term}"
            )),
            Some(_) => Ok(()),
            None => {
                self.leaders.insert(term, id);
                // The last entry surely committed before this term; log matching covers the rest.
                let required = self.committed_seen_in.iter().rposition(|seen| *seen < term);
                let Some(position) = required else {
                    return Ok(());
                };
                let index = LogIndex(position as u64 + 1);
                // A compacted entry is in the leader's snapshot, checked with its base.
                let held = index <= core.log_base().index
                    || entry_at(core, index) == Some(&self.committed[position]);
                if held {
                    Ok(())
                } else {
                    violation(format!(
                        "leader completeness: node {id} leads term {term} without committed entry {}",
                        self.committed[position].log_id
                    ))
                }
            }
        }
    }

    /// Applied entries are a prefix of the committed log.
    fn check_applied(
        &mut self,
        core: &Core,
        applied: &[Entry],
        memory: &mut NodeMemory,
    ) -> Result<(), Violation> {
        let id = core.id();
        for (position, entry) in applied.iter().enumerate().skip(memory.applied_checked) {
            match self.committed.get(position) {
                Some(committed) if committed != entry => {
                    return violation(format!(
                        "state machine safety: node {id} applied {} at index {}, committed is {}",
                        entry.log_id,
                        position + 1,
                        committed.log_id
                    ));
                }
                Some(_) => {}
                None => {
                    self.committed.push(entry.clone());
                    self.committed_seen_in.push(core.term());
                }
            }
        }
        memory.applied_checked = applied.len();
        Ok(())
    }
}

/// The entry at `index` in `core`'s log, if held (not compacted, not past the end).
fn entry_at(core: &Core, index: LogIndex) -> Option<&Entry> {
    let position = index.0.checked_sub(core.log_base().index.0 + 1)?;
    core.entries().get(usize::try_from(position).ok()?)
}

fn violation(message: String) -> Result<(), Violation> {
    Err(Violation(message))
}
