//! The actor's mailbox: what the handle, transports and IO workers send to a node.

use actix::Message;
use tokio::sync::oneshot;

use crate::core::ReadMode;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{ChangeError, ClientReadError, Fatal};
use crate::membership::{Membership, MembershipChange};
use crate::message::{Request, Response};
use crate::storage::StorageError;
use crate::types::{LogId, LogIndex, NodeId, SnapshotMeta};

use super::deadlines::WriteWaiter;

/// A client write from the handle: the serialized command, and who waits on it until when. Goes
/// through the node's write queue (`write_queue.rs`), not the mailbox.
pub(crate) struct ClientWrite<R> {
    pub command: Arc<[u8]>,
    pub waiter: WriteWaiter<R>,
}

/// Writes wait in the node's write queue: drain it.
pub(crate) struct DrainWrites;

impl Message for DrainWrites {
    type Result = ();
}

/// A read from the handle: answered with the read index once the leader may serve it.
pub(crate) struct ClientRead {
    pub mode: ReadMode,
    pub tx: oneshot::Sender<Result<LogIndex, ClientReadError>>,
}

impl Message for ClientRead {
    type Result = ();
}

/// A membership change or leadership transfer from the handle.
pub(crate) enum ChangeRequest {
    Change(MembershipChange),
    Transfer(NodeId),
}

/// A membership change or leadership transfer, with where its outcome goes.
pub(crate) struct Change {
    pub request: ChangeRequest,
    pub tx: oneshot::Sender<Result<Membership, ChangeError>>,
}

impl Message for Change {
    type Result = ();
}

/// Asks a leader for each member's match index (`None` if not leader).
pub(crate) struct Replication {
    pub tx: oneshot::Sender<Option<BTreeMap<NodeId, LogIndex>>>,
}

impl Message for Replication {
    type Result = ();
}

/// A read to run against the state machine, queued behind the apply work before it.
pub(crate) struct RunRead<SM> {
    pub read: Box<dyn FnOnce(&SM) + Send>,
}

impl<SM: 'static> Message for RunRead<SM> {
    type Result = ();
}

/// An RPC request from a peer, with the channel its one reply goes to.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Inbound {
    pub from: NodeId,
    pub request: Request,
    pub tx: oneshot::Sender<Response>,
}

/// The storage worker finished something.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) enum StorageDone {
    /// Term and vote are durable.
    HardStateSaved,
    /// `appends` queued appends are durable, the last ending at `up_to`.
    LogPersisted { up_to: LogId, appends: u64 },
    /// A received snapshot is durable and the log reset to end at it.
    SnapshotInstalled(LogId),
    /// Storage failed: the node must stop.
    Failed(StorageError),
}

/// The apply worker finished something.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) enum ApplyDone {
    /// Everything up to this index is applied.
    Applied(LogIndex),
    /// A snapshot this node built is durable.
    SnapshotBuilt(SnapshotMeta),
    /// The state machine failed: the node must stop.
    Failed(Fatal),
}

/// Stop the node gracefully; the sender learns when it has stopped taking work.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Shutdown {
    pub tx: oneshot::Sender<()>,
}
