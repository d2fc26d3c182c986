//! [`Slots`]: handles waiting on requests, keyed by the executor's request ids.
//!
//! The executor numbers requests in the order they arrive, and most are answered in about that
//! order, so a queue indexed by `id - first` does what an ordered map did at a fraction of the
//! cost: insertion is a push at the back, removal empties a slot, and the empty slots at the front
//! are dropped as the oldest requests are answered. A request answered late only keeps the slots
//! after it until it is.

use std::collections::VecDeque;

use crate::types::RequestId;

/// Handles `T` waiting on requests, indexed by request id. Ids must be inserted in increasing
/// order (gaps allowed: ids used for other kinds of request stay empty).
#[derive(Debug)]
pub(super) struct Slots<T> {
    /// The id of `slots[0]`.
    first: u64,
    slots: VecDeque<Option<T>>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            first: 0,
            slots: VecDeque::new(),
        }
    }
}

impl<T> Slots<T> {
    /// Keeps `value` for request `id`, which must be above every id inserted before; an id out of
    /// order is refused (the value comes back).
    pub fn insert(&mut self, id: RequestId, value: T) -> Result<(), T> {
        if self.slots.is_empty() {
            self.first = id.0;
        }
        let Some(position) = id.0.checked_sub(self.first) else {
            return Err(value);
        };
        let position = usize::try_from(position).unwrap_or(usize::MAX);
        if position < self.slots.len() {
            return Err(value);
        }
        self.slots.resize_with(position, || None);
        self.slots.push_back(Some(value));
        Ok(())
    }

    /// Takes the handle waiting on `id`, if any.
    pub fn remove(&mut self, id: RequestId) -> Option<T> {
        let position = usize::try_from(id.0.checked_sub(self.first)?).ok()?;
        let value = self.slots.get_mut(position)?.take()?;
        self.drop_empty_front();
        Some(value)
    }

    /// Keeps only the handles `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        drop(self.take_where(|value| !keep(value)));
    }

    /// Takes the handles `take` accepts, oldest first.
    pub fn take_where(&mut self, mut take: impl FnMut(&T) -> bool) -> Vec<T> {
        let mut taken = Vec::new();
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(&mut take) {
                taken.extend(slot.take());
            }
        }
        self.drop_empty_front();
        taken
    }

    /// The handles waiting, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }

    /// Takes every handle, oldest first.
    pub fn take_all(&mut self) -> Vec<T> {
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect()
    }

    fn drop_empty_front(&mut self) {
        while self.slots.front().is_some_and(Option::is_none) {
            self.slots.pop_front();
            self.first += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<T> Slots<T> {
        fn len(&self) -> usize {
            self.iter().count()
        }
    }

    fn id(n: u64) -> RequestId {
        RequestId(n)
    }

    #[test]
    fn removes_in_any_order_and_reclaims_the_front() {
        let mut slots = Slots::default();
        for n in [3, 4, 7, 8] {
            assert!(slots.insert(id(n), n).is_ok());
        }
        assert_eq!(slots.len(), 4);
        assert_eq!(slots.remove(id(7)), Some(7));
        assert_eq!(slots.remove(id(7)), None, "taken once");
        assert_eq!(slots.remove(id(5)), None, "a gap holds nothing");
        assert_eq!(slots.remove(id(3)), Some(3));
        assert_eq!(slots.remove(id(4)), Some(4));
        assert_eq!(slots.slots.len(), 1, "empty slots at the front are dropped");
        assert_eq!(slots.first, 8);
        assert_eq!(slots.remove(id(2)), None, "below the window");
        assert_eq!(slots.take_all(), vec![8]);
        assert_eq!(slots.len(), 0);
    }

    #[test]
    fn refuses_ids_out_of_order_and_restarts_when_empty() {
        let mut slots = Slots::default();
        assert!(slots.insert(id(10), "a").is_ok());
        assert_eq!(slots.insert(id(10), "b"), Err("b"));
        assert_eq!(slots.insert(id(9), "c"), Err("c"));
        assert_eq!(slots.remove(id(10)), Some("a"));
        assert!(slots.insert(id(12), "d").is_ok(), "empty: any id may start");
        assert_eq!(slots.remove(id(12)), Some("d"));
    }

    #[test]
    fn take_where_takes_matching_handles_oldest_first() {
        let mut slots = Slots::default();
        for n in 1..=6 {
            assert!(slots.insert(id(n), n).is_ok());
        }
        assert_eq!(slots.take_where(|n| n % 3 != 0), vec![1, 2, 4, 5]);
        assert_eq!(slots.iter().copied().collect::<Vec<_>>(), vec![3, 6]);
        assert_eq!(slots.first, 3, "the taken front is reclaimed");
        assert!(slots.take_where(|_| false).is_empty());
    }

    #[test]
    fn retain_forgets_rejected_handles() {
        let mut slots = Slots::default();
        for n in 1..=5 {
            assert!(slots.insert(id(n), n).is_ok());
        }
        slots.retain(|n| n % 2 == 0);
        assert_eq!(slots.len(), 2);
        assert_eq!(slots.slots.len(), 4, "slot 1 reclaimed, 3 and 5 emptied");
        assert_eq!(slots.take_all(), vec![2, 4]);
    }
}
