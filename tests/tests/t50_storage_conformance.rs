//! Every storage implementation passes the conformance suite (`raftor::storage::conformance`):
//! the in-memory store, and the WAL with its default segment size and with segments so small
//! that every check crosses many of them (rotation, truncation, purge and reset across files).
//! Every snapshot store passes the snapshot suite (`conformance::snapshots`): `MemSnapshots` and
//! the durable `SnapshotStore`.

use async_trait::async_trait;
use raftor::storage::conformance::snapshots::{self as snapshot_conformance, SnapshotFactory};
use raftor::storage::conformance::{self, StoreFactory};
use raftor::storage::{MemSnapshots, SnapshotStore};
use raftor::{MemStorage, WalOptions, WalStorage};
use tempfile::TempDir;

/// Fresh in-memory stores; a reopen hands back a clone (clones share the data).
#[derive(Default)]
struct MemFactory {
    current: MemStorage,
}

#[async_trait]
impl StoreFactory for MemFactory {
    type Store = MemStorage;

    async fn create(&mut self) -> MemStorage {
        self.current = MemStorage::new();
        self.current.clone()
    }

    async fn reopen(&mut self) -> MemStorage {
        self.current.clone()
    }
}

// ANCHOR: wal_factory
/// A fresh directory under one temp dir per store; a reopen opens the same directory again.
struct WalFactory {
    root: TempDir,
    created: u32,
    segment_bytes: u64,
}

impl WalFactory {
    fn new(segment_bytes: u64) -> WalFactory {
        WalFactory {
            root: tempfile::tempdir().expect("temp dir"),
            created: 0,
            segment_bytes,
        }
    }

    async fn open(&self) -> WalStorage {
        let dir = self.root.path().join(format!("store-{}", self.created));
        let options = WalOptions {
            segment_bytes: self.segment_bytes,
            ..WalOptions::default()
        };
        WalStorage::open(&dir, options)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
    }
}

#[async_trait]
impl StoreFactory for WalFactory {
    type Store = WalStorage;

    async fn create(&mut self) -> WalStorage {
        self.created += 1;
        self.open().await
    }

    async fn reopen(&mut self) -> WalStorage {
        self.open().await
    }
}

#[tokio::test]
async fn t50_wal_storage_conforms() {
    conformance::run_all(&mut WalFactory::new(WalOptions::default().segment_bytes)).await;
}
// ANCHOR_END: wal_factory

#[tokio::test]
async fn t50_mem_storage_conforms() {
    conformance::run_all(&mut MemFactory::default()).await;
}

/// About four entries per segment: every check spans segments.
#[tokio::test]
async fn t50_wal_storage_with_tiny_segments_conforms() {
    conformance::run_all(&mut WalFactory::new(128)).await;
}

/// Fresh in-memory snapshot stores; a reopen hands back a clone (clones share the data) after
/// forgetting the partial snapshot, as a restart would.
#[derive(Default)]
struct MemSnapshotsFactory {
    current: MemSnapshots,
}

impl SnapshotFactory for MemSnapshotsFactory {
    type Store = MemSnapshots;

    fn create(&mut self) -> MemSnapshots {
        self.current = MemSnapshots::new();
        self.current.clone()
    }

    fn reopen(&mut self) -> MemSnapshots {
        self.current.crash();
        self.current.clone()
    }
}

/// A fresh snapshot directory per store; a reopen opens the same directory again.
struct SnapshotStoreFactory {
    root: TempDir,
    created: u32,
}

impl SnapshotStoreFactory {
    fn open(&self) -> SnapshotStore {
        let dir = self.root.path().join(format!("snapshots-{}", self.created));
        SnapshotStore::open(&dir).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
    }
}

impl SnapshotFactory for SnapshotStoreFactory {
    type Store = SnapshotStore;

    fn create(&mut self) -> SnapshotStore {
        self.created += 1;
        self.open()
    }

    fn reopen(&mut self) -> SnapshotStore {
        self.open()
    }
}

#[test]
fn t50_mem_snapshots_conform() {
    snapshot_conformance::run_all(&mut MemSnapshotsFactory::default());
}

#[test]
fn t50_snapshot_store_conforms() {
    snapshot_conformance::run_all(&mut SnapshotStoreFactory {
        root: tempfile::tempdir().expect("temp dir"),
        created: 0,
    });
}
