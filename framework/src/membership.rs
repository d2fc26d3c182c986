//! Cluster membership: who votes, who only learns, and what counts as a quorum.
//!
//! A membership is one voter configuration, or two during a joint-consensus change (Raft §6): a
//! decision then needs a majority of *each*. Learners receive the log but never vote or count.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::types::{LogIndex, NodeId};

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
