//! Statistics: what the STM did, per thread and in total, and where it conflicted.
//!
//! Each thread counts into its own cache-padded block of counters (one writer, so a Relaxed
//! load and store, no read-modify-write, and no cache line shared with another writer);
//! [`snapshot`] sums every thread's block. Conflicts are attributed to the TVar and the call
//! site (`#[track_caller]` on the read or write that found them), which [`hot_spots`] ranks.
//!
//! # Examples
//!
//! ```
//! use concord_stm::{atomically, stats, TVar};
//!
//! let before = stats::snapshot();
//! let v = TVar::new(1);
//! atomically(|tx| tx.modify(&v, |x| x + 1));
//! let after = stats::snapshot();
//! assert!(after.commits > before.commits);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::panic::Location;

use crossbeam_utils::CachePadded;

use std::sync::Arc;

use crate::sync::{global, AtomicU64, Mutex, Ordering};

/// Why an attempt was abandoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// A read found a TVar locked or newer than the snapshot, and the snapshot could not be
    /// extended.
    Read,
    /// Commit could not lock a TVar of its write set in time.
    Lock,
    /// Commit-time validation found a read overwritten.
    Validate,
}

/// Counters of one thread (or their sum).
#[derive(Default)]
pub(crate) struct Counters {
    commits: AtomicU64,
    read_only: AtomicU64,
    abort_read: AtomicU64,
    abort_lock: AtomicU64,
    abort_validate: AtomicU64,
    user_aborts: AtomicU64,
    retries: AtomicU64,
    wakeups: AtomicU64,
    spurious_wakeups: AtomicU64,
    serial: AtomicU64,
    panics: AtomicU64,
    yields: AtomicU64,
    conflicts: Mutex<HashMap<(usize, &'static Location<'static>), u64>>,
}

/// A point-in-time sum of the counters of every thread that has run a transaction.
///
/// Counters only grow: subtract two snapshots to measure an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Transactions committed (including read-only ones).
    pub commits: u64,
    /// Of `commits`, those that wrote nothing (they touch no shared memory to commit).
    pub read_only_commits: u64,
    /// Attempts abandoned because a read saw a newer or locked TVar it could not extend to.
    pub aborts_read: u64,
    /// Attempts abandoned because commit could not lock a written TVar.
    pub aborts_lock: u64,
    /// Attempts abandoned because commit-time validation found a read overwritten.
    pub aborts_validate: u64,
    /// Transactions ended by a user [`abort`](crate::abort) (nothing committed).
    pub user_aborts: u64,
    /// Times a transaction called [`retry`](crate::retry) and waited for a change.
    pub retries: u64,
    /// Waits that ended because a commit changed a TVar the waiter read.
    pub wakeups: u64,
    /// Wakeups after which the transaction retried again: what it read changed, but its
    /// condition still did not hold.
    pub spurious_wakeups: u64,
    /// Transactions that escalated to the irrevocable serial mode.
    pub serial_escalations: u64,
    /// Attempts that panicked (the panic was resumed after discarding the attempt).
    pub panics: u64,
    /// Times an async transaction gave its thread to other tasks after repeated conflicts
    /// (see [`Atomically::yield_after_conflicts`](crate::Atomically::yield_after_conflicts)).
    pub yields: u64,
}

impl Stats {
    const ZERO: Stats = Stats {
        commits: 0,
        read_only_commits: 0,
        aborts_read: 0,
        aborts_lock: 0,
        aborts_validate: 0,
        user_aborts: 0,
        retries: 0,
        wakeups: 0,
        spurious_wakeups: 0,
        serial_escalations: 0,
        panics: 0,
        yields: 0,
    };

    /// All conflict aborts (read, lock and validation).
    pub fn aborts(&self) -> u64 {
        self.aborts_read + self.aborts_lock + self.aborts_validate
    }

    /// Conflict aborts per commit: how much work contention wasted.
    pub fn aborts_per_commit(&self) -> f64 {
        if self.commits == 0 {
            0.0
        } else {
            self.aborts() as f64 / self.commits as f64
        }
    }

