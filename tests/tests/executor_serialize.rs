//! The executor's adaptive serialization (`Builder::serialize_hot_tvars`) and the STM hook it
//! rests on (`Atomically::last_conflict_tvar`): tasks hot on one TVar take its lock, tasks
//! whose conflicts move between TVars do not, counts stay exact, and a lock holder that
//! waits in `retry` lets go of the lock.
//!
//! Conflicts are forced deterministically: a body reads a TVar, has another thread commit
//! to it, then writes it back, so its commit fails validation on that TVar.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use concord_executor::Executor;
use concord_stm::{atomically, atomically_async, retry, Stm, TVar, Transaction};
use concord_tests::{run_within, scaled};

const LIMIT: Duration = Duration::from_secs(120);

/// Dooms the current attempt with a conflict on `v`: reads it, lets another thread commit
/// an increment of it, then writes the stale value back.
fn conflict_on(tx: &mut Transaction<'_>, v: &TVar<u64>) -> Stm<()> {
    let x = tx.get(v)?;
    std::thread::scope(|s| {
        s.spawn(|| atomically(|tx| tx.modify(v, |x| x + 1))).join().expect("the bump commits");
    });
    tx.write(v, x)
}

/// Polls `cond` until it holds, failing the test after `LIMIT` (a hang detector).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < LIMIT, "{what}: still false after {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn last_conflict_tvar_names_the_tvar_a_yield_was_on_and_only_then() {
    let (a, b) = (TVar::new(0_u64), TVar::new(0_u64));
    let attempts = AtomicU32::new(0);
    let mut fut = pin!(atomically_async(|tx| {
        match attempts.fetch_add(1, Ordering::Relaxed) {
            0 => conflict_on(tx, &a)?,
            1 => conflict_on(tx, &b)?,
            2 => conflict_on(tx, &a)?,
            _ => {}
        }
        tx.modify(&a, |x| x + 10)
    })
    .yield_after_conflicts(1));
    assert_eq!(fut.last_conflict_tvar(), None);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert_eq!(fut.last_conflict_tvar(), Some(a.id()));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert_eq!(fut.last_conflict_tvar(), Some(b.id()));
    // With yielding switched off, the third conflict backs off in place: no more yields.
    fut.set_yield_after_conflicts(None);
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(()));
    assert_eq!(fut.last_conflict_tvar(), None);
    assert_eq!(attempts.load(Ordering::Relaxed), 4);
    assert_eq!((a.read_atomic(), b.read_atomic()), (12, 1));

    // A wait in `retry` is not a yield.
    let gate = TVar::new(false);
    let mut waiting =
        pin!(atomically_async(|tx| concord_stm::check(tx.get(&gate)?)).yield_after_conflicts(1));
    assert!(waiting.as_mut().poll(&mut cx).is_pending());
    assert_eq!(waiting.last_conflict_tvar(), None);
}

/// One task, doomed on the same TVar on its first three attempts: after two yields on it
/// (k = 2) it takes the TVar's lock, once; holding it, it backs off in place on its third
/// conflict instead of yielding, and commits.
#[test]
fn a_task_that_keeps_conflicting_on_one_tvar_is_serialized_once() {
    run_within(LIMIT, "serialized on one TVar", || {
        let ex = Executor::builder().threads(2).serialize_hot_tvars(Some(2)).build().unwrap();
        let a = Arc::new(TVar::new(0_u64));
        let attempts = Arc::new(AtomicU32::new(0));
        let h = {
            let (a, attempts) = (a.clone(), attempts.clone());
            ex.spawn_tx(move |tx| {
                if attempts.fetch_add(1, Ordering::Relaxed) < 3 {
                    conflict_on(tx, &a)?;
                }
                tx.modify(&a, |x| x + 100)
            })
        };
        ex.block_on(h);
        assert_eq!(a.read_atomic(), 103);
        let stats = ex.stats();
        assert_eq!(stats.serialized, 1, "{stats}");
        assert_eq!((stats.stm.aborts(), stats.stm.yields), (3, 2), "{stats}");
    });
}

/// Conflicts that alternate between two TVars never make a streak on one: with k = 2 the
/// task is never serialized, however many times it yields.
#[test]
fn a_task_whose_conflicts_move_between_tvars_is_not_serialized() {
    run_within(LIMIT, "conflicts on alternating TVars", || {
        let ex = Executor::builder().threads(2).serialize_hot_tvars(Some(2)).build().unwrap();
        let (a, b) = (Arc::new(TVar::new(0_u64)), Arc::new(TVar::new(0_u64)));
        let attempts = Arc::new(AtomicU32::new(0));
        let h = {
            let (a, b, attempts) = (a.clone(), b.clone(), attempts.clone());
            ex.spawn_tx(move |tx| {
                let n = attempts.fetch_add(1, Ordering::Relaxed);
                if n < 6 {
                    conflict_on(tx, if n % 2 == 0 { &a } else { &b })?;
                }
                tx.modify(&a, |x| x + 100)
            })
        };
        ex.block_on(h);
        assert_eq!((a.read_atomic(), b.read_atomic()), (103, 3));
        let stats = ex.stats();
        assert_eq!(stats.stm.yields, 6, "{stats}");
        assert_eq!(stats.serialized, 0, "{stats}");
    });
}

