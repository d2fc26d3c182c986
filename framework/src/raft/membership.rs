//! Cluster operations on the handle: learners, voter changes through joint consensus, removing
//! nodes, leadership transfer, and a graceful shutdown that hands leadership over first.
//!
//! ```text
//!  add_learner(id) ────────► leader core: append C(voters, learners+id) ─commit─► Ok(membership)
//!  change_membership(vs) ──► leader core: C(old,new) ─commit─► C(new) ─commit─► Ok(membership)
//!  add_voter(id) = add_learner(id), wait until it is within `max_lag` of the leader's log,
//!                  then change_membership(voters + id)
//!  remove_node(id) ────────► a learner leaves at once, a voter through joint consensus
//!  transfer_leader(to) ────► leader brings `to` up to date, TimeoutNow, `to` campaigns;
//!                            Ok once this node stepped down and a leader is known
//! ```
//!
//! These run on the leader: on another node they answer `NotLeader { leader }`, and the caller
//! (an admin tool, the key-value server) asks the leader. The network address of a new member
//! is the transport's business: tell the transport before adding the node.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::actor::{Change, ChangeRequest, Replication};
use crate::core::Role;
use crate::error::ChangeError;
use crate::membership::{Membership, MembershipChange};
use crate::state_machine::StateMachine;
use crate::types::NodeId;

use super::Raft;

/// How often `add_voter` checks a learner's progress.
const CATCH_UP_POLL: Duration = Duration::from_millis(20);

impl<SM: StateMachine> Raft<SM> {
    /// Adds `id` as a learner: it receives the log (or a snapshot) but never votes or counts
    /// toward a quorum. Returns the new membership once it is committed. Adding a node that is
    /// already a member changes nothing.
    pub async fn add_learner(&self, id: NodeId) -> Result<Membership, ChangeError> {
        self.change(ChangeRequest::Change(MembershipChange::AddLearner(id)))
            .await
    }

    /// Makes exactly `voters` the voters, through joint consensus (a decision needs a majority
    /// of the old voters and of the new ones until the change completes). Learners among them
    /// are promoted; voters not among them leave. Returns the final membership once committed.
    /// A leader that is not among `voters` steps down once the change commits.
    pub async fn change_membership(
        &self,
        voters: impl IntoIterator<Item = NodeId>,
    ) -> Result<Membership, ChangeError> {
        let voters: BTreeSet<NodeId> = voters.into_iter().collect();
        self.change(ChangeRequest::Change(MembershipChange::SetVoters(voters)))
            .await
    }

    /// Removes `id` from the cluster: a learner at once, a voter through joint consensus.
    pub async fn remove_node(&self, id: NodeId) -> Result<Membership, ChangeError> {
        self.change(ChangeRequest::Change(MembershipChange::Remove(id)))
            .await
    }

    /// Adds `id` as a voter safely: first as a learner, then, once its log is within `max_lag`
    /// entries of the leader's, promoted with a joint change. A node that would join as a voter
    /// straight away, far behind, could stall commits until it caught up.
    pub async fn add_voter(&self, id: NodeId, max_lag: u64) -> Result<Membership, ChangeError> {
        let membership = self.add_learner(id).await?;
        if membership.voters().contains(&id) {
            return Ok(membership);
        }
        self.wait_caught_up(id, max_lag).await?;
        let mut voters = self.metrics().membership.voters();
        voters.insert(id);
        self.change_membership(voters).await
    }

    /// Waits (within the client timeout) until `id`'s log is within `max_lag` entries of this
    /// leader's.
    pub async fn wait_caught_up(&self, id: NodeId, max_lag: u64) -> Result<(), ChangeError> {
        let wait = async {
            loop {
                let (tx, rx) = oneshot::channel();
                self.inner.addr.do_send(Replication { tx });
                let Ok(Some(replication)) = rx.await else {
                    return Err(ChangeError::NotLeader {
                        leader: self.metrics().leader,
                    });
                };
                let last = self.metrics().last_log_id.index;
                let matched = replication.get(&id).copied().unwrap_or_default();
                if matched.0 + max_lag >= last.0 {
                    return Ok(());
                }
                tokio::time::sleep(CATCH_UP_POLL).await;
            }
        };
        tokio::time::timeout(self.inner.config.client_timeout, wait)
            .await
            .unwrap_or(Err(ChangeError::Timeout))
    }

    /// Hands leadership to the voter `to`: this leader brings it up to date and tells it to
    /// campaign at once; new writes wait meanwhile. Returns once this node stepped down and
    /// knows the new leader (`to`, unless an election went another way), or `Timeout` after an
    /// election timeout (this node keeps leading and takes writes again).
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), ChangeError> {
        self.change(ChangeRequest::Transfer(to)).await?;
        if to == self.id() {
            return Ok(());
        }
        let id = self.id();
        let wait = self.wait(self.inner.config.client_timeout);
        wait.until("a new leader after the transfer", |m| {
            m.leader.is_some() && m.leader != Some(id)
        })
        .await
        .map(|_| ())
        .map_err(|_| ChangeError::Timeout)
    }

    /// Stops the node after handing leadership to the most up-to-date voter if this node leads,
    /// so the cluster does not wait an election timeout for a new leader. Gives up on the
    /// transfer (and stops anyway) after two election timeouts (the successor may be stopping
    /// too).
    pub async fn shutdown_gracefully(&self) {
        let metrics = self.metrics();
        if metrics.role == Role::Leader {
            if let Some(to) = self.best_successor().await {
                let config = &self.inner.config;
                let ticks =
                    u32::try_from(2 * config.election_timeout_max_ticks).unwrap_or(u32::MAX);
                let bound = config.tick_interval.saturating_mul(ticks);
                match tokio::time::timeout(bound, self.transfer_leader(to)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(%to, %error, "leadership transfer before shutdown failed");
                    }
                    Err(_) => tracing::warn!(%to, "leadership transfer before shutdown timed out"),
                }
            }
        }
        self.shutdown().await;
    }

    /// The voter other than this node holding the most of the leader's log.
    async fn best_successor(&self) -> Option<NodeId> {
        let (tx, rx) = oneshot::channel();
        self.inner.addr.do_send(Replication { tx });
        let replication = rx.await.ok().flatten()?;
        let voters = self.metrics().membership.voters();
        replication
            .into_iter()
            .filter(|(id, _)| voters.contains(id) && *id != self.id())
            .max_by_key(|(id, matched)| (*matched, std::cmp::Reverse(*id)))
            .map(|(id, _)| id)
    }

    async fn change(&self, request: ChangeRequest) -> Result<Membership, ChangeError> {
        let (tx, rx) = oneshot::channel();
        self.inner.addr.do_send(Change { request, tx });
        let answer = async { rx.await.unwrap_or(Err(ChangeError::ShuttingDown)) };
        tokio::time::timeout(self.inner.config.client_timeout, answer)
            .await
            .unwrap_or(Err(ChangeError::Timeout))
    }
}
