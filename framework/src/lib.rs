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

pub mod config;
pub mod core;
pub mod error;
pub mod membership;
pub mod message;
pub mod types;

pub use config::{Config, ConfigError};
pub use error::{ProposeError, RecoveryError};
pub use membership::Membership;
pub use types::{Entry, EntryPayload, LogId, LogIndex, NodeId, RequestId, RpcId, Term};
