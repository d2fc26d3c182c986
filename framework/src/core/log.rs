//! The core's view of the replicated log: the entries, and how far they are durable, committed
//! and applied.
//!
//! ```text
//!  base | base+1 .... last_applied ... applying ... commit_index ........ last_index
//!  in a  |<- applied ->|<- handed to Apply ->|<- committed, waiting ->|<- uncommitted ->|
//!  snapshot ........................ persisted ..... (persisted may lag on a follower)
//! ```
//!
//! Entries at and below `base` were compacted away (their effect is in a durable snapshot, see
//! `snapshot.rs`); only `base`'s id is remembered, so the consistency check of §5.3 still works
//! for the entry right after it. A log that was never compacted has `base = 0@0`.

use std::collections::VecDeque;

use crate::types::{Entry, LogId, LogIndex, Term};

/// A log write handed to storage and not yet reported durable. Storage completes writes in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IssuedWrite {
    /// Entries ending at this id.
    Append(LogId),
    /// Removal of every entry from this index on.
    Truncate(LogIndex),
    /// Replacement of the whole log by a received snapshot ending at this id (§7).
    Install(LogId),
}

/// The log's entries and positions.
#[derive(Debug, Clone, Default)]
pub struct RaftLog {
    /// The last entry compacted away, or `0@0`. Invariant: `base.index <= commit_index` (only
    /// committed entries are ever in a snapshot), `base.index <= applying`.
    base: LogId,
    /// `entries[i]` has index `base.index + 1 + i`. Invariant: contiguous, terms never decrease
    /// (and are at least `base.term`).
    entries: Vec<Entry>,
    /// Entries up to here are durable in storage *and* identical to the in-memory entries.
    /// Invariant: `persisted <= last_index`. NB: below `base` only while a received snapshot is
    /// being installed (the install makes `base` durable).
    persisted: LogIndex,
    /// Writes issued and not yet reported durable, oldest first. A completion is matched against
    /// this queue, not against the log as it is now: an entry can be truncated and the same id
    /// appended again (A-B-A) while the truncation is still queued behind the first write.
    issued: VecDeque<IssuedWrite>,
    /// Highest index known committed (§5.3). Invariant: `commit_index <= last_index`, never
    /// decreases.
    commit_index: LogIndex,
    /// Highest index handed to the state machine in an `Apply` (or `RestoreSnapshot`) action.
    /// Invariant: `applying <= commit_index` and `applying <= max(persisted, base)`.
    applying: LogIndex,
    /// Highest index the state machine reported applied. Invariant: `last_applied <= applying`.
    last_applied: LogIndex,
}

impl RaftLog {
    /// A log holding `entries` (already durable) after `base`, with `last_applied` applied and
    /// `commit_index` known committed. The caller has checked that the entries are contiguous
    /// from `base.index + 1` and that `base.index <= last_applied <= commit_index`.
    pub fn restore(
        base: LogId,
        entries: Vec<Entry>,
        commit_index: LogIndex,
        last_applied: LogIndex,
    ) -> RaftLog {
        let persisted = base.index.plus(entries.len() as u64);
        RaftLog {
            base,
            entries,
            persisted,
            issued: VecDeque::new(),
            commit_index,
            applying: last_applied,
            last_applied,
        }
    }

    /// The last entry compacted away (`0@0` if none): the log holds entries after it.
    pub fn base(&self) -> LogId {
        self.base
    }

    /// The id of the last entry, or `base` for a log holding no entries.
    pub fn last_log_id(&self) -> LogId {
        self.entries
            .last()
            .map(|entry| entry.log_id)
            .unwrap_or(self.base)
    }

    /// The index of the last entry.
    pub fn last_index(&self) -> LogIndex {
        self.base.index.plus(self.entries.len() as u64)
    }

