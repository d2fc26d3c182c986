//! Deliberate protocol bugs, for tests only: a test switches one on to prove that the simulator's
//! checkers catch it. Compiled only with the `testing` feature (or in the crate's own tests).

/// Which deliberate bugs a core runs with. All off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectedBugs {
    /// A follower acknowledges AppendEntries as soon as the entries are in its in-memory log,
    /// before they are durable (breaks contract 2).
    pub ack_before_persist: bool,
    /// A leader commits entries of earlier terms by counting replicas (breaks contract 3, the
    /// paper's Figure 8).
    pub commit_previous_terms: bool,
    /// A leader serves every ReadIndex read at its commit index without a quorum round (breaks
    /// contract 8: a deposed leader that does not know it yet serves stale reads).
    pub serve_reads_unconfirmed: bool,
}
