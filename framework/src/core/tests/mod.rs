//! Tests of the protocol core: unit tests of each rule (exact actions for one input), golden
//! scripts over an in-memory cluster, and a seeded randomized property test.

mod golden;
mod property;
mod rules_election;
mod rules_membership;
mod rules_read;
mod rules_replication;
mod rules_snapshot;
mod smoke;
mod support;
