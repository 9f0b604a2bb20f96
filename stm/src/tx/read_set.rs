//! The read set: every TVar an attempt read from shared memory, with the version it saw.

use std::panic::Location;

use crate::lock_word::{self, is_locked};
use crate::sync::Ordering;
use crate::tvar::Header;

/// One logged read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadEntry {
    /// The TVar read; alive while the attempt is pinned (INV-RECLAIM, INV-REFS).
    pub(crate) header: *const Header,
    /// The version the read saw.
    pub(crate) version: u64,
    /// Where the read was made, for conflict attribution.
    pub(crate) site: &'static Location<'static>,
}

impl ReadEntry {
    /// The TVar's current lock word.
    #[inline]
    pub(crate) fn word(&self) -> u64 {
        // SAFETY: the entry was logged in the current, still pinned attempt, so the core is
        // not freed (INV-RECLAIM); the lock word is an atomic.
        let header = unsafe { &*self.header };
        // Acquire part: pairs with the Release store that unlocks in `commit::publish` (and
        // the Release `fetch_and` of a committer or serial transaction that gives up): a
        // version we see as unchanged really is the one whose value we read. SeqCst: ordered
        // after the clock load of the snapshot being validated, so a commit the snapshot
        // covers is seen locked or published (INV-CLOCK).
        header.lock.load(Ordering::SeqCst)
    }
}

/// The reads of one attempt, in order. Duplicates are allowed: checking for them costs more
/// than validating twice.
#[derive(Debug, Default)]
pub(crate) struct ReadSet {
    entries: Vec<ReadEntry>,
}

impl ReadSet {
    #[inline]
    pub(crate) fn push(&mut self, entry: ReadEntry) {
        self.entries.push(entry);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The version of the last read, if it was a read of `header`.
    #[inline]
    pub(crate) fn last_of(&self, header: *const Header) -> Option<u64> {
        self.entries.last().filter(|e| e.header == header).map(|e| e.version)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, ReadEntry> {
        self.entries.iter()
    }

    /// Checks that every read is still current: same version, and not locked unless `ours`
    /// says we hold the lock. Returns the first stale entry.
    pub(crate) fn first_stale(&self, ours: impl Fn(*const Header) -> bool) -> Option<ReadEntry> {
        self.entries.iter().copied().find(|e| {
            let w = e.word();
            lock_word::version(w) != e.version || (is_locked(w) && !ours(e.header))
        })
    }
}
