//! The executor: a rayon-core pool, the tasks it runs, and the transactions on it.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use concord_stm::{atomically, atomically_async, Stm, Transaction};
use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};
use rayon::iter::{IntoParallelIterator, ParallelIterator};

use crate::serialize::{Locks, Serialized};
use crate::stats::{ExecutorStats, Latency};
use crate::task::{self, JoinHandle};
use crate::worker::{self, latency_histogram, Worker};

/// Tells executors apart, so that a thread knows which pool it serves.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What the handles, the tasks' schedule functions and the pool share.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) pool: rayon_core::ThreadPool,
    workers: Vec<Arc<Worker>>,
    yield_after_conflicts: Option<u32>,
    /// `spawn_tx` tasks take their hot TVar's lock after this many yields in a row on it.
    serialize_hot: Option<(u32, Arc<Locks>)>,
    /// Tasks spawned from threads outside the pool (workers count their own).
    external_spawns: CachePadded<AtomicU64>,
}

impl Shared {
    pub(crate) fn count_external_spawn(&self) {
        // Relaxed: a statistic, read with no ordering to other memory.
        self.external_spawns.fetch_add(1, Ordering::Relaxed);
    }
}

/// A work-stealing executor for transactions and futures.
///
/// A transaction that calls [`retry`](concord_stm::retry) on the executor suspends its
/// task, never a worker thread: the worker goes on with other tasks, and the commit that
/// changes what the transaction read re-queues it. Cloning an `Executor` clones a handle to
/// the same pool; the pool's threads stop once the last handle is dropped and their queued
/// jobs are done. Tasks still suspended then are cancelled when woken.
///
/// # Examples
///
/// Consumers that wait for an item cannot starve the producer, even on one thread:
///
/// ```
/// use concord_executor::Executor;
/// use concord_stm::{retry, TVar};
///
/// let pool = Executor::builder().threads(1).build().unwrap();
/// let slot = TVar::new(None::<u32>);
/// let consumers: Vec<_> = (0..4)
///     .map(|_| {
///         let slot = slot.clone();
///         pool.spawn_tx(move |tx| match *tx.read(&slot)? {
///             Some(v) => { tx.write(&slot, None)?; Ok(v) }
///             None => retry(),
///         })
///     })
///     .collect();
/// let producer = {
///     let slot = slot.clone();
///     pool.spawn(async move {
///         for v in 0..4 {
///             concord_stm::atomically_async(|tx| match tx.read(&slot)? {
///                 None => tx.write(&slot, Some(v)),
///                 Some(_) => retry(),
///             })
///             .await;
///         }
///     })
/// };
/// pool.block_on(producer);
/// let mut got: Vec<u32> = consumers.into_iter().map(|c| pool.block_on(c)).collect();
/// got.sort();
/// assert_eq!(got, [0, 1, 2, 3]);
/// ```
#[derive(Clone)]
pub struct Executor {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("id", &self.shared.id)
            .field("threads", &self.threads())
            .finish()
    }
}

/// Configures and builds an [`Executor`].
#[derive(Debug, Clone, Default)]
pub struct Builder {
    threads: Option<usize>,
    thread_name: Option<String>,
    stack_size: Option<usize>,
    yield_after_conflicts: Option<u32>,
    serialize_hot_tvars: Option<u32>,
}

