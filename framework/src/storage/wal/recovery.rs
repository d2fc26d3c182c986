//! Recovery on open: finish an interrupted reset, scan and verify every segment, check the log
//! joins up with its base, and cut a torn tail off the last segment.

use std::fs::{self, File, OpenOptions};
use std::path::Path;

use crate::storage::StorageError;
use crate::types::{Entry, LogId};

use super::base::{self, LogBase};
use super::io_error;
use super::segment::{self, Segment};
use super::sync::Syncer;

/// What recovery found.
pub(crate) struct Recovered {
    /// The segments, contiguous, never empty.
    pub segments: Vec<Segment>,
    /// The held entries after the base, in order.
    pub entries: Vec<Entry>,
    /// The last purged entry (`0@0` if none).
    pub base: LogId,
}

/// Recovers the log in `dir` (already locked).
pub(crate) fn recover(dir: &Path, syncer: &Syncer) -> Result<Recovered, StorageError> {
    let log_base = finish_reset(dir, base::read(dir)?, syncer)?;
    let base = log_base.base;
    let (mut segments, mut entries) = recover_segments(dir, syncer)?;
    check_joins_base(&segments, base)?;
    if segments.is_empty() {
        segments.push(create_segment(dir, base.index.next(), syncer)?);
    }
    entries.retain(|entry| entry.log_id.index > base.index);
    Ok(Recovered {
        segments,
        entries,
        base,
    })
}

/// If a reset was under way, finishes it: its commit point (the flag) is durable, so every
/// segment on disk belongs to the old log. Deletes them and clears the flag.
fn finish_reset(dir: &Path, log_base: LogBase, syncer: &Syncer) -> Result<LogBase, StorageError> {
    if !log_base.resetting {
        return Ok(log_base);
    }
    tracing::warn!(base = %log_base.base, "finishing a reset interrupted by a crash");
    remove_segments(
        dir,
        segment::list(dir)?.iter().map(|(_, path)| path),
        syncer,
    )?;
    let done = LogBase {
        resetting: false,
        ..log_base
    };
    base::write(dir, done, syncer)?;
    Ok(done)
}

/// Deletes segment files, then makes the deletions durable.
pub(crate) fn remove_segments<'a>(
    dir: &Path,
    paths: impl Iterator<Item = &'a std::path::PathBuf>,
    syncer: &Syncer,
) -> Result<(), StorageError> {
    for path in paths {
        fs::remove_file(path).map_err(io_error("remove segment"))?;
    }
    syncer.sync_dir(dir)
}

/// The log must continue right after its base: the first segment may hold purged entries but
/// never start past `base + 1`, and the log never ends below its base. Either would mean a lost
/// segment, which no crash explains (purge writes the base before deleting anything).
fn check_joins_base(segments: &[Segment], base: LogId) -> Result<(), StorageError> {
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        return Ok(());
    };
    if first.first > base.index.next() {
        let reason = format!(
            "the log starts at {}, but only entries up to {} were purged",
            first.first, base.index
        );
        return Err(segment::corrupt(&first.path, 0, reason));
    }
    if last.last_index() < base.index {
        let reason = format!(
            "the log ends at {}, below its base {base}",
            last.last_index()
        );
        return Err(segment::corrupt(&last.path, 0, reason));
    }
    Ok(())
}

/// Scans every segment in `dir`, checks they join up, and cuts a torn tail off the last one.
fn recover_segments(
    dir: &Path,
    syncer: &Syncer,
) -> Result<(Vec<Segment>, Vec<Entry>), StorageError> {
    let files = segment::list(dir)?;
    let mut segments: Vec<Segment> = Vec::with_capacity(files.len());
    let mut entries = Vec::new();
    for (position, (first, path)) in files.iter().enumerate() {
        if let Some(previous) = segments.last() {
            if previous.last_index().next() != *first {
                let reason = format!(
                    "segment starts at {first}, the previous one ends at {}",
                    previous.last_index()
                );
                return Err(segment::corrupt(path, 0, reason));
            }
        }
        let scanned = segment::scan(path, *first, position + 1 == files.len())?;
        if scanned.torn_from.is_some() {
            let file = open_for_write(path)?;
            file.set_len(scanned.segment.len)
                .map_err(io_error("cut torn tail"))?;
            syncer.sync_file(&file)?;
        }
        entries.extend(scanned.entries);
        segments.push(scanned.segment);
    }
    Ok((segments, entries))
}

/// Creates an empty segment file starting at `first` and makes its name durable.
pub(crate) fn create_segment(
    dir: &Path,
    first: crate::types::LogIndex,
    syncer: &Syncer,
) -> Result<Segment, StorageError> {
    let path = dir.join(segment::file_name(first));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_error("create segment"))?;
    syncer.sync_dir(dir)?;
    Ok(Segment::empty(first, path))
}

/// Opens a segment for writing.
pub(crate) fn open_for_write(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error("open segment"))
}
