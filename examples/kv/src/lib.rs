//! # raftor-kv: a replicated key-value server
//!
//! Each node is one process, `raftor-kv serve`, holding one raftor node: a [`store::KvStore`]
//! (a map of string keys to byte values) replicated through the Raft log, kept on disk
//! in raftor's write-ahead log, compacted with snapshots. Nodes talk to each other over raftor's
//! TCP transport (the raft port); clients talk to any node over HTTP (the HTTP port).
//!
//! ```text
//!              client (curl, raftor-kv put/get, the demo)
//!                 │ HTTP
//!  ┌──────────────▼────────────── node 2 (follower) ─┐          ┌──── node 1 (leader) ────────┐
//!  │ http::api ─► http::kv::write(Put)               │          │                              │
//!  │   raft.client_write ── forward_write (TCP) ─────┼─────────►│ core: append, replicate,     │
//!  │                                                  │◄─────────┼─ AppendEntries (TCP) ────────│
//!  │ KvStore::apply(index, Put) on every node         │          │ commit, KvStore::apply ──────│
//!  │   ◄── Response { index } ◄── forwarded answer ◄──┼──────────┼──────────────────────────────│
//!  │ 200 {"index": N}                                 │          │                              │
//!  └──────────────────────────────────────────────────┘          └──────────────────────────────┘
//! ```
//!
//! ## The data flow of a request
//!
//! - **Writes** (`PUT`, `DELETE`, `POST .../cas`) become a [`store::Command`] and go through
//!   `Raft::client_write` on the node that received them. On a follower raftor forwards the
//!   command to the leader over the raft transport; the leader appends it, replicates it, and
//!   once a majority holds it the entry is committed and every node applies it in log order. The
//!   HTTP answer (`200 {"index": N}`) leaves only after the leader applied the entry, so an
//!   acknowledged write survives the loss of any minority of nodes.
//! - **Reads** (`GET /kv/{key}`) run on the node that received them, at the requested level:
//!   `linearizable` (the default) asks the leader for a read index (a quorum round) and waits
//!   until this node has applied it; `lease` lets the leader skip the round while its lease
//!   holds; `stale` reads whatever this node has applied.
//! - **Membership changes** (`/cluster/learners`, `/cluster/voters`, `/cluster/transfer-leader`)
//!   can only run on the leader: a follower proxies the HTTP request to the leader's HTTP address
//!   ([`directory`]). Adding a learner first writes its addresses to the log, so every node can
//!   reach it.
//!
//! ## Processes
//!
//! `raftor-kv serve` is a node. `raftor-kv cluster` runs three of them as child processes,
//! `raftor-kv demo` runs three, kills the leader with SIGKILL and checks nothing acknowledged
//! was lost ([`local`] manages the children). The other subcommands are HTTP clients, and
//! `raftor-kv bench` a load generator ([`bench`](mod@bench)).
//!
//! ## Failures
//!
//! A request never waits forever: within the request timeout (5 s by default) it is answered,
//! with `503` when no leader is known (nothing was done), `504` when the outcome is unknown (the
//! write may or may not apply). Writes that surely did not happen are retried inside the server
//! until the deadline. SIGTERM stops a node cleanly: no new requests, in-flight requests answered,
//! leadership handed to another voter, the node stopped, exit 0.

pub mod bench;
pub mod cli;
pub mod client;
pub mod commands;
pub mod demo;
pub mod directory;
pub mod http;
pub mod launcher;
pub mod local;
pub mod metrics;
pub mod node;
pub mod store;
