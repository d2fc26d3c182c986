//! [`WaitingClients`]: the clients a leader answers once their entries are applied, by the
//! entry's `(index, term)`.
//!
//! A leader appends at growing indices, so entries almost always arrive in key order and a sorted
//! queue beats an ordered map: a push at the back, and a split at the front when a batch is
//! applied. A leader of a later term may append again below keys of an earlier term (its log was
//! shorter); such a key is inserted in its place, in order, so the queue stays sorted.

use std::collections::VecDeque;

use crate::types::{LogIndex, RequestId, Term};

/// Requests waiting on entries, sorted by `(index, term)`.
#[derive(Debug, Clone, Default)]
pub(super) struct WaitingClients {
    queue: VecDeque<((LogIndex, Term), RequestId)>,
}

impl WaitingClients {
    /// `request` waits on the entry `(index, term)`.
    pub fn insert(&mut self, index: LogIndex, term: Term, request: RequestId) {
        let key = (index, term);
        match self.queue.back() {
            Some((last, _)) if *last >= key => {
                let at = self.queue.partition_point(|(k, _)| *k < key);
                if self.queue.get(at).is_some_and(|(k, _)| *k == key) {
                    self.queue[at].1 = request;
                } else {
                    self.queue.insert(at, (key, request));
                }
            }
            _ => self.queue.push_back((key, request)),
        }
    }

    /// Removes and returns, in order, the requests waiting on entries at or below `index`.
    pub fn take_up_to(
        &mut self,
        index: LogIndex,
    ) -> impl Iterator<Item = ((LogIndex, Term), RequestId)> + '_ {
        let end = self.queue.partition_point(|((at, _), _)| *at <= index);
        self.queue.drain(..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(clients: &mut WaitingClients, index: u64) -> Vec<(u64, u64, u64)> {
        clients
            .take_up_to(LogIndex(index))
            .map(|((index, term), request)| (index.0, term.0, request.0))
            .collect()
    }

    #[test]
    fn keeps_key_order_when_a_later_term_appends_lower() {
        let mut clients = WaitingClients::default();
        clients.insert(LogIndex(5), Term(1), RequestId(1));
        clients.insert(LogIndex(6), Term(1), RequestId(2));
        clients.insert(LogIndex(4), Term(2), RequestId(3));
        clients.insert(LogIndex(5), Term(2), RequestId(4));
        assert_eq!(taken(&mut clients, 3), vec![]);
        assert_eq!(
            taken(&mut clients, 5),
            vec![(4, 2, 3), (5, 1, 1), (5, 2, 4)]
        );
        assert_eq!(taken(&mut clients, 9), vec![(6, 1, 2)]);
        assert_eq!(taken(&mut clients, 9), vec![]);
    }

    #[test]
    fn the_same_key_keeps_the_latest_request() {
        let mut clients = WaitingClients::default();
        clients.insert(LogIndex(1), Term(1), RequestId(1));
        clients.insert(LogIndex(1), Term(1), RequestId(2));
        assert_eq!(taken(&mut clients, 1), vec![(1, 1, 2)]);
    }
}
