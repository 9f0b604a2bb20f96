//! The process-wide contention policy, set to `serial_after = 0`: every transaction runs in
//! the irrevocable serial mode (one at a time, locking what it touches as it goes). The
//! policy is global state, so this file is a test binary of its own, and every test in it
//! sets the same policy first.
//!
//! Serial mode must keep every guarantee of the optimistic mode: atomicity, `retry` with
//! wakeups (the locks taken for reads are released before sleeping), `or_else`, user aborts
//! and panics that release every lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Barrier};
use std::thread;
use std::time::Duration;

use concord_stm::contention::{self, Policy};
use concord_stm::{abort, atomically, atomically_or_err, check, retry, stats, TVar};
use concord_tests::run_within;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const LIMIT: Duration = Duration::from_secs(30);

fn serial_always() {
    contention::set_policy(Policy::DEFAULT.with_serial_after(0));
}

#[test]
fn policy_round_trips() {
    serial_always();
    assert_eq!(contention::policy().serial_after, 0);
    assert_eq!(Policy::DEFAULT.serial_after, 16);
    assert_eq!(Policy::default(), Policy::DEFAULT);
    assert_eq!(Policy::DEFAULT.with_serial_after(3).serial_after, 3);
}

#[test]
fn every_transaction_is_serial() {
    serial_always();
    let v = TVar::new(0_u64);
    let before = stats::thread_snapshot();
    for _ in 0..10 {
        atomically(|tx| tx.modify(&v, |x| x + 1));
    }
    atomically(|tx| tx.get(&v));
    let s = stats::thread_snapshot().since(&before);
    assert_eq!(s.commits, 11, "{s}");
    assert_eq!(s.serial_escalations, 11, "{s}");
    assert_eq!(s.aborts(), 0, "a serial transaction never conflicts: {s}");
    assert_eq!(v.read_atomic(), 10);
}

