//! Epoch-based reclamation: the only module that talks to crossbeam-epoch.
//!
//! A value a TVar stops pointing at, and a TVar's core once its last handle is gone, may
//! still be read by transactions that loaded the pointer earlier. Both are handed to the
//! epoch collector here and freed only once every thread pinned at that time has unpinned
//! (INV-RECLAIM). Transactions pin once per attempt ([`Pin`]), so a reference obtained inside
//! an attempt stays valid until the attempt ends.

pub(crate) use crossbeam_epoch::{Guard, LocalHandle};

use crate::recycle::{free_blocks, Disposal};
use crate::sync::{Arc, AtomicU64, Ordering};

/// Registers the calling thread with the global collector; kept in the thread's context so
/// that pinning does not look the handle up again.
#[cfg(not(loom))]
pub(crate) fn register() -> LocalHandle {
    crossbeam_epoch::default_collector().register()
}

/// Pins the calling thread without a registered handle (e.g. from a destructor that may run
/// while thread-locals are being torn down: crossbeam-epoch falls back to a temporary handle).
#[cfg(not(loom))]
pub(crate) fn pin() -> Guard {
    crossbeam_epoch::pin()
}

// Under loom, crossbeam-epoch has no default collector: keep one per model execution.
#[cfg(loom)]
loom::lazy_static! {
    static ref COLLECTOR: crossbeam_epoch::Collector = crossbeam_epoch::Collector::new();
}

#[cfg(loom)]
pub(crate) fn register() -> LocalHandle {
    COLLECTOR.register()
}

/// Under loom, a temporary handle: a handle kept in a thread-local would be finalized while
/// loom tears the thread down, which loom does not support.
#[cfg(loom)]
pub(crate) fn pin() -> Guard {
    COLLECTOR.register().pin()
}

/// A raw pointer that may cross threads inside a deferred destructor.
#[derive(Debug)]
pub(crate) struct SendPtr<T>(*mut T);

// SAFETY: the pointer is only dereferenced by the deferred destructor, which owns the pointee
// exclusively by then (INV-RECLAIM); the pointee type is `Send` where this is used (the
// `T: Send` bounds on `retire_box`).
unsafe impl<T> Send for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// Consumes the wrapper. Taking `self` makes a closure capture the whole wrapper (a
    /// field access would capture only the raw pointer, which is not `Send`).
    fn into_raw(self) -> *mut T {
        self.0
    }
}

/// Retires `ptr`, a pointer obtained from `Box::into_raw`, to be dropped once no thread can
/// still hold it.
///
/// # Safety
///
/// `ptr` came from `Box::<T>::into_raw`, is no longer reachable from shared memory for any
/// thread that pins after this call (it was unlinked before), and is retired exactly once.
pub(crate) unsafe fn retire_box<T: Send>(guard: &Guard, ptr: *mut T) {
    let ptr = SendPtr(ptr);
    // SAFETY: per this function's contract `ptr` is unlinked and retired once; crossbeam-epoch
    // runs the closure only after every thread pinned now has unpinned (INV-RECLAIM), so no
    // reader still holds it. `T: Send` allows the drop on another thread.
    unsafe {
        guard.defer_unchecked(move || drop(Box::from_raw(ptr.into_raw())));
    }
}

pub(crate) type Batch = Vec<(SendPtr<()>, Disposal)>;

const BATCH: usize = 16;

/// Sealed batches after which the owning thread drives the collector itself (see
/// `Garbage::needs_flush`): one bag of crossbeam-epoch's deferred closures.
const FLUSH_EVERY: u32 = 64;

/// Sealed batches that may wait for their grace period before the owning thread drives the
/// collector again in the same flush (see `Garbage::backlog`).
pub(crate) const BACKLOG: usize = 2 * FLUSH_EVERY as usize;

