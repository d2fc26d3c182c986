//! Conformance checks of what compaction needs from a log store: a purge point and a reset
//! that survive a restart, and a snapshot store beside the log.

use crate::core::HardState;
use crate::membership::Membership;
use crate::storage::{LogStorage, StorageError};
use crate::types::{LogId, LogIndex, NodeId, Term};

use super::{append, entries, last_log_id, read, StoreFactory};

fn id(term: u64, index: u64) -> LogId {
    LogId::new(Term(term), LogIndex(index))
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StorageError>, what: &str) {
    assert!(
        matches!(result, Err(StorageError::Invalid(_))),
        "{what}: expected Invalid, got {result:?}"
    );
}

/// After purging every entry and a reopen, the last log id is still the last entry's (it never
/// goes backwards), the purge point still refuses a truncate into it, and appends continue.
pub async fn purging_everything_survives_a_reopen<F: StoreFactory>(factory: &mut F) {
    let mut store = factory.create().await;
    append(&mut store, entries(1, 1, 5)).await;
    append(&mut store, entries(2, 6, 10)).await;
    store.purge(LogIndex(10)).await.expect("purge everything");
    assert_eq!(
        last_log_id(&mut store).await,
        id(2, 10),
        "after purging all"
    );
    drop(store);
    let mut store = factory.reopen().await;
    assert_eq!(
        last_log_id(&mut store).await,
        id(2, 10),
        "last log id after purging all and a reopen"
    );
    assert_invalid(
        store.truncate(LogIndex(10)).await,
        "truncate at the purge point after a reopen",
    );
    append(&mut store, entries(2, 11, 12)).await;
    assert_eq!(read(&mut store, 11, 20).await, entries(2, 11, 12));
}

/// `reset(base)` replaces the whole log, entries above `base` included, by an empty one after
/// `base` (§7, step 7): nothing is read or loaded, the last log id is `base`, appends start at
/// `base + 1`, a truncate at or below `base` is `Invalid`; all of it also after a reopen.
pub async fn reset_replaces_the_log<F: StoreFactory>(factory: &mut F) {
    let mut store = factory.create().await;
    append(&mut store, entries(1, 1, 30)).await;
    store.purge(LogIndex(5)).await.expect("purge up to 5");
    store.reset(id(3, 20)).await.expect("reset to 3@20");
    assert_eq!(last_log_id(&mut store).await, id(3, 20), "after reset");
    assert!(
        read(&mut store, 0, 100).await.is_empty(),
        "read after reset"
    );
    assert!(
        store.load().await.expect("load").entries.is_empty(),
        "load after reset"
    );
    assert_invalid(store.append(entries(3, 20, 21)).await, "append at the base");
    assert_invalid(
        store.append(entries(3, 22, 22)).await,
        "append past base + 1",
    );
    assert_invalid(store.truncate(LogIndex(20)).await, "truncate at the base");
    drop(store);
    let mut store = factory.reopen().await;
    let stored = store.load().await.expect("load after reset and reopen");
    assert!(stored.entries.is_empty(), "load after reset and reopen");
    assert_eq!(last_log_id(&mut store).await, id(3, 20), "after a reopen");
    append(&mut store, entries(3, 21, 25)).await;
    store
        .reset(id(4, 40))
        .await
        .expect("reset again, past the log");
    append(&mut store, entries(4, 41, 42)).await;
    drop(store);
    let mut store = factory.reopen().await;
    let stored = store.load().await.expect("load after a second reset");
    assert_eq!(
        stored.entries,
        entries(4, 41, 42),
        "only entries after the base"
    );
    assert_eq!(read(&mut store, 0, 100).await, entries(4, 41, 42));
    assert_invalid(store.truncate(LogIndex(40)).await, "truncate at the base");
    store
        .truncate(LogIndex(41))
        .await
        .expect("truncate after the base");
    assert_eq!(
        last_log_id(&mut store).await,
        id(4, 40),
        "truncated to the base"
    );
}

/// A reset of an empty log, and of a log reset before, keeps the hard state and survives a
/// reopen.
pub async fn reset_of_an_empty_log_survives_a_reopen<F: StoreFactory>(factory: &mut F) {
    let mut store = factory.create().await;
    let hard_state = HardState {
        term: Term(6),
        voted_for: Some(NodeId(3)),
    };
    store
        .save_hard_state(hard_state)
        .await
        .expect("save hard state");
    store.reset(id(5, 1000)).await.expect("reset an empty log");
    drop(store);
    let mut store = factory.reopen().await;
    let stored = store.load().await.expect("load");
    assert_eq!(stored.hard_state, hard_state, "reset keeps the hard state");
    assert!(stored.entries.is_empty());
    assert_eq!(last_log_id(&mut store).await, id(5, 1000));
    append(&mut store, entries(6, 1001, 1001)).await;
    assert_eq!(last_log_id(&mut store).await, id(6, 1001));
}

/// The snapshot store a log store hands out keeps a saved snapshot across a reopen of the log
/// store (compaction purges the log only once a snapshot there is durable).
pub async fn snapshots_live_beside_the_log<F: StoreFactory>(factory: &mut F) {
    let store = factory.create().await;
    let membership = Membership::new([NodeId(1), NodeId(2)]);
    let data = b"the state machine at 2@7".to_vec();
    let saved = store
        .snapshots()
        .save(id(2, 7), membership, &mut &data[..])
        .expect("save a snapshot");
    drop(store);
    let store = factory.reopen().await;
    let snapshots = store.snapshots();
    assert_eq!(
        snapshots.latest().expect("latest"),
        Some(saved),
        "the snapshot after a reopen"
    );
    let chunk = snapshots
        .open_chunks(id(2, 7))
        .expect("open_chunks")
        .map(|chunks| chunks.read_at(0, 1000).expect("read_at"));
    assert_eq!(chunk, Some(data), "its data after a reopen");
}
