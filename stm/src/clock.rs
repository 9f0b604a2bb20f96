//! The global version clock, advanced lazily: by readers, never by commits.
//!
//! A commit stamps what it writes with the version one past the time it reads from the clock
//! (and past every version it replaces), without advancing the clock. A transaction that
//! later reads such a TVar finds a version newer than its snapshot and moves the clock up to
//! it ([`Clock::advance_to`]), then extends its snapshot; if it was the transaction's first
//! read, that waits for a second read (a transaction reading one TVar never writes the
//! clock). So the clock's cache line is written
//! only when someone reads a TVar written since the last advance, not on every commit: on
//! two cores, commits to unrelated TVars no longer bounce one line between them (TL2's GV5
//! scheme, with the reader-side advance of GV6; why it stays opaque is INV-CLOCK in
//! `stm/DESIGN.md`). Padding keeps unrelated hot data off the line.

use crossbeam_utils::CachePadded;

use crate::sync::{global, loom_sc_fence, AtomicU64, Ordering};

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
        // SeqCst, with the reader's SeqCst lock-word loads after it and the committer's
        // SeqCst locking CAS and `write_version` load: a commit whose write version is <= the
        // time read here is seen locked or published (INV-CLOCK). On x86 a SeqCst load is a
        // plain load. Acquire part: pairs with the Release part of the `fetch_max` in
        // `advance_to` that wrote the value.
        let now = self.now.load(Ordering::SeqCst);
        loom_sc_fence();
        now
    }

    /// The write version of a commit that holds all its locks: one past the time now, and at
    /// least `floor` (one past every version the commit replaces, so that a TVar's version
    /// only ever grows). Does not advance the clock.
    #[inline]
    pub(crate) fn write_version(&self, floor: u64) -> u64 {
        loom_sc_fence();
        // SeqCst: ordered after our SeqCst locking CASes and before any `advance_to` past the
        // value read, hence before the clock load of any snapshot that will cover this write
        // version (INV-CLOCK).
        (self.now.load(Ordering::SeqCst) + 1).max(floor)
    }

    /// Moves the clock up to at least `version` (a version a reader found newer than its
    /// snapshot) and returns the time now, which is `>= version`.
    #[inline]
    pub(crate) fn advance_to(&self, version: u64) -> u64 {
        // SeqCst: as in `now`. A read that already finds the clock at `version` needs no
        // write: the value it reads was written by an advance that came after the clock
        // load of every commit it covers (INV-CLOCK).
        let now = self.now.load(Ordering::SeqCst);
        let now = if now >= version {
            now
        } else {
            // SeqCst: as above; its Release part pairs with the Acquire part of other
            // snapshots' loads in `now` and here.
            self.now.fetch_max(version, Ordering::SeqCst).max(version)
        };
        loom_sc_fence();
        now
    }
}

global! {
    /// The one clock all transactions share.
    pub(crate) static CLOCK: Clock = Clock::new();
}