/// The values this thread's commits replaced, waiting for a grace period, and freed **by
/// this thread**.
///
/// Values are sealed in batches of `BATCH`. For each batch, one tiny closure is deferred to
/// crossbeam-epoch; when the collector runs it (on any thread, after every thread pinned at
/// sealing time has unpinned), it only raises `safe` to the batch's number. The owning thread
/// frees every batch up to `safe` on its next retirement. Freeing on the owning thread keeps
/// each thread's recycled boxes (`recycle.rs`) in balance: when frees ran on whichever thread
/// collected, one thread's free list overflowed while the other's ran dry, and both fell into
/// glibc's slow paths (measured on 2 threads: ~40% of the time in malloc and free).
#[derive(Debug)]
pub(crate) struct Garbage {
    current: Batch,
    /// Sealed batches, oldest first, with their numbers.
    limbo: std::collections::VecDeque<(u64, Batch)>,
    /// Empty batches kept for reuse.
    spare: Vec<Batch>,
    /// A buffer for `take_safe`, kept for its capacity.
    ready: Vec<Batch>,
    next_id: u64,
    /// Batches sealed since this thread last drove the collector.
    unflushed: u32,
    /// The highest batch number whose grace period is over.
    safe: Arc<AtomicU64>,
}

impl Default for Garbage {
    fn default() -> Self {
        Garbage {
            current: Vec::new(),
            limbo: std::collections::VecDeque::new(),
            spare: Vec::new(),
            ready: Vec::new(),
            next_id: 1,
            unflushed: 0,
            safe: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Garbage {
    /// Retires `ptr` (to be given back by `disposal`) once no thread pinned now holds it.
    ///
    /// Sealing a batch later than its first value was retired is safe: the grace period then
    /// starts later and covers every thread that could have read the value before it was
    /// unlinked (INV-RECLAIM).
    #[inline]
    pub(crate) fn retire(&mut self, guard: &Guard, ptr: *mut (), disposal: Disposal) {
        if let Disposal::Inline = disposal {
            return; // a word, not a box: nothing to free (INV-INLINE)
        }
        if self.current.capacity() == 0 {
            self.current = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(BATCH));
        }
        self.current.push((SendPtr(ptr), disposal));
        if self.current.len() >= BATCH {
            self.seal(guard);
        }
    }

    /// Whether some sealed batch's grace period is over (`take_safe` would return it).
    #[inline]
    pub(crate) fn has_safe(&self) -> bool {
        // Relaxed: a hint; `take_safe` re-reads with Acquire before anything is freed.
        self.limbo.front().is_some_and(|(id, _)| *id <= self.safe.load(Ordering::Relaxed))
    }

    /// Whether this thread has sealed a bag's worth of batches since it last drove the
    /// collector (then, with no borrow of the state held, `take_flush` and flush a guard).
    ///
    /// crossbeam-epoch collects on every 128th pin, at most 8 bags each time, and advances
    /// the epoch at most once per collection. A thread whose transactions pin rarely but
    /// replace many boxed values (a bulk load of a `TMap`, 1024 insertions per transaction)
    /// outran it: 1M insertions left 500 MB of replaced buckets waiting. Flushing once per
    /// bag sealed, and again while more than `BACKLOG` batches wait (a transaction may seal
    /// many bags), keeps the backlog to a few bags.
    #[inline]
    pub(crate) fn needs_flush(&self) -> bool {
        self.unflushed >= FLUSH_EVERY
    }

    /// Whether a flush is due (`needs_flush`); if so, counts from zero again.
    pub(crate) fn take_flush(&mut self) -> bool {
        let due = self.needs_flush();
        if due {
            self.unflushed = 0;
        }
        due
    }

    /// How many sealed batches still wait for their grace period.
    pub(crate) fn backlog(&self) -> usize {
        let safe = self.safe.load(Ordering::Relaxed);
        self.limbo.len() - self.limbo.partition_point(|(id, _)| *id <= safe)
    }

    /// Takes the sealed batches whose grace period is over, to be freed by `free_batches`
    /// with no borrow of the transaction state held (value destructors are user code).
    pub(crate) fn take_safe(&mut self) -> Vec<Batch> {
        // Acquire pairs with the Release `fetch_max` of the deferred closure in `seal`.
        let safe = self.safe.load(Ordering::Acquire);
        let mut ready = std::mem::take(&mut self.ready);
        while self.limbo.front().is_some_and(|(id, _)| *id <= safe) {
            ready.push(self.limbo.pop_front().expect("checked above").1);
        }
        ready
    }

    /// Takes back the emptied buffers of `free_batches`.
    pub(crate) fn give_back(&mut self, mut ready: Vec<Batch>) {
        for batch in ready.drain(..) {
            if self.spare.len() < 64 {
                self.spare.push(batch);
            }
        }
        if self.ready.capacity() == 0 {
            self.ready = ready;
        }
    }

    /// Seals the current batch and asks the collector to tell us when it is safe.
    fn seal(&mut self, guard: &Guard) {
        if self.current.is_empty() {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.unflushed = self.unflushed.saturating_add(1);
        self.limbo.push_back((id, std::mem::take(&mut self.current)));
        let safe = self.safe.clone();
        // The closure only raises a counter (no memory is freed in it). Release pairs with
        // the Acquire load in `take_safe`; crossbeam runs it once every thread pinned now has
        // unpinned (INV-RECLAIM).
        guard.defer(move || {
            safe.fetch_max(id, Ordering::Release);
        });
    }

    /// Seals what is pending, so that its grace period starts now.
    pub(crate) fn seal_pending(&mut self, guard: &Guard) {
        self.seal(guard);
    }
}

/// Frees the values of `ready` (batches from `Garbage::take_safe`) and returns the emptied
/// buffers for `Garbage::give_back`.
///
/// A batch of bare blocks of one size class (values without drop glue, the common case) goes
/// back to the pool in one step; otherwise each value is disposed of in turn.
pub(crate) fn free_batches(mut ready: Vec<Batch>) -> Vec<Batch> {
    for batch in ready.iter_mut() {
        let uniform = match batch.first() {
            Some((_, Disposal::Block(class))) => batch
                .iter()
                .all(|(_, d)| matches!(d, Disposal::Block(c) if c == class))
                .then_some(*class),
            _ => None,
        };
        match uniform {
            Some(class) => {
                // The values were unlinked before they were retired, and are retired once; the
                // batch's grace period is over (a later batch's being over implies it).
                // SAFETY: no thread can still hold them (INV-PUBLISHED, INV-RECLAIM); each is
                // a block of `class` whose value needs no drop (`Disposal::of`, INV-HEADER).
                unsafe { free_blocks(class, batch.iter().map(|(p, _)| p.0)) };
            }
            None => {
                for (ptr, disposal) in batch.iter() {
                    // SAFETY: as above; `disposal` was made for the value's type (INV-HEADER).
                    unsafe { disposal.dispose(ptr.0) };
                }
            }
        }
        batch.clear();
    }
    ready
}

impl Drop for Garbage {
    fn drop(&mut self) {
        // The thread is going away: hand what is left to the collector to free elsewhere.
        let mut rest: Batch = std::mem::take(&mut self.current);
        for (_, batch) in self.limbo.drain(..) {
            rest.extend(batch);
        }
        if rest.is_empty() {
            return;
        }
        let guard = pin();
        // SAFETY: each pointer was unlinked before it was retired, and is retired once
        // (INV-PUBLISHED); the closure runs after every thread pinned now has unpinned, every
        // earlier reader included (INV-RECLAIM); values are `Send` (TVar's bounds) and
        // each disposal was made for its value's type (INV-HEADER).
        unsafe {
            guard.defer_unchecked(move || {
                for (ptr, disposal) in rest {
                    disposal.dispose(ptr.into_raw());
                }
            });
        }
        guard.flush();
    }
}
