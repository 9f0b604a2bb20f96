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

/// Runs `rounds` transactions that each replace the value of every one of `vars` TVars, and
/// returns the most values alive after any of them.
fn most_alive(vars: usize, rounds: u64) -> usize {
    let vars: Vec<TVar<Counted>> = (0..vars).map(|i| TVar::new(Counted::new(i as u64))).collect();
    let mut most = 0;
    for round in 0..rounds {
        atomically(|tx| vars.iter().try_for_each(|v| tx.write(v, Counted::new(round))));
        most = most.max(LIVE.load(Ordering::Relaxed));
    }
    most
}

#[test]
fn replaced_values_do_not_pile_up_when_transactions_pin_rarely() {
    // Few transactions, each replacing many boxed values (a bulk load): crossbeam-epoch
    // collects on every 128th pin and frees a bounded amount each time, so unless the writing
    // thread drives it, replaced values pile up (a 1M-key `TMap` load left 500 MB behind,
    // and without the fix this test sees all 300k replaced values alive at the end). At most
    // a few bags of batches may wait for their grace period. The second case replaces more
    // values per transaction than one flush of the collector frees (8 bags of 1024).
    for (vars, rounds) in [(1024, 300), (16_384, 40)] {
        let most = most_alive(vars, rounds);
        println!("{vars} TVars: at most {most} live values after a transaction");
        assert!(most <= 4 * vars, "{most} values alive at once: replaced values pile up");
    }
}
