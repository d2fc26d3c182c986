//! The WAL under crashes and damage (the SIGKILL loop is in `t52_wal_kill9.rs`): a torn last record is cut off and the log opens as a
//! consistent prefix; a damaged record anywhere else is reported as `Corrupt` with its file and
//! offset, and the store refuses to open; the data directory is locked against a second opener;
//! a reset or purge interrupted at any step leaves the old log or the new one, never a mix.
//!
//! The format these tests cut and flip is the one documented in `raftor::storage::wal`: segment
//! files named by their first index, records framed as `len | crc | hcrc | payload` (12-byte
//! header, little-endian `len`).

use std::path::{Path, PathBuf};

use raftor::core::HardState;
use raftor::{Entry, LogId, LogIndex, LogStorage, NodeId, StorageError, Term};
use raftor_tests::wal::{numbered_entry, open, open_sized_with_faults, open_with_faults};

const HEADER_BYTES: usize = 12;

/// The segment files of `dir`, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list dir")
        .map(|item| item.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    files.sort();
    files
}

/// The first index of a segment, from its name.
fn first_index(segment: &Path) -> u64 {
    let stem = segment.file_stem().and_then(|s| s.to_str()).expect("name");
    stem.parse().expect("segment names are indexes")
}

/// Where each record of a segment starts, read from the `len` fields.
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut offset = 0;
    while offset + HEADER_BYTES <= bytes.len() {
        starts.push(offset);
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"));
        offset += HEADER_BYTES + len as usize;
    }
    starts
}

/// A directory with entries 1..=`count` or a few more (one append each, payload sizes
/// varying) in segments of about `segment_bytes`, closed: as many more as it takes for the last
/// segment to hold at least 3 records. Returns the directory and the last index.
async fn written_log(count: u64, segment_bytes: u64) -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = open(dir.path(), segment_bytes).await.expect("open");
    let mut index = 0;
    while index < count || last_segment_records(dir.path()) < 3 {
        index += 1;
        wal.append(vec![numbered_entry(index)])
            .await
            .expect("append");
    }
    wal.save_hard_state(HardState {
        term: Term(1),
        voted_for: Some(NodeId(1)),
    })
    .await
    .expect("save hard state");
    (dir, index)
}

fn last_segment_records(dir: &Path) -> usize {
    let last = segment_files(dir).pop().expect("a segment");
    record_starts(&std::fs::read(last).expect("read segment")).len()
}

/// The entries the store in `dir` holds after opening it.
async fn reopened_entries(dir: &Path, segment_bytes: u64) -> Result<Vec<Entry>, StorageError> {
    let mut wal = open(dir, segment_bytes).await?;
    Ok(wal.load().await?.entries)
}

/// A crash mid-write leaves a prefix of the last record(s): cut the last segment at every byte
/// offset of its last two records; each time the store opens with exactly the records that are
/// whole, cuts the rest off the file, and takes new appends after them.
#[tokio::test]
async fn t51_torn_tail_at_every_offset_opens_as_a_prefix() {
    let (dir, count) = written_log(40, 1024).await;
    let last = segment_files(dir.path()).pop().expect("a segment");
    let original = std::fs::read(&last).expect("read segment");
    let starts = record_starts(&original);
    assert!(
        starts.len() >= 2,
        "the last segment holds {} records",
        starts.len()
    );
    let before_segment = first_index(&last) - 1;
    for cut in starts[starts.len() - 2]..original.len() {
        std::fs::write(&last, &original[..cut]).expect("cut segment");
        let whole = starts.iter().filter(|start| **start < cut).count() as u64 - 1;
        let whole = if starts.contains(&cut) {
            whole + 1
        } else {
            whole
        };
        let held = before_segment + whole;
        let entries = reopened_entries(dir.path(), 1024)
            .await
            .unwrap_or_else(|e| panic!("cut at {cut}: open failed: {e}"));
        let expected: Vec<Entry> = (1..=held).map(numbered_entry).collect();
        assert_eq!(entries, expected, "cut at {cut}");
        let kept = starts
            .get(whole as usize)
            .copied()
            .unwrap_or(original.len());
        let len = std::fs::metadata(&last).expect("stat").len() as usize;
        assert_eq!(len, kept.min(cut), "cut at {cut}: torn bytes were removed");
    }
    // Appending after a cut starts right after the whole records.
    std::fs::write(&last, &original[..original.len() - 3]).expect("cut segment");
    let mut wal = open(dir.path(), 1024).await.expect("open");
    wal.append(vec![numbered_entry(count)])
        .await
        .expect("re-append the last");
    let entries = wal.load().await.expect("load").entries;
    assert_eq!(entries, (1..=count).map(numbered_entry).collect::<Vec<_>>());
}