#[test]
fn serial_bank_conserves_the_total() {
    serial_always();
    let seed = concord_tests::seed("serial_bank_conserves_the_total");
    let accounts: Vec<TVar<u64>> = (0..16).map(|_| TVar::new(1_000)).collect();
    let ops = if cfg!(debug_assertions) { 2_000 } else { 20_000 };
    let bad_sums = AtomicUsize::new(0);
    let barrier = Barrier::new(3);
    thread::scope(|s| {
        for t in 0..3_u64 {
            let (accounts, bad_sums, barrier) = (&accounts, &bad_sums, &barrier);
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(seed ^ t);
                barrier.wait();
                for i in 0..ops {
                    let (a, b) = (rng.gen_range(0..16), rng.gen_range(0..16));
                    let amount = rng.gen_range(0..200);
                    let _: Result<(), ()> = atomically_or_err(|tx| {
                        let x = tx.get(&accounts[a])?;
                        if x < amount {
                            return abort(());
                        }
                        tx.write(&accounts[a], x - amount)?;
                        tx.modify(&accounts[b], |y| y + amount)?;
                        Ok(())
                    });
                    if i % 16 == 0 {
                        let sum: u64 =
                            atomically(|tx| accounts.iter().try_fold(0, |s, a| Ok(s + tx.get(a)?)));
                        if sum != 16_000 {
                            bad_sums.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            });
        }
    });
    assert_eq!(bad_sums.load(Ordering::SeqCst), 0);
    assert_eq!(accounts.iter().map(TVar::read_atomic).sum::<u64>(), 16_000);
}

#[test]
fn serial_retry_releases_its_locks_and_is_woken() {
    // A serial transaction locks what it reads; when it retries, it must let go, or the
    // producer below could never write the slot.
    serial_always();
    let n: u64 = if cfg!(debug_assertions) { 2_000 } else { 20_000 };
    let slot: TVar<Option<u64>> = TVar::new(None);
    let consumer = {
        let slot = slot.clone();
        thread::spawn(move || {
            let mut got = Vec::with_capacity(n as usize);
            for _ in 0..n {
                got.push(atomically(|tx| match tx.get(&slot)? {
                    Some(x) => {
                        tx.write(&slot, None)?;
                        Ok(x)
                    }
                    None => retry(),
                }));
            }
            got
        })
    };
    let got = run_within(LIMIT, "a serial ping-pong", move || {
        for i in 0..n {
            atomically(|tx| {
                check(tx.get(&slot)?.is_none())?;
                tx.write(&slot, Some(i))
            });
        }
        consumer.join().expect("consumer")
    });
    assert_eq!(got, (0..n).collect::<Vec<_>>());
}

#[test]
fn serial_or_else_waits_on_both_branches() {
    serial_always();
    let a = TVar::new(0_u32);
    let b = TVar::new(0_u32);
    let (retried_tx, retried_rx) = mpsc::channel();
    let waiter = {
        let (a, b) = (a.clone(), b.clone());
        thread::spawn(move || {
            atomically(|tx| {
                let r = retried_tx.clone();
                tx.after_abort(move || {
                    let _ = r.send(());
                });
                tx.or_else(
                    |tx| {
                        tx.write(&a, 100)?;
                        check(tx.get(&a)? == 1)?;
                        Ok('a')
                    },
                    |tx| {
                        check(tx.get(&b)? > 0)?;
                        Ok('b')
                    },
                )
            })
        })
    };
    retried_rx.recv_timeout(LIMIT).expect("the waiter retried");
    assert_eq!(a.read_atomic(), 0, "the rolled-back branch's write is invisible");
    atomically(|tx| tx.write(&b, 1));
    let got = run_within(LIMIT, "the woken waiter", move || waiter.join().expect("waiter"));
    assert_eq!(got, 'b');
}

#[test]
fn serial_abort_and_panic_release_everything() {
    serial_always();
    let v = TVar::new(0_u32);
    let r: Result<(), ()> = atomically_or_err(|tx| {
        tx.get(&v)?;
        tx.write(&v, 1)?;
        abort(())
    });
    assert!(r.is_err());
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        atomically::<()>(|tx| {
            tx.get(&v)?;
            tx.write(&v, 2)?;
            panic!("serial panic")
        })
    }));
    // Another thread can still lock `v` and enter serial mode.
    let v2 = v.clone();
    run_within(LIMIT, "a serial commit after an abort and a panic", move || {
        atomically(|tx| tx.modify(&v2, |x| x + 10));
    });
    assert_eq!(v.read_atomic(), 10);
}

/// A value whose destructor runs a transaction of its own.
struct Recorder(TVar<u32>);

impl Drop for Recorder {
    fn drop(&mut self) {
        atomically(|tx| tx.modify(&self.0, |n| n + 1));
    }
}

#[test]
fn a_destructor_run_at_the_end_of_a_serial_attempt_may_start_a_serial_transaction() {
    serial_always();
    let dropped = TVar::new(0_u32);
    let slot: TVar<Option<Recorder>> = TVar::new(None);
    let (d, s) = (dropped.clone(), slot.clone());
    run_within(LIMIT, "a serial transaction started by a destructor", move || {
        // The first branch's write is rolled back; its value is dropped when the attempt
        // ends, still inside this serial transaction's `atomically`, and its destructor's
        // transaction is serial too: it must not wait for the serial lock this thread holds.
        atomically(|tx| {
            tx.or_else(
                |tx| {
                    tx.write(&s, Some(Recorder(d.clone())))?;
                    retry()
                },
                |tx| tx.get(&d).map(drop),
            )
        });
    });
    assert_eq!(dropped.read_atomic(), 1);
    drop(slot);
}

#[test]
fn serial_commits_show_no_phantom_to_lookups_outside_transactions() {
    serial_always();
    // A serial transaction locks the root slot only when it reads it: a lookup that read the
    // slot before must still not return the key it writes into the node below and cuts off.
    let lookups = run_within(LIMIT, "serial phantom", || {
        concord_tests::outside_lookups_see_no_phantom(concord_tests::scaled(2_000, 300))
    });
    println!("serial phantom: {lookups} lookups");
}
