//! Leak and double-free checks with a drop-counting value type: every value a `TVar` ever
//! held, and every value a transaction wrote, is dropped exactly once.
//!
//! Values an attempt wrote but never published (an abort, a rolled-back `or_else` branch, a
//! panic, a conflict) belong to the attempt and are dropped by the time the transaction
//! returns. Values replaced by a commit, and the current values of dropped `TVar`s, are
//! retired to the epoch collector and dropped later, on some thread: those the test waits
//! for, bounded in time, while other threads pin and collect.
//!
//! (Miri cannot run the STM's collector without leak-check exemptions, so these are the
//! leak checks for the STM's own allocations.)

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use concord_stm::{abort, atomically, atomically_or_err, check, retry, TVar};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

static NEXT_ID: AtomicU64 = AtomicU64::new(0);
/// The live `Counted` values: id -> the test that made it.
static LIVE: Mutex<Option<HashMap<u64, &'static str>>> = Mutex::new(None);
/// Drops of a value that was not live: double drops (or drops of forged values).
static DOUBLE_DROPS: AtomicUsize = AtomicUsize::new(0);

/// A value that records its creation and its drop. `Clone` makes a new, separately tracked
/// value (so `tx.get` is accounted for).
#[derive(Debug)]
struct Counted {
    id: u64,
    test: &'static str,
    payload: u64,
}

