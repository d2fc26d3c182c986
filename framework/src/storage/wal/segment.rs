//! One segment file: its name (the index of its first entry), where each of its records sits,
//! and the scan that verifies it on open.

use std::fs;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::storage::StorageError;
use crate::types::{Entry, LogId, LogIndex, Term};

use super::io_error;
use super::record::{self, Defect};

/// Segment files end with this.
const SUFFIX: &str = ".wal";

/// Where one entry's record sits in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordLocation {
    /// Byte offset of the record's header.
    pub offset: u64,
    /// The entry's term, so the last log id is known without reading the file.
    pub term: Term,
}

/// A segment as the WAL tracks it.
/// Invariant: `records[i]` holds the entry at index `first + i`; `len` is the file's length.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    /// The index of the segment's first entry (also in the file name).
    pub first: LogIndex,
    /// The file.
    pub path: PathBuf,
    /// Bytes of verified records (the file's length once recovery has cut any torn tail).
    pub len: u64,
    /// One per entry, in order.
    pub records: Vec<RecordLocation>,
}

/// What scanning a segment found.
pub(crate) struct Scanned {
    /// The segment, with every verified record.
    pub segment: Segment,
    /// The verified entries, in order.
    pub entries: Vec<Entry>,
    /// The file's length on disk, if a torn tail was found beyond `segment.len`.
    pub torn_from: Option<u64>,
}

/// The file name of the segment whose first entry is `first`.
pub(crate) fn file_name(first: LogIndex) -> String {
    format!("{:020}{SUFFIX}", first.0)
}

/// The first index a segment file name stands for, if it is one.
pub(crate) fn parse_file_name(name: &str) -> Option<LogIndex> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(LogIndex)
}

/// The segment files in `dir`, ordered by first index.
pub(crate) fn list(dir: &Path) -> Result<Vec<(LogIndex, PathBuf)>, StorageError> {
    let mut found = Vec::new();
    for item in fs::read_dir(dir).map_err(io_error("list data directory"))? {
        let item = item.map_err(io_error("list data directory"))?;
        let name = item.file_name();
        if let Some(first) = name.to_str().and_then(parse_file_name) {
            found.push((first, item.path()));
        }
    }
    found.sort();
    Ok(found)
}

impl Segment {
    /// An empty segment starting at `first`.
    pub(crate) fn empty(first: LogIndex, path: PathBuf) -> Segment {
        Segment {
            first,
            path,
            len: 0,
            records: Vec::new(),
        }
    }

    /// The index of the last entry, or `first - 1` if the segment is empty.
    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex((self.first.0 + self.records.len() as u64).saturating_sub(1))
    }

    /// The id of the last entry, if any.
    pub(crate) fn last_log_id(&self) -> Option<LogId> {
        let last = self.records.last()?;
        Some(LogId::new(last.term, self.last_index()))
    }

    /// Where the record of `index` starts, and where the segment's records end after `to`.
    pub(crate) fn byte_range(&self, from: LogIndex, to: LogIndex) -> (u64, u64) {
        let start = self.records[self.position(from)].offset;
        let end = self
            .records
            .get(self.position(to) + 1)
            .map_or(self.len, |next| next.offset);
        (start, end)
    }

    /// The position of `index` in `records`. The caller checks the segment holds it.
    pub(crate) fn position(&self, index: LogIndex) -> usize {
        (index.0 - self.first.0) as usize
    }
}

/// Reads and verifies the segment at `path`, whose first entry must be `first`. Only in the
/// last segment (`is_last`) may a torn record end the file: it is reported in `torn_from` and
/// left out. Anything else that fails to verify is `Corrupt`.
pub(crate) fn scan(path: &Path, first: LogIndex, is_last: bool) -> Result<Scanned, StorageError> {
    let bytes = fs::read(path).map_err(io_error("read segment"))?;
    let mut segment = Segment::empty(first, path.to_path_buf());
    let mut entries = Vec::new();
    let mut offset = 0usize;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let (payload, framed) = match record::decode(rest) {
            Ok(found) => found,
            Err(defect) if is_last && record::is_torn_tail(defect, rest) => {
                warn_torn(path, offset, defect, bytes.len());
                return Ok(Scanned {
                    segment,
                    entries,
                    torn_from: Some(bytes.len() as u64),
                });
            }
            Err(defect) => return Err(corrupt(path, offset, defect.describe().into())),
        };
        let entry: Entry = crate::codec::decode(payload)
            .map_err(|message| corrupt(path, offset, format!("undecodable entry: {message}")))?;
        let expected = first.plus(entries.len() as u64);
        if entry.log_id.index != expected {
            let reason = format!("entry {} where index {expected} belongs", entry.log_id);
            return Err(corrupt(path, offset, reason));
        }
        segment.records.push(RecordLocation {
            offset: offset as u64,
            term: entry.log_id.term,
        });
        entries.push(entry);
        offset += framed;
        segment.len = offset as u64;
    }
    Ok(Scanned {
        segment,
        entries,
        torn_from: None,
    })
}

fn warn_torn(path: &Path, offset: usize, defect: Defect, file_len: usize) {
    warn!(
        file = %path.display(),
        offset,
        cut_bytes = file_len - offset,
        defect = defect.describe(),
        "cutting off a torn record at the end of the log (a crash in the middle of a write)"
    );
}

/// A `Corrupt` error at `offset` of `path`.
pub(crate) fn corrupt(path: &Path, offset: usize, reason: String) -> StorageError {
    StorageError::Corrupt {
        file: path.to_path_buf(),
        offset: offset as u64,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_sort_by_index() {
        assert_eq!(file_name(LogIndex(17)), "00000000000000000017.wal");
        assert_eq!(
            parse_file_name(&file_name(LogIndex(17))),
            Some(LogIndex(17))
        );
        assert_eq!(parse_file_name("17.wal"), None);
        assert_eq!(parse_file_name("0000000000000000001x.wal"), None);
        assert!(file_name(LogIndex(9)) < file_name(LogIndex(10)));
    }
}
