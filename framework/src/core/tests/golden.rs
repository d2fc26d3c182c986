//! Golden scripts: Raft scenarios written as text, run against an in-memory [`Cluster`], with the
//! expected output checked in next to them (`framework/src/core/testdata/*.txt`).
//!
//! # Format
//!
//! In the style of etcd's `datadriven` tests: a command line, a `----` line, the expected output,
//! and a blank line ending the block. Lines starting with `#` between blocks are comments, copied
//! through unchanged when the files are rewritten. A command with nothing to say prints `ok`.
//!
//! ```text
//! # Node 1's election timeout fires; it asks for pre-votes.
//! campaign 1
//! ----
//! 1: send 2 PreVote term=1 last=0@1
//! 1: send 3 PreVote term=1 last=0@1
//! ```
//!
//! Output lines are the actions the cluster executed (`N: <action>`, node N acting), formatted by
//! [`crate::core::testkit::format_action`]. A delivered message prints as `A->B <message>` with the
//! actions it caused indented below it.
//!
//! # Commands
//!
//! Nodes are numbered from 1. `[...]` is optional; `NODES` is a list of ids, all nodes if empty.
//!
//! | command | effect |
//! |---|---|
//! | `cluster n=3 [seed=1] [pre_vote=true] [check_quorum=true] [auto_persist=true] [max_entries=1024]` | a fresh cluster (other settings: `Config::default()`) |
//! | `tick [NODES] [n=1]` | tick the nodes, in id order, `n` times |
//! | `campaign N` | tick node N alone until its election timeout fires |
//! | `deliver [from=A] [to=B] [n=K]` | deliver the matching messages in flight now (not the ones this causes), oldest first, at most K |
//! | `drop [from=A] [to=B] [n=K]` | lose the matching messages in flight |
//! | `stabilize` | persist and deliver everything, repeatedly, until nothing is left |
//! | `partition 1 2 \| 3 4 5` | cut every link between groups (unnamed nodes form one more group) |
//! | `isolate N`, `block A B`, `heal` | cut N off; cut the one-way link A->B; restore every link |
//! | `propose N TEXT [count=K]` | K client commands in one batch to node N (request ids r1, r2, ...) |
//! | `crash N`, `restart N` | lose N's volatile state and unsynced writes; start it from its disk |
//! | `persist N [n=K]` | make N's oldest K pending writes durable (all if no `n`) |
//! | `status [NODES]` | role, term, vote, leader, last log id, commit, applied (and persisted if behind) |
//! | `log [NODES]` | the log ids, runs of one term shortened to `t@a..t@b` |
//! | `network` | the messages in flight, oldest first |
//! | `progress N` | leader N's view of each follower: match, next, probe/replicate |
//! | `expect NODES key=value...` | assert `role`, `term`, `vote`, `leader`, `commit`, `applied`, `last`, `persisted`, `up` |
//!
//! A delivery over a blocked link, or to a crashed node, prints the message with `(lost: ...)`.
//!
//! # What fails a script
//!
//! - Output that differs from the expected text (every differing block is reported).
//! - An `expect` that does not hold, a malformed command, or a broken safety invariant: the
//!   cluster is checked by [`InvariantChecker`] after every tick, delivery, write and proposal.
//!   These fail even while rewriting, so a careless regeneration cannot bless them (the file is
//!   still rewritten up to the failing command, to show what led to it).
//!
//! # Regenerating
//!
//! ```text
//! RAFTOR_REWRITE_GOLDEN=1 cargo test -p raftor --features testing golden
//! git diff framework/src/core/testdata   # review every change against the Raft rules
//! ```
//!
//! [`Cluster`]: crate::core::testkit::Cluster
//! [`InvariantChecker`]: crate::core::testkit::InvariantChecker

#[path = "golden_commands.rs"]
mod commands;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use commands::Interpreter;

use crate::types::NodeId;

/// The environment variable that makes the tests rewrite the files instead of comparing.
const REWRITE_ENV: &str = "RAFTOR_REWRITE_GOLDEN";

