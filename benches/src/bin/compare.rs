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
//! With the feature `mpi`, the contender `mpi` runs the same shard workers as MPI ranks:
//! start the runner with `mpirun`, one rank per worker plus rank 0, which runs the runner
//! (see `benches/README.md` for several machines):
//!
//! ```sh
//! cargo build --release -p concord-benches --features mpi --bin compare
//! mpirun -np 3 --bind-to none --oversubscribe target/release/compare --smoke --contenders mpi
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
    /// Only these contenders (comma-separated names, as in the table). `mpi` runs only under
    /// `mpirun`, in a build with the feature `mpi`.
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
        Contender::DEFAULT.to_vec()
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
    // Under mpirun, ranks other than 0 serve the mpi cases in there, then exit.
    let cluster = match mpi::start(&cases) {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(cluster) = &cluster {
        let most = cluster.max_workers();
        let before = cases.len();
        cases.retain(|c| c.contender != Contender::Mpi || c.workers <= most);
        if cases.len() < before {
            println!(
                "mpi: {} ranks, so at most {most} workers: skipping {} mpi cases with more \
                 (mpirun -np N runs up to N - 1)",
                most + 1,
                before - cases.len()
            );
        }
    }
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        mpi::finish(&cluster);
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
        let result = match &cluster {
            Some(cluster) if case.contender == Contender::Mpi => mpi::run(cluster, case),
            _ => run_case_in_child(case),
        };
        match result {
            Ok(record) => records.push(record),
            Err(e) => {
                bar.abandon();
                eprintln!(
                    "CORRECTNESS CHECK FAILED: {} on {} with {} workers: {e}",
                    case.workload, case.contender, case.workers
                );
                mpi::abort(&cluster);
                return ExitCode::FAILURE;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    mpi::finish(&cluster);

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

/// Starting the `mpi` contender under `mpirun`, or explaining how to.
#[cfg(feature = "mpi")]
mod mpi {
    use concord_benches::compare::shards::mpi::{launcher_rank, Cluster};
    use concord_benches::compare::{Case, Contender, Record};

    /// Joins the MPI job if the `mpi` contender has cases; ranks other than 0 serve them
    /// here and exit. Returns the cluster in rank 0, `None` without MPI.
    pub(crate) fn start(cases: &[Case]) -> Result<Option<Cluster>, String> {
        let wanted = cases.iter().filter(|c| c.contender == Contender::Mpi).map(|c| c.workers);
        let Some(most) = wanted.max() else {
            return match launcher_rank() {
                Some(rank) if rank > 0 => Err(format!(
                    "rank {rank}: started by mpirun, but only the mpi contender uses the other \
                     ranks and it has no cases here"
                )),
                _ => Ok(None),
            };
        };
        if launcher_rank().is_none() {
            return Err(super::mpirun_hint(most, "the mpi contender runs under mpirun"));
        }
        let cluster = Cluster::join()?;
        if cluster.rank() > 0 {
            cluster.serve()?;
            drop(cluster); // finalizes MPI
            std::process::exit(0);
        }
        println!(
            "mpi: rank 0 of {} on {}; mpi cases run on ranks 1 to {}",
            cluster.max_workers() + 1,
            cluster.host(),
            cluster.max_workers()
        );
        let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
        let online = std::fs::read_to_string("/proc/cpuinfo")
            .map_or(0, |s| s.lines().filter(|l| l.starts_with("processor")).count());
        if usable < online {
            println!(
                "mpi: warning: this rank may use {usable} of the {online} cores (mpirun binds \
                 ranks to cores when there are no more ranks than cores); the other contenders' \
                 cases, which run in its child processes, are bound too: start with \
                 mpirun --bind-to none"
            );
        }
        Ok(Some(cluster))
    }

    /// Runs an mpi case (rank 0).
    pub(crate) fn run(cluster: &Cluster, case: &Case) -> Result<Record, String> {
        cluster.run(case).map(|outcome| Record::new(case, &outcome))
    }

    /// Ends the whole job after a failure (rank 0).
    pub(crate) fn abort(cluster: &Option<Cluster>) {
        if let Some(cluster) = cluster {
            cluster.abort(1);
        }
    }

    /// Releases the other ranks: no more cases.
    pub(crate) fn finish(cluster: &Option<Cluster>) {
        if let Some(cluster) = cluster {
            cluster.finish();
        }
    }
}

/// Without the feature `mpi`: the `mpi` contender is refused with the commands to use.
#[cfg(not(feature = "mpi"))]
mod mpi {
    use concord_benches::compare::{Case, Contender, Record};

    /// No cluster without the feature.
    pub(crate) enum Cluster {}

    impl Cluster {
        pub(crate) fn max_workers(&self) -> usize {
            match *self {}
        }
    }

    pub(crate) fn start(cases: &[Case]) -> Result<Option<Cluster>, String> {
        let wanted = cases.iter().filter(|c| c.contender == Contender::Mpi).map(|c| c.workers);
        match wanted.max() {
            None => Ok(None),
            Some(most) => Err(format!(
                "this compare was built without the feature mpi; build it with\n  \
                 cargo build --release -p concord-benches --features mpi --bin compare\n\
                 (needs an MPI library, libclang and pkg-config: on Debian, apt-get install \
                 libopenmpi-dev openmpi-bin libclang-dev pkg-config), then\n{}",
                super::mpirun_hint(most, "the mpi contender runs under mpirun")
            )),
        }
    }

    pub(crate) fn run(cluster: &Cluster, _case: &Case) -> Result<Record, String> {
        match *cluster {}
    }

    pub(crate) fn abort(_cluster: &Option<Cluster>) {}

    pub(crate) fn finish(_cluster: &Option<Cluster>) {}
}

/// `why`, and the `mpirun` command that runs this very command line with enough ranks for
/// `workers` workers.
fn mpirun_hint(workers: usize, why: &str) -> String {
    let exe =
        std::env::current_exe().map_or_else(|_| "compare".to_owned(), |p| p.display().to_string());
    let args: Vec<String> = std::env::args().skip(1).map(|a| shell_quote(&a)).collect();
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.strip_prefix("Uid:").and_then(|u| u.split_whitespace().next()) == Some("0"))
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ranks = workers + 1;
    let oversubscribe = if ranks > cores { " --oversubscribe" } else { "" };
    let as_root = if root { " --allow-run-as-root" } else { "" };
    format!(
        "{why}, one rank per worker plus rank 0 ({workers} workers: {ranks} ranks):\n  \
         mpirun -np {ranks} --bind-to none{oversubscribe}{as_root} {} {}",
        shell_quote(&exe),
        args.join(" ")
    )
}

/// `s`, quoted for a POSIX shell if it needs it.
fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=,:+".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
