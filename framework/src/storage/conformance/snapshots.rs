//! The snapshot conformance suite: the checks every [`SnapshotStorage`] must pass. Like the log
//! suite, each check starts from a fresh, empty store and panics naming what broke; a durable
//! store's factory reopens the last store as a restarted node would.
//!
//! ```ignore
//! struct Factory { /* where your stores live */ }
//! impl SnapshotFactory for Factory {
//!     type Store = MySnapshots;
//!     fn create(&mut self) -> MySnapshots { /* a new, empty store */ }
//!     fn reopen(&mut self) -> MySnapshots { /* the last created store, after a restart */ }
//! }
//! raftor::storage::conformance::snapshots::run_all(&mut Factory { .. });
//! ```

use std::io::Read;

use crate::membership::Membership;
use crate::storage::{SnapshotStorage, StorageError};
use crate::types::{LogId, LogIndex, NodeId, SnapshotMeta, Term};

/// Makes the snapshot stores the suite runs on. The methods block, like the store's.
pub trait SnapshotFactory {
    /// The store under test.
    type Store: SnapshotStorage;
    /// A new, empty store; it becomes the one [`SnapshotFactory::reopen`] opens.
    fn create(&mut self) -> Self::Store;
    /// The store last created, as a restarted node opens it (a partial snapshot is forgotten).
    /// The suite drops every handle to it first.
    fn reopen(&mut self) -> Self::Store;
}

/// Runs every check, in order.
pub fn run_all<F: SnapshotFactory>(factory: &mut F) {
    empty_store(factory);
    save_then_read_back(factory);
    an_empty_snapshot_round_trips(factory);
    a_newer_snapshot_wins(factory);
    partial_snapshot_installs_as_latest(factory);
    partial_chunks_must_continue_in_order(factory);
    a_new_partial_snapshot_discards_the_old(factory);
    a_partial_snapshot_does_not_survive_a_reopen(factory);
    reads_beside_a_save_get_the_named_snapshot_or_none(factory);
}

fn id(term: u64, index: u64) -> LogId {
    LogId::new(Term(term), LogIndex(index))
}

fn membership() -> Membership {
    Membership::new([NodeId(1), NodeId(2), NodeId(3)])
}

/// `len` bytes that depend on their position and on `seed`, so a mix-up of two snapshots shows.
pub fn snapshot_data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 8) as u8 ^ seed)
        .collect()
}

fn save<S: SnapshotStorage>(store: &S, last_included: LogId, data: &[u8]) -> SnapshotMeta {
    store
        .save(last_included, membership(), &mut &data[..])
        .unwrap_or_else(|e| panic!("save {last_included}: {e}"))
}

fn chunk<S: SnapshotStorage>(store: &S, last: LogId, offset: u64, len: u64) -> Option<Vec<u8>> {
    let chunks = store
        .open_chunks(last)
        .unwrap_or_else(|e| panic!("open_chunks of {last}: {e}"))?;
    Some(
        chunks
            .read_at(offset, len)
            .unwrap_or_else(|e| panic!("read_at of {last} at {offset}: {e}")),
    )
}

/// The data of `meta`, through `open`, or `None` if the store no longer holds it.
fn read_all<S: SnapshotStorage>(store: &S, meta: &SnapshotMeta) -> Option<Vec<u8>> {
    let mut reader = store.open(meta).expect("open")?;
    let mut data = Vec::new();
    reader
        .read_to_end(&mut data)
        .unwrap_or_else(|e| panic!("read snapshot {}: {e}", meta.last_included));
    Some(data)
}

fn assert_invalid(result: Result<(), StorageError>, what: &str) {
    assert!(
        matches!(result, Err(StorageError::Invalid(_))),
        "{what}: expected Invalid, got {result:?}"
    );
}

fn meta_of(last_included: LogId, size_bytes: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_included,
        membership: membership(),
        size_bytes,
    }
}

/// Writes `data` as a partial snapshot of `meta` in chunks of `chunk_bytes`.
fn receive<S: SnapshotStorage>(store: &S, meta: &SnapshotMeta, data: &[u8], chunk_bytes: usize) {
    for (n, piece) in data.chunks(chunk_bytes.max(1)).enumerate() {
        let offset = (n * chunk_bytes) as u64;
        store
            .write_partial(meta, offset, piece)
            .unwrap_or_else(|e| panic!("write_partial at {offset}: {e}"));
    }
}

/// A new store holds nothing.
pub fn empty_store<F: SnapshotFactory>(factory: &mut F) {
    let store = factory.create();
    assert_eq!(store.latest().expect("latest"), None, "empty store: latest");
    assert_eq!(
        chunk(&store, id(1, 1), 0, 10),
        None,
        "empty store: open_chunks"
    );
    assert!(store.open(&meta_of(id(1, 1), 0)).expect("open").is_none());
}

