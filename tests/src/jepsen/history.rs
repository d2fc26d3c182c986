//! What the clients did: every operation with its key, its invocation and completion times and
//! how it ended, and the per-key linearizability check of the whole of it.
//!
//! An operation ends one of three ways. **Ok**: the server answered with an outcome (a value, a
//! `200`, a CAS mismatch). **Fail**: it surely had no effect (the connection was refused, or the
//! server said `503`: no leader, nothing written); it leaves the history. **Unknown**: a timeout,
//! a `504`, a cut connection; a write may or may not have taken effect, so it stays in the
//! history with no completion and may be linearized anywhere after its invocation, or never.
//! Failed or unknown reads change nothing and are dropped.
//!
//! After the cluster converged, each key's value as every node holds it is appended as one final
//! read. An acknowledged write that was lost then shows up as a history no order explains.

use std::collections::BTreeMap;

use crate::linearizability::{check, Model, Operation, Verdict};

/// A client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    /// `GET /kv/{key}` (linearizable).
    Get,
    /// `PUT /kv/{key}`.
    Put(String),
    /// `DELETE /kv/{key}`.
    Delete,
    /// `POST /kv/{key}/cas`.
    Cas {
        /// What the key must hold (`None`: absent).
        expected: Option<String>,
        /// What it gets (`None`: deleted).
        value: Option<String>,
    },
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOut {
    /// A get's value (`None`: 404).
    Value(Option<String>),
    /// A put was applied.
    Done,
    /// A delete was applied; whether the key existed.
    Deleted(bool),
    /// A CAS swapped.
    Swapped,
    /// A CAS did not match; what the key held.
    Mismatch(Option<String>),
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered.
    Ok(KvOut),
    /// Surely no effect.
    Fail,
    /// Maybe an effect.
    Unknown,
}

/// One operation of the history.
#[derive(Debug, Clone)]
pub struct Record {
    /// The client that issued it.
    pub client: u64,
    /// The key.
    pub key: String,
    /// The request.
    pub op: KvOp,
    /// Invocation time, in microseconds since the run started.
    pub call: u64,
    /// Completion time (unused for unknown outcomes).
    pub ret: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// One key as a sequential object: a register of an optional string.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringKeyModel;

impl Model for StringKeyModel {
    type State = Option<String>;
    type Input = KvOp;
    type Output = KvOut;

    fn init(&self) -> Option<String> {
        None
    }

    fn step(
        &self,
        state: &Option<String>,
        input: &KvOp,
        output: Option<&KvOut>,
    ) -> Option<Option<String>> {
        let (next, answer) = match input {
            KvOp::Get => (state.clone(), KvOut::Value(state.clone())),
            KvOp::Put(value) => (Some(value.clone()), KvOut::Done),
            KvOp::Delete => (None, KvOut::Deleted(state.is_some())),
            KvOp::Cas { expected, value } if expected == state => (value.clone(), KvOut::Swapped),
            KvOp::Cas { .. } => (state.clone(), KvOut::Mismatch(state.clone())),
        };
        match output {
            Some(output) if *output != answer => None,
            _ => Some(next),
        }
    }
}

/// Counts of how operations ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Answered.
    pub ok: usize,
    /// Surely no effect.
    pub failed: usize,
    /// Maybe an effect.
    pub unknown: usize,
}

/// Counts `records` by outcome.
pub fn tally(records: &[Record]) -> Tally {
    let mut tally = Tally::default();
    for record in records {
        match record.outcome {
            Outcome::Ok(_) => tally.ok += 1,
            Outcome::Fail => tally.failed += 1,
            Outcome::Unknown => tally.unknown += 1,
        }
    }
    tally
}

/// The search budget per key; a key that needs more is reported inconclusive.
const BUDGET_PER_KEY: u64 = 50_000_000;

