//! [`SnapshotStore`]: durable snapshot files in a directory of their own.
//!
//! ```text
//!  snapshot-<term>-<index>.snap   (term and index of last_included, 20 digits each)
//!  ┌───────────────────────────┬─────────────────────────┬──────────────────────────────┐
//!  │ metadata: one WAL record  │ data: data_bytes bytes  │ data_bytes: u64, crc: u32 LE │
//!  │ (SnapshotMeta in bincode) │ (the state machine's)   │ crc = CRC-32C(data)          │
//!  └───────────────────────────┴─────────────────────────┴──────────────────────────────┘
//! ```
//! A snapshot is written to a `.tmp` name, fsynced, renamed into place and the directory
//! fsynced; only then are older snapshots removed. A crash leaves either the old snapshot or
//! the new one (and perhaps a `.tmp` file, removed on open). Data is streamed in and out, so a
//! snapshot never has to fit in memory twice.
//!
//! The methods block on the disk: call them from a blocking context (a thread of their own or
//! `tokio::task::spawn_blocking`), never on the node actor's thread.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::membership::Membership;
use crate::state_machine::Snapshot;
use crate::types::{LogId, LogIndex, Term};

use super::wal::{io_error, record, Crc32c};
use super::StorageError;

/// Bytes after the data: its length and checksum.
const TRAILER_BYTES: u64 = 12;
/// Chunk size for streaming data in and out.
const CHUNK_BYTES: usize = 64 << 10;

/// What a snapshot file says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last log entry whose effect the snapshot includes.
    pub last_included: LogId,
    /// The membership in effect at `last_included`.
    pub membership: Membership,
    /// Length of the state machine's data.
    pub data_bytes: u64,
}

