//! Per-operation latency under two threads: the tail that throughput figures hide (a
//! transaction that backs off or a thread parked on a lock).

use std::sync::Barrier;
use std::thread;
use std::time::Instant;

use crate::bank::Bank;
use crate::rng::XorShift;
use crate::sched::{self, CpuTime};

/// Percentiles of a set of latencies, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// How many operations were timed.
    pub count: usize,
    /// The median.
    pub p50: u64,
    /// The 99th percentile.
    pub p99: u64,
    /// The 99.9th percentile.
    pub p999: u64,
    /// The slowest operation.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `samples` (sorted in place).
    pub fn of(samples: &mut [u64]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Percentiles {
            count: samples.len(),
            p50: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
            max: *samples.last().expect("not empty"),
        }
    }
}

/// Runs `warmup + timed` operations `op` on each of one thread per generator in `rngs`,
/// started together on a barrier, timing each of the last `timed` ones on its own with
/// [`Instant`] (whose own cost, some 20 ns, is included). Returns every timed latency in
/// nanoseconds, all threads together, unsorted. Each thread's time on and waiting for a CPU
/// over its timed operations is added to [`sched::record`].
pub fn sample<B, R, F>(
    bank: &B,
    rngs: &mut [XorShift],
    warmup: usize,
    timed: usize,
    op: F,
) -> Vec<u64>
where
    B: Bank,
    F: Fn(&B, &mut XorShift) -> R + Sync,
{
    let barrier = Barrier::new(rngs.len());
    thread::scope(|s| {
        let handles: Vec<_> = rngs
            .iter_mut()
            .map(|rng| {
                let (barrier, op) = (&barrier, &op);
                s.spawn(move || {
                    let mut out = Vec::with_capacity(timed);
                    barrier.wait();
                    for _ in 0..warmup {
                        std::hint::black_box(op(bank, rng));
                    }
                    let cpu = CpuTime::this_thread();
                    for _ in 0..timed {
                        let start = Instant::now();
                        std::hint::black_box(op(bank, rng));
                        out.push(start.elapsed().as_nanos() as u64);
                    }
                    sched::record(CpuTime::this_thread().since(&cpu));
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("latency thread panicked")).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::Percentiles;

    #[test]
    fn percentiles_of_one_to_a_thousand() {
        let mut v: Vec<u64> = (1..=1000).rev().collect();
        let p = Percentiles::of(&mut v);
        assert_eq!((p.count, p.p50, p.p99, p.p999, p.max), (1000, 501, 990, 999, 1000));
        assert_eq!(Percentiles::of(&mut []), Percentiles::default());
    }
}
