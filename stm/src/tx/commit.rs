//! Commit: lock the write set, take a write version, validate the reads, publish, unlock.

use super::{Conflict, TxState};
use crate::clock::CLOCK;
use crate::contention::lock_patience;
use crate::lock_word::{self, is_locked, LOCKED, WAITERS};
use crate::stats::Cause;
use crate::sync::{spin_hint, Ordering};

/// Why a commit failed.
#[derive(Debug)]
pub(crate) struct CommitError(Conflict);

impl CommitError {
    pub(crate) fn into_conflict(self) -> Conflict {
        self.0
    }
}

impl TxState {
    /// Commits the attempt's writes (a read-only attempt has nothing to do: every read was
    /// validated against one snapshot when it was made, INV-OPACITY).
    pub(super) fn commit(&mut self) -> Result<(), CommitError> {
        if self.writes.is_empty() {
            self.release_held();
            return Ok(());
        }
        self.lock_writes()?;
        let wv = CLOCK.tick();
        // With a fetch_add clock, `wv == rv + 1` means no other commit took a version since
        // our snapshot, so nothing we read can have changed (TL2's shortcut). Serial mode
        // holds the lock of everything it read (INV-SERIAL).
        if !self.serial && wv != self.rv + 1 {
            if let Err(c) = self.validate(Cause::Validate) {
                self.unlock_unpublished();
                return Err(CommitError(c));
            }
        }
        self.publish(wv);
        Ok(())
    }

    /// Locks every TVar of the write set, waiting a bounded time for each (never waiting
    /// unboundedly while holding locks: no deadlock). Serial mode waits as long as needed.
    fn lock_writes(&mut self) -> Result<(), CommitError> {
        let patience = lock_patience(self.conflicts);
        let serial = self.serial;
        let mut failed = None;
        for e in self.writes.iter_mut() {
            let addr = e.header as usize;
            if serial && self.held.remove(&addr) {
                e.locked = true; // locked when read (INV-SERIAL)
                continue;
            }
            // SAFETY: the entry was logged in this pinned attempt, so its core is alive
            // (INV-RECLAIM, INV-REFS); the lock word is an atomic.
            let header = unsafe { &*e.header };
            if serial {
                super::lock_serial(header);
                e.locked = true;
                continue;
            }
            let mut spins = 0_u32;
            loop {
                // Relaxed: the CAS below re-checks and orders.
                let word = header.lock.load(Ordering::Relaxed);
                if !is_locked(word) {
                    // Acquire pairs with the Release that last unlocked this word.
                    if header
                        .lock
                        .compare_exchange_weak(word, word | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        e.locked = true;
                        break;
                    }
                    continue;
                }
                spins += 1;
                if spins > patience {
                    failed = Some(Conflict { cause: Cause::Lock, tvar: addr, site: e.site });
                    break;
                }
                spin_hint();
            }
            if failed.is_some() {
                break;
            }
        }
        match failed {
            None => Ok(()),
            Some(c) => {
                self.unlock_unpublished();
                Err(CommitError(c))
            }
        }
    }

    /// Gives back every lock taken without publishing (the versions are unchanged).
    fn unlock_unpublished(&mut self) {
        for e in self.writes.iter_mut().filter(|e| e.locked) {
            // SAFETY: we hold the lock, taken in this pinned attempt (INV-RECLAIM).
            let header = unsafe { &*e.header };
            // Release pairs with the Acquire of the next locker or reader; the version and
            // any waiter bit set while we held it are kept.
            header.lock.fetch_and(!LOCKED, Ordering::Release);
            e.locked = false;
        }
        self.release_held();
    }

    /// Publishes every pending value, then unlocks each TVar at version `wv` and wakes its
    /// waiters.
    fn publish(&mut self, wv: u64) {
        let guard = self.guard.as_ref().expect("commit runs pinned");
        for e in self.writes.iter_mut() {
            // SAFETY: `publish` was made for this TVar's type (INV-HEADER); we hold its lock and
            // are pinned; the entry owns `value` and gives it up here (INV-PENDING).
            unsafe { (e.publish)(e.header, e.value, guard) };
            e.value = std::ptr::null_mut();
        }
        let new_word = lock_word::at_version(wv);
        for e in self.writes.iter_mut() {
            // SAFETY: as above, the core is alive while we are pinned (INV-RECLAIM).
            let header = unsafe { &*e.header };
            // AcqRel: Release pairs with readers' Acquire loads of the word (they see the
            // value published above); Acquire pairs with a waiter's AcqRel `fetch_or`, so if
            // we see its bit we see its registration in the wait table (INV-WAKE).
            let old = header.lock.swap(new_word, Ordering::AcqRel);
            e.locked = false;
            if old & WAITERS != 0 {
                crate::wait::wake_all(e.header);
            }
        }
        self.release_held();
    }
}
