//! Engine-level checks of the file layout: rotation, truncation and purge in terms of files,
//! and where the IO runs. Behaviour through the trait is covered by the conformance suite and the
//! crash tests in the `tests` crate.

use std::path::Path;

use super::*;
use crate::storage::conformance::entries;
use crate::types::Term;

fn name(first: u64) -> String {
    segment::file_name(LogIndex(first))
}

fn segment_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|item| item.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

/// The segment names once the reaper has deleted what it was given (it runs beside the IO
/// thread, so a purge returns before its files are gone). Waits at most 5 s.
async fn segment_names_settled(dir: &Path, expected: &[String]) -> Vec<String> {
    for _ in 0..500 {
        let names = segment_names(dir);
        if names == expected {
            return names;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    segment_names(dir)
}

async fn open_small(dir: &Path) -> WalStorage {
    let options = WalOptions {
        segment_bytes: 100,
        ..WalOptions::default()
    };
    WalStorage::open(dir, options).await.expect("open")
}

#[tokio::test]
async fn one_append_rotates_through_segments_and_fsyncs_each() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = open_small(dir.path()).await;
    // Each record is about 27 bytes: a 100-byte segment is full after 4.
    wal.append(entries(1, 1, 10)).await.expect("append");
    let names = segment_names(dir.path());
    assert_eq!(names, [name(1), name(5), name(9)]);
    for name in &names {
        let len = std::fs::metadata(dir.path().join(name))
            .expect("stat")
            .len();
        assert!(len < 100 + 40, "{name} holds {len} bytes");
    }
    let stats = wal.stats();
    assert_eq!(
        (stats.appends(), stats.entries(), stats.append_syncs()),
        (1, 10, 3)
    );
}

#[tokio::test]
async fn truncate_deletes_later_segments_and_cuts_the_one_holding_the_index() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = open_small(dir.path()).await;
    wal.append(entries(1, 1, 10)).await.expect("append");
    wal.truncate(LogIndex(6)).await.expect("truncate");
    assert_eq!(segment_names(dir.path()), [name(1), name(5)]);
    let last = wal.last_log_id().await.expect("last");
    assert_eq!(last, LogId::new(Term(1), LogIndex(5)));
    wal.truncate(LogIndex(5))
        .await
        .expect("truncate at a segment's first entry");
    assert_eq!(segment_names(dir.path()), [name(1)]);
    wal.append(entries(2, 5, 7))
        .await
        .expect("append after truncate");
    let held = wal.read(LogIndex(1), LogIndex(9)).await.expect("read");
    let mut expected = entries(1, 1, 4);
    expected.extend(entries(2, 5, 7));
    assert_eq!(held, expected);
}

#[tokio::test]
async fn purge_deletes_whole_segments_but_keeps_the_last_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = open_small(dir.path()).await;
    wal.append(entries(1, 1, 10)).await.expect("append");
    wal.purge(LogIndex(5)).await.expect("purge");
    let expected = [name(5), name(9)];
    assert_eq!(
        segment_names_settled(dir.path(), &expected).await,
        expected,
        "only the segment wholly at or below 5 goes"
    );
    wal.purge(LogIndex(100)).await.expect("purge past the end");
    let expected = [name(9)];
    assert_eq!(segment_names_settled(dir.path(), &expected).await, expected);
    let last = wal.last_log_id().await.expect("last");
    assert_eq!(last, LogId::new(Term(1), LogIndex(10)));
    assert!(wal
        .read(LogIndex(1), LogIndex(10))
        .await
        .expect("read")
        .is_empty());
    drop(wal);
    let mut wal = open_small(dir.path()).await;
    assert!(
        wal.load().await.expect("load").entries.is_empty(),
        "the purge point is durable: entries 9 and 10 stay purged"
    );
    let last = wal.last_log_id().await.expect("last");
    assert_eq!(last, LogId::new(Term(1), LogIndex(10)));
    let refused = wal.truncate(LogIndex(10)).await;
    assert!(
        matches!(refused, Err(StorageError::Invalid(_))),
        "{refused:?}"
    );
    wal.append(entries(2, 11, 11)).await.expect("append after");
}

