//! The workloads W1-W7 (see `/work/shared/ANCHORS.md` and `benches/README.md`), generic over
//! the contender, and the driver that runs one on several threads.
//!
//! Each operation function takes the bank and the calling thread's [`XorShift`] and draws
//! its indices from it before touching the bank, so a transaction that re-runs its body
//! does not consume extra random numbers and every contender sees the same sequence.

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use crate::bank::{Bank, MAX_SUM};
use crate::rng::XorShift;
use crate::sched::{self, CpuTime};

/// Accounts in the "1024 accounts" workloads (W3, W4, W7).
pub const ACCOUNTS: usize = 1024;
/// Accounts in the hot transfer workload (W5).
pub const HOT_ACCOUNTS: usize = 4;
/// Accounts each W7 read transaction sums.
pub const SUM_WIDTH: usize = MAX_SUM;
/// In W7, one operation in this many is a transfer; the others are sums.
pub const TRANSFER_ONE_IN: u64 = 16;
/// The opening balance of every account.
pub const INITIAL_BALANCE: i64 = 1_000;

/// The shape of one workload: its benchmark group name, bank size and thread count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    /// The criterion group name, by contention and thread count (`w4_w_disjoint_2t`).
    pub group: &'static str,
    /// How many accounts the bank holds.
    pub accounts: usize,
    /// How many threads run the operations.
    pub threads: usize,
}

/// W1: a read-only transaction on one variable, one thread.
pub const W1: Spec = Spec { group: "w1_ro_1t", accounts: 1, threads: 1 };
/// W2: increment one variable, one thread.
pub const W2: Spec = Spec { group: "w2_w_incr_1t", accounts: 1, threads: 1 };
/// W3: a transfer between 2 random of 1024 accounts, one thread.
pub const W3: Spec = Spec { group: "w3_w_transfer_1t", accounts: ACCOUNTS, threads: 1 };
/// W4: the W3 transfers on two threads (rarely conflicting).
pub const W4: Spec = Spec { group: "w4_w_disjoint_2t", accounts: ACCOUNTS, threads: 2 };
/// W5: transfers among 4 accounts on two threads (conflicting often).
pub const W5: Spec = Spec { group: "w5_w_hot4_2t", accounts: HOT_ACCOUNTS, threads: 2 };
/// W6: one counter incremented by two threads (every pair of operations conflicts).
pub const W6: Spec = Spec { group: "w6_w_hot1_2t", accounts: 1, threads: 2 };
/// W7: two threads, each operation sums 16 random of 1024 accounts; one in 16 is a transfer
/// instead (about 94% reads, 6% writes).
pub const W7: Spec = Spec { group: "w7_read_mostly_2t", accounts: ACCOUNTS, threads: 2 };

/// Every workload, in order.
pub const ALL: [Spec; 7] = [W1, W2, W3, W4, W5, W6, W7];

impl Spec {
    /// A fresh bank of the right size for this workload.
    pub fn bank<B: Bank>(&self) -> B {
        B::new(self.accounts, INITIAL_BALANCE)
    }

    /// The generators of this workload's threads, fresh from their fixed seeds.
    pub fn rngs(&self) -> Vec<XorShift> {
        (0..self.threads).map(XorShift::for_thread).collect()
    }
}

/// W1's operation: read account 0.
#[inline]
pub fn read_first<B: Bank>(bank: &B, _rng: &mut XorShift) -> i64 {
    bank.read(0)
}

/// W2's and W6's operation: increment account 0.
#[inline]
pub fn increment_first<B: Bank>(bank: &B, _rng: &mut XorShift) {
    bank.increment(0);
}

/// W3's, W4's and W5's operation: move 1 between two distinct random accounts.
#[inline]
pub fn transfer<B: Bank>(bank: &B, rng: &mut XorShift) {
    let (from, to) = rng.pair(bank.accounts());
    bank.transfer(from, to, 1);
}

/// W7's operation: one time in [`TRANSFER_ONE_IN`] a [`transfer`], otherwise the sum of
/// [`SUM_WIDTH`] random accounts (which may repeat). Returns the sum (0 for a transfer).
#[inline]
pub fn sum_or_transfer<B: Bank>(bank: &B, rng: &mut XorShift) -> i64 {
    if rng.next_u64() % TRANSFER_ONE_IN == 0 {
        transfer(bank, rng);
        0
    } else {
        let n = bank.accounts();
        let mut indices = [0_usize; SUM_WIDTH];
        for i in &mut indices {
            *i = rng.index(n);
        }
        bank.sum(&indices)
    }
}

/// Runs `iters` operations `op` on `bank`, split evenly over one thread per generator in
/// `rngs` (each thread uses and advances its own), and returns the wall time from the moment
/// the threads leave a common barrier to the moment the last one finishes.
///
/// Thread start-up is not timed; the first transaction of a fresh thread (which registers it
/// with the STM) is. Divided by `iters`, the result is the time per operation of the whole
/// system, so its inverse is the throughput of all threads together. Each thread's time on
/// and waiting for a CPU over its timed region is added to [`sched::record`].
pub fn run_threads<B, R, F>(bank: &B, rngs: &mut [XorShift], iters: u64, op: F) -> Duration
where
    B: Bank,
    F: Fn(&B, &mut XorShift) -> R + Sync,
{
    let threads = rngs.len() as u64;
    assert!(threads > 0, "at least one thread");
    let barrier = Barrier::new(rngs.len());
    let spans: Vec<(Instant, Instant)> = thread::scope(|s| {
        let handles: Vec<_> = rngs
            .iter_mut()
            .enumerate()
            .map(|(t, rng)| {
                // Spread the remainder over the first threads.
                let n = iters / threads + u64::from((t as u64) < iters % threads);
                let (barrier, op) = (&barrier, &op);
                s.spawn(move || {
                    barrier.wait();
                    let cpu = CpuTime::this_thread();
                    let start = Instant::now();
                    for _ in 0..n {
                        black_box(op(bank, rng));
                    }
                    let end = Instant::now();
                    sched::record(CpuTime::this_thread().since(&cpu));
                    (start, end)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("benchmark thread panicked")).collect()
    });
    let start = spans.iter().map(|s| s.0).min().expect("at least one thread");
    let end = spans.iter().map(|s| s.1).max().expect("at least one thread");
    end - start
}
