//! Sleeping on a 32-bit word until another thread or process changes it: the kernel's futex,
//! or a model of it under loom.
//!
//! The one property the ring's wake handshake needs (INV-RING-3 in `benches/DESIGN.md`) is
//! the futex's own: `wait(word, expected)` checks `*word == expected` and queues the caller
//! *atomically* with respect to `wake(word)`. So a waker that changes the word and then calls
//! `wake` either makes the check fail (the waiter does not sleep) or finds the waiter queued
//! (and wakes it). The kernel gets this from its hash-bucket lock; the loom model gets it
//! from a mutex around check-and-queue and around notify.

use std::time::Duration;

use crate::ipc::sync::AtomicU32;

/// The wait queue of one futex word.
///
/// With the kernel futex this is zero-sized: the kernel keys its queues by the word's
/// physical address, so two processes mapping the same page meet on the same queue. Under
/// loom it holds a mutex and a condition variable, one per word.
#[derive(Debug)]
pub(crate) struct Futex {
    #[cfg(loom)]
    queue: loom::sync::Mutex<()>,
    #[cfg(loom)]
    cv: loom::sync::Condvar,
}

#[cfg(not(loom))]
impl Futex {
    /// The kernel futex (a zero-sized handle).
    pub(crate) const KERNEL: Futex = Futex {};

    /// Sleeps while `*word == expected`, until [`wake`](Self::wake) on the same word, the
    /// timeout, a signal or a spurious wake-up: the caller re-checks its condition.
    pub(crate) fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        crate::ipc::sys::futex_wait(word, expected, timeout);
    }

    /// Wakes the thread sleeping in [`wait`](Self::wait) on `word`, if any.
    pub(crate) fn wake(&self, word: &AtomicU32) {
        crate::ipc::sys::futex_wake(word);
    }
}

#[cfg(loom)]
impl Futex {
    /// A fresh wait queue (create it inside the loom model).
    pub(crate) fn new() -> Futex {
        Futex { queue: loom::sync::Mutex::new(()), cv: loom::sync::Condvar::new() }
    }

    /// The model of `FUTEX_WAIT`: checks the word and queues the caller under one mutex,
    /// then sleeps until notified. Loom has no time, so `timeout` is ignored: the model
    /// sleeps until woken, which is what a lost wake-up needs to show up as a deadlock. Loom's
    /// condition variable never wakes spuriously, which only makes the model stricter.
    pub(crate) fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let _ = timeout;
        // A poisoned mutex means a model thread panicked: the model has failed already.
        let guard = self.queue.lock().unwrap();
        // SeqCst, under the mutex: the kernel reads the word under its bucket lock. The
        // mutex orders this load after a `wake` that came first, and so after the waker's
        // store to the word (which precedes its `wake`).
        if word.load(crate::ipc::sync::Ordering::SeqCst) != expected {
            return;
        }
        drop(self.cv.wait(guard).unwrap());
    }

    /// The model of `FUTEX_WAKE`: notifies under the same mutex as the check in `wait`.
    pub(crate) fn wake(&self, word: &AtomicU32) {
        let _ = word;
        let _guard = self.queue.lock().unwrap();
        self.cv.notify_all();
    }
}
