//! File-level checks of the snapshot store: names, what lands on disk, leftovers, damage. The
//! contract through the trait is covered by the snapshot conformance suite.

use std::io::Read;

use super::*;
use crate::types::{LogIndex, NodeId, Term};

fn membership() -> Membership {
    Membership::new([NodeId(1), NodeId(2), NodeId(3)])
}

fn id(term: u64, index: u64) -> LogId {
    LogId::new(Term(term), LogIndex(index))
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn save(store: &SnapshotStore, last_included: LogId, bytes: &[u8]) -> SnapshotMeta {
    store
        .save(last_included, membership(), &mut &bytes[..])
        .expect("save")
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .filter_map(|item| item.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

#[test]
fn saved_snapshot_streams_back_in_small_reads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    let bytes = data(200_000, 1);
    let meta = save(&store, id(2, 90), &bytes);
    assert_eq!(meta.size_bytes, 200_000);
    let mut reader = store.open(&meta).expect("open").expect("held");
    let mut streamed = Vec::new();
    let mut chunk = [0u8; 7000];
    loop {
        let read = reader.read(&mut chunk).expect("read chunk");
        if read == 0 {
            break;
        }
        streamed.extend_from_slice(&chunk[..read]);
    }
    assert_eq!(streamed, bytes);
    drop(store);
    let store = SnapshotStore::open(dir.path()).expect("reopen");
    assert_eq!(store.latest().expect("latest"), Some(meta), "found on open");
}

/// A snapshot of several `SYNC_EVERY_BYTES` is flushed part by part as it is written; the
/// flushes in the middle change nothing of what is stored.
#[test]
fn a_snapshot_flushed_as_it_is_written_reads_back_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    let len = 3 * SYNC_EVERY_BYTES as usize + 12_345;
    let bytes = data(len, 3);
    let meta = save(&store, id(3, 500), &bytes);
    assert_eq!(meta.size_bytes, len as u64);
    let mut streamed = Vec::new();
    let mut reader = store.open(&meta).expect("open").expect("held");
    reader.read_to_end(&mut streamed).expect("read");
    assert_eq!(streamed, bytes);
    drop(store);
    let store = SnapshotStore::open(dir.path()).expect("reopen");
    assert_eq!(
        store.latest().expect("latest"),
        Some(meta),
        "verified on open"
    );
}

#[test]
fn only_the_latest_file_is_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    save(&store, id(1, 10), &data(10, 1));
    save(&store, id(2, 20), &data(20, 2));
    assert_eq!(names(dir.path()), [file_name(id(2, 20))]);
}

#[test]
fn unfinished_writes_are_removed_on_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let temp = dir
        .path()
        .join(file_name(id(3, 30)))
        .with_extension("0.tmp");
    fs::write(&temp, b"half a snapshot").expect("write temp");
    let partial = dir.path().join("partial-3-30.part");
    fs::write(&partial, b"half a received snapshot").expect("write partial");
    let store = SnapshotStore::open(dir.path()).expect("open");
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    assert_eq!(store.latest().expect("latest"), None);
}

#[test]
fn a_received_snapshot_is_a_partial_file_until_installed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    let bytes = data(1000, 3);
    let meta = SnapshotMeta {
        last_included: id(4, 40),
        membership: membership(),
        size_bytes: 1000,
    };
    store.write_partial(&meta, 0, &bytes[..600]).expect("chunk");
    store
        .write_partial(&meta, 600, &bytes[600..])
        .expect("chunk");
    assert_eq!(
        names(dir.path()),
        ["partial-00000000000000000004-00000000000000000040.part"]
    );
    store.install_partial(&meta).expect("install");
    assert_eq!(names(dir.path()), [file_name(id(4, 40))]);
    assert_eq!(
        file::verify(&dir.path().join(file_name(id(4, 40)))).expect("verifies"),
        meta
    );
}

#[test]
fn a_chunk_past_the_size_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    let meta = SnapshotMeta {
        last_included: id(1, 5),
        membership: membership(),
        size_bytes: 4,
    };
    let refused = store.write_partial(&meta, 0, b"too long");
    assert!(
        matches!(refused, Err(StorageError::Invalid(_))),
        "{refused:?}"
    );
}

#[test]
fn a_damaged_newest_snapshot_is_skipped_for_the_older_valid_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    let older = save(&store, id(1, 10), &data(5000, 1));
    let older_path = dir.path().join(file_name(older.last_included));
    let older_bytes = fs::read(&older_path).expect("read");
    let newer = save(&store, id(2, 20), &data(5000, 2));
    fs::write(&older_path, older_bytes).expect("put the older one back");
    let newer_path = dir.path().join(file_name(newer.last_included));
    let mut bytes = fs::read(&newer_path).expect("read");
    bytes[3000] ^= 0x40;
    fs::write(&newer_path, bytes).expect("damage");
    drop(store);
    let store = SnapshotStore::open(dir.path()).expect("reopen");
    assert_eq!(store.latest().expect("latest"), Some(older));
    let mut reader = store.open(&newer).expect("open").expect("still on disk");
    let error = reader
        .read_to_end(&mut Vec::new())
        .expect_err("checksum caught");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn file_names_round_trip() {
    let path = PathBuf::from(file_name(id(7, 123)));
    assert_eq!(parse_file_name(&path), Some(id(7, 123)));
    assert_eq!(parse_file_name(Path::new("snapshot-x-1.snap")), None);
    assert_eq!(parse_file_name(&path.with_extension("0.tmp")), None);
}
