//! Seeded randomness for scenario tests: every random choice a test makes comes from a
//! [`TestRng`], so a failing run replays exactly from its seed.

use raftor::core::SeededRng;

/// The environment variable that overrides a test's default seed.
pub const SEED_VAR: &str = "RAFTOR_SEED";

/// The seed for a test: `RAFTOR_SEED` if set, else `default`. Printed, so that a failing test's
/// output says how to replay it (the test harness shows a test's output only when it fails).
pub fn seed(default: u64) -> u64 {
    let seed = std::env::var(SEED_VAR)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default);
    println!("seed {seed} (replay with {SEED_VAR}={seed})");
    seed
}

/// A seeded generator for test choices: the core's generator with the lab suite's helpers.
#[derive(Debug, Clone)]
pub struct TestRng {
    inner: SeededRng,
}

impl TestRng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> TestRng {
        TestRng {
            inner: SeededRng::new(seed),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A number in `0..bound` (`bound` > 0), like Go's `rand.Int() % bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "below(0)");
        self.next_u64() % bound
    }

    /// True with probability `per_mille` / 1000, like the lab's `rand.Int() % 1000 < per_mille`.
    pub fn per_mille(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}
