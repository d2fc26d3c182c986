//! The data directory's lock: an exclusive `flock` on `LOCK`, which also holds the holder's
//! pid. The kernel drops the lock when its holder exits, even on SIGKILL, so a stale pid left in
//! the file never blocks a restart.
//!
//! NB: the lock belongs to the open file, not to the process. A child forked while the store is
//! open shares it until it execs (the descriptor is close-on-exec), so a process that spawns
//! children may briefly see its own directory as `Locked` when it reopens a store at that moment.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use crate::storage::StorageError;

use super::io_error;

/// The lock file's name inside the data directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Holds the data directory's lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// Closing the file releases the lock.
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir`, or names the process that holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StorageError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error("open lock file"))?;
        // SAFETY: flock takes a file descriptor that `file` keeps open for the whole call; it
        // touches no memory of ours.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(StorageError::Locked {
                    dir: dir.to_path_buf(),
                    pid: holder_pid(&file),
                });
            }
            return Err(io_error("lock data directory")(error));
        }
        file.set_len(0).map_err(io_error("write lock file"))?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(io_error("write lock file"))?;
        Ok(DirLock { _file: file })
    }
}

/// The pid the holder wrote into the lock file, if it is readable.
fn holder_pid(file: &File) -> Option<u32> {
    let mut buf = [0u8; 32];
    let read = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(buf.get(..read)?)
        .ok()?
        .trim()
        .parse()
        .ok()
}
