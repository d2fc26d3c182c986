//! The `log_base` file: where the log starts. One record, replaced atomically (see
//! `record_file`), holding a [`LogBase`].
//!
//! - **Purge** writes the new purge point here *before* it deletes any segment, so after a
//!   restart the purged prefix stays purged (even when segments holding it survive) and the last
//!   log id is known even when every entry was purged.
//! - **Reset** uses it as its commit point: writing `resetting: true` is the moment the old log
//!   stops counting. Recovery that finds the flag set finishes the reset (deletes every segment,
//!   clears the flag) before it reads anything.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::storage::StorageError;
use crate::types::LogId;

use super::record_file;
use super::sync::Syncer;

/// The file's name inside the data directory.
pub(crate) const LOG_BASE_FILE: &str = "log_base";

/// Where the log starts, durably.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LogBase {
    /// The last purged (or snapshot-covered) entry: entries at or below its index are gone for
    /// readers, and it is the last log id while no entry follows it. `0@0` if none.
    pub base: LogId,
    /// A reset to `base` is under way: every segment on disk belongs to the old log. Set only
    /// between the reset's commit point and the deletion of the old segments.
    pub resetting: bool,
}

/// Reads the log base, or the default (`0@0`, not resetting) if none was ever written.
pub(crate) fn read(dir: &Path) -> Result<LogBase, StorageError> {
    Ok(record_file::read(dir, LOG_BASE_FILE)?.unwrap_or_default())
}

/// Durably replaces the log base.
pub(crate) fn write(dir: &Path, base: LogBase, syncer: &Syncer) -> Result<(), StorageError> {
    record_file::replace(dir, LOG_BASE_FILE, &base, syncer)
}
