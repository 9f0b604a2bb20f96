//! `compare`: the same workloads on Concord's STM (threads and executor), locks, a peer
//! STM, and shared-nothing worker processes (over shared-memory rings or Unix sockets), with
//! a table on the terminal and `results.json`, `results.csv`, SVG charts and `report.md` in
//! the output folder. The worker processes are this binary, re-executed: `main` hands them
//! to `compare::shards::run_if_worker` before anything else.
//!
//! ```sh
//! cargo run --release -p concord-benches --bin compare -- --quick
//! cargo run --release -p concord-benches --bin compare -- --full --out target/compare-full
//! cargo run --release -p concord-benches --bin compare -- --smoke --contenders concord_threads,global_mutex
//! cargo run --release -p concord-benches --bin compare -- --workloads queue --workers 1,2,4
//! ```
//!
//! Every case checks its result (money conserved, no increment lost); a failed check stops
//! the run with a non-zero exit.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::Parser;
use concord_benches::compare::report::{self, RunInfo};
use concord_benches::compare::{charts, output, workloads, Case, Contender, Profile, Record};
use indicatif::{ProgressBar, ProgressStyle};

/// Threads with STM, or locks: the same workloads on every contender.
#[derive(Parser, Debug)]
#[command(name = "compare")]
struct Args {
    /// The quick profile (the default): under 3 minutes on 2 cores.
    #[arg(long, conflicts_with_all = ["full", "smoke"])]
    quick: bool,
    /// The full profile: more sizes, up to 8 workers, 3 s per case.
    #[arg(long, conflicts_with = "smoke")]
    full: bool,
    /// A few seconds in all: every contender and workload once, for CI.
    #[arg(long)]
    smoke: bool,
    /// Where to write results.json, results.csv, the charts and report.md.
    #[arg(long, default_value = "target/compare")]
    out: PathBuf,
    /// Only these contenders (comma-separated names, as in the table).
    #[arg(long, value_delimiter = ',')]
    contenders: Vec<String>,
    /// Only these workloads (comma-separated: bank, dict, counter, queue).
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Only these worker counts (comma-separated), instead of the profile's.
    #[arg(long, value_delimiter = ',')]
    workers: Vec<usize>,
    /// Seconds per case, instead of the profile's.
    #[arg(long)]
    seconds: Option<f64>,
    /// Internal: run this one case (JSON) in this process and print its record (JSON).
    #[arg(long, hide = true)]
    run_case: Option<String>,
}

fn main() -> ExitCode {
    // A worker process of the message-passing contenders runs its shard and exits here.
    concord_benches::compare::shards::run_if_worker();
    let args = Args::parse();
    if let Some(case) = &args.run_case {
        return run_case_here(case);
    }
    let profile = if args.full {
        Profile::Full
    } else if args.smoke {
        Profile::Smoke
    } else {
        Profile::Quick
    };
    let contenders: Vec<Contender> = if args.contenders.is_empty() {
        Contender::ALL.to_vec()
    } else {
        let mut chosen = Vec::new();
        for name in &args.contenders {
            match Contender::parse(name) {
                Some(c) => chosen.push(c),
                None => {
                    let known: Vec<&str> = Contender::ALL.iter().map(Contender::name).collect();
                    eprintln!("unknown contender {name:?}; known: {}", known.join(", "));
                    return ExitCode::from(2);
                }
            }
        }
        chosen
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut cases = profile.cases(&contenders, cores);
    if !args.workloads.is_empty() {
        const KNOWN: [&str; 4] = ["bank", "dict", "counter", "queue"];
        if let Some(bad) = args.workloads.iter().find(|w| !KNOWN.contains(&w.as_str())) {
            eprintln!("unknown workload {bad:?}; known: {}", KNOWN.join(", "));
            return ExitCode::from(2);
        }
        cases.retain(|c| args.workloads.iter().any(|w| w == c.workload.name()));
    }
    if !args.workers.is_empty() {
        let mut with_workers = Vec::new();
        for case in cases.iter().filter(|c| c.workers == 1) {
            for &workers in &args.workers {
                with_workers.push(Case { workers, ..*case });
            }
        }
        cases = with_workers;
    }
    if let Some(seconds) = args.seconds {
        if !(seconds > 0.0 && seconds.is_finite()) {
            eprintln!("--seconds must be a positive number, not {seconds}");
            return ExitCode::from(2);
        }
        for case in &mut cases {
            case.duration = Duration::from_secs_f64(seconds);
        }
    }
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("cannot create {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }

    let profile_name = format!("{profile:?}").to_lowercase();
    println!(
        "compare: {} profile, {} cases of {:.2} s, {} cores; writing to {}",
        profile_name,
        cases.len(),
        cases.first().map_or(0.0, |c| c.duration.as_secs_f64()),
        cores,
        args.out.display()
    );
    let bar = ProgressBar::new(cases.len() as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}, ~{eta}] {msg}")
            .expect("a valid template"),
    );
    let mut records = Vec::new();
    for case in &cases {
        bar.set_message(format!(
            "{} / {} / {} workers",
            case.workload, case.contender, case.workers
        ));
        match run_case_in_child(case) {
            Ok(record) => records.push(record),
            Err(e) => {
                bar.abandon();
                eprintln!(
                    "CORRECTNESS CHECK FAILED: {} on {} with {} workers: {e}",
                    case.workload, case.contender, case.workers
                );
                return ExitCode::FAILURE;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    print!("{}", output::table(&records));
    let info = RunInfo {
        profile: profile_name,
        cores,
        cpu: report::cpu_model(),
        seconds_per_case: cases.first().map_or(0.0, |c| c.duration.as_secs_f64()),
        commit: command_output("git", &["rev-parse", "--short", "HEAD"]),
        date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    };
    let written = output::write_files(&args.out, &records)
        .and_then(|()| charts::draw_all(&args.out, &records))
        .and_then(|charts| report::write(&args.out, &info, &records, &charts));
    if let Err(e) = written {
        eprintln!("cannot write the results into {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    println!(
        "\nall {} correctness checks passed; wrote results.json, results.csv, charts and \
         report.md to {}",
        records.len(),
        args.out.display()
    );
    ExitCode::SUCCESS
}

/// The child side: runs one case, prints its record as one line of JSON.
fn run_case_here(json: &str) -> ExitCode {
    let case: Case = match serde_json::from_str(json) {
        Ok(case) => case,
        Err(e) => {
            eprintln!("--run-case: not a case ({e}): {json}");
            return ExitCode::from(2);
        }
    };
    match workloads::run(&case) {
        Ok(outcome) => {
            let record = Record::new(&case, &outcome);
            println!("{}", serde_json::to_string(&record).expect("a record serializes"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `case` in a fresh process (this binary, re-executed) and returns its record.
fn run_case_in_child(case: &Case) -> Result<Record, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let json = serde_json::to_string(case).expect("a case serializes");
    let out = Command::new(exe)
        .arg("--run-case")
        .arg(&json)
        .output()
        .map_err(|e| format!("cannot start the child process: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("the child process failed ({}): {}", out.status, stderr.trim()));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .map_err(|e| format!("unreadable record from the child ({e}): {last}"))
}

/// The trimmed standard output of a command, or `unknown`.
fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
