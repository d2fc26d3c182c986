//! [`Engine`]: the WAL's synchronous half. It owns the files and runs only on the store's IO
//! thread (see `thread.rs`), one operation at a time.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::core::HardState;
use crate::storage::{StorageError, StoredState};
use crate::types::{Entry, LogId, LogIndex, Term};

use super::base::{self, LogBase};
use super::lock::DirLock;
use super::reaper::Reaper;
use super::recovery::{self, create_segment, open_for_write, remove_segments};
use super::segment::{self, RecordLocation, Segment};
use super::sync::Syncer;
use super::{hard_state, io_error, record, WalOptions};

/// The open WAL of one data directory.
/// Invariant: `segments` is never empty, its segments hold contiguous indexes, and `active` is
/// the last segment's file, opened for writing. The first segment starts at or below
/// `purged.index + 1` and the log ends at or above `purged.index`.
pub(crate) struct Engine {
    dir: PathBuf,
    segment_bytes: u64,
    syncer: Syncer,
    segments: Vec<Segment>,
    active: File,
    hard_state: HardState,
    /// The last purged entry, durable in `log_base`: entries up to its index are discarded as
    /// far as readers can tell (whole segments below it are deleted; the rest of them stay on
    /// disk until their segment goes). It is the last log id while no entry follows it.
    purged: LogId,
    /// What recovery read, handed out by the first `load` so the log is not read twice.
    recovered: Option<Vec<Entry>>,
    /// Set by the first failed write or fsync: after it nothing more is written.
    poisoned: Option<StorageError>,
    /// Deletes purged segments off this thread (`reaper.rs`). Declared before the lock: it is
    /// dropped, and so done with the directory, before the lock is released.
    reaper: Reaper,
    _lock: DirLock,
}

impl Engine {
    /// Locks `dir` (creating it if needed), then replays and verifies everything in it.
    pub(crate) fn open(
        dir: &Path,
        options: &WalOptions,
        syncer: Syncer,
    ) -> Result<Engine, StorageError> {
        fs::create_dir_all(dir).map_err(io_error("create data directory"))?;
        let lock = DirLock::acquire(dir)?;
        let hard_state = hard_state::read(dir)?;
        let recovery::Recovered {
            segments,
            entries,
            base: purged,
        } = recovery::recover(dir, &syncer)?;
        let active = open_for_write(&segments[segments.len() - 1].path)?;
        let mut reaper = Reaper::new();
        reaper.remove_leftovers(dir);
        Ok(Engine {
            dir: dir.to_path_buf(),
            segment_bytes: options.segment_bytes.max(1),
            syncer,
            segments,
            active,
            hard_state,
            purged,
            recovered: Some(entries),
            poisoned: None,
            reaper,
            _lock: lock,
        })
    }

    /// Hard state and every held entry.
    pub(crate) fn load(&mut self) -> Result<StoredState, StorageError> {
        let entries = match self.recovered.take() {
            Some(entries) => entries,
            None => self.read(self.purged.index.next(), self.last_index())?,
        };
        Ok(StoredState {
            hard_state: self.hard_state,
            entries,
        })
    }

    /// The last entry's id, or the base if no entry follows it (`0@0` for an empty log).
    pub(crate) fn last_log_id(&self) -> LogId {
        // NB: with no record in any segment, the log ends where the first segment starts, which
        // is at most `purged + 1`, and never below `purged`: so it ends exactly at `purged`.
        self.segments
            .iter()
            .rev()
            .find_map(Segment::last_log_id)
            .unwrap_or(self.purged)
    }

    /// The index of the last entry (segments are contiguous, so the last one knows).
    fn last_index(&self) -> LogIndex {
        self.segments[self.segments.len() - 1].last_index()
    }

    fn active_segment(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Runs a write; the first IO failure poisons the store for good.
    fn guarded<T>(
        &mut self,
        write: impl FnOnce(&mut Engine) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if let Some(cause) = &self.poisoned {
            return Err(StorageError::Io {
                operation: "write",
                message: format!("refused: the WAL is poisoned by an earlier failure ({cause})"),
            });
        }
        self.recovered = None;
        let result = write(self);
        if let Err(error @ StorageError::Io { .. }) = &result {
            self.poisoned = Some(error.clone());
        }
        result
    }

    /// Durably replaces term and vote.
    pub(crate) fn save_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        self.guarded(|engine| {
            hard_state::write(&engine.dir, hard_state, &engine.syncer)?;
            engine.hard_state = hard_state;
            Ok(())
        })
    }

