//! Seeded randomness for scenario tests: every random choice a test makes comes from a
//! [`TestRng`], so a failing run replays exactly from its seed.

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

/// A small, fast, seeded generator (splitmix64).
#[derive(Debug, Clone)]
pub struct TestRng {
    state: u64,
}

impl TestRng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> TestRng {
        TestRng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
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