/// One piece of a script file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// A `#` line, kept as written.
    Comment(String),
    /// A blank line between blocks.
    Blank,
    /// A command and its expected output.
    Command {
        /// 1-based line number of the command, for messages.
        line_number: usize,
        /// The command as written.
        command: String,
        /// The expected output lines.
        expected: Vec<String>,
    },
}

/// Splits a script into items. A command must be followed by `----`; its output runs to the next
/// blank line (or the end of the file).
fn parse(text: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((number, line)) = lines.next() {
        let line_number = number + 1;
        if line.trim().is_empty() {
            items.push(Item::Blank);
        } else if line.starts_with('#') {
            items.push(Item::Comment(line.to_string()));
        } else {
            match lines.next() {
                Some((_, "----")) => {}
                _ => {
                    return Err(format!(
                        "line {line_number}: expected `----` after `{line}`"
                    ))
                }
            }
            let mut expected = Vec::new();
            while let Some((_, output)) = lines.next_if(|(_, l)| !l.trim().is_empty()) {
                expected.push(output.to_string());
            }
            // The blank line that ends the block belongs to it.
            lines.next();
            items.push(Item::Command {
                line_number,
                command: line.trim().to_string(),
                expected,
            });
        }
    }
    Ok(items)
}

/// Writes items back as a script; `parse(&render(items)) == items`.
fn render(items: &[Item]) -> String {
    let mut text = String::new();
    for (position, item) in items.iter().enumerate() {
        match item {
            Item::Comment(line) => text.push_str(&format!("{line}\n")),
            Item::Blank => text.push('\n'),
            Item::Command {
                command, expected, ..
            } => {
                text.push_str(&format!("{command}\n----\n"));
                for line in expected {
                    text.push_str(&format!("{line}\n"));
                }
                // The blank line that ends a block; the last block ends with the file.
                if position + 1 < items.len() {
                    text.push('\n');
                }
            }
        }
    }
    text
}

/// The arguments of one command: `key=value` words, and the others in order.
struct Args {
    positional: Vec<String>,
    named: BTreeMap<String, String>,
}

impl Args {
    fn parse(words: &[&str]) -> Args {
        let mut args = Args {
            positional: Vec::new(),
            named: BTreeMap::new(),
        };
        for word in words {
            match word.split_once('=') {
                Some((key, value)) => {
                    args.named.insert(key.to_string(), value.to_string());
                }
                None => args.positional.push(word.to_string()),
            }
        }
        args
    }

    /// Removes and parses `key=value`, if given.
    fn take<T: FromStr>(&mut self, key: &str) -> Result<Option<T>, String> {
        match self.named.remove(key) {
            None => Ok(None),
            Some(value) => value
                .parse()
                .map(Some)
                .map_err(|_| format!("bad value `{value}` for `{key}`")),
        }
    }

    fn take_node(&mut self, key: &str) -> Result<Option<NodeId>, String> {
        Ok(self.take::<u64>(key)?.map(NodeId))
    }
}

fn parse_node(word: &str) -> Result<NodeId, String> {
    word.parse()
        .map(NodeId)
        .map_err(|_| format!("`{word}` is not a node id"))
}

fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core/testdata")
}

/// Runs one script. Returns a report of everything that went wrong, naming the file and lines.
fn run_script(path: &Path, rewrite: bool) -> Result<(), String> {
    let file = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    let mut items = parse(&text).map_err(|e| format!("{file}: {e}"))?;
    let mut interpreter = Interpreter::new();
    let mut mismatches = String::new();
    let mut failure = None;
    for item in &mut items {
        let Item::Command {
            line_number,
            command,
            expected,
        } = item
        else {
            continue;
        };
        let actual = match interpreter.run(command) {
            Ok(actual) => actual,
            Err(error) => {
                failure = Some(format!("{file}:{line_number}: `{command}` failed: {error}"));
                break;
            }
        };
        let actual: Vec<String> = actual.lines().map(str::to_string).collect();
        if actual != *expected {
            report_mismatch(
                &mut mismatches,
                &file,
                *line_number,
                command,
                expected,
                &actual,
            );
            *expected = actual;
        }
    }
    if rewrite && !mismatches.is_empty() {
        // Also after a failure: the output up to it shows what went wrong.
        std::fs::write(path, render(&items)).map_err(|e| format!("{file}: cannot write: {e}"))?;
    }
    match failure {
        Some(failure) => Err(failure),
        None if rewrite || mismatches.is_empty() => Ok(()),
        None => Err(format!(
            "{mismatches}{file}: output differs; if the new output is right, regenerate with \
             {REWRITE_ENV}=1 and review the diff"
        )),
    }
}

