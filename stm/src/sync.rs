//! The std/loom shim: every atomic, lock, thread-local and park/unpark the STM uses comes
//! from here, so that `RUSTFLAGS="--cfg loom"` swaps them all for loom's models at once. No
//! other module names `std::sync::atomic` (checked by `ci/clippy.sh`).

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
};

#[cfg(not(loom))]
pub(crate) use std::thread::{current as current_thread, park, yield_now, Thread};

#[cfg(loom)]
pub(crate) use loom::thread::{current as current_thread, park, yield_now, Thread};

#[cfg(not(loom))]
pub(crate) use std::sync::Arc;

#[cfg(loom)]
pub(crate) use loom::sync::Arc;

/// Under loom, a `SeqCst` fence; otherwise nothing.
///
/// Loom does not model `SeqCst` loads, stores and read-modify-writes (it treats them as
/// `AcqRel`, tokio-rs/loom#180) but does model `SeqCst` fences. The clock protocol relies on
/// the single total order of its `SeqCst` accesses (INV-CLOCK); under loom, a fence placed
/// next to each of those accesses gives the same order in the form loom checks.
#[inline(always)]
pub(crate) fn loom_sc_fence() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}

/// A mutex with parking_lot's API (no poisoning), backed by loom's mutex under loom.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T> {
    #[cfg(not(loom))]
    inner: parking_lot::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

impl<T> Mutex<T> {
    #[cfg(not(loom))]
    pub(crate) const fn new(value: T) -> Self {
        Self { inner: parking_lot::Mutex::new(value) }
    }

    #[cfg(loom)]
    pub(crate) fn new(value: T) -> Self {
        Self { inner: loom::sync::Mutex::new(value) }
    }

    #[cfg(not(loom))]
    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, T> {
        self.inner.lock()
    }

    #[cfg(loom)]
    pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
        // A poisoned loom mutex means a model thread panicked: the model has failed already.
        self.inner.lock().unwrap()
    }
}

/// Declares a process-wide static: a plain `static` with a `const` initializer normally (no
/// lazy-init check on the hot path), and one that loom resets between model executions.
macro_rules! global {
    ($(#[$attr:meta])* pub(crate) static $name:ident: $ty:ty = $init:expr;) => {
        #[cfg(not(loom))]
        $(#[$attr])*
        pub(crate) static $name: $ty = $init;
        #[cfg(loom)]
        loom::lazy_static! {
            $(#[$attr])*
            pub(crate) static ref $name: $ty = $init;
        }
    };
    ($(#[$attr:meta])* static $name:ident: $ty:ty = $init:expr;) => {
        #[cfg(not(loom))]
        $(#[$attr])*
        static $name: $ty = $init;
        #[cfg(loom)]
        loom::lazy_static! {
            $(#[$attr])*
            static ref $name: $ty = $init;
        }
    };
}
pub(crate) use global;

/// `thread_local!` from std, or from loom under loom.
macro_rules! thread_local_state {
    ($($tt:tt)*) => {
        #[cfg(not(loom))]
        std::thread_local! { $($tt)* }
        #[cfg(loom)]
        loom::thread_local! { $($tt)* }
    };
}
pub(crate) use thread_local_state;

/// Spins politely: a CPU hint normally, a scheduling point under loom (loom must see spin
/// loops yield, or it explores them forever).
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}
