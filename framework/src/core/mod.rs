//! The Raft protocol as a deterministic state machine, free of IO.
//!
//! [`Core`] holds one node's protocol state. Everything that happens to the node arrives as an
//! [`Input`] — a tick of logical time, an RPC request or response from a peer, client proposals,
//! or the completion of IO the core asked for — and [`Core::step`] answers with the [`Action`]s
//! to carry out, in order:
//!
//! ```text
//!            Tick ─┐                          ┌─► SaveHardState  (durable before what follows)
//!   Request/Response ─┤                          ├─► TruncateLog / AppendLog ─► LogPersisted ─┐
//!         Propose ─┼──► Core::step(Input) ──────┼─► Send / Reply   (to peers)                │
//!   LogPersisted ◄─┤        (no IO)           ├─► Apply ─────────► Applied ────────────────┤
//!        Applied ◄─┘                          └─► Reject         (to clients)              │
//!          ▲                                                                           │
//!          └──────────────────── the driver feeds completions back ────────────────────┘
//! ```
//!
//! There is no clock, thread, socket or global random generator in here (a test enforces it):
//! time enters only as ticks, randomness only from a seed the core owns. Two cores given the same
//! inputs produce the same outputs, which is what lets the golden scripts and the randomized
//! cluster tests replay any run exactly. Drivers — the actix node, the simulator, the tests — are
//! the only places that do IO.
//!
//! The core keeps the (uncompacted) log in memory, so it can build AppendEntries messages and
//! apply batches without asking storage; storage is the durable copy it writes through.
//!
//! Files: `node.rs` (state and dispatch), `election.rs` (timer, PreVote, votes),
//! `replication.rs` (leader: progress, heartbeats, commit, CheckQuorum), `follower.rs` (consistency
//! check, durable acks, apply), `read_index.rs` (ReadIndex and the leader lease), `snapshot.rs`
//! (compaction, InstallSnapshot), `membership_change.rs` (joint consensus, learners, leadership
//! transfer), `log.rs`, `progress.rs`, `clients.rs` (clients waiting on their entries),
//! `rng.rs`, `io.rs` (inputs and actions).

#[cfg(any(test, feature = "testing"))]
mod bugs;
mod clients;
mod election;
mod follower;
mod io;
mod log;
mod membership_change;
mod node;
mod progress;
mod read_index;
mod replication;
mod rng;
mod snapshot;

#[cfg(any(test, feature = "testing"))]
pub mod testkit;

#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "testing"))]
pub use bugs::InjectedBugs;
pub use io::{Action, HardState, Input, Proposal, ReadMode, Recovered};
pub use node::{Core, Role};
pub use progress::{ProgressState, SnapshotTransfer};
pub use rng::SeededRng;