/// Checks every key's sub-history, with `finals` (each key's converged value) read at `end`.
/// Returns the keys that are not linearizable or could not be decided, with their verdicts.
pub fn check_per_key(
    records: &[Record],
    finals: &BTreeMap<String, Option<String>>,
    end: u64,
) -> Vec<(String, Verdict)> {
    let mut by_key: BTreeMap<&str, Vec<Operation<KvOp, KvOut>>> = BTreeMap::new();
    for record in records {
        if let Some(operation) = to_operation(record) {
            by_key.entry(&record.key).or_default().push(operation);
        }
    }
    for (key, value) in finals {
        by_key.entry(key).or_default().push(Operation {
            client: u64::MAX,
            call: end,
            ret: Some(end + 1),
            input: KvOp::Get,
            output: Some(KvOut::Value(value.clone())),
        });
    }
    by_key
        .into_iter()
        .map(|(key, history)| {
            (
                key.to_string(),
                check(&StringKeyModel, &history, BUDGET_PER_KEY),
            )
        })
        .filter(|(_, verdict)| *verdict != Verdict::Linearizable)
        .collect()
}

/// The checker's view of a record; `None` for what has no effect (failures, unknown reads).
fn to_operation(record: &Record) -> Option<Operation<KvOp, KvOut>> {
    let (ret, output) = match (&record.outcome, &record.op) {
        (Outcome::Ok(out), _) => (Some(record.ret), Some(out.clone())),
        (Outcome::Unknown, KvOp::Get) | (Outcome::Fail, _) => return None,
        (Outcome::Unknown, _) => (None, None),
    };
    Some(Operation {
        client: record.client,
        call: record.call,
        ret,
        input: record.op.clone(),
        output,
    })
}

/// The key's history as text, one operation a line in invocation order (for a failure report).
pub fn render_key(records: &[Record], key: &str) -> String {
    let mut lines: Vec<&Record> = records.iter().filter(|r| r.key == key).collect();
    lines.sort_by_key(|r| r.call);
    lines
        .iter()
        .map(|r| {
            let ret = match r.outcome {
                Outcome::Ok(_) => r.ret.to_string(),
                _ => "-".into(),
            };
            format!(
                "{:>10} {:>10} client {:>2} {:?} -> {:?}",
                r.call, ret, r.client, r.op, r.outcome
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(call: u64, ret: u64, op: KvOp, outcome: Outcome) -> Record {
        Record {
            client: 0,
            key: "k".into(),
            op,
            call,
            ret,
            outcome,
        }
    }

    fn verdicts(records: &[Record], last: Option<&str>) -> Vec<(String, Verdict)> {
        let finals = BTreeMap::from([("k".to_string(), last.map(str::to_string))]);
        check_per_key(records, &finals, 1_000)
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught_by_the_final_read() {
        let put = record(0, 1, KvOp::Put("a".into()), Outcome::Ok(KvOut::Done));
        assert!(verdicts(std::slice::from_ref(&put), Some("a")).is_empty());
        assert_eq!(verdicts(&[put], None).len(), 1);
    }

    #[test]
    fn unknown_writes_may_or_may_not_apply_and_failures_never_do() {
        let unknown = record(0, 0, KvOp::Put("a".into()), Outcome::Unknown);
        assert!(verdicts(std::slice::from_ref(&unknown), Some("a")).is_empty());
        assert!(verdicts(&[unknown], None).is_empty());
        let failed = record(0, 1, KvOp::Put("a".into()), Outcome::Fail);
        assert_eq!(verdicts(&[failed], Some("a")).len(), 1);
    }

    #[test]
    fn cas_and_delete_answers_are_checked() {
        let history = [
            record(0, 1, KvOp::Put("a".into()), Outcome::Ok(KvOut::Done)),
            record(
                2,
                3,
                KvOp::Cas {
                    expected: Some("b".into()),
                    value: Some("c".into()),
                },
                Outcome::Ok(KvOut::Mismatch(Some("a".into()))),
            ),
            record(4, 5, KvOp::Delete, Outcome::Ok(KvOut::Deleted(true))),
        ];
        assert!(verdicts(&history, None).is_empty());
        let mut wrong = history.clone();
        wrong[2].outcome = Outcome::Ok(KvOut::Deleted(false));
        assert_eq!(verdicts(&wrong, None).len(), 1);
    }
}
