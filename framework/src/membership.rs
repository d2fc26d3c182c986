//! Cluster membership: who votes, who only learns, and what counts as a quorum.
//!
//! A membership is one voter configuration, or two during a joint-consensus change (Raft §6): a
//! decision then needs a majority of *each*. Learners receive the log but never vote or count.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::types::{LogIndex, NodeId};

/// A change of the cluster's members, asked of the leader (see `core/membership_change.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add a learner: it receives the log but never votes or counts toward a quorum.
    AddLearner(NodeId),
    /// Make exactly these nodes the voters, through joint consensus (old+new, then new).
    /// Learners among them are promoted; voters not among them leave the cluster.
    SetVoters(BTreeSet<NodeId>),
    /// Remove a node: a learner leaves at once, a voter through joint consensus.
    Remove(NodeId),
}

/// The voters (one configuration, or two while a joint change is in flight) and the learners.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Voter configurations. Invariant: one or two entries; two means joint consensus (§6).
    configs: Vec<BTreeSet<NodeId>>,
    /// Non-voting members. Invariant: disjoint from every voter configuration.
    learners: BTreeSet<NodeId>,
}

impl Membership {
    /// A single configuration with these voters and no learners.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership {
            configs: vec![voters.into_iter().collect()],
            learners: BTreeSet::new(),
        }
    }

    /// The same membership with these learners (voters among them are ignored).
    pub fn with_learners(mut self, learners: impl IntoIterator<Item = NodeId>) -> Membership {
        let learners: BTreeSet<NodeId> = learners.into_iter().collect();
        self.learners = learners
            .into_iter()
            .filter(|id| !self.is_voter(*id))
            .collect();
        self
    }

    /// The joint configuration that moves from this membership's voters to `voters` (§6): a
    /// decision needs a majority of both. Learners stay learners unless they become voters.
    pub fn joint_to(&self, voters: BTreeSet<NodeId>) -> Membership {
        let old = self.configs.last().cloned().unwrap_or_default();
        let learners = self
            .learners
            .iter()
            .copied()
            .filter(|id| !voters.contains(id))
            .collect();
        Membership {
            configs: vec![old, voters],
            learners,
        }
    }

    /// Whether a joint change is in flight (two voter configurations).
    pub fn is_joint(&self) -> bool {
        self.configs.len() > 1
    }

    /// The configuration a joint one moves to: the new voters alone, same learners. A single
    /// configuration is its own final one.
    pub fn final_config(&self) -> Membership {
        Membership {
            configs: self.configs.last().cloned().into_iter().collect(),
            learners: self.learners.clone(),
        }
    }

    /// The voters of the configuration being moved to (the only one, outside a joint change).
    pub fn target_voters(&self) -> BTreeSet<NodeId> {
        self.configs.last().cloned().unwrap_or_default()
    }

    /// The same membership without `id`, as a learner (voters are unchanged).
    pub fn without_learner(&self, id: NodeId) -> Membership {
        let mut membership = self.clone();
        membership.learners.remove(&id);
        membership
    }

    /// Whether `id` votes in any configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.configs.iter().any(|config| config.contains(&id))
    }

    /// Every voter, from all configurations, in ascending order.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.configs.iter().flatten().copied().collect()
    }

    /// The learners, in ascending order.
    pub fn learners(&self) -> &BTreeSet<NodeId> {
        &self.learners
    }

    /// Every member, voters and learners, in ascending order.
    pub fn nodes(&self) -> BTreeSet<NodeId> {
        let mut nodes = self.voters();
        nodes.extend(self.learners.iter().copied());
        nodes
    }

    /// How many distinct members there are.
    pub fn node_count(&self) -> usize {
        self.nodes().len()
    }

    /// Whether the nodes in `granted` form a quorum: a majority of every voter configuration.
    /// A membership without voters has no quorum.
    pub fn is_quorum(&self, granted: &BTreeSet<NodeId>) -> bool {
        !self.configs.is_empty()
            && self.configs.iter().all(|config| {
                !config.is_empty()
                    && config.iter().filter(|id| granted.contains(id)).count() > config.len() / 2
            })
    }

    /// The highest index that a quorum has reached, given each voter's match index.
    pub fn quorum_index(&self, match_index: impl Fn(NodeId) -> LogIndex) -> LogIndex {
        let mut quorum = None;
        for config in &self.configs {
            let mut indexes: Vec<LogIndex> = config.iter().map(|id| match_index(*id)).collect();
            if indexes.is_empty() {
                return LogIndex(0);
            }
            indexes.sort_unstable_by(|a, b| b.cmp(a));
            let reached = indexes[config.len() / 2];
            quorum = Some(quorum.map_or(reached, |q: LogIndex| q.min(reached)));
        }
        quorum.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[u64]) -> BTreeSet<NodeId> {
        list.iter().map(|id| NodeId(*id)).collect()
    }

    #[test]
    fn majority_of_three_is_two() {
        let membership = Membership::new(ids(&[1, 2, 3]));
        assert!(!membership.is_quorum(&ids(&[1])));
        assert!(membership.is_quorum(&ids(&[1, 3])));
    }

    #[test]
    fn joint_quorum_needs_both_majorities() {
        let membership = Membership {
            configs: vec![ids(&[1, 2, 3]), ids(&[3, 4, 5])],
            ..Default::default()
        };
        assert!(!membership.is_quorum(&ids(&[1, 2])));
        assert!(membership.is_quorum(&ids(&[1, 3, 4])));
    }

    #[test]
    fn a_joint_change_keeps_learners_that_stay_learners_and_ends_in_the_new_voters() {
        let membership = Membership::new(ids(&[1, 2, 3])).with_learners(ids(&[4, 5]));
        let joint = membership.joint_to(ids(&[2, 3, 4]));
        assert!(joint.is_joint());
        assert_eq!(joint.voters(), ids(&[1, 2, 3, 4]));
        assert_eq!(joint.learners(), &ids(&[5]));
        assert!(
            !joint.is_quorum(&ids(&[1, 2])),
            "needs a majority of the new voters too"
        );
        assert!(joint.is_quorum(&ids(&[2, 3])));
        let last = joint.final_config();
        assert!(!last.is_joint());
        assert_eq!(last.voters(), ids(&[2, 3, 4]));
        assert_eq!(last.learners(), &ids(&[5]));
    }

    #[test]
    fn quorum_index_is_the_median_match() {
        let membership = Membership::new(ids(&[1, 2, 3, 4, 5]));
        let reached = membership.quorum_index(|id| LogIndex(id.0 * 10));
        assert_eq!(reached, LogIndex(30));
    }

    #[test]
    fn empty_membership_never_has_a_quorum() {
        let membership = Membership::default();
        assert!(!membership.is_quorum(&ids(&[1])));
        assert_eq!(membership.quorum_index(|_| LogIndex(9)), LogIndex(0));
    }
}