fn report_mismatch(
    out: &mut String,
    file: &str,
    line_number: usize,
    command: &str,
    expected: &[String],
    actual: &[String],
) {
    let first_difference = expected
        .iter()
        .zip(actual)
        .position(|(e, a)| e != a)
        .unwrap_or(expected.len().min(actual.len()));
    let _ = writeln!(
        out,
        "{file}:{line_number}: `{command}`: output differs from output line {}",
        first_difference + 1
    );
    let _ = writeln!(out, "--- expected");
    for line in expected {
        let _ = writeln!(out, "    {line}");
    }
    let _ = writeln!(out, "+++ actual");
    for line in actual {
        let _ = writeln!(out, "    {line}");
    }
}

fn run(name: &str) {
    let path = testdata_dir().join(format!("{name}.txt"));
    let rewrite = std::env::var(REWRITE_ENV).is_ok_and(|value| value == "1");
    if let Err(report) = run_script(&path, rewrite) {
        panic!("golden script {name}.txt failed:\n{report}");
    }
}

/// One test per script, so each can be run, and fail, on its own.
macro_rules! golden_scripts {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run(stringify!($name));
            }
        )*
        const SCRIPTS: &[&str] = &[$(stringify!($name)),*];
    };
}

golden_scripts!(
    initial_election,
    reelection,
    pre_vote,
    check_quorum,
    figure_8,
    figure_8_overwrite,
    conflict_hint,
    catch_up,
    vote_denied,
    durability,
);

/// A script without a test would silently never run.
#[test]
fn every_script_has_a_test() {
    let mut on_disk: Vec<String> = std::fs::read_dir(testdata_dir())
        .expect("testdata directory")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".txt").map(str::to_string)
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = SCRIPTS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "every testdata/*.txt needs an entry in golden_scripts!()"
    );
}

#[test]
fn parse_and_render_round_trip() {
    let text = "# a comment\n\ncluster n=3\n----\nok\n\nstatus\n----\n1: follower\n2: leader\n";
    let items = parse(text).expect("parses");
    assert_eq!(items.len(), 4);
    assert_eq!(render(&items), text);
    assert!(
        parse("tick\nstatus\n").is_err(),
        "a command needs its `----`"
    );
}

#[test]
fn mistakes_and_failed_expectations_are_errors() {
    let mut interpreter = Interpreter::new();
    assert!(interpreter.run("tick").is_err(), "no cluster yet");
    assert_eq!(interpreter.run("cluster n=3").as_deref(), Ok("ok"));
    for bad in [
        "frobnicate",
        "tick n=x",
        "tick 9",
        "deliver form=1",
        "propose 1",
        "expect 1",
        "expect 1 colour=red",
    ] {
        assert!(interpreter.run(bad).is_err(), "`{bad}` should be refused");
    }
    let error = interpreter
        .run("expect 1 2 term=0 role=leader")
        .unwrap_err();
    assert!(
        error.starts_with("expected node 1 role=leader, found role=follower"),
        "{error}"
    );
    assert_eq!(interpreter.run("block 1 2").as_deref(), Ok("ok"));
    interpreter.run("campaign 1").expect("campaign");
    let lines = interpreter.run("deliver to=2").expect("deliver");
    assert!(lines.ends_with("(lost: link blocked)"), "{lines}");
}
