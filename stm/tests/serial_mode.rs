//! The irrevocable serial mode, forced on for every transaction with `Policy::serial_after =
//! 0` (process-global, hence its own test binary). Serial transactions lock what they read,
//! so they must still commit, retry, abort and roll back like optimistic ones, and never
//! deadlock with each other or with optimistic committers. Small enough for Miri.

use std::sync::Arc;

use concord_stm::contention::{set_policy, Policy};
use concord_stm::{abort, atomically, atomically_or_err, retry, stats, TVar};

#[test]
fn serial_mode_commits_retries_and_aborts() {
    set_policy(Policy::DEFAULT.with_serial_after(0));
    let before = stats::thread_snapshot();

    let a = Arc::new(TVar::new(10_i64));
    let b = Arc::new(TVar::new(0_i64));

    // Commit: read (locks) then write the same TVars, plus a blind write.
    atomically(|tx| {
        let x = tx.get(&a)?;
        tx.write(&a, x - 3)?;
        tx.modify(&b, |y| y + 3)
    });
    assert_eq!((a.read_atomic(), b.read_atomic()), (7, 3));

    // A user abort releases the read locks and commits nothing.
    let r: Result<(), &str> = atomically_or_err(|tx| {
        tx.write(&b, 100)?;
        let _ = tx.get(&a)?;
        abort("stop")
    });
    assert_eq!(r, Err("stop"));
    assert_eq!(b.read_atomic(), 3);

    // Retry releases the locks (so the other thread can commit) and wakes on its commit.
    let rounds = if cfg!(miri) { 2 } else { 20 };
    let waiter = {
        let (a, b) = (a.clone(), b.clone());
        std::thread::spawn(move || {
            atomically(|tx| {
                if tx.get(&b)? < 3 + rounds {
                    return retry();
                }
                tx.modify(&a, |x| x + 1)
            })
        })
    };
    for _ in 0..rounds {
        atomically(|tx| tx.modify(&b, |y| y + 1));
    }
    waiter.join().unwrap();
    assert_eq!(a.read_atomic(), 8);
    assert!(stats::thread_snapshot().since(&before).serial_escalations >= 3);
}

#[test]
fn serial_and_concurrent_transfers_conserve_the_total() {
    set_policy(Policy::DEFAULT.with_serial_after(0));
    let accounts: Arc<Vec<TVar<u64>>> = Arc::new((0..8).map(|_| TVar::new(100)).collect());
    let per_thread = if cfg!(miri) { 10 } else { 2000 };
    let threads: Vec<_> = (0..2_u64)
        .map(|t| {
            let accounts = accounts.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let from = ((i * 7 + t * 3) % 8) as usize;
                    let to = ((i * 5 + t + 1) % 8) as usize;
                    atomically(|tx| {
                        let f = tx.get(&accounts[from])?;
                        if from != to && f > 0 {
                            tx.write(&accounts[from], f - 1)?;
                            tx.modify(&accounts[to], |x| x + 1)?;
                        }
                        Ok(())
                    });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total: u64 = accounts.iter().map(TVar::read_atomic).sum();
    assert_eq!(total, 800);
}
