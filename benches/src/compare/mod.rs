//! The `compare` runner: the same workloads on every contender, threads against processes.
//!
//! A [`Profile`] (`smoke`, `quick`, `full`) lists the [`Case`]s to run: a workload with its
//! parameters, a contender, and a number of workers. Each case runs for a fixed time on
//! fresh state, is checked for correctness (a violated check fails the run), and yields one
//! [`Record`]: throughput, sampled latency, aborts per commit, CPU time, resident memory,
//! and the guarantee the contender's operations carry. [`output`] writes the records as a
//! table, CSV and JSON, [`charts`] draws them, and [`report`] writes `report.md`.
//!
//! The binary is `src/bin/compare.rs`.

pub mod charts;
pub mod measure;
pub mod output;
pub mod report;
pub mod shards;
pub mod spec;
pub mod workloads;

pub use self::output::Record;
pub use self::spec::{Case, Contender, Guarantee, Profile, Workload};
