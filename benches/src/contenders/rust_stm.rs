//! The peer STM, crate `stm` 0.4 (rust-stm): one `stm::TVar<i64>` per account.

use crate::bank::{Bank, MAX_SUM};

/// A bank of `stm` 0.4 `TVar`s, written the way that crate's docs suggest.
#[derive(Debug)]
pub struct RustStm {
    accounts: Vec<stm::TVar<i64>>,
}

impl Bank for RustStm {
    const NAME: &'static str = "rust_stm";

    fn new(accounts: usize, initial: i64) -> Self {
        RustStm { accounts: (0..accounts).map(|_| stm::TVar::new(initial)).collect() }
    }

    fn accounts(&self) -> usize {
        self.accounts.len()
    }

    #[inline]
    fn read(&self, i: usize) -> i64 {
        let v = &self.accounts[i];
        stm::atomically(|tx| v.read(tx))
    }

    #[inline]
    fn increment(&self, i: usize) {
        let v = &self.accounts[i];
        stm::atomically(|tx| v.modify(tx, |x| x + 1));
    }

    #[inline]
    fn transfer(&self, from: usize, to: usize, amount: i64) {
        let (a, b) = (&self.accounts[from], &self.accounts[to]);
        stm::atomically(|tx| {
            a.modify(tx, |x| x - amount)?;
            b.modify(tx, |x| x + amount)
        });
    }

    #[inline]
    fn sum(&self, indices: &[usize]) -> i64 {
        assert!(indices.len() <= MAX_SUM, "at most {MAX_SUM} indices");
        stm::atomically(|tx| {
            let mut total = 0;
            for &i in indices {
                total += self.accounts[i].read(tx)?;
            }
            Ok(total)
        })
    }

    fn total(&self) -> i64 {
        stm::atomically(|tx| {
            let mut total = 0;
            for v in &self.accounts {
                total += v.read(tx)?;
            }
            Ok(total)
        })
    }
}