/// A crash can come after a purge's base is durable and before the reaper deleted its segments:
/// recovery takes the leftover segment for what it is (wholly below the base), and the next
/// purge deletes it.
#[tokio::test]
async fn a_segment_the_reaper_did_not_delete_is_recovered_and_purged_later() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = open_small(dir.path()).await;
    wal.append(entries(1, 1, 10)).await.expect("append");
    let first = dir.path().join(name(1));
    let kept = std::fs::read(&first).expect("read the first segment");
    wal.purge(LogIndex(5)).await.expect("purge");
    drop(wal);
    std::fs::write(&first, kept).expect("put the segment back, as if never deleted");
    let mut wal = open_small(dir.path()).await;
    let loaded = wal.load().await.expect("load").entries;
    assert_eq!(loaded, entries(1, 6, 10), "only what is above the base");
    wal.purge(LogIndex(8)).await.expect("purge");
    let expected = [name(9)];
    assert_eq!(segment_names_settled(dir.path(), &expected).await, expected);
}

/// A crash can come while the reaper cuts a renamed segment down: the next open never reads it
/// (it is no longer a segment) and deletes it.
#[tokio::test]
async fn a_renamed_segment_a_crash_left_is_not_read_and_is_deleted_at_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = open_small(dir.path()).await;
    wal.append(entries(1, 1, 10)).await.expect("append");
    wal.purge(LogIndex(5)).await.expect("purge");
    drop(wal);
    let renamed = dir.path().join(format!("{}.purged", name(1)));
    std::fs::write(&renamed, b"half cut, not a segment any more").expect("leave a renamed one");
    let mut wal = open_small(dir.path()).await;
    let loaded = wal.load().await.expect("load").entries;
    assert_eq!(loaded, entries(1, 6, 10));
    drop(wal);
    assert!(!renamed.exists(), "the open handed it to the reaper");
}

#[tokio::test]
async fn reset_leaves_one_empty_segment_after_the_base_and_the_base_in_log_base() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = open_small(dir.path()).await;
    wal.append(entries(1, 1, 10)).await.expect("append");
    let base = LogId::new(Term(3), LogIndex(7));
    wal.reset(base).await.expect("reset");
    assert_eq!(segment_names(dir.path()), [name(8)]);
    let stored = base::read(dir.path()).expect("read log_base");
    assert_eq!(
        stored,
        base::LogBase {
            base,
            resetting: false
        }
    );
    wal.append(entries(3, 8, 9))
        .await
        .expect("append after reset");
    drop(wal);
    let mut wal = open_small(dir.path()).await;
    assert_eq!(wal.load().await.expect("load").entries, entries(3, 8, 9));
}

/// A crash right after the reset's commit point: the old segments are still there, but the
/// flag in `log_base` says they no longer count. Recovery finishes the reset.
#[tokio::test]
async fn recovery_finishes_a_reset_interrupted_after_its_commit_point() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = open_small(dir.path()).await;
    wal.append(entries(1, 1, 10)).await.expect("append");
    drop(wal);
    let base = LogId::new(Term(2), LogIndex(5));
    let flagged = base::LogBase {
        base,
        resetting: true,
    };
    base::write(dir.path(), flagged, &sync::Syncer::default()).expect("write log_base");
    let mut wal = open_small(dir.path()).await;
    let stored = wal.load().await.expect("load");
    assert!(stored.entries.is_empty(), "{:?}", stored.entries);
    assert_eq!(wal.last_log_id().await.expect("last"), base);
    assert_eq!(segment_names(dir.path()), [name(6)]);
    assert!(!base::read(dir.path()).expect("read").resetting);
}

/// A purge point without the segments that should follow it is a lost segment.
#[tokio::test]
async fn a_log_starting_after_its_base_is_corrupt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = open_small(dir.path()).await;
    wal.append(entries(1, 1, 10)).await.expect("append");
    drop(wal);
    std::fs::remove_file(dir.path().join(name(1))).expect("remove the first segment");
    let opened = WalStorage::open(dir.path(), WalOptions::default()).await;
    assert!(
        matches!(opened, Err(StorageError::Corrupt { .. })),
        "{opened:?}"
    );
}

#[tokio::test]
async fn file_io_runs_on_the_store_thread() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wal = WalStorage::open(dir.path(), WalOptions::default())
        .await
        .expect("open");
    let name = wal
        .io
        .call(|_| Ok(std::thread::current().name().map(str::to_string)))
        .await
        .expect("call");
    assert!(name.is_some_and(|name| name.starts_with("raftor-wal")));
    assert_ne!(std::thread::current().name(), Some("raftor-wal"));
}
