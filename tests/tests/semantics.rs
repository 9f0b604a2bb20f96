//! The semantics of one transaction at a time, one behaviour per test: `retry` without
//! reads, panics in a body, `after_commit` / `after_abort` hooks, `or_else` waiting on both
//! branches, `Debug` output, `read_atomic` inside a body, statistics and conflict
//! attribution.
//!
//! Counters are checked with `stats::thread_snapshot` on a thread the test owns: the tests of
//! this binary run in parallel, so process-wide totals only ever grow by at least as much.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use concord_stm::{abort, atomically, atomically_or_err, check, retry, stats, TVar};
use concord_tests::{panic_message, run_within};

/// The bound on anything that waits for a wakeup: a hang detector, not a speed limit.
const WAKE_LIMIT: Duration = Duration::from_secs(10);

/// Commits `v += 1` from another thread (so the calling transaction, if it read `v`, now
/// conflicts).
fn bump_elsewhere(v: &TVar<u64>) {
    std::thread::scope(|s| {
        s.spawn(|| atomically(|tx| tx.modify(v, |x| x + 1))).join().expect("bump thread");
    });
}

#[test]
fn retry_without_reads_panics_clearly() {
    let payload = panic::catch_unwind(|| atomically(|_tx| retry::<()>())).unwrap_err();
    let msg = panic_message(&*payload);
    assert!(msg.contains("read no TVar"), "unexpected message: {msg}");

    // A transaction that only wrote has read nothing either; its write is discarded.
    let v = TVar::new(1_u64);
    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        atomically(|tx| {
            tx.write(&v, 2)?;
            retry::<()>()
        })
    }))
    .unwrap_err();
    assert!(panic_message(&*payload).contains("read no TVar"));
    assert_eq!((v.read_atomic(), v.version()), (1, 0));

    // The thread's transaction context is intact afterwards.
    atomically(|tx| tx.modify(&v, |x| x + 1));
    assert_eq!(v.read_atomic(), 2);
}

#[test]
fn retry_in_a_first_branch_without_reads_is_fine() {
    // Only a retry that reaches the top with no reads is an error: `or_else` catches it.
    let v = TVar::new(5_u64);
    let x = atomically(|tx| tx.or_else(|_| retry(), |tx| tx.get(&v)));
    assert_eq!(x, 5);
}

#[test]
fn panic_in_body_discards_writes_and_resumes() {
    let v = TVar::new(1_u64);
    let w = TVar::new(String::from("before"));
    let before = stats::thread_snapshot();
    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        atomically::<()>(|tx| {
            tx.write(&v, 2)?;
            tx.write(&w, String::from("after"))?;
            let seen = tx.get(&v)?;
            panic!("boom at {seen}")
        })
    }))
    .unwrap_err();
    assert_eq!(panic_message(&*payload), "boom at 2");
    assert_eq!((v.read_atomic(), v.version()), (1, 0));
    assert_eq!((w.read_atomic().as_str(), w.version()), ("before", 0));
    assert_eq!(stats::thread_snapshot().since(&before).panics, 1);
    assert_eq!(stats::thread_snapshot().since(&before).commits, 0);

    // Nothing was left locked: another thread can commit to both.
    run_within(WAKE_LIMIT, "a commit after a panic", {
        let (v, w) = (v.clone(), w.clone());
        move || {
            atomically(|tx| {
                tx.modify(&v, |x| x + 10)?;
                tx.write(&w, String::from("other"))
            })
        }
    });
    assert_eq!(v.read_atomic(), 11);
}

#[test]
fn panic_payload_of_any_type_is_resumed() {
    #[derive(Debug, PartialEq)]
    struct Custom(u32);

    let v = TVar::new(0_u32);
    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        atomically::<()>(|tx| {
            tx.write(&v, 9)?;
            panic::panic_any(Custom(7))
        })
    }))
    .unwrap_err();
    assert_eq!(payload.downcast_ref::<Custom>(), Some(&Custom(7)));
    assert_eq!(v.read_atomic(), 0);
}

