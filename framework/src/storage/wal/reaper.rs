//! [`Reaper`]: deletes purged segment files on a thread of its own, oldest first, a few
//! mebibytes at a time.
//!
//! Deleting a 64 MiB segment took 77 ms on the benchmark machine's ext4 (the file system frees
//! its blocks in the unlink), and on the IO thread every append waited behind it: raftor-kv's
//! p99.9 at 64 clients was 200-440 ms in most runs. A purge is durable once its new base is
//! written (`log_base`); the files below it only take space, so the IO thread hands their paths
//! to the reaper and goes on.
//!
//! Off the IO thread the unlink still stalled the log: on a file system mounted with `discard`
//! (the benchmark machine's, and many cloud disks'), freeing 64 MiB discards them in one go,
//! and every `fdatasync` of the same disk waited for it — 40-46 ms in a test beside a
//! fsync loop, and 100-160 ms of raftor-kv's p99.9 when the three nodes of a cluster on one
//! disk purged at once. So the reaper renames a segment out of the log (`*.wal.purged`, a name
//! recovery does not read), cuts it [`SHRINK_STEP`] (2 MiB) at a time with a 10 ms pause after
//! each cut, and only then unlinks it: in the same test the longest fsync was 2.5-2.9 ms, and a
//! 64 MiB segment took 0.4 s to go. (4 MiB with 2 ms pauses: 4.4 ms, but raftor-kv's p99 rose, as
//! the disk spent most of those 80 ms discarding.)
//!
//! The reaper deletes in the order it is given, oldest segment first, so a crash at any moment
//! leaves a contiguous run of segments, some wholly below the base: recovery reads those like any
//! other (the first segment may hold purged entries) and the next purge deletes them. For the
//! same reason it does not fsync the directory: a rename or deletion the crash undid is one of
//! those. A renamed segment a crash left behind is deleted by the next open
//! ([`Reaper::remove_leftovers`]). A failed deletion is logged and left to the next open.
//! Dropping the reaper waits for it to finish, so once the engine is gone nothing touches the
//! directory.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Appended to a purged segment's name before it is cut and deleted.
const PURGED_SUFFIX: &str = ".purged";

/// A purged segment is cut by this many bytes at a time before it is unlinked.
pub(crate) const SHRINK_STEP: u64 = 2 << 20;

/// The pause after each cut, which lets the log's fsyncs through.
const SHRINK_PAUSE: Duration = Duration::from_millis(10);

/// The thread that deletes purged segments, and the queue to it.
pub(crate) struct Reaper {
    paths: Option<mpsc::Sender<PathBuf>>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    pub(crate) fn new() -> Reaper {
        Reaper {
            paths: None,
            thread: None,
        }
    }

    /// Deletes `path`, after every path given before it. Starts the thread on first use; with
    /// no thread (it could not start), deletes inline.
    pub(crate) fn remove(&mut self, path: PathBuf) {
        if self.paths.is_none() {
            self.start();
        }
        match &self.paths {
            Some(paths) => {
                if let Err(mpsc::SendError(path)) = paths.send(path) {
                    delete(&path);
                }
            }
            None => delete(&path),
        }
    }

    fn start(&mut self) {
        let (tx, rx) = mpsc::channel::<PathBuf>();
        let spawned = std::thread::Builder::new()
            .name("raftor-wal-reaper".into())
            .spawn(move || {
                for path in rx {
                    delete(&path);
                }
            });
        match spawned {
            Ok(thread) => {
                self.paths = Some(tx);
                self.thread = Some(thread);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot start the WAL's reaper thread; deleting inline");
            }
        }
    }
}

impl Reaper {
    /// Hands over the renamed segments in `dir` that a crash left undeleted.
    pub(crate) fn remove_leftovers(&mut self, dir: &Path) {
        let Ok(items) = fs::read_dir(dir) else {
            return;
        };
        let mut leftovers: Vec<PathBuf> = items
            .filter_map(|item| item.ok().map(|item| item.path()))
            .filter(|path| is_renamed(path))
            .collect();
        leftovers.sort();
        for path in leftovers {
            self.remove(path);
        }
    }
}

fn is_renamed(path: &Path) -> bool {
    path.to_str()
        .is_some_and(|name| name.ends_with(PURGED_SUFFIX))
}

/// Renames the segment out of the log (unless it already is), cuts it down, and unlinks it.
fn delete(path: &Path) {
    let renamed = if is_renamed(path) {
        path.to_path_buf()
    } else {
        let mut name = path.as_os_str().to_owned();
        name.push(PURGED_SUFFIX);
        let renamed = PathBuf::from(name);
        if let Err(error) = fs::rename(path, &renamed) {
            tracing::warn!(path = %path.display(), %error, "renaming a purged WAL segment failed");
            return unlink(path);
        }
        renamed
    };
    if let Err(error) = shrink(&renamed) {
        tracing::warn!(path = %renamed.display(), %error, "cutting a purged WAL segment failed");
    }
    unlink(&renamed);
}

/// Cuts the file down to at most `SHRINK_STEP` bytes, a step at a time.
fn shrink(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    let mut len = file.metadata()?.len();
    while len > SHRINK_STEP {
        len = (len - 1) / SHRINK_STEP * SHRINK_STEP;
        file.set_len(len)?;
        std::thread::sleep(SHRINK_PAUSE);
    }
    Ok(())
}

fn unlink(path: &Path) {
    if let Err(error) = fs::remove_file(path) {
        tracing::warn!(path = %path.display(), %error, "deleting a purged WAL segment failed");
    }
}

/// Waits until every path handed over is deleted.
impl Drop for Reaper {
    fn drop(&mut self) {
        self.paths = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(path: &Path, len: u64) {
        let file = fs::File::create(path).expect("create");
        file.set_len(len).expect("size");
    }

    #[test]
    fn shrinking_cuts_a_step_at_a_time_down_to_one_step() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("segment");
        file_of(&path, 2 * SHRINK_STEP + 5);
        shrink(&path).expect("shrink");
        assert_eq!(fs::metadata(&path).expect("stat").len(), SHRINK_STEP);
        file_of(&path, 7);
        shrink(&path).expect("shrink");
        assert_eq!(
            fs::metadata(&path).expect("stat").len(),
            7,
            "small files stay"
        );
    }

    #[test]
    fn a_deleted_segment_leaves_no_file_under_either_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("00000000000000000001.wal");
        file_of(&path, SHRINK_STEP + 1);
        let mut reaper = Reaper::new();
        reaper.remove(path);
        drop(reaper);
        let left: Vec<_> = fs::read_dir(dir.path()).expect("list").collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn leftovers_are_the_renamed_segments_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let segment = dir.path().join("00000000000000000009.wal");
        file_of(&segment, 3);
        file_of(&dir.path().join("00000000000000000001.wal.purged"), 3);
        let mut reaper = Reaper::new();
        reaper.remove_leftovers(dir.path());
        drop(reaper);
        let left: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|item| item.ok().map(|item| item.path()))
            .collect();
        assert_eq!(left, vec![segment]);
    }
}
