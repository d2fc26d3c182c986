//! [`SnapshotStorage`]: where a node keeps its snapshots, and [`MemSnapshots`], the in-memory one.
//!
//! A snapshot may be larger than memory, so its data is streamed: built snapshots are written
//! from the state machine's [`SnapshotData`] reader, sent ones are read back a chunk at a time,
//! and received ones are written a chunk at a time into a *partial* snapshot that becomes the
//! latest only when complete:
//!
//! ```text
//!  state machine image ──save──► latest ──open_chunks──► InstallSnapshot chunks ──► peer
//!                                  ▲ └────open──► restore into the state machine (restart)
//!  chunks from the leader ──write_partial──► partial ──install_partial──┘
//! ```
//!
//! The methods block on IO: the node calls them from blocking threads (never on its actor), so
//! building, sending and receiving run beside applying and replication. They take `&self`
//! because they do run beside each other: one build, several sends, one receive.

use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::membership::Membership;
use crate::types::{LogId, SnapshotMeta};

use super::StorageError;

/// A snapshot's data, streamed: read it to its end.
pub type SnapshotData = Box<dyn Read + Send>;

// ANCHOR: snapshot_storage
/// Durable storage of one node's snapshots. The latest complete snapshot is what a restart
/// restores and what the node sends to followers that fell behind its log.
pub trait SnapshotStorage: Send + Sync + 'static {
    /// The latest complete, durable snapshot, if any.
    fn latest(&self) -> Result<Option<SnapshotMeta>, StorageError>;

    /// Durably stores a snapshot this node built, reading `data` to its end; it becomes the
    /// latest, unless a newer one is already stored (then it is dropped, and the newer one's
    /// metadata returned). Older snapshots may be removed. Returns the stored metadata, with
    /// `size_bytes` set.
    fn save(
        &self,
        last_included: LogId,
        membership: Membership,
        data: &mut dyn Read,
    ) -> Result<SnapshotMeta, StorageError>;

    /// A handle on the data of the snapshot ending at `last_included`, for sending it in
    /// chunks; `Ok(None)` if that snapshot is no longer held. The data stays readable through
    /// the handle while it is held, even after a newer snapshot replaced it (a store may not
    /// free the space until then): a leader that compacts faster than a slow follower
    /// downloads must not restart the follower's transfer with every new snapshot.
    fn open_chunks(
        &self,
        last_included: LogId,
    ) -> Result<Option<Arc<dyn SnapshotChunks>>, StorageError>;

    /// The data of the snapshot `meta` describes, streamed; `Ok(None)` if it is no longer held.
    fn open(&self, meta: &SnapshotMeta) -> Result<Option<SnapshotData>, StorageError>;

    /// Writes a chunk of a snapshot being received at `offset`. Offset 0 starts a new partial
    /// snapshot, discarding any other; other offsets continue the partial snapshot of the same
    /// `meta` exactly at its end (else `Invalid`). A chunk that would run past
    /// `meta.size_bytes` is `Invalid`. Not durable until `install_partial`.
    fn write_partial(
        &self,
        meta: &SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> Result<(), StorageError>;

    /// Makes the complete partial snapshot `meta` durable as the latest (`Invalid` if no partial
    /// snapshot of `meta` holds exactly `meta.size_bytes` bytes).
    fn install_partial(&self, meta: &SnapshotMeta) -> Result<(), StorageError>;
}

/// Random access to one snapshot's data, from [`SnapshotStorage::open_chunks`].
pub trait SnapshotChunks: Send + Sync + 'static {
    /// Up to `len` bytes from `offset` (fewer at the end, none past it).
    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, StorageError>;
}
// ANCHOR_END: snapshot_storage

/// In-memory [`SnapshotStorage`], for tests and examples. Clones share one store, so a test can
/// "crash" a node and hand the same snapshots to its restarted incarnation; a partial snapshot
/// is forgotten by [`MemSnapshots::crash`].
#[derive(Debug, Clone, Default)]
pub struct MemSnapshots {
    inner: Arc<Mutex<MemInner>>,
}

#[derive(Debug, Default)]
struct MemInner {
    latest: Option<(SnapshotMeta, Arc<[u8]>)>,
    partial: Option<(SnapshotMeta, Vec<u8>)>,
    /// Snapshots received and installed (for tests).
    installed: u64,
}