    /// The term of the entry at `index`: `base`'s term at its index, `None` below it (compacted)
    /// or past the end.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base.index {
            return Some(self.base.term);
        }
        self.entry(index).map(|entry| entry.log_id.term)
    }

    /// The id of the entry at `index` (`base` at its index), if the log holds it.
    pub fn log_id_at(&self, index: LogIndex) -> Option<LogId> {
        self.term_at(index).map(|term| LogId::new(term, index))
    }

    /// The entry at `index`, if held (not compacted, not past the end).
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let position = index.0.checked_sub(self.base.index.0 + 1)?;
        self.entries.get(usize::try_from(position).ok()?)
    }

    /// Every entry held, from `base.index + 1`.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Entries from `start` on, at most `max_count` of them and (beyond the first) at most
    /// `max_bytes` of payload.
    pub fn entries_from(&self, start: LogIndex, max_count: u64, max_bytes: u64) -> Vec<Entry> {
        let available = self
            .last_index()
            .0
            .saturating_sub(start.0)
            .saturating_add(1);
        let capacity = usize::try_from(available.min(max_count)).unwrap_or(0);
        let mut batch = Vec::with_capacity(capacity);
        let mut bytes = 0;
        let mut index = start;
        while let Some(entry) = self.entry(index) {
            bytes += entry.payload_bytes();
            if batch.len() as u64 >= max_count || (!batch.is_empty() && bytes > max_bytes) {
                break;
            }
            batch.push(entry.clone());
            index = index.next();
        }
        batch
    }

    /// Whether the entries from `start` on fill a message: `max_count` of them, or more than one
    /// with over `max_bytes` of payload (so `entries_from` would stop before the log's end).
    /// Reads the payload sizes only, copying nothing.
    pub fn fills_message(&self, start: LogIndex, max_count: u64, max_bytes: u64) -> bool {
        let Some(from) = start.0.checked_sub(self.base.index.0 + 1) else {
            return false;
        };
        let rest = usize::try_from(from)
            .ok()
            .and_then(|from| self.entries.get(from..))
            .unwrap_or_default();
        if rest.len() as u64 >= max_count {
            return true;
        }
        let bytes: u64 = rest.iter().map(Entry::payload_bytes).sum();
        rest.len() > 1 && bytes > max_bytes
    }

    /// Entries in `[start, end]` that the log holds.
    pub fn slice(&self, start: LogIndex, end: LogIndex) -> Vec<Entry> {
        self.view(start, end).to_vec()
    }

    /// Entries in `[start, end]` that the log holds, borrowed: to look through them, copying none.
    pub fn view(&self, start: LogIndex, end: LogIndex) -> &[Entry] {
        let first = self.base.index.next().0;
        let from = (start.0.max(first) - first) as usize;
        let to = (end.0.saturating_sub(self.base.index.0) as usize).min(self.entries.len());
        self.entries.get(from..to).unwrap_or_default()
    }

    /// Whether a candidate whose last entry is `candidate` is at least as up to date as this log
    /// (§5.4.1): a later last term wins; with equal terms, the longer log wins.
    pub fn is_up_to_date(&self, candidate: LogId) -> bool {
        candidate >= self.last_log_id()
    }

    /// The first index of the run of entries with `term` that contains `index` (never below
    /// `base`).
    pub fn first_index_of_term_run(&self, term: Term, index: LogIndex) -> LogIndex {
        let mut first = index;
        while first.0 > 1 && self.term_at(first.prev()) == Some(term) {
            first = first.prev();
        }
        first
    }

    /// The last index holding an entry of `term`, if any (terms are sorted: binary search).
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        let after = self
            .entries
            .partition_point(|entry| entry.log_id.term <= term);
        match after.checked_sub(1).and_then(|last| self.entries.get(last)) {
            Some(last) => (last.log_id.term == term).then_some(last.log_id.index),
            None => (self.base.term == term && self.base.index.0 > 0).then_some(self.base.index),
        }
    }

    /// Appends `entries`, which must follow the last entry.
    pub fn append(&mut self, entries: &[Entry]) {
        for entry in entries {
            let expected = self.last_index().next();
            assert_eq!(
                entry.log_id.index, expected,
                "append of {} leaves a gap",
                entry.log_id
            );
            assert!(
                entry.log_id.term >= self.last_log_id().term,
                "append of {} after {}: terms must not decrease",
                entry.log_id,
                self.last_log_id()
            );
            self.entries.push(entry.clone());
        }
        if let Some(last) = entries.last() {
            self.issued.push_back(IssuedWrite::Append(last.log_id));
        }
    }

    /// Removes every entry at `from` and above. Contract 5: never a committed entry.
    pub fn truncate_from(&mut self, from: LogIndex) {
        assert!(
            from > self.commit_index,
            "truncating from {from} would remove committed entries (commit {})",
            self.commit_index
        );
        self.entries
            .truncate((from.0 - self.base.index.0 - 1) as usize);
        self.persisted = self.persisted.min(from.prev());
        self.issued.push_back(IssuedWrite::Truncate(from));
    }

    /// Forgets every entry up to and including `up_to`, which a durable snapshot covers
    /// (log compaction, §7). Only applied entries are ever purged.
    pub fn purge_to(&mut self, up_to: LogId) {
        assert!(
            up_to.index <= self.applying && up_to.index <= self.persisted,
            "purging up to {up_to} beyond applying {} or persisted {}",
            self.applying,
            self.persisted
        );
        assert_eq!(
            self.log_id_at(up_to.index),
            Some(up_to),
            "purging up to {up_to}, which the log does not hold"
        );
        if up_to.index <= self.base.index {
            return;
        }
        self.entries
            .drain(..(up_to.index.0 - self.base.index.0) as usize);
        self.base = up_to;
    }

    /// Replaces the whole log by a received snapshot ending at `base` (§7, the follower's step 7:
    /// "discard the entire log"). Everything up to `base` is committed and, once the state
    /// machine restored the snapshot, applied; `base` is durable once the install completes
    /// ([`RaftLog::mark_installed`]).
    pub fn install(&mut self, base: LogId) {
        assert!(
            base.index > self.commit_index,
            "installing a snapshot at {base}, not beyond commit {}",
            self.commit_index
        );
        self.entries.clear();
        self.base = base;
        self.commit_index = base.index;
        self.applying = base.index;
        self.persisted = self.persisted.min(base.index.prev());
        self.issued.push_back(IssuedWrite::Install(base));
    }

    /// Records that storage completed the install of the snapshot ending at `base` (and every
    /// write issued before it). Returns whether that moved `persisted` forward; a report matching
    /// no issued install is stale and ignored.
    pub fn mark_installed(&mut self, base: LogId) -> bool {
        self.mark_completed(IssuedWrite::Install(base), base.index)
    }

    /// Highest durable index.
    pub fn persisted(&self) -> LogIndex {
        self.persisted
    }

    /// Records that storage completed every write issued up to the append ending at `up_to`.
    /// Returns whether that moved `persisted` forward. A report matching no issued append is
    /// stale and ignored.
    ///
    /// After that append, disk and memory agree up to `up_to.index` — except from the first index
    /// a later, still-queued truncation removes: memory may have moved on there (possibly to an
    /// entry with the same id) while disk has not yet. A still-queued install likewise caps it
    /// below the snapshot, which becomes durable only with the install.
    pub fn mark_persisted(&mut self, up_to: LogId) -> bool {
        self.mark_completed(IssuedWrite::Append(up_to), up_to.index)
    }

    fn mark_completed(&mut self, write: IssuedWrite, up_to: LogIndex) -> bool {
        let Some(position) = self.issued.iter().position(|issued| *issued == write) else {
            return false;
        };
        self.issued.drain(..=position);
        let still_queued = self.issued.iter().filter_map(|write| match write {
            IssuedWrite::Truncate(from) => Some(from.prev()),
            IssuedWrite::Install(base) => Some(base.index.prev()),
            IssuedWrite::Append(_) => None,
        });
        let durable = still_queued.fold(up_to, LogIndex::min);
        if durable > self.persisted {
            self.persisted = durable;
            return true;
        }
        false
    }

    /// Highest committed index.
    pub fn commit_index(&self) -> LogIndex {
        self.commit_index
    }

    /// Moves the commit index forward to `index` (never backward). Returns whether it moved.
    pub fn commit_to(&mut self, index: LogIndex) -> bool {
        if index <= self.commit_index {
            return false;
        }
        assert!(
            index <= self.last_index(),
            "commit {index} beyond last index {}",
            self.last_index()
        );
        self.commit_index = index;
        true
    }

    /// The committed, durable entries not yet handed to the state machine; marks them handed.
    pub fn take_applicable(&mut self) -> Vec<Entry> {
        let up_to = self.commit_index.min(self.persisted);
        if up_to <= self.applying {
            return Vec::new();
        }
        let entries = self.slice(self.applying.next(), up_to);
        self.applying = up_to;
        entries
    }

    /// Highest index handed to the state machine (applied, or in an `Apply` on its way).
    pub fn applying(&self) -> LogIndex {
        self.applying
    }

    /// Highest index the state machine has applied.
    pub fn last_applied(&self) -> LogIndex {
        self.last_applied
    }

    /// Records that the state machine applied everything up to `up_to`.
    pub fn mark_applied(&mut self, up_to: LogIndex) {
        assert!(
            up_to <= self.applying,
            "applied {up_to} beyond what was handed to apply ({})",
            self.applying
        );
        self.last_applied = self.last_applied.max(up_to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EntryPayload;

    fn blank(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(Term(term), LogIndex(index)),
            payload: EntryPayload::Blank,
        }
    }

    fn log_of(terms: &[u64]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, term)| Entry {
                log_id: LogId::new(Term(*term), LogIndex(i as u64 + 1)),
                payload: EntryPayload::Blank,
            })
            .collect();
        RaftLog::restore(LogId::default(), entries, LogIndex(0), LogIndex(0))
    }

    #[test]
    fn term_lookups() {
        let log = log_of(&[1, 1, 2, 2, 2, 4]);
        assert_eq!(log.term_at(LogIndex(0)), Some(Term(0)));
        assert_eq!(log.term_at(LogIndex(6)), Some(Term(4)));
        assert_eq!(log.term_at(LogIndex(7)), None);
        assert_eq!(
            log.first_index_of_term_run(Term(2), LogIndex(5)),
            LogIndex(3)
        );
        assert_eq!(log.last_index_of_term(Term(2)), Some(LogIndex(5)));
        assert_eq!(log.last_index_of_term(Term(3)), None);
    }

    #[test]
    fn up_to_date_compares_last_term_then_index() {
        let log = log_of(&[1, 2, 2]);
        assert!(log.is_up_to_date(LogId::new(Term(3), LogIndex(1))));
        assert!(log.is_up_to_date(LogId::new(Term(2), LogIndex(3))));
        assert!(!log.is_up_to_date(LogId::new(Term(2), LogIndex(2))));
        assert!(!log.is_up_to_date(LogId::new(Term(1), LogIndex(9))));
    }

    #[test]
    fn truncation_pulls_persisted_back_and_stale_reports_are_ignored() {
        let mut log = log_of(&[1, 1, 1]);
        log.truncate_from(LogIndex(2));
        assert_eq!(log.persisted(), LogIndex(1));
        assert!(
            !log.mark_persisted(LogId::new(Term(1), LogIndex(3))),
            "no append ending at 1@3 was issued"
        );
        log.append(&[blank(2, 2)]);
        assert!(!log.mark_persisted(LogId::new(Term(1), LogIndex(2))));
        assert!(log.mark_persisted(LogId::new(Term(2), LogIndex(2))));
    }

    #[test]
    fn a_re_appended_id_is_not_durable_until_its_own_write_completes() {
        // 2@3 appended, replaced by 3@3, then 2@3 appended again (A-B-A) before any completion.
        let mut log = log_of(&[1, 1]);
        log.append(&[blank(2, 3)]);
        log.truncate_from(LogIndex(3));
        log.append(&[blank(3, 3)]);
        log.truncate_from(LogIndex(3));
        log.append(&[blank(2, 3)]);
        assert!(
            !log.mark_persisted(LogId::new(Term(2), LogIndex(3))),
            "the first write only"
        );
        assert_eq!(
            log.persisted(),
            LogIndex(2),
            "queued truncations still cover index 3"
        );
        assert!(!log.mark_persisted(LogId::new(Term(3), LogIndex(3))));
        assert!(
            log.mark_persisted(LogId::new(Term(2), LogIndex(3))),
            "the second write"
        );
        assert_eq!(log.persisted(), LogIndex(3));
    }

    #[test]
    #[should_panic(expected = "would remove committed entries")]
    fn truncating_committed_entries_asserts() {
        let mut log = log_of(&[1, 1, 1]);
        log.commit_to(LogIndex(2));
        log.truncate_from(LogIndex(2));
    }

    #[test]
    fn batches_respect_count_and_bytes() {
        let mut log = RaftLog::default();
        for i in 1..=5u64 {
            let payload = EntryPayload::Command(vec![0u8; 10].into());
            log.append(&[Entry {
                log_id: LogId::new(Term(1), LogIndex(i)),
                payload,
            }]);
        }
        assert_eq!(log.entries_from(LogIndex(1), 3, 1000).len(), 3);
        assert_eq!(log.entries_from(LogIndex(1), 10, 25).len(), 2);
        assert_eq!(
            log.entries_from(LogIndex(1), 10, 1).len(),
            1,
            "one oversized entry still goes"
        );
        assert!(log.entries_from(LogIndex(6), 10, 100).is_empty());
    }

    #[test]
    fn a_compacted_log_answers_from_its_base() {
        let base = LogId::new(Term(2), LogIndex(10));
        let log = RaftLog::restore(
            base,
            vec![blank(3, 11), blank(3, 12)],
            base.index,
            base.index,
        );
        assert_eq!(log.term_at(LogIndex(9)), None, "compacted");
        assert_eq!(log.term_at(LogIndex(10)), Some(Term(2)), "from the base");
        assert_eq!(log.term_at(LogIndex(12)), Some(Term(3)));
        assert_eq!(log.last_index(), LogIndex(12));
        assert_eq!(log.persisted(), LogIndex(12));
        assert_eq!(log.slice(LogIndex(1), LogIndex(11)).len(), 1);
        assert_eq!(log.last_index_of_term(Term(2)), Some(LogIndex(10)));
        let empty = RaftLog::restore(base, Vec::new(), base.index, base.index);
        assert_eq!(empty.last_log_id(), base);
    }

    #[test]
    fn purge_keeps_the_tail_and_remembers_the_last_purged_id() {
        let mut log = log_of(&[1, 1, 2, 2]);
        log.commit_to(LogIndex(4));
        let applicable = log.take_applicable();
        assert_eq!(applicable.len(), 4);
        log.purge_to(LogId::new(Term(1), LogIndex(2)));
        assert_eq!(log.base(), LogId::new(Term(1), LogIndex(2)));
        assert_eq!(log.entries().len(), 2);
        assert_eq!(
            log.entry(LogIndex(3)).map(|e| e.log_id.index),
            Some(LogIndex(3))
        );
        assert_eq!(log.entry(LogIndex(2)), None);
    }

    #[test]
    fn an_install_is_durable_only_when_its_write_completes() {
        let mut log = log_of(&[1, 1]);
        log.append(&[blank(2, 3)]);
        let base = LogId::new(Term(3), LogIndex(7));
        log.install(base);
        assert_eq!(log.last_log_id(), base);
        assert_eq!(log.commit_index(), LogIndex(7));
        assert!(log.persisted() < LogIndex(7));
        assert!(log.mark_persisted(LogId::new(Term(2), LogIndex(3))));
        assert_eq!(
            log.persisted(),
            LogIndex(3),
            "old write: capped below the install"
        );
        log.append(&[blank(3, 8)]);
        assert!(log.mark_installed(base));
        assert_eq!(log.persisted(), LogIndex(7));
        assert!(log.mark_persisted(LogId::new(Term(3), LogIndex(8))));
        assert!(
            log.take_applicable().is_empty(),
            "the snapshot is restored, not applied"
        );
    }
}
