//! Running workers for a fixed time and measuring them: operations, sampled latency, CPU
//! time and resident memory.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use concord_executor::Executor;
use hdrhistogram::Histogram;

/// One operation in this many, on average, is timed for the latency histogram (timing every
/// one would cost more than the cheapest operations). The choice is random, not every n-th:
/// a fixed stride would alias with periodic work (a garbage batch every 1024 commits, say)
/// and sample it far too often or never.
pub const SAMPLE_ONE_IN: u64 = 16;

/// Tells workers to stop.
#[derive(Debug, Default)]
pub struct Stop(AtomicBool);

impl Stop {
    /// Whether the workers should stop now.
    #[inline]
    pub fn is_set(&self) -> bool {
        // Relaxed: a hint to stop looping; the results travel through thread joins.
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One worker's count of operations and its latency samples.
#[derive(Debug)]
pub struct Meter {
    /// Operations completed.
    pub ops: u64,
    latency: Histogram<u64>,
    /// Xorshift state that picks the sampled operations.
    pick: u64,
}

impl Default for Meter {
    fn default() -> Self {
        Self::new()
    }
}

impl Meter {
    /// A meter with nothing counted.
    pub fn new() -> Self {
        Meter {
            ops: 0,
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"),
            pick: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// Call before an operation; pass the result to [`end`](Self::end).
    #[inline]
    pub fn begin(&mut self) -> Option<Instant> {
        let mut x = self.pick;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.pick = x;
        // The first operation is always timed, so that a worker that did any has a sample.
        (self.ops == 0 || x % SAMPLE_ONE_IN == 0).then(Instant::now)
    }

    /// Call after the operation.
    #[inline]
    pub fn end(&mut self, started: Option<Instant>) {
        if let Some(t) = started {
            let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
            self.latency.saturating_record(ns);
        }
        self.ops += 1;
    }

    /// The latency histogram's non-empty buckets, as `(value, count)`: a bucket's highest
    /// equivalent value and its count. Recording them with [`record_bucket`](Self::record_bucket)
    /// into another meter rebuilds the same histogram (how worker processes ship theirs).
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.latency.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value()))
    }

    /// Adds `count` samples of `value` nanoseconds (see [`buckets`](Self::buckets)).
    pub fn record_bucket(&mut self, value: u64, count: u64) {
        self.latency.saturating_record_n(value.max(1), count);
    }
}

/// What a run measured, summed over its workers.
#[derive(Debug)]
pub struct Measured {
    /// Operations completed by all workers.
    pub ops: u64,
    /// Operations per worker (for the correctness checks).
    pub per_worker: Vec<u64>,
    /// From the moment the workers were released to the moment the last one stopped.
    pub elapsed: Duration,
    /// Sampled operation latencies, in nanoseconds.
    pub latency: Histogram<u64>,
    /// User plus system CPU time of this process over the run.
    pub cpu: Duration,
}

impl Measured {
    /// The measurement of the meters, and the workers' extras.
    fn split<T>(results: Vec<(Meter, T)>, elapsed: Duration, cpu: Duration) -> (Measured, Vec<T>) {
        let (meters, extras): (Vec<Meter>, Vec<T>) = results.into_iter().unzip();
        (Measured::from_meters(meters, elapsed, cpu), extras)
    }

    /// The measurement of one meter per worker.
    pub(crate) fn from_meters(meters: Vec<Meter>, elapsed: Duration, cpu: Duration) -> Measured {
        let mut latency = Meter::new().latency;
        for m in &meters {
            latency.add(&m.latency).expect("same bounds");
        }
        Measured {
            ops: meters.iter().map(|m| m.ops).sum(),
            per_worker: meters.iter().map(|m| m.ops).collect(),
            elapsed,
            latency,
            cpu,
        }
    }

    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `workers` threads, each calling `body(worker, stop, meter)`, which must loop over
/// operations until `stop` is set, and returns what each body returned (say, its counts
/// for a correctness check). The threads are released together and told to stop after
/// `duration`; the rate counts from their release (thread start-up is not timed).
pub fn on_threads<T, F>(workers: usize, duration: Duration, body: F) -> (Measured, Vec<T>)
where
    T: Send,
    F: Fn(usize, &Stop, &mut Meter) -> T + Sync,
{
    let stop = Stop::default();
    let barrier = Barrier::new(workers + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (stop, barrier, body) = (&stop, &barrier, &body);
                s.spawn(move || {
                    let mut meter = Meter::new();
                    barrier.wait();
                    let extra = body(w, stop, &mut meter);
                    (meter, extra)
                })
            })
            .collect();
        barrier.wait();
        let (meters, elapsed, cpu) = measure_window(duration, &stop, || {
            handles.into_iter().map(|h| h.join().expect("a worker thread panicked")).collect()
        });
        Measured::split(meters, elapsed, cpu)
    })
}