    /// The counts of `self` minus those of an earlier snapshot `before`.
    pub fn since(&self, before: &Stats) -> Stats {
        Stats {
            commits: self.commits - before.commits,
            read_only_commits: self.read_only_commits - before.read_only_commits,
            aborts_read: self.aborts_read - before.aborts_read,
            aborts_lock: self.aborts_lock - before.aborts_lock,
            aborts_validate: self.aborts_validate - before.aborts_validate,
            user_aborts: self.user_aborts - before.user_aborts,
            retries: self.retries - before.retries,
            wakeups: self.wakeups - before.wakeups,
            spurious_wakeups: self.spurious_wakeups - before.spurious_wakeups,
            serial_escalations: self.serial_escalations - before.serial_escalations,
            panics: self.panics - before.panics,
            yields: self.yields - before.yields,
        }
    }
}

impl std::ops::AddAssign for Stats {
    /// Adds the counts of `other` (say, to sum the snapshots of several threads).
    fn add_assign(&mut self, other: Stats) {
        self.commits += other.commits;
        self.read_only_commits += other.read_only_commits;
        self.aborts_read += other.aborts_read;
        self.aborts_lock += other.aborts_lock;
        self.aborts_validate += other.aborts_validate;
        self.user_aborts += other.user_aborts;
        self.retries += other.retries;
        self.wakeups += other.wakeups;
        self.spurious_wakeups += other.spurious_wakeups;
        self.serial_escalations += other.serial_escalations;
        self.panics += other.panics;
        self.yields += other.yields;
    }
}

impl std::iter::Sum for Stats {
    fn sum<I: Iterator<Item = Stats>>(iter: I) -> Stats {
        iter.fold(Stats::ZERO, |mut acc, s| {
            acc += s;
            acc
        })
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "commits {} (read-only {}), aborts {} (read {}, lock {}, validate {}; {:.3}/commit), \
             user aborts {}, retries {}, wakeups {} (spurious {}), serial {}, panics {}, yields {}",
            self.commits,
            self.read_only_commits,
            self.aborts(),
            self.aborts_read,
            self.aborts_lock,
            self.aborts_validate,
            self.aborts_per_commit(),
            self.user_aborts,
            self.retries,
            self.wakeups,
            self.spurious_wakeups,
            self.serial_escalations,
            self.panics,
            self.yields
        )
    }
}

/// A conflict hot spot: a TVar and the call site of the read or write that lost on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The TVar's [`id`](crate::TVar::id).
    pub tvar: usize,
    /// Where the losing transaction read or wrote it.
    pub site: &'static Location<'static>,
    /// How many attempts were abandoned there.
    pub count: u64,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} aborts on TVar {:#x} at {}", self.count, self.tvar, self.site)
    }
}

/// Counts a single-writer counter up by one.
#[inline]
fn bump(c: &AtomicU64) {
    // Relaxed load and store: only the owning thread writes this counter, and readers
    // (snapshot) need no ordering with other memory, just an untorn value.
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

impl Counters {
    #[inline]
    pub(crate) fn commit(&self, read_only: bool) {
        bump(&self.commits);
        if read_only {
            bump(&self.read_only);
        }
    }

    /// A number that changes with every commit and conflict of this thread: a seed for
    /// backoff jitter that differs between threads (mixed with an address) and over time.
    pub(crate) fn seed(&self) -> u64 {
        // Relaxed: this thread's own counters; any value will do.
        let c = self.commits.load(Ordering::Relaxed);
        c ^ self.abort_read.load(Ordering::Relaxed).rotate_left(21)
            ^ self.abort_lock.load(Ordering::Relaxed).rotate_left(42)
            ^ self.abort_validate.load(Ordering::Relaxed).rotate_left(11)
    }

    pub(crate) fn abort(&self, cause: Cause, tvar: usize, site: &'static Location<'static>) {
        bump(match cause {
            Cause::Read => &self.abort_read,
            Cause::Lock => &self.abort_lock,
            Cause::Validate => &self.abort_validate,
        });
        *self.conflicts.lock().entry((tvar, site)).or_insert(0) += 1;
    }

    pub(crate) fn user_abort(&self) {
        bump(&self.user_aborts);
    }

    pub(crate) fn retry(&self) {
        bump(&self.retries);
    }

    pub(crate) fn wakeup(&self) {
        bump(&self.wakeups);
    }

    pub(crate) fn spurious_wakeup(&self) {
        bump(&self.spurious_wakeups);
    }

    pub(crate) fn serial(&self) {
        bump(&self.serial);
    }

    pub(crate) fn panic(&self) {
        bump(&self.panics);
    }

    pub(crate) fn yielded(&self) {
        bump(&self.yields);
    }

    fn add_to(&self, s: &mut Stats) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        s.commits += get(&self.commits);
        s.read_only_commits += get(&self.read_only);
        s.aborts_read += get(&self.abort_read);
        s.aborts_lock += get(&self.abort_lock);
        s.aborts_validate += get(&self.abort_validate);
        s.user_aborts += get(&self.user_aborts);
        s.retries += get(&self.retries);
        s.wakeups += get(&self.wakeups);
        s.spurious_wakeups += get(&self.spurious_wakeups);
        s.serial_escalations += get(&self.serial);
        s.panics += get(&self.panics);
        s.yields += get(&self.yields);
    }
}