#[test]
fn panic_in_nested_transaction_discards_the_outer_writes() {
    let v = TVar::new(0_u32);
    let w = TVar::new(0_u32);
    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        atomically(|tx| {
            tx.write(&v, 1)?;
            atomically::<()>(|tx| {
                tx.write(&w, 1)?;
                panic!("inner")
            });
            Ok(())
        })
    }))
    .unwrap_err();
    assert_eq!(panic_message(&*payload), "inner");
    assert_eq!((v.read_atomic(), w.read_atomic()), (0, 0));
}

/// A hook for `after_commit` / `after_abort`.
type Hook = Box<dyn FnOnce()>;

/// A counter, and a maker of hooks (`'static`, not `Send`) that bump it.
fn counter() -> (Rc<Cell<u32>>, impl Fn() -> Hook) {
    let c = Rc::new(Cell::new(0));
    let c2 = c.clone();
    (c, move || -> Hook {
        let c = c2.clone();
        Box::new(move || c.set(c.get() + 1))
    })
}

#[test]
fn after_commit_runs_once_on_commit() {
    let v = TVar::new(0_u64);
    let (commits, on_commit) = counter();
    let (aborts, on_abort) = counter();
    atomically(|tx| {
        tx.after_commit(on_commit());
        tx.after_abort(on_abort());
        tx.modify(&v, |x| x + 1)
    });
    assert_eq!((commits.get(), aborts.get()), (1, 0));

    // A read-only transaction commits too.
    atomically(|tx| {
        tx.after_commit(on_commit());
        tx.get(&v)
    });
    assert_eq!((commits.get(), aborts.get()), (2, 0));
}

#[test]
fn after_commit_runs_once_even_when_the_body_reruns() {
    let v = TVar::new(0_u64);
    let w = TVar::new(0_u64);
    let (commits, on_commit) = counter();
    let (aborts, on_abort) = counter();
    let mut attempts = 0;
    atomically(|tx| {
        attempts += 1;
        tx.after_commit(on_commit());
        tx.after_abort(on_abort());
        let x = tx.get(&v)?;
        if attempts == 1 {
            // Invalidate our read of `v`: this attempt cannot commit.
            bump_elsewhere(&v);
        }
        tx.write(&w, x)
    });
    assert_eq!(attempts, 2);
    assert_eq!(commits.get(), 1, "after_commit must run once, not once per attempt");
    assert_eq!(aborts.get(), 1, "after_abort runs for the abandoned attempt");
    assert_eq!(w.read_atomic(), 1, "the committed attempt saw the other commit");
}

#[test]
fn after_abort_runs_on_user_abort_and_panic_not_after_commit() {
    let v = TVar::new(0_u64);
    let (commits, on_commit) = counter();
    let (aborts, on_abort) = counter();

    let r: Result<(), &str> = atomically_or_err(|tx| {
        tx.after_commit(on_commit());
        tx.after_abort(on_abort());
        tx.write(&v, 1)?;
        abort("no")
    });
    assert_eq!(r, Err("no"));
    assert_eq!((commits.get(), aborts.get()), (0, 1));

    let on_commit2 = on_commit();
    let on_abort2 = on_abort();
    let mut hooks = Some((on_commit2, on_abort2));
    let _ = panic::catch_unwind(AssertUnwindSafe(|| {
        atomically::<()>(|tx| {
            let (c, a) = hooks.take().expect("one attempt");
            tx.after_commit(c);
            tx.after_abort(a);
            panic!("in body")
        })
    }));
    assert_eq!((commits.get(), aborts.get()), (0, 2));
    assert_eq!(v.read_atomic(), 0);
}

#[test]
fn hooks_of_a_rolled_back_branch() {
    // The branch that retried is rolled back: its commit hook is dropped, its abort hook runs
    // (even though the transaction as a whole commits).
    let v = TVar::new(0_u64);
    let (commits, on_commit) = counter();
    let (aborts, on_abort) = counter();
    atomically(|tx| {
        tx.or_else(
            |tx| {
                tx.after_commit(on_commit());
                tx.after_abort(on_abort());
                tx.write(&v, 1)?;
                retry()
            },
            |tx| tx.write(&v, 2),
        )
    });
    assert_eq!(v.read_atomic(), 2);
    assert_eq!((commits.get(), aborts.get()), (0, 1));
}

