//! Small files of one record each (`hard_state`, `log_base`), replaced atomically: write a temp
//! file, fsync it, rename it over the old one, fsync the directory. A reader sees the old file
//! or the new one, never a mix, so a checksum mismatch in one is damage, not a torn write.

use std::fs::{self, File};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::storage::StorageError;

use super::io_error;
use super::record;
use super::sync::Syncer;

/// The temp file a new version of `name` is written to before its rename.
fn temp_name(name: &str) -> String {
    format!("{name}.tmp")
}

/// Reads the value in `dir/name`, or `None` if the file does not exist. Removes a temp file left
/// by a crash mid-replace (its rename never happened, so it never counted).
pub(crate) fn read<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, StorageError> {
    let temp = dir.join(temp_name(name));
    if temp.exists() {
        fs::remove_file(&temp).map_err(io_error("remove a stale temp file"))?;
    }
    let path = dir.join(name);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read a record file")(e)),
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
    crate::codec::decode(payload).map(Some).map_err(corrupt)
}

/// Durably replaces `dir/name` by a file holding `value`.
pub(crate) fn replace<T: Serialize>(
    dir: &Path,
    name: &str,
    value: &T,
    syncer: &Syncer,
) -> Result<(), StorageError> {
    let payload = crate::codec::encode(value).map_err(StorageError::Invalid)?;
    let mut buf = Vec::with_capacity(record::framed_len(payload.len()));
    record::encode_into(&mut buf, &payload);
    let temp = dir.join(temp_name(name));
    let file = File::create(&temp).map_err(io_error("create a temp file"))?;
    syncer.write_at(&file, &buf, 0)?;
    syncer.sync_file(&file)?;
    fs::rename(&temp, dir.join(name)).map_err(io_error("rename a temp file into place"))?;
    syncer.sync_dir(dir)
}
