//! The executor: `retry` suspends tasks, never workers; wakeups, panics, cancellation,
//! `for_each_tx`, and the statistics that show what happened.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_executor::Executor;
use concord_stm::{atomically, atomically_async, retry, TVar};
use concord_tests::{panic_message, run_within, scaled};

const LIMIT: Duration = Duration::from_secs(120);

fn pool(threads: usize) -> Executor {
    Executor::builder().threads(threads).build().expect("start the pool")
}

/// Polls `cond` until it holds, failing the test after `LIMIT` (a hang detector).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < LIMIT, "{what}: still false after {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Eight consumers wait (by `retry`) on an empty queue before the producer is even
/// spawned. If a waiting transaction blocked its worker, the producer would never run on a
/// pool of one or two threads.
fn consumers_before_producer(threads: usize) {
    run_within(LIMIT, "8 consumers and 1 producer", move || {
        let ex = pool(threads);
        let queue = TVar::new(Vec::<u32>::new());
        let consumers: Vec<_> = (0..8)
            .map(|_| {
                let queue = queue.clone();
                ex.spawn_tx(move |tx| {
                    let items = tx.read(&queue)?;
                    let Some((&last, rest)) = items.split_last() else { return retry() };
                    let rest = rest.to_vec();
                    tx.write(&queue, rest)?;
                    Ok(last)
                })
            })
            .collect();
        // Every consumer has run and suspended: all workers are free again.
        eventually("8 suspended consumers", || ex.stats().suspensions >= 8);
        let producer = {
            let queue = queue.clone();
            ex.spawn(async move {
                for i in 0..8 {
                    atomically_async(|tx| tx.modify(&queue, |q| [q.as_slice(), &[i]].concat()))
                        .await;
                }
            })
        };
        ex.block_on(producer);
        let mut got: Vec<u32> = consumers.into_iter().map(|c| ex.block_on(c)).collect();
        got.sort_unstable();
        assert_eq!(got, (0..8).collect::<Vec<_>>());
        let stats = ex.stats();
        assert!(stats.wakeups >= 8, "every consumer was woken: {stats}");
        assert_eq!(stats.completed, 9, "{stats}");
        assert!(stats.stm.retries >= 8, "{stats}");
    });
}

#[test]
fn suspended_consumers_do_not_starve_the_producer_on_one_thread() {
    consumers_before_producer(1);
}

#[test]
fn suspended_consumers_do_not_starve_the_producer_on_two_threads() {
    consumers_before_producer(2);
}

