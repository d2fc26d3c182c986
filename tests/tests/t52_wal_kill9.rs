//! The WAL under SIGKILL: a child process appends and reports each acknowledged index; the
//! parent kills it at a random moment, reopens the directory and checks that every acknowledged
//! entry is there, byte for byte, in a contiguous log.
//!
//! NB: this file holds only the kill loop. A process that forks (spawning the child) while
//! another thread holds a store's lock file open lends the lock to the child until it execs, so
//! lock-sensitive tests live in other test binaries.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raftor::LogStorage;
use raftor_tests::rng::{self, TestRng};
use raftor_tests::wal::{numbered_entry, open};

/// The kill loop's child reads its data directory and seed from these.
const CHILD_DIR_VAR: &str = "RAFTOR_WAL_CHILD_DIR";
const CHILD_SEED_VAR: &str = "RAFTOR_WAL_CHILD_SEED";
/// Small segments, so kills also land in rotations.
const KILL_SEGMENT_BYTES: u64 = 4096;

/// Not a test on its own: the child process of `t52_kill_9_loses_no_acknowledged_entry`. It
/// appends random batches forever and prints `ack <index>` after each append returns.
#[tokio::test]
async fn kill_loop_child() {
    let (Ok(dir), Ok(seed)) = (std::env::var(CHILD_DIR_VAR), std::env::var(CHILD_SEED_VAR)) else {
        return;
    };
    let mut rng = TestRng::new(seed.parse().expect("numeric seed"));
    let mut wal = open(Path::new(&dir), KILL_SEGMENT_BYTES)
        .await
        .expect("child opens");
    let mut next = wal.last_log_id().await.expect("last log id").index.0 + 1;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let count = 1 + rng.below(20);
        let batch = (next..next + count).map(numbered_entry).collect();
        wal.append(batch).await.expect("child appends");
        next += count;
        println!("ack {}", next - 1);
    }
}

/// Runs the child once in `dir`, kills it after `delay`, and returns the last index it
/// acknowledged (0 if none).
fn run_child_and_kill(dir: &Path, seed: u64, delay: Duration) -> u64 {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "kill_loop_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_VAR, dir)
        .env(CHILD_SEED_VAR, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let acked = Arc::new(Mutex::new(0u64));
    let reader = {
        let acked = Arc::clone(&acked);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(index) = line.strip_prefix("ack ").and_then(|n| n.parse().ok()) {
                    *acked.lock().expect("ack lock") = index;
                }
            }
        })
    };
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().expect("reader thread");
    let last = *acked.lock().expect("ack lock");
    last
}

/// A child appends and reports each acknowledged index; the parent SIGKILLs it at a random
/// moment, reopens the directory and checks that every acknowledged entry is there, byte for
/// byte, in a contiguous log. 60 rounds on one directory.
#[tokio::test]
async fn t52_kill_9_loses_no_acknowledged_entry() {
    let seed = rng::seed(51);
    let mut rng = TestRng::new(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut acked_ever = 0u64;
    let mut last_held = 0u64;
    for round in 0..60 {
        let delay = Duration::from_millis(rng.below(60));
        let acked = run_child_and_kill(dir.path(), rng.next_u64(), delay);
        acked_ever = acked_ever.max(acked);
        let mut wal = open(dir.path(), KILL_SEGMENT_BYTES)
            .await
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): reopen failed: {e}"));
        let entries = wal.load().await.expect("load").entries;
        let held = entries.len() as u64;
        assert!(
            held >= acked_ever && held >= last_held,
            "round {round} (seed {seed}): {held} entries held, {acked_ever} acknowledged, \
             {last_held} held before"
        );
        for (position, entry) in entries.iter().enumerate() {
            let expected = numbered_entry(position as u64 + 1);
            assert_eq!(
                entry, &expected,
                "round {round} (seed {seed}): entry differs"
            );
        }
        last_held = held;
    }
    println!("{acked_ever} entries acknowledged, {last_held} held at the end");
    assert!(
        acked_ever > 100,
        "the children made progress: {acked_ever} entries"
    );
}
