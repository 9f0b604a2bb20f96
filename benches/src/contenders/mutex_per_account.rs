//! A `parking_lot::Mutex` per account, locked in ascending index order (deadlock-free) and
//! held until the operation ends (two-phase locking, so every operation is serializable).
//!
//! The mutexes sit side by side in a `Vec`, four to a cache line, as a user would write it;
//! neighbouring accounts therefore share a line (it matters for the 4-account hot workload).

use parking_lot::{Mutex, MutexGuard};

use crate::bank::{Bank, MAX_SUM};

/// One lock per balance.
#[derive(Debug)]
pub struct MutexPerAccount {
    accounts: Vec<Mutex<i64>>,
}

impl Bank for MutexPerAccount {
    const NAME: &'static str = "mutex_per_account";

    fn new(accounts: usize, initial: i64) -> Self {
        MutexPerAccount { accounts: (0..accounts).map(|_| Mutex::new(initial)).collect() }
    }

    fn accounts(&self) -> usize {
        self.accounts.len()
    }

    #[inline]
    fn read(&self, i: usize) -> i64 {
        *self.accounts[i].lock()
    }

    #[inline]
    fn increment(&self, i: usize) {
        *self.accounts[i].lock() += 1;
    }

    #[inline]
    fn transfer(&self, from: usize, to: usize, amount: i64) {
        if from == to {
            return;
        }
        let (lo, hi) = (from.min(to), from.max(to));
        let mut lo = self.accounts[lo].lock();
        let mut hi = self.accounts[hi].lock();
        let (src, dst) = if from < to { (&mut *lo, &mut *hi) } else { (&mut *hi, &mut *lo) };
        *src -= amount;
        *dst += amount;
    }

    #[inline]
    fn sum(&self, indices: &[usize]) -> i64 {
        let n = indices.len();
        assert!(n <= MAX_SUM, "at most {MAX_SUM} indices");
        let mut sorted = [0_usize; MAX_SUM];
        sorted[..n].copy_from_slice(indices);
        sorted[..n].sort_unstable();
        // Hold every lock until the end, taken in ascending order; a repeated index reuses
        // the lock already held.
        let mut guards: [Option<MutexGuard<'_, i64>>; MAX_SUM] = Default::default();
        let (mut held, mut last, mut value, mut total) = (0, usize::MAX, 0, 0);
        for &i in &sorted[..n] {
            if i != last {
                let g = self.accounts[i].lock();
                value = *g;
                guards[held] = Some(g);
                held += 1;
                last = i;
            }
            total += value;
        }
        drop(guards);
        total
    }

    fn total(&self) -> i64 {
        let guards: Vec<_> = self.accounts.iter().map(|m| m.lock()).collect();
        guards.iter().map(|g| **g).sum()
    }
}