/// Two tasks hand a ball back and forth through one TVar; each waits for its turn by
/// `retry`. A single lost wakeup hangs the test.
#[test]
fn ping_pong_between_tasks_loses_no_wakeup() {
    let rounds = scaled(1_000_000, 50_000);
    run_within(Duration::from_secs(600), "ping-pong between tasks", move || {
        let ex = pool(2);
        let ball = TVar::new(0_u64);
        let player = |parity: u64| {
            let ball = ball.clone();
            ex.spawn(async move {
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
        ex.block_on(even);
        ex.block_on(odd);
        assert_eq!(ball.read_atomic(), 2 * rounds);
    });
}

#[test]
fn a_panic_in_a_task_reaches_its_handle_and_the_pool_lives_on() {
    run_within(LIMIT, "panic propagation", || {
        let ex = pool(2);
        let v = TVar::new(0);
        let handle = {
            let v = v.clone();
            ex.spawn_tx(move |tx| -> concord_stm::Stm<()> {
                tx.write(&v, 1)?;
                panic!("boom in a task")
            })
        };
        let err = panic::catch_unwind(AssertUnwindSafe(|| ex.block_on(handle)))
            .expect_err("the panic reaches the JoinHandle");
        assert_eq!(panic_message(&*err), "boom in a task");
        assert_eq!(v.read_atomic(), 0, "the panicking attempt committed nothing");
        // The pool still runs tasks.
        let v2 = v.clone();
        assert_eq!(ex.block_on(ex.spawn_tx(move |tx| tx.modify(&v2, |x| x + 2).map(|()| 7))), 7);
        assert_eq!(v.read_atomic(), 2);
        assert_eq!(ex.stats().panicked, 1);
    });
}

/// Counts drops of the value a suspended task's future owns.
struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn dropping_the_handle_of_a_suspended_task_frees_it_and_its_waiter() {
    run_within(LIMIT, "cancellation", || {
        let ex = pool(1);
        let flag = TVar::new(false);
        let drops = Arc::new(AtomicUsize::new(0));
        let handle = {
            let flag = flag.clone();
            let owned = DropCounter(drops.clone());
            ex.spawn_tx(move |tx| {
                let _keep = &owned;
                concord_stm::check(*tx.read(&flag)?)
            })
        };
        eventually("the task suspends", || ex.stats().suspensions == 1);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(handle);
        eventually("the cancelled task's future is dropped", || drops.load(Ordering::SeqCst) == 1);
        // The future owned the STM registration, which left the wait table with it: the
        // commit below polls nobody, and the pool goes on.
        let polls = ex.stats().polls;
        atomically(|tx| tx.write(&flag, true));
        let probe = ex.spawn_tx(|_| Ok(()));
        ex.block_on(probe);
        let stats = ex.stats();
        assert_eq!(stats.polls, polls + 1, "only the probe ran: {stats}");
        assert_eq!(stats.wakeups, 0, "{stats}");
        assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped exactly once");
    });
}

#[test]
fn a_task_woken_after_its_executor_is_gone_is_cancelled_and_a_live_one_resumes() {
    run_within(LIMIT, "wake after the executor is dropped", || {
        // Two executors with suspended tasks, woken by commits on this thread (outside both
        // pools): the schedule function looks each task's executor up by id.
        let (gone, live) = (pool(1), pool(1));
        let flag = TVar::new(false);
        let drops = Arc::new(AtomicUsize::new(0));
        let waiter = |ex: &Executor| {
            let flag = flag.clone();
            let owned = DropCounter(drops.clone());
            ex.spawn_tx(move |tx| {
                let _keep = &owned;
                concord_stm::check(*tx.read(&flag)?)
            })
        };
        let orphan = waiter(&gone);
        let resumed = waiter(&live);
        eventually("both tasks suspend", || {
            gone.stats().suspensions == 1 && live.stats().suspensions == 1
        });
        orphan.detach();
        drop(gone);
        atomically(|tx| tx.write(&flag, true));
        live.block_on(resumed);
        eventually("the orphan's future is dropped, not run", || drops.load(Ordering::SeqCst) == 2);
        assert_eq!(live.stats().completed, 1);
    });
}

#[test]
fn for_each_tx_conserves_the_total_of_transfers() {
    run_within(LIMIT, "for_each_tx transfers", || {
        let ex = pool(2);
        let accounts: Arc<Vec<TVar<i64>>> = Arc::new((0..16).map(|_| TVar::new(1000)).collect());
        let n = scaled(200_000, 20_000) as usize;
        let transfers: Vec<(usize, usize, i64)> =
            (0..n).map(|i| (i % 16, (i * 7 + 3) % 16, (i % 13) as i64)).collect();
        let acc = accounts.clone();
        ex.for_each_tx(transfers, move |&(from, to, amount), tx| {
            tx.modify(&acc[from], |b| b - amount)?;
            tx.modify(&acc[to], |b| b + amount)
        });
        let total: i64 = atomically(|tx| accounts.iter().map(|a| tx.get(a)).sum());
        assert_eq!(total, 16 * 1000);
        let stats = ex.stats();
        assert_eq!(stats.stm.commits as usize, n, "one commit per item: {stats}");
        assert_eq!(stats.spawned, 0, "no item retried, so none became a task: {stats}");
    });
}

/// Item `i` waits until the counter reaches `i`: most items retry and become suspended
/// tasks, woken in turn as the counter grows.
#[test]
fn for_each_tx_items_that_retry_become_tasks_and_all_complete() {
    run_within(LIMIT, "for_each_tx with retries", || {
        let ex = pool(2);
        let counter = TVar::new(0_usize);
        let c = counter.clone();
        let items: Vec<usize> = (0..64).rev().collect();
        ex.for_each_tx(items, move |&i, tx| {
            if *tx.read(&c)? != i {
                return retry();
            }
            tx.write(&c, i + 1)
        });
        assert_eq!(counter.read_atomic(), 64);
        let stats = ex.stats();
        assert!(stats.spawned >= 1, "some items suspended: {stats}");
        assert_eq!(stats.completed, stats.spawned, "{stats}");
    });
}

#[test]
fn block_on_and_for_each_tx_refuse_to_block_a_worker() {
    let ex = pool(1);
    let inner = ex.clone();
    let err = panic::catch_unwind(AssertUnwindSafe(|| {
        ex.install(move || inner.block_on(async { 1 }));
    }))
    .expect_err("block_on on a worker panics");
    assert!(panic_message(&*err).contains("`.await` instead"), "{}", panic_message(&*err));
    let inner = ex.clone();
    let err = panic::catch_unwind(AssertUnwindSafe(|| {
        ex.install(move || inner.for_each_tx(vec![1], |_, _| Ok(())));
    }))
    .expect_err("for_each_tx on a worker panics");
    assert!(panic_message(&*err).contains("for_each_tx"), "{}", panic_message(&*err));
    // The pool survived both.
    assert_eq!(ex.install(|| 5), 5);
}

/// Under heavy conflict, transactions that yield after conflicts still all commit.
#[test]
fn yielding_transactions_all_commit() {
    run_within(LIMIT, "yielding increments", || {
        let ex = Executor::builder().threads(2).yield_after_conflicts(Some(1)).build().unwrap();
        let counter = TVar::new(0_u64);
        let n = scaled(20_000, 2_000);
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let c = counter.clone();
                ex.spawn_tx(move |tx| tx.modify(&c, |x| x + 1))
            })
            .collect();
        for h in handles {
            ex.block_on(h);
        }
        assert_eq!(counter.read_atomic(), n);
        let stats = ex.stats();
        // With a yield after every conflict, a transaction's first conflict always yields.
        assert!(stats.stm.yields <= stats.stm.aborts(), "{stats}");
        assert_eq!(stats.stm.aborts() > 0, stats.stm.yields > 0, "{stats}");
    });
}

#[test]
fn stats_record_latencies_of_transactions_and_wakes() {
    run_within(LIMIT, "latency histograms", || {
        let ex = pool(2);
        let gate = TVar::new(false);
        let waiter = {
            let gate = gate.clone();
            ex.spawn_tx(move |tx| concord_stm::check(*tx.read(&gate)?))
        };
        eventually("the waiter suspends", || ex.stats().suspensions >= 1);
        atomically(|tx| tx.write(&gate, true));
        ex.block_on(waiter);
        let stats = ex.stats();
        assert_eq!(stats.spawn_to_commit.count, 1, "{stats}");
        assert!(stats.wake_to_resume.count >= 1, "{stats}");
        assert!(stats.spawn_to_commit.p50_ns > 0 && stats.wake_to_resume.max_ns > 0, "{stats}");
    });
}

/// Returns `Pending` once, asking to be polled again: the task goes back to the queue.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// A task that yields goes behind the other tasks its worker queued: on one thread, a
/// task busy-waiting by yielding for a flag lets the task that sets it run (from the top
/// of a LIFO deque it would run again at once, forever).
#[test]
fn a_yielding_task_lets_the_other_local_tasks_run() {
    run_within(LIMIT, "yield fairness", || {
        let ex = pool(1);
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (spinner, setter) = ex.install(|| {
            let f = flag.clone();
            let spinner = ex.spawn(async move {
                let mut spins = 0_u64;
                while !f.load(Ordering::SeqCst) {
                    yield_now().await;
                    spins += 1;
                }
                spins
            });
            let f = flag.clone();
            let setter = ex.spawn(async move { f.store(true, Ordering::SeqCst) });
            (spinner, setter)
        });
        ex.block_on(setter);
        assert!(ex.block_on(spinner) >= 1);
    });
}
