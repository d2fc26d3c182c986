//! # raftor
//!
//! An async, actor-based Raft consensus framework. Each node will be an actix actor driving a
//! deterministic, sans-IO protocol core ([`core::Core`]); users replicate their own state machine
//! by implementing a small trait whose heart is `apply`.
//!
//! ```text
//!  user code ──► Raft<SM> handle ──► NodeActor ──► core.step(Input) ──► Actions ──► storage,
//!                                                                              network, apply
//! ```
//!
//! This release contains the protocol core: elections with PreVote and CheckQuorum, pipelined
//! replication with conflict hints, commitment, and the types and messages it speaks.

pub mod actor;
pub mod codec;
pub mod config;
pub mod core;
#[doc(hidden)]
pub mod driver;
pub mod error;
pub mod membership;
pub mod message;
pub mod metrics;
pub mod network;
pub mod node_thread;
mod raft;
pub mod state_machine;
pub mod storage;
pub mod types;

pub use config::{Config, ConfigError};
pub use error::{
    ChangeError, ClientReadError, ClientWriteError, Fatal, ProposeError, RecoveryError, StartError,
    WaitError,
};
pub use membership::{Membership, MembershipChange};
pub use metrics::{RaftMetrics, Wait};
pub use network::{InProcessNetwork, Network, NetworkError, RaftRpc, Router, Unreliable};
pub use node_thread::NodeThread;
pub use raft::{Raft, ReadLevel};
pub use state_machine::{SnapshotData, StateMachine, StateMachineError};
#[cfg(feature = "testing")]
pub use storage::FaultInjector;
pub use storage::{
    LogStorage, MemStorage, SnapshotStore, StorageError, StoredState, WalOptions, WalStats,
    WalStorage,
};
pub use types::{
    Entry, EntryPayload, LogId, LogIndex, NodeId, RequestId, RpcId, SnapshotMeta, Term,
};