    /// Appends `entries` (contiguous, following the last entry) and fsyncs once at the end, plus
    /// once per segment filled on the way.
    pub(crate) fn append(&mut self, entries: Vec<Entry>) -> Result<(), StorageError> {
        if entries.is_empty() {
            return Ok(());
        }
        check_contiguous(self.last_index(), &entries)?;
        self.guarded(|engine| {
            let count = entries.len() as u64;
            let mut batch = Batch::default();
            for entry in &entries {
                let payload = crate::codec::encode(entry).map_err(StorageError::Invalid)?;
                if u32::try_from(payload.len()).is_err() {
                    return Err(StorageError::Invalid(format!(
                        "entry {} over 4 GiB",
                        entry.log_id
                    )));
                }
                if engine.is_full(&batch) {
                    engine.flush(&mut batch)?;
                    engine.rotate(entry.log_id.index)?;
                }
                batch.push(engine.active_segment().len, entry.log_id, &payload);
            }
            engine.flush(&mut batch)?;
            engine.syncer.stats.record_append(count);
            Ok(())
        })
    }

    /// Whether the active segment, with `batch` written, has reached the rotation size.
    fn is_full(&self, batch: &Batch) -> bool {
        let active = &self.segments[self.segments.len() - 1];
        let records = active.records.len() + batch.records.len();
        records > 0 && active.len + batch.bytes.len() as u64 >= self.segment_bytes
    }

    /// Writes the batch to the active segment and fsyncs it.
    fn flush(&mut self, batch: &mut Batch) -> Result<(), StorageError> {
        if batch.records.is_empty() {
            return Ok(());
        }
        let offset = self.active_segment().len;
        self.syncer.write_at(&self.active, &batch.bytes, offset)?;
        self.syncer.sync_file(&self.active)?;
        self.syncer.stats.record_append_sync();
        let active = self.active_segment();
        active.len += batch.bytes.len() as u64;
        active.records.append(&mut batch.records);
        batch.bytes.clear();
        Ok(())
    }

    /// Starts a new segment at `first`. The old one is already durable, so a torn write can
    /// only ever be in the last segment.
    fn rotate(&mut self, first: LogIndex) -> Result<(), StorageError> {
        let segment = create_segment(&self.dir, first, &self.syncer)?;
        self.active = open_for_write(&segment.path)?;
        self.segments.push(segment);
        Ok(())
    }

    /// Removes every entry at `from` and above: later segments go (newest first, so a crash
    /// leaves a contiguous log), then the segment holding `from` is cut and fsynced.
    pub(crate) fn truncate(&mut self, from: LogIndex) -> Result<(), StorageError> {
        if from <= self.purged.index {
            return Err(StorageError::Invalid(format!(
                "truncate from {from}: purged up to {}",
                self.purged
            )));
        }
        if from > self.last_index() {
            return Ok(());
        }
        self.guarded(|engine| {
            while engine.segments.len() > 1 && engine.active_segment().first >= from {
                let path = engine.active_segment().path.clone();
                fs::remove_file(&path).map_err(io_error("remove segment"))?;
                engine.syncer.sync_dir(&engine.dir)?;
                engine.segments.pop();
                engine.active = open_for_write(&engine.active_segment().path)?;
            }
            engine.cut_active(from)
        })
    }

    /// Cuts the active segment just before `from` (or keeps it whole if it ends earlier).
    fn cut_active(&mut self, from: LogIndex) -> Result<(), StorageError> {
        let active = &self.segments[self.segments.len() - 1];
        let keep = active
            .records
            .len()
            .min(from.0.saturating_sub(active.first.0) as usize);
        let len = active
            .records
            .get(keep)
            .map_or(active.len, |record| record.offset);
        self.active
            .set_len(len)
            .map_err(io_error("truncate segment"))?;
        self.syncer.sync_file(&self.active)?;
        let active = self.active_segment();
        active.records.truncate(keep);
        active.len = len;
        Ok(())
    }

