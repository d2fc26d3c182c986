//! Helpers for the write-ahead log tests: entries whose bytes follow from their index, so a test
//! can check every byte after a crash, and opening a store with the options a test needs.

use std::path::Path;
use std::sync::Arc;

use raftor::{
    Entry, EntryPayload, FaultInjector, LogId, LogIndex, StorageError, Term, WalOptions, WalStorage,
};

/// Entry `index`: its payload length (0..300 bytes) and bytes follow from the index.
pub fn numbered_entry(index: u64) -> Entry {
    let len = (index * 37 % 300) as usize;
    let payload: Vec<u8> = (0..len).map(|i| (index as usize * 7 + i) as u8).collect();
    Entry {
        log_id: LogId::new(Term(1), LogIndex(index)),
        payload: EntryPayload::Command(Arc::from(payload)),
    }
}

/// Opens the store in `dir` with segments of `segment_bytes`.
pub async fn open(dir: &Path, segment_bytes: u64) -> Result<WalStorage, StorageError> {
    let options = WalOptions {
        segment_bytes,
        ..WalOptions::default()
    };
    WalStorage::open(dir, options).await
}

/// Opens the store in `dir` with a fault injector the test controls.
pub async fn open_with_faults(dir: &Path) -> (WalStorage, FaultInjector) {
    let faults = FaultInjector::default();
    let options = WalOptions {
        faults: faults.clone(),
        ..WalOptions::default()
    };
    let wal = WalStorage::open(dir, options).await.expect("open");
    (wal, faults)
}

/// Opens the store in `dir` with segments of `segment_bytes` and a fault injector the test
/// controls.
pub async fn open_sized_with_faults(dir: &Path, segment_bytes: u64) -> (WalStorage, FaultInjector) {
    let faults = FaultInjector::default();
    let options = WalOptions {
        segment_bytes,
        faults: faults.clone(),
    };
    let wal = WalStorage::open(dir, options).await.expect("open");
    (wal, faults)
}
