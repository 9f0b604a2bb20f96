//! Epoch-based reclamation: the only module that talks to crossbeam-epoch.
//!
//! A value a TVar stops pointing at, and a TVar's core once its last handle is gone, may
//! still be read by transactions that loaded the pointer earlier. Both are handed to the
//! epoch collector here and freed only once every thread pinned at that time has unpinned
//! (INV-RECLAIM). Transactions pin once per attempt ([`Pin`]), so a reference obtained inside
//! an attempt stays valid until the attempt ends.

pub(crate) use crossbeam_epoch::{Guard, LocalHandle};

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
struct SendPtr<T>(*mut T);

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

/// Drops a retired value once it is safe.
pub(crate) type DropFn = unsafe fn(*mut ());

/// A thread's batch of retired values, handed to the collector 16 at a time: one deferred
/// closure per batch instead of one per value, which keeps crossbeam-epoch's bags (and their
/// allocations) out of the per-write cost.
#[derive(Debug, Default)]
pub(crate) struct Garbage {
    batch: Vec<(SendPtr<()>, DropFn)>,
}

const BATCH: usize = 16;

impl Garbage {
    /// Retires `ptr` (to be dropped with `drop_fn`) once no thread pinned now holds it.
    ///
    /// Holding a value in the batch a little longer than needed is safe: the deferral, made
    /// later, waits for every thread pinned at that later time, a superset of those that
    /// could have read the value before it was unlinked (INV-RECLAIM).
    #[inline]
    pub(crate) fn retire(&mut self, guard: &Guard, ptr: *mut (), drop_fn: DropFn) {
        if self.batch.capacity() == 0 {
            self.batch = spare_batch();
        }
        self.batch.push((SendPtr(ptr), drop_fn));
        if self.batch.len() >= BATCH {
            self.flush(guard);
        }
    }

    /// Hands the whole batch to the collector now.
    pub(crate) fn flush(&mut self, guard: &Guard) {
        if self.batch.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.batch);
        // SAFETY: every pointer in the batch was unlinked from its TVar before it was retired
        // and is retired once (INV-PUBLISHED); the closure runs only after every thread pinned
        // now has unpinned (INV-RECLAIM). The values are `Send` (TVar's bounds), and `drop_fn`
        // is the destructor made for each one's type (INV-HEADER).
        unsafe {
            guard.defer_unchecked(move || {
                for (ptr, drop_fn) in batch.drain(..) {
                    drop_fn(ptr.into_raw());
                }
                keep_spare_batch(batch);
            });
        }
    }
}

type Batch = Vec<(SendPtr<()>, DropFn)>;

crate::sync::thread_local_state! {
    /// Empty batches kept for reuse: allocating a fresh batch on every flush sends
    /// glibc's malloc into `malloc_consolidate`.
    static SPARE: std::cell::RefCell<Vec<Batch>> = std::cell::RefCell::new(Vec::new());
}

fn spare_batch() -> Batch {
    SPARE
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()))
        .ok()
        .flatten()
        .unwrap_or_else(|| Vec::with_capacity(BATCH))
}

fn keep_spare_batch(batch: Batch) {
    debug_assert!(batch.is_empty());
    let _ = SPARE.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            if s.len() < 128 {
                s.push(batch);
            }
        }
    });
}

impl Drop for Garbage {
    fn drop(&mut self) {
        if !self.batch.is_empty() {
            let guard = pin();
            self.flush(&guard);
        }
    }
}
