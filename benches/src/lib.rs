//! Shared workload code for Concord's benchmarks (see `benches/README.md`).
