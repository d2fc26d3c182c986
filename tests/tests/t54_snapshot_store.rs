//! The durable snapshot store (`raftor::storage::SnapshotStore`) under crashes and damage. A
//! crash at any point of a save or a receive leaves the previous latest snapshot (or the new
//! one, once renamed into place), never a torn one; leftovers are removed on open; damage is
//! skipped by `latest()` and reported by `open`'s reader. Its contract through the trait is
//! checked by the snapshot conformance suite (`t50_storage_conformance.rs`).
//!
//! The file names and format these tests cut and flip are documented in
//! `raftor::storage::SnapshotStore`: `snapshot-<term>-<index>.snap` (20 digits each), a metadata
//! record, the data, then its length (u64) and CRC-32C (u32).

use std::io::Read;
use std::path::{Path, PathBuf};

use raftor::storage::conformance::snapshots::snapshot_data;
use raftor::storage::{SnapshotMeta, SnapshotStorage, SnapshotStore};
use raftor::{LogId, LogIndex, LogStorage, Membership, NodeId, StorageError, Term};
use raftor_tests::wal::open;

const TRAILER_BYTES: usize = 12;

fn id(term: u64, index: u64) -> LogId {
    LogId::new(Term(term), LogIndex(index))
}

fn file_name(last_included: LogId) -> String {
    format!(
        "snapshot-{:020}-{:020}.snap",
        last_included.term.0, last_included.index.0
    )
}