/// A saved snapshot is the latest; any byte range of it reads back (clamped at its end); it
/// streams back whole through `open`; all of it also after a reopen.
pub fn save_then_read_back<F: SnapshotFactory>(factory: &mut F) {
    let store = factory.create();
    let data = snapshot_data(100_000, 1);
    let meta = save(&store, id(2, 20), &data);
    assert_eq!(
        meta,
        meta_of(id(2, 20), 100_000),
        "save returns the metadata"
    );
    assert_eq!(store.latest().expect("latest"), Some(meta.clone()));
    for (offset, len) in [
        (0u64, 100u64),
        (5_000, 65_536),
        (99_990, 100),
        (0, u64::MAX),
    ] {
        let end = offset.saturating_add(len).min(100_000) as usize;
        let expected = data[offset as usize..end].to_vec();
        let read = chunk(&store, id(2, 20), offset, len);
        assert_eq!(read, Some(expected), "read_at {offset}, {len} bytes");
    }
    assert_eq!(
        chunk(&store, id(2, 20), 100_000, 10),
        Some(Vec::new()),
        "at the end"
    );
    assert_eq!(
        chunk(&store, id(2, 20), 200_000, 10),
        Some(Vec::new()),
        "past the end"
    );
    assert_eq!(
        chunk(&store, id(2, 21), 0, 10),
        None,
        "another snapshot's chunk"
    );
    assert_eq!(
        read_all(&store, &meta),
        Some(data.clone()),
        "open streams it back"
    );
    let other = meta_of(id(2, 20), 99);
    assert!(
        read_all(&store, &other).is_none(),
        "open of different metadata"
    );
    drop(store);
    let store = factory.reopen();
    assert_eq!(
        store.latest().expect("latest"),
        Some(meta.clone()),
        "after a reopen"
    );
    assert_eq!(read_all(&store, &meta), Some(data), "data after a reopen");
}

/// A snapshot with no data is a snapshot.
pub fn an_empty_snapshot_round_trips<F: SnapshotFactory>(factory: &mut F) {
    let store = factory.create();
    let meta = save(&store, id(1, 1), &[]);
    assert_eq!(meta.size_bytes, 0);
    assert_eq!(read_all(&store, &meta), Some(Vec::new()));
    assert_eq!(chunk(&store, id(1, 1), 0, 10), Some(Vec::new()));
}

/// A save of an older snapshot than the latest is dropped (the newer one's metadata comes
/// back); a save of a newer one replaces the latest, and the replaced one reads as `None` —
/// except through a handle opened before, which still reads it whole (a transfer under way).
pub fn a_newer_snapshot_wins<F: SnapshotFactory>(factory: &mut F) {
    let store = factory.create();
    let newer_data = snapshot_data(300, 2);
    let newer = save(&store, id(2, 20), &newer_data);
    let held = store
        .open_chunks(id(2, 20))
        .expect("open_chunks")
        .expect("the latest is held");
    let dropped = save(&store, id(1, 10), &snapshot_data(100, 1));
    assert_eq!(dropped, newer, "an older save returns the newer snapshot");
    assert_eq!(store.latest().expect("latest"), Some(newer.clone()));
    assert_eq!(
        chunk(&store, id(1, 10), 0, 10),
        None,
        "the dropped snapshot"
    );
    let newest = save(&store, id(3, 30), &snapshot_data(500, 3));
    assert_eq!(store.latest().expect("latest"), Some(newest));
    assert_eq!(
        chunk(&store, id(2, 20), 0, 10),
        None,
        "a replaced snapshot's chunk"
    );
    assert!(
        read_all(&store, &newer).is_none(),
        "open of a replaced snapshot"
    );
    assert_eq!(
        held.read_at(0, 1000).expect("read_at"),
        newer_data,
        "a handle opened before the replacement still reads the replaced snapshot"
    );
}

/// Chunks written in order, then `install_partial`, make the snapshot the latest (replacing
/// the older one); until then the latest is unchanged. An incomplete one is `Invalid`.
pub fn partial_snapshot_installs_as_latest<F: SnapshotFactory>(factory: &mut F) {
    let store = factory.create();
    let old = save(&store, id(1, 10), &snapshot_data(1000, 1));
    let data = snapshot_data(70_000, 4);
    let meta = meta_of(id(4, 40), 70_000);
    receive(&store, &meta, &data[..50_000], 16_384);
    assert_eq!(
        store.latest().expect("latest"),
        Some(old.clone()),
        "mid-receive"
    );
    assert_invalid(
        store.install_partial(&meta),
        "install of an incomplete snapshot",
    );
    store
        .write_partial(&meta, 50_000, &data[50_000..])
        .expect("the rest, after a refused install");
    let wrong = meta_of(id(4, 41), 70_000);
    assert_invalid(store.install_partial(&wrong), "install of other metadata");
    store.install_partial(&meta).expect("install");
    assert_eq!(store.latest().expect("latest"), Some(meta.clone()));
    assert_eq!(
        read_all(&store, &meta),
        Some(data.clone()),
        "installed data"
    );
    assert_eq!(
        chunk(&store, id(4, 40), 69_000, 5_000),
        Some(data[69_000..].to_vec())
    );
    assert_eq!(
        chunk(&store, id(1, 10), 0, 10),
        None,
        "the replaced snapshot"
    );
    assert_invalid(store.install_partial(&meta), "a second install");
    drop(store);
    let store = factory.reopen();
    assert_eq!(
        store.latest().expect("latest"),
        Some(meta.clone()),
        "after a reopen"
    );
    assert_eq!(
        read_all(&store, &meta),
        Some(data),
        "installed data after a reopen"
    );
}

