//! [`Histogram`]: a log-bucketed latency histogram that many threads record into at once.
//!
//! Values below 128 ns get a bucket each; above, every power of two is split into 128 equal
//! buckets. A percentile is reported as the midpoint of its bucket, so it is within 0.4 % of the
//! exact value (half a bucket width over the bucket's lower bound: 0.5 / 128).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets per power of two, and the number of values below which buckets are exact.
const SUB_BUCKETS: u64 = 128;
/// log2 of `SUB_BUCKETS`.
const SUB_BUCKET_BITS: u32 = 7;
/// Powers of two covered: up to 2^64 ns, far beyond any run.
const BUCKETS: usize = ((64 - SUB_BUCKET_BITS as usize) + 1) * SUB_BUCKETS as usize;

/// A concurrent histogram of durations, in nanoseconds.
pub struct Histogram {
    /// Invariant: `counts[bucket_of(v)]` counts the recorded values `v`.
    counts: Vec<AtomicU64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Records one duration.
    pub fn record(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The duration at or below which a fraction `quantile` (0.0-1.0) of the recorded values
    /// fall, as its bucket's midpoint; zero if nothing was recorded.
    pub fn percentile(&self, quantile: f64) -> Duration {
        let total = self.count();
        if total == 0 {
            return Duration::ZERO;
        }
        // The rank of the value sought, 1-based: the smallest v with at least this many <= v.
        let rank = ((quantile * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count.load(Ordering::Relaxed);
            if seen >= rank {
                return Duration::from_nanos(midpoint_of(bucket));
            }
        }
        Duration::from_nanos(midpoint_of(BUCKETS - 1))
    }
}

/// The bucket holding `nanos`.
fn bucket_of(nanos: u64) -> usize {
    if nanos < SUB_BUCKETS {
        return nanos as usize;
    }
    let exponent = 63 - nanos.leading_zeros(); // >= SUB_BUCKET_BITS
    let shift = exponent - SUB_BUCKET_BITS;
    let mantissa = nanos >> shift; // in [SUB_BUCKETS, 2 * SUB_BUCKETS)
    ((shift as u64 + 1) * SUB_BUCKETS + (mantissa - SUB_BUCKETS)) as usize
}

/// The middle of the values `bucket` holds.
fn midpoint_of(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < SUB_BUCKETS {
        return bucket;
    }
    let shift = bucket / SUB_BUCKETS - 1;
    let mantissa = SUB_BUCKETS + bucket % SUB_BUCKETS;
    let lower = mantissa << shift;
    lower + (1u64 << shift) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_within_half_a_percent() {
        for nanos in [
            0u64,
            1,
            127,
            128,
            129,
            255,
            256,
            1_000,
            123_456,
            9_876_543_210,
        ] {
            let mid = midpoint_of(bucket_of(nanos));
            let error = (mid as f64 - nanos as f64).abs() / (nanos.max(1) as f64);
            assert!(error <= 0.004, "{nanos} ns reported as {mid} ns");
        }
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }

    #[test]
    fn percentiles_rank_the_values() {
        let histogram = Histogram::new();
        for micros in 1..=1000 {
            histogram.record(Duration::from_micros(micros));
        }
        let p50 = histogram.percentile(0.50).as_nanos() as f64;
        let p99 = histogram.percentile(0.99).as_nanos() as f64;
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.004, "p50 {p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.004, "p99 {p99}");
        assert_eq!(histogram.count(), 1000);
    }
}
