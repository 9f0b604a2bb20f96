//! Commit: lock the write set, take a write version, validate the reads, then publish each
//! new value and unlock its TVar at the write version.

use super::write_set::NOT_READ;
use super::{Conflict, TxState};
use crate::clock::CLOCK;
use crate::contention::lock_patience;
use crate::lock_word::{self, is_locked, LOCKED, WAITERS};
use crate::stats::Cause;
use crate::sync::{spin_hint, Ordering};
use crate::tvar::Header;

impl TxState {
    /// Commits the attempt's writes (a read-only attempt has nothing to do: every read was
    /// validated against one snapshot when it was made, INV-OPACITY). On error every lock
    /// is released and nothing is published.
    pub(super) fn commit(&mut self) -> Result<(), Conflict> {
        if self.writes.is_empty() {
            self.release_held();
            return Ok(());
        }
        let floor = match self.lock_writes() {
            Ok(floor) => floor,
            Err(c) => {
                self.unlock_unpublished();
                return Err(c);
            }
        };
        let wv = CLOCK.write_version(floor);
        // The clock is not advanced by commits, so `wv` says nothing about commits since our
        // snapshot: validate every read (INV-CLOCK). Serial mode holds the lock of everything
        // it read (INV-SERIAL).
        // Reads covered by a write entry were checked as their TVar was locked.
        if !self.serial && self.covered != self.reads.len() {
            if let Err(c) = self.validate_locked() {
                self.unlock_unpublished();
                return Err(c);
            }
        }
        self.publish(wv);
        Ok(())
    }

    /// Locks every TVar of the write set, waiting a bounded time for each (never waiting
    /// unboundedly while holding locks: no deadlock). Serial mode waits as long as needed.
    /// Returns one past the newest version the locked TVars are at: the floor of the write
    /// version, so that a TVar never gets a version it had before (INV-CLOCK).
    fn lock_writes(&mut self) -> Result<u64, Conflict> {
        let patience = lock_patience(self.conflicts);
        let serial = self.serial;
        let mut newest = 0;
        for e in self.writes.iter_mut() {
            // SAFETY: the entry was logged in this pinned attempt, so its core is alive
            // (INV-RECLAIM, INV-REFS); the lock word is an atomic.
            let header = unsafe { &*e.header };
            if serial {
                let word = if self.held.remove(&e.header) {
                    // Locked when read (INV-SERIAL); no waiter sets its bit on a locked word.
                    // Relaxed: we own the lock, so nobody else writes the word.
                    header.lock.load(Ordering::Relaxed)
                } else {
                    super::lock_serial(header)
                };
                e.waiters = word & WAITERS != 0;
                e.locked = true;
                newest = newest.max(lock_word::version(word));
                continue;
            }
            match try_lock(header, Some(patience)) {
                Some(word) => {
                    e.locked = true;
                    e.waiters = word & WAITERS != 0;
                    newest = newest.max(lock_word::version(word));
                    // The read this entry covers: still at the version seen, and now ours.
                    if e.read_version != NOT_READ && lock_word::version(word) != e.read_version {
                        return Err(Conflict {
                            cause: Cause::Validate,
                            tvar: e.header as usize,
                            site: e.site,
                        });
                    }
                }
                None => {
                    return Err(Conflict {
                        cause: Cause::Lock,
                        tvar: e.header as usize,
                        site: e.site,
                    })
                }
            }
        }
        Ok(newest + 1)
    }

    /// Validates the read set while the whole write set is locked by us: every read is still
    /// at the version seen, and unlocked unless the TVar is one of ours.
    #[inline]
    fn validate_locked(&self) -> Result<(), Conflict> {
        // Every entry of the write set is locked at this point: a locked TVar is ours exactly
        // when it has an entry.
        match self.reads.first_stale(|h| self.writes.find(h).is_some()) {
            None => Ok(()),
            Some(e) => {
                Err(Conflict { cause: Cause::Validate, tvar: e.header as usize, site: e.site })
            }
        }
    }

    /// Gives back every lock taken without publishing (the versions are unchanged).
    fn unlock_unpublished(&mut self) {
        for e in self.writes.iter_mut().filter(|e| e.locked) {
            // SAFETY: we hold the lock, taken in this pinned attempt (INV-RECLAIM).
            let header = unsafe { &*e.header };
            // Release pairs with the Acquire of the next locker or reader; the version and
            // the waiter bit are kept.
            header.lock.fetch_and(!LOCKED, Ordering::Release);
            e.locked = false;
        }
        self.release_held();
    }

    /// Publishes every pending value and unlocks its TVar at version `wv`, waking its
    /// waiters. Per TVar, publish-then-unlock is enough: all locks were taken before `wv` was
    /// read off the clock, so a snapshot that covers `wv` finds the others locked or at `wv`
    /// (INV-CLOCK).
    fn publish(&mut self, wv: u64) {
        let guard = self.guard.as_ref().expect("commit runs pinned");
        let new_word = lock_word::at_version(wv);
        for e in self.writes.iter_mut() {
            // SAFETY: the entry was logged in this pinned attempt, so its core is alive
            // (INV-RECLAIM); every core starts with its header and the value pointer follows
            // at the same offset whatever `T` is (INV-HEADER).
            let value = unsafe { super::value_slot(e.header) };
            // Relaxed: only the lock holder writes the pointer, and we hold the lock.
            let old = value.load(Ordering::Relaxed);
            // Release pairs with the Acquire value loads of readers, which then see the new
            // value initialized.
            value.store(e.value, Ordering::Release);
            e.value = std::ptr::null_mut(); // the TVar owns it now (INV-PUBLISHED)
                                            // SAFETY: see above.
            let header: &Header = unsafe { &*e.header };
            // Release pairs with readers' Acquire loads of the word: a reader that sees the
            // new version sees the value stored above. A plain store is enough: no waiter
            // sets its bit on a locked word (INV-WAKE), so there is nothing to preserve.
            header.lock.store(new_word, Ordering::Release);
            e.locked = false;
            if e.waiters {
                // Woken once the commit is over and no borrow is held (INV-LOGS).
                self.to_wake.push(e.header);
            }
            self.garbage.retire(guard, old, e.disposal);
        }
        self.writes.clear_published();
        self.release_held();
    }
}

/// Takes `header`'s lock with a CAS on an unlocked word and returns the word before locking.
/// While another transaction holds it, spins at most `patience` times and gives up (`None`),
/// or with no patience (serial mode, INV-SERIAL) waits as long as needed, yielding the
/// thread after 128 spins.
#[inline]
pub(crate) fn try_lock(header: &Header, patience: Option<u32>) -> Option<u64> {
    let mut spins = 0_u32;
    loop {
        // Relaxed: the CAS below re-checks and orders.
        let word = header.lock.load(Ordering::Relaxed);
        if !is_locked(word) {
            // Acquire part: pairs with the Release store that last unlocked this word (we see
            // the value it published; a serial release or a committer giving up also unlocks
            // with Release) and with a waiter's Release CAS of `WAITERS` (we see its
            // registration, INV-WAKE). SeqCst: the lock precedes our `Clock::write_version`
            // load in the single order that readers' SeqCst clock and lock-word loads follow
            // (INV-CLOCK); on x86 a locked CAS costs the same either way.
            if header
                .lock
                .compare_exchange_weak(word, word | LOCKED, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                return Some(word);
            }
            continue;
        }
        spins += 1;
        match patience {
            Some(patience) if spins > patience => return None,
            None if spins >= 128 => crate::sync::yield_now(),
            _ => spin_hint(),
        }
    }
}
