//! The protocol core stays sans-IO (design.md): no async runtime, no actor system, no clock, no
//! thread, socket or file, no unseeded randomness, and no hash-ordered collections whose
//! iteration could leak into outputs. This test reads every source file under `src/core/` and
//! fails naming the file, line and forbidden item.

use std::fs;
use std::path::{Path, PathBuf};

/// Forbidden item, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("tokio", "async runtime"),
    ("actix", "actor system"),
    ("futures", "async machinery"),
    ("async fn", "async code"),
    (".await", "async code"),
    ("Instant", "wall clock"),
    ("SystemTime", "wall clock"),
    ("std::time", "wall clock"),
    ("std::thread", "threads"),
    ("std::net", "sockets"),
    ("std::fs", "files"),
    ("std::io", "IO"),
    ("std::env", "environment"),
    ("thread_rng", "unseeded randomness"),
    ("rand::", "unseeded randomness"),
    ("getrandom", "unseeded randomness"),
    ("HashMap", "iteration order is random: use BTreeMap"),
    ("HashSet", "iteration order is random: use BTreeSet"),
];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            // Tests of the core may use the environment (seeds from env vars) and files (golden
            // scripts); they are not part of the core.
            if path.file_name().is_some_and(|name| name == "tests") {
                continue;
            }
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The code part of a line: comments removed.
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(position) => &line[..position],
        None => line,
    }
}

#[test]
fn core_is_sans_io() {
    let core_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut files = Vec::new();
    rust_files(&core_dir, &mut files);
    assert!(
        files.len() >= 8,
        "expected the core's source files under {}",
        core_dir.display()
    );
    assert_sans_io(&files, "the core");
}

/// The action driver (`src/driver/`) is shared by the actor and the simulator, which runs it on
/// simulated time in one thread: it must obey the core's rules too.
#[test]
fn driver_is_sans_io() {
    let driver_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/driver");
    let mut files = Vec::new();
    rust_files(&driver_dir, &mut files);
    assert!(
        files.len() >= 2,
        "expected the driver's source files under {}",
        driver_dir.display()
    );
    assert_sans_io(&files, "the driver");
}

fn assert_sans_io(files: &[PathBuf], what: &str) {
    let mut offences = Vec::new();
    for file in files {
        let text = fs::read_to_string(file).expect("readable source");
        for (number, line) in text.lines().enumerate() {
            let code = code_of(line);
            for (item, why) in FORBIDDEN {
                if code.contains(item) {
                    offences.push(format!(
                        "{}:{}: `{item}` ({why})",
                        file.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "{what} must stay sans-IO:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_scan_catches_a_forbidden_item() {
    let code = code_of("    let now = std::time::Instant::now(); // a clock");
    assert!(FORBIDDEN.iter().any(|(item, _)| code.contains(item)));
    assert!(!code_of("// tokio is mentioned only in a comment").contains("tokio"));
}