#[test]
fn hooks_run_outside_the_transaction() {
    // A hook may read TVars directly and even run a transaction of its own.
    let v = TVar::new(1_u64);
    let seen = Rc::new(Cell::new(0));
    let (v2, seen2) = (v.clone(), seen.clone());
    let mut hook = Some(move || {
        seen2.set(v2.read_atomic());
        atomically(|tx| tx.modify(&v2, |x| x * 10));
    });
    atomically(|tx| {
        tx.modify(&v, |x| x + 1)?;
        if let Some(h) = hook.take() {
            tx.after_commit(h);
        }
        Ok(())
    });
    assert_eq!(seen.get(), 2, "the hook sees the committed value");
    assert_eq!(v.read_atomic(), 20);
}

/// Runs a blocked transaction on another thread; calls `wake` once it has retried (its
/// `after_abort` hook fired, so its waiter is registered), then returns its result.
fn wait_then_wake<R: Send + 'static>(
    body: impl FnOnce(mpsc::Sender<()>) -> R + Send + 'static,
    wake: impl FnOnce(),
) -> R {
    let (retried_tx, retried_rx) = mpsc::channel();
    let (result_tx, result_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = result_tx.send(body(retried_tx));
    });
    retried_rx.recv_timeout(WAKE_LIMIT).expect("the transaction never retried");
    wake();
    result_rx.recv_timeout(WAKE_LIMIT).expect("the blocked transaction was never woken")
}

#[test]
fn or_else_waits_on_both_branches_second() {
    let a = TVar::new(0_u32);
    let b = TVar::new(0_u32);
    let (a2, b2) = (a.clone(), b.clone());
    let got = wait_then_wake(
        move |retried| {
            atomically(|tx| {
                let r = retried.clone();
                tx.after_abort(move || {
                    let _ = r.send(());
                });
                tx.or_else(
                    |tx| {
                        check(tx.get(&a2)? > 0)?;
                        Ok('a')
                    },
                    |tx| {
                        check(tx.get(&b2)? > 0)?;
                        Ok('b')
                    },
                )
            })
        },
        || atomically(|tx| tx.write(&b, 1)),
    );
    assert_eq!(got, 'b');
}

#[test]
fn or_else_waits_on_both_branches_first() {
    // The first branch's reads stay in the wait set after it is rolled back.
    let a = TVar::new(0_u32);
    let b = TVar::new(0_u32);
    let (a2, b2) = (a.clone(), b.clone());
    let got = wait_then_wake(
        move |retried| {
            atomically(|tx| {
                let r = retried.clone();
                tx.after_abort(move || {
                    let _ = r.send(());
                });
                tx.or_else(
                    |tx| {
                        check(tx.get(&a2)? > 0)?;
                        Ok('a')
                    },
                    |tx| {
                        check(tx.get(&b2)? > 0)?;
                        Ok('b')
                    },
                )
            })
        },
        || atomically(|tx| tx.write(&a, 1)),
    );
    assert_eq!(got, 'a');
}

#[test]
fn a_woken_transaction_waits_again_if_its_condition_still_fails() {
    // A write that changes a read TVar but not the condition wakes the waiter, which runs
    // again and goes back to sleep; the next write lets it through.
    let v = TVar::new(0_u32);
    let v2 = v.clone();
    let (retried_tx, retried_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let got = atomically(|tx| {
            let r = retried_tx.clone();
            tx.after_abort(move || {
                let _ = r.send(());
            });
            let x = tx.get(&v2)?;
            check(x >= 2)?;
            Ok(x)
        });
        let _ = done_tx.send(got);
    });
    retried_rx.recv_timeout(WAKE_LIMIT).expect("first retry");
    atomically(|tx| tx.write(&v, 1));
    retried_rx.recv_timeout(WAKE_LIMIT).expect("woken by 1, and waiting again");
    assert!(done_rx.try_recv().is_err(), "1 does not satisfy the condition");
    atomically(|tx| tx.write(&v, 2));
    assert_eq!(done_rx.recv_timeout(WAKE_LIMIT).expect("woken by 2"), 2);
}

