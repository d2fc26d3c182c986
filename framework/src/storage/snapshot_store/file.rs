//! The snapshot file format: names, the metadata header, the trailer, and the verifying reader.
//!
//! ```text
//!  snapshot-<term>-<index>.snap   (term and index of last_included, 20 digits each)
//!  ┌───────────────────────────┬─────────────────────────┬──────────────────────────────┐
//!  │ metadata: one WAL record  │ data: size_bytes bytes  │ size_bytes: u64, crc: u32 LE │
//!  │ (last_included, membership│ (the state machine's)   │ crc = CRC-32C(data)          │
//!  │  size_bytes: 8 bytes LE)  │                         │                              │
//!  └───────────────────────────┴─────────────────────────┴──────────────────────────────┘
//! ```
//! `size_bytes` has a fixed width in the header, so a header written before the data's length
//! is known (a streamed save) is rewritten in place at the end without moving the data.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::membership::Membership;
use crate::storage::wal::{io_error, record, Crc32c};
use crate::storage::StorageError;
use crate::types::{LogId, LogIndex, SnapshotMeta, Term};

/// Bytes after the data: its length and checksum.
pub(super) const TRAILER_BYTES: usize = 12;
/// Complete snapshots end with this.
pub(super) const SNAPSHOT_EXTENSION: &str = "snap";
/// Snapshots being saved end with this (removed on open).
pub(super) const TEMP_EXTENSION: &str = "tmp";
/// Snapshots being received end with this (removed on open: a partial snapshot is volatile).
pub(super) const PARTIAL_EXTENSION: &str = "part";
/// The longest metadata record read back (a membership of thousands of nodes fits).
const HEADER_PAYLOAD_MAX: usize = 1 << 20;

/// The file name of the complete snapshot ending at `last_included`.
pub(super) fn file_name(last_included: LogId) -> String {
    format!(
        "snapshot-{:020}-{:020}.{SNAPSHOT_EXTENSION}",
        last_included.term.0, last_included.index.0
    )
}

/// The `last_included` a complete snapshot's file name stands for, if it is one.
pub(super) fn parse_file_name(path: &Path) -> Option<LogId> {
    let name = path.file_name()?.to_str()?;
    let (term, index) = name
        .strip_prefix("snapshot-")?
        .strip_suffix(&format!(".{SNAPSHOT_EXTENSION}"))?
        .split_once('-')?;
    Some(LogId::new(
        Term(term.parse().ok()?),
        LogIndex(index.parse().ok()?),
    ))
}

/// Which of two snapshots is newer: the one covering more of the log.
pub(super) fn newness(last_included: LogId) -> (LogIndex, Term) {
    (last_included.index, last_included.term)
}

/// The files in `dir` with this extension.
pub(super) fn list(dir: &Path, extension: &str) -> Result<Vec<PathBuf>, StorageError> {
    let mut found = Vec::new();
    for item in fs::read_dir(dir).map_err(io_error("list snapshot directory"))? {
        let path = item.map_err(io_error("list snapshot directory"))?.path();
        if path.extension().is_some_and(|ext| ext == extension) {
            found.push(path);
        }
    }
    Ok(found)
}

/// The metadata framed as one record. `size_bytes` is encoded with a fixed width, so the
/// length does not depend on it.
pub(super) fn encode_header(
    last_included: LogId,
    membership: &Membership,
    size_bytes: u64,
) -> Result<Vec<u8>, StorageError> {
    let fields = (last_included, membership, size_bytes.to_le_bytes());
    let payload = crate::codec::encode(&fields).map_err(StorageError::Invalid)?;
    if payload.len() > HEADER_PAYLOAD_MAX {
        return Err(StorageError::Invalid(format!(
            "snapshot metadata of {} bytes",
            payload.len()
        )));
    }
    let mut header = Vec::with_capacity(record::framed_len(payload.len()));
    record::encode_into(&mut header, &payload);
    Ok(header)
}

/// The trailer that ends a complete snapshot file.
pub(super) fn encode_trailer(size_bytes: u64, crc: u32) -> [u8; TRAILER_BYTES] {
    let mut trailer = [0u8; TRAILER_BYTES];
    trailer[..8].copy_from_slice(&size_bytes.to_le_bytes());
    trailer[8..].copy_from_slice(&crc.to_le_bytes());
    trailer
}

