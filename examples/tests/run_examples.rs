//! Runs each example binary briefly and checks that it reports success: the examples are
//! documentation, and documentation that does not run is wrong.

use std::process::Command;

fn run(bin: &str, args: &[&str]) -> String {
    let out = Command::new(bin).args(args).output().expect("start the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{bin} {args:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn bank_on_the_executor_conserves_the_total() {
    let out = run(env!("CARGO_BIN_EXE_bank"), &["--seconds", "0.3", "--threads", "2"]);
    assert!(out.contains("conserved"), "{out}");
    assert!(out.contains("executor: tasks"), "{out}");
}

#[test]
fn bank_on_threads_conserves_the_total() {
    let out = run(env!("CARGO_BIN_EXE_bank"), &["--seconds", "0.3", "--on", "threads"]);
    assert!(out.contains("conserved"), "{out}");
}

#[test]
fn every_philosopher_eats_on_one_and_two_threads() {
    for threads in ["1", "2"] {
        let out =
            run(env!("CARGO_BIN_EXE_philosophers"), &["--meals", "500", "--threads", threads]);
        assert!(out.contains("every philosopher ate 500 meals"), "{out}");
    }
}

#[test]
fn the_pipeline_delivers_every_item_once() {
    for threads in ["1", "2"] {
        let out = run(
            env!("CARGO_BIN_EXE_pipeline"),
            &["--items", "3000", "--capacity", "4", "--threads", threads],
        );
        assert!(out.contains("every item went through once"), "{out}");
    }
}