/// A chunk that does not start exactly where the partial snapshot ends is `Invalid` and
/// changes nothing; the transfer continues at the right offset.
pub fn partial_chunks_must_continue_in_order<F: SnapshotFactory>(factory: &mut F) {
    let store = factory.create();
    let data = snapshot_data(300, 5);
    let meta = meta_of(id(5, 50), 300);
    assert_invalid(
        store.write_partial(&meta, 100, &data[100..200]),
        "a first chunk at 100",
    );
    store
        .write_partial(&meta, 0, &data[..100])
        .expect("chunk at 0");
    assert_invalid(store.write_partial(&meta, 200, &data[200..]), "a gap");
    assert_invalid(store.write_partial(&meta, 50, &data[50..150]), "an overlap");
    assert_invalid(
        store.write_partial(&meta, 100, &[1u8; 201]),
        "past the size",
    );
    let other = meta_of(id(5, 51), 300);
    assert_invalid(
        store.write_partial(&other, 100, &data[100..200]),
        "other metadata",
    );
    store
        .write_partial(&meta, 100, &data[100..])
        .expect("the rest");
    store.install_partial(&meta).expect("install");
    assert_eq!(read_all(&store, &meta), Some(data));
}

/// A chunk at offset 0 starts a new partial snapshot and discards the one being received.
pub fn a_new_partial_snapshot_discards_the_old<F: SnapshotFactory>(factory: &mut F) {
    let store = factory.create();
    let first = meta_of(id(6, 60), 200);
    let second = meta_of(id(7, 70), 100);
    store
        .write_partial(&first, 0, &snapshot_data(100, 6))
        .expect("first, half");
    let data = snapshot_data(100, 7);
    store
        .write_partial(&second, 0, &data)
        .expect("second, whole");
    assert_invalid(
        store.write_partial(&first, 100, &[0u8; 100]),
        "the discarded one",
    );
    assert_invalid(
        store.install_partial(&first),
        "install of the discarded one",
    );
    store.install_partial(&second).expect("install the second");
    assert_eq!(read_all(&store, &second), Some(data));
}

/// A partial snapshot is volatile: after a reopen it continues nowhere and installs nothing,
/// and the latest snapshot is the one before.
pub fn a_partial_snapshot_does_not_survive_a_reopen<F: SnapshotFactory>(factory: &mut F) {
    let store = factory.create();
    let old = save(&store, id(1, 10), &snapshot_data(100, 1));
    let meta = meta_of(id(8, 80), 100);
    store
        .write_partial(&meta, 0, &snapshot_data(100, 8))
        .expect("whole");
    drop(store);
    let store = factory.reopen();
    assert_invalid(store.install_partial(&meta), "install after a reopen");
    assert_invalid(
        store.write_partial(&meta, 100, &[]),
        "continue after a reopen",
    );
    assert_eq!(store.latest().expect("latest"), Some(old.clone()));
    assert_eq!(read_all(&store, &old), Some(snapshot_data(100, 1)));
}

/// Chunks of the latest snapshot read on other threads while a newer one is saved are each
/// either that snapshot's bytes or `None` (once it is replaced), never another's bytes.
pub fn reads_beside_a_save_get_the_named_snapshot_or_none<F: SnapshotFactory>(factory: &mut F)
where
    F::Store: Sync,
{
    let store = factory.create();
    let old_data = snapshot_data(256 << 10, 9);
    save(&store, id(1, 10), &old_data);
    let replaced = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| read_until_gone(&store, id(1, 10), &old_data)))
            .collect();
        for n in 0..4u64 {
            save(&store, id(2, 20 + n), &snapshot_data(256 << 10, n as u8));
        }
        readers.into_iter().all(|reader| reader.join().is_ok())
    });
    assert!(replaced, "a reader panicked");
    let latest = store.latest().expect("latest").expect("a snapshot");
    assert_eq!(latest.last_included, id(2, 23));
}

/// Reads `last_included` in chunks, round after round, checking each against `data`, until the
/// store no longer holds it.
fn read_until_gone<S: SnapshotStorage>(store: &S, last_included: LogId, data: &[u8]) {
    let chunk_bytes = 10_000u64;
    for round in 0..1000 {
        for offset in (0..data.len() as u64).step_by(chunk_bytes as usize) {
            let Some(read) = chunk(store, last_included, offset, chunk_bytes) else {
                return;
            };
            let end = (offset + chunk_bytes).min(data.len() as u64) as usize;
            assert!(
                read == data[offset as usize..end],
                "round {round}: the chunk at {offset} of {last_included} holds other bytes"
            );
        }
        std::thread::yield_now();
    }
}