/// Many tasks incrementing one TVar with the mode on: every increment counts once.
#[test]
fn serialized_increments_of_one_tvar_are_exact() {
    run_within(LIMIT, "serialized increments", || {
        for k in [1, 3] {
            let ex = Executor::builder().threads(2).serialize_hot_tvars(Some(k)).build().unwrap();
            let counter = Arc::new(TVar::new(0_u64));
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
            assert_eq!(stats.completed, n, "{stats}");
            // Yields imply conflicts; each serialization follows at least k yields.
            assert!(stats.serialized * u64::from(k) <= stats.stm.yields, "{stats}");
        }
    });
}

/// Tasks on TVars of their own never conflict, so none is ever serialized.
#[test]
fn tasks_on_unrelated_tvars_are_never_serialized() {
    run_within(LIMIT, "unrelated TVars", || {
        let ex = Executor::builder().threads(2).serialize_hot_tvars(Some(1)).build().unwrap();
        let n = scaled(10_000, 1_000);
        let vars: Vec<Arc<TVar<u64>>> = (0..n).map(|_| Arc::new(TVar::new(0))).collect();
        let handles: Vec<_> = vars
            .iter()
            .map(|v| {
                let v = v.clone();
                ex.spawn_tx(move |tx| {
                    tx.modify(&v, |x| x + 1)?;
                    tx.modify(&v, |x| x + 1)
                })
            })
            .collect();
        for h in handles {
            ex.block_on(h);
        }
        assert!(vars.iter().all(|v| v.read_atomic() == 2));
        let stats = ex.stats();
        assert_eq!(stats.serialized, 0, "{stats}");
        assert_eq!(stats.stm.yields, 0, "{stats}");
    });
}

/// Two hot TVars, each task writing both in one order or the other: tasks serialized on `A`
/// touch `B` and the other way round, with no deadlock and no lost update.
#[test]
fn tasks_serialized_on_one_tvar_may_touch_another() {
    run_within(LIMIT, "crossing TVars", || {
        let ex = Executor::builder().threads(2).serialize_hot_tvars(Some(1)).build().unwrap();
        let (a, b) = (Arc::new(TVar::new(0_u64)), Arc::new(TVar::new(0_u64)));
        let n = scaled(10_000, 1_000);
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (a, b) = (a.clone(), b.clone());
                ex.spawn_tx(move |tx| {
                    let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
                    tx.modify(first, |x| x + 1)?;
                    tx.modify(second, |x| x + 1)
                })
            })
            .collect();
        for h in handles {
            ex.block_on(h);
        }
        assert_eq!((a.read_atomic(), b.read_atomic()), (n, n));
    });
}

/// A task serialized on `A` that then waits in `retry` lets go of `A`'s lock: a producer
/// that is itself hot on `A` takes the lock, sets the flag, and wakes the waiter. Were the
/// lock kept, the two would wait for each other forever.
#[test]
fn a_serialized_task_waiting_in_retry_releases_the_lock() {
    run_within(LIMIT, "serialized waiter and producer", || {
        let ex = Executor::builder().threads(2).serialize_hot_tvars(Some(2)).build().unwrap();
        let a = Arc::new(TVar::new(0_u64));
        let flag = Arc::new(TVar::new(false));
        let waiting = Arc::new(AtomicU32::new(0));
        let consumer = {
            let (a, flag, waiting) = (a.clone(), flag.clone(), waiting.clone());
            let attempts = AtomicU32::new(0);
            ex.spawn_tx(move |tx| {
                if attempts.fetch_add(1, Ordering::Relaxed) < 2 {
                    conflict_on(tx, &a)?;
                }
                if !tx.get(&flag)? {
                    waiting.fetch_add(1, Ordering::Relaxed);
                    return retry();
                }
                tx.modify(&a, |x| x + 100)
            })
        };
        eventually("the consumer is serialized and waits", || {
            ex.stats().serialized == 1 && waiting.load(Ordering::Relaxed) >= 1
        });
        let producer = {
            let (a, flag) = (a.clone(), flag.clone());
            let attempts = AtomicU32::new(0);
            ex.spawn_tx(move |tx| {
                if attempts.fetch_add(1, Ordering::Relaxed) < 2 {
                    conflict_on(tx, &a)?;
                }
                tx.write(&flag, true)
            })
        };
        ex.block_on(producer);
        ex.block_on(consumer);
        assert_eq!(a.read_atomic(), 104);
        let stats = ex.stats();
        assert_eq!(stats.serialized, 2, "{stats}");
    });
}

#[test]
#[should_panic(expected = "serialize_hot_tvars(Some(0))")]
fn serializing_after_zero_yields_is_refused() {
    let _ = Executor::builder().serialize_hot_tvars(Some(0));
}
