//! A linearizability checker for client histories, in the style of Wing & Gong's search with
//! Lowe's memoization (WGL).
//!
//! A history is a set of operations, each with the time it was invoked, the time its answer came
//! back, its input and its output. It is linearizable if some order of the operations (1) respects
//! real time — an operation answered before another was invoked comes first — and (2) is a legal
//! run of the sequential [`Model`] that produces every recorded output.
//!
//! The search walks a list of call and return events in time order. At each call it tries to
//! linearize that operation next: if the model accepts it, the operation (call and return) leaves
//! the list and the search restarts from the front; if it reaches a return whose operation is not
//! yet linearized, that operation could not have taken effect at any point allowed so far, so it
//! backtracks to the last choice. Lowe's improvement memoizes every (set of linearized operations,
//! model state) already explored, which prunes the permutations that lead to the same place.
//!
//! Operations of **unknown outcome** (a client timed out: the write may or may not have taken
//! effect) get a return time of infinity and accept any output. They may then be linearized
//! anywhere after their invocation — including after everything else, which is the same as never
//! taking effect. Operations that definitely failed (refused, never applied) belong in no history.
//!
//! Linearizability is compositional (Herlihy & Wing): a history over independent objects (the keys
//! of a key-value store) is linearizable iff each object's sub-history is, so callers check one
//! key at a time, which keeps the search small.

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification: what one operation does to the state and what it answers.
pub trait Model {
    /// The object's state.
    type State: Clone + Eq + Hash;
    /// An operation's input.
    type Input;
    /// An operation's output.
    type Output;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Applies `input` to `state`. With `Some(output)`, returns the next state only if the model
    /// answers exactly `output`; with `None` (unknown outcome), accepts any answer.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// Who issued it (for messages only).
    pub client: u64,
    /// When it was invoked.
    pub call: u64,
    /// When its answer came back; `None` if the outcome is unknown.
    pub ret: Option<u64>,
    /// What it asked.
    pub input: I,
    /// What it answered; `None` if the outcome is unknown.
    pub output: Option<O>,
}

/// The checker's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A linearization exists.
    Linearizable,
    /// No order of the operations explains the outputs.
    NotLinearizable,
    /// The search gave up after its step budget.
    Inconclusive,
}

/// A call or a return, in the list the search walks.
#[derive(Debug, Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    /// For a call, the index of its return event.
    matching: usize,
}

/// Checks whether `history` is linearizable with respect to `model`, giving up after `budget`
/// search steps.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: u64,
) -> Verdict {
    if history.is_empty() {
        return Verdict::Linearizable;
    }
    let events = build_events(history);
    let count = events.len();
    // A doubly linked list over the events, with a sentinel at `count`.
    let head = count;
    let mut next: Vec<usize> = (1..=count).chain([0]).collect();
    let mut prev: Vec<usize> = std::iter::once(count).chain(0..count).collect();
    let lift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, node: usize| {
        next[prev[node]] = next[node];
        prev[next[node]] = prev[node];
    };
    let unlift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, node: usize| {
        next[prev[node]] = node;
        prev[next[node]] = node;
    };

    let mut linearized = vec![0u64; history.len().div_ceil(64)];
    let mut cache: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut entry = next[head];
    let mut steps = 0u64;
    loop {
        if next[head] == head {
            return Verdict::Linearizable;
        }
        steps += 1;
        if steps > budget {
            return Verdict::Inconclusive;
        }
        if entry == head {
            // Unreachable in a well-formed list (every call is followed by its return); treat as
            // a dead end.
            return Verdict::NotLinearizable;
        }
        let event = events[entry];
        if event.is_call {
            let operation = &history[event.op];
            if let Some(new_state) = model.step(&state, &operation.input, operation.output.as_ref())
            {
                set_bit(&mut linearized, event.op, true);
                if cache.insert((linearized.clone(), new_state.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, new_state)));
                    lift(&mut next, &mut prev, entry);
                    lift(&mut next, &mut prev, event.matching);
                    entry = next[head];
                    continue;
                }
                set_bit(&mut linearized, event.op, false);
            }
            entry = next[entry];
        } else {
            // The operation returning here was not linearized before its return: backtrack.
            let Some((call, previous_state)) = stack.pop() else {
                return Verdict::NotLinearizable;
            };
            let call_event = events[call];
            set_bit(&mut linearized, call_event.op, false);
            state = previous_state;
            unlift(&mut next, &mut prev, call_event.matching);
            unlift(&mut next, &mut prev, call);
            entry = next[call];
        }
    }
}