#[test]
fn tvar_debug() {
    let v = TVar::new(5_u32);
    let s = format!("{v:?}");
    assert!(s.starts_with("TVar {"), "{s}");
    assert!(s.contains(&format!("id: {:#x}", v.id())), "{s}");
    assert!(s.contains("version: 0"), "{s}");
    assert!(s.contains("value: 5"), "{s}");

    atomically(|tx| tx.write(&v, 6));
    let s = format!("{v:?}");
    assert!(s.contains(&format!("version: {}", v.version())), "{s}");
    assert!(v.version() > 0);
    assert!(s.contains("value: 6"), "{s}");

    // Inside a transaction, Debug does not read behind the transaction's back.
    let inside = atomically(|tx| {
        tx.write(&v, 7)?;
        Ok(format!("{v:?}"))
    });
    assert!(inside.contains("inside a transaction"), "{inside}");
    assert!(!inside.contains("value: 6"), "{inside}");

    // A clone is the same TVar; a new TVar with the same value is not.
    assert_eq!(v.clone(), v);
    assert_eq!(format!("{:?}", v.clone()), format!("{v:?}"));
    assert_ne!(TVar::new(7_u32), v);
}

#[test]
fn other_debug_output() {
    let v = TVar::new(1_u32);
    let w = TVar::new(1_u32);
    let s = atomically(|tx| {
        tx.get(&v)?;
        tx.write(&w, 2)?;
        Ok(format!("{tx:?}"))
    });
    assert_eq!(s, "Transaction { reads: 1, writes: 1 }");
    assert_eq!(format!("{:?}", retry::<()>().unwrap_err()), "StmError(retry)");
    assert_eq!(format!("{:?}", abort::<(), _>(5).unwrap_err()), "Abort(5)");
    assert!(!format!("{}", stats::snapshot()).is_empty());
}

#[test]
fn read_atomic_inside_a_transaction_panics_clearly() {
    let v = TVar::new(1_u64);
    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        atomically(|tx| {
            tx.write(&v, 2)?;
            Ok(v.read_atomic())
        })
    }))
    .unwrap_err();
    let msg = panic_message(&*payload);
    assert!(msg.contains("`TVar::read_atomic`"), "the message names the call: {msg}");
    assert!(msg.contains("called inside a transaction"), "{msg}");
    assert!(msg.contains("tx.get"), "the message names the fix: {msg}");
    assert_eq!(v.read_atomic(), 1, "the panicking attempt's write is discarded");

    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        atomically(|tx| {
            atomically(|_inner| Ok(v.with_atomic(|x| *x)));
            tx.get(&v)
        })
    }))
    .unwrap_err();
    assert!(panic_message(&*payload).contains("inside a transaction"));
}

#[test]
fn user_abort_returns_the_error_and_commits_nothing() {
    let v = TVar::new(10_u64);
    let w = TVar::new(0_u64);
    let r: Result<(), String> = atomically_or_err(|tx| {
        tx.modify(&v, |x| x - 5)?;
        tx.write(&w, 5)?;
        abort(format!("saw {}", tx.get(&v)?))
    });
    assert_eq!(r, Err(String::from("saw 5")));
    assert_eq!((v.read_atomic(), v.version(), w.read_atomic(), w.version()), (10, 0, 0, 0));
}

#[test]
fn stale_abort_is_rerun_on_current_state() {
    // An abort decided on a snapshot that is already out of date runs again instead.
    let v = TVar::new(0_u64);
    let mut attempts = 0;
    let r: Result<u64, u64> = atomically_or_err(|tx| {
        attempts += 1;
        let x = tx.get(&v)?;
        if attempts == 1 {
            bump_elsewhere(&v);
        }
        if x == 0 {
            return abort(x);
        }
        Ok(x)
    });
    assert_eq!(attempts, 2);
    assert_eq!(r, Ok(1));
}

