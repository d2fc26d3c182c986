//! Fixtures for raftor's integration tests: an in-process cluster of real nodes (actors, the
//! in-process network with fault injection, in-memory storage) and a recording state machine
//! that checks, as entries are applied, that every node applies the same value at each index,
//! in order (state machine safety).
//!
//! Tests run on one actix thread with tokio's time paused: timers fire in order as soon as every
//! node is idle, so a test that "waits two seconds" takes milliseconds and does not flake.

pub mod cluster;
pub mod recorder;

pub use cluster::TestCluster;
pub use recorder::{Ledger, Recorder};
