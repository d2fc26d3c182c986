use std::io::Read;

use super::*;
use crate::types::NodeId;

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

#[test]
fn saved_snapshot_reads_back_whole_and_streamed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    assert_eq!(store.latest().expect("latest"), None);
    let bytes = data(200_000, 1);
    let meta = store
        .save(id(2, 90), membership(), &bytes[..])
        .expect("save");
    assert_eq!(meta.data_bytes, 200_000);
    assert_eq!(store.latest().expect("latest"), Some(meta.clone()));
    let mut reader = store.open_data(&meta).expect("open data");
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
    let snapshot = store.load(&meta).expect("load");
    assert_eq!((snapshot.last_included, snapshot.data), (id(2, 90), bytes));
    assert_eq!(snapshot.membership, membership());
}

#[test]
fn empty_data_round_trips() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    let snapshot = Snapshot {
        last_included: id(1, 1),
        membership: membership(),
        data: Vec::new(),
    };
    let meta = store.save_snapshot(&snapshot).expect("save");
    assert_eq!(store.load(&meta).expect("load"), snapshot);
}

#[test]
fn a_new_snapshot_replaces_older_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    store
        .save(id(1, 10), membership(), &data(10, 1)[..])
        .expect("save");
    let newer = store
        .save(id(2, 20), membership(), &data(20, 2)[..])
        .expect("save");
    assert_eq!(store.latest().expect("latest"), Some(newer));
    assert_eq!(
        list(dir.path(), "snap").expect("list").len(),
        1,
        "the older one is gone"
    );
}

#[test]
fn unfinished_writes_are_removed_on_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let temp = dir.path().join(file_name(id(3, 30))).with_extension("tmp");
    fs::write(&temp, b"half a snapshot").expect("write temp");
    let store = SnapshotStore::open(dir.path()).expect("open");
    assert!(!temp.exists());
    assert_eq!(store.latest().expect("latest"), None);
}

#[test]
fn a_damaged_newest_snapshot_is_skipped_for_the_older_valid_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::open(dir.path()).expect("open");
    let older = store
        .save(id(1, 10), membership(), &data(5000, 1)[..])
        .expect("save");
    let older_path = dir.path().join(file_name(older.last_included));
    let older_bytes = fs::read(&older_path).expect("read");
    let newer = store
        .save(id(2, 20), membership(), &data(5000, 2)[..])
        .expect("save");
    fs::write(&older_path, older_bytes).expect("put the older one back");
    let newer_path = dir.path().join(file_name(newer.last_included));
    let mut bytes = fs::read(&newer_path).expect("read");
    bytes[3000] ^= 0x40;
    fs::write(&newer_path, bytes).expect("damage");
    assert_eq!(store.latest().expect("latest"), Some(older));
    let mut reader = store.open_data(&newer).expect("open damaged data");
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
}
