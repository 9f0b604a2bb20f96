//! Adaptive serialization: tasks that keep conflicting on one TVar take turns.
//!
//! With [`Builder::serialize_hot_tvars`](crate::Builder::serialize_hot_tvars)`(Some(k))`, a
//! `spawn_tx` task runs in a [`Serialized`] wrapper. Each time its transaction yields after
//! conflicts, [`Atomically::last_conflict_tvar`] names the TVar the conflict was on; after
//! `k` yields in a row on the same TVar, the task acquires that TVar's lock in a fixed
//! table of [`SHARDS`] async mutexes (indexed by a hash of the TVar's id) and holds it while
//! its transaction runs. Tasks hot on the same TVar then run their attempts one at a time
//! instead of aborting each other; waiting for the lock suspends a task, never a worker.
//! Tasks on other TVars are untouched (unless their TVar's hash falls in the same shard,
//! which only costs them some parallelism).
//!
//! # When the lock is released
//!
//! - The transaction commits (the task completes) or the task is dropped.
//! - The transaction waits in `retry`: a waiting task must not hold a lock that the task
//!   which would wake it may be queued on.
//!
//! While it holds the lock, a task runs its transaction in place until it commits or waits:
//! a conflict (with a task not yet serialized, or on another TVar) makes it back off in
//! place, as a transaction on a plain thread does, instead of yielding, since a holder
//! queued behind its worker's other tasks would hold up every task waiting for the lock.
//! After the STM's `Policy::serial_after` conflicts it runs in serial mode and commits.
//! Once a task lets go of the lock (in `retry`), it yields after conflicts again. A task
//! never takes a second lock.
//!
//! # Deadlocks
//!
//! None through these locks: a task holds at most one, acquires it holding none, and while
//! holding it is always running (a transaction that would wait in `retry` releases it
//! first). A transaction serialized on TVar `A` that also writes `B`
//! may still conflict on `B` with other tasks; it just goes on yielding or backing off as
//! it would without the lock.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use concord_stm::{Atomically, Stm, Transaction};
use futures::lock::{Mutex, OwnedMutexGuard, OwnedMutexLockFuture};

use crate::worker::{self, bump};

/// How many locks the table holds: TVars are spread over them by a hash of their id.
pub(crate) const SHARDS: usize = 64;

/// The table of serialization locks, shared by an executor's tasks.
///
/// Separate from the executor's `Shared` so that a suspended task, which holds it, does not
/// keep the pool alive.
pub(crate) struct Locks {
    shards: Box<[Arc<Mutex<()>>]>,
}

impl Locks {
    pub(crate) fn new() -> Self {
        Self { shards: (0..SHARDS).map(|_| Arc::new(Mutex::new(()))).collect() }
    }

    /// The lock of the TVar whose [`id`](concord_stm::TVar::id) is `tvar`.
    fn of(&self, tvar: usize) -> &Arc<Mutex<()>> {
        &self.shards[shard(tvar)]
    }
}

/// The shard of a TVar id: Fibonacci hashing, since ids are addresses (aligned, so their
/// low bits carry no information) and neighbours are often allocated together.
fn shard(tvar: usize) -> usize {
    const BITS: u32 = SHARDS.trailing_zeros();
    let h = (tvar as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> (u64::BITS - BITS)) as usize
}

/// Where a [`Serialized`] task stands with its TVar's lock.
enum Lock {
    /// Not hot: the task runs freely.
    Free,
    /// Waiting for the lock of a hot TVar.
    Acquiring(OwnedMutexLockFuture<()>),
    /// Holding it (dropping the guard unlocks): the task's attempts run without its rivals.
    Held { _guard: OwnedMutexGuard<()> },
}

/// A `spawn_tx` transaction that serializes itself on a TVar it keeps conflicting on.
pub(crate) struct Serialized<F> {
    tx: Atomically<F>,
    locks: Arc<Locks>,
    /// Serialize after this many yields in a row on one TVar.
    after: u32,
    /// The transaction's `yield_after_conflicts` while it does not hold a lock.
    yield_every: u32,
    /// The TVar of the current run of yields, and its length.
    hot: Option<usize>,
    streak: u32,
    lock: Lock,
}

impl<F> Serialized<F> {
    /// `tx` must yield after every `yield_every` conflicts.
    pub(crate) fn new(tx: Atomically<F>, locks: Arc<Locks>, after: u32, yield_every: u32) -> Self {
        Self { tx, locks, after, yield_every, hot: None, streak: 0, lock: Lock::Free }
    }

    /// Counts one more yield on `tvar`; returns whether the task is now hot on it.
    fn note_yield(&mut self, tvar: usize) -> bool {
        if self.hot == Some(tvar) {
            self.streak += 1;
        } else {
            self.hot = Some(tvar);
            self.streak = 1;
        }
        self.streak >= self.after
    }

    /// Polls the lock being acquired; `Pending` while another task holds it.
    fn poll_acquire(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Lock::Acquiring(fut) = &mut self.lock {
            let guard = std::task::ready!(Pin::new(fut).poll(cx));
            self.lock = Lock::Held { _guard: guard };
            // Holding the lock, back off in place rather than yield (see the module doc).
            self.tx.set_yield_after_conflicts(None);
            worker::with_any(|w| {
                if let Some(w) = w {
                    bump(&w.counters.serialized);
                }
            });
        }
        Poll::Ready(())
    }
}

// No field is pinned: `Atomically` and the lock future are `Unpin`.
impl<F> Unpin for Serialized<F> {}

impl<R, F> Future for Serialized<F>
where
    F: FnMut(&mut Transaction<'_>) -> Stm<R>,
{
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let this = self.get_mut();
        std::task::ready!(this.poll_acquire(cx));
        loop {
            if let Poll::Ready(r) = Pin::new(&mut this.tx).poll(cx) {
                this.lock = Lock::Free;
                return Poll::Ready(r);
            }
            match this.tx.last_conflict_tvar() {
                // Waiting in `retry`: let go of the lock (see the module doc) and start
                // counting afresh once woken.
                None => {
                    if matches!(this.lock, Lock::Held { .. }) {
                        this.tx.set_yield_after_conflicts(Some(this.yield_every));
                    }
                    this.lock = Lock::Free;
                    this.hot = None;
                    this.streak = 0;
                    return Poll::Pending;
                }
                // Unreachable in practice (a holder does not yield); run again at once.
                Some(_) if matches!(this.lock, Lock::Held { .. }) => {}
                Some(tvar) => {
                    if !this.note_yield(tvar) {
                        return Poll::Pending;
                    }
                    this.streak = 0;
                    let lock = Arc::clone(this.locks.of(tvar));
                    this.lock = Lock::Acquiring(lock.lock_owned());
                    // Take the lock now if it is free, then run at once (the wake the yield
                    // made costs one spare poll), or register to be woken when it is free.
                    std::task::ready!(this.poll_acquire(cx));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_in_range_and_spread_aligned_ids() {
        let mut seen = [false; SHARDS];
        for i in 0..4 * SHARDS {
            let s = shard(0x7f00_0000_0000 + i * 64);
            seen[s] = true;
        }
        assert!(seen.iter().filter(|&&b| b).count() > SHARDS / 2);
        assert!(shard(usize::MAX) < SHARDS && shard(0) < SHARDS);
    }
}
