//! `bank` and `counter`: balances behind each contender's synchronization.
//!
//! The thread contenders are the [`Bank`] implementations of the criterion benchmarks; the
//! executor contender runs the same transactions as [`Concord`] through
//! `atomically_async`, one task per worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use concord_executor::Executor;
use concord_stm::{atomically, atomically_async, TVar};

use super::{check_eq, rss};
use crate::compare::measure::{self, Measured, Meter};
use crate::compare::spec::Case;
use crate::contenders::Concord;
use crate::{Bank, XorShift};

/// Every account's opening balance.
pub(crate) const INITIAL: i64 = 1_000;

/// The bank workload's parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    pub(crate) accounts: usize,
    pub(crate) audit_one_in: u32,
}

/// One operation: an audit (`Some`) or a transfer between two distinct accounts.
#[inline]
pub(crate) fn next_op(spec: &Spec, rng: &mut XorShift) -> Option<(usize, usize)> {
    if spec.audit_one_in != 0 && rng.next_u64() % u64::from(spec.audit_one_in) == 0 {
        None
    } else {
        Some(rng.pair(spec.accounts))
    }
}

/// Audits that saw a total other than the opening one (must stay 0).
#[derive(Debug, Default)]
struct BadAudits(AtomicU64);

impl BadAudits {
    fn see(&self, total: i64, expected: i64) {
        if total != expected {
            // Relaxed: read after the workers are joined.
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn check(&self) -> Result<(), String> {
        check_eq("audits that saw a wrong total", 0, self.0.load(Ordering::Relaxed))
    }
}

pub(super) fn on_threads<B: Bank>(spec: &Spec, case: &Case) -> Result<(Measured, u64), String> {
    let bank = B::new(spec.accounts, INITIAL);
    let expected = INITIAL * spec.accounts as i64;
    let bad = BadAudits::default();
    let (measured, _) = measure::on_threads(case.workers, case.duration, |w, stop, meter| {
        let mut rng = XorShift::for_thread(w);
        while !stop.is_set() {
            let t = meter.begin();
            match next_op(spec, &mut rng) {
                Some((from, to)) => bank.transfer(from, to, 1),
                None => bad.see(bank.total(), expected),
            }
            meter.end(t);
        }
    });
    let rss = rss();
    bad.check()?;
    check_eq("total after the run", expected, bank.total())?;
    Ok((measured, rss))
}

pub(super) fn on_executor(spec: &Spec, case: &Case) -> Result<(Measured, u64), String> {
    let ex = executor(case)?;
    let bank = Arc::new(Concord::new(spec.accounts, INITIAL));
    let expected = INITIAL * spec.accounts as i64;
    let bad = Arc::new(BadAudits::default());
    let spec = *spec;
    let (measured, _) = measure::on_executor(&ex, case.workers, case.duration, |w, stop| {
        let (bank, bad) = (bank.clone(), bad.clone());
        async move {
            let accounts = bank.vars();
            let mut rng = XorShift::for_thread(w);
            let mut meter = Meter::new();
            while !stop.is_set() {
                let t = meter.begin();
                match next_op(&spec, &mut rng) {
                    Some((from, to)) => {
                        atomically_async(|tx| {
                            tx.modify(&accounts[from], |b| b - 1)?;
                            tx.modify(&accounts[to], |b| b + 1)
                        })
                        .await
                    }
                    None => {
                        let total = atomically_async(|tx| {
                            accounts.iter().try_fold(0, |sum, a| Ok(sum + *tx.read(a)?))
                        })
                        .await;
                        bad.see(total, expected);
                    }
                }
                meter.end(t);
            }
            (meter, ())
        }
    });
    let rss = rss();
    bad.check()?;
    check_eq("total after the run", expected, bank.total())?;
    Ok((measured, rss))
}

pub(super) fn counter_on_threads<B: Bank>(case: &Case) -> Result<(Measured, u64), String> {
    let bank = B::new(1, 0);
    let (measured, _) = measure::on_threads(case.workers, case.duration, |_, stop, meter| {
        while !stop.is_set() {
            let t = meter.begin();
            bank.increment(0);
            meter.end(t);
        }
    });
    let rss = rss();
    check_eq("counter after the run", measured.ops as i64, bank.read(0))?;
    Ok((measured, rss))
}

pub(super) fn counter_on_executor(case: &Case) -> Result<(Measured, u64), String> {
    let ex = executor(case)?;
    let counter = Arc::new(TVar::new(0_i64));
    let (measured, _) = measure::on_executor(&ex, case.workers, case.duration, |_, stop| {
        let counter = counter.clone();
        async move {
            let mut meter = Meter::new();
            while !stop.is_set() {
                let t = meter.begin();
                atomically_async(|tx| tx.modify(&counter, |c| c + 1)).await;
                meter.end(t);
            }
            (meter, ())
        }
    });
    let rss = rss();
    check_eq("counter after the run", measured.ops as i64, atomically(|tx| tx.get(&counter)))?;
    Ok((measured, rss))
}

pub(super) fn executor(case: &Case) -> Result<Executor, String> {
    Executor::builder()
        .threads(case.workers)
        .build()
        .map_err(|e| format!("cannot start the executor: {e}"))
}
