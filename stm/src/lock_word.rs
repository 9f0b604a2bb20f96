//! The versioned lock word every `TVar` carries.
//!
//! One `AtomicU64` packs the TVar's version, a lock bit and a waiter bit:
//!
//! | bits   | name      | meaning                                                          |
//! |--------|-----------|------------------------------------------------------------------|
//! | 0      | `LOCKED`  | a committer (or a serial-mode transaction) owns the TVar          |
//! | 1      | `WAITERS` | some blocked transaction may be registered in the wait table      |
//! | 2..64  | version   | the clock value of the commit that installed the current value   |
//!
//! State table (who moves the word from one state to the next):
//!
//! | from                    | to                        | by                                          |
//! |-------------------------|---------------------------|---------------------------------------------|
//! | `v`                     | `v \| LOCKED`             | a committer's CAS (`commit::try_lock`), or a serial transaction's (`tx::lock_serial`) |
//! | `v \| LOCKED`           | `wv` (new version)        | the committer's Release store after publishing |
//! | `v \| LOCKED`           | `v`                       | a committer giving up, or a serial transaction releasing a read (`fetch_and`) |
//! | `v` (unlocked)          | `v \| WAITERS`            | a waiter's CAS in `wait::set_waiters_bit`   |
//!
//! A waiter never sets its bit on a locked word, so the committer learns of waiters from the
//! word its locking CAS replaced and may unlock with a plain store (INV-WAKE).
//!
//! Locking keeps the version bits, so a reader that sees `LOCKED` still knows which version
//! the owner is replacing, and a committer can tell that a TVar it has locked is still at the
//! version it read (INV-VERSION in `stm/DESIGN.md`).

/// The lock bit.
pub(crate) const LOCKED: u64 = 1;
/// The waiter bit: a commit that clears it must look in the wait table.
pub(crate) const WAITERS: u64 = 2;
const VERSION_SHIFT: u32 = 2;

/// The version packed into `word`.
#[inline]
pub(crate) const fn version(word: u64) -> u64 {
    word >> VERSION_SHIFT
}

/// An unlocked word without waiters at `version`.
#[inline]
pub(crate) const fn at_version(version: u64) -> u64 {
    version << VERSION_SHIFT
}

/// Whether `word` is locked.
#[inline]
pub(crate) const fn is_locked(word: u64) -> bool {
    word & LOCKED != 0
}

/// Whether two words agree on version and lock bit (the waiter bit is ignored: registering a
/// waiter is not a change of the TVar).
#[inline]
pub(crate) const fn same_state(a: u64, b: u64) -> bool {
    (a ^ b) & !WAITERS == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks() {
        let w = at_version(42);
        assert_eq!(version(w), 42);
        assert!(!is_locked(w));
        assert!(is_locked(w | LOCKED));
        assert_eq!(version(w | LOCKED | WAITERS), 42);
        assert!(same_state(w, w | WAITERS));
        assert!(!same_state(w, w | LOCKED));
        assert!(!same_state(w, at_version(43)));
    }
}