/// Like [`on_threads`], with one task per worker on `executor`: `body(worker, stop)` returns
/// the task's future, which loops until `stop` is set and returns its meter and its extra.
pub fn on_executor<T, F, Fut>(
    executor: &Executor,
    workers: usize,
    duration: Duration,
    body: F,
) -> (Measured, Vec<T>)
where
    T: Send + 'static,
    F: Fn(usize, Arc<Stop>) -> Fut,
    Fut: Future<Output = (Meter, T)> + Send + 'static,
{
    let stop = Arc::new(Stop::default());
    let tasks: Vec<_> = (0..workers).map(|w| executor.spawn(body(w, stop.clone()))).collect();
    let (meters, elapsed, cpu) = measure_window(duration, &stop, || {
        tasks.into_iter().map(|t| executor.block_on(t)).collect()
    });
    Measured::split(meters, elapsed, cpu)
}

/// Lets the workers run for `duration`, then stops them and joins them.
fn measure_window<T>(
    duration: Duration,
    stop: &Stop,
    join: impl FnOnce() -> Vec<T>,
) -> (Vec<T>, Duration, Duration) {
    let start = Instant::now();
    let cpu = cpu_time();
    std::thread::sleep(duration);
    stop.set();
    let meters = join();
    (meters, start.elapsed(), cpu_time().saturating_sub(cpu))
}

/// User plus system CPU time of this process so far (all its threads, exited ones too).
pub fn cpu_time() -> Duration {
    cpu_time_of("self")
}

/// User plus system CPU time of process `pid` (`"self"` for this one), read from the
/// process's CPU-time clock (nanosecond resolution). Where that clock is unavailable, falls
/// back to `/proc/<pid>/stat`, whose times are in clock ticks of 1/100 s (Linux's `USER_HZ`):
/// too coarse for a worker that mostly sleeps through a short case.
pub fn cpu_time_of(pid: &str) -> Duration {
    cpu_clock_of(pid).unwrap_or_else(|| cpu_ticks_of(pid))
}

fn cpu_clock_of(pid: &str) -> Option<Duration> {
    let clock = if pid == "self" {
        libc::CLOCK_PROCESS_CPUTIME_ID
    } else {
        let pid: libc::pid_t = pid.parse().ok()?;
        let mut clock: libc::clockid_t = 0;
        // SAFETY: a plain syscall wrapper; `clock` is a live local it writes through (INV-SYS-3).
        if unsafe { libc::clock_getcpuclockid(pid, &mut clock) } != 0 {
            return None;
        }
        clock
    };
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a plain syscall wrapper; `ts` is a live local it writes through (INV-SYS-3).
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(Duration::new(u64::try_from(ts.tv_sec).ok()?, u32::try_from(ts.tv_nsec).ok()?))
}

fn cpu_ticks_of(pid: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // The command name (field 2) may hold spaces; count fields after its closing ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return Duration::ZERO };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are the 12th and 13th after the name.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The resident set size of this process now, in bytes (0 where `/proc` does not tell).
pub fn rss_bytes() -> u64 {
    rss_bytes_of("self")
}

/// The resident set size of process `pid` (`"self"` for this one), in bytes.
pub fn rss_bytes_of(pid: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0 };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod cpu_tests {
    use super::*;

    #[test]
    fn cpu_clocks_resolve_below_a_clock_tick() {
        let before = cpu_time();
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        let used = cpu_time().saturating_sub(before);
        // 2 ms of spinning is under one 10 ms tick: the tick-based fallback would often say 0.
        assert!(used > Duration::ZERO, "{used:?}");
        let me = std::process::id().to_string();
        assert!(cpu_time_of(&me) >= used, "the clock of this process by pid");
        assert_eq!(cpu_time_of("not-a-pid"), cpu_ticks_of("not-a-pid"));
    }
}
