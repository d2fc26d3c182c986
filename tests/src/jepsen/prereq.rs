//! What the fault tests need, checked before anything starts: root, a working `iptables`, the
//! loopback addresses 127.0.0.1..5, and an up-to-date `raftor-kv` binary. Whatever is missing is
//! named, so a test that cannot run fails with the reason rather than passing silently.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::firewall::iptables;

/// Set to `1` to skip the fault tests where they cannot run (not root, no iptables).
pub const SKIP_VAR: &str = "RAFTOR_FAULTS_SKIP";

/// Set to `1` to make missing prerequisites a failure even when not root (CI sets it).
pub const REQUIRED_VAR: &str = "RAFTOR_FAULTS_REQUIRED";

/// Whether a run that cannot happen must fail: as root (who can install what is missing), or
/// when asked to; otherwise (a newcomer's `cargo test --workspace` as a normal user) the test
/// says loudly what it needs and does not run.
pub fn must_run() -> bool {
    let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
    if flag(SKIP_VAR) {
        return false;
    }
    // SAFETY: geteuid(2) has no preconditions.
    flag(REQUIRED_VAR) || unsafe { libc::geteuid() } == 0
}

/// Overrides where the `raftor-kv` binary is.
pub const BIN_VAR: &str = "RAFTOR_KV_BIN";

/// Checks every prerequisite; returns the `raftor-kv` binary, or everything that is missing.
pub fn check(highest_ip: u8) -> Result<PathBuf, Vec<String>> {
    let mut missing = Vec::new();
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (iptables rules and the nemesis need it): run as root".to_string());
    }
    if let Err(error) = iptables(&["-S", "INPUT"]) {
        missing.push(format!(
            "a working iptables (`apt-get install -y iptables`): {error:#}"
        ));
    }
    for n in 1..=highest_ip {
        let ip = Ipv4Addr::new(127, 0, 0, n);
        if let Err(error) = TcpListener::bind((ip, 0)) {
            missing.push(format!("the loopback address {ip} ({error})"));
        }
    }
    match kv_binary() {
        Ok(exe) if missing.is_empty() => Ok(exe),
        Ok(_) => Err(missing),
        Err(reason) => {
            missing.push(reason);
            Err(missing)
        }
    }
}

/// The `raftor-kv` binary: `$RAFTOR_KV_BIN`, else the one cargo built next to this test's
/// directory (`target/<profile>/raftor-kv`, built by `cargo test --workspace` for raftor-kv's
/// own tests). It must be newer than every source file of raftor-kv and raftor, or the tests
/// would exercise stale code.
fn kv_binary() -> Result<PathBuf, String> {
    let exe = match std::env::var_os(BIN_VAR) {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()
            .ok()
            .and_then(|test| Some(test.parent()?.parent()?.join("raftor-kv")))
            .ok_or("cannot locate the target directory")?,
    };
    let built = std::fs::metadata(&exe).and_then(|meta| meta.modified());
    let Ok(built) = built else {
        return Err(format!(
            "the raftor-kv binary at {} (build it: `cargo build -p raftor-kv`, or set {BIN_VAR})",
            exe.display()
        ));
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sources = [
        workspace.join("examples/kv/src"),
        workspace.join("framework/src"),
    ];
    let newest = sources.iter().filter_map(|dir| newest_file(dir)).max();
    match newest {
        Some((time, file)) if time > built => Err(format!(
            "an up-to-date raftor-kv binary: {} is older than {} (run `cargo build -p raftor-kv`)",
            exe.display(),
            file.display()
        )),
        _ => Ok(exe),
    }
}

/// The most recently modified file under `dir`, recursively.
fn newest_file(dir: &Path) -> Option<(SystemTime, PathBuf)> {
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let candidate = if path.is_dir() {
            newest_file(&path)
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (t, path))
        };
        if let Some(candidate) = candidate {
            if newest.as_ref().is_none_or(|(time, _)| candidate.0 > *time) {
                newest = Some(candidate);
            }
        }
    }
    newest
}
