//! What an executor did: task counts, the STM statistics of its workers, latencies.

use std::fmt;

use hdrhistogram::Histogram;

/// A snapshot of an executor's counters since it started (see
/// [`Executor::stats`](crate::Executor::stats)).
///
/// Counters only grow. Suspensions and wakeups count polls of every task; for a task spawned
/// by `spawn_tx`, a suspension is a `retry` (or a yield after conflicts). Spurious wakeups
/// (woken, but the condition still false) are in `stm`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ExecutorStats {
    /// Worker threads.
    pub workers: usize,
    /// Tasks spawned (by `spawn`, `spawn_tx`, and the suspended items of `for_each_tx`).
    pub spawned: u64,
    /// Tasks whose future completed.
    pub completed: u64,
    /// Tasks whose future panicked (the panic went to the task's `JoinHandle`).
    pub panicked: u64,
    /// Polls of task futures.
    pub polls: u64,
    /// Polls that returned `Pending`: the task suspended, its worker moved on.
    pub suspensions: u64,
    /// Polls of a task that had suspended: it was woken and ran again.
    pub wakeups: u64,
    /// Task runs on another worker than the one that queued them (work stealing).
    pub stolen: u64,
    /// Times a `spawn_tx` task, having yielded again and again on conflicts over one TVar,
    /// took that TVar's lock to run alone among the tasks hot on it
    /// ([`Builder::serialize_hot_tvars`](crate::Builder::serialize_hot_tvars)). A task
    /// takes it at most once, unless it waits in `retry` in between.
    pub serialized: u64,
    /// The STM statistics of the worker threads (commits, aborts by cause, retries,
    /// yields...): every transaction run on the pool, including `for_each_tx`'s.
    pub stm: concord_stm::stats::Stats,
    /// From `spawn_tx` to the commit of its transaction, sampled: the first `spawn_tx` of
    /// each spawning thread and then one in 8 are timed (reading the clock costs about a
    /// quarter of a rayon spawn on a VM).
    pub spawn_to_commit: Latency,
    /// From the wake of a suspended task to the start of its next run.
    pub wake_to_resume: Latency,
}

/// A latency distribution's summary, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Latency {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest sample.
    pub max_ns: u64,
    /// Mean.
    pub mean_ns: f64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            p50_ns: h.value_at_quantile(0.5),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
            mean_ns: h.mean(),
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = |ns: u64| ns as f64 / 1e3;
        write!(
            f,
            "n={} p50 {:.1}us p99 {:.1}us p99.9 {:.1}us max {:.1}us",
            self.count,
            us(self.p50_ns),
            us(self.p99_ns),
            us(self.p999_ns),
            us(self.max_ns)
        )
    }
}

impl fmt::Display for ExecutorStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "tasks: spawned {}, completed {}, panicked {}; polls {}, suspensions {}, wakeups {} \
             (spurious {}), stolen {}, serialized {} ({} workers)",
            self.spawned,
            self.completed,
            self.panicked,
            self.polls,
            self.suspensions,
            self.wakeups,
            self.stm.spurious_wakeups,
            self.stolen,
            self.serialized,
            self.workers
        )?;
        writeln!(f, "stm: {}", self.stm)?;
        writeln!(f, "spawn to commit: {}", self.spawn_to_commit)?;
        write!(f, "wake to resume: {}", self.wake_to_resume)
    }
}
