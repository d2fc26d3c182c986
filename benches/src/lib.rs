//! Benchmark support; the benches are under `benches/benches/`.