impl Builder {
    /// The number of worker threads; by default (or with 0), one per available core.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = (n > 0).then_some(n);
        self
    }

    /// A prefix for the worker threads' names (default `concord-worker`).
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = Some(prefix.into());
        self
    }

    /// The worker threads' stack size in bytes (default: rayon's).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Makes transactions spawned on the executor give their worker to other tasks after
    /// every `n` consecutive conflicts, instead of backing off in place (see
    /// [`Atomically::yield_after_conflicts`](concord_stm::Atomically::yield_after_conflicts)).
    /// Off by default: switch it on where measurement shows that it helps.
    ///
    /// # Panics
    ///
    /// Panics if `n` is `Some(0)`.
    pub fn yield_after_conflicts(mut self, n: Option<u32>) -> Self {
        assert!(n != Some(0), "yield_after_conflicts(Some(0)): pass at least 1, or None for off");
        self.yield_after_conflicts = n;
        self
    }

    /// Adaptive serialization: a task spawned by [`spawn_tx`](Executor::spawn_tx) whose
    /// transaction yields `k` times in a row on conflicts over the same TVar takes an async
    /// lock for that TVar and holds it while its transaction runs, in place (backing off
    /// on conflicts instead of yielding), until it commits. Tasks
    /// that keep conflicting on one TVar then run one at a time instead of aborting each
    /// other, while tasks on other TVars go on in parallel. Off by default (`None`).
    ///
    /// The locks are a fixed table of 64, chosen by a hash of the TVar's
    /// [`id`](concord_stm::TVar::id), so unrelated TVars occasionally share one. Waiting for
    /// a lock suspends the task, never the worker; [`ExecutorStats::serialized`] counts the
    /// locks taken.
    ///
    /// The mode works on yields, so it implies
    /// [`yield_after_conflicts`](Self::yield_after_conflicts): unless that is set,
    /// transactions yield after every conflict (`Some(1)`), and `k` yields are `k`
    /// conflicts. With `yield_after_conflicts(Some(n))`, a task serializes after `k * n`
    /// conflicts; keep that below the STM's own escalation to serial mode
    /// ([`Policy::serial_after`](concord_stm::contention::Policy), 16 by default), after
    /// which a transaction stops yielding and runs alone anyway. Tasks from
    /// [`spawn`](Executor::spawn) are not affected.
    ///
    /// # Deadlocks
    ///
    /// None from these locks: a task holds at most one, takes it holding none, and lets it
    /// go when its transaction waits in [`retry`](concord_stm::retry), so a lock holder is
    /// always running. A transaction serialized on one TVar may touch any others.
    ///
    /// # Panics
    ///
    /// Panics if `k` is `Some(0)`.
    pub fn serialize_hot_tvars(mut self, k: Option<u32>) -> Self {
        assert!(k != Some(0), "serialize_hot_tvars(Some(0)): pass at least 1, or None for off");
        self.serialize_hot_tvars = k;
        self
    }

    /// Starts the pool.
    ///
    /// # Errors
    ///
    /// When the operating system refuses to start a thread.
    pub fn build(self) -> Result<Executor, BuildError> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let workers: Vec<Arc<Worker>> =
            (0..threads).map(|i| Arc::new(Worker::new(id, i))).collect();
        let prefix = self.thread_name.unwrap_or_else(|| "concord-worker".to_owned());
        let for_start = workers.clone();
        let mut pool = rayon_core::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("{prefix}-{i}"))
            .start_handler(move |i| worker::enter(for_start[i].clone()))
            // Task panics are caught and handed to their JoinHandle; anything else reaching
            // the pool is a bug in this crate, reported rather than aborting the process.
            .panic_handler(|_| eprintln!("concord-executor: a pool job panicked"));
        if let Some(bytes) = self.stack_size {
            pool = pool.stack_size(bytes);
        }
        let pool = pool.build().map_err(BuildError)?;
        let shared = Arc::new(Shared {
            id,
            pool,
            workers,
            // The serialization mode sees only yields: it implies yielding.
            yield_after_conflicts: self
                .yield_after_conflicts
                .or(self.serialize_hot_tvars.map(|_| 1)),
            serialize_hot: self.serialize_hot_tvars.map(|k| (k, Arc::new(Locks::new()))),
            external_spawns: CachePadded::new(AtomicU64::new(0)),
        });
        REGISTRY.write().push((id, Arc::downgrade(&shared)));
        Ok(Executor { shared })
    }
}

