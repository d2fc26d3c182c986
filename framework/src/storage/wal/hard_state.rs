//! The hard-state file: term and vote as one record, replaced atomically (write a temp file,
//! fsync it, rename it over the old one, fsync the directory). A reader sees the old file or the
//! new one, never a mix, so a checksum mismatch here is damage, not a torn write.

use std::fs::{self, File};
use std::path::Path;

use crate::core::HardState;
use crate::storage::StorageError;

use super::io_error;
use super::record;
use super::sync::Syncer;

/// The file's name inside the data directory.
pub(crate) const HARD_STATE_FILE: &str = "hard_state";
/// Where a new hard state is written before it is renamed into place.
const TEMP_FILE: &str = "hard_state.tmp";

/// Reads the hard state, or the default (term 0, no vote) if none was ever saved. Removes a
/// temp file left by a crash mid-save (its rename never happened, so it never counted).
pub(crate) fn read(dir: &Path) -> Result<HardState, StorageError> {
    let temp = dir.join(TEMP_FILE);
    if temp.exists() {
        fs::remove_file(&temp).map_err(io_error("remove stale hard state temp file"))?;
    }
    let path = dir.join(HARD_STATE_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HardState::default()),
        Err(e) => return Err(io_error("read hard state")(e)),
    };
    let corrupt = |reason: String| StorageError::Corrupt {
        file: path.clone(),
        offset: 0,
        reason,
    };
    let (payload, end) = record::decode(&bytes).map_err(|d| corrupt(d.describe().into()))?;
    if end != bytes.len() {
        return Err(corrupt(format!(
            "{} bytes after the record",
            bytes.len() - end
        )));
    }
    crate::codec::decode(payload).map_err(corrupt)
}

/// Durably replaces the hard state.
pub(crate) fn write(
    dir: &Path,
    hard_state: HardState,
    syncer: &Syncer,
) -> Result<(), StorageError> {
    let payload = crate::codec::encode(&hard_state).map_err(StorageError::Invalid)?;
    let mut buf = Vec::with_capacity(record::framed_len(payload.len()));
    record::encode_into(&mut buf, &payload);
    let temp = dir.join(TEMP_FILE);
    let file = File::create(&temp).map_err(io_error("create hard state temp file"))?;
    syncer.write_at(&file, &buf, 0)?;
    syncer.sync_file(&file)?;
    fs::rename(&temp, dir.join(HARD_STATE_FILE)).map_err(io_error("rename hard state"))?;
    syncer.sync_dir(dir)
}
