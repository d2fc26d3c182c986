//! The storage conformance suite (`testing` feature): the checks every [`LogStorage`] must pass.
//! Run them all with [`run_all`], or one at a time; each starts from a fresh, empty store and
//! panics with a message naming what broke.
//!
//! ```ignore
//! struct Factory { /* where your stores live */ }
//! #[async_trait]
//! impl StoreFactory for Factory {
//!     type Store = MyStore;
//!     async fn create(&mut self) -> MyStore { /* a new, empty store */ }
//!     async fn reopen(&mut self) -> MyStore { /* the last created store, as after a restart */ }
//! }
//! raftor::storage::conformance::run_all(&mut Factory { .. }).await;
//! ```
//!
//! A [`SnapshotStorage`](super::SnapshotStorage) has checks of its own, in [`snapshots`]:
//! `conformance::snapshots::run_all(&mut SnapshotFactory { .. })`.

mod compaction;
pub mod snapshots;

pub use compaction::{
    purging_everything_survives_a_reopen, reset_of_an_empty_log_survives_a_reopen,
    reset_replaces_the_log, snapshots_live_beside_the_log,
};

use std::sync::Arc;

use async_trait::async_trait;

use crate::core::HardState;
use crate::types::{Entry, EntryPayload, LogId, LogIndex, NodeId, Term};

use super::{LogStorage, StorageError};

/// Makes the stores the suite runs on.
#[async_trait]
pub trait StoreFactory: Send {
    /// The store under test.
    type Store: LogStorage;
    /// A new, empty store; it becomes the one [`StoreFactory::reopen`] opens.
    async fn create(&mut self) -> Self::Store;
    /// The store last created, opened again as a restarted node would open it. The suite drops
    /// every handle to it first (a durable store may wait for that to release its files).
    async fn reopen(&mut self) -> Self::Store;
}

/// Runs every check, in order.
pub async fn run_all<F: StoreFactory>(factory: &mut F) {
    empty_store(factory).await;
    append_then_read_in_order(factory).await;
    append_must_follow_the_last_entry(factory).await;
    truncate_removes_a_conflicting_suffix(factory).await;
    purge_discards_a_prefix(factory).await;
    hard_state_round_trips(factory).await;
    reopen_preserves_everything_acknowledged(factory).await;
    reads_outside_the_log_are_empty(factory).await;
    purging_everything_survives_a_reopen(factory).await;
    reset_replaces_the_log(factory).await;
    reset_of_an_empty_log_survives_a_reopen(factory).await;
    snapshots_live_beside_the_log(factory).await;
}

/// An entry at `index` of `term`, with a payload that names it (so a mix-up shows).
pub fn entry(term: u64, index: u64) -> Entry {
    let bytes = format!("entry {term}@{index}").into_bytes();
    Entry {
        log_id: LogId::new(Term(term), LogIndex(index)),
        payload: EntryPayload::Command(Arc::from(bytes)),
    }
}

/// Entries `from..=to`, all of `term`.
pub fn entries(term: u64, from: u64, to: u64) -> Vec<Entry> {
    (from..=to).map(|index| entry(term, index)).collect()
}

async fn read<S: LogStorage>(store: &mut S, start: u64, end: u64) -> Vec<Entry> {
    store
        .read(LogIndex(start), LogIndex(end))
        .await
        .unwrap_or_else(|e| panic!("read [{start}, {end}] failed: {e}"))
}

async fn append<S: LogStorage>(store: &mut S, batch: Vec<Entry>) {
    let first = batch.first().map(|entry| entry.log_id);
    store
        .append(batch)
        .await
        .unwrap_or_else(|e| panic!("append from {first:?} failed: {e}"));
}

async fn last_log_id<S: LogStorage>(store: &mut S) -> LogId {
    store.last_log_id().await.expect("last_log_id")
}

/// A new store has no entries, term 0, no vote, and last log id `0@0`.
pub async fn empty_store<F: StoreFactory>(factory: &mut F) {
    let mut store = factory.create().await;
    let stored = store.load().await.expect("load an empty store");
    assert_eq!(
        stored.hard_state,
        HardState::default(),
        "empty store: hard state"
    );
    assert!(stored.entries.is_empty(), "empty store: entries");
    assert_eq!(
        last_log_id(&mut store).await,
        LogId::default(),
        "empty store: last log id"
    );
    assert!(
        read(&mut store, 1, 10).await.is_empty(),
        "empty store: read"
    );
}

