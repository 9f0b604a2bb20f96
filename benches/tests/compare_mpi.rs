//! The `mpi` contender of the `compare` runner, end to end (feature `mpi`; needs `mpirun`):
//! every smoke workload with 1, 2 and 3 workers, under `mpirun -np 4`, so that rank 0
//! coordinates, ranks 1 to 3 serve, ranks left out of a case wait for the next, and every
//! case passes its correctness check (a failed one aborts the job: `mpirun` exits non-zero).
//! Run with `cargo test -p concord-benches --features mpi --test compare_mpi`.
#![cfg(feature = "mpi")]

use std::process::Command;

use concord_benches::compare::Record;

#[test]
fn every_workload_passes_its_check_over_mpi_with_one_to_three_workers() {
    let out = std::env::temp_dir().join(format!("concord-compare-mpi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new("mpirun")
        .args(["-np", "4", "--bind-to", "none", "--oversubscribe"])
        .arg(env!("CARGO_BIN_EXE_compare"))
        .args(["--smoke", "--contenders", "mpi", "--workers", "1,2,3", "--seconds", "0.2"])
        .arg("--out")
        .arg(&out)
        // OpenMPI refuses to run as root without both.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .expect("run mpirun (install OpenMPI: apt-get install openmpi-bin libopenmpi-dev)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "mpirun compare failed: {}\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("all 12 correctness checks passed"), "{stdout}");
    let json = std::fs::read_to_string(out.join("results.json")).expect("results.json");
    let records: Vec<Record> = serde_json::from_str(&json).expect("records parse");
    assert_eq!(records.len(), 12, "4 workloads x 3 worker counts");
    for r in &records {
        assert_eq!(r.contender, "mpi");
        assert!(r.ops > 0 && r.p50_ns > 0 && r.p99_ns >= r.p50_ns, "{r:?}");
        assert!(r.seconds >= 0.2 && r.cpu_seconds > 0.0, "{r:?}");
        // Summed over rank 0 and the case's workers, each with MPI's libraries resident.
        assert!(r.rss_bytes >= (r.workers as u64 + 1) << 20, "{r:?}");
    }
    std::fs::remove_dir_all(&out).expect("clean up");
}
