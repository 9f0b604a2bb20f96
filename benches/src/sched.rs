//! How much of a benchmark's time its threads actually had a CPU (Linux only).
//!
//! The benchmark host is shared: other processes compete for its two cores. The kernel keeps,
//! per thread, the time spent running and the time spent runnable but waiting for a CPU
//! (`/proc/thread-self/schedstat`). [`run_threads`](crate::workload::run_threads) adds both up
//! over its timed region, so a benchmark can report which fraction of its threads' time was
//! lost to other load. On other systems, or without schedstats, everything reads zero.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;

static RAN_NS: AtomicU64 = AtomicU64::new(0);
static WAITED_NS: AtomicU64 = AtomicU64::new(0);

/// Time on and waiting for a CPU, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// Time spent running.
    pub ran_ns: u64,
    /// Time spent runnable but waiting for a CPU (taken by another thread or process).
    pub waited_ns: u64,
}

impl CpuTime {
    /// The calling thread's totals so far (zero if the kernel does not tell).
    pub fn this_thread() -> CpuTime {
        let Ok(s) = std::fs::read_to_string("/proc/thread-self/schedstat") else {
            return CpuTime::default();
        };
        let mut fields = s.split_whitespace().map(|f| f.parse::<u64>().unwrap_or(0));
        CpuTime { ran_ns: fields.next().unwrap_or(0), waited_ns: fields.next().unwrap_or(0) }
    }

    /// The totals [`record`] has accumulated so far, over every thread.
    pub fn recorded() -> CpuTime {
        // Relaxed: statistics, read after the threads that wrote them were joined.
        CpuTime {
            ran_ns: RAN_NS.load(Ordering::Relaxed),
            waited_ns: WAITED_NS.load(Ordering::Relaxed),
        }
    }

    /// `self` minus an earlier reading.
    pub fn since(&self, before: &CpuTime) -> CpuTime {
        CpuTime {
            ran_ns: self.ran_ns.saturating_sub(before.ran_ns),
            waited_ns: self.waited_ns.saturating_sub(before.waited_ns),
        }
    }

    /// Adds `other`'s times to these (another thread's, say).
    pub fn add(&mut self, other: CpuTime) {
        self.ran_ns += other.ran_ns;
        self.waited_ns += other.waited_ns;
    }

    /// The fraction of runnable time spent waiting for a CPU (0 when nothing was measured).
    pub fn wait_fraction(&self) -> f64 {
        let total = self.ran_ns + self.waited_ns;
        if total == 0 {
            0.0
        } else {
            self.waited_ns as f64 / total as f64
        }
    }
}

/// Adds an interval measured on one thread to the process-wide totals.
pub fn record(interval: CpuTime) {
    // Relaxed: independent counters; see `CpuTime::recorded`.
    RAN_NS.fetch_add(interval.ran_ns, Ordering::Relaxed);
    WAITED_NS.fetch_add(interval.waited_ns, Ordering::Relaxed);
}

/// The time, in nanoseconds, for one thread to see a store of another, the two pinned to
/// CPUs 0 and 1 (half a round trip of a cache line between them): the least, over `rounds`,
/// of the mean over 2,000 round trips (the least, so that a round in which other load
/// preempted a thread does not count). `NaN` where a thread cannot be pinned to CPU 0 or 1.
///
/// The benchmark host is a VM whose two CPUs move over the hardware: this reading went from
/// 23-35 ns to 200-240 ns and back within minutes there. Every map whose threads share a
/// written line (a lock word, a bucket just written by the other thread) slows down with it,
/// each by its own amount: `benches/map_paired.rs` prints it beside each row. (On a host
/// with more CPUs, the benchmark's unpinned threads need not run on CPUs 0 and 1.)
pub fn cache_line_handoff_ns(rounds: usize) -> f64 {
    /// One line to bounce, alone in it.
    #[repr(align(128))]
    struct Line(AtomicU64);
    const TRIPS: u64 = 2_000;
    let mut least = f64::INFINITY;
    for _ in 0..rounds.max(1) {
        let line = Line(AtomicU64::new(0));
        // Both threads pin themselves, then meet here; neither starts unless both could.
        let pinned = [AtomicBool::new(false), AtomicBool::new(false)];
        let meet = Barrier::new(2);
        let pin = |cpu: usize| {
            // Relaxed: the barrier orders these stores before the loads after it.
            pinned[cpu].store(pin_to_cpu(cpu), Ordering::Relaxed);
            meet.wait();
            pinned.iter().all(|p| p.load(Ordering::Relaxed))
        };
        let wait_for = |value: u64| {
            let mut spins = 0_u32;
            // Acquire/Release: a plain handoff; the timing is the point.
            while line.0.load(Ordering::Acquire) != value {
                if spins < 10_000 {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    // Far longer than any handoff: the other thread waits for its CPU, held
                    // by other load (in a test run, say). Let that load have ours meanwhile.
                    std::thread::yield_now();
                }
            }
        };
        // Two threads of their own, so that no benchmark thread inherits their pinning.
        let elapsed = std::thread::scope(|s| {
            // The answering thread answers each odd value with the next even one.
            s.spawn(|| {
                if pin(1) {
                    for i in 0..TRIPS {
                        wait_for(2 * i + 1);
                        line.0.store(2 * i + 2, Ordering::Release);
                    }
                }
            });
            s.spawn(|| {
                pin(0).then(|| {
                    let start = std::time::Instant::now();
                    for i in 0..TRIPS {
                        line.0.store(2 * i + 1, Ordering::Release);
                        wait_for(2 * i + 2);
                    }
                    start.elapsed()
                })
            })
            .join()
            .unwrap_or(None)
        });
        match elapsed {
            Some(d) => least = least.min(d.as_nanos() as f64 / (2 * TRIPS) as f64),
            None => return f64::NAN,
        }
    }
    least
}

/// Pins the calling thread to CPU `cpu`; whether it could.
fn pin_to_cpu(cpu: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: INV-SYS-4: `set` is a live local, valid all zeroes, that `CPU_ZERO` and
        // `CPU_SET` (bounds-checked) fill in place; `sched_setaffinity` (pid 0: this thread)
        // only reads `size_of` bytes of it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_ZERO(&mut set);
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handoff_takes_a_positive_time_or_is_unknown() {
        // NaN where this process may not run on CPU 0 or 1 (a cpuset, `taskset`); it must
        // not hang there either.
        let ns = cache_line_handoff_ns(2);
        assert!(ns.is_nan() || (ns > 0.0 && ns < 1e6), "{ns} ns per handoff");
    }
}
