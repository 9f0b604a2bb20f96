//! The identity and the counters of a worker thread.
//!
//! Each worker of an executor owns one [`Worker`]: its index, its cache-padded counters and
//! its latency histograms. A worker finds its own through a thread-local set when the pool
//! starts the thread, so counting costs no shared write (one writer per block, as in
//! `concord_stm::stats`).

use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// One worker's counters and histograms.
#[derive(Debug)]
pub(crate) struct Worker {
    /// Which executor this worker belongs to.
    pub(crate) executor: u64,
    /// The worker's index in its pool.
    pub(crate) index: usize,
    pub(crate) counters: CachePadded<Counters>,
    /// Spawn of a `spawn_tx` task to its commit.
    pub(crate) spawn_to_commit: Mutex<Histogram<u64>>,
    /// Wake of a suspended task to the start of its next run.
    pub(crate) wake_to_resume: Mutex<Histogram<u64>>,
}

/// Counts of one worker. Only the worker writes them (Relaxed load and store); `stats()`
/// reads them, needing untorn values and no ordering with other memory.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) spawned: AtomicU64,
    pub(crate) polls: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) suspensions: AtomicU64,
    pub(crate) wakeups: AtomicU64,
    pub(crate) stolen: AtomicU64,
    pub(crate) panics: AtomicU64,
    /// Serialization locks taken (`Builder::serialize_hot_tvars`).
    pub(crate) serialized: AtomicU64,
}

/// Counts a single-writer counter up by one.
#[inline]
pub(crate) fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// A histogram of nanoseconds from 1 ns to 100 s, 3 significant digits.
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

impl Worker {
    pub(crate) fn new(executor: u64, index: usize) -> Self {
        Self {
            executor,
            index,
            counters: CachePadded::new(Counters::default()),
            spawn_to_commit: Mutex::new(latency_histogram()),
            wake_to_resume: Mutex::new(latency_histogram()),
        }
    }

    /// Records a latency; values past the histogram's range are clamped to it.
    pub(crate) fn record(histogram: &Mutex<Histogram<u64>>, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        histogram.lock().saturating_record(ns);
    }
}

thread_local! {
    /// Set once, when the pool starts the thread; pool threads serve one executor for life.
    static CURRENT: OnceCell<Arc<Worker>> = const { OnceCell::new() };
}

/// Makes `worker` the calling thread's identity (from the pool's start handler).
pub(crate) fn enter(worker: Arc<Worker>) {
    CURRENT.with(|c| {
        assert!(c.set(worker).is_ok(), "a pool thread serves one executor");
    });
}

/// Runs `f` with the calling thread's worker, if it is a worker of `executor`.
#[inline]
pub(crate) fn with_current<R>(executor: u64, f: impl FnOnce(Option<&Worker>) -> R) -> R {
    CURRENT.with(|c| f(c.get().map(|w| &**w).filter(|w| w.executor == executor)))
}

/// Runs `f` with the calling thread's worker of any executor.
#[inline]
pub(crate) fn with_any<R>(f: impl FnOnce(Option<&Worker>) -> R) -> R {
    CURRENT.with(|c| f(c.get().map(|w| &**w)))
}
