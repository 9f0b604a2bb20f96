//! `report.md`: the run's machine and settings, the table, and the charts embedded.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::output::{self, Record};

/// Facts about the run that a reader needs to trust (or distrust) the figures.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// `smoke`, `quick` or `full`.
    pub profile: String,
    /// Cores available to the run.
    pub cores: usize,
    /// The CPU model, from `/proc/cpuinfo`.
    pub cpu: String,
    /// Seconds measured per case.
    pub seconds_per_case: f64,
    /// The git commit, if known.
    pub commit: String,
    /// When the run started (UTC, RFC 3339-ish), if known.
    pub date: String,
}

/// The CPU model name, or `unknown`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Writes `report.md` into `dir`, embedding the `charts` (paths inside `dir`).
///
/// # Errors
///
/// When the file cannot be written.
pub fn write(
    dir: &Path,
    info: &RunInfo,
    records: &[Record],
    charts: &[PathBuf],
) -> std::io::Result<()> {
    let mut md = String::new();
    let _ = writeln!(md, "# Concord `compare` report ({} profile)\n", info.profile);
    let _ = writeln!(
        md,
        "Machine: {} cores, {}. Commit {}, {}. Each case ran for {:.2} s on fresh state and \
         passed its correctness check (a failed check aborts the run). Latencies are sampled \
         (one operation in {}); CPU is user + system time of every process of the contender; \
         memory is the resident set at the end of the run, summed over processes.\n",
        info.cores,
        info.cpu,
        info.commit,
        info.date,
        info.seconds_per_case,
        super::measure::SAMPLE_ONE_IN
    );
    let _ = writeln!(md, "Files: `results.json`, `results.csv`, and one chart per scenario.\n");
    let _ = writeln!(md, "## Results\n");
    let _ = writeln!(md, "| scenario | contender | workers | throughput | p50 | p99 | aborts/commit | CPU s | RSS | guarantee |");
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in records {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} |",
            r.scenario(),
            r.contender,
            r.workers,
            output::rate(r.ops_per_sec),
            output::nanos(r.p50_ns),
            output::nanos(r.p99_ns),
            r.aborts_per_commit.map_or("-".to_owned(), |a| format!("{a:.4}")),
            r.cpu_seconds,
            output::mib(r.rss_bytes),
            r.guarantee
        );
    }
    let _ = writeln!(md, "\n## Charts\n");
    for path in charts {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = writeln!(md, "![{name}]({name})\n");
    }
    std::fs::write(dir.join("report.md"), md)
}
