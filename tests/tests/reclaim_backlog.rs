//! Replaced values must not pile up when transactions pin rarely but replace many values.
//!
//! A test binary of its own: the bound below holds only while no other thread keeps an
//! attempt pinned for long (a pinned attempt delays every grace period, by design), which
//! the other tests of a shared binary would do.

use std::sync::atomic::{AtomicUsize, Ordering};

use concord_stm::{atomically, TVar};

/// Values alive now.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// A boxed value (not one of the types a `TVar` keeps inline) that counts its instances.
struct Counted(#[allow(dead_code)] u64);

impl Counted {
    fn new(x: u64) -> Self {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Counted(x)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

#[test]
fn replaced_values_do_not_pile_up_when_transactions_pin_rarely() {
    // Few transactions, each replacing many boxed values (a bulk load): crossbeam-epoch
    // collects on every 128th pin and frees a bounded amount each time, so unless the writing
    // thread drives it, replaced values pile up (a 1M-key `TMap` load left 500 MB behind,
    // and without the fix this test sees all 300k replaced values alive at the end). At most
    // a few bags of batches may wait for their grace period.
    const VARS: usize = 1024;
    const ROUNDS: u64 = 300;
    const BOUND: usize = 16 * VARS;
    let vars: Vec<TVar<Counted>> = (0..VARS).map(|i| TVar::new(Counted::new(i as u64))).collect();
    let mut most = 0;
    for round in 0..ROUNDS {
        atomically(|tx| vars.iter().try_for_each(|v| tx.write(v, Counted::new(round))));
        most = most.max(LIVE.load(Ordering::Relaxed));
    }
    println!("at most {most} live values after a transaction ({VARS} current)");
    assert!(most <= BOUND, "{most} values alive at once: replaced values pile up");
}