impl MemSnapshots {
    /// An empty store.
    pub fn new() -> MemSnapshots {
        MemSnapshots::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemInner> {
        // Every operation finishes its mutation in one step: a panic cannot leave it half-done.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets the partial snapshot, as a crash would.
    pub fn crash(&self) {
        self.lock().partial = None;
    }

    /// How many received snapshots were installed (for tests).
    pub fn installed(&self) -> u64 {
        self.lock().installed
    }

    /// The latest snapshot's data (for tests).
    pub fn latest_data(&self) -> Option<Vec<u8>> {
        self.lock().latest.as_ref().map(|(_, data)| data.to_vec())
    }
}

impl SnapshotStorage for MemSnapshots {
    fn latest(&self) -> Result<Option<SnapshotMeta>, StorageError> {
        Ok(self.lock().latest.as_ref().map(|(meta, _)| meta.clone()))
    }

    fn save(
        &self,
        last_included: LogId,
        membership: Membership,
        data: &mut dyn Read,
    ) -> Result<SnapshotMeta, StorageError> {
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes)
            .map_err(super::wal::io_error("read snapshot data"))?;
        let meta = SnapshotMeta {
            last_included,
            membership,
            size_bytes: bytes.len() as u64,
        };
        let mut inner = self.lock();
        if let Some((newer, _)) = inner
            .latest
            .as_ref()
            .filter(|(latest, _)| latest.last_included.index > last_included.index)
        {
            return Ok(newer.clone());
        }
        inner.latest = Some((meta.clone(), Arc::from(bytes)));
        Ok(meta)
    }

    fn open_chunks(
        &self,
        last_included: LogId,
    ) -> Result<Option<Arc<dyn SnapshotChunks>>, StorageError> {
        let inner = self.lock();
        let held = inner
            .latest
            .as_ref()
            .filter(|(meta, _)| meta.last_included == last_included);
        Ok(held.map(|(_, data)| -> Arc<dyn SnapshotChunks> {
            Arc::new(SharedBytes(Arc::clone(data), 0))
        }))
    }

    fn open(&self, meta: &SnapshotMeta) -> Result<Option<SnapshotData>, StorageError> {
        let inner = self.lock();
        Ok(inner
            .latest
            .as_ref()
            .filter(|(latest, _)| latest == meta)
            .map(|(_, data)| -> SnapshotData { Box::new(SharedBytes(Arc::clone(data), 0)) }))
    }

    fn write_partial(
        &self,
        meta: &SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> Result<(), StorageError> {
        let mut inner = self.lock();
        if offset == 0 {
            inner.partial = Some((meta.clone(), Vec::new()));
        }
        match inner.partial.as_mut() {
            Some((partial, bytes))
                if partial == meta
                    && bytes.len() as u64 == offset
                    && offset.saturating_add(data.len() as u64) <= meta.size_bytes =>
            {
                bytes.extend_from_slice(data);
                Ok(())
            }
            _ => Err(StorageError::Invalid(format!(
                "snapshot chunk at {offset} of {} does not continue the partial snapshot",
                meta.last_included
            ))),
        }
    }

    fn install_partial(&self, meta: &SnapshotMeta) -> Result<(), StorageError> {
        let mut inner = self.lock();
        match inner.partial.take() {
            Some((partial, bytes)) if partial == *meta && bytes.len() as u64 == meta.size_bytes => {
                inner.latest = Some((partial, Arc::from(bytes)));
                inner.installed += 1;
                Ok(())
            }
            other => {
                inner.partial = other;
                Err(StorageError::Invalid(format!(
                    "no complete partial snapshot of {} to install",
                    meta.last_included
                )))
            }
        }
    }
}

/// Reads shared bytes from a position.
struct SharedBytes(Arc<[u8]>, usize);

impl SnapshotChunks for SharedBytes {
    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, StorageError> {
        let size = self.0.len();
        let start = usize::try_from(offset).map_or(size, |offset| offset.min(size));
        let end = usize::try_from(offset.saturating_add(len)).map_or(size, |end| end.min(size));
        Ok(self.0[start..end.max(start)].to_vec())
    }
}

impl Read for SharedBytes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.0[self.1.min(self.0.len())..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.1 += n;
        Ok(n)
    }
}
