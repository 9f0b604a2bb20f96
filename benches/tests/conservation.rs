//! Checks that every contender's workload code is correct on two threads: transfers
//! conserve the total, sums see consistent states, increments are not lost. Runs a few
//! thousand operations per case, so it is quick in a debug build.

use concord_benches::contenders::{Concord, GlobalMutex, MutexPerAccount, RustStm};
use concord_benches::workload::{self, Spec, INITIAL_BALANCE, W4, W5, W6, W7};
use concord_benches::{Bank, XorShift};

const OPS: u64 = if cfg!(miri) { 200 } else { 4_000 };

fn expected_total(spec: Spec) -> i64 {
    spec.accounts as i64 * INITIAL_BALANCE
}

/// The transfer workloads (W4 over 1024 accounts, W5 over 4) conserve the total.
fn transfers_conserve<B: Bank>() {
    for spec in [W4, W5] {
        let bank = spec.bank::<B>();
        let mut rngs = spec.rngs();
        workload::run_threads(&bank, &mut rngs, OPS, workload::transfer::<B>);
        assert_eq!(bank.total(), expected_total(spec), "{} on {}", B::NAME, spec.group);
    }
}

/// W7's mix of sums and transfers conserves the total; and a sum of all 4 accounts of the
/// hot bank, taken while the other thread transfers among them, always sees the total.
fn sums_are_consistent<B: Bank>() {
    let bank = W7.bank::<B>();
    let mut rngs = W7.rngs();
    workload::run_threads(&bank, &mut rngs, OPS, workload::sum_or_transfer::<B>);
    assert_eq!(bank.total(), expected_total(W7), "{}", B::NAME);

    let bank = W5.bank::<B>();
    let mut rngs = W5.rngs();
    let all = [0, 1, 2, 3, 3, 2, 1, 0];
    workload::run_threads(&bank, &mut rngs, OPS, |bank: &B, rng: &mut XorShift| {
        if rng.next_u64() % 2 == 0 {
            workload::transfer(bank, rng);
        } else {
            assert_eq!(bank.sum(&all), 2 * expected_total(W5), "{} saw a torn sum", B::NAME);
        }
    });
    assert_eq!(bank.total(), expected_total(W5), "{}", B::NAME);
}

/// W6's increments from two threads are all counted.
fn increments_add_up<B: Bank>() {
    let bank = W6.bank::<B>();
    let mut rngs = W6.rngs();
    workload::run_threads(&bank, &mut rngs, OPS + 1, workload::increment_first::<B>);
    assert_eq!(bank.read(0), INITIAL_BALANCE + OPS as i64 + 1, "{}", B::NAME);
}

macro_rules! contender_tests {
    ($($module:ident: $ty:ty,)*) => {$(
        mod $module {
            use super::*;

            #[test]
            fn transfers_conserve_the_total() {
                transfers_conserve::<$ty>();
            }

            #[test]
            fn sums_see_consistent_states() {
                sums_are_consistent::<$ty>();
            }

            #[test]
            fn increments_are_not_lost() {
                increments_add_up::<$ty>();
            }
        }
    )*};
}

contender_tests! {
    concord: Concord,
    global_mutex: GlobalMutex,
    mutex_per_account: MutexPerAccount,
    rust_stm: RustStm,
}

#[test]
fn run_threads_splits_iterations_exactly() {
    // 7 operations over 2 threads: 4 + 3, every one counted.
    let bank = W6.bank::<GlobalMutex>();
    let mut rngs = W6.rngs();
    workload::run_threads(&bank, &mut rngs, 7, workload::increment_first::<GlobalMutex>);
    assert_eq!(bank.read(0), INITIAL_BALANCE + 7);
}
