//! The message-passing contenders of the `compare` runner, end to end: every workload on
//! both transports with 1, 2 and 3 worker processes, each case run by the `compare` binary
//! (`--run-case`) exactly as the runner does, so the coordinator, the re-executed workers,
//! the protocol and the correctness checks are all the real ones. A case whose check fails
//! makes the binary exit non-zero, which fails the test. (The checks themselves are tested
//! against corrupted reports in the unit tests of `compare::shards`.)

use std::process::Command;

use concord_benches::compare::{Case, Contender, Record, Workload};

fn run_case(case: &Case) -> Result<Record, String> {
    let json = serde_json::to_string(case).expect("a case serializes");
    let out = Command::new(env!("CARGO_BIN_EXE_compare"))
        .args(["--run-case", &json])
        .output()
        .expect("run the compare binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{json}: {}\n{stdout}\n{stderr}", out.status));
    }
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|e| format!("{json}: unreadable record ({e}): {last}"))
}

#[test]
fn every_workload_passes_its_check_on_both_transports_with_one_to_three_workers() {
    let workloads = [
        Workload::Bank { accounts: 64, audit_one_in: 20 },
        Workload::Bank { accounts: 4, audit_one_in: 0 },
        Workload::Dict { keys: 1000, read_percent: 50, zipf: true },
        Workload::Counter,
        Workload::Queue { capacity: 4 },
    ];
    let mut failures = Vec::new();
    for contender in [Contender::ProcessesRing, Contender::ProcessesSocket] {
        for workload in workloads {
            for workers in 1..=3 {
                let duration = std::time::Duration::from_millis(200);
                let case = Case { workload, contender, workers, duration };
                match run_case(&case) {
                    Ok(r) => {
                        assert_eq!(r.contender, contender.name());
                        assert_eq!(r.workers, workers);
                        assert!(r.ops > 0 && r.p50_ns > 0 && r.p99_ns >= r.p50_ns, "{r:?}");
                        assert!(r.seconds >= 0.2, "{r:?}");
                        assert!(r.cpu_seconds > 0.0, "{r:?}");
                        // Summed over the coordinator and every worker: each process
                        // keeps at least a MiB resident.
                        assert!(r.rss_bytes >= (workers as u64 + 1) << 20, "{r:?}");
                    }
                    Err(e) => failures.push(e),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_case_that_cannot_start_its_processes_fails_the_run() {
    let case = Case {
        workload: Workload::Counter,
        contender: Contender::ProcessesRing,
        workers: 0,
        duration: std::time::Duration::from_millis(10),
    };
    let e = run_case(&case).unwrap_err();
    assert!(e.contains("mesh"), "{e}");
}
