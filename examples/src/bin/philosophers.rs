//! Dining philosophers on the executor: each philosopher is a task that takes both of its
//! forks in one transaction, or `retry`s until both are free. Taking two forks at once is
//! what the STM makes trivial: no lock ordering, no deadlock, and a philosopher waiting
//! for a fork suspends its task instead of holding a worker thread, so 5 philosophers
//! dine on a pool of 1 or 2 threads.
//!
//! Prints how many meals each philosopher had, the executor's statistics (suspensions are
//! the waits for a fork), and exits non-zero unless every philosopher ate every meal.
//!
//! ```sh
//! cargo run --release -p concord-examples --bin philosophers -- --philosophers 5 --meals 10000 --threads 2
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use clap::Parser;
use concord_executor::Executor;
use concord_stm::{atomically_async, retry, TVar};

/// Dining philosophers with `retry` on the Concord executor.
#[derive(Parser, Debug)]
struct Args {
    /// Philosophers (and forks) around the table.
    #[arg(long, default_value_t = 5)]
    philosophers: usize,
    /// Meals each philosopher must eat.
    #[arg(long, default_value_t = 10_000)]
    meals: u64,
    /// Worker threads of the executor.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// A future that returns `Pending` once (after asking to be polled again): the task goes to
/// the back of the queue and other tasks run.
fn yield_now() -> impl Future<Output = ()> {
    struct YieldNow(bool);
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    YieldNow(false)
}

fn main() {
    let args = Args::parse();
    assert!(args.philosophers >= 2, "--philosophers must be at least 2 (each needs two forks)");
    let ex = Executor::builder().threads(args.threads).build().expect("start the executor");
    // `true`: the fork is on the table.
    let forks: Vec<TVar<bool>> = (0..args.philosophers).map(|_| TVar::new(true)).collect();
    let eaten: Vec<TVar<u64>> = (0..args.philosophers).map(|_| TVar::new(0)).collect();
    let start = Instant::now();
    // Spawned from a worker, the diners share its FIFO queue: a diner that yields goes
    // behind the others (tasks injected from outside run only when a worker is idle).
    let diners: Vec<_> = ex.install(|| {
        (0..args.philosophers)
            .map(|i| {
                let left = forks[i].clone();
                let right = forks[(i + 1) % args.philosophers].clone();
                let plate = eaten[i].clone();
                let meals = args.meals;
                ex.spawn(async move {
                    for _ in 0..meals {
                        // Take both forks at once, or wait until both are free.
                        atomically_async(|tx| {
                            if !(*tx.read(&left)? && *tx.read(&right)?) {
                                return retry();
                            }
                            tx.write(&left, false)?;
                            tx.write(&right, false)
                        })
                        .await;
                        // Eat: give the worker to other tasks while holding the forks, so that
                        // the neighbours find them taken and wait.
                        yield_now().await;
                        // Put both forks back.
                        atomically_async(|tx| {
                            tx.modify(&plate, |m| m + 1)?;
                            tx.write(&left, true)?;
                            tx.write(&right, true)
                        })
                        .await;
                    }
                })
            })
            .collect()
    });
    for d in diners {
        ex.block_on(d);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let counts: Vec<u64> = eaten.iter().map(TVar::read_atomic).collect();
    let total: u64 = counts.iter().sum();
    println!(
        "{} philosophers, {} threads: {} meals in {:.2} s ({:.0} meals/s)",
        args.philosophers,
        args.threads,
        total,
        elapsed,
        total as f64 / elapsed
    );
    println!("meals per philosopher: {counts:?}");
    println!("{}", ex.stats());
    let forks_back = forks.iter().all(TVar::read_atomic);
    if counts.iter().all(|&c| c == args.meals) && forks_back {
        println!("every philosopher ate {} meals; every fork is back on the table", args.meals);
    } else {
        eprintln!("a philosopher went hungry, or a fork is missing");
        std::process::exit(1);
    }
}