/// Calls and returns in time order; at equal times calls come first (the operations overlap).
fn build_events<I, O>(history: &[Operation<I, O>]) -> Vec<Event> {
    let mut keyed: Vec<(u64, bool, usize)> = Vec::with_capacity(history.len() * 2);
    for (op, operation) in history.iter().enumerate() {
        keyed.push((operation.call, false, op));
        keyed.push((operation.ret.unwrap_or(u64::MAX), true, op));
    }
    // (time, is_return, op): calls (false) sort before returns at the same time.
    keyed.sort();
    let mut return_at = vec![0; history.len()];
    for (position, (_, is_return, op)) in keyed.iter().enumerate() {
        if *is_return {
            return_at[*op] = position;
        }
    }
    keyed
        .iter()
        .map(|(_, is_return, op)| Event {
            op: *op,
            is_call: !is_return,
            matching: if *is_return { 0 } else { return_at[*op] },
        })
        .collect()
}

fn set_bit(bits: &mut [u64], position: usize, value: bool) {
    let (word, bit) = (position / 64, position % 64);
    if value {
        bits[word] |= 1 << bit;
    } else {
        bits[word] &= !(1 << bit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register holding an optional number: write, read, compare-and-set.
    struct Register;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Op {
        Write(u64),
        Read,
        Cas(Option<u64>, u64),
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Out {
        Done,
        Value(Option<u64>),
        Swapped(bool),
    }

    impl Model for Register {
        type State = Option<u64>;
        type Input = Op;
        type Output = Out;

        fn init(&self) -> Option<u64> {
            None
        }

        fn step(
            &self,
            state: &Option<u64>,
            input: &Op,
            output: Option<&Out>,
        ) -> Option<Option<u64>> {
            let (next, answer) = match input {
                Op::Write(value) => (Some(*value), Out::Done),
                Op::Read => (*state, Out::Value(*state)),
                Op::Cas(expected, new) if state == expected => (Some(*new), Out::Swapped(true)),
                Op::Cas(..) => (*state, Out::Swapped(false)),
            };
            match output {
                Some(output) if *output != answer => None,
                _ => Some(next),
            }
        }
    }

    fn op(call: u64, ret: u64, input: Op, output: Out) -> Operation<Op, Out> {
        Operation {
            client: 0,
            call,
            ret: Some(ret),
            input,
            output: Some(output),
        }
    }

    fn unknown(call: u64, input: Op) -> Operation<Op, Out> {
        Operation {
            client: 0,
            call,
            ret: None,
            input,
            output: None,
        }
    }

    fn verdict(history: &[Operation<Op, Out>]) -> Verdict {
        check(&Register, history, 1_000_000)
    }

    #[test]
    fn empty_and_sequential_histories_are_linearizable() {
        assert_eq!(verdict(&[]), Verdict::Linearizable);
        let history = [
            op(0, 1, Op::Write(1), Out::Done),
            op(2, 3, Op::Read, Out::Value(Some(1))),
            op(4, 5, Op::Cas(Some(1), 2), Out::Swapped(true)),
            op(6, 7, Op::Read, Out::Value(Some(2))),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_is_rejected() {
        let history = [
            op(0, 1, Op::Write(1), Out::Done),
            op(2, 3, Op::Write(2), Out::Done),
            op(4, 5, Op::Read, Out::Value(Some(1))),
        ];
        assert_eq!(verdict(&history), Verdict::NotLinearizable);
    }

    #[test]
    fn a_read_of_a_value_never_written_is_rejected() {
        let history = [
            op(0, 1, Op::Write(1), Out::Done),
            op(2, 3, Op::Read, Out::Value(Some(9))),
        ];
        assert_eq!(verdict(&history), Verdict::NotLinearizable);
    }

    #[test]
    fn a_read_may_see_a_concurrent_write_or_not() {
        for seen in [None, Some(1)] {
            let history = [
                op(0, 10, Op::Write(1), Out::Done),
                op(2, 5, Op::Read, Out::Value(seen)),
            ];
            assert_eq!(verdict(&history), Verdict::Linearizable, "read {seen:?}");
        }
    }

    #[test]
    fn reads_that_disagree_on_the_order_of_writes_are_rejected() {
        // Two concurrent writes; one reader sees 1 then 2, another, later, sees 2 then 1.
        let history = [
            op(0, 100, Op::Write(1), Out::Done),
            op(0, 100, Op::Write(2), Out::Done),
            op(10, 11, Op::Read, Out::Value(Some(1))),
            op(12, 13, Op::Read, Out::Value(Some(2))),
            op(14, 15, Op::Read, Out::Value(Some(1))),
        ];
        assert_eq!(verdict(&history), Verdict::NotLinearizable);
    }

    #[test]
    fn a_failed_cas_must_be_explained_by_the_state() {
        let history = [
            op(0, 1, Op::Write(1), Out::Done),
            op(2, 3, Op::Cas(Some(1), 5), Out::Swapped(false)),
        ];
        assert_eq!(verdict(&history), Verdict::NotLinearizable);
        let history = [
            op(0, 1, Op::Write(1), Out::Done),
            op(2, 3, Op::Cas(Some(7), 5), Out::Swapped(false)),
            op(4, 5, Op::Read, Out::Value(Some(1))),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn an_unknown_write_may_take_effect_late() {
        // The write timed out at the client but was applied later: a read long after sees it.
        let history = [
            unknown(0, Op::Write(3)),
            op(50, 51, Op::Read, Out::Value(None)),
            op(60, 61, Op::Read, Out::Value(Some(3))),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn an_unknown_write_may_never_take_effect() {
        let history = [
            op(0, 1, Op::Write(1), Out::Done),
            unknown(2, Op::Write(3)),
            op(50, 51, Op::Read, Out::Value(Some(1))),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn an_unknown_write_cannot_take_effect_before_it_was_invoked() {
        let history = [
            op(0, 1, Op::Read, Out::Value(Some(3))),
            unknown(2, Op::Write(3)),
        ];
        assert_eq!(verdict(&history), Verdict::NotLinearizable);
    }

    #[test]
    fn an_unknown_write_takes_effect_at_most_once() {
        // 3 is written once (unknown outcome), then overwritten by 4: reading 3 afterwards is not
        // explained, since the unknown write cannot take effect twice.
        let history = [
            unknown(0, Op::Write(3)),
            op(10, 11, Op::Read, Out::Value(Some(3))),
            op(12, 13, Op::Write(4), Out::Done),
            op(14, 15, Op::Read, Out::Value(Some(3))),
        ];
        assert_eq!(verdict(&history), Verdict::NotLinearizable);
    }

    #[test]
    fn many_concurrent_operations_stay_tractable() {
        // 12 overlapping writes and a read of one of them: without memoization the search would
        // try 12! orders; with it, at most 2^12 sets of linearized writes times 12 states.
        let mut history: Vec<_> = (0..12)
            .map(|value| op(0, 1000, Op::Write(value), Out::Done))
            .collect();
        history.push(op(2000, 2001, Op::Read, Out::Value(Some(5))));
        assert_eq!(
            check(&Register, &history, 10_000_000),
            Verdict::Linearizable
        );
    }
}
