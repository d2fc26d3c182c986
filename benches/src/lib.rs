//! Benchmark support. The criterion benches are under `benches/benches/`; the cluster benchmark
//! binary is `src/bin/cluster.rs`, and these modules are its helpers.

pub mod args;
pub mod clients;
pub mod histogram;
pub mod process;