/// The live executors by id, for a task woken on a thread outside its executor's pool to
/// find the pool. Tasks keep only the id: a `Weak<Shared>` per task would cost two atomic
/// read-modify-writes of one counter shared by every worker (at spawn and at free), while
/// only wakes from outside the pool need the lookup.
static REGISTRY: RwLock<Vec<(u64, Weak<Shared>)>> = RwLock::new(Vec::new());

/// The executor `id`, if it is still alive.
pub(crate) fn find(id: u64) -> Option<Arc<Shared>> {
    REGISTRY.read().iter().find(|(i, _)| *i == id).and_then(|(_, w)| w.upgrade())
}

impl Drop for Shared {
    fn drop(&mut self) {
        REGISTRY.write().retain(|(i, _)| *i != self.id);
    }
}

/// The pool could not be started.
#[derive(Debug)]
pub struct BuildError(rayon_core::ThreadPoolBuildError);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot start the executor's threads: {}", self.0)
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl Executor {
    /// A builder, to set the number of threads and the contention policy.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The number of worker threads.
    pub fn threads(&self) -> usize {
        self.shared.pool.current_num_threads()
    }

    /// Whether the calling thread is one of this executor's workers.
    pub fn is_worker_thread(&self) -> bool {
        worker::with_current(self.shared.id, |w| w.is_some())
    }

    /// Runs `future` as a task on the pool.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        task::spawn(&self.shared, future, None)
    }

    /// Runs the transaction `f` as a task on the pool and returns a handle to its result.
    ///
    /// When `f` calls [`retry`](concord_stm::retry), the task suspends until a TVar that `f`
    /// read is changed; its worker runs other tasks meanwhile.
    pub fn spawn_tx<R, F>(&self, f: F) -> JoinHandle<R>
    where
        F: FnMut(&mut Transaction<'_>) -> Stm<R> + Send + 'static,
        R: Send + 'static,
    {
        let spawned_at = sample_spawn_time();
        let tx = self.transaction(f);
        match &self.shared.serialize_hot {
            None => task::spawn(&self.shared, tx, spawned_at),
            Some((k, locks)) => {
                let yield_every = self.shared.yield_after_conflicts.unwrap_or(1);
                let tx = Serialized::new(tx, Arc::clone(locks), *k, yield_every);
                task::spawn(&self.shared, tx, spawned_at)
            }
        }
    }

    /// The transaction future of `f`, with this executor's contention policy.
    fn transaction<R, F>(&self, f: F) -> concord_stm::Atomically<F>
    where
        F: FnMut(&mut Transaction<'_>) -> Stm<R>,
    {
        let tx = atomically_async(f);
        match self.shared.yield_after_conflicts {
            Some(n) => tx.yield_after_conflicts(n),
            None => tx,
        }
    }

    /// Runs the transaction `f` once for every item, in parallel, and returns when all have
    /// committed.
    ///
    /// This is a rayon parallel-for: each item's transaction runs on the worker that takes
    /// it. Only an item whose transaction calls [`retry`](concord_stm::retry) becomes a
    /// task, suspended until what it read changes; the others cost no task at all.
    ///
    /// # Panics
    ///
    /// If a transaction panics, the panic resumes here (the other items still run).
    /// Panics if called on a worker thread of this executor: waiting for the suspended items
    /// would block the worker. There, spawn the items with [`spawn_tx`](Self::spawn_tx)
    /// and await their handles.
    pub fn for_each_tx<I, F>(&self, items: I, f: F)
    where
        I: IntoParallelIterator + Send,
        I::Item: Send + 'static,
        F: Fn(&I::Item, &mut Transaction<'_>) -> Stm<()> + Send + Sync + 'static,
    {
        self.assert_off_pool("for_each_tx");
        let f = Arc::new(f);
        let suspended = Mutex::new(Vec::new());
        self.shared.pool.install(|| {
            items.into_par_iter().for_each(|item| {
                // The fast path: one blocking transaction that turns a retry into `false`
                // (its second branch never retries, so the worker never parks).
                let done =
                    atomically(|tx| tx.or_else(|tx| f(&item, tx).map(|()| true), |_| Ok(false)));
                if !done {
                    let f = f.clone();
                    suspended.lock().push(self.spawn_tx(move |tx| f(&item, tx)));
                }
            });
        });
        let suspended = suspended.into_inner();
        if !suspended.is_empty() {
            self.block_on(futures::future::join_all(suspended));
        }
    }

    /// Runs `future` to completion on the calling thread, which sleeps while the future is
    /// pending. For threads outside the pool (say, `main`).
    ///
    /// # Panics
    ///
    /// Panics if called on a worker thread of this executor: a blocked worker could be the
    /// one the future waits for. There, `.await` the future instead, or spawn it.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.assert_off_pool("block_on");
        futures::executor::block_on(future)
    }

    /// Runs `op` on the pool (plain rayon CPU work: `rayon::join`, parallel iterators) and
    /// returns its result; from a worker, runs it in place.
    pub fn install<R: Send>(&self, op: impl FnOnce() -> R + Send) -> R {
        self.shared.pool.install(op)
    }

    #[track_caller]
    fn assert_off_pool(&self, what: &str) {
        assert!(
            !self.is_worker_thread(),
            "Executor::{what} called on a worker thread of the same executor: it would block \
             the worker that may be the one to make progress. Inside a task, `.await` instead \
             (spawn_tx and spawn return futures)"
        );
    }

    /// The executor's counters since it started: tasks, suspensions, wakeups, the STM
    /// statistics of its workers, and latency histograms.
    pub fn stats(&self) -> ExecutorStats {
        let workers = &self.shared.workers;
        let get = |f: fn(&crate::worker::Counters) -> &AtomicU64| -> u64 {
            // Relaxed: single-writer statistics; only untorn values are needed.
            workers.iter().map(|w| f(&w.counters).load(Ordering::Relaxed)).sum()
        };
        let mut spawn_to_commit = latency_histogram();
        let mut wake_to_resume = latency_histogram();
        for w in workers {
            spawn_to_commit.add(&*w.spawn_to_commit.lock()).expect("same bounds");
            wake_to_resume.add(&*w.wake_to_resume.lock()).expect("same bounds");
        }
        let stm = self.shared.pool.broadcast(|_| concord_stm::stats::thread_snapshot());
        ExecutorStats {
            workers: workers.len(),
            spawned: get(|c| &c.spawned) + self.shared.external_spawns.load(Ordering::Relaxed),
            completed: get(|c| &c.completed),
            panicked: get(|c| &c.panics),
            polls: get(|c| &c.polls),
            suspensions: get(|c| &c.suspensions),
            wakeups: get(|c| &c.wakeups),
            stolen: get(|c| &c.stolen),
            serialized: get(|c| &c.serialized),
            stm: stm.into_iter().sum(),
            spawn_to_commit: Latency::of(&spawn_to_commit),
            wake_to_resume: Latency::of(&wake_to_resume),
        }
    }
}

/// `spawn_tx` times one task in this many per spawning thread for the spawn-to-commit
/// histogram: reading the clock twice costs about 50 ns on a VM (kvm-clock/TSC through the
/// vDSO), a quarter of the cost of a rayon spawn, and one sample in 8 still fills the
/// percentiles of any run long enough to read them.
const SPAWN_SAMPLE_EVERY: u32 = 8;

/// The spawn time of a task to be timed (the first `spawn_tx` of each thread, then one in
/// [`SPAWN_SAMPLE_EVERY`]), or `None`.
fn sample_spawn_time() -> Option<Instant> {
    thread_local! {
        static SPAWNS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    let n = SPAWNS.with(|n| n.replace(n.get().wrapping_add(1)));
    (n % SPAWN_SAMPLE_EVERY == 0).then(Instant::now)
}
