//! One `parking_lot::Mutex` over the whole state: the lock most users would reach for.

use parking_lot::Mutex;

use crate::bank::{Bank, MAX_SUM};

/// Every balance behind a single lock.
#[derive(Debug)]
pub struct GlobalMutex {
    accounts: Mutex<Vec<i64>>,
}

impl Bank for GlobalMutex {
    const NAME: &'static str = "global_mutex";

    fn new(accounts: usize, initial: i64) -> Self {
        GlobalMutex { accounts: Mutex::new(vec![initial; accounts]) }
    }

    fn accounts(&self) -> usize {
        self.accounts.lock().len()
    }

    #[inline]
    fn read(&self, i: usize) -> i64 {
        self.accounts.lock()[i]
    }

    #[inline]
    fn increment(&self, i: usize) {
        self.accounts.lock()[i] += 1;
    }

    #[inline]
    fn transfer(&self, from: usize, to: usize, amount: i64) {
        let mut a = self.accounts.lock();
        a[from] -= amount;
        a[to] += amount;
    }

    #[inline]
    fn sum(&self, indices: &[usize]) -> i64 {
        assert!(indices.len() <= MAX_SUM, "at most {MAX_SUM} indices");
        let a = self.accounts.lock();
        indices.iter().map(|&i| a[i]).sum()
    }

    fn total(&self) -> i64 {
        self.accounts.lock().iter().sum()
    }
}