/// Space the file system extended but never wrote reads as zeros: a zero tail (or a header
/// that fails its checksum followed only by zeros) is a torn write, cut off.
#[tokio::test]
async fn t51_zero_filled_tail_is_cut() {
    let (dir, count) = written_log(10, 1 << 20).await;
    let last = segment_files(dir.path()).pop().expect("a segment");
    let original = std::fs::read(&last).expect("read segment");
    let expected: Vec<Entry> = (1..=count).map(numbered_entry).collect();
    let mut zero_tail = original.clone();
    zero_tail.extend([0u8; 300]);
    std::fs::write(&last, &zero_tail).expect("extend with zeros");
    assert_eq!(
        reopened_entries(dir.path(), 1 << 20).await.expect("opens"),
        expected
    );
    assert_eq!(
        std::fs::metadata(&last).expect("stat").len() as usize,
        original.len()
    );
}

/// Flips one bit in `bytes[at]` of `file`, checks opening fails with `Corrupt` at
/// `record_start`, and restores the file.
async fn assert_flip_is_corrupt(dir: &Path, file: &Path, at: usize, record_start: usize) {
    let original = std::fs::read(file).expect("read file");
    let mut damaged = original.clone();
    damaged[at] ^= 1 << (at % 8);
    std::fs::write(file, &damaged).expect("damage file");
    match reopened_entries(dir, 1024).await {
        Err(StorageError::Corrupt {
            file: bad, offset, ..
        }) => {
            assert_eq!(bad, file, "flip at {at} of {}: wrong file", file.display());
            assert_eq!(
                offset,
                record_start as u64,
                "flip at {at} of {}",
                file.display()
            );
        }
        other => panic!(
            "flip at {at} of {}: expected Corrupt, got {other:?}",
            file.display()
        ),
    }
    std::fs::write(file, &original).expect("restore file");
}

/// A bit flip in any byte of a record that is not the log's last is `Corrupt` with the right
/// file and record offset: the first and last records of the first segment, and the first
/// record of the last segment.
#[tokio::test]
async fn t51_bit_flips_in_earlier_records_are_corrupt() {
    let (dir, count) = written_log(40, 1024).await;
    let segments = segment_files(dir.path());
    assert!(segments.len() >= 3, "{} segments", segments.len());
    let first = &segments[0];
    let last = &segments[segments.len() - 1];
    let first_starts = record_starts(&std::fs::read(first).expect("read"));
    let first_len = std::fs::metadata(first).expect("stat").len() as usize;
    let last_starts = record_starts(&std::fs::read(last).expect("read"));
    assert!(
        last_starts.len() >= 2,
        "the last segment holds {} records",
        last_starts.len()
    );
    let targets = [
        (first, first_starts[0], first_starts[1]),
        (first, first_starts[first_starts.len() - 1], first_len),
        (last, last_starts[0], last_starts[1]),
    ];
    for (file, start, end) in targets {
        for at in start..end {
            assert_flip_is_corrupt(dir.path(), file, at, start).await;
        }
    }
    let expected: Vec<Entry> = (1..=count).map(numbered_entry).collect();
    assert_eq!(
        reopened_entries(dir.path(), 1024).await.expect("restored"),
        expected
    );
}

/// The log's very last record cannot be told from a torn write when its payload is damaged: it
/// is cut off (the documented rule), and everything before it stays.
#[tokio::test]
async fn t51_damaged_last_record_counts_as_torn() {
    let (dir, count) = written_log(10, 1 << 20).await;
    let last = segment_files(dir.path()).pop().expect("a segment");
    let mut bytes = std::fs::read(&last).expect("read");
    let len = bytes.len();
    bytes[len - 1] ^= 0x10;
    std::fs::write(&last, &bytes).expect("damage");
    let expected: Vec<Entry> = (1..count).map(numbered_entry).collect();
    assert_eq!(
        reopened_entries(dir.path(), 1 << 20).await.expect("opens"),
        expected
    );
}

