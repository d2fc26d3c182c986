//! The node actor: where the sans-IO core meets actix, storage, the network and the state machine.
//!
//! ```text
//!   Raft handle ── DrainWrites ──┐  (client writes wait in a queue: write_queue.rs)
//!   transport  ── Inbound RPC ───┤                         ┌─► storage worker ─ StorageDone ─┐
//!   ticks (run_interval) ────────┼─► NodeActor ─► core.step ┼─► RPC futures ──── Response ────┤
//!   workers ─ StorageDone/ApplyDone┘    ▲         (Input)  └─► apply worker ─── ApplyDone ───┤
//!                                       └────────────────── back into the mailbox ◄─────────┘
//! ```
//!
//! This is the only module that imports actix. Handlers are synchronous: each message goes to the
//! node's [`crate::driver::Executor`] — the actix-free owner of the core and of the bookkeeping
//! between it and the IO, shared with the deterministic simulator — and `driver.rs` performs the
//! effects it returns. IO runs in futures spawned on
//! the actor's context — two long-lived workers (storage, apply) that keep their jobs in order,
//! and one future per outgoing RPC — and every completion comes back as a message. No protocol
//! state lives across an `.await`: the workers own only the storage and the state machine.
//! Stale completions need no cancellation: the core recognises them by log id and term.
//! Snapshot bytes move on blocking threads beside all of this (`snapshot_io.rs`). The node, not
//! the handle, times client writes out: one timer for all of them (`deadlines.rs`).

mod apply_job;
mod deadlines;
mod driver;
mod messages;
mod node;
mod snapshot_io;
mod workers;
mod write_queue;

pub(crate) use deadlines::WriteWaiter;
pub(crate) use messages::{
    Change, ChangeRequest, ClientRead, ClientWrite, DrainWrites, Inbound, Replication, RunRead,
    Shutdown,
};
pub use node::NodeActor;
pub(crate) use node::{metrics_of, NodeParts, Worker};
pub(crate) use snapshot_io::{blocking, restore_state_machine};
pub(crate) use workers::{run_apply, run_storage};
pub(crate) use write_queue::{write_queue, Pushed, WriteQueue};
