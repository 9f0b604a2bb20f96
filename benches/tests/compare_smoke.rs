//! The `compare` runner's smoke profile, as CI runs it: every contender on every workload,
//! each case in its own process with its correctness check, and every output file written.

use std::collections::BTreeSet;
use std::process::Command;

use concord_benches::compare::{Contender, Profile, Record};

#[test]
fn the_smoke_profile_runs_every_contender_and_writes_every_output() {
    let out = std::env::temp_dir().join(format!("concord-compare-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_compare"))
        .args(["--smoke", "--out"])
        .arg(&out)
        .output()
        .expect("run the compare binary");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "compare --smoke failed: {}\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("correctness checks passed"), "{stdout}");

    let json = std::fs::read_to_string(out.join("results.json")).expect("results.json");
    let records: Vec<Record> = serde_json::from_str(&json).expect("records parse");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(records.len(), Profile::Smoke.cases(&Contender::DEFAULT, cores).len());
    let contenders: BTreeSet<&str> = records.iter().map(|r| r.contender.as_str()).collect();
    assert_eq!(contenders.len(), Contender::DEFAULT.len(), "{contenders:?}");
    for r in &records {
        assert!(r.ops > 0 && r.ops_per_sec > 0.0, "{r:?}");
        assert!(r.p50_ns > 0 && r.p99_ns >= r.p50_ns, "{r:?}");
        assert!(r.rss_bytes > 0, "{r:?}");
    }
    let csv = std::fs::read_to_string(out.join("results.csv")).expect("results.csv");
    assert_eq!(csv.lines().count(), records.len() + 1, "a header and one row per record");
    assert!(csv.starts_with("workload,params,contender,workers,ops_per_sec,p50_ns,p99_ns"));
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    let charts: Vec<_> = std::fs::read_dir(&out)
        .expect("list the output")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "svg"))
        .collect();
    assert!(!charts.is_empty());
    for chart in &charts {
        let name = chart.file_name().to_string_lossy().into_owned();
        assert!(report.contains(&name), "report.md embeds {name}");
        let svg = std::fs::read_to_string(chart.path()).expect("read a chart");
        assert!(svg.starts_with("<svg") && svg.contains("concord_threads"), "{name}");
    }
    std::fs::remove_dir_all(&out).expect("clean up");
}
