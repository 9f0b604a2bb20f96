//! Concord's STM: one `TVar<i64>` per account, each operation one `atomically`.

use concord_stm::{atomically, stats, TVar};

use crate::bank::{Bank, MAX_SUM};

/// A bank of Concord `TVar`s, written the way the crate's docs suggest.
#[derive(Debug)]
pub struct Concord {
    accounts: Vec<TVar<i64>>,
}

impl Concord {
    /// The accounts' TVars, for workloads that run their own transactions on them (the
    /// executor contender of `compare`).
    pub fn vars(&self) -> &[TVar<i64>] {
        &self.accounts
    }
}

impl Bank for Concord {
    const NAME: &'static str = "concord";

    fn new(accounts: usize, initial: i64) -> Self {
        Concord { accounts: (0..accounts).map(|_| TVar::new(initial)).collect() }
    }

    fn accounts(&self) -> usize {
        self.accounts.len()
    }

    #[inline]
    fn read(&self, i: usize) -> i64 {
        let v = &self.accounts[i];
        atomically(|tx| Ok(*tx.read(v)?))
    }

    #[inline]
    fn increment(&self, i: usize) {
        let v = &self.accounts[i];
        atomically(|tx| tx.modify(v, |x| x + 1));
    }

    #[inline]
    fn transfer(&self, from: usize, to: usize, amount: i64) {
        let (a, b) = (&self.accounts[from], &self.accounts[to]);
        atomically(|tx| {
            tx.modify(a, |x| x - amount)?;
            tx.modify(b, |x| x + amount)
        });
    }

    #[inline]
    fn sum(&self, indices: &[usize]) -> i64 {
        assert!(indices.len() <= MAX_SUM, "at most {MAX_SUM} indices");
        atomically(|tx| {
            let mut total = 0;
            for &i in indices {
                total += *tx.read(&self.accounts[i])?;
            }
            Ok(total)
        })
    }

    fn total(&self) -> i64 {
        atomically(|tx| {
            let mut total = 0;
            for v in &self.accounts {
                total += *tx.read(v)?;
            }
            Ok(total)
        })
    }

    fn stm_stats() -> Option<stats::Stats> {
        Some(stats::snapshot())
    }
}