#[test]
fn stats_count_commits_aborts_retries_and_wakeups() {
    // A thread of our own: its counters start at zero and only this test touches them.
    let global_before = stats::snapshot();
    let v = TVar::new(0_u64);
    let v2 = v.clone();
    let (retried_tx, retried_rx) = mpsc::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        let base = stats::thread_snapshot();
        assert_eq!(base, stats::Stats::default(), "a new thread starts at zero");

        atomically(|tx| tx.modify(&v2, |x| x + 1)); // commit
        atomically(|tx| tx.get(&v2)); // read-only commit
        let _: Result<(), ()> = atomically_or_err(|tx| {
            tx.write(&v2, 100)?;
            abort(())
        }); // user abort
        atomically(|tx| tx.or_else(|tx| check(tx.get(&v2)? > 100), |_| Ok(()))); // no wait
        ready_tx.send(()).expect("main waits");
        // One retry and one wakeup, then a commit.
        atomically(|tx| {
            let r = retried_tx.clone();
            tx.after_abort(move || {
                let _ = r.send(());
            });
            check(tx.get(&v2)? >= 2)
        });
        stats::thread_snapshot().since(&base)
    });
    ready_rx.recv_timeout(WAKE_LIMIT).expect("worker ran");
    retried_rx.recv_timeout(WAKE_LIMIT).expect("worker retried");
    atomically(|tx| tx.modify(&v, |x| x + 1));
    let s = run_within(WAKE_LIMIT, "the worker", move || worker.join().expect("worker"));
    assert_eq!(s.commits, 4, "{s}");
    assert_eq!(s.read_only_commits, 3, "{s}");
    assert_eq!(s.user_aborts, 1, "{s}");
    assert_eq!(s.retries, 1, "{s}");
    assert_eq!(s.wakeups, 1, "{s}");
    assert_eq!(s.aborts(), 0, "{s}");
    assert_eq!(s.serial_escalations, 0, "{s}");
    assert_eq!(s.panics, 0, "{s}");

    let g = stats::snapshot().since(&global_before);
    assert!(g.commits >= 2 && g.retries >= 1 && g.wakeups >= 1, "{g}");
}

#[test]
fn hot_spots_name_the_tvar_and_the_call_site() {
    let v = TVar::new(0_u64);
    let w = TVar::new(0_u64);
    let line = AtomicU32::new(0);
    let before = stats::thread_snapshot();
    let mut attempts = 0;
    atomically(|tx| {
        attempts += 1;
        let (x, l) = (tx.get(&v)?, line!());
        line.store(l, Ordering::Relaxed);
        if attempts == 1 {
            bump_elsewhere(&v);
        }
        tx.write(&w, x)
    });
    assert_eq!(attempts, 2);
    let s = stats::thread_snapshot().since(&before);
    assert_eq!(s.aborts(), 1, "{s}");

    let line = line.load(Ordering::Relaxed);
    let spots = stats::hot_spots(usize::MAX);
    let spot = spots
        .iter()
        .find(|c| c.tvar == v.id() && c.site.line() == line)
        .unwrap_or_else(|| panic!("no hot spot for TVar {:#x} at line {line}: {spots:?}", v.id()));
    assert!(spot.site.file().ends_with("semantics.rs"), "{spot}");
    assert!(spot.count >= 1);
    let shown = spot.to_string();
    assert!(shown.contains(&format!("{:#x}", v.id())) && shown.contains("semantics.rs"), "{shown}");
}

#[test]
fn nested_atomically_joins_the_outer_transaction() {
    let v = TVar::new(0_u64);
    let w = TVar::new(0_u64);
    let seen = atomically(|tx| {
        tx.write(&v, 1)?;
        // The nested transaction sees the outer's pending write and commits with it.
        let inner = atomically(|tx| {
            let x = tx.get(&v)?;
            tx.write(&w, x + 1)?;
            Ok(x)
        });
        // A nested abort rolls back only its own writes.
        let r: Result<(), ()> = atomically_or_err(|tx| {
            tx.write(&v, 100)?;
            tx.write(&w, 100)?;
            abort(())
        });
        assert!(r.is_err());
        Ok((inner, tx.get(&v)?, tx.get(&w)?))
    });
    assert_eq!(seen, (1, 1, 2));
    assert_eq!((v.read_atomic(), w.read_atomic()), (1, 2));
    assert_eq!(v.version(), w.version(), "one commit published both");
}

