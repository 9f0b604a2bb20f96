//! Bank transfers on the STM: many workers move money between random accounts while
//! audits sum every account in one read-only transaction. Prints throughput, the abort
//! rate, and checks that the total is conserved (exits non-zero if it is not).
//!
//! With `--on executor` (the default) the transfers and audits run in batches through
//! `Executor::for_each_tx` on a `concord-executor` pool; with `--on threads`, each of
//! `--threads` plain threads runs its own loop of `atomically`. An audit asserts the total
//! inside its transaction body: opacity guarantees that even an attempt that later aborts
//! sees a consistent snapshot, so the assertion can never fire on a torn state.
//!
//! Run it with:
//!
//! ```sh
//! cargo run --release -p concord-examples --bin bank -- --threads 2 --accounts 1024 --seconds 3
//! cargo run --release -p concord-examples --bin bank -- --on threads
//! ```
//!
//! Sample output of `--on threads` (2-vCPU VM, a quiet moment): the audits, which
//! read all 1024 accounts, are what conflicts; the hot spots name the line of their read, and
//! some audits escalate to the serial mode, where they always commit.
//!
//! ```text
//! bank: 2 threads, 1024 accounts, 3.0 s, 1 audit in 64 transactions
//! transfers     7.13 M (  2.37 M/s)   audits   112870   aborts/commit 0.0119
//! stm: commits 7238400 (read-only 122651), aborts 86106 (read 85614, lock 64, validate 428; 0.012/commit), user aborts 0, retries 0, wakeups 0, serial 2715, panics 0
//!   hot spot: 6108 aborts on TVar 0x558e0f2c5f80 at examples/src/bin/bank.rs:75:48
//! total 1024000 == 1024000: conserved
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use concord_executor::Executor;
use concord_stm::{atomically, stats, Stm, TVar, Transaction};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Where the transactions run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum On {
    /// Batches through `for_each_tx` on the executor's workers.
    Executor,
    /// One loop of `atomically` per plain thread.
    Threads,
}

/// Bank transfers on the Concord STM, with a read-all auditor.
#[derive(Parser, Debug)]
struct Args {
    /// Where the transactions run.
    #[arg(long, value_enum, default_value_t = On::Executor)]
    on: On,
    /// Worker threads (of the executor, or plain).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Number of accounts (fewer accounts, more contention).
    #[arg(long, default_value_t = 1024)]
    accounts: usize,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// One transaction in this many sums every account (0: never).
    #[arg(long, default_value_t = 64)]
    audit_every: u64,
    /// Seed of the first thread (thread i uses seed + i).
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

const INITIAL: u64 = 1000;

/// One operation of the workload.
#[derive(Clone, Copy, Debug)]
enum Op {
    Transfer { from: usize, to: usize, amount: u64 },
    Audit,
}

impl Op {
    fn random(rng: &mut SmallRng, accounts: usize, audit_every: u64) -> Op {
        if audit_every != 0 && rng.gen_range(0..audit_every) == 0 {
            return Op::Audit;
        }
        let from = rng.gen_range(0..accounts);
        let to = (from + rng.gen_range(1..accounts)) % accounts;
        Op::Transfer { from, to, amount: rng.gen_range(1..=10) }
    }