    /// Discards entries up to `up_to`: the new purge point is made durable in `log_base` first,
    /// then whole segments that end at or below it are deleted (oldest first, so a crash leaves
    /// a contiguous log). The segment holding the last entry always stays.
    pub(crate) fn purge(&mut self, up_to: LogIndex) -> Result<(), StorageError> {
        let up_to = up_to.min(self.last_index());
        if up_to <= self.purged.index {
            return Ok(());
        }
        let term = self
            .term_at(up_to)
            .expect("every entry above the purge point is held");
        let purged = LogId::new(term, up_to);
        self.guarded(|engine| {
            let log_base = LogBase {
                base: purged,
                resetting: false,
            };
            base::write(&engine.dir, log_base, &engine.syncer)?;
            engine.purged = purged;
            let last = engine.last_index();
            while engine.segments[0].last_index() <= up_to && engine.segments[0].last_index() < last
            {
                let segment = engine.segments.remove(0);
                engine.reaper.remove(segment.path);
            }
            Ok(())
        })
    }

    /// Replaces the whole log by an empty one after `base`. Writing `log_base` with the
    /// `resetting` flag is the commit point: recovery finishes a reset it finds flagged, and
    /// ignores it otherwise. Then the old segments go, the flag is cleared, and an empty segment
    /// starting at `base + 1` is created (only once the flag is clear: recovery would take it
    /// for part of the old log).
    pub(crate) fn reset(&mut self, base: LogId) -> Result<(), StorageError> {
        self.guarded(|engine| {
            let mut log_base = LogBase {
                base,
                resetting: true,
            };
            base::write(&engine.dir, log_base, &engine.syncer)?;
            let old = engine.segments.iter().rev().map(|segment| &segment.path);
            remove_segments(&engine.dir, old, &engine.syncer)?;
            log_base.resetting = false;
            base::write(&engine.dir, log_base, &engine.syncer)?;
            let segment = create_segment(&engine.dir, base.index.next(), &engine.syncer)?;
            engine.active = open_for_write(&segment.path)?;
            engine.segments = vec![segment];
            engine.purged = base;
            Ok(())
        })
    }

    /// The term of the held entry at `index`.
    fn term_at(&self, index: LogIndex) -> Option<Term> {
        let segment = self
            .segments
            .iter()
            .find(|s| s.first <= index && index <= s.last_index())?;
        Some(segment.records[segment.position(index)].term)
    }

    /// Entries in `[start, end]` that are held, read back from the files and verified.
    pub(crate) fn read(&self, start: LogIndex, end: LogIndex) -> Result<Vec<Entry>, StorageError> {
        let start = start.max(self.purged.index.next());
        let end = end.min(self.last_index());
        let mut entries = Vec::new();
        for segment in &self.segments {
            let from = start.max(segment.first);
            let to = end.min(segment.last_index());
            if from <= to && !segment.records.is_empty() {
                read_records(segment, from, to, &mut entries)?;
            }
        }
        Ok(entries)
    }
}

/// Records encoded for one write.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    records: Vec<RecordLocation>,
}

impl Batch {
    /// Frames one entry; `segment_len` is where the active segment's data ends today.
    fn push(&mut self, segment_len: u64, log_id: LogId, payload: &[u8]) {
        self.records.push(RecordLocation {
            offset: segment_len + self.bytes.len() as u64,
            term: log_id.term,
        });
        record::encode_into(&mut self.bytes, payload);
    }
}

/// Checks `entries` follow `last` without a gap.
fn check_contiguous(last: LogIndex, entries: &[Entry]) -> Result<(), StorageError> {
    let mut expected = last.next();
    for entry in entries {
        if entry.log_id.index != expected {
            return Err(StorageError::Invalid(format!(
                "append of {} where index {expected} belongs",
                entry.log_id
            )));
        }
        expected = expected.next();
    }
    Ok(())
}

/// Reads the records of `from..=to` from one segment and checks each again.
fn read_records(
    segment: &Segment,
    from: LogIndex,
    to: LogIndex,
    entries: &mut Vec<Entry>,
) -> Result<(), StorageError> {
    let (start, end) = segment.byte_range(from, to);
    let mut bytes = vec![0u8; (end - start) as usize];
    File::open(&segment.path)
        .and_then(|file| file.read_exact_at(&mut bytes, start))
        .map_err(io_error("read segment"))?;
    let mut offset = 0usize;
    while offset < bytes.len() {
        let at = start as usize + offset;
        let (payload, framed) = record::decode(&bytes[offset..])
            .map_err(|defect| segment::corrupt(&segment.path, at, defect.describe().into()))?;
        let entry = crate::codec::decode(payload)
            .map_err(|message| segment::corrupt(&segment.path, at, message))?;
        entries.push(entry);
        offset += framed;
    }
    Ok(())
}