fn save(store: &SnapshotStore, last_included: LogId, data: &[u8]) -> SnapshotMeta {
    let membership = Membership::new([NodeId(1), NodeId(2), NodeId(3)]);
    store
        .save(last_included, membership, &mut &data[..])
        .expect("save")
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|item| item.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

fn reopened_latest(dir: &Path) -> Option<SnapshotMeta> {
    SnapshotStore::open(dir)
        .expect("reopen")
        .latest()
        .expect("latest")
}

/// A store holding `older` (10_000 bytes) with the file of `newer` (20_000 bytes) beside it, as
/// after a crash between renaming `newer` into place and removing `older`. Returns the
/// directory, both metadata, and the path of `newer`'s file.
fn two_snapshots() -> (tempfile::TempDir, SnapshotMeta, SnapshotMeta, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    let older = save(&store, id(1, 10), &snapshot_data(10_000, 1));
    let older_path = dir.path().join(file_name(older.last_included));
    let older_bytes = std::fs::read(&older_path).expect("read");
    let newer = save(&store, id(2, 20), &snapshot_data(20_000, 2));
    std::fs::write(&older_path, older_bytes).expect("put the older one back");
    let newer_path = dir.path().join(file_name(newer.last_included));
    (dir, older, newer, newer_path)
}

/// A crash after the rename but before the old snapshot was removed: the newer one counts, and
/// the next snapshot removes both.
#[test]
fn t54_crash_before_removing_the_old_snapshot_keeps_the_new_one() {
    let (dir, _, newer, _) = two_snapshots();
    assert_eq!(reopened_latest(dir.path()), Some(newer));
    let store = SnapshotStore::open(dir.path()).expect("open");
    save(&store, id(3, 30), &snapshot_data(10, 3));
    assert_eq!(names(dir.path()), [file_name(id(3, 30))]);
}

/// A crash mid-save leaves a temp file: it never counted, and goes on open.
#[test]
fn t54_crash_mid_save_keeps_the_old_latest() {
    let (dir, older, _, newer_path) = two_snapshots();
    let bytes = std::fs::read(&newer_path).expect("read");
    std::fs::remove_file(&newer_path).expect("un-rename");
    for (n, cut) in [0, 10, bytes.len() / 2, bytes.len() - 1, bytes.len()]
        .into_iter()
        .enumerate()
    {
        let temp = newer_path.with_extension(format!("{n}.tmp"));
        std::fs::write(&temp, &bytes[..cut]).expect("write a temp file");
    }
    assert_eq!(reopened_latest(dir.path()), Some(older.clone()));
    assert_eq!(
        names(dir.path()),
        [file_name(older.last_included)],
        "temp files removed"
    );
}

/// A newer file cut short anywhere (its header, data or trailer; as if renamed before its data
/// reached the disk) fails verification: the older snapshot is the latest.
#[test]
fn t54_a_torn_newer_snapshot_falls_back_to_the_older() {
    let (dir, older, _, newer_path) = two_snapshots();
    let bytes = std::fs::read(&newer_path).expect("read");
    for cut in [
        0,
        5,
        40,
        5_000,
        bytes.len() - TRAILER_BYTES,
        bytes.len() - 1,
    ] {
        std::fs::write(&newer_path, &bytes[..cut]).expect("cut");
        assert_eq!(
            reopened_latest(dir.path()),
            Some(older.clone()),
            "cut at {cut}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    std::fs::write(&newer_path, longer).expect("extend");
    assert_eq!(
        reopened_latest(dir.path()),
        Some(older),
        "a byte after the trailer"
    );
}

/// A bit flip in the data or the trailer: `latest()` skips the snapshot, and reading it
/// through `open` fails at the end with `InvalidData`.
#[test]
fn t54_a_bit_flip_is_skipped_by_latest_and_reported_by_open() {
    let (dir, older, newer, newer_path) = two_snapshots();
    let bytes = std::fs::read(&newer_path).expect("read");
    for at in [
        bytes.len() - 20_000 - TRAILER_BYTES,
        bytes.len() - 7_000,
        bytes.len() - 1,
    ] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x10;
        std::fs::write(&newer_path, flipped).expect("flip");
        let store = SnapshotStore::open(dir.path()).expect("reopen");
        assert_eq!(
            store.latest().expect("latest"),
            Some(older.clone()),
            "flip at {at}"
        );
        let mut reader = store
            .open(&newer)
            .expect("open")
            .expect("the file is there");
        let error = reader
            .read_to_end(&mut Vec::new())
            .expect_err("the checksum catches it");
        assert_eq!(
            error.kind(),
            std::io::ErrorKind::InvalidData,
            "flip at {at}"
        );
    }
}

/// A bit flip in the metadata: `latest()` skips the snapshot and `open` is `Corrupt`.
#[test]
fn t54_a_damaged_header_is_corrupt() {
    let (dir, older, newer, newer_path) = two_snapshots();
    let mut bytes = std::fs::read(&newer_path).expect("read");
    bytes[14] ^= 0x01;
    std::fs::write(&newer_path, bytes).expect("flip");
    let store = SnapshotStore::open(dir.path()).expect("reopen");
    assert_eq!(store.latest().expect("latest"), Some(older));
    let opened = store.open(&newer).map(|reader| reader.is_some());
    assert!(
        matches!(opened, Err(StorageError::Corrupt { .. })),
        "{opened:?}"
    );
}

/// A crash mid-receive, or after the last chunk but before the install: the partial file goes
/// on open, the previous snapshot stays the latest, and the transfer cannot continue (the
/// follower answers with offset 0 and the leader starts over).
#[test]
fn t54_crash_mid_receive_keeps_the_old_latest() {
    let data = snapshot_data(5_000, 4);
    let meta = SnapshotMeta {
        last_included: id(4, 40),
        membership: Membership::new([NodeId(1)]),
        size_bytes: 5_000,
    };
    for received in [2_000, 5_000] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        let old = save(&store, id(1, 10), &snapshot_data(100, 1));
        store
            .write_partial(&meta, 0, &data[..received])
            .expect("chunk");
        drop(store);
        let store = SnapshotStore::open(dir.path()).expect("reopen");
        assert_eq!(store.latest().expect("latest"), Some(old.clone()));
        assert_eq!(
            names(dir.path()),
            [file_name(old.last_included)],
            "partial removed"
        );
        let refused = store.write_partial(&meta, received as u64, &[]);
        assert!(
            matches!(refused, Err(StorageError::Invalid(_))),
            "{refused:?}"
        );
        let refused = store.install_partial(&meta);
        assert!(
            matches!(refused, Err(StorageError::Invalid(_))),
            "{refused:?}"
        );
    }
}

/// The WAL keeps its snapshots in `<dir>/snapshots`, through its own restarts; a temp file a
/// crash left there is removed when the WAL opens.
#[tokio::test]
async fn t54_the_wal_keeps_snapshots_in_its_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wal = open(dir.path(), 1 << 20).await.expect("open");
    let membership = Membership::new([NodeId(1)]);
    let saved = wal
        .snapshots()
        .save(id(2, 5), membership, &mut &b"state"[..])
        .expect("save");
    drop(wal);
    let snapshots_dir = dir.path().join("snapshots");
    assert_eq!(names(&snapshots_dir), [file_name(id(2, 5))]);
    std::fs::write(snapshots_dir.join("snapshot-x.0.tmp"), b"torn").expect("leftover");
    let wal = open(dir.path(), 1 << 20).await.expect("reopen");
    assert_eq!(wal.snapshots().latest().expect("latest"), Some(saved));
    assert_eq!(names(&snapshots_dir), [file_name(id(2, 5))]);
}