/// Reads and decodes the metadata record at the start of a snapshot file; returns it and the
/// header's length (where the data starts).
pub(super) fn read_header(
    file: &mut impl Read,
    path: &Path,
) -> Result<(SnapshotMeta, u64), StorageError> {
    let mut header = [0u8; record::HEADER_BYTES];
    file.read_exact(&mut header)
        .map_err(|_| corrupt(path, 0, "file too short".into()))?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let mut framed = header.to_vec();
    framed.resize(record::HEADER_BYTES + len.min(HEADER_PAYLOAD_MAX), 0);
    file.read_exact(&mut framed[record::HEADER_BYTES..])
        .map_err(|_| corrupt(path, 0, "metadata cut short".into()))?;
    let (payload, end) =
        record::decode(&framed).map_err(|defect| corrupt(path, 0, defect.describe().into()))?;
    let (last_included, membership, size_bytes): (LogId, Membership, [u8; 8]) =
        crate::codec::decode(payload).map_err(|message| corrupt(path, 0, message))?;
    let meta = SnapshotMeta {
        last_included,
        membership,
        size_bytes: u64::from_le_bytes(size_bytes),
    };
    Ok((meta, end as u64))
}

/// Streams a snapshot's data, checking its length and checksum against the trailer at the end:
/// a mismatch is an `InvalidData` read error.
#[derive(Debug)]
pub struct SnapshotReader {
    file: BufReader<File>,
    left: u64,
    size_bytes: u64,
    crc: Crc32c,
    path: PathBuf,
}

impl SnapshotReader {
    /// A reader of the data of `file`, positioned right after its header.
    pub(super) fn new(file: BufReader<File>, size_bytes: u64, path: PathBuf) -> SnapshotReader {
        SnapshotReader {
            file,
            left: size_bytes,
            size_bytes,
            crc: Crc32c::default(),
            path,
        }
    }

    fn check_trailer(&mut self) -> std::io::Result<()> {
        let mut trailer = [0u8; TRAILER_BYTES];
        self.file
            .read_exact(&mut trailer)
            .map_err(|_| invalid_data(&self.path, "trailer cut short"))?;
        if trailer != encode_trailer(self.size_bytes, self.crc.finish()) {
            return Err(invalid_data(&self.path, "data length or checksum mismatch"));
        }
        Ok(())
    }
}

impl Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            return self.check_trailer().map(|()| 0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let read = self.file.read(&mut buf[..want])?;
        if read == 0 {
            return Err(invalid_data(&self.path, "data cut short"));
        }
        self.crc.update(&buf[..read]);
        self.left -= read as u64;
        Ok(read)
    }
}

fn invalid_data(path: &Path, what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

/// Reads a whole complete snapshot file and checks it (name, metadata, length, checksum,
/// nothing after the trailer); returns its metadata.
pub(super) fn verify(path: &Path) -> Result<SnapshotMeta, StorageError> {
    let mut file = BufReader::new(File::open(path).map_err(io_error("open snapshot"))?);
    let (meta, _) = read_header(&mut file, path)?;
    if parse_file_name(path) != Some(meta.last_included) {
        return Err(corrupt(path, 0, "name and metadata disagree".into()));
    }
    let mut reader = SnapshotReader::new(file, meta.size_bytes, path.to_path_buf());
    std::io::copy(&mut reader, &mut std::io::sink())
        .map_err(|e| corrupt(path, 0, e.to_string()))?;
    let mut rest = [0u8; 1];
    if reader
        .file
        .read(&mut rest)
        .map_err(io_error("read snapshot"))?
        != 0
    {
        return Err(corrupt(path, 0, "bytes after the trailer".into()));
    }
    Ok(meta)
}

/// A `Corrupt` error at `offset` of `path`.
pub(super) fn corrupt(path: &Path, offset: u64, reason: String) -> StorageError {
    StorageError::Corrupt {
        file: path.to_path_buf(),
        offset,
        reason,
    }
}

/// fsyncs a directory, making the creation, removal or renaming of its entries durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error("fsync snapshot directory"))
}
