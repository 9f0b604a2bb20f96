//! The STM's futures are executor-agnostic: the same `atomically_async` transactions run on
//! tokio's multi-thread runtime, waiting by `retry` without blocking tokio's workers.

use std::time::Duration;

use concord_stm::{atomically_async, retry, TVar};
use concord_tests::{run_within, scaled};

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .expect("start a tokio runtime")
}

/// More waiting consumers than tokio has workers, all spawned before the producer.
#[test]
fn consumers_waiting_by_retry_do_not_block_tokio_workers() {
    run_within(Duration::from_secs(120), "tokio consumers", || {
        runtime(2).block_on(async {
            let queue = TVar::new(Vec::<u32>::new());
            let consumers: Vec<_> = (0..8)
                .map(|_| {
                    let queue = queue.clone();
                    tokio::spawn(atomically_async(move |tx| {
                        let items = tx.read(&queue)?;
                        let Some((&last, rest)) = items.split_last() else { return retry() };
                        let rest = rest.to_vec();
                        tx.write(&queue, rest)?;
                        Ok(last)
                    }))
                })
                .collect();
            // Let every consumer run and suspend first.
            tokio::time::sleep(Duration::from_millis(50)).await;
            for i in 0..8 {
                atomically_async(|tx| tx.modify(&queue, |q| [q.as_slice(), &[i]].concat())).await;
            }
            let mut got = Vec::new();
            for c in consumers {
                got.push(c.await.expect("the consumer task completes"));
            }
            got.sort_unstable();
            assert_eq!(got, (0..8).collect::<Vec<_>>());
        });
    });
}

#[test]
fn ping_pong_on_tokio_loses_no_wakeup() {
    let rounds = scaled(200_000, 20_000);
    run_within(Duration::from_secs(300), "tokio ping-pong", move || {
        runtime(2).block_on(async move {
            let ball = TVar::new(0_u64);
            let player = |parity: u64| {
                let ball = ball.clone();
                tokio::spawn(async move {
                    for _ in 0..rounds {
                        atomically_async(|tx| {
                            let b = *tx.read(&ball)?;
                            if b % 2 != parity {
                                return retry();
                            }
                            tx.write(&ball, b + 1)
                        })
                        .await;
                    }
                })
            };
            let (even, odd) = (player(0), player(1));
            even.await.expect("even player");
            odd.await.expect("odd player");
            assert_eq!(ball.read_atomic(), 2 * rounds);
        });
    });
}