#[test]
fn nested_retry_retries_the_outer_transaction() {
    let gate = TVar::new(false);
    let out = TVar::new(0_u32);
    let (g, o) = (gate.clone(), out.clone());
    let got = wait_then_wake(
        move |retried| {
            atomically(|tx| {
                let r = retried.clone();
                tx.after_abort(move || {
                    let _ = r.send(());
                });
                tx.write(&o, 1)?;
                atomically(|tx| check(tx.get(&g)?));
                tx.get(&o)
            })
        },
        || {
            assert_eq!(out.read_atomic(), 0, "the outer write waits with the outer attempt");
            atomically(|tx| tx.write(&gate, true));
        },
    );
    assert_eq!(got, 1);
    assert_eq!(out.read_atomic(), 1);
}

#[test]
fn swallowed_retry_is_ignored() {
    // A `retry()` whose error is dropped does nothing (the attempt goes on and commits).
    let v = TVar::new(0_u32);
    atomically(|tx| {
        let _ = tx.get(&v)?;
        let _ignored = retry::<()>();
        tx.write(&v, 1)
    });
    assert_eq!(v.read_atomic(), 1);
}

#[test]
fn transaction_handles_many_tvars_and_large_write_sets() {
    // Past the write set's linear-scan limit, reads still see the transaction's writes.
    let vars: Vec<TVar<usize>> = (0..100).map(TVar::new).collect();
    let sum = atomically(|tx| {
        for (i, v) in vars.iter().enumerate() {
            tx.write(v, i * 2)?;
        }
        for v in vars.iter().rev() {
            tx.modify(v, |x| x + 1)?;
        }
        let mut sum = 0;
        for v in &vars {
            sum += tx.get(v)?;
        }
        Ok(sum)
    });
    let expect: usize = (0..100).map(|i| i * 2 + 1).sum();
    assert_eq!(sum, expect);
    assert_eq!(vars.iter().map(TVar::read_atomic).sum::<usize>(), expect);
}

#[test]
fn tvar_created_and_dropped_inside_a_transaction() {
    let keep = TVar::new(0_u64);
    atomically(|tx| {
        let tmp = TVar::new(5_u64);
        tx.write(&tmp, 6)?;
        let x = tx.get(&tmp)?;
        drop(tmp);
        tx.write(&keep, x)
    });
    assert_eq!(keep.read_atomic(), 6);
}

#[test]
fn or_else_catches_a_retry_from_a_nested_transaction() {
    // A blocking helper written with its own `atomically`, composed with `or_else`: the
    // design's `or_else(a, b)` runs `b` when `a` retries.
    fn take(v: &TVar<Option<u32>>) -> u32 {
        atomically(|tx| match tx.get(v)? {
            Some(x) => {
                tx.write(v, None)?;
                Ok(x)
            }
            None => retry(),
        })
    }
    let a: TVar<Option<u32>> = TVar::new(None);
    let b: TVar<Option<u32>> = TVar::new(Some(7));
    let (done_tx, done_rx) = mpsc::channel();
    let (a2, b2) = (a.clone(), b.clone());
    std::thread::spawn(move || {
        let got = atomically(|tx| tx.or_else(|_| Ok(take(&a2)), |_| Ok(take(&b2))));
        let _ = done_tx.send(got);
    });
    let got = done_rx.recv_timeout(Duration::from_secs(2));
    if got.is_err() {
        // Unblock the thread (it waits on `a`), then fail.
        atomically(|tx| tx.write(&a, Some(1)));
        let late = done_rx.recv_timeout(WAKE_LIMIT);
        panic!(
            "or_else blocked on its first branch instead of running the second (then got {late:?})"
        );
    }
    assert_eq!(got, Ok(7));
    assert_eq!(b.read_atomic(), None);
}
