//! The global version clock.
//!
//! One cache-line-padded counter, advanced only by commits that write: a read-only
//! transaction loads it once (its snapshot) and never writes it, so readers share its cache
//! line in the S state and never bounce it. Padding keeps unrelated hot data (the stats, a
//! neighbouring static) off the line writers do bounce.

use crossbeam_utils::CachePadded;

use crate::sync::{global, AtomicU64, Ordering};

/// The global version clock. Versions start at 0 (every new TVar is at version 0).
pub(crate) struct Clock {
    now: CachePadded<AtomicU64>,
}

impl Clock {
    #[cfg(not(loom))]
    const fn new() -> Self {
        Self { now: CachePadded::new(AtomicU64::new(0)) }
    }

    #[cfg(loom)]
    fn new() -> Self {
        Self { now: CachePadded::new(AtomicU64::new(0)) }
    }

    /// The current time: a snapshot's read version.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        // Acquire pairs with the AcqRel `fetch_add` in `tick`: a transaction that starts at
        // this time sees every commit whose write version is <= it fully published or locked.
        self.now.load(Ordering::Acquire)
    }

    /// Takes a fresh write version for a commit that holds all its locks.
    #[inline]
    pub(crate) fn tick(&self) -> u64 {
        // AcqRel: Release so that a reader extending its snapshot to this time (Acquire load
        // in `now`) sees our locks, Acquire so that we see every earlier committer's locks
        // before validating (INV-CLOCK).
        self.now.fetch_add(1, Ordering::AcqRel) + 1
    }
}

global! {
    /// The one clock all transactions share.
    pub(crate) static CLOCK: Clock = Clock::new();
}
