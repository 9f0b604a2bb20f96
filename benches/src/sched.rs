//! How much of a benchmark's time its threads actually had a CPU (Linux only).
//!
//! The benchmark host is shared: other processes compete for its two cores. The kernel keeps,
//! per thread, the time spent running and the time spent runnable but waiting for a CPU
//! (`/proc/thread-self/schedstat`). [`run_threads`](crate::workload::run_threads) adds both up
//! over its timed region, so a benchmark can report which fraction of its threads' time was
//! lost to other load. On other systems, or without schedstats, everything reads zero.

use std::sync::atomic::{AtomicU64, Ordering};

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