/// A directory of snapshot files, of which the newest valid one counts.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    /// Opens (creating it if needed) the snapshot directory and removes unfinished writes.
    pub fn open(dir: impl AsRef<Path>) -> Result<SnapshotStore, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_error("create snapshot directory"))?;
        for path in list(&dir, "tmp")? {
            fs::remove_file(&path).map_err(io_error("remove unfinished snapshot"))?;
        }
        Ok(SnapshotStore { dir })
    }

    /// Durably stores a snapshot whose data is read from `data` (to its end), then removes the
    /// older snapshots. Returns the new snapshot's metadata.
    pub fn save(
        &self,
        last_included: LogId,
        membership: Membership,
        data: impl Read,
    ) -> Result<SnapshotMeta, StorageError> {
        let path = self.dir.join(file_name(last_included));
        let temp = path.with_extension("tmp");
        let data_bytes = write_temp(&temp, last_included, &membership, data)?;
        fs::rename(&temp, &path).map_err(io_error("rename snapshot"))?;
        sync_dir(&self.dir)?;
        self.remove_older_than(last_included)?;
        Ok(SnapshotMeta {
            last_included,
            membership,
            data_bytes,
        })
    }

    /// Durably stores an in-memory [`Snapshot`].
    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotMeta, StorageError> {
        let membership = snapshot.membership.clone();
        self.save(snapshot.last_included, membership, &snapshot.data[..])
    }

    /// The newest snapshot that verifies (metadata, length and data checksum), if any. Newer
    /// files that fail verification are skipped with a warning.
    pub fn latest(&self) -> Result<Option<SnapshotMeta>, StorageError> {
        let mut paths = list(&self.dir, "snap")?;
        paths.sort_by_key(|path| std::cmp::Reverse(parse_file_name(path)));
        for path in paths {
            match verify(&path) {
                Ok(meta) => return Ok(Some(meta)),
                Err(error) => warn!(file = %path.display(), %error, "skipping a bad snapshot"),
            }
        }
        Ok(None)
    }

    /// A reader of the data of the snapshot `meta` describes. It fails with `InvalidData` at
    /// the end if the data does not match its checksum.
    pub fn open_data(&self, meta: &SnapshotMeta) -> Result<SnapshotReader, StorageError> {
        let path = self.dir.join(file_name(meta.last_included));
        let mut file = BufReader::new(File::open(&path).map_err(io_error("open snapshot"))?);
        let read_meta = read_meta(&mut file, &path)?;
        if read_meta != *meta {
            return Err(corrupt(
                &path,
                0,
                "metadata differs from the one asked for".into(),
            ));
        }
        Ok(SnapshotReader {
            file,
            left: meta.data_bytes,
            crc: Crc32c::default(),
            path,
        })
    }

    /// Reads the whole snapshot `meta` describes into memory.
    pub fn load(&self, meta: &SnapshotMeta) -> Result<Snapshot, StorageError> {
        let mut data = Vec::with_capacity(usize::try_from(meta.data_bytes).unwrap_or(0));
        self.open_data(meta)?
            .read_to_end(&mut data)
            .map_err(io_error("read snapshot"))?;
        Ok(Snapshot {
            last_included: meta.last_included,
            membership: meta.membership.clone(),
            data,
        })
    }

    fn remove_older_than(&self, newest: LogId) -> Result<(), StorageError> {
        let mut removed = false;
        for path in list(&self.dir, "snap")? {
            if parse_file_name(&path).is_some_and(|id| id < newest) {
                fs::remove_file(&path).map_err(io_error("remove old snapshot"))?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Streams a snapshot's data, checking its checksum at the end.
#[derive(Debug)]
pub struct SnapshotReader {
    file: BufReader<File>,
    left: u64,
    crc: Crc32c,
    path: PathBuf,
}

impl Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
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

impl SnapshotReader {
    fn check_trailer(&mut self) -> std::io::Result<()> {
        let mut trailer = [0u8; TRAILER_BYTES as usize];
        self.file.read_exact(&mut trailer)?;
        let crc = u32::from_le_bytes([trailer[8], trailer[9], trailer[10], trailer[11]]);
        if crc != self.crc.finish() {
            return Err(invalid_data(&self.path, "data checksum mismatch"));
        }
        Ok(())
    }
}

fn invalid_data(path: &Path, what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

/// Writes metadata, data and trailer to `temp` and fsyncs it; returns the data's length.
fn write_temp(
    temp: &Path,
    last_included: LogId,
    membership: &Membership,
    mut data: impl Read,
) -> Result<u64, StorageError> {
    let file = File::create(temp).map_err(io_error("create snapshot"))?;
    let mut out = BufWriter::new(file);
    let write = io_error("write snapshot");
    // The length is not known until the data has been read: the header says 0 until rewritten.
    let mut data_bytes = 0u64;
    let mut crc = Crc32c::default();
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut body = Vec::new();
    let header_len = write_meta(&mut body, last_included, membership, u64::MAX)?;
    out.write_all(&vec![0u8; header_len]).map_err(&write)?;
    loop {
        let read = data
            .read(&mut chunk)
            .map_err(io_error("read snapshot data"))?;
        if read == 0 {
            break;
        }
        crc.update(&chunk[..read]);
        out.write_all(&chunk[..read]).map_err(&write)?;
        data_bytes += read as u64;
    }
    out.write_all(&data_bytes.to_le_bytes()).map_err(&write)?;
    out.write_all(&crc.finish().to_le_bytes()).map_err(&write)?;
    let file = out.into_inner().map_err(|e| write(e.into_error()))?;
    let mut header = Vec::new();
    write_meta(&mut header, last_included, membership, data_bytes)?;
    // Fixed-width length: the real header is exactly as long as the placeholder.
    std::os::unix::fs::FileExt::write_all_at(&file, &header, 0).map_err(&write)?;
    file.sync_all().map_err(io_error("fsync snapshot"))?;
    Ok(data_bytes)
}

/// Frames the metadata as one record into `buf`; returns its length. `data_bytes` is encoded
/// with a fixed width, so the length does not depend on it.
fn write_meta(
    buf: &mut Vec<u8>,
    last_included: LogId,
    membership: &Membership,
    data_bytes: u64,
) -> Result<usize, StorageError> {
    let meta = (last_included, membership, data_bytes.to_le_bytes());
    let payload = crate::codec::encode(&meta).map_err(StorageError::Invalid)?;
    record::encode_into(buf, &payload);
    Ok(buf.len())
}

/// Reads and decodes the metadata record at the start of a snapshot file.
fn read_meta(file: &mut impl Read, path: &Path) -> Result<SnapshotMeta, StorageError> {
    let mut header = [0u8; record::HEADER_BYTES];
    file.read_exact(&mut header)
        .map_err(|_| corrupt(path, 0, "file too short".into()))?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let mut framed = header.to_vec();
    framed.resize(record::HEADER_BYTES + len.min(1 << 20), 0);
    file.read_exact(&mut framed[record::HEADER_BYTES..])
        .map_err(|_| corrupt(path, 0, "metadata cut short".into()))?;
    let (payload, _) =
        record::decode(&framed).map_err(|defect| corrupt(path, 0, defect.describe().into()))?;
    let (last_included, membership, data_bytes): (LogId, Membership, [u8; 8]) =
        crate::codec::decode(payload).map_err(|message| corrupt(path, 0, message))?;
    Ok(SnapshotMeta {
        last_included,
        membership,
        data_bytes: u64::from_le_bytes(data_bytes),
    })
}

/// Reads a whole snapshot file and checks it; returns its metadata.
fn verify(path: &Path) -> Result<SnapshotMeta, StorageError> {
    let mut file = BufReader::new(File::open(path).map_err(io_error("open snapshot"))?);
    let meta = read_meta(&mut file, path)?;
    if parse_file_name(path) != Some(meta.last_included) {
        return Err(corrupt(path, 0, "name and metadata disagree".into()));
    }
    let mut reader = SnapshotReader {
        file,
        left: meta.data_bytes,
        crc: Crc32c::default(),
        path: path.to_path_buf(),
    };
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

fn corrupt(path: &Path, offset: u64, reason: String) -> StorageError {
    StorageError::Corrupt {
        file: path.to_path_buf(),
        offset,
        reason,
    }
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error("fsync snapshot directory"))
}

fn file_name(last_included: LogId) -> String {
    format!(
        "snapshot-{:020}-{:020}.snap",
        last_included.term.0, last_included.index.0
    )
}

fn parse_file_name(path: &Path) -> Option<LogId> {
    let name = path.file_name()?.to_str()?;
    let (term, index) = name
        .strip_prefix("snapshot-")?
        .strip_suffix(".snap")?
        .split_once('-')?;
    Some(LogId::new(
        Term(term.parse().ok()?),
        LogIndex(index.parse().ok()?),
    ))
}

/// The files in `dir` with this extension.
fn list(dir: &Path, extension: &str) -> Result<Vec<PathBuf>, StorageError> {
    let mut found = Vec::new();
    for item in fs::read_dir(dir).map_err(io_error("list snapshot directory"))? {
        let path = item.map_err(io_error("list snapshot directory"))?.path();
        if path.extension().is_some_and(|ext| ext == extension) {
            found.push(path);
        }
    }
    Ok(found)
}

#[cfg(test)]
#[path = "snapshot_store_tests.rs"]
mod tests;
