//! Fixtures for raftor's integration tests: an in-process cluster of real nodes (actors, the
//! in-process network with fault injection, in-memory storage) and a recording state machine
//! that checks, as entries are applied, that every node applies the same value at each index,
//! in order (state machine safety).
//!
//! Tests run on one actix thread with tokio's time paused: timers fire in order as soon as every
//! node is idle, so a test that "waits two seconds" takes milliseconds and does not flake. Every
//! random choice (network faults, election timers, the test's own) comes from the test's seed, so
//! a run replays exactly: `RAFTOR_SEED=<seed>` overrides a test's default seed, and a failing test
//! prints the one it used.
//!
//! Files: `cluster.rs` (the cluster and its fault controls), `view.rs` (the lab suite's checks
//! and client calls, shareable with concurrent clients), `recorder.rs` (state machine, commands
//! and ledger), `network.rs` (the lab's request delays and long reordering of replies, layered on
//! the router), `rng.rs` (seeds and a seeded generator), `faulty_storage.rs` (appends that fail or stall), `wal.rs` (entries and stores for the WAL tests), `jepsen/` (black-box fault tests of
//! the `raftor-kv` server's processes: nemeses, clients, history checks).

pub mod cluster;
pub mod faulty_storage;
pub mod jepsen;
pub mod linearizability;
pub mod network;
pub mod recorder;
pub mod rng;
pub mod sim;
pub mod view;
pub mod wal;

pub use cluster::{single_node_leader, TestCluster};
pub use faulty_storage::{AppendFault, FaultyStorage};
pub use recorder::{Command, Ledger, Padded, Recorder};
pub use rng::TestRng;
pub use view::ClusterView;
