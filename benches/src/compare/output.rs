//! The records of a run, and the terminal table, CSV and JSON made from them.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::spec::{Case, Guarantee};
use super::workloads::Outcome;

/// One case's result: a row of `results.csv`, an element of `results.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// `bank`, `counter`, ...
    pub workload: String,
    /// The workload's parameters (`accounts=1024`).
    pub params: String,
    /// Who ran it.
    pub contender: String,
    /// Threads, tasks or processes.
    pub workers: usize,
    /// Operations per second, all workers together.
    pub ops_per_sec: f64,
    /// Median operation latency (sampled), in nanoseconds.
    pub p50_ns: u64,
    /// 99th percentile operation latency (sampled), in nanoseconds.
    pub p99_ns: u64,
    /// Conflict aborts per commit (STMs that count them; empty otherwise).
    pub aborts_per_commit: Option<f64>,
    /// User plus system CPU seconds over the run, summed over all processes.
    pub cpu_seconds: f64,
    /// Resident memory at the end of the run, summed over all processes.
    pub rss_bytes: u64,
    /// The consistency guarantee of the contender's operations.
    pub guarantee: Guarantee,
    /// Operations completed in the run.
    pub ops: u64,
    /// The run's wall time, in seconds.
    pub seconds: f64,
}

impl Record {
    /// The record of `case`, which produced `outcome`.
    pub fn new(case: &Case, outcome: &Outcome) -> Record {
        let m = &outcome.measured;
        Record {
            workload: case.workload.name().to_owned(),
            params: case.workload.params(),
            contender: case.contender.name().to_owned(),
            workers: case.workers,
            ops_per_sec: m.ops_per_sec(),
            p50_ns: m.latency.value_at_quantile(0.5),
            p99_ns: m.latency.value_at_quantile(0.99),
            aborts_per_commit: outcome.aborts_per_commit,
            cpu_seconds: m.cpu.as_secs_f64(),
            rss_bytes: outcome.rss_bytes,
            guarantee: case.contender.guarantee(),
            ops: m.ops,
            seconds: m.elapsed.as_secs_f64(),
        }
    }

    /// The workload and its parameters, as one label.
    pub fn scenario(&self) -> String {
        format!("{} {}", self.workload, self.params)
    }
}

/// A throughput in short form: `12.3 M/s`, `456 k/s`.
pub fn rate(ops_per_sec: f64) -> String {
    if ops_per_sec >= 1e6 {
        format!("{:.2} M/s", ops_per_sec / 1e6)
    } else if ops_per_sec >= 1e3 {
        format!("{:.1} k/s", ops_per_sec / 1e3)
    } else {
        format!("{ops_per_sec:.0} /s")
    }
}

/// A duration in nanoseconds, in short form: `850 ns`, `12.3 us`, `4.5 ms`.
pub fn nanos(ns: u64) -> String {
    match ns {
        0..=9_999 => format!("{ns} ns"),
        10_000..=9_999_999 => format!("{:.1} us", ns as f64 / 1e3),
        _ => format!("{:.1} ms", ns as f64 / 1e6),
    }
}

/// Bytes in MiB.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// The terminal table: one block per scenario, one row per contender and worker count,
/// with the throughput relative to the best row of the same scenario and worker count.
pub fn table(records: &[Record]) -> String {
    let mut out = String::new();
    let mut scenarios: Vec<String> = records.iter().map(Record::scenario).collect();
    scenarios.dedup();
    for scenario in scenarios {
        let _ = writeln!(out, "\n{scenario}");
        let _ = writeln!(
            out,
            "  {:<18} {:>7} {:>12} {:>6} {:>10} {:>10} {:>9} {:>8} {:>10}  guarantee",
            "contender",
            "workers",
            "throughput",
            "vs best",
            "p50",
            "p99",
            "aborts/c",
            "cpu s",
            "rss"
        );
        for r in records.iter().filter(|r| r.scenario() == scenario) {
            let best = records
                .iter()
                .filter(|o| o.scenario() == scenario && o.workers == r.workers)
                .map(|o| o.ops_per_sec)
                .fold(0.0, f64::max);
            let _ = writeln!(
                out,
                "  {:<18} {:>7} {:>12} {:>5.0}% {:>10} {:>10} {:>9} {:>8.2} {:>10}  {}",
                r.contender,
                r.workers,
                rate(r.ops_per_sec),
                100.0 * r.ops_per_sec / best.max(1e-9),
                nanos(r.p50_ns),
                nanos(r.p99_ns),
                r.aborts_per_commit.map_or("-".to_owned(), |a| format!("{a:.4}")),
                r.cpu_seconds,
                mib(r.rss_bytes),
                r.guarantee
            );
        }
    }
    out
}

/// Writes `results.json` and `results.csv` into `dir`.
///
/// # Errors
///
/// When a file cannot be written.
pub fn write_files(dir: &Path, records: &[Record]) -> io::Result<()> {
    let json = serde_json::to_string_pretty(records).map_err(io::Error::other)?;
    std::fs::write(dir.join("results.json"), json + "\n")?;
    let mut csv = csv::Writer::from_path(dir.join("results.csv"))?;
    for r in records {
        csv.serialize(r).map_err(io::Error::other)?;
    }
    csv.flush()
}