/// Every live thread's counters, and the totals of the threads that have exited.
struct Registry {
    live: Vec<Arc<CachePadded<Counters>>>,
    retired: Stats,
    retired_conflicts: BTreeMap<(usize, &'static Location<'static>), u64>,
}

global! {
    /// Threads register on their first transaction and fold their counts into `retired`
    /// when they exit, so the list stays as long as the number of live threads.
    static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
        live: Vec::new(),
        retired: Stats::ZERO,
        retired_conflicts: BTreeMap::new(),
    });
}

/// A new block of counters for the calling thread, registered for snapshots.
pub(crate) fn register_thread() -> Arc<CachePadded<Counters>> {
    let counters = Arc::new(CachePadded::new(Counters::default()));
    REGISTRY.lock().live.push(counters.clone());
    counters
}

/// Folds an exiting thread's counters into the retired totals (in one step under the
/// registry lock, so a snapshot counts them exactly once).
pub(crate) fn retire_thread(counters: &Arc<CachePadded<Counters>>) {
    let mut registry = REGISTRY.lock();
    let registry = &mut *registry;
    registry.live.retain(|c| !Arc::ptr_eq(c, counters));
    counters.add_to(&mut registry.retired);
    for (&k, &v) in counters.conflicts.lock().iter() {
        *registry.retired_conflicts.entry(k).or_insert(0) += v;
    }
}

/// How many threads have counters registered now (for tests).
#[cfg(all(test, not(loom)))]
pub(crate) fn live_threads() -> usize {
    REGISTRY.lock().live.len()
}

/// The sum of every thread's counters now.
pub fn snapshot() -> Stats {
    let registry = REGISTRY.lock();
    let mut s = registry.retired;
    for c in registry.live.iter() {
        c.add_to(&mut s);
    }
    s
}

/// The calling thread's own counters.
pub fn thread_snapshot() -> Stats {
    let mut s = Stats::default();
    crate::tx::with_thread_counters(|c| c.add_to(&mut s));
    s
}

/// The `n` TVar/call-site pairs that lost the most attempts to conflicts, most first.
pub fn hot_spots(n: usize) -> Vec<Conflict> {
    let registry = REGISTRY.lock();
    let mut merged: HashMap<(usize, &'static Location<'static>), u64> =
        registry.retired_conflicts.iter().map(|(&k, &v)| (k, v)).collect();
    for c in registry.live.iter() {
        for (&k, &v) in c.conflicts.lock().iter() {
            *merged.entry(k).or_insert(0) += v;
        }
    }
    let mut all: Vec<Conflict> =
        merged.into_iter().map(|((tvar, site), count)| Conflict { tvar, site, count }).collect();
    all.sort_by(|a, b| b.count.cmp(&a.count).then(a.site.line().cmp(&b.site.line())));
    all.truncate(n);
    all
}