    /// The operation's transaction body.
    fn run(&self, accounts: &[TVar<u64>], tx: &mut Transaction<'_>) -> Stm<()> {
        match *self {
            Op::Transfer { from, to, amount } => {
                let f = *tx.read(&accounts[from])?;
                if f >= amount {
                    tx.write(&accounts[from], f - amount)?;
                    tx.modify(&accounts[to], |t| t + amount)?;
                }
            }
            Op::Audit => {
                let mut sum = 0;
                for a in accounts {
                    sum += *tx.read(a)?;
                }
                let expected = INITIAL * accounts.len() as u64;
                assert_eq!(sum, expected, "an audit saw money created or lost");
            }
        }
        Ok(())
    }
}

/// Counts of operations run: (transfers, audits).
type Counts = (u64, u64);

fn count(counts: &mut Counts, op: &Op) {
    match op {
        Op::Transfer { .. } => counts.0 += 1,
        Op::Audit => counts.1 += 1,
    }
}

/// Plain threads, each looping over `atomically` until `stop`.
fn on_threads(args: &Args, accounts: &Arc<Vec<TVar<u64>>>) -> (Counts, f64, Option<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(args.threads + 1));
    let workers: Vec<_> = (0..args.threads)
        .map(|i| {
            let (accounts, stop, barrier) = (accounts.clone(), stop.clone(), barrier.clone());
            let (audit_every, seed) = (args.audit_every, args.seed + i as u64);
            std::thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(seed);
                let mut counts = (0, 0);
                barrier.wait();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        let op = Op::random(&mut rng, accounts.len(), audit_every);
                        atomically(|tx| op.run(&accounts, tx));
                        count(&mut counts, &op);
                    }
                }
                counts
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::Relaxed);
    let mut counts = (0, 0);
    for w in workers {
        let (t, a) = w.join().expect("worker panicked");
        counts.0 += t;
        counts.1 += a;
    }
    (counts, start.elapsed().as_secs_f64(), None)
}

/// Batches of operations through `for_each_tx` on the executor until the time is up.
/// Also returns the executor's statistics, to print.
fn on_executor(args: &Args, accounts: &Arc<Vec<TVar<u64>>>) -> (Counts, f64, Option<String>) {
    let ex = Executor::builder().threads(args.threads).build().expect("start the executor");
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut counts = (0, 0);
    let mut batch = Vec::with_capacity(BATCH);
    let mut busy = Duration::ZERO;
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < args.seconds {
        batch.clear();
        batch.extend((0..BATCH).map(|_| Op::random(&mut rng, accounts.len(), args.audit_every)));
        batch.iter().for_each(|op| count(&mut counts, op));
        let items = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
        let accounts = accounts.clone();
        let t = Instant::now();
        ex.for_each_tx(items, move |op, tx| op.run(&accounts, tx));
        busy += t.elapsed();
    }
    let stats = format!("executor: {}", ex.stats().to_string().replace('\n', "\n  "));
    // Throughput over the time spent in for_each_tx (not in generating the batches).
    (counts, busy.as_secs_f64(), Some(stats))
}

/// Operations per `for_each_tx` call.
const BATCH: usize = 1 << 16;

fn main() {
    let args = Args::parse();
    assert!(args.accounts >= 2, "--accounts must be at least 2");
    assert!(args.threads >= 1, "--threads must be at least 1");
    let accounts: Arc<Vec<TVar<u64>>> =
        Arc::new((0..args.accounts).map(|_| TVar::new(INITIAL)).collect());
    let expected = INITIAL * args.accounts as u64;
    let before = stats::snapshot();
    let ((transfers, audits), elapsed, executor) = match args.on {
        On::Threads => on_threads(&args, &accounts),
        On::Executor => on_executor(&args, &accounts),
    };
    let s = stats::snapshot().since(&before);

    let total: u64 = accounts.iter().map(TVar::read_atomic).sum();
    println!(
        "bank on {:?}: {} threads, {} accounts, {:.1} s, 1 audit in {} transactions",
        args.on, args.threads, args.accounts, elapsed, args.audit_every
    );
    println!(
        "transfers {:>8.2} M ({:>6.2} M/s)   audits {:>8}   aborts/commit {:.4}",
        transfers as f64 / 1e6,
        transfers as f64 / elapsed / 1e6,
        audits,
        s.aborts_per_commit()
    );
    println!("stm: {s}");
    if let Some(executor) = executor {
        println!("{executor}");
    }
    for c in stats::hot_spots(3) {
        println!("  hot spot: {c}");
    }
    if total == expected {
        println!("total {total} == {expected}: conserved");
    } else {
        eprintln!("total {total} != {expected}: NOT conserved");
        std::process::exit(1);
    }
}
