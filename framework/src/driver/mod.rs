//! The action driver, free of actix: what a node does with the core's [`Action`]s, shared by the
//! actix node and the deterministic simulator.
//!
//! The core says *what* must happen; the [`Executor`] keeps the bookkeeping that decides *when*,
//! and hands the IO itself to whoever embeds it as [`Effect`]s:
//!
//! ```text
//!  client writes ─┐                    ┌─► Effect::Storage(op) ─► storage (in order)
//!  inbound RPCs ──┤                    ├─► Effect::Send        ─► network
//!  responses ─────┼─► Executor ─► Core ├─► Effect::Reply       ─► the waiting RPC caller
//!  ticks ─────────┤   (bookkeeping)    ├─► Effect::Apply       ─► state machine, then clients
//!  IO completions ┘                    └─► Effect::Reject      ─► the waiting client
//! ```
//!
//! The bookkeeping, in one place so that both embeddings obey the same contracts:
//!
//! - Every action after a `SaveHardState` is held back until the hard state is durable
//!   (contract 1); the embedding reports it with [`Executor::hard_state_saved`].
//! - Storage writes go out in the order the core produced them; nothing waits on appends here, so
//!   the leader replicates while its own write is in flight (contract 2).
//! - While the leader's append is in flight, client writes are buffered and go out as one batch
//!   when it completes (one append, one message per follower: group commit).
//! - Inbound RPCs and client writes get ids; the caller's reply handle (`R`) and client handle
//!   (`C`) wait until the core answers them — client and read handles in [`Slots`](slots.rs), a
//!   queue indexed by id, since ids only grow and answers come roughly in order.
//!
//! The executor does no IO and has no clock: the actor performs its effects with actix and tokio,
//! the simulator on its simulated disk, network and state machine. A new [`Action`] variant becomes
//! one more arm in `Executor::execute_one` (and, if it needs IO, one more [`Effect`]).
//!
//! [`Action`]: crate::core::Action

mod executor;
mod slots;
mod storage_op;

pub use executor::{Effect, Executor};
pub use storage_op::{merge_appends, StorageOp};