/// Appended entries read back in order, whole or in any sub-range, across many appends.
pub async fn append_then_read_in_order<F: StoreFactory>(factory: &mut F) {
    let mut store = factory.create().await;
    append(&mut store, entries(1, 1, 3)).await;
    append(&mut store, entries(1, 4, 4)).await;
    append(&mut store, entries(2, 5, 40)).await;
    let mut all = entries(1, 1, 4);
    all.extend(entries(2, 5, 40));
    assert_eq!(read(&mut store, 1, 40).await, all, "read everything");
    assert_eq!(
        read(&mut store, 4, 6).await,
        all[3..6].to_vec(),
        "read [4, 6]"
    );
    assert_eq!(
        read(&mut store, 7, 7).await,
        vec![all[6].clone()],
        "read [7, 7]"
    );
    assert_eq!(
        last_log_id(&mut store).await,
        LogId::new(Term(2), LogIndex(40))
    );
    assert_eq!(
        store.load().await.expect("load").entries,
        all,
        "load returns the log"
    );
    store
        .append(Vec::new())
        .await
        .expect("an empty append is a no-op");
    assert_eq!(
        last_log_id(&mut store).await,
        LogId::new(Term(2), LogIndex(40))
    );
}

/// An append that would leave a gap (or overlap) is refused with `Invalid`, and changes nothing.
pub async fn append_must_follow_the_last_entry<F: StoreFactory>(factory: &mut F) {
    let mut store = factory.create().await;
    let gap = store.append(entries(1, 2, 3)).await;
    assert!(
        matches!(gap, Err(StorageError::Invalid(_))),
        "append at 2 into an empty log: {gap:?}"
    );
    append(&mut store, entries(1, 1, 3)).await;
    let overlap = store.append(entries(1, 3, 4)).await;
    assert!(
        matches!(overlap, Err(StorageError::Invalid(_))),
        "append at 3 after 3: {overlap:?}"
    );
    let inner_gap = store.append(vec![entry(1, 4), entry(1, 6)]).await;
    assert!(
        matches!(inner_gap, Err(StorageError::Invalid(_))),
        "batch with a gap: {inner_gap:?}"
    );
    assert_eq!(
        read(&mut store, 1, 10).await,
        entries(1, 1, 3),
        "refused appends change nothing"
    );
}

/// `truncate(from)` removes `from` and everything after; new entries then take their place.
pub async fn truncate_removes_a_conflicting_suffix<F: StoreFactory>(factory: &mut F) {
    let mut store = factory.create().await;
    append(&mut store, entries(1, 1, 30)).await;
    store
        .truncate(LogIndex(31))
        .await
        .expect("truncate past the end is a no-op");
    assert_eq!(
        last_log_id(&mut store).await,
        LogId::new(Term(1), LogIndex(30))
    );
    store
        .truncate(LogIndex(11))
        .await
        .expect("truncate from 11");
    assert_eq!(
        last_log_id(&mut store).await,
        LogId::new(Term(1), LogIndex(10))
    );
    assert_eq!(
        read(&mut store, 1, 30).await,
        entries(1, 1, 10),
        "after truncate from 11"
    );
    append(&mut store, entries(3, 11, 12)).await;
    let mut expected = entries(1, 1, 10);
    expected.extend(entries(3, 11, 12));
    assert_eq!(
        read(&mut store, 1, 30).await,
        expected,
        "the new suffix replaces the old"
    );
    store
        .truncate(LogIndex(1))
        .await
        .expect("truncate everything");
    assert_eq!(
        last_log_id(&mut store).await,
        LogId::default(),
        "truncated to empty"
    );
    append(&mut store, entries(4, 1, 2)).await;
    assert_eq!(
        read(&mut store, 1, 30).await,
        entries(4, 1, 2),
        "appends after truncating all"
    );
    drop(store);
    let mut store = factory.reopen().await;
    assert_eq!(
        read(&mut store, 1, 30).await,
        entries(4, 1, 2),
        "truncation survives a reopen"
    );
}

