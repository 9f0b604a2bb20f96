//! A pipeline through bounded transactional queues on the executor: two producers fill
//! queues `a` and `b`; workers take from *whichever of the two has an item* (`or_else`
//! over two blocking pops, in one transaction), square it and push it into queue `out`;
//! a sink sums what comes out. A full queue makes its producer's task wait (`push` is
//! `retry`), an empty one its consumer's, and no worker thread ever blocks.
//!
//! Each worker's "take one, or finish when all are taken" is one transaction that reads a
//! shared count: it waits while both queues are empty and items are still to come, and
//! ends once every item is claimed, with no sentinel values and no race at the end.
//!
//! Prints throughput and the executor's statistics, and exits non-zero unless the sum is
//! exactly the sum of the squares of every item produced.
//!
//! ```sh
//! cargo run --release -p concord-examples --bin pipeline -- --items 100000 --workers 3 --threads 2
//! ```

use std::time::Instant;

use clap::Parser;
use concord_executor::Executor;
use concord_stm::collections::TBQueue;
use concord_stm::{atomically_async, TVar};

/// A two-stage pipeline through bounded queues, with `or_else` between two inputs.
#[derive(Parser, Debug)]
struct Args {
    /// Items each producer pushes.
    #[arg(long, default_value_t = 100_000)]
    items: u64,
    /// Worker tasks between the input queues and the output queue.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Capacity of every queue.
    #[arg(long, default_value_t = 64)]
    capacity: usize,
    /// Worker threads of the executor.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() {
    let args = Args::parse();
    assert!(args.capacity > 0, "--capacity must be at least 1");
    assert!(args.workers > 0, "--workers must be at least 1");
    let ex = Executor::builder().threads(args.threads).build().expect("start the executor");
    let (a, b, out) = (
        std::sync::Arc::new(TBQueue::<u64>::new(args.capacity)),
        std::sync::Arc::new(TBQueue::<u64>::new(args.capacity)),
        std::sync::Arc::new(TBQueue::<u64>::new(args.capacity)),
    );
    let total = 2 * args.items;
    // Items claimed by the workers so far.
    let claimed = std::sync::Arc::new(TVar::new(0_u64));
    let start = Instant::now();

    // Producer `p` pushes p, p + 2, p + 4, ...: `a` gets the even numbers, `b` the odd ones.
    let producers: Vec<_> = [(0, a.clone()), (1, b.clone())]
        .into_iter()
        .map(|(first, queue)| {
            let n = args.items;
            ex.spawn(async move {
                for i in 0..n {
                    atomically_async(|tx| queue.push(tx, first + 2 * i)).await;
                }
            })
        })
        .collect();
    let workers: Vec<_> = (0..args.workers)
        .map(|_| {
            let (a, b, out, claimed) = (a.clone(), b.clone(), out.clone(), claimed.clone());
            ex.spawn(async move {
                loop {
                    // Take from whichever queue has an item, or finish if none are left.
                    let item = atomically_async(|tx| {
                        let n = *tx.read(&claimed)?;
                        if n == total {
                            return Ok(None);
                        }
                        let item = tx.or_else(|tx| a.pop(tx), |tx| b.pop(tx))?;
                        tx.write(&claimed, n + 1)?;
                        Ok(Some(item))
                    })
                    .await;
                    let Some(item) = item else { break };
                    atomically_async(|tx| out.push(tx, item * item)).await;
                }
            })
        })
        .collect();
    let sink = {
        let out = out.clone();
        ex.spawn(async move {
            let mut sum = 0_u128;
            for _ in 0..total {
                sum += u128::from(atomically_async(|tx| out.pop(tx)).await);
            }
            sum
        })
    };
    for p in producers {
        ex.block_on(p);
    }
    for w in workers {
        ex.block_on(w);
    }
    let sum = ex.block_on(sink);
    let elapsed = start.elapsed().as_secs_f64();

    // The items are 0 .. total - 1: the sum of their squares is (n-1) n (2n-1) / 6.
    let n = u128::from(total);
    let expected = (n.saturating_sub(1)) * n * (2 * n).saturating_sub(1) / 6;
    println!(
        "pipeline: 2 producers, {} workers, 1 sink, queues of {}, {} threads: {} items in {:.2} s ({:.0} items/s)",
        args.workers,
        args.capacity,
        args.threads,
        total,
        elapsed,
        total as f64 / elapsed
    );
    println!("{}", ex.stats());
    if sum == expected {
        println!("sum of squares {sum} == {expected}: every item went through once");
    } else {
        eprintln!("sum of squares {sum} != {expected}: an item was lost or duplicated");
        std::process::exit(1);
    }
}