impl Counted {
    fn new(test: &'static str, payload: u64) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        LIVE.lock().expect("not poisoned").get_or_insert_with(HashMap::new).insert(id, test);
        Counted { id, test, payload }
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        Counted::new(self.test, self.payload)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let removed = LIVE.lock().expect("not poisoned").as_mut().and_then(|m| m.remove(&self.id));
        if removed.is_none() {
            DOUBLE_DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// How many values made by `test` are still alive.
fn live(test: &str) -> usize {
    LIVE.lock()
        .expect("not poisoned")
        .as_ref()
        .map_or(0, |m| m.values().filter(|t| **t == test).count())
}

/// Waits (bounded) until no value made by `test` is alive, driving the epoch collector from
/// fresh threads: each runs transactions (every pin may collect) and exits (which hands its
/// collector-local garbage to the global queue).
fn wait_until_all_dropped(test: &'static str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let dummy = TVar::new(0_u8);
    while live(test) > 0 {
        assert!(
            Instant::now() < deadline,
            "{} values of `{test}` were never dropped: a leak",
            live(test)
        );
        let dummy = dummy.clone();
        thread::spawn(move || {
            for _ in 0..2_000 {
                atomically(|tx| tx.get(&dummy));
            }
        })
        .join()
        .expect("collector thread");
    }
    assert_eq!(DOUBLE_DROPS.load(Ordering::SeqCst), 0, "a value was dropped twice");
}

#[test]
fn unpublished_values_are_dropped_when_the_transaction_returns() {
    const T: &str = "unpublished";
    let v = TVar::new(Counted::new(T, 0));
    let w = TVar::new(Counted::new(T, 0));
    let base = live(T);

    // A user abort: both pending values, one of them superseded, are dropped.
    let r: Result<(), ()> = atomically_or_err(|tx| {
        tx.write(&v, Counted::new(T, 1))?;
        tx.write(&v, Counted::new(T, 2))?;
        tx.write(&w, Counted::new(T, 3))?;
        abort(())
    });
    assert!(r.is_err());
    assert_eq!(live(T), base, "abort");

    // A rolled-back `or_else` branch, then a committed second branch that wrote nothing.
    atomically(|tx| {
        tx.or_else(
            |tx| {
                tx.write(&v, Counted::new(T, 4))?;
                tx.write(&v, Counted::new(T, 5))?;
                retry()
            },
            |tx| tx.read(&w).map(|_| ()),
        )
    });
    assert_eq!(live(T), base, "or_else rollback");

    // A nested abort inside a transaction that then aborts too.
    let r: Result<(), ()> = atomically_or_err(|tx| {
        tx.write(&w, Counted::new(T, 6))?;
        let inner: Result<(), ()> = atomically_or_err(|tx| {
            tx.write(&w, Counted::new(T, 7))?;
            tx.write(&v, Counted::new(T, 8))?;
            abort(())
        });
        assert!(inner.is_err());
        abort(())
    });
    assert!(r.is_err());
    assert_eq!(live(T), base, "nested abort");

    // A panic.
    let _ = panic::catch_unwind(AssertUnwindSafe(|| {
        atomically::<()>(|tx| {
            tx.write(&v, Counted::new(T, 9))?;
            panic!("discard me")
        })
    }));
    assert_eq!(live(T), base, "panic");

    // Hooks that do not run are dropped with the attempt, with what they captured.
    let r: Result<(), ()> = atomically_or_err(|tx| {
        let c = Counted::new(T, 10);
        tx.after_commit(move || drop(c));
        abort(())
    });
    assert!(r.is_err());
    atomically(|tx| {
        let c = Counted::new(T, 11);
        tx.after_abort(move || drop(c));
        tx.read(&v).map(|_| ())
    });
    assert_eq!(live(T), base, "unrun hooks");

    // A read clones nothing: `read` lends, `get` clones (and the clone is the caller's).
    let got = atomically(|tx| {
        let _ = tx.read(&v)?;
        tx.get(&w)
    });
    assert_eq!(live(T), base + 1);
    drop(got);
    assert_eq!(live(T), base);
    assert_eq!(DOUBLE_DROPS.load(Ordering::SeqCst), 0);
    drop((v, w));
}

#[test]
fn a_conflicting_attempts_values_are_dropped() {
    const T: &str = "conflict";
    wait_until_all_dropped_after(T, || {
        let v = TVar::new(Counted::new(T, 0));
        let trigger = TVar::new(0_u64);
        let mut attempts = 0;
        atomically(|tx| {
            attempts += 1;
            tx.get(&trigger)?;
            tx.write(&v, Counted::new(T, attempts))?;
            if attempts == 1 {
                thread::scope(|s| {
                    s.spawn(|| atomically(|tx| tx.modify(&trigger, |x| x + 1)))
                        .join()
                        .expect("bump");
                });
            }
            Ok(())
        });
        assert_eq!(attempts, 2);
        // The current value, and the original one (retired, maybe not yet collected).
        assert!(live(T) <= 2, "the abandoned attempt's value was dropped: {}", live(T));
        assert_eq!(v.read_atomic().payload, 2);
    });
}

/// Runs `f` on a thread of its own, which then exits (handing its retired values to the
/// collector), and waits until every value made by `test` has been dropped.
fn wait_until_all_dropped_after(test: &'static str, f: impl FnOnce() + Send) {
    thread::scope(|s| s.spawn(f).join().expect("worker"));
    wait_until_all_dropped(test);
}

#[test]
fn every_value_is_dropped_exactly_once() {
    const T: &str = "exactly-once";
    let seed = concord_tests::seed("every_value_is_dropped_exactly_once");
    let writes = if cfg!(debug_assertions) { 2_000 } else { 20_000 };
    wait_until_all_dropped_after(T, || {
        let vars: Vec<TVar<Counted>> = (0..8).map(|i| TVar::new(Counted::new(T, i))).collect();
        let done = AtomicUsize::new(0);
        thread::scope(|s| {
            for t in 0..3_u64 {
                let (vars, done) = (&vars, &done);
                s.spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(seed ^ t);
                    for i in 0..writes {
                        let (a, b) = (rng.gen_range(0..vars.len()), rng.gen_range(0..vars.len()));
                        match i % 4 {
                            // A swap of two values (conflicts with the other threads).
                            0 => atomically(|tx| {
                                let x = tx.get(&vars[a])?;
                                let y = tx.get(&vars[b])?;
                                tx.write(&vars[a], y)?;
                                tx.write(&vars[b], x)
                            }),
                            // Two writes of one TVar in one transaction.
                            1 => atomically(|tx| {
                                tx.write(&vars[a], Counted::new(T, i))?;
                                tx.modify(&vars[a], |c| Counted::new(T, c.payload + 1))
                            }),
                            // A write rolled back, then another committed.
                            2 => atomically(|tx| {
                                tx.or_else(
                                    |tx| {
                                        tx.write(&vars[a], Counted::new(T, i))?;
                                        retry()
                                    },
                                    |tx| tx.write(&vars[b], Counted::new(T, i)),
                                )
                            }),
                            // An abort.
                            _ => {
                                let _: Result<(), ()> = atomically_or_err(|tx| {
                                    tx.write(&vars[a], Counted::new(T, i))?;
                                    abort(())
                                });
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(done.load(Ordering::SeqCst), 3);
        drop(vars);
    });
}

#[test]
fn a_tvar_dropped_while_a_thread_waits_on_it() {
    // The waiter holds its own handle, so the TVar lives on; dropping every other handle
    // and then waking the waiter leaks nothing.
    const T: &str = "waiting";
    wait_until_all_dropped_after(T, || {
        let v = TVar::new(Counted::new(T, 0));
        let v2 = v.clone();
        let waiter = thread::spawn(move || {
            atomically(|tx| {
                let c = tx.read(&v2)?;
                check(c.payload > 0)
            });
        });
        thread::sleep(Duration::from_millis(20));
        atomically(|tx| tx.write(&v, Counted::new(T, 1)));
        drop(v);
        concord_tests::run_within(Duration::from_secs(10), "the waiter", move || {
            waiter.join().expect("waiter");
        });
    });
}

/// `Counted` padded to a chosen size.
#[derive(Clone, Debug)]
struct Padded<const N: usize> {
    counted: Counted,
    pad: [u8; N],
}

/// `Counted` with an alignment above what small-box recycling handles.
#[derive(Clone, Debug)]
#[repr(align(64))]
struct Aligned {
    counted: Counted,
}

/// Writes, overwrites, aborts and drops TVars of `T` made by `make`, from two threads, and
/// checks every value reads back as written.
fn churn<T: Clone + Send + Sync + 'static>(make: fn(u64) -> T, payload: fn(&T) -> u64) {
    let vars: Vec<TVar<T>> = (0..4).map(|i| TVar::new(make(i))).collect();
    thread::scope(|s| {
        for t in 0..2_u64 {
            let vars = &vars;
            s.spawn(move || {
                for i in 0..500_u64 {
                    let v = &vars[((i + t) % 4) as usize];
                    let x = i * 10 + t;
                    atomically(|tx| tx.write(v, make(x)));
                    let r: Result<(), ()> = atomically_or_err(|tx| {
                        tx.write(v, make(x + 1))?;
                        abort(())
                    });
                    assert!(r.is_err());
                    let seen = atomically(|tx| tx.read(v).map(payload));
                    assert!(seen % 10 < 2, "read back a value no one wrote: {seen}");
                }
            });
        }
    });
    drop(vars);
}

#[test]
fn values_of_every_size_and_alignment_are_dropped_exactly_once() {
    const T: &str = "sizes";
    wait_until_all_dropped_after(T, || {
        churn(|x| Counted::new(T, x), |c| c.payload);
        churn(|x| Padded::<7> { counted: Counted::new(T, x), pad: [7; 7] }, |c| c.counted.payload);
        churn(
            |x| Padded::<32> { counted: Counted::new(T, x), pad: [1; 32] },
            |c| c.counted.payload,
        );
        churn(
            |x| Padded::<33> { counted: Counted::new(T, x), pad: [2; 33] },
            |c| c.counted.payload,
        );
        churn(
            |x| Padded::<500> { counted: Counted::new(T, x), pad: [3; 500] },
            |c| {
                assert!(c.pad.iter().all(|&b| b == 3));
                c.counted.payload
            },
        );
        churn(
            |x| Aligned { counted: Counted::new(T, x) },
            |c| {
                assert_eq!(c as *const Aligned as usize % 64, 0, "misaligned value");
                c.counted.payload
            },
        );
    });
}

#[test]
fn zero_sized_values() {
    let unit = TVar::new(());
    let empty: TVar<[u64; 0]> = TVar::new([]);
    atomically(|tx| {
        tx.write(&unit, ())?;
        tx.write(&empty, [])?;
        tx.read(&unit)?;
        tx.read(&empty).map(|_| ())
    });
    assert!(unit.version() > 0 && unit.version() == empty.version());
    let r: Result<(), ()> = atomically_or_err(|tx| {
        tx.write(&unit, ())?;
        abort(())
    });
    assert!(r.is_err());
    unit.read_atomic();
}
