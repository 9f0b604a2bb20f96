//! Contention management: backoff after a conflict, age priority, and the policy that
//! escalates a starving transaction to the irrevocable serial mode.
//!
//! - Backoff is randomized and exponential in the number of consecutive conflicts of one
//!   transaction: first spinning, then yielding the CPU, then sleeping a few microseconds.
//! - Age priority: the count of conflicts survives restarts, and a transaction waits that
//!   much longer for a locked TVar before giving up, so an old transaction out-waits young
//!   ones instead of being aborted by them again.
//! - After [`Policy::serial_after`] consecutive conflicts, the next attempt runs in serial
//!   mode: one transaction at a time locks every TVar it reads or writes as it goes, so
//!   nothing can invalidate it, and it always commits (INV-SERIAL).

use crate::sync::{spin_hint, AtomicU64, Ordering};

/// Tuning of contention management, process-wide. Set it with [`set_policy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// Consecutive conflicts after which a transaction escalates to the irrevocable serial
    /// mode, where it is guaranteed to commit. `0` makes every transaction serial (useful
    /// to debug); `u32::MAX` never escalates. Default: 16.
    pub serial_after: u32,
}

impl Policy {
    /// The default policy.
    pub const DEFAULT: Policy = Policy { serial_after: 16 };

    /// This policy with a different serial escalation threshold.
    pub const fn with_serial_after(mut self, conflicts: u32) -> Self {
        self.serial_after = conflicts;
        self
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

crate::sync::global! {
    static SERIAL_AFTER: AtomicU64 = AtomicU64::new(Policy::DEFAULT.serial_after as u64);
}

/// Replaces the process-wide contention policy. Transactions already running keep the
/// threshold they started with.
pub fn set_policy(policy: Policy) {
    // Relaxed: a tuning knob; no other memory is published with it.
    SERIAL_AFTER.store(u64::from(policy.serial_after), Ordering::Relaxed);
}

/// The process-wide contention policy.
#[inline]
pub fn policy() -> Policy {
    // Relaxed: see `set_policy`.
    Policy { serial_after: SERIAL_AFTER.load(Ordering::Relaxed) as u32 }
}

/// How long (in spin iterations) to wait for a locked TVar before giving up: grows with the
/// transaction's age (its consecutive conflicts), capped.
#[inline]
pub(crate) fn lock_patience(conflicts: u32) -> u32 {
    if cfg!(loom) {
        // Under loom every spin is a scheduling point: keep the state space small.
        return 1 + conflicts.min(2);
    }
    64 << conflicts.min(6)
}

/// A small xorshift generator: backoff needs cheap randomness, not quality.
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Waits before the next attempt after `conflicts` consecutive conflicts.
pub(crate) fn backoff(conflicts: u32, rng: &mut Rng) {
    if cfg!(loom) {
        // Deterministic under loom (the random seed comes from an address).
        crate::sync::yield_now();
        return;
    }
    if conflicts <= 6 {
        let max = 16_u64 << conflicts;
        let spins = max / 2 + rng.next() % (max / 2);
        for _ in 0..spins {
            spin_hint();
        }
    } else if conflicts <= 10 {
        crate::sync::yield_now();
    } else {
        sleep_micros(1 + rng.next() % (1 << (conflicts - 10).min(6)));
    }
}

#[cfg(not(loom))]
fn sleep_micros(us: u64) {
    std::thread::sleep(std::time::Duration::from_micros(us));
}

#[cfg(loom)]
fn sleep_micros(_us: u64) {
    crate::sync::yield_now();
}