/// A missing segment in the middle is a gap: `Corrupt` at the start of the segment after it.
#[tokio::test]
async fn t51_missing_segment_is_corrupt() {
    let (dir, _) = written_log(40, 1024).await;
    let segments = segment_files(dir.path());
    std::fs::remove_file(&segments[1]).expect("remove a segment");
    match reopened_entries(dir.path(), 1024).await {
        Err(StorageError::Corrupt { file, offset, .. }) => {
            assert_eq!((file, offset), (segments[2].clone(), 0));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// A damaged hard-state file is `Corrupt` (it is replaced atomically, so never torn).
#[tokio::test]
async fn t51_damaged_hard_state_is_corrupt() {
    let (dir, _) = written_log(3, 1 << 20).await;
    let path = dir.path().join("hard_state");
    let mut bytes = std::fs::read(&path).expect("read hard state");
    bytes[HEADER_BYTES] ^= 1;
    std::fs::write(&path, &bytes).expect("damage");
    let result = open(dir.path(), 1 << 20).await.map(drop);
    assert!(
        matches!(&result, Err(StorageError::Corrupt { file, offset: 0, .. }) if *file == path),
        "{result:?}"
    );
}

/// A second opener of a directory is refused and told the holder's pid; once the holder is
/// dropped the directory opens, also over a stale pid left in the lock file.
#[tokio::test]
async fn t51_data_directory_is_locked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = open(dir.path(), 1 << 20).await.expect("first open");
    let second = open(dir.path(), 1 << 20).await;
    assert_eq!(
        second.map(drop),
        Err(StorageError::Locked {
            dir: dir.path().to_path_buf(),
            pid: Some(std::process::id()),
        })
    );
    drop(first);
    std::fs::write(dir.path().join("LOCK"), "4194303\n").expect("stale pid");
    open(dir.path(), 1 << 20)
        .await
        .expect("opens once released");
}

/// A failed fsync fails the append and poisons the store: every later write is refused, even
/// though the disk works again. What was acknowledged before is intact after a reopen.
#[tokio::test]
async fn t51_failed_fsync_poisons_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut wal, faults) = open_with_faults(dir.path()).await;
    wal.append((1..=5).map(numbered_entry).collect())
        .await
        .expect("append");
    faults.fail_sync_after(0);
    let failed = wal.append(vec![numbered_entry(6)]).await;
    assert!(
        matches!(
            &failed,
            Err(StorageError::Io {
                operation: "fsync",
                ..
            })
        ),
        "{failed:?}"
    );
    let refused = wal.append(vec![numbered_entry(6)]).await;
    assert!(
        matches!(&refused, Err(StorageError::Io { message, .. }) if message.contains("poisoned")),
        "{refused:?}"
    );
    let refused = wal.save_hard_state(HardState::default()).await;
    assert!(
        matches!(refused, Err(StorageError::Io { .. })),
        "{refused:?}"
    );
    assert!(matches!(
        wal.truncate(LogIndex(3)).await,
        Err(StorageError::Io { .. })
    ));
    drop(wal);
    let entries = reopened_entries(dir.path(), 1 << 20)
        .await
        .expect("reopens");
    assert_eq!(
        entries[..5],
        (1..=5).map(numbered_entry).collect::<Vec<_>>()[..]
    );
}

/// A full disk (the write lands half its bytes and fails) fails the append and poisons the
/// store; on reopen the half-written record is cut off as a torn tail (whole records of the
/// failed write before it may stay: they were never acknowledged, either way is safe).
#[tokio::test]
async fn t51_full_disk_fails_the_append_and_leaves_a_torn_tail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut wal, faults) = open_with_faults(dir.path()).await;
    wal.append((1..=5).map(numbered_entry).collect())
        .await
        .expect("append");
    faults.fail_write_after(0);
    let failed = wal.append((6..=9).map(numbered_entry).collect()).await;
    assert!(
        matches!(
            &failed,
            Err(StorageError::Io {
                operation: "write",
                ..
            })
        ),
        "{failed:?}"
    );
    assert!(
        wal.append(vec![numbered_entry(6)]).await.is_err(),
        "poisoned"
    );
    drop(wal);
    let entries = reopened_entries(dir.path(), 1 << 20)
        .await
        .expect("reopens");
    let written: Vec<Entry> = (1..=9).map(numbered_entry).collect();
    assert!(
        (5..9).contains(&entries.len()) && entries[..] == written[..entries.len()],
        "{} entries held: a prefix of the 9 written, all 5 acknowledged, not the torn one",
        entries.len()
    );
}

