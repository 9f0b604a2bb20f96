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
pub(crate) fn register() -> LocalHandle {
    crossbeam_epoch::default_collector().register()
}

/// Pins the calling thread without a registered handle (e.g. from a destructor that may run
/// while thread-locals are being torn down: crossbeam-epoch falls back to a temporary handle).
pub(crate) fn pin() -> Guard {
    crossbeam_epoch::pin()
}

/// A raw pointer that may cross threads inside a deferred destructor.
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
