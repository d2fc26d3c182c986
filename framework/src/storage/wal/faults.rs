//! Fault injection for tests (`testing` feature): make the WAL's next write fail as on a full
//! disk, or its next fsync fail, to check that the failure stops the node and poisons the store.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A switch shared between a test and a WAL (pass it in [`super::WalOptions`]). Off by default.
#[derive(Debug, Clone)]
pub struct FaultInjector {
    inner: Arc<Countdowns>,
}

/// How many more operations succeed before one fails; negative means never.
#[derive(Debug)]
struct Countdowns {
    syncs: AtomicI64,
    writes: AtomicI64,
}

impl Default for FaultInjector {
    fn default() -> Self {
        FaultInjector {
            inner: Arc::new(Countdowns {
                syncs: AtomicI64::new(-1),
                writes: AtomicI64::new(-1),
            }),
        }
    }
}

impl FaultInjector {
    /// The next `healthy` fsyncs succeed; the one after fails (once).
    pub fn fail_sync_after(&self, healthy: u64) {
        self.inner
            .syncs
            .store(as_countdown(healthy), Ordering::SeqCst);
    }

    /// The next `healthy` writes succeed; the one after writes half its bytes and fails with
    /// "no space left on device" (once).
    pub fn fail_write_after(&self, healthy: u64) {
        self.inner
            .writes
            .store(as_countdown(healthy), Ordering::SeqCst);
    }

    pub(crate) fn take_sync_failure(&self) -> bool {
        take(&self.inner.syncs)
    }

    pub(crate) fn take_write_failure(&self) -> bool {
        take(&self.inner.writes)
    }
}

fn as_countdown(healthy: u64) -> i64 {
    i64::try_from(healthy).unwrap_or(i64::MAX)
}

/// Counts one operation down; true when it is the one that fails.
fn take(countdown: &AtomicI64) -> bool {
    let previous = countdown
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            (left >= 0).then_some(left - 1)
        })
        .unwrap_or(-1);
    previous == 0
}
