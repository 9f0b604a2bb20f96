//! Bank transfers on the STM: many threads move money between random accounts while an
//! auditor sums every account in one read-only transaction. Prints throughput, the abort
//! rate, and checks that the total is conserved (exits non-zero if it is not).
//!
//! Run it with:
//!
//! ```sh
//! cargo run --release -p concord-examples --bin bank -- --threads 2 --accounts 1024 --seconds 3
//! ```
//!
//! Sample output (2-vCPU VM, a quiet moment): the audits, which
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

use clap::Parser;
use concord_stm::{atomically, stats, TVar};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Bank transfers on the Concord STM, with a read-all auditor.
#[derive(Parser, Debug)]
struct Args {
    /// Worker threads.
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

fn main() {
    let args = Args::parse();
    assert!(args.accounts >= 2, "--accounts must be at least 2");
    let accounts: Arc<Vec<TVar<u64>>> =
        Arc::new((0..args.accounts).map(|_| TVar::new(INITIAL)).collect());
    let expected = INITIAL * args.accounts as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(args.threads + 1));
    let before = stats::snapshot();

    let workers: Vec<_> = (0..args.threads)
        .map(|i| {
            let (accounts, stop, barrier) = (accounts.clone(), stop.clone(), barrier.clone());
            let (audit_every, seed) = (args.audit_every, args.seed + i as u64);
            std::thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(seed);
                let (mut transfers, mut audits) = (0_u64, 0_u64);
                barrier.wait();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        if audit_every != 0 && rng.gen_range(0..audit_every) == 0 {
                            let total = atomically(|tx| {
                                let mut sum = 0;
                                for a in accounts.iter() {
                                    sum += *tx.read(a)?;
                                }
                                Ok(sum)
                            });
                            assert_eq!(total, expected, "an audit saw money created or lost");
                            audits += 1;
                        } else {
                            let from = rng.gen_range(0..accounts.len());
                            let to = (from + rng.gen_range(1..accounts.len())) % accounts.len();
                            let amount = rng.gen_range(1..=10);
                            atomically(|tx| {
                                let f = *tx.read(&accounts[from])?;
                                if f >= amount {
                                    tx.write(&accounts[from], f - amount)?;
                                    tx.modify(&accounts[to], |t| t + amount)?;
                                }
                                Ok(())
                            });
                            transfers += 1;
                        }
                    }
                }
                (transfers, audits)
            })
        })
        .collect();

    barrier.wait();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::Relaxed);
    let (mut transfers, mut audits) = (0, 0);
    for w in workers {
        let (t, a) = w.join().expect("worker panicked");
        transfers += t;
        audits += a;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let s = stats::snapshot().since(&before);

    let total: u64 = accounts.iter().map(TVar::read_atomic).sum();
    println!(
        "bank: {} threads, {} accounts, {:.1} s, 1 audit in {} transactions",
        args.threads, args.accounts, elapsed, args.audit_every
    );
    println!(
        "transfers {:>8.2} M ({:>6.2} M/s)   audits {:>8}   aborts/commit {:.4}",
        transfers as f64 / 1e6,
        transfers as f64 / elapsed / 1e6,
        audits,
        s.aborts_per_commit()
    );
    println!("stm: {s}");
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
