//! The hard-state file: term and vote as one record, replaced atomically (see `record_file`).

use std::path::Path;

use crate::core::HardState;
use crate::storage::StorageError;

use super::record_file;
use super::sync::Syncer;

/// The file's name inside the data directory.
pub(crate) const HARD_STATE_FILE: &str = "hard_state";

/// Reads the hard state, or the default (term 0, no vote) if none was ever saved.
pub(crate) fn read(dir: &Path) -> Result<HardState, StorageError> {
    Ok(record_file::read(dir, HARD_STATE_FILE)?.unwrap_or_default())
}

/// Durably replaces the hard state.
pub(crate) fn write(
    dir: &Path,
    hard_state: HardState,
    syncer: &Syncer,
) -> Result<(), StorageError> {
    record_file::replace(dir, HARD_STATE_FILE, &hard_state, syncer)
}
