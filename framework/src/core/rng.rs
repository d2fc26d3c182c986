//! A tiny seeded generator (SplitMix64). The core owns one, so a seed fixes every randomized
//! election timeout: runs replay exactly. Not for cryptography.

/// SplitMix64 state.
#[derive(Debug, Clone)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> SeededRng {
        SeededRng { state: seed }
    }

    /// A generator for one node of a cluster seeded with `seed`. The node id is mixed into the
    /// seed through the generator's output function, not added to its state: SplitMix64 steps
    /// its state by a constant, so states that differ by a multiple of it would give nodes
    /// shifted copies of one sequence — correlated election timeouts that split votes forever.
    pub fn for_node(seed: u64, node: u64) -> SeededRng {
        let mixed_seed = SeededRng::new(seed).next_u64();
        SeededRng::new(SeededRng::new(mixed_seed ^ node).next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `probability` (0.0 never, 1.0 always).
    pub fn chance(&mut self, probability: f64) -> bool {
        probability > 0.0 && (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= probability
    }

    /// A value in `[low, high)`; `low` when the range is empty.
    pub fn in_range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SeededRng::new(7);
        let mut b = SeededRng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn nodes_of_one_seed_draw_unrelated_sequences() {
        // Regression: with `seed ^ id * GOLDEN_GAMMA`, node 3's draws were node 2's shifted by one.
        for seed in [0, 19, 42] {
            let draws = |node| {
                let mut rng = SeededRng::for_node(seed, node);
                (0..64).map(|_| rng.in_range(15, 30)).collect::<Vec<_>>()
            };
            let sequences: Vec<Vec<u64>> = (1..=7).map(draws).collect();
            for (a, first) in sequences.iter().enumerate() {
                for (b, second) in sequences.iter().enumerate().filter(|(b, _)| *b != a) {
                    for shift in 0..8 {
                        assert_ne!(
                            first[shift..shift + 48],
                            second[..48],
                            "seed {seed}: node {}'s draws are node {}'s shifted by {shift}",
                            b + 1,
                            a + 1
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn in_range_stays_in_range() {
        let mut rng = SeededRng::new(1);
        for _ in 0..1000 {
            let value = rng.in_range(15, 30);
            assert!((15..30).contains(&value), "{value} outside [15, 30)");
        }
        assert_eq!(rng.in_range(5, 5), 5);
    }
}