/// `purge(up_to)` hides entries up to `up_to` from reads, keeps the rest, and refuses a later
/// truncate into the purged range. The last log id does not change.
pub async fn purge_discards_a_prefix<F: StoreFactory>(factory: &mut F) {
    let mut store = factory.create().await;
    append(&mut store, entries(1, 1, 50)).await;
    store.purge(LogIndex(20)).await.expect("purge up to 20");
    assert_eq!(
        read(&mut store, 1, 50).await,
        entries(1, 21, 50),
        "entries after the purge"
    );
    assert_eq!(
        read(&mut store, 1, 20).await,
        Vec::new(),
        "purged entries are not read"
    );
    assert_eq!(
        last_log_id(&mut store).await,
        LogId::new(Term(1), LogIndex(50))
    );
    let refused = store.truncate(LogIndex(20)).await;
    assert!(
        matches!(refused, Err(StorageError::Invalid(_))),
        "truncate at a purged index: {refused:?}"
    );
    store
        .purge(LogIndex(10))
        .await
        .expect("purging less again is a no-op");
    assert_eq!(read(&mut store, 1, 50).await, entries(1, 21, 50));
    append(&mut store, entries(2, 51, 52)).await;
    drop(store);
    // A store may keep purged entries on disk (a WAL frees whole segments); never fewer.
    let mut store = factory.reopen().await;
    let held = store.load().await.expect("load after purge").entries;
    let first = held.first().map_or(0, |entry| entry.log_id.index.0);
    assert!(
        (1..=21).contains(&first),
        "after a reopen the log starts at {first}, not in 1..=21"
    );
    let mut expected = entries(1, first, 50);
    expected.extend(entries(2, 51, 52));
    assert_eq!(
        held, expected,
        "entries above the purge point survive a reopen"
    );
}

/// Term and vote read back as saved, the latest save winning, across a reopen.
pub async fn hard_state_round_trips<F: StoreFactory>(factory: &mut F) {
    let mut store = factory.create().await;
    let first = HardState {
        term: Term(3),
        voted_for: Some(NodeId(2)),
    };
    let second = HardState {
        term: Term(5),
        voted_for: None,
    };
    store.save_hard_state(first).await.expect("save hard state");
    assert_eq!(store.load().await.expect("load").hard_state, first);
    store
        .save_hard_state(second)
        .await
        .expect("save hard state again");
    assert_eq!(store.load().await.expect("load").hard_state, second);
    drop(store);
    let mut store = factory.reopen().await;
    assert_eq!(
        store.load().await.expect("load after reopen").hard_state,
        second
    );
}

/// Everything acknowledged (every append and save that returned `Ok`) is there after a reopen,
/// and the reopened store takes further appends.
pub async fn reopen_preserves_everything_acknowledged<F: StoreFactory>(factory: &mut F) {
    let mut store = factory.create().await;
    let hard_state = HardState {
        term: Term(7),
        voted_for: Some(NodeId(1)),
    };
    store
        .save_hard_state(hard_state)
        .await
        .expect("save hard state");
    let mut expected = Vec::new();
    for index in 1..=200u64 {
        let batch = vec![entry(1 + index / 50, index)];
        expected.extend(batch.clone());
        append(&mut store, batch).await;
    }
    drop(store);
    let mut store = factory.reopen().await;
    let stored = store.load().await.expect("load after reopen");
    assert_eq!(stored.hard_state, hard_state, "hard state after reopen");
    assert_eq!(stored.entries, expected, "log after reopen");
    assert_eq!(
        last_log_id(&mut store).await,
        LogId::new(Term(5), LogIndex(200))
    );
    append(&mut store, entries(5, 201, 210)).await;
    expected.extend(entries(5, 201, 210));
    drop(store);
    let mut store = factory.reopen().await;
    assert_eq!(
        read(&mut store, 1, 210).await,
        expected,
        "appends after a reopen survive another"
    );
}

/// Reads are clamped to what is held: past the end, before the start, or inverted ranges give
/// the overlap (possibly nothing), never an error or a panic.
pub async fn reads_outside_the_log_are_empty<F: StoreFactory>(factory: &mut F) {
    let mut store = factory.create().await;
    assert!(
        read(&mut store, 0, 0).await.is_empty(),
        "read [0, 0] of an empty log"
    );
    assert!(
        read(&mut store, 5, u64::MAX).await.is_empty(),
        "read to u64::MAX of an empty log"
    );
    append(&mut store, entries(1, 1, 5)).await;
    assert!(
        read(&mut store, 6, 100).await.is_empty(),
        "read past the end"
    );
    assert!(read(&mut store, 4, 2).await.is_empty(), "inverted range");
    assert_eq!(
        read(&mut store, 0, 2).await,
        entries(1, 1, 2),
        "range starting at 0"
    );
    assert_eq!(
        read(&mut store, 4, u64::MAX).await,
        entries(1, 4, 5),
        "range ending at u64::MAX"
    );
    store.purge(LogIndex(2)).await.expect("purge up to 2");
    assert_eq!(
        read(&mut store, 1, 3).await,
        entries(1, 3, 3),
        "range straddling the purge"
    );
}