/// What a reopened store holds: its entries and its last log id.
async fn reopened_log(dir: &Path, segment_bytes: u64) -> (Vec<Entry>, LogId) {
    let mut wal = open(dir, segment_bytes).await.expect("reopens");
    let entries = wal.load().await.expect("load").entries;
    let last = wal.last_log_id().await.expect("last log id");
    (entries, last)
}

/// Stops a reset at each of its fsyncs (the process dies there: what was renamed is visible,
/// nothing after it happened) and at its writes. After a reopen the log is either the old one,
/// whole, or the reset one (empty, last log id the base, taking the next append), never a mix;
/// a reset that returned `Ok` is always the reset one. Both outcomes occur.
#[tokio::test]
async fn t51_reset_interrupted_at_every_step_leaves_the_old_log_or_the_reset_one() {
    let segment_bytes = 512;
    let old: Vec<Entry> = (1..=20).map(numbered_entry).collect();
    let base = LogId::new(Term(2), LogIndex(15));
    let mut outcomes = (0, 0);
    for (step, fail_sync) in (0..8).map(|n| (n, true)).chain((0..3).map(|n| (n, false))) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, faults) = open_sized_with_faults(dir.path(), segment_bytes).await;
        wal.append(old.clone()).await.expect("append");
        if fail_sync {
            faults.fail_sync_after(step);
        } else {
            faults.fail_write_after(step);
        }
        let reset = wal.reset(base).await;
        drop(wal);
        let (entries, last) = reopened_log(dir.path(), segment_bytes).await;
        let what = format!(
            "fail {} after {step}: reset {reset:?}",
            if fail_sync { "fsync" } else { "write" }
        );
        if entries.is_empty() {
            assert_eq!(last, base, "{what}: reset log");
            outcomes.1 += 1;
            let mut wal = open(dir.path(), segment_bytes).await.expect("reopen");
            let next = Entry {
                log_id: LogId::new(Term(2), LogIndex(16)),
                ..numbered_entry(16)
            };
            wal.append(vec![next]).await.expect("append after the base");
        } else {
            assert!(
                reset.is_err(),
                "{what}: a reset that returned Ok left the old log"
            );
            assert_eq!(
                (entries, last),
                (old.clone(), old[19].log_id),
                "{what}: old log"
            );
            outcomes.0 += 1;
        }
    }
    assert!(outcomes.0 > 0 && outcomes.1 > 0, "old, reset: {outcomes:?}");
}

/// Stops a purge at each of its fsyncs. After a reopen the entries above the purge point are
/// all there, the last log id is the last entry's, and a purge that returned `Ok` hides
/// everything at or below its point from `load`.
#[tokio::test]
async fn t51_purge_interrupted_at_every_step_keeps_the_log_above_it() {
    let segment_bytes = 512;
    let written: Vec<Entry> = (1..=30).map(numbered_entry).collect();
    for step in 0..6 {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, faults) = open_sized_with_faults(dir.path(), segment_bytes).await;
        wal.append(written.clone()).await.expect("append");
        faults.fail_sync_after(step);
        let purge = wal.purge(LogIndex(30)).await;
        drop(wal);
        let (entries, last) = reopened_log(dir.path(), segment_bytes).await;
        assert_eq!(last, written[29].log_id, "step {step}: last log id");
        let first = entries.first().map_or(31, |entry| entry.log_id.index.0);
        assert_eq!(
            entries[..],
            written[first as usize - 1..],
            "step {step}: a suffix"
        );
        if purge.is_ok() {
            assert!(entries.is_empty(), "step {step}: purged entries came back");
        }
    }
}
